//! Replacing a running OMERO.web without a gap: blue/green behind the private nginx.
//!
//! A Gunicorn HUP ends the old workers as soon as the new ones are forked, before
//! Django has loaded in them: measured under `ab -c 8` through nginx, no request was
//! served for over 2 s. Instead a **new generation** (a second Gunicorn master) starts
//! beside the live one and the front moves only once every new worker has answered:
//! the steps are `supervisor::switch::run`, shared with the embedded pool; this file is
//! the Gunicorn kind's part ([`Generations`]):
//!
//! - the interim generation has its own pid file and control socket under
//!   `var/generations/interim/` and the saved config; it boots at a low priority and
//!   is ready once each of its workers has answered a readiness request on its bind
//!   (its PID shows in the access log);
//! - a caller's check on the new bind (`before_switch`: an app's URL, the session
//!   store) and watch after the switch (`after_switch`: the health window of an
//!   upgrade) come in as closures;
//! - back on the configured port the generation runs with OMERO's own command line
//!   (`var/django.pid`, `var/gunicorn.ctl`).
//!
//! Going back to the configured port costs a second boot, but afterwards everything
//! is as after a start: `var/django.pid` names the live master (OMERO's tools and
//! systemd's PIDFile read it), the port is `application_server.port` (a system nginx
//! pointing there keeps working).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::python::PythonEnv;
use super::{Gunicorn, RunAs, argv, last_lines, process, wait_gone};
use crate::config::{Config, Settings};
use crate::proc::pidfile::read_pid;
use crate::supervisor::history;
use crate::supervisor::progress::Progress;
use crate::supervisor::{ControlResponse, Supervisor, switch};

/// The niceness a new generation boots with (see `boot_generation`).
const BOOT_NICENESS: i32 = 10;

/// While it lives, this thread (and what it starts: import checks, collectstatic,
/// Gunicorn) runs at [`BOOT_NICENESS`], so that the Django starts of a change do not
/// slow the requests being served. Only as root, which can go back to 0 (and gives
/// each new generation its normal priority once it is ready).
pub(super) struct NicedWhileChanging(Option<i32>);

impl NicedWhileChanging {
    pub(super) fn new() -> NicedWhileChanging {
        if !nix::unistd::geteuid().is_root() {
            return NicedWhileChanging(None);
        }
        // (nix has no wrapper for the process priority.)
        // SAFETY: getpriority has no memory-safety preconditions.
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        // SAFETY: setpriority has no memory-safety preconditions.
        let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BOOT_NICENESS) } == 0;
        NicedWhileChanging(done.then_some(before))
    }
}

impl Drop for NicedWhileChanging {
    fn drop(&mut self) {
        if let Some(before) = self.0 {
            // SAFETY: as above.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, before) };
        }
    }
}

/// A generation's own files.
pub(super) struct GenerationFiles {
    pub pid_file: PathBuf,
    pub control_socket: PathBuf,
}

impl Gunicorn {
    fn interim_files(&self) -> GenerationFiles {
        let dir = self.site.var_dir().join("generations").join("interim");
        GenerationFiles {
            pid_file: dir.join("django.pid"),
            control_socket: dir.join("gunicorn.ctl"),
        }
    }

    /// Whether a change can go blue/green: a private nginx runs in front of the site.
    pub(super) fn front_is_ours(&self) -> bool {
        crate::supervisor::front::is_ours(&self.site)
    }

