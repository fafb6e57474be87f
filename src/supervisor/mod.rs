//! One supervisor interface over whatever serves a site: the embedded pool (our master
//! and workers) or a real OMERO.web under Gunicorn. The CLI and the panel hold a
//! `Box<dyn Supervisor>` from [`for_site`] and never ask which kind they drive, except
//! to show it.

pub mod embedded;
pub mod gunicorn;
pub mod stats;
mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use status::{ControlResponse, PoolStatus, WorkerStatus};

use crate::site::{Site, SiteKind};

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
}

/// What to say about processes a dead master left behind.
pub fn orphans_note(orphans: &[u32]) -> String {
    let pids: Vec<String> = orphans.iter().map(|p| p.to_string()).collect();
    format!(
        "{} worker(s) of the dead master still serve (PIDs {}); stop ends them",
        orphans.len(),
        pids.join(", ")
    )
}

/// A change of the worker count: `scale N`, `scale +N`, `scale -N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    To(u32),
    By(i32),
}

impl Scale {
    /// The count this change leads to from `current` (never below one worker).
    pub fn target(self, current: u32) -> u32 {
        match self {
            Scale::To(n) => n.max(1),
            Scale::By(delta) => (current as i64 + delta as i64).max(1) as u32,
        }
    }
}

/// How a log file's lines look, so the Log tab can colour and filter them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// OMERO's `OMEROweb.log` lines (ours, or Django's).
    Omero,
    /// Gunicorn's error log: `[2026-11-30 11:07:22 +0000] [6029] [INFO] ...`.
    GunicornError,
    /// Gunicorn's access log in our format: `<PID> host "GET / HTTP/1.1" 200 123 4ms`.
    GunicornAccess,
}

/// A log the supervisor's processes write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub label: &'static str,
    pub path: PathBuf,
    pub format: LogFormat,
}

/// The logs of a site's processes for these settings (`None`: the config cannot be
/// loaded, so defaults apply), the main one first. Pure: the panel calls it in `update`.
pub fn log_files_for(site: &Site, settings: Option<&crate::config::Settings>) -> Vec<LogFile> {
    match site.kind() {
        SiteKind::Embedded => vec![LogFile {
            label: "OMEROweb.log",
            path: settings
                .map_or_else(|| site.default_log_dir(), |s| s.log_dir.clone())
                .join(crate::logging::LOG_FILE_NAME),
            format: LogFormat::Omero,
        }],
        SiteKind::OmeroWeb => gunicorn::log_files(site, settings),
    }
}

/// What serves a site, with versions, for headers and `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub kind: SiteKind,
    /// e.g. {"omero-web": "5.33.2", "gunicorn": "27.0.1"}; empty when unknown.
    pub versions: BTreeMap<String, String>,
    /// Why the versions are unknown (e.g. no Python with omeroweb was found).
    pub problem: Option<String>,
}

impl Backend {
    /// "OMERO.web 5.33.2 · Gunicorn 27.0.1" or "embedded pool 0.1.0".
    pub fn describe(&self) -> String {
        describe(self.kind, &self.versions)
    }
}

/// One line naming what serves a site and its versions.
pub fn describe(kind: SiteKind, versions: &BTreeMap<String, String>) -> String {
    match kind {
        SiteKind::Embedded => format!(
            "embedded pool {}",
            versions
                .get("omero-webctl")
                .map(String::as_str)
                .unwrap_or(env!("CARGO_PKG_VERSION"))
        ),
        SiteKind::OmeroWeb => {
            let v = |k: &str| versions.get(k).cloned().unwrap_or_else(|| "?".into());
            format!("OMERO.web {} · Gunicorn {}", v("omero-web"), v("gunicorn"))
        }
    }
}

/// What the faces can ask of whatever serves the site. Every call blocks until done
/// (the panel runs them on its blocking pool).
pub trait Supervisor: Send + Sync {
    fn site(&self) -> &Site;
    /// What serves the site, with versions.
    fn backend(&self) -> Backend;
    /// Starts it detached and waits until the workers serve (or it fails).
    fn start(&self) -> StartOutcome;
    /// Stops it and waits until every process has exited.
    fn stop(&self, quick: bool) -> anyhow::Result<StopOutcome>;
    fn status(&self) -> anyhow::Result<StatusOutcome>;
    /// Re-reads the config and replaces the workers; returns when done or refused.
    fn reload(&self) -> anyhow::Result<ControlResponse>;
    fn scale(&self, change: Scale) -> anyhow::Result<ControlResponse>;
    fn kill_worker(&self, pid: u32) -> anyhow::Result<ControlResponse>;
    fn reopen_logs(&self) -> anyhow::Result<ControlResponse>;
    /// The logs its processes write, the main one first.
    fn log_files(&self) -> Vec<LogFile>;
    /// The pid file scripts and units read.
    fn pid_file(&self) -> PathBuf;
}

/// After a scale to `target` workers: with `persist`, saves the count to
/// `omero.web.wsgi_workers`; otherwise says that the next reload or restart returns
/// to the saved count (when it differs). Both kinds of site read the count there.
pub fn after_scale(site: &Site, target: u32, persist: bool) -> anyhow::Result<Option<String>> {
    let mut config = crate::config::Config::load(site)?;
    let saved = config.settings().workers;
    if persist {
        if saved != target {
            config.set("omero.web.wsgi_workers", &target.to_string(), false)?;
            config.save()?;
        }
        return Ok(Some(format!(
            "Saved omero.web.wsgi_workers = {target} in {}.",
            config.path().display()
        )));
    }
    Ok((saved != target).then(|| {
        format!(
            "The next reload or restart returns to omero.web.wsgi_workers = {saved} (scale --persist saves {target})."
        )
    }))
}

/// The supervisor of a site, chosen by its kind.
pub fn for_site(site: &Site) -> Box<dyn Supervisor> {
    match site.kind() {
        SiteKind::Embedded => Box::new(embedded::EmbeddedPool::new(site.clone())),
        SiteKind::OmeroWeb => Box::new(gunicorn::Gunicorn::new(site.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_targets_never_reach_zero() {
        assert_eq!(Scale::To(4).target(2), 4);
        assert_eq!(Scale::To(0).target(2), 1);
        assert_eq!(Scale::By(2).target(3), 5);
        assert_eq!(Scale::By(-5).target(3), 1);
    }

    #[test]
    fn backends_describe_themselves() {
        let mut v = BTreeMap::new();
        v.insert("omero-web".to_string(), "5.33.2".to_string());
        v.insert("gunicorn".to_string(), "27.0.1".to_string());
        assert_eq!(
            describe(SiteKind::OmeroWeb, &v),
            "OMERO.web 5.33.2 · Gunicorn 27.0.1"
        );
        assert!(describe(SiteKind::Embedded, &BTreeMap::new()).starts_with("embedded pool "));
    }
}
