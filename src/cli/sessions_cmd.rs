//! `omero-webctl sessions list|kill`: the embedded gateway's login sessions, wherever
//! the site keeps them (files under `var/sessions/`, or the Redis that
//! `omero.web.session_engine`/`omero.web.caches` name). The listing shows an ID's
//! first characters only: a full ID is a login, and terminals get copied into tickets.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::gateway::auth::AccessConfig;
use crate::gateway::auth::sessions::{Session, SessionStore};
use crate::site::{Site, SiteKind};

/// How many characters of a session ID the listing shows (and `kill` needs at least).
pub const SHOWN_ID_CHARS: usize = 12;

#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub action: SessionsAction,
}

#[derive(Debug, Subcommand)]
pub enum SessionsAction {
    /// The sessions: user, login, last request, expiry, ID prefix.
    List {
        #[arg(long)]
        json: bool,
        /// Show whole session IDs (they are logins: handle with care).
        #[arg(long)]
        full_ids: bool,
    },
    /// End sessions: the one whose ID starts with ID, or every session of --user.
    Kill {
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The site's session store, as its workers open it; and the line saying where.
pub fn open_store(site: &Site) -> anyhow::Result<(SessionStore, String)> {
    let config = Config::load(site).map_err(|e| anyhow!("{e}"))?;
    let access = AccessConfig::from_settings(&config.settings());
    let place = access
        .session_place
        .describe(access.session_problem.as_deref());
    let store =
        SessionStore::open(&access.session_place, access.expiry).map_err(|e| anyhow!("{e}"))?;
    Ok((store, place))
}

fn unix_time(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| secs.to_string())
}

fn row_json(store: &SessionStore, id: &str, session: &Session, full: bool) -> serde_json::Value {
    serde_json::json!({
        "id": if full { id } else { &id[..SHOWN_ID_CHARS.min(id.len())] },
        "user": session.user,
        "created": session.created,
        "last_seen": session.seen,
        "expires": store.expires(session),
        "expired": store.is_expired(session),
        "address": session.address,
    })
}

pub fn run(site: &Site, action: SessionsAction) -> anyhow::Result<ExitCode> {
    if site.kind() == SiteKind::OmeroWeb {
        bail!(
            "{} is an OMERO.web site: its sessions are Django's (omero web clearsessions); these are the embedded gateway's",
            site.root().display()
        );
    }
    let (store, place) = open_store(site)?;
    let sessions = store
        .list()
        .map_err(|e| anyhow!("cannot list the sessions: {e}"))?;
    match action {
        SessionsAction::List { json, full_ids } => {
            if json {
                let rows: Vec<_> = sessions
                    .iter()
                    .map(|(id, s)| row_json(&store, id, s, full_ids))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{place}.");
            if sessions.is_empty() {
                println!("No sessions.");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<14} {:<16} {:<19}  {:<19}  {:<19}  ADDRESS",
                "ID", "USER", "LOGIN (UTC)", "LAST SEEN", "EXPIRES"
            );
            for (id, s) in &sessions {
                let shown = if full_ids {
                    id.as_str()
                } else {
                    &id[..SHOWN_ID_CHARS.min(id.len())]
                };
                let expires = match store.expires(s) {
                    _ if store.is_expired(s) => "expired".to_string(),
                    Some(t) => unix_time(t),
                    None => "never".to_string(),
                };
                println!(
                    "{shown:<14} {:<16} {:<19}  {:<19}  {expires:<19}  {}",
                    s.user,
                    unix_time(s.created),
                    unix_time(s.seen),
                    s.address.as_deref().unwrap_or("-")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SessionsAction::Kill { id, user, json } => {
            let chosen: Vec<&(String, Session)> = match (&id, &user) {
                (Some(prefix), _) => {
                    if prefix.len() < 8 {
                        bail!(
                            "give at least 8 characters of the session ID ({prefix:?} is too short to be sure)"
                        );
                    }
                    let found: Vec<_> = sessions
                        .iter()
                        .filter(|(i, _)| i.starts_with(prefix.as_str()))
                        .collect();
                    match found.len() {
                        0 => bail!(
                            "no session's ID starts with {prefix:?} (see: omero-webctl sessions list)"
                        ),
                        1 => found,
                        n => bail!("{n} sessions' IDs start with {prefix:?}: give more characters"),
                    }
                }
                (None, Some(name)) => sessions.iter().filter(|(_, s)| &s.user == name).collect(),
                (None, None) => unreachable!("clap requires an ID or --user"),
            };
            for (session_id, _) in &chosen {
                store.remove(session_id).map_err(|e| anyhow!("{e}"))?;
            }
            if json {
                let rows: Vec<_> = chosen
                    .iter()
                    .map(|(i, s)| row_json(&store, i, s, false))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"ended": rows}))?
                );
            } else {
                match (&user, chosen.len()) {
                    (Some(name), 0) => println!("User {name:?} has no sessions."),
                    (_, n) => println!("Ended {n} session(s) ({place})."),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
