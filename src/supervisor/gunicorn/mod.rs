//! A real OMERO.web (Python/Django) under Gunicorn as a [`Supervisor`]. `start` runs
//! what `omero web start` runs (collectstatic, clearsessions, then Gunicorn with
//! OMERO's argv and environment) plus a per-site control socket and an access log
//! that names each request's worker; it says `[OK]` only once the workers answer HTTP.
//! Control goes through Gunicorn's control socket, with signals as the fallback for a
//! master that `omero web start` started without one. The pid file is OMERO's
//! `var/django.pid`, so `omero web stop` and existing units keep working beside us.
//! Each command lives in a file of its own (`start`, `stop`, `status`, `reload`,
//! `scale`); `master` finds the master and what a dead one left, `counting` keeps what
//! a start remembers, `run_python` runs the site's Python. This file holds the
//! supervisor type, what the commands share, and the dispatch of [`Supervisor`].

pub mod apps;
mod argv;
mod checks;
pub mod control;
mod counting;
mod generation;
pub mod logs;
mod master;
pub mod process;
pub mod python;
mod reload;
mod run_python;
mod scale;
pub mod sessions;
mod start;
mod status;
mod stop;
mod upgrade;
pub mod venvs;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::Signal;

pub use argv::{ACCESS_LOG_NAME, ADDED_FLAGS, ERROR_LOG_NAME, GunicornLogs};
pub use checks::gthread_note;
// What the commands share, named here as the files beside them (generation.rs among
// them) read it: `super::Master`, `super::wait_gone`, ...
use crate::proc::process::wait_gone;
use counting::{Counting, file_len};
use master::Master;
use run_python::last_lines;
use start::{check_port, http_status};
// generation.rs reads the PID list of a message as `super::join`.
use super::pid_list as join;

use super::{
    Backend, ControlResponse, LogFile, LogFormat, Scale, StartOutcome, StatusOutcome, StopOutcome,
    Supervisor,
};
use crate::config::{Config, Settings};
use crate::site::{Site, SiteKind};

/// How long one control-socket exchange may take.
const CTL_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of Gunicorn's error log shown when something failed.
const TAIL_LINES: usize = 12;
/// Lines of Gunicorn's error log searched for how the last master ended (a traceback
/// of a failed boot is some 40 lines).
const HALT_LINES: usize = 400;

/// A user to run the site's Python as: the site's owner, found and dropped to by the
/// one privilege rule (`crate::privilege`).
type RunAs = crate::privilege::Owner;

/// Whether a change of `key` needs a restart of Gunicorn: the registry says which
/// properties are on its command line, which a HUP keeps (`wsgi_workers` is applied
/// after a reload with `worker add`).
pub fn needs_restart(key: &str) -> bool {
    crate::config::registry::lookup(key)
        .and_then(|p| p.gunicorn)
        .is_some_and(|how| how.needs_restart())
}

/// The keys of [`needs_restart`] properties.
fn restart_properties() -> impl Iterator<Item = &'static str> {
    crate::config::registry::PROPERTIES
        .iter()
        .filter(|p| p.gunicorn.is_some_and(|how| how.needs_restart()))
        .map(|p| p.key)
}

pub struct Gunicorn {
    site: Site,
    /// Log figures of the master they were read for; kept between calls so the panel
    /// reads only what is new.
    counters: Mutex<Option<Counting>>,
    /// The last check that the saved config loads (kept per change of the file).
    load_check: Mutex<Option<checks::LoadCheck>>,
}

impl Gunicorn {
    pub fn new(site: Site) -> Gunicorn {
        Gunicorn {
            site,
            counters: Mutex::new(None),
            load_check: Mutex::new(None),
        }
    }

    fn settings(&self) -> Result<Settings, String> {
        Config::load(&self.site)
            .map(|c| c.settings())
            .map_err(|e| e.to_string())
    }

    fn socket(&self) -> PathBuf {
        self.site.gunicorn_control_socket()
    }

    /// The error log of the running configuration (for failure reports).
    fn error_log(&self, settings: Option<&Settings>) -> Option<PathBuf> {
        match settings {
            Some(s) => argv::logs(s).error,
            None => Some(self.site.default_log_dir().join(ERROR_LOG_NAME)),
        }
    }

    fn error_tail(&self, settings: Option<&Settings>) -> Vec<String> {
        self.error_log(settings)
            .and_then(|path| crate::logging::tail_lines(path, TAIL_LINES).ok())
            .unwrap_or_default()
    }
}

