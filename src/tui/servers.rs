//! The OMERO.servers of `omero.web.server_list` as the Dashboard shows them: "checking…"
//! until a probe reports, then what it found, checked again every
//! [`RECHECK_SECS`] and whenever the list changes. Probes run off the UI thread (an
//! effect); this only decides when one is due and keeps what came back.

use crate::reachability::{Reach, ServerEntry, ServerReach};

/// How often the servers are probed again (seconds on the panel's clock).
pub const RECHECK_SECS: f64 = 30.0;

#[derive(Debug, Clone, PartialEq)]
pub struct ServerChecks {
    /// The entries of the config the panel holds, or why they cannot be read.
    pub entries: Result<Vec<ServerEntry>, String>,
    /// What the latest probe of exactly `entries` found; `None` until it reports.
    pub results: Option<Vec<ServerReach>>,
    pub checking: bool,
    pub checked_at: Option<f64>,
}

impl Default for ServerChecks {
    fn default() -> Self {
        ServerChecks {
            entries: Ok(Vec::new()),
            results: None,
            checking: false,
            checked_at: None,
        }
    }
}

impl ServerChecks {
    /// Takes the config's entries; returns those to probe now, when a probe is due
    /// (the list changed, none ran yet, or the last is older than `RECHECK_SECS`).
    pub fn due(
        &mut self,
        entries: Result<Vec<ServerEntry>, String>,
        now: f64,
    ) -> Option<Vec<ServerEntry>> {
        if entries != self.entries {
            self.entries = entries;
            self.results = None;
            self.checked_at = None;
        }
        let list = self.entries.as_ref().ok()?;
        if list.is_empty() || self.checking {
            return None;
        }
        let stale = self.checked_at.is_none_or(|t| now - t >= RECHECK_SECS);
        stale.then(|| {
            self.checking = true;
            list.clone()
        })
    }

    /// A probe reported. Results for a list that has changed meanwhile are dropped (a
    /// new probe follows). Returns whether what is shown changed.
    pub fn reported(
        &mut self,
        probed: &[ServerEntry],
        results: Vec<ServerReach>,
        now: f64,
    ) -> bool {
        self.checking = false;
        if self.entries.as_deref() != Ok(probed) {
            return false;
        }
        self.checked_at = Some(now);
        let changed = self.results.as_ref() != Some(&results);
        self.results = Some(results);
        changed
    }

    /// The Dashboard's one-line summary, state first so a narrow panel cuts the address
    /// rather than the verdict (`None` when there is nothing to check), and
    /// whether it is bad news.
    pub fn summary(&self) -> Option<(String, Tone)> {
        let entries = match &self.entries {
            Err(e) => return Some((e.clone(), Tone::Bad)),
            Ok(entries) if entries.is_empty() => return None,
            Ok(entries) => entries,
        };
        let Some(results) = &self.results else {
            let what = match entries.as_slice() {
                [one] => one.label(),
                many => format!("{} servers", many.len()),
            };
            return Some((format!("checking… · {what}"), Tone::Unknown));
        };
        match results.as_slice() {
            [one] => Some((
                format!("{} · {}", short(&one.reach), one.server.label()),
                tone(&one.reach),
            )),
            many => {
                let up = many.iter().filter(|r| r.reach.is_reachable()).count();
                let tone = if up == many.len() {
                    Tone::Good
                } else {
                    Tone::Bad
                };
                Some((format!("{up} of {} reachable", many.len()), tone))
            }
        }
    }

    /// A problem line per server that is not reachable (the whole story, for the
    /// Diagnostics panel).
    pub fn problems(&self) -> Vec<String> {
        self.results
            .iter()
            .flatten()
            .filter_map(ServerReach::problem)
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Unknown,
}

fn tone(reach: &Reach) -> Tone {
    if reach.is_reachable() {
        Tone::Good
    } else {
        Tone::Bad
    }
}

/// A few words for the summary line; the problems panel has the rest.
fn short(reach: &Reach) -> String {
    match reach {
        Reach::Reachable { transport } => format!(
            "reachable ({})",
            match transport {
                crate::reachability::Transport::Tcp => "Ice/TCP",
                crate::reachability::Transport::Tls => "Ice/TLS",
            }
        ),
        Reach::Refused => "connection refused".into(),
        Reach::TimedOut { .. } => "timed out".into(),
        Reach::TlsHandshakeFailed { .. } => "TLS handshake failed".into(),
        Reach::NotIce { .. } => "not an Ice endpoint".into(),
        Reach::Unresolved { .. } => "host unknown".into(),
        Reach::Failed { .. } => "cannot connect".into(),
    }
}

#[cfg(test)]
mod tests {
    use crate::reachability::{Reach, ServerEntry, ServerReach, Transport};
    use crate::tui::app::update;
    use crate::tui::event::{Effect, Event};
    use crate::tui::fixtures;

