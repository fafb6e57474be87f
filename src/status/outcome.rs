//! How a start, a stop and a status query went: what both kinds of supervisor return
//! and every face shows.

use std::path::PathBuf;

use super::PoolStatus;

/// How a start went.
#[derive(Debug)]
pub enum StartOutcome {
    Started {
        pid: u32,
        detail: String,
        /// A stale pid file that was found (and taken over).
        stale_pid: Option<u32>,
    },
    AlreadyRunning {
        pid: u32,
    },
    Failed {
        reason: String,
        /// The last lines of the log that explains the failure.
        log_tail: Vec<String>,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub enum StopOutcome {
    Stopped {
        pid: u32,
    },
    /// It did not stop within the graceful timeout and was killed.
    Killed {
        pid: u32,
    },
    NotRunning,
    /// Only a stale pid file was there; it was removed.
    Stale {
        pid: Option<u32>,
    },
    /// No master, but processes a dead one had left; they were ended.
    Orphans {
        pids: Vec<u32>,
    },
}

#[derive(Debug)]
pub enum StatusOutcome {
    Running(Box<PoolStatus>),
    NotRunning,
    /// A pid file whose master is gone; `orphans` are processes the dead master left
    /// (Gunicorn workers serve on for a while after a kill -9 of their master).
    Stale {
        pid: Option<u32>,
        orphans: Vec<u32>,
    },
    /// Nothing runs because the server halted by itself (Gunicorn: "Worker failed to
    /// boot"), as its log says; reported until the next start.
    Halted(Box<Halt>),
}

/// A server that stopped by itself, and why, from its own log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Halt {
    /// When, as the log wrote it (`2026-12-06 18:40:10 +0000`).
    pub at: String,
    /// Its own reason (`Worker failed to boot.`).
    pub reason: String,
    /// The last error line before it: the failing import, usually.
    pub error: Option<String>,
    /// The log it was read from.
    pub log: PathBuf,
    /// Saved changes the halted server had not applied (often the cause).
    pub pending: Vec<Pending>,
}

impl Halt {
    /// `halted at T: Worker failed to boot. (ModuleNotFoundError: ...)`
    pub fn describe(&self) -> String {
        let mut text = format!("halted at {}: {}", self.at, self.reason);
        if let Some(error) = &self.error {
            text.push_str(&format!(" ({error})"));
        }
        text.push_str(&format!(" [{}]", self.log.display()));
        text
    }
}

/// A property whose saved value the running pool has not applied yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pending {
    pub key: String,
    /// What the pool runs with.
    pub running: String,
    /// What the config file says now.
    pub saved: String,
    /// What applies it: "reload" or "restart".
    pub applies_with: &'static str,
}

impl Pending {
    /// `omero.web.wsgi_workers 5 → 3`
    pub fn describe(&self) -> String {
        let shown = |v: &str| {
            if v.is_empty() {
                "(unset)".to_string()
            } else {
                v.to_string()
            }
        };
        format!(
            "{} {} → {}",
            self.key,
            shown(&self.running),
            shown(&self.saved)
        )
    }
}
