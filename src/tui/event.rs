//! What flows through the panel: events into `update` (from the keyboard, the pool
//! sampler, the log tailer and background jobs) and effects out of it (I/O that the
//! runtime carries out, reporting back with another event).

use std::collections::HashMap;
use std::path::PathBuf;

use crossterm::event::KeyEvent;

use crate::config::{Config, Need};
use crate::nginx::{CheckReport, NginxKind};
use crate::supervisor::PoolStatus;

use super::log_view::LogSource;

#[derive(Debug)]
pub enum Event {
    Key(KeyEvent),
    Resize(u16, u16),
    /// One observation of the pool, its processes and the private nginx (about 1 Hz).
    Sample(Box<Sample>),
    /// What the CLI wrote about changes (read apart from the samples, which a busy
    /// master can hold up: a switch lasts seconds and must not be missed).
    Changes(Box<ChangesSeen>),
    /// The `diagnostics` warnings (refreshed less often than samples).
    Diagnostics(Vec<String>),
    /// The host's load, memory and free space (read with the diagnostics).
    Host(Box<crate::host::HostFigures>),
    /// The tailer opened a (new) file: the buffer starts over with these lines.
    LogReset {
        generation: u64,
        lines: Vec<String>,
        error: Option<String>,
    },
    /// New complete lines of the followed file.
    LogLines {
        generation: u64,
        lines: Vec<String>,
    },
    LogError {
        generation: u64,
        error: String,
    },
    /// The followed path no longer names a file (deleted, moved away), or names one
    /// again.
    LogDeleted {
        generation: u64,
        deleted: bool,
    },
    JobFinished {
        job: Job,
        result: JobResult,
    },
    ConfigSaved {
        config: Box<Config>,
        key: String,
        needs: &'static [Need],
    },
    /// Saving failed. `reloaded` is the file as it is now on disk when it had
    /// changed since it was read (the edit was not applied to it).
    ConfigSaveFailed {
        error: String,
        reloaded: Option<Result<Box<Config>, String>>,
    },
    ConfigLoaded(Result<Box<Config>, String>),
    NginxChecked {
        text_hash: u64,
        result: Result<CheckReport, String>,
    },
    /// The file at the nginx tab's output path: `None` when it does not exist.
    NginxTargetRead {
        path: PathBuf,
        content: Result<Option<String>, String>,
    },
    NginxWritten {
        path: PathBuf,
        result: Result<(), String>,
    },
    /// The OMERO.servers `probed` answered (or not) like this, one result each.
    ServersProbed {
        probed: Vec<crate::reachability::ServerEntry>,
        results: Vec<crate::reachability::ServerReach>,
    },
    /// SIGTERM, SIGHUP or SIGINT from outside.
    /// The fleet's members as `fleet status` sees them (the Fleet tab).
    Fleet(Result<Vec<crate::fleet::status::MemberRow>, String>),
    /// A step of a rolling reload, as `fleet reload` prints it.
    FleetProgress(String),
    /// The rolling reload finished, or stopped and why.
    FleetRolled(Result<(), String>),
    /// A drain (or undrain) of a member finished: what it said, or why it failed.
    FleetDrained {
        name: String,
        drain: bool,
        result: Result<String, String>,
    },
    /// One answer of the fleet member whose Dashboard is open.
    Member(Box<super::member_view::MemberReading>),
    Terminate,
}

/// Work that runs off the UI thread and reports back with `JobFinished`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// The pool, then the private nginx (on `nginx_port` when the nginx tab chose
    /// one; else on the port of its last start, else 8080).
    Start {
        nginx_port: Option<u16>,
    },
    /// The pool and the private nginx.
    Stop,
    Restart,
    Reload,
    /// `rollback`: the previous generation (binary or config).
    Rollback,
    Scale(i32),
    KillWorker(u32),
    NginxStart {
        port: Option<u16>,
    },
    NginxStop,
    NginxReload,
}

