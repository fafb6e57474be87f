//! One supervisor interface over whatever serves a site: the embedded pool (our master
//! and workers) or a real OMERO.web under Gunicorn. The CLI and the panel hold a
//! `Box<dyn Supervisor>` from [`for_site`] and never ask which kind they drive, except
//! to show it.

pub mod embedded;
pub mod embedded_generations;
pub mod front;
pub mod gunicorn;
pub mod history;
pub mod progress;
pub mod switch;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use crate::status::{
    ControlResponse, Halt, Pending, PoolStatus, StartOutcome, StatusOutcome, StopOutcome,
    WorkerStatus,
};

use crate::site::{Site, SiteKind};

/// Whether the application loads with the saved config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigCheck {
    Loads,
    /// It does not: the error it raised (e.g. `ModuleNotFoundError: ...`).
    Fails(String),
    /// Still running in the background.
    Pending,
    /// Not checked, and why (no venv, a Python root may not run, ...).
    NotChecked(String),
}

impl ConfigCheck {
    pub fn describe(&self) -> String {
        match self {
            ConfigCheck::Loads => "it loads".into(),
            ConfigCheck::Fails(error) => error.clone(),
            ConfigCheck::Pending => "being checked".into(),
            ConfigCheck::NotChecked(why) => format!("not checked: {why}"),
        }
    }
}