    /// Runs Gunicorn (it daemonizes with -D) in a session of its own; returns once the
    /// launcher has exited. `Err` carries the reason and the last lines it printed.
    pub(super) fn launch(
        &self,
        settings: &Settings,
        python: &PythonEnv,
        run_as: Option<&RunAs>,
        args: Vec<OsString>,
        niceness: i32,
    ) -> Result<(), (String, Vec<String>)> {
        let mut command = python.gunicorn_command();
        command.extend(args);
        let mut cmd = self.python_command(settings, python, run_as, &command);
        // Gunicorn daemonizes itself (-D); a new session first keeps it clear of this
        // terminal even before it does.
        crate::proc::process::detach(&mut cmd);
        // SAFETY: setpriority is async-signal-safe and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if niceness != 0 && libc::setpriority(libc::PRIO_PROCESS, 0, niceness) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        match process::output_with_deadline(&mut cmd, Duration::from_secs(60)) {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => {
                let mut tail = last_lines(&out.stderr, super::TAIL_LINES);
                let reason = tail
                    .pop()
                    .unwrap_or_else(|| format!("Gunicorn exited with {}", out.status));
                Err((format!("Gunicorn did not start: {reason}"), tail))
            }
            Err(e) => Err((format!("cannot run Gunicorn: {e}"), vec![])),
        }
    }

    /// Replaces the running master by a new generation with the saved config, moving
    /// the private nginx's upstream only when every new worker answers. `Ok(None)`:
    /// no private nginx runs, so there is no front to switch (the caller falls back).
    /// `action` names the change in the history.
    pub(super) fn switch_generation(
        &self,
        action: &str,
    ) -> anyhow::Result<Option<ControlResponse>> {
        self.switch_generation_checked(action, &|_| Ok(()))
    }

    /// As [`Gunicorn::switch_generation_watched`], with nothing to watch after the switch.
    pub(super) fn switch_generation_checked(
        &self,
        action: &str,
        before_switch: &dyn Fn(&Settings) -> Result<(), String>,
    ) -> anyhow::Result<Option<ControlResponse>> {
        self.switch_generation_watched(action, before_switch, &|_, _| Ok(()))
    }

    /// As [`Gunicorn::switch_generation`], with a last step once the new generation
    /// serves on its own bind and before the front moves to it (given that bind's
    /// settings): an app's URL requested there, the session store cleared. Its `Err`
    /// ends the new generation unswitched, and says why.
    ///
    /// `after_switch` (the health window, its figures put in the switch's progress)
    /// runs once the front serves the new
    /// generation while the old one still runs, drained from the front but alive. Its
    /// `Err` switches the front straight back to the old one (with the config as the
    /// call left it: a caller puts its old config back first) and ends the new one:
    /// users meet the bad generation only for the time it took to see it fail.
    pub(super) fn switch_generation_watched(
        &self,
        action: &str,
        before_switch: &dyn Fn(&Settings) -> Result<(), String>,
        after_switch: &dyn Fn(&Settings, &mut Progress) -> Result<(), String>,
    ) -> anyhow::Result<Option<ControlResponse>> {
        if !self.front_is_ours() {
            return Ok(None);
        }
        let applied = Config::load(&self.site)
            .map(|config| {
                crate::supervisor::pending_against(
                    &config,
                    &self.record().applied,
                    crate::site::SiteKind::OmeroWeb,
                )
                .iter()
                .map(crate::supervisor::Pending::describe)
                .collect()
            })
            .unwrap_or_default();
        let mut change = history::change(action, applied);
        change.from_master = match self.master() {
            super::Master::Running(pid) => Some(pid),
            _ => None,
        };
        let steps = switch::steps("generation");
        let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
        let mut progress = Progress::begin(&self.site, action, &steps);
        let reply = {
            let _niced = NicedWhileChanging::new();
            self.switch_to_new_generation(action, before_switch, after_switch, &mut progress)
        };
        change.to_master = match self.master() {
            super::Master::Running(pid) => Some(pid),
            _ => None,
        };
        match &reply {
            Ok(reply) if reply.ok => {
                change.outcome = match history::keep_config(&self.site) {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("ok, but its config could not be kept for rollback: {e}"),
                };
            }
            Ok(reply) => change.outcome = reply.message.clone(),
            Err(e) => change.outcome = format!("{e:#}"),
        }
        change.rollback_available = history::previous_config(&self.site).is_file();
        switch::finish(&self.site, &mut progress, change);
        reply.map(Some)
    }

    /// Puts back the config the previous generation ran with and switches to a
    /// generation running it. If that switch fails, the config file is restored, so
    /// the failed rollback loses nothing.
    pub(super) fn roll_back_config(&self) -> anyhow::Result<ControlResponse> {
        let previous = history::previous_config(&self.site);
        let Ok(before) = std::fs::read(&previous) else {
            return Ok(ControlResponse::failed(format!(
                "nothing to roll back to: no earlier generation's config was kept ({} is missing)",
                previous.display()
            )));
        };
        if !self.front_is_ours() {
            return Ok(ControlResponse::failed(
                "rollback switches generations behind the private nginx, and none runs (omero-webctl nginx start)",
            ));
        }
        self.running()?;
        let config_file = self.site.config_file();
        let now = std::fs::read(&config_file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", config_file.display()))?;
        crate::fsutil::write_atomic(&config_file, &before, None)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", config_file.display()))?;
        let reply = self
            .switch_generation("rollback")?
            .unwrap_or_else(|| ControlResponse::failed("the private nginx stopped meanwhile"));
        if !reply.ok {
            crate::fsutil::write_atomic(&config_file, &now, None).map_err(|e| {
                anyhow::anyhow!(
                    "the rollback failed ({}) and {} could not be restored: {e}",
                    reply.message,
                    config_file.display()
                )
            })?;
            return Ok(ControlResponse::failed(format!(
                "rollback failed, the config file is as it was: {}",
                reply.message
            )));
        }
        Ok(ControlResponse::ok(format!(
            "Rolled back to the previous generation's config. {}",
            reply.message
        )))
    }

    fn switch_to_new_generation(
        &self,
        action: &str,
        before_switch: &dyn Fn(&Settings) -> Result<(), String>,
        after_switch: &dyn Fn(&Settings, &mut Progress) -> Result<(), String>,
        progress: &mut Progress,
    ) -> anyhow::Result<ControlResponse> {
        let old = self.running()?;
        let settings = self.settings().map_err(|e| anyhow::anyhow!(e))?;
        let python = super::python::inspect(settings.python.as_deref())?;
        let run_as = self.run_as(&python).map_err(|e| anyhow::anyhow!(e))?;
        // One change at a time, and never beside a start.
        let _lock = self.start_lock()?;
        // No separate import check and no collectstatic here: each is a whole Django
        // start, which on a small machine slows the requests being served, and the
        // boot of the new generation is the import check (a generation whose workers
        // cannot load the app is ended before any switch). The venv, hence the static
        // files, did not change.
        let generations = Generations {
            gunicorn: self,
            boot: Duration::from_secs(settings.boot_timeout.max(30) + 60),
            graceful: settings.graceful_timeout,
            python,
            run_as,
            before_switch,
            after_switch,
        };
        switch::run(&self.site, &generations, action, old, progress, 0)
    }

    /// Starts one generation and waits until every worker of it has answered on its
    /// bind; a generation that does not get there is ended. Returns its master.
    fn boot_generation(
        &self,
        settings: &Settings,
        python: &PythonEnv,
        run_as: Option<&RunAs>,
        files: &GenerationFiles,
        limit: Duration,
    ) -> Result<u32, String> {
        let _ = std::fs::remove_file(&files.pid_file);
        super::check_port(settings)?;
        let access_log = argv::logs(settings).access;
        let offset = super::file_len(access_log.as_deref());
        let args = argv::gunicorn_args_with(settings, &files.pid_file, &files.control_socket);
        // Django's import is seconds of CPU per worker: booted at a low priority, the
        // new generation does not slow the requests the live one serves on a small
        // machine. Only root can raise the priority back once it is ready, so only
        // then is it lowered at all.
        let niceness = if nix::unistd::geteuid().is_root() {
            BOOT_NICENESS
        } else {
            0
        };
        if let Err((reason, tail)) = self.launch(settings, python, run_as, args, niceness) {
            return Err(format!("{reason} {}", tail.join(" / ")));
        }
        let readiness = format!(
            "{}/webclient/login/",
            settings.prefix.as_deref().unwrap_or("")
        );
        match wait_every_worker(
            settings,
            files,
            access_log.as_deref(),
            offset,
            &readiness,
            limit,
        ) {
            Ok(pid) if niceness == 0 => Ok(pid),
            Ok(pid) => {
                let mut pids = vec![pid];
                pids.extend(process::children(pid));
                for pid in pids {
                    reset_priority(pid).map_err(|e| {
                        format!("cannot give PID {pid} of the new generation its normal priority back: {e}")
                    })?;
                }
                Ok(pid)
            }
            Err(reason) => {
                let pid = read_pid(&files.pid_file).ok().flatten();
                if let Some(pid) = pid {
                    self.end_generation(files, pid, 5);
                }
                for pid in process::site_gunicorn_processes(&files.pid_file) {
                    let _ = self.signal(pid, Signal::SIGKILL);
                }
                // Gunicorn's own account: why its master halted and the exception
                // (the failing import) before it.
                // (A master that is going writes its last lines as it goes: a moment.)
                let read_halt = || {
                    self.error_log(Some(settings))
                        .and_then(|log| crate::logging::tail_lines(log, super::HALT_LINES).ok())
                        .and_then(|lines| super::logs::last_halt(&lines))
                };
                let deadline = Instant::now() + Duration::from_secs(3);
                let mut halt = read_halt();
                while halt.is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                    halt = read_halt();
                }
                Err(match halt {
                    Some(halt) => match halt.error {
                        Some(error) => format!("{reason}: {} {error}", halt.reason),
                        None => format!("{reason}: {}", halt.reason),
                    },
                    // Stopped before it wrote why it halted: the traceback its worker
                    // left since it started still names the cause.
                    None => {
                        let tail = self
                            .error_log(Some(settings))
                            .and_then(|log| crate::logging::tail_lines(log, super::HALT_LINES).ok())
                            .unwrap_or_default();
                        let since = super::logs::since_last_start(&tail);
                        match (super::logs::last_exception(since), since.last()) {
                            (Some(error), _) => format!("{reason}: {error}"),
                            (None, Some(line)) => format!("{reason}; Gunicorn's log: {line}"),
                            (None, None) => reason,
                        }
                    }
                })
            }
        }
    }

    /// Gracefully stops the generation whose master is `pid` (TERM, then KILL after
    /// `graceful` + 10 s), and everything still running with its pid file.
    fn end_generation(&self, files: &GenerationFiles, pid: u32, graceful: u64) {
        if process::is_site_gunicorn(pid, &files.pid_file) {
            let _ = self.signal(pid, Signal::SIGTERM);
            if !wait_gone(pid, Duration::from_secs(graceful + 10)) {
                let _ = self.signal(pid, Signal::SIGKILL);
            }
        }
        for left in process::site_gunicorn_processes(&files.pid_file) {
            let _ = self.signal(left, Signal::SIGKILL);
            wait_gone(left, Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(&files.pid_file);
    }
}

/// The Gunicorn kind's part of a switch (`supervisor::switch`): Gunicorn masters
/// with the saved config, booted at a low priority, each ready once every worker has
/// answered on its bind.
struct Generations<'a> {
    gunicorn: &'a Gunicorn,
    python: PythonEnv,
    run_as: Option<RunAs>,
    /// How long a generation may take to boot.
    boot: Duration,
    graceful: u64,
    before_switch: &'a dyn Fn(&Settings) -> Result<(), String>,
    after_switch: &'a dyn Fn(&Settings, &mut Progress) -> Result<(), String>,
}