impl Job {
    /// What the status line says while it runs.
    pub fn progress(self) -> String {
        match self {
            Job::Start { .. } => "starting OMERO.web…".into(),
            Job::Stop => "stopping OMERO.web…".into(),
            Job::Restart => "restarting OMERO.web…".into(),
            Job::Reload => "reloading the workers…".into(),
            Job::Rollback => "rolling back to the previous generation…".into(),
            Job::Scale(n) => format!("scaling by {n:+}…"),
            Job::KillWorker(pid) => format!("killing worker {pid}…"),
            Job::NginxStart { .. } => "starting nginx…".into(),
            Job::NginxStop => "stopping nginx…".into(),
            Job::NginxReload => "reloading nginx…".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    pub message: String,
    /// Lines that explain it (log tail, nginx's own messages).
    pub details: Vec<String>,
}

pub type JobResult = Result<String, JobFailure>;

/// I/O requested by `update`.
#[derive(Debug, Clone)]
pub enum Effect {
    RunJob(Job),
    /// Take a sample now instead of waiting for the next second (after an action).
    SampleNow,
    /// Point the tailer at another file; its events carry `generation`.
    FollowLog {
        source: LogSource,
        path: PathBuf,
        generation: u64,
    },
    /// Set (`Some`) or unset (`None`) one property on a copy of the loaded config and
    /// save it.
    SaveConfig {
        base: Box<Config>,
        key: String,
        value: Option<String>,
    },
    LoadConfig,
    CheckNginx {
        text: String,
        kind: NginxKind,
        text_hash: u64,
    },
    ReadNginxTarget(PathBuf),
    /// Probe these OMERO.servers (seconds, off the UI thread).
    ProbeServers(Vec<crate::reachability::ServerEntry>),
    WriteNginx {
        path: PathBuf,
        text: String,
        /// Set when the file is the private nginx's own config: its port becomes the
        /// one `s` and `nginx reload` use too.
        private_port: Option<u16>,
    },
    /// Ask the fleet's members again now.
    FleetRefresh,
    /// Take a member out of the front (or put it back).
    FleetDrain {
        name: String,
        drain: bool,
    },
    /// Reload every member, one at a time.
    FleetRoll,
    /// Start reading member `name` for its Dashboard (readings carry `generation`).
    MemberOpen {
        name: String,
        generation: u64,
    },
    /// Stop reading the member whose Dashboard was open.
    MemberClose,
}

/// One reading of everything the dashboard shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the panel started (monotonic), for rates.
    pub at: f64,
    pub pool: PoolObservation,
    /// CPU time and RSS of the master and workers, by PID.
    pub procs: HashMap<u32, ProcStat>,
    pub nginx: NginxObservation,
    /// Modification time (ns) and length of the config file, to notice edits.
    pub config_stamp: Option<(i128, u64)>,
    /// What serves the site ("OMERO.web 5.33.2 · Gunicorn 27.0.1"), and why the
    /// versions are unknown if they are.
    pub backend: String,
    /// Server errors the private nginx answered since the previous sample (from its
    /// access log): what users saw, whatever the pool says.
    pub nginx_errors: NginxErrors,
    /// Sessions, users logged in and failed logins of the embedded gateway's access
    /// control (None when it is off or the site is OMERO.web's).
    pub access: Option<Result<crate::gateway::auth::AccessCounts, String>>,
}

/// What the CLI wrote about changes (`var/generations/`): the panel only reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangesSeen {
    pub progress: Option<crate::supervisor::progress::Progress>,
    /// Whether that change still runs (its command is alive and it has no outcome).
    pub running: bool,
    /// The generations while a change runs, each with its worker count now.
    pub generations: Vec<(crate::supervisor::progress::GenerationSeen, usize)>,
    /// The last changes, newest first.
    pub history: Vec<crate::supervisor::history::Change>,
    /// What `rollback` would return to, in words; `None`: nothing kept.
    pub rollback_target: Option<String>,
}

/// Counts of nginx's 5xx answers in one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NginxErrors {
    pub server_errors: u64,
    /// 502 Bad Gateway: the pool did not answer.
    pub bad_gateway: u64,
    /// 504 Gateway Timeout: the pool answered too late.
    pub gateway_timeout: u64,
}

impl NginxErrors {
    /// Counts the 5xx answers among access-log lines (combined format: the status
    /// follows the quoted request line).
    pub fn count<'a>(lines: impl IntoIterator<Item = &'a String>) -> NginxErrors {
        let mut out = NginxErrors::default();
        for line in lines {
            let status = line
                .split('"')
                .nth(2)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|s| s.parse::<u16>().ok());
            match status {
                Some(502) => out.bad_gateway += 1,
                Some(504) => out.gateway_timeout += 1,
                _ => {}
            }
            if status.is_some_and(|s| s >= 500) {
                out.server_errors += 1;
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PoolObservation {
    Running(Box<PoolStatus>),
    NotRunning,
    /// A pid file whose master is gone.
    Stale {
        pid: Option<u32>,
        /// Processes the dead master left that still serve.
        orphans: Vec<u32>,
    },
    /// Nothing runs: the server halted by itself (its log says when and why).
    Halted(Box<crate::supervisor::Halt>),
    /// The pool could not be asked (control socket unreadable, no answer, ...).
    Error(String),
}

/// One process's figures; also what a fleet member's `status --json` carries under
/// `procs` (by PID) for a panel on another host.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcStat {
    /// User + system CPU time in seconds.
    pub cpu_secs: f64,
    pub rss_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NginxObservation {
    Running { pid: i32, port: Option<u16> },
    NotRunning,
    Error(String),
}