/// What to say about processes a dead master left behind, and what stop/start do.
pub fn orphans_note(orphans: &[u32]) -> String {
    format!(
        "master gone, {} orphaned worker(s) still serving (PIDs {}): nothing replaces or reloads them; stop ends them, start ends them and starts a new master",
        orphans.len(),
        pid_list(orphans)
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
    /// Returns to what ran before the last change, switched in with no gap (the
    /// embedded pool: the binary kept by `upgrade --binary`; OMERO.web: the config the
    /// generation before ran with). A refusal, when nothing was kept, is a failed reply.
    fn rollback(&self) -> anyhow::Result<ControlResponse>;
    /// What [`Supervisor::rollback`] would return to, in words; `None`: nothing kept.
    /// Reads files only, so the panel can ask twice a second.
    fn rollback_target(&self) -> Option<String>;
    /// Every recorded change of the site, oldest first. Both kinds record theirs in
    /// the same file (`history`).
    fn history(&self) -> Vec<history::Change> {
        history::read(self.site())
    }
    /// Checks a value just set in `config` (not saved yet) against what serves the
    /// site: `Err` refuses it with the reason, `Ok(Some)` is a warning to show with it.
    /// The one place every face calls before saving a change.
    fn vet_setting(
        &self,
        config: &crate::config::Config,
        key: &str,
    ) -> Result<Option<String>, String>;
    /// What these settings mean for what serves the site, beyond what the registry
    /// checks: flags it ignores, advice that differs from OMERO.web's own.
    fn settings_warnings(&self, settings: &crate::config::Settings) -> Vec<String>;
    /// The logs its processes write for these settings (`None`: the config cannot be
    /// loaded, so defaults apply), the main one first. Reads no file: the panel calls
    /// it in `update`.
    fn log_files_with(&self, settings: Option<&crate::config::Settings>) -> Vec<LogFile>;
    /// The logs its processes write with the saved config, the main one first.
    fn log_files(&self) -> Vec<LogFile> {
        let settings = crate::config::Config::load(self.site()).map(|c| c.settings());
        self.log_files_with(settings.as_ref().ok())
    }
    /// The pid file scripts and units read.
    fn pid_file(&self) -> PathBuf;
    /// Whether the application loads with the saved config, waiting up to `wait` for a
    /// check that runs in the background (the embedded pool checks when it loads).
    fn saved_config_check(&self, wait: std::time::Duration) -> ConfigCheck {
        let _ = wait;
        ConfigCheck::NotChecked("checked by the pool itself".into())
    }
    /// A restart by a new generation beside the running one, switched in at the front
    /// with no gap; `None` when it cannot be done that way here (nothing runs, no
    /// private nginx in front, the embedded pool): then stop and start apply.
    fn restart_without_gap(&self) -> anyhow::Result<Option<ControlResponse>> {
        Ok(None)
    }
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

/// Saved changes the running pool has not applied ("drift"): the config now against
/// what the pool reported it runs with. Empty when the pool does not say.
pub fn pending(config: &crate::config::Config, status: &PoolStatus) -> Vec<Pending> {
    pending_against(config, &status.applied, status.kind)
}

/// [`pending`] against what a server applied (`applied`, from its start record).
pub fn pending_against(
    config: &crate::config::Config,
    applied: &BTreeMap<String, String>,
    kind: SiteKind,
) -> Vec<Pending> {
    if applied.is_empty() {
        return Vec::new();
    }
    config
        .applied_values()
        .into_iter()
        .filter_map(|(key, saved)| {
            let running = applied.get(&key)?;
            if *running == saved {
                return None;
            }
            let restart = crate::config::registry::lookup(&key)
                .is_some_and(|p| p.needs.contains(&crate::config::Need::PoolRestart))
                || (kind == SiteKind::OmeroWeb && gunicorn::needs_restart(&key));
            Some(Pending {
                running: running.clone(),
                saved,
                applies_with: if restart { "restart" } else { "reload" },
                key,
            })
        })
        .collect()
}

/// One line for a list of pending changes: what, and the command that applies them.
pub fn pending_note(pending: &[Pending]) -> Option<String> {
    if pending.is_empty() {
        return None;
    }
    let command = if pending.iter().any(|p| p.applies_with == "restart") {
        "restart"
    } else {
        "reload"
    };
    let what: Vec<String> = pending.iter().map(Pending::describe).collect();
    Some(format!(
        "saved, not applied ({command} applies it): {}",
        what.join(", ")
    ))
}

impl Halt {
    /// The saved changes the halted server had not applied, in one line: no reload
    /// can apply them now; the next start runs with them.
    pub fn pending_note(&self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let what: Vec<String> = self.pending.iter().map(Pending::describe).collect();
        Some(format!(
            "saved, not applied when it halted (the next start runs with it): {}",
            what.join(", ")
        ))
    }
}

/// Why a restart or reload (`verb`) must not begin: both start workers from the
/// config, and with one that cannot be used a restart would stop a serving pool and
/// then fail to start it. Checked before anything running is touched (CLI and panel).
pub fn refuse_unusable_config(site: &Site, verb: &str) -> Option<String> {
    let err = crate::config::Config::load(site).err()?;
    Some(format!(
        "{verb} refused: {err}; nothing was stopped or changed"
    ))
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

    /// The faces ask the trait, never the kind: each kind says what its rollback would
    /// return to (the embedded pool a kept binary, OMERO.web a kept config), both list
    /// the one history, and each names its own logs.
    #[test]
    fn each_kind_answers_for_rollback_history_and_logs_itself() {
        let dir = tempfile::tempdir().unwrap();
        let embedded = for_site(&Site::with_kind(dir.path().join("e"), SiteKind::Embedded));
        let omeroweb = for_site(&Site::with_kind(dir.path().join("o"), SiteKind::OmeroWeb));
        assert_eq!(embedded.rollback_target(), None);
        assert_eq!(omeroweb.rollback_target(), None);
        assert!(embedded.history().is_empty());

        let generations = embedded.site().var_dir().join("generations");
        std::fs::create_dir_all(&generations).unwrap();
        let kept = generations.join("omero-webctl");
        std::fs::write(&kept, "").unwrap();
        std::fs::write(generations.join("previous.binary"), kept.to_str().unwrap()).unwrap();
        assert_eq!(
            embedded.rollback_target().unwrap(),
            format!("the binary before: {}", kept.display())
        );
        let previous = history::previous_config(omeroweb.site());
        std::fs::create_dir_all(previous.parent().unwrap()).unwrap();
        std::fs::write(&previous, "").unwrap();
        assert!(
            omeroweb
                .rollback_target()
                .unwrap()
                .contains("previous.config"),
            "{:?}",
            omeroweb.rollback_target()
        );

        let mut change = history::change("rollback", vec![]);
        change.outcome = "ok".into();
        history::record(embedded.site(), &change);
        assert_eq!(embedded.history(), [change]);

        let labels = |s: &dyn Supervisor| -> Vec<&str> {
            s.log_files_with(None).iter().map(|f| f.label).collect()
        };
        assert_eq!(labels(embedded.as_ref()), ["OMEROweb.log"]);
        assert_eq!(
            labels(omeroweb.as_ref()),
            ["OMEROweb.log", "Gunicorn error log", "Gunicorn access log"]
        );
        let config = crate::config::Config::load(embedded.site()).unwrap();
        assert_eq!(
            embedded.vet_setting(&config, "omero.web.wsgi_worker_class"),
            Ok(None)
        );
    }

    /// Each kind warns about what the settings mean for it, and only it: flags the
    /// pool ignores and sync workers held by downloads (embedded), gthread (OMERO.web).
    #[test]
    fn each_kind_warns_about_its_own_settings() {
        let dir = tempfile::tempdir().unwrap();
        let embedded = for_site(&Site::with_kind(dir.path().join("e"), SiteKind::Embedded));
        let omeroweb = for_site(&Site::with_kind(dir.path().join("o"), SiteKind::OmeroWeb));
        let mut settings = crate::config::Config::load(embedded.site())
            .unwrap()
            .settings();
        settings.wsgi_args = Some("--preload".into());
        settings.worker_class = crate::config::WorkerClass::Sync;
        settings.threads = 1;
        assert!(settings.downloads_allowed(), "the default allows downloads");
        let warnings = embedded.settings_warnings(&settings);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("--preload"), "{warnings:?}");
        assert!(
            warnings[1].contains("each download holds a worker"),
            "{warnings:?}"
        );
        assert_eq!(omeroweb.settings_warnings(&settings), Vec::<String>::new());
        settings.worker_class = crate::config::WorkerClass::Gthread;
        assert_eq!(
            omeroweb.settings_warnings(&settings),
            [gunicorn::gthread_note()]
        );
        assert_eq!(embedded.settings_warnings(&settings).len(), 1);
    }
}

#[cfg(test)]
mod pending_tests {
    use super::*;
    use crate::config::Config;

    fn status_running(config: &Config, kind: SiteKind) -> PoolStatus {
        let mut status = crate::status::fixtures::pool_status(vec![]);
        status.kind = kind;
        status.applied = config.applied_values();
        status
    }

    #[test]
    fn saved_changes_the_pool_does_not_run_are_listed_with_what_applies_them() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::Embedded);
        let mut config = Config::load(&site).unwrap();
        let status = status_running(&config, SiteKind::Embedded);
        assert!(pending(&config, &status).is_empty());
        config.set("omero.web.wsgi_workers", "3", false).unwrap();
        config.set("omero.web.secret_key", "s3cret", false).unwrap();
        let found = pending(&config, &status);
        assert_eq!(found.len(), 2, "{found:?}");
        let workers = found
            .iter()
            .find(|p| p.key == "omero.web.wsgi_workers")
            .unwrap();
        assert_eq!(workers.describe(), "omero.web.wsgi_workers 5 → 3");
        assert_eq!(workers.applies_with, "reload");
        let secret = found
            .iter()
            .find(|p| p.key == "omero.web.secret_key")
            .unwrap();
        assert!(!secret.saved.contains("s3cret"), "{secret:?}");
        config
            .set("omero.web.application_server.port", "4090", false)
            .unwrap();
        let note = pending_note(&pending(&config, &status)).unwrap();
        assert!(
            note.starts_with("saved, not applied (restart applies it): "),
            "{note}"
        );
        // On an OMERO.web site a Gunicorn flag needs a restart, even a timeout.
        let mut config = Config::load(&site).unwrap();
        let status = status_running(&config, SiteKind::OmeroWeb);
        config.set("omero.web.wsgi_timeout", "90", false).unwrap();
        assert_eq!(pending(&config, &status)[0].applies_with, "restart");
        // A pool that does not report what it runs: nothing can be said.
        let mut silent = status;
        silent.applied.clear();
        assert!(pending(&config, &silent).is_empty());
    }
}

/// The status code of `GET path` on `address` (`host:port`), one HTTP/1.0 request with
/// bounded waits: the readiness and health probes of starts, switches and fleets.
pub fn http_status(address: &str, path: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    use std::time::Duration;
    let addr = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
}

/// PIDs as a sentence lists them: `101, 102, 103`.
pub fn pid_list(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
