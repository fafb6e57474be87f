//! A real OMERO.web (Python/Django) under Gunicorn as a [`Supervisor`]. `start` runs
//! what `omero web start` runs (collectstatic, clearsessions, then Gunicorn with
//! OMERO's argv and environment) plus a per-site control socket and an access log
//! that names each request's worker; it says `[OK]` only once the workers answer HTTP.
//! Control goes through Gunicorn's control socket, with signals as the fallback for a
//! master that `omero web start` started without one. The pid file is OMERO's
//! `var/django.pid`, so `omero web stop` and existing units keep working beside us.

pub mod apps;
mod argv;
mod checks;
pub mod control;
mod generation;
pub mod history;
pub mod logs;
pub mod process;
pub mod python;
pub mod sessions;
mod upgrade;
pub mod venvs;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

pub use argv::{ACCESS_LOG_NAME, ADDED_FLAGS, ERROR_LOG_NAME, GunicornLogs};
pub use checks::gthread_note;
use logs::{LogCounters, LogStart};
use python::PythonEnv;

use super::{
    Backend, ControlResponse, LogFile, LogFormat, PoolStatus, Scale, StartOutcome, StatusOutcome,
    StopOutcome, Supervisor, WorkerStatus,
};
use crate::config::{AppServer, Config, Settings};
use crate::site::{Site, SiteKind};
use crate::status::{ServerState, WorkerState};

/// How long one control-socket exchange may take.
const CTL_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of Gunicorn's error log shown when something failed.
const TAIL_LINES: usize = 12;
/// Lines of Gunicorn's error log searched for how the last master ended (a traceback
/// of a failed boot is some 40 lines).
const HALT_LINES: usize = 400;

/// The master of a site as its pid file and `/proc` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Master {
    Running(u32),
    Stale(Option<u32>),
    NotRunning,
}

/// A user to run the site's Python as: the site's owner, found and dropped to by the
/// one privilege rule (`crate::privilege`).
type RunAs = crate::privilege::Owner;

/// What `start` remembers so later calls (other processes too) count from the start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StartRecord {
    master_pid: Option<u32>,
    access_log: Option<PathBuf>,
    access_offset: u64,
    /// Inode of the access log then, to find it again after a rotation.
    #[serde(default)]
    access_inode: Option<u64>,
    error_log: Option<PathBuf>,
    error_offset: u64,
    #[serde(default)]
    error_inode: Option<u64>,
    /// Set when the master was not started by omero-webctl: counts begin here.
    #[serde(default)]
    counting_since: Option<String>,
    /// The properties as the running master applied them (see
    /// `Config::applied_values`); empty for a master omero-webctl did not start.
    #[serde(default)]
    applied: BTreeMap<String, String>,
}

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

/// The counting of one master: what it was started (or first seen) with, and the
/// counters reading its logs from there.
struct Counting {
    pid: u32,
    record: StartRecord,
    counters: LogCounters,
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