impl switch::Generations for Generations<'_> {
    fn noun(&self) -> &'static str {
        "generation"
    }

    fn new_one(&self) -> &'static str {
        "generation"
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        self.gunicorn.settings().map_err(|e| anyhow::anyhow!(e))
    }

    fn prepare_interim(&self) -> anyhow::Result<()> {
        let interim = self.gunicorn.interim_files();
        let dir = interim.pid_file.parent().expect("in a directory");
        self.gunicorn
            .create_dir(dir, self.run_as.as_ref())
            .map_err(|reason| {
                anyhow::anyhow!("cannot create {}: {reason}", interim.pid_file.display())
            })
    }

    fn start_interim(&self, interim: &Settings) -> Result<u32, switch::NotUp> {
        self.gunicorn
            .boot_generation(
                interim,
                &self.python,
                self.run_as.as_ref(),
                &self.gunicorn.interim_files(),
                self.boot,
            )
            .map_err(switch::NotUp::Failed)
    }

    fn before_switch(&self, interim: &Settings) -> Result<(), String> {
        (self.before_switch)(interim)
    }

    fn watch(&self, interim: &Settings, progress: &mut Progress) -> Result<(), String> {
        (self.after_switch)(interim, progress)
    }

    fn drain_live(&self) -> anyhow::Result<String> {
        self.gunicorn.stop(false)?;
        Ok(String::new())
    }

    fn start_live(&self, settings: &Settings) -> Result<u32, String> {
        let gunicorn = self.gunicorn;
        // OMERO's own command line: `var/django.pid`, `var/gunicorn.ctl`.
        let live = GenerationFiles {
            pid_file: gunicorn.site.django_pid_file(),
            control_socket: gunicorn.socket(),
        };
        // What we start is recorded before it starts, and named once it answers: from
        // the moment its pid file appears, `status`, `diagnostics` and the panel count it
        // as ours (written only at the end, a master they met meanwhile stayed "not
        // started by omero-webctl" in the panel for good).
        let mut record = gunicorn.start_record(settings);
        record.applied = Config::load(&gunicorn.site)
            .map(|c| c.applied_values())
            .unwrap_or_default();
        gunicorn.write_record(&record);
        let master = gunicorn.boot_generation(
            settings,
            &self.python,
            self.run_as.as_ref(),
            &live,
            self.boot,
        )?;
        record.master_pid = Some(master);
        gunicorn.write_record(&record);
        Ok(master)
    }

    fn end_interim(&self, master: u32) {
        self.gunicorn
            .end_generation(&self.gunicorn.interim_files(), master, self.graceful);
    }

    fn runs(&self) -> String {
        self.python.python.display().to_string()
    }

    fn ran_by(&self, old: u32) -> Option<String> {
        // The old master may run another venv (an upgrade): its own interpreter says.
        process::cmdline(old).into_iter().next()
    }

    fn switched(&self, new_master: u32, settings: &Settings, old: u32, took: Duration) -> String {
        format!(
            "Switched without a gap: new generation (master PID {}, workers {}) on {} serves through the private nginx; the old one (PID {}) was drained and stopped ({:.1} s).",
            new_master,
            super::join(&self.gunicorn.worker_pids(new_master)),
            settings.bind(),
            old,
            took.as_secs_f64()
        )
    }
}

