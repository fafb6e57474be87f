//! `omero-webctl user …` and `group …`: the embedded gateway's local users and groups
//! (`etc/access.json`). The first user or group switches access control on for the
//! site's gateway (see `gateway::auth`). Passwords come from the terminal (not
//! echoed, asked twice) or from stdin with `--password-stdin`; never from the
//! command line, where `ps` would show them.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};

use crate::gateway::auth::users::UserStore;
use crate::site::{Site, SiteKind};

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserAction,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add a user (the password is asked for, or read from stdin).
    Add {
        name: String,
        /// Also make the user a member of these groups (created if missing).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user (and their group memberships).
    Del { name: String },
    /// The users and their groups.
    List,
}

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    pub action: GroupAction,
}

#[derive(Debug, Subcommand)]
pub enum GroupAction {
    /// Add a group; its data is the repository's top-level directory of that name.
    Add { name: String },
    /// Remove a group (its images stay; nobody sees them until it is added again).
    Del { name: String },
    /// Print a group's members, after adding and removing some.
    Members {
        name: String,
        #[arg(long = "add", value_name = "USER")]
        add: Vec<String>,
        #[arg(long = "remove", value_name = "USER")]
        remove: Vec<String>,
    },
}

fn embedded_only(site: &Site) -> anyhow::Result<()> {
    if site.kind() == SiteKind::OmeroWeb {
        bail!(
            "{} is an OMERO.web site: its users are the OMERO server's (omero user add); local users are for the embedded gateway",
            site.root().display()
        );
    }
    Ok(())
}

/// Loads the store, lets `change` edit it, saves it.
fn edit(
    site: &Site,
    change: impl FnOnce(&mut UserStore) -> Result<(), String>,
) -> anyhow::Result<()> {
    embedded_only(site)?;
    let path = UserStore::path(site.root());
    let mut store = UserStore::load(&path).map_err(|e| anyhow!(e))?;
    let first = !path.exists();
    change(&mut store).map_err(|e| anyhow!(e))?;
    store.save(&path).map_err(|e| anyhow!(e))?;
    if first {
        // Thumbnails nginx serves without asking the pool were published for
        // everyone; the publisher puts back the public group's (within seconds).
        crate::gateway::published::Published::new(&site.cache_dir()).sweep(|_| None);
        eprintln!(
            "notice: access control is now on for this site's gateway (users in {}): from the next request, images need a login (or the public user)",
            path.display()
        );
    }
    Ok(())
}

/// The password: stdin's first line, or typed twice at the terminal without echo.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let first = prompt_hidden("Password: ")?;
        let again = prompt_hidden("Password (again): ")?;
        if first != again {
            bail!("the passwords differ; nothing changed");
        }
        first
    };
    if password.is_empty() {
        bail!("empty password refused; nothing changed");
    }
    Ok(password)
}

/// Reads one line from the terminal with echo off (restored even on error).
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask the password on (use --password-stdin)")?;
    let saved =
        tcgetattr(&tty).context("no terminal to ask the password on (use --password-stdin)")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&tty, SetArg::TCSANOW, &quiet).context("turning the terminal's echo off")?;
    let mut line = String::new();
    let read = (|| -> std::io::Result<()> {
        let mut out = &tty;
        out.write_all(prompt.as_bytes())?;
        out.flush()?;
        std::io::BufReader::new(&tty).read_line(&mut line)?;
        Ok(())
    })();
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &saved);
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn user(site: &Site, action: UserAction) -> anyhow::Result<ExitCode> {
    match action {
        UserAction::Add {
            name,
            groups,
            password_stdin,
        } => {
            embedded_only(site)?;
            let password = read_password(password_stdin)?;
            edit(site, |store| {
                store.add_user(&name, &password)?;
                for group in &groups {
                    if !store.groups.contains_key(group) {
                        store.add_group(group)?;
                    }
                    store.change_members(group, std::slice::from_ref(&name), &[])?;
                }
                Ok(())
            })?;
            println!("added user {name}");
        }
        UserAction::Passwd {
            name,
            password_stdin,
        } => {
            embedded_only(site)?;
            let known = UserStore::load(&UserStore::path(site.root()))
                .map_err(|e| anyhow!(e))?
                .users
                .contains_key(&name);
            if !known {
                bail!("no user {name}");
            }
            let password = read_password(password_stdin)?;
            edit(site, |store| store.set_password(&name, &password))?;
            println!("password of {name} changed");
        }
        UserAction::Del { name } => {
            edit(site, |store| store.delete_user(&name))?;
            println!("removed user {name}");
        }
        UserAction::List => {
            embedded_only(site)?;
            let store = UserStore::load(&UserStore::path(site.root())).map_err(|e| anyhow!(e))?;
            for name in store.users.keys() {
                println!("{name}\t{}", store.groups_of(name).join(","));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn group(site: &Site, action: GroupAction) -> anyhow::Result<ExitCode> {
    match action {
        GroupAction::Add { name } => {
            edit(site, |store| store.add_group(&name))?;
            println!("added group {name}");
        }
        GroupAction::Del { name } => {
            edit(site, |store| store.delete_group(&name))?;
            println!("removed group {name}");
        }
        GroupAction::Members { name, add, remove } => {
            if add.is_empty() && remove.is_empty() {
                embedded_only(site)?;
                let store =
                    UserStore::load(&UserStore::path(site.root())).map_err(|e| anyhow!(e))?;
                let members = store
                    .groups
                    .get(&name)
                    .ok_or_else(|| anyhow!("no group {name}"))?;
                for member in members {
                    println!("{member}");
                }
            } else {
                edit(site, |store| store.change_members(&name, &add, &remove))?;
                let store =
                    UserStore::load(&UserStore::path(site.root())).map_err(|e| anyhow!(e))?;
                for member in &store.groups[&name] {
                    println!("{member}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