impl Supervisor for Gunicorn {
    fn site(&self) -> &Site {
        &self.site
    }

    fn backend(&self) -> Backend {
        let configured = self.settings().ok().and_then(|s| s.python);
        match python::inspect(configured.as_deref()) {
            Ok(env) => Backend {
                kind: SiteKind::OmeroWeb,
                versions: env.versions,
                problem: None,
            },
            Err(e) => Backend {
                kind: SiteKind::OmeroWeb,
                versions: Default::default(),
                problem: Some(e.to_string()),
            },
        }
    }

    fn start(&self) -> StartOutcome {
        self.start_gunicorn()
    }

    fn stop(&self, quick: bool) -> anyhow::Result<StopOutcome> {
        self.stop_gunicorn(quick)
    }

    fn status(&self) -> anyhow::Result<StatusOutcome> {
        self.read_status()
    }

    fn reload(&self) -> anyhow::Result<ControlResponse> {
        self.reload_gunicorn()
    }

    fn scale(&self, change: Scale) -> anyhow::Result<ControlResponse> {
        self.scale_gunicorn(change)
    }

    fn kill_worker(&self, worker: u32) -> anyhow::Result<ControlResponse> {
        self.kill_gunicorn_worker(worker)
    }

    fn reopen_logs(&self) -> anyhow::Result<ControlResponse> {
        let pid = self.running()?;
        if control::call(&self.socket(), "reopen", CTL_TIMEOUT).is_err() {
            self.signal(pid, Signal::SIGUSR1)?;
        }
        Ok(ControlResponse::ok("Gunicorn reopens its log files."))
    }

    fn rollback(&self) -> anyhow::Result<ControlResponse> {
        self.roll_back_config()
    }

    fn rollback_target(&self) -> Option<String> {
        crate::supervisor::history::previous_config(&self.site)
            .is_file()
            .then(|| {
                "the config the generation before ran with (var/generations/previous.config)"
                    .to_string()
            })
    }

    /// The worker class and the Python must be ones the venv can run.
    fn vet_setting(&self, config: &Config, key: &str) -> Result<Option<String>, String> {
        match key {
            "omero.web.wsgi_worker_class" | "omero.web.python" => self.vet_worker_class(config),
            _ => Ok(None),
        }
    }

    /// `gthread`, which we run and `omero web start` refuses.
    fn settings_warnings(&self, settings: &Settings) -> Vec<String> {
        (settings.worker_class == crate::config::WorkerClass::Gthread)
            .then(checks::gthread_note)
            .into_iter()
            .collect()
    }

    fn log_files_with(&self, settings: Option<&Settings>) -> Vec<LogFile> {
        log_files(&self.site, settings)
    }

    fn pid_file(&self) -> PathBuf {
        self.site.django_pid_file()
    }

    fn saved_config_check(&self, wait: Duration) -> super::ConfigCheck {
        self.check_saved_config(wait)
    }

    fn restart_without_gap(&self) -> anyhow::Result<Option<ControlResponse>> {
        if !matches!(self.master(), Master::Running(_)) {
            return Ok(None);
        }
        self.switch_generation("restart")
    }
}

/// OMEROweb.log, then Gunicorn's error and access logs (unless `wsgi_args` sends them
/// to stdio). Django's OMEROweb.log is always under var/log: OMERO builds its logging
/// from $OMERODIR before it reads omero.web.logdir.
pub fn log_files(site: &Site, settings: Option<&Settings>) -> Vec<LogFile> {
    let mut files = vec![LogFile {
        label: "OMEROweb.log",
        path: site.default_log_dir().join(crate::logging::LOG_FILE_NAME),
        format: LogFormat::Omero,
    }];
    let logs = match settings {
        Some(s) => argv::logs(s),
        None => GunicornLogs {
            error: Some(site.default_log_dir().join(ERROR_LOG_NAME)),
            access: Some(site.default_log_dir().join(ACCESS_LOG_NAME)),
        },
    };
    if let Some(path) = logs.error {
        files.push(LogFile {
            label: "Gunicorn error log",
            path,
            format: LogFormat::GunicornError,
        });
    }
    if let Some(path) = logs.access {
        files.push(LogFile {
            label: "Gunicorn access log",
            path,
            format: LogFormat::GunicornAccess,
        });
    }
    files
}