    /// See [`super::vet_setting`].
    pub fn vet_setting(&self, config: &Config, key: &str) -> Result<Option<String>, String> {
        match key {
            "omero.web.wsgi_worker_class" | "omero.web.python" => self.vet_worker_class(config),
            _ => Ok(None),
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

    /// Who holds `var/django.pid`. Gunicorn rewrites it during a reload (unlink, then
    /// create), so a missing file is checked against the control socket too.
    fn master(&self) -> Master {
        let pid_file = self.site.django_pid_file();
        match std::fs::read_to_string(&pid_file) {
            Ok(text) => match text.trim().parse::<u32>() {
                Ok(pid) if process::is_site_gunicorn(pid, &pid_file) => Master::Running(pid),
                Ok(pid) => Master::Stale(Some(pid)),
                Err(_) => Master::Stale(None),
            },
            Err(_) => match control::stats(&self.socket(), Duration::from_secs(2)) {
                Ok(stats) if process::is_site_gunicorn(stats.pid, &pid_file) => {
                    Master::Running(stats.pid)
                }
                _ => Master::NotRunning,
            },
        }
    }

    fn record(&self) -> StartRecord {
        std::fs::read(self.site.gunicorn_state_file())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn write_record(&self, record: &StartRecord) {
        let bytes = serde_json::to_vec_pretty(record).expect("the record serialises");
        // Losing it only costs the counts' starting point; never fail a start for it.
        // Never through a symlink: root may write it into a directory another user owns.
        let _ = crate::fsutil::replace_atomic(&self.site.gunicorn_state_file(), &bytes);
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

    /// A command of the site's Python as OMERO runs them: in the package directory,
    /// with OMERO's environment, as the user `run_as` names.
    fn python_command(
        &self,
        settings: &Settings,
        python: &PythonEnv,
        run_as: Option<&RunAs>,
        argv: &[std::ffi::OsString],
    ) -> std::process::Command {
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).current_dir(argv::working_dir(python));
        if let Some(user) = run_as {
            // Nothing of root's environment crosses over (tokens, TMPDIR,
            // GUNICORN_CMD_ARGS, ...): only what a login of that user would have.
            // OMERO's own variables (OMERO_CONFIG picks the profile) do cross.
            cmd.env_clear();
            for (key, value) in std::env::vars_os() {
                let name = key.to_string_lossy();
                if ["PATH", "LANG", "LC_ALL", "TZ"].contains(&name.as_ref())
                    || name.starts_with("OMERO_")
                {
                    cmd.env(&key, value);
                }
            }
            cmd.env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
            let (uid, gid) = (user.uid, user.gid);
            // Built here, before the fork: allocating between fork and exec is not
            // async-signal-safe (another thread may hold the allocator's lock).
            let groups: Vec<nix::unistd::Gid> = user
                .groups
                .iter()
                .map(|g| nix::unistd::Gid::from_raw(*g))
                .collect();
            // SAFETY: the closure runs between fork and exec, and makes only
            // async-signal-safe system calls (setgroups, setgid, setuid) on data made
            // before the fork; it allocates nothing (an errno becomes an io::Error
            // without allocating).
            unsafe {
                cmd.pre_exec(move || {
                    nix::unistd::setgroups(&groups).map_err(std::io::Error::from)?;
                    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))
                        .map_err(std::io::Error::from)?;
                    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))
                        .map_err(std::io::Error::from)?;
                    Ok(())
                });
            }
        }
        cmd.envs(argv::environment(&self.site, settings, python));
        cmd
    }

    /// Who runs the site's Python. As root, OMERO's rule holds (`omero` refuses to run
    /// as root): Python runs as the owner of the site's config.xml. A site root owns
    /// may not run an interpreter that another user owns (its code would run as root).
    fn run_as(&self, python: &PythonEnv) -> Result<Option<RunAs>, String> {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let owner = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.uid(), m.gid()));
        // The privilege rule drops a root command to the site's owner at dispatch, so
        // this is root's own site, unless the config.xml it follows belongs to a user.
        if let Some((uid, gid)) = owner(&self.site.config_file()).filter(|(uid, _)| *uid != 0) {
            return Ok(Some(RunAs::of_uid(uid, gid)));
        }
        if let Some(site_owner) = crate::privilege::site_owner(&self.site) {
            return Ok(Some(site_owner));
        }
        let venv = python::venv_root(&python.python).unwrap_or_else(|| python.python.clone());
        match owner(&venv) {
            Some((other, _)) if other != 0 => Err(format!(
                "{} belongs to uid {other} but this site belongs to root: omero-webctl does not run another user's Python as root (chown the site to that user, or run omero-webctl as that user)",
                venv.display()
            )),
            _ => Ok(None),
        }
    }

    /// Creates `dir` (and missing parents); what it creates belongs to `run_as`.
    fn create_dir(&self, dir: &std::path::Path, run_as: Option<&RunAs>) -> std::io::Result<()> {
        let Some(user) = run_as else {
            if !dir.is_dir() {
                crate::privilege::refuse_outside_site(self.site.root(), dir)?;
            }
            return std::fs::create_dir_all(dir);
        };
        if dir.is_dir() {
            return Ok(());
        }
        // As root for another user: only inside the site, and never handing over
        // something a link points at (lchown changes the link, not its target).
        if !dir.starts_with(self.site.root()) {
            return Err(std::io::Error::other(format!(
                "{} does not exist; as root, omero-webctl creates directories only inside the site (create it for {})",
                dir.display(),
                user.name
            )));
        }
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(d) = at.filter(|d| std::fs::symlink_metadata(d).is_err()) {
            missing.push(d.to_path_buf());
            at = d.parent();
        }
        for d in missing.iter().rev() {
            std::fs::create_dir(d)?;
            std::os::unix::fs::lchown(d, Some(user.uid), Some(user.gid))?;
        }
        Ok(())
    }

    /// Runs `python manage.py COMMAND` as OMERO does (in the package directory).
    fn manage(
        &self,
        settings: &Settings,
        python: &PythonEnv,
        run_as: Option<&RunAs>,
        args: &[&str],
        timeout: Duration,
    ) -> Result<(), (String, Vec<String>)> {
        let mut argv: Vec<std::ffi::OsString> =
            vec![python.python.clone().into(), "manage.py".into()];
        argv.extend(args.iter().map(std::ffi::OsString::from));
        let mut cmd = self.python_command(settings, python, run_as, &argv);
        let what = format!("manage.py {}", args.join(" "));
        match process::output_with_timeout(&mut cmd, timeout) {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err((
                format!("{what} failed ({})", out.status),
                last_lines(&out.stderr, TAIL_LINES),
            )),
            Err(e) => Err((format!("{what}: {e}"), Vec::new())),
        }
    }

    /// The record of a start about to launch: counting begins at the logs' ends now.
    fn start_record(&self, settings: &Settings) -> StartRecord {
        let logs = argv::logs(settings);
        StartRecord {
            master_pid: None,
            access_offset: file_len(logs.access.as_deref()),
            access_inode: logs.access.as_deref().and_then(logs::inode_of),
            error_offset: file_len(logs.error.as_deref()),
            error_inode: logs.error.as_deref().and_then(logs::inode_of),
            access_log: logs.access.clone(),
            error_log: logs.error.clone(),
            counting_since: None,
            applied: BTreeMap::new(),
        }
    }

    /// Counts from the logs of master `pid`, read since its start.
    fn figures<T>(&self, pid: u32, read: impl FnOnce(&logs::LogFigures, &StartRecord) -> T) -> T {
        let mut guard = self.counters.lock().expect("counters");
        // A master first met before the record of our start named it (a generation
        // switch writes it once the new master answers) was adopted as not ours: once
        // the record names it, it is ours, counted from our start.
        let named_since = |c: &Counting| {
            c.record.counting_since.is_some() && self.record().master_pid == Some(pid)
        };
        if guard
            .as_ref()
            .is_none_or(|c| c.pid != pid || named_since(c))
        {
            let record = self.adopt(pid);
            let counters = LogCounters::open_for(
                Some(pid),
                record.access_log.clone().map(|path| LogStart {
                    path,
                    offset: record.access_offset,
                    inode: record.access_inode,
                }),
                record.error_log.clone().map(|path| LogStart {
                    path,
                    offset: record.error_offset,
                    inode: record.error_inode,
                }),
            );
            *guard = Some(Counting {
                pid,
                record,
                counters,
            });
        }
        let counting = guard.as_mut().expect("just set");
        counting.counters.update();
        read(&counting.counters.figures, &counting.record)
    }

    /// The start record that counts apply to for master `pid`: ours (also while our
    /// start is still waiting for it), or, for a master omero-webctl did not start, a
    /// new one that counts from now on, remembered for later calls.
    fn adopt(&self, pid: u32) -> StartRecord {
        let record = self.record();
        match record.master_pid {
            Some(of) if of == pid => return record,
            None if record.access_log.is_some() || record.error_log.is_some() => return record,
            _ => {}
        }
        // Its own command line says where its logs go (`omero web start` gives none).
        let args = process::cmdline(pid);
        let access_log = flag_value(&args, "--access-logfile").map(|p| self.site.root().join(p));
        let error_log = flag_value(&args, "--error-logfile")
            .or_else(|| flag_value(&args, "--log-file"))
            .map(|p| self.site.root().join(p));
        let adopted = StartRecord {
            master_pid: Some(pid),
            access_offset: file_len(access_log.as_deref()),
            access_inode: access_log.as_deref().and_then(logs::inode_of),
            error_offset: file_len(error_log.as_deref()),
            error_inode: error_log.as_deref().and_then(logs::inode_of),
            access_log,
            error_log,
            counting_since: Some(chrono::Local::now().format("%Y-%m-%d %H:%M").to_string()),
            applied: BTreeMap::new(),
        };
        // Kept in memory only: read-only commands (status, the panel) write nothing.
        adopted
    }

    /// Waits until Gunicorn's workers number `target` and none of `old` is left.
    fn wait_for_workers(
        &self,
        master: u32,
        target: u32,
        old: &[u32],
        limit: Duration,
    ) -> Result<Vec<u32>, String> {
        let deadline = Instant::now() + limit;
        loop {
            if !crate::proc::is_alive(master) {
                return Err(format!("the Gunicorn master (PID {master}) exited"));
            }
            let pids = self.worker_pids(master);
            if pids.len() as u32 == target && !pids.iter().any(|p| old.contains(p)) {
                return Ok(pids);
            }
            if Instant::now() >= deadline {
                let left = pids.iter().filter(|p| old.contains(p)).count();
                return Err(if old.is_empty() {
                    format!(
                        "after {}s Gunicorn has {} workers, not {target}",
                        limit.as_secs(),
                        pids.len()
                    )
                } else {
                    format!(
                        "after {}s Gunicorn has {} workers ({left} of the old ones), not {target} new ones",
                        limit.as_secs(),
                        pids.len()
                    )
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Worker PIDs: from the control socket, else the master's children.
    fn worker_pids(&self, master: u32) -> Vec<u32> {
        match control::workers(&self.socket(), CTL_TIMEOUT) {
            Ok(workers) => workers.iter().map(|w| w.pid).collect(),
            Err(_) => process::children(master),
        }
    }

    fn signal(&self, pid: u32, signal: Signal) -> anyhow::Result<()> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .map_err(|e| anyhow::anyhow!("cannot send {signal} to Gunicorn (PID {pid}): {e}"))
    }

    /// Processes of this site's Gunicorn whose master is gone.
    /// Held for a whole start: a Gunicorn still booting (no pid file yet, its parent
    /// init after -D) must not be taken for one a dead master left, and two starts
    /// must not race.
    fn start_lock(&self) -> std::io::Result<nix::fcntl::Flock<std::fs::File>> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            // Root may open it in a directory another user owns: never through a link.
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.site.var_dir().join(".omero-webctl-start.lock"))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| std::io::Error::from(errno))
    }

    /// Whether another process is starting this site right now.
    fn start_in_progress(&self) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.site.var_dir().join(".omero-webctl-start.lock"))
        else {
            return false;
        };
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
    }

    /// Processes of this site's Gunicorn whose master is gone (none while a start
    /// runs: its Gunicorn is booting, not orphaned).
    fn orphans(&self) -> Vec<u32> {
        if self.start_in_progress() {
            return Vec::new();
        }
        self.orphans_now()
    }

    fn orphans_now(&self) -> Vec<u32> {
        // After its master died a worker's parent is init, so it reads like a master
        // itself: what counts is whether the pid file names a live master.
        let master = match self.master() {
            Master::Running(pid) => Some(pid),
            _ => None,
        };
        process::site_gunicorn_processes(&self.site.django_pid_file())
            .into_iter()
            .filter(|&pid| match master {
                Some(m) => pid != m && process::parent_of(pid) != Some(m),
                None => true,
            })
            .collect()
    }

    /// Ends what a dead master left: TERM, then KILL after 5 s. Returns their PIDs.
    fn end_orphans(&self) -> Vec<u32> {
        self.end(self.orphans())
    }

    fn end(&self, orphans: Vec<u32>) -> Vec<u32> {
        for &pid in &orphans {
            let _ = self.signal(pid, Signal::SIGTERM);
        }
        for &pid in &orphans {
            if !wait_gone(pid, Duration::from_secs(5)) {
                let _ = self.signal(pid, Signal::SIGKILL);
                wait_gone(pid, Duration::from_secs(5));
            }
        }
        orphans
    }

    /// How the last master ended, when Gunicorn's error log says it halted by itself
    /// ("Worker failed to boot": a worker started while the saved config could not
    /// load), with the saved changes it had not applied.
    fn halt(&self) -> Option<super::Halt> {
        let record = self.record();
        let settings = self.settings().ok();
        let log = record
            .error_log
            .clone()
            .or_else(|| self.error_log(settings.as_ref()))?;
        let lines = crate::logging::tail_lines(&log, HALT_LINES).ok()?;
        let found = logs::last_halt(&lines)?;
        let pending = Config::load(&self.site)
            .map(|config| super::pending_against(&config, &record.applied, SiteKind::OmeroWeb))
            .unwrap_or_default();
        Some(super::Halt {
            at: found.at,
            reason: found.reason,
            error: found.error,
            log,
            pending,
        })
    }

    fn running(&self) -> anyhow::Result<u32> {
        match self.master() {
            // It would answer nothing: say why rather than wait.
            Master::Running(pid) if process::state(pid) == Some('T') => anyhow::bail!(
                "the Gunicorn master (PID {pid}) is stopped (SIGSTOP): send it SIGCONT first"
            ),
            Master::Running(pid) => Ok(pid),
            _ => anyhow::bail!("OMERO.web is not running"),
        }
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
        let failed =
            |reason: String, log_tail: Vec<String>| StartOutcome::Failed { reason, log_tail };

        let settings = match self.settings() {
            Ok(s) => s,
            Err(e) => return failed(e, vec![]),
        };
        if settings.application_server != AppServer::WsgiTcp {
            return failed(
                format!(
                    "omero.web.application_server = {}: omero-webctl runs OMERO.web only as wsgi-tcp (Gunicorn)",
                    settings.application_server.as_str()
                ),
                vec![],
            );
        }
        let python = match python::inspect(settings.python.as_deref()) {
            Ok(p) => p,
            Err(e) => return failed(e.to_string(), vec![]),
        };
        let run_as = match self.run_as(&python) {
            Ok(user) => user,
            Err(reason) => return failed(reason, vec![]),
        };
        if let Err(e) = self.create_dir(&self.site.var_dir(), run_as.as_ref()) {
            return failed(
                format!("cannot create {}: {e}", self.site.var_dir().display()),
                vec![],
            );
        }
        // A second start waits here, then finds the first one's master running.
        let _starting = match self.start_lock() {
            Ok(lock) => lock,
            Err(e) => {
                return failed(
                    format!(
                        "cannot take the start lock in {}: {e}",
                        self.site.var_dir().display()
                    ),
                    vec![],
                );
            }
        };
        let stale_pid = match self.master() {
            Master::Running(pid) => return StartOutcome::AlreadyRunning { pid },
            Master::Stale(pid) => {
                let _ = std::fs::remove_file(self.site.django_pid_file());
                Some(pid.unwrap_or(0))
            }
            Master::NotRunning => None,
        };
        // Workers of a master killed with -9 still hold the port for a while. (This
        // start holds the lock, so what it finds is not another start's Gunicorn.)
        self.end(self.orphans_now());
        if let Err(reason) = check_port(&settings) {
            return failed(reason, vec![]);
        }
        for dir in [self.site.var_dir().join("lib"), settings.log_dir.clone()] {
            if let Err(e) = self.create_dir(&dir, run_as.as_ref()) {
                return failed(format!("cannot create {}: {e}", dir.display()), vec![]);
            }
        }
        let boot = Duration::from_secs(settings.boot_timeout.max(30) + 60);
        for args in [&["collectstatic", "--noinput"][..], &["clearsessions"][..]] {
            if let Err((reason, tail)) =
                self.manage(&settings, &python, run_as.as_ref(), args, boot)
            {
                return failed(reason, tail);
            }
        }

        let logs = argv::logs(&settings);
        let mut record = self.start_record(&settings);
        self.write_record(&record);

        let args = argv::gunicorn_args(&self.site, &settings);
        if let Err((reason, tail)) = self.launch(&settings, &python, run_as.as_ref(), args, 0) {
            return failed(reason, tail);
        }

        match self.wait_until_serving(&settings, &logs, boot) {
            Ok(pid) => {
                record.master_pid = Some(pid);
                record.applied = Config::load(&self.site)
                    .map(|c| c.applied_values())
                    .unwrap_or_default();
                // A log that did not exist before the start exists now: remember which
                // file counting began in, so a later rotation is recognised.
                record.access_inode = record
                    .access_inode
                    .or_else(|| record.access_log.as_deref().and_then(logs::inode_of));
                record.error_inode = record
                    .error_inode
                    .or_else(|| record.error_log.as_deref().and_then(logs::inode_of));
                self.write_record(&record);
                // What this generation runs with: the base a later rollback returns to.
                let mut change = history::change("start", Vec::new());
                change.to_master = Some(pid);
                change.outcome = match history::keep_config(&self.site) {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("ok, but its config could not be kept for rollback: {e}"),
                };
                change.rollback_available = history::previous_config(&self.site).is_file();
                history::record(&self.site, &change);
                let v = |k: &str| {
                    python
                        .versions
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| "?".into())
                };
                StartOutcome::Started {
                    pid,
                    detail: format!(
                        "{} {} workers on {} (OMERO.web {}, Gunicorn {})",
                        settings.workers,
                        settings.effective_worker_class().as_str(),
                        settings.bind(),
                        v("omero-web"),
                        v("gunicorn"),
                    ),
                    stale_pid,
                }
            }
            Err(reason) => {
                let _ = std::fs::remove_file(self.site.gunicorn_state_file());
                // Leave nothing behind that comes up after we said FAILED, even when
                // the pid file never appeared: every process with this site's pid file.
                if let Master::Running(pid) = self.master() {
                    let _ = self.signal(pid, Signal::SIGQUIT);
                    wait_gone(pid, Duration::from_secs(10));
                }
                for pid in process::site_gunicorn_processes(&self.site.django_pid_file()) {
                    let _ = self.signal(pid, Signal::SIGKILL);
                    wait_gone(pid, Duration::from_secs(5));
                }
                failed(reason, self.error_tail(Some(&settings)))
            }
        }
    }

    fn stop(&self, quick: bool) -> anyhow::Result<StopOutcome> {
        let pid = match self.master() {
            Master::Running(pid) => pid,
            stopped => {
                let orphans = self.end_orphans();
                if let Master::Stale(pid) = stopped {
                    let _ = std::fs::remove_file(self.site.django_pid_file());
                    return Ok(StopOutcome::Stale { pid });
                }
                return Ok(if orphans.is_empty() {
                    StopOutcome::NotRunning
                } else {
                    StopOutcome::Orphans { pids: orphans }
                });
            }
        };
        let graceful = self.settings().map(|s| s.graceful_timeout).unwrap_or(30);
        let workers: Vec<(u32, Option<u64>)> = process::children(pid)
            .into_iter()
            .map(|w| (w, crate::proc::process_start_time(w)))
            .collect();
        // Gunicorn: TERM = graceful, INT = quick.
        self.signal(
            pid,
            if quick {
                Signal::SIGINT
            } else {
                Signal::SIGTERM
            },
        )?;
        let limit = Duration::from_secs(if quick { 10 } else { graceful + 10 });
        let mut outcome = StopOutcome::Stopped { pid };
        if !wait_gone(pid, limit) {
            if process::is_site_gunicorn(pid, &self.site.django_pid_file()) {
                let _ = self.signal(pid, Signal::SIGKILL);
            }
            wait_gone(pid, Duration::from_secs(10));
            outcome = StopOutcome::Killed { pid };
        }
        // Workers leave when their master does; make sure, by identity, none stays.
        for (worker, started) in &workers {
            if started.is_some() && crate::proc::process_start_time(*worker) == *started {
                let deadline = Instant::now() + Duration::from_secs(5);
                while crate::proc::is_alive(*worker) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if crate::proc::process_start_time(*worker) == *started {
                    let _ = self.signal(*worker, Signal::SIGKILL);
                    outcome = StopOutcome::Killed { pid };
                }
            }
        }
        // Gunicorn removes its pid file; after a SIGKILL nobody did.
        let pid_file = self.site.django_pid_file();
        if std::fs::read_to_string(&pid_file).is_ok_and(|t| t.trim() == pid.to_string()) {
            let _ = std::fs::remove_file(&pid_file);
        }
        Ok(outcome)
    }

    fn status(&self) -> anyhow::Result<StatusOutcome> {
        let pid = match self.master() {
            Master::Running(pid) => pid,
            stopped => {
                let orphans = self.orphans();
                return Ok(match stopped {
                    Master::Stale(pid) => StatusOutcome::Stale { pid, orphans },
                    _ if !orphans.is_empty() => StatusOutcome::Stale { pid: None, orphans },
                    _ => match self.halt() {
                        Some(halt) => StatusOutcome::Halted(Box::new(halt)),
                        None => StatusOutcome::NotRunning,
                    },
                });
            }
        };
        let settings = self.settings().ok();
        let mut warnings = Vec::new();
        // A stopped master answers nothing: do not wait for it, say so.
        let stopped = process::state(pid) == Some('T');
        let asked = if stopped {
            warnings.push(format!(
                "the Gunicorn master (PID {pid}) is stopped (SIGSTOP): nothing supervises the workers until it gets SIGCONT"
            ));
            None
        } else {
            Some((
                control::stats(&self.socket(), CTL_TIMEOUT),
                control::workers(&self.socket(), CTL_TIMEOUT),
            ))
        };
        let (stats, workers) = match asked {
            Some((Ok(stats), Ok(workers))) => (stats, workers),
            other => {
                if let Some((Err(e), _) | (_, Err(e))) = other {
                    warnings.push(format!(
                        "{e}; workers are read from /proc, scaling uses signals"
                    ));
                }
                let pids = process::children(pid);
                let stats = control::Stats {
                    uptime: process::age_secs(pid),
                    pid,
                    workers_current: pids.len() as u32,
                    workers_target: settings.as_ref().map_or(pids.len() as u32, |s| s.workers),
                    ..Default::default()
                };
                let workers = pids
                    .iter()
                    .map(|&pid| control::Worker {
                        pid,
                        age: 0,
                        aborted: false,
                        last_heartbeat: None,
                    })
                    .collect();
                (stats, workers)
            }
        };
        let live: Vec<u32> = workers.iter().map(|w| w.pid).collect();
        let (totals, per_worker, activity, deaths, events, lost, record) =
            self.figures(pid, |f, record| {
                (
                    f.totals.clone(),
                    f.per_worker.clone(),
                    // Gunicorn does not say what a worker serves now: `serving` is unknown.
                    live.iter()
                        .filter_map(|pid| Some((*pid, f.activity.get(pid)?.1.report(None))))
                        .collect::<BTreeMap<_, _>>(),
                    f.worker_deaths,
                    f.recent_events.clone(),
                    f.lost.clone(),
                    record.clone(),
                )
            });
        // A log deleted under Gunicorn: it writes on into the deleted file.
        let deleted = process::deleted_open_files(pid);
        for log in log_files(&self.site, settings.as_ref()).iter().skip(1) {
            if deleted.contains(&log.path) {
                warnings.push(format!(
                    "{} was deleted while Gunicorn still writes it: nothing new can be read or counted until `omero-webctl reopen-logs`",
                    log.path.display()
                ));
            }
        }
        for log in lost {
            warnings.push(format!(
                "{} was rotated since the master started and its older part is gone: what it held is not counted",
                log.display()
            ));
        }
        if let Some(since) = &record.counting_since {
            warnings.push(format!(
                "this Gunicorn was not started by omero-webctl: requests are counted since {since}"
            ));
        }
        if stats.workers_current < stats.workers_target {
            warnings.push(format!(
                "{} of {} workers running",
                stats.workers_current, stats.workers_target
            ));
        }
        if let Some(last) = events.back() {
            warnings.push(format!(
                "{deaths} worker(s) died unexpectedly since start; last: worker {} {} at {} (Gunicorn replaced it)",
                last.pid, last.what, last.at
            ));
        }
        if record.access_log.is_none() {
            warnings.push(
                "this Gunicorn writes no access log omero-webctl can read; per-worker requests are unknown (restart it with omero-webctl)".into(),
            );
        }
        let generation = stats.reloads + 1;
        let workers = workers
            .iter()
            .map(|w| {
                let figures = per_worker.get(&w.pid).cloned().unwrap_or_default();
                WorkerStatus {
                    pid: w.pid,
                    state: if w.aborted {
                        WorkerState::Aborted
                    } else {
                        WorkerState::Ready
                    },
                    age_secs: process::age_secs(w.pid).unwrap_or(0.0),
                    generation,
                    restarts: 0,
                    requests: figures.requests,
                    in_flight: None,
                    status_2xx: figures.status_2xx,
                    status_3xx: figures.status_3xx,
                    status_4xx: figures.status_4xx,
                    status_5xx: figures.status_5xx,
                    bytes_sent: figures.bytes_sent,
                    latency_p50: figures.percentile(50.0),
                    latency_p95: figures.percentile(95.0),
                    latency_p99: figures.percentile(99.0),
                    last_heartbeat_secs: w.last_heartbeat.unwrap_or(0.0),
                    activity: activity.get(&w.pid).cloned().unwrap_or_default(),
                }
            })
            .collect();
        let python_versions = python::inspect(settings.as_ref().and_then(|s| s.python.as_deref()))
            .map(|p| p.versions)
            .unwrap_or_default();
        Ok(StatusOutcome::Running(Box::new(PoolStatus {
            kind: SiteKind::OmeroWeb,
            versions: python_versions,
            state: if stopped {
                ServerState::Degraded
            } else {
                ServerState::Running
            },
            master_pid: pid,
            uptime_secs: stats.uptime.unwrap_or(0.0) as u64,
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .saturating_sub(stats.uptime.unwrap_or(0.0) as u64),
            bind: settings.as_ref().map_or_else(|| "?".into(), |s| s.bind()),
            worker_class: settings
                .as_ref()
                .map_or("?", |s| s.effective_worker_class().as_str())
                .into(),
            target_workers: stats.workers_target,
            generation,
            // From the file (a reload updates it), and only if it is this master's.
            applied: Some(self.record())
                .filter(|r| r.master_pid == Some(pid))
                .map(|r| r.applied)
                .unwrap_or_default(),
            log_file: log_files(&self.site, settings.as_ref())[0]
                .path
                .display()
                .to_string(),
            totals,
            restarts: deaths,
            stuck_replaced: 0,
            workers,
            warnings,
        })))
    }

    fn reload(&self) -> anyhow::Result<ControlResponse> {
        // Behind the private nginx a new generation replaces the workers with no gap
        // (and applies Gunicorn's flags too); elsewhere Gunicorn's HUP, as before.
        if let Some(reply) = self.switch_generation("reload")? {
            return Ok(reply);
        }
        let pid = self.running()?;
        let settings = self.settings().map_err(|e| anyhow::anyhow!(e))?;
        let python = python::inspect(settings.python.as_deref())?;
        // Gunicorn halts the whole site when new workers cannot load the app: try the
        // import first, in a process of its own, with the new config.
        match self.app_loads(&settings, &python) {
            Ok(()) => {}
            Err(super::ConfigCheck::Fails(why)) => {
                return Ok(ControlResponse::failed(format!(
                    "reload refused: OMERO.web does not load with the saved config ({why}); the running workers keep serving"
                )));
            }
            Err(other) => {
                return Ok(ControlResponse::failed(format!(
                    "reload refused: the check that OMERO.web loads did not pass ({}); the running workers keep serving",
                    other.describe()
                )));
            }
        }
        let old = self.worker_pids(pid);
        let before = control::stats(&self.socket(), CTL_TIMEOUT).ok();
        if control::call(&self.socket(), "reload", CTL_TIMEOUT).is_err() {
            self.signal(pid, Signal::SIGHUP)?;
        }
        // A HUP goes back to the argv's --workers.
        let argv_workers = argv_workers(&process::cmdline(pid)).unwrap_or(settings.workers);
        let limit =
            Duration::from_secs(settings.boot_timeout.max(30) * (argv_workers as u64).max(1) + 30);
        let new = match self.wait_for_workers(pid, argv_workers, &old, limit) {
            Ok(new) => new,
            Err(reason) => {
                let tail = self.error_tail(Some(&settings));
                return Ok(ControlResponse::failed(format!(
                    "reload failed: {reason}. Gunicorn's log says: {}",
                    tail.last().cloned().unwrap_or_default()
                )));
            }
        };
        // Said, because it is not gapless: see `generation`.
        let mut message = format!(
            "Reloaded: {} new workers (PIDs {}) by Gunicorn's HUP (no private nginx in front to switch generations behind: requests wait while the new workers load).",
            new.len(),
            join(&new)
        );
        if settings.workers != argv_workers {
            let (verb, n) = if settings.workers > argv_workers {
                ("add", settings.workers - argv_workers)
            } else {
                ("remove", argv_workers - settings.workers)
            };
            control::call(&self.socket(), &format!("worker {verb} {n}"), CTL_TIMEOUT)?;
            self.wait_for_workers(pid, settings.workers, &[], limit)
                .map_err(|e| anyhow::anyhow!(e))?;
            message.push_str(&format!(
                " omero.web.wsgi_workers = {} applied (Gunicorn was started with {argv_workers}).",
                settings.workers
            ));
        }
        let wanted = argv::gunicorn_args(&self.site, &settings);
        let pending: Vec<String> = argv::argv_changes(&process::cmdline(pid), &wanted)
            .into_iter()
            .filter(|c| !c.starts_with("--workers "))
            .collect();
        if !pending.is_empty() {
            message.push_str(&format!(
                " Gunicorn keeps its command line over a reload; restart to apply: {}.",
                pending.join(", ")
            ));
        }
        if let Some(before) = before
            && before.reloads > 0
        {
            message.push_str(&format!(" (reload {} of this master)", before.reloads + 1));
        }
        // What the new workers read from the config applies; the flags do not.
        let mut record = self.record();
        if record.master_pid == Some(pid)
            && let Ok(config) = Config::load(&self.site)
        {
            let mut applied = config.applied_values();
            for key in restart_properties() {
                match record.applied.get(key) {
                    Some(old) => applied.insert(key.to_string(), old.clone()),
                    None => applied.remove(key),
                };
            }
            record.applied = applied;
            self.write_record(&record);
        }
        Ok(ControlResponse::ok(message))
    }

    fn scale(&self, change: Scale) -> anyhow::Result<ControlResponse> {
        let pid = self.running()?;
        let current = match control::stats(&self.socket(), CTL_TIMEOUT) {
            Ok(stats) => stats.workers_target,
            Err(_) => process::children(pid).len() as u32,
        };
        let target = change.target(current);
        if let Some(refusal) = crate::config::registry::scale_refusal(target as i64) {
            return Ok(ControlResponse::failed(refusal));
        }
        if target == current {
            return Ok(ControlResponse::ok(format!(
                "{current} workers; nothing to change."
            )));
        }
        let (verb, n, signal) = if target > current {
            ("add", target - current, Signal::SIGTTIN)
        } else {
            ("remove", current - target, Signal::SIGTTOU)
        };
        let boot = self
            .settings()
            .map(|s| s.boot_timeout)
            .unwrap_or(30)
            .max(30);
        if control::call(&self.socket(), &format!("worker {verb} {n}"), CTL_TIMEOUT).is_err() {
            // Signals sent back to back coalesce: one, then wait for the count to move.
            let mut count = current;
            for _ in 0..n {
                self.signal(pid, signal)?;
                count = if target > current {
                    count + 1
                } else {
                    count - 1
                };
                if let Err(reason) =
                    self.wait_for_workers(pid, count, &[], Duration::from_secs(boot + 30))
                {
                    return Ok(ControlResponse::failed(format!(
                        "asked Gunicorn for {target} workers by signal, but {reason}"
                    )));
                }
            }
        }
        match self.wait_for_workers(pid, target, &[], Duration::from_secs(boot + 30)) {
            Ok(pids) => Ok(ControlResponse::ok(format!(
                "{current} → {target} workers (PIDs {}).",
                join(&pids)
            ))),
            Err(reason) => Ok(ControlResponse::failed(format!(
                "asked Gunicorn for {target} workers, but {reason}"
            ))),
        }
    }

    fn kill_worker(&self, worker: u32) -> anyhow::Result<ControlResponse> {
        let pid = self.running()?;
        if !self.worker_pids(pid).contains(&worker) {
            return Ok(ControlResponse::failed(format!(
                "PID {worker} is not a worker of this OMERO.web"
            )));
        }
        match control::call(
            &self.socket(),
            &format!("worker kill {worker}"),
            CTL_TIMEOUT,
        ) {
            Ok(_) => {}
            Err(control::CtlError::Refusal { message, .. }) => {
                return Ok(ControlResponse::failed(message));
            }
            Err(_) => self.signal(worker, Signal::SIGTERM)?,
        }
        Ok(ControlResponse::ok(format!(
            "Worker {worker} asked to stop (SIGTERM); Gunicorn starts a new one."
        )))
    }

    fn reopen_logs(&self) -> anyhow::Result<ControlResponse> {
        let pid = self.running()?;
        if control::call(&self.socket(), "reopen", CTL_TIMEOUT).is_err() {
            self.signal(pid, Signal::SIGUSR1)?;
        }
        Ok(ControlResponse::ok("Gunicorn reopens its log files."))
    }

    fn log_files(&self) -> Vec<LogFile> {
        log_files(&self.site, self.settings().ok().as_ref())
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

impl Gunicorn {
    /// After Gunicorn daemonized: its pid file appears, its workers number the target,
    /// and the site answers HTTP without a server error.
    fn wait_until_serving(
        &self,
        settings: &Settings,
        logs: &GunicornLogs,
        limit: Duration,
    ) -> Result<u32, String> {
        let deadline = Instant::now() + limit;
        let mut errors = logs
            .error
            .as_ref()
            .and_then(|p| crate::logging::LogFollower::open(p, crate::logging::Start::End).ok());
        let path = format!(
            "{}/webclient/login/",
            settings.prefix.as_deref().unwrap_or("")
        );
        let mut last_http = String::from("no answer yet");
        loop {
            // Gunicorn logs why it halted ("Reason: Worker failed to boot.") and exits.
            if let Some(follower) = &mut errors
                && let Ok(lines) = follower.poll()
                && let Some(i) = lines
                    .iter()
                    .position(|l| l.contains("Shutting down: Master"))
            {
                let reason = lines[i..]
                    .iter()
                    .find_map(|l| l.split_once("Reason: ").map(|(_, r)| r.to_string()))
                    .unwrap_or_else(|| "the Gunicorn master shut down".into());
                return Err(format!("Gunicorn stopped while booting: {reason}"));
            }
            if let Master::Running(pid) = self.master() {
                let workers = self.worker_pids(pid);
                if workers.len() as u32 >= settings.workers {
                    match http_status(settings, &path) {
                        Ok(code) if code < 500 => return Ok(pid),
                        Ok(code) => last_http = format!("GET {path} answered {code}"),
                        Err(e) => last_http = format!("GET {path}: {e}"),
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "OMERO.web did not serve within {}s ({last_http})",
                    limit.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

/// Refuses a port someone else listens on before Gunicorn spends seconds retrying.
fn check_port(settings: &Settings) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = (settings.host.as_str(), settings.port)
        .to_socket_addrs()
        .map_err(|e| {
            format!(
                "cannot resolve omero.web.application_server.host {}: {e}",
                settings.host
            )
        })?
        .collect();
    for addr in addrs {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .map_err(|e| e.to_string())?;
        // As Gunicorn binds: SO_REUSEADDR, so TIME_WAIT leftovers do not count.
        let _ = socket.set_reuse_address(true);
        if let Err(e) = socket.bind(&addr.into()) {
            return Err(if e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "Connection in use: {} ({e}); another program listens there (omero.web.application_server.port moves the site)",
                    settings.bind()
                )
            } else {
                format!(
                    "cannot listen on {} ({e}); check omero.web.application_server.host",
                    settings.bind()
                )
            });
        }
    }
    Ok(())
}

/// The status code of `GET path` on the application server.
fn http_status(settings: &Settings, path: &str) -> std::io::Result<u16> {
    let host = &settings.host;
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", settings.port) // an IPv6 literal
    } else {
        format!("{host}:{}", settings.port)
    };
    crate::supervisor::http_status(&address, path)
}

fn file_len(path: Option<&std::path::Path>) -> u64 {
    path.and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len())
}

/// Polls until the process has exited.
fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while crate::proc::is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The value of `--flag VALUE` or `--flag=VALUE` (the last one) in a command line;
/// `-` (stdio) counts as none.
fn flag_value(args: &[String], flag: &str) -> Option<PathBuf> {
    let mut found = None;
    for (i, arg) in args.iter().enumerate() {
        if arg == flag {
            found = args.get(i + 1).cloned();
        } else if let Some(value) = arg.strip_prefix(flag).and_then(|v| v.strip_prefix('=')) {
            found = Some(value.to_string());
        }
    }
    found.filter(|v| v != "-").map(PathBuf::from)
}

/// `--workers N` of a master's command line.
fn argv_workers(args: &[String]) -> Option<u32> {
    let i = args.iter().rposition(|a| a == "--workers" || a == "-w")?;
    args.get(i + 1)?.parse().ok()
}

fn last_lines(bytes: &[u8], n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

fn join(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_start_where_our_start_began_even_before_it_finished() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        std::fs::create_dir_all(site.var_dir()).unwrap();
        let g = Gunicorn::new(site.clone());
        let access = dir.path().join("access.log");
        std::fs::write(&access, "x".repeat(500)).unwrap();
        // A start of ours is waiting for its master: its offsets apply, not 0.
        g.write_record(&StartRecord {
            access_log: Some(access.clone()),
            access_offset: 300,
            ..Default::default()
        });
        let record = g.adopt(std::process::id());
        assert_eq!(record.access_offset, 300);
        assert_eq!(record.counting_since, None);
        // Another master (not ours): counted from now on, and said so.
        g.write_record(&StartRecord {
            master_pid: Some(1),
            access_log: Some(access.clone()),
            access_offset: 300,
            ..Default::default()
        });
        let record = g.adopt(std::process::id());
        assert_eq!(record.master_pid, Some(std::process::id()));
        assert!(record.counting_since.is_some());
        // This process's command line names no access log: nothing to count from.
        assert_eq!(record.access_log, None);
        assert_eq!(
            g.record().master_pid,
            Some(1),
            "read-only commands write nothing into the site"
        );
    }

    #[test]
    fn a_master_adopted_before_our_record_named_it_is_ours_once_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        std::fs::create_dir_all(site.var_dir()).unwrap();
        let g = Gunicorn::new(site.clone());
        let me = std::process::id();
        // The record still names the previous generation's master: this one is met as
        // not ours (a long-running reader, the panel, keeps what it met).
        g.write_record(&StartRecord {
            master_pid: Some(1),
            ..Default::default()
        });
        assert!(g.figures(me, |_, r| r.counting_since.is_some()));
        // The switch names it: from then on it is ours, in the same reader.
        g.write_record(&StartRecord {
            master_pid: Some(me),
            ..Default::default()
        });
        assert_eq!(g.figures(me, |_, r| r.counting_since.clone()), None);
        assert_eq!(g.figures(me, |_, r| r.master_pid), Some(me));
    }

    #[test]
    fn log_flags_are_read_from_a_command_line() {
        let args: Vec<String> = [
            "gunicorn",
            "--access-logfile",
            "/a.log",
            "--error-logfile=/e.log",
            "--access-logfile=/b.log",
            "--log-file",
            "-",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            flag_value(&args, "--access-logfile"),
            Some(PathBuf::from("/b.log"))
        );
        assert_eq!(
            flag_value(&args, "--error-logfile"),
            Some(PathBuf::from("/e.log"))
        );
        assert_eq!(flag_value(&args, "--log-file"), None, "stdio is no file");
        assert_eq!(flag_value(&args, "--statsd-host"), None);
    }

    #[test]
    fn the_workers_flag_is_read_from_a_command_line() {
        let args: Vec<String> = "python gunicorn -D --workers 5 --workers=9 x --workers 3"
            .split(' ')
            .map(String::from)
            .collect();
        assert_eq!(argv_workers(&args), Some(3));
        assert_eq!(argv_workers(&["gunicorn".to_string()]), None);
    }

    #[test]
    fn a_site_without_a_master_is_not_running_and_a_foreign_pid_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        let g = Gunicorn::new(site.clone());
        assert_eq!(g.master(), Master::NotRunning);
        std::fs::create_dir_all(site.var_dir()).unwrap();
        // Our own PID: alive, but not a Gunicorn of this site.
        std::fs::write(site.django_pid_file(), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(g.master(), Master::Stale(Some(std::process::id())));
        assert!(matches!(g.stop(false).unwrap(), StopOutcome::Stale { .. }));
        assert!(
            !site.django_pid_file().exists(),
            "the stale file is removed"
        );
    }

    #[test]
    fn a_port_in_use_is_refused_by_name() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let site = Site::new(dir.path());
        let settings = Config::from_text(
            &site,
            site.toml_config_file(),
            format!("\"omero.web.application_server.port\" = {port}\n"),
            None,
        )
        .unwrap()
        .settings();
        let err = check_port(&settings).unwrap_err();
        assert!(
            err.starts_with(&format!("Connection in use: 127.0.0.1:{port}")),
            "{err}"
        );
        drop(listener);
        assert_eq!(check_port(&settings), Ok(()));
    }
}