    fn probes(effects: &[Effect]) -> Vec<Vec<ServerEntry>> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::ProbeServers(entries) => Some(entries.clone()),
                _ => None,
            })
            .collect()
    }

    fn sample(app: &mut crate::tui::app::App, at: f64) -> Vec<Effect> {
        update(app, Event::Sample(Box::new(fixtures::stopped_sample(at))))
    }

    #[test]
    fn an_omeroweb_site_probes_its_servers_off_the_ui_thread_and_shows_checking_meanwhile() {
        let (mut app, effects) = fixtures::omeroweb_app();
        let entry = ServerEntry {
            host: "omero.example.org".into(),
            port: 4064,
            name: Some("omero".into()),
        };
        assert_eq!(probes(&effects), vec![vec![entry.clone()]]);
        assert_eq!(
            app.dashboard.servers.summary().unwrap().0,
            "checking… · omero (omero.example.org:4064)"
        );
        // While the probe runs, samples start no second one.
        for at in [1.0, 2.0, 40.0] {
            assert!(probes(&sample(&mut app, at)).is_empty());
        }
        let effects = update(
            &mut app,
            Event::ServersProbed {
                probed: vec![entry.clone()],
                results: vec![ServerReach::new(entry.clone(), Reach::Refused)],
            },
        );
        assert!(probes(&effects).is_empty());
        assert_eq!(
            app.dashboard.servers.summary().unwrap().0,
            "connection refused · omero (omero.example.org:4064)"
        );
        assert_eq!(
            app.dashboard.servers.problems(),
            vec![
                "OMERO.server omero (omero.example.org:4064): connection refused (nothing listens there?) — logins fail (omero.web.server_list)"
            ]
        );
        // Checked again after RECHECK_SECS on the panel's clock, not before.
        assert!(probes(&sample(&mut app, 69.0)).is_empty());
        assert_eq!(probes(&sample(&mut app, 70.0)), vec![vec![entry.clone()]]);
        update(
            &mut app,
            Event::ServersProbed {
                probed: vec![entry.clone()],
                results: vec![ServerReach::new(
                    entry,
                    Reach::Reachable {
                        transport: Transport::Tls,
                    },
                )],
            },
        );
        assert_eq!(
            app.dashboard.servers.summary().unwrap().0,
            "reachable (Ice/TLS) · omero (omero.example.org:4064)"
        );
        assert!(app.dashboard.servers.problems().is_empty());
    }

    #[test]
    fn a_changed_server_list_is_probed_at_once_and_a_stale_report_is_dropped() {
        let (mut app, _) = fixtures::omeroweb_app();
        let old = app.dashboard.servers.entries.clone().unwrap();
        let text = fixtures::OMERO_CONFIG_XML.replace(
            "[[&quot;omero.example.org&quot;, 4064, &quot;omero&quot;]]",
            "[[&quot;10.0.0.9&quot;, 4063, &quot;new&quot;]]",
        );
        let config = crate::config::Config::from_text(
            &app.site,
            app.site.config_file(),
            text.clone(),
            Some(text.into_bytes()),
        )
        .unwrap();
        let effects = update(&mut app, Event::ConfigLoaded(Ok(Box::new(config))));
        let new = ServerEntry {
            host: "10.0.0.9".into(),
            port: 4063,
            name: Some("new".into()),
        };
        // The old probe still runs: the new list waits for it…
        assert!(probes(&effects).is_empty());
        assert_eq!(
            app.dashboard.servers.summary().unwrap().0,
            "checking… · new (10.0.0.9:4063)"
        );
        // …whose report, for the old list, is dropped and the new list probed.
        let effects = update(
            &mut app,
            Event::ServersProbed {
                probed: old.clone(),
                results: vec![ServerReach::new(old[0].clone(), Reach::Refused)],
            },
        );
        assert_eq!(probes(&effects), vec![vec![new]]);
        assert!(app.dashboard.servers.results.is_none());
    }

    #[test]
    fn an_embedded_site_probes_nothing() {
        let mut app = fixtures::bare_app();
        for at in [0.0, 31.0, 62.0] {
            assert!(probes(&sample(&mut app, at)).is_empty());
        }
        assert_eq!(app.dashboard.servers.summary(), None);
    }
}