/// Waits until the generation's master (from its pid file) has its workers and each
/// of them has answered a readiness GET on the generation's bind (the worker PID of
/// every answer is in the access log). Without an access log we can read, every one
/// of as many concurrent GETs as workers must answer instead.
fn wait_every_worker(
    settings: &Settings,
    files: &GenerationFiles,
    access_log: Option<&Path>,
    offset: u64,
    readiness: &str,
    limit: Duration,
) -> Result<u32, String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer yet");
    let mut seen_master = None;
    loop {
        match read_pid(&files.pid_file).ok().flatten() {
            Some(pid) if process::is_site_gunicorn(pid, &files.pid_file) => {
                seen_master = Some(pid);
                let workers = process::children(pid);
                if workers.len() as u32 >= settings.workers {
                    let codes = concurrent_gets(settings, readiness, workers.len());
                    match codes.iter().find(|c| !matches!(c, Ok(code) if *code < 500)) {
                        // A worker that answers has loaded the app: a server error is
                        // the new generation's own, and waiting does not mend it.
                        Some(Ok(code)) => {
                            return Err(format!("GET {readiness} on its bind answered {code}"));
                        }
                        Some(Err(e)) => last = format!("GET {readiness}: {e}"),
                        None => {
                            let answered = match access_log {
                                Some(log) => answered_pids(log, offset),
                                None => workers.clone(),
                            };
                            if workers.iter().all(|w| answered.contains(w)) {
                                return Ok(pid);
                            }
                            last = format!(
                                "{} of {} workers answered",
                                workers.iter().filter(|w| answered.contains(w)).count(),
                                workers.len()
                            );
                        }
                    }
                }
            }
            // Gone for good only once the process is: a halting master still writes
            // why (and its pid file read may race its removal).
            _ if seen_master.is_some_and(|pid| !crate::proc::is_alive(pid)) => {
                return Err("the new Gunicorn master exited while booting".into());
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not every worker answered within {}s ({last})",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` GETs of `path` at once on the application server; their status codes.
fn concurrent_gets(settings: &Settings, path: &str, n: usize) -> Vec<std::io::Result<u16>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n.max(1))
            .map(|_| scope.spawn(|| super::http_status(settings, path)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("panicked")))
            })
            .collect()
    })
}

/// Worker PIDs in the access log from `offset` on.
fn answered_pids(log: &Path, offset: u64) -> Vec<u32> {
    use std::io::{Read, Seek};
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(log) {
        let _ = file.seek(std::io::SeekFrom::Start(offset));
        let _ = file.read_to_string(&mut text);
    }
    let mut pids: Vec<u32> = text
        .lines()
        .filter_map(super::logs::parse_access)
        .map(|line| line.pid)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Niceness 0 for every thread of `pid` (setpriority acts on one thread on Linux).
fn reset_priority(pid: u32) -> std::io::Result<()> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))?;
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        // SAFETY: setpriority has no memory-safety preconditions.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            // A thread that ended meanwhile needs nothing.
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e);
            }
        }
    }
    Ok(())
}
