//! The OMERO.servers of `omero.web.server_list` as the Dashboard shows them: "checking…"
//! until a probe reports, then what it found, checked again every
//! [`RECHECK_SECS`] and whenever the list changes. Probes run off the UI thread (an
//! effect); this only decides when one is due and keeps what came back.

use crate::reachability::{Reach, ServerEntry, ServerReach};

/// How often the servers are probed again (seconds on the panel's clock).
pub const RECHECK_SECS: f64 = 30.0;

#[derive(Debug)]
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
    pub fn reported(&mut self, probed: &[ServerEntry], results: Vec<ServerReach>, now: f64) -> bool {
        self.checking = false;
        if self.entries.as_deref() != Ok(probed) {
            return false;
        }
        self.checked_at = Some(now);
        let changed = self.results.as_ref() != Some(&results);
        self.results = Some(results);
        changed
    }

    /// The Dashboard's one-line summary (`None` when there is nothing to check), and
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
            return Some((format!("{what} · checking…"), Tone::Unknown));
        };
        match results.as_slice() {
            [one] => Some((
                format!("{} · {}", one.server.label(), short(&one.reach)),
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
