//! `omero-webctl diagnostics` (OMERO has `omero web diagnostics`): everything a
//! troubleshooting sysadmin looks at first, collected in one place. The panel's
//! dashboard shows the same warnings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::{AppServer, Config};
use crate::reachability::{self, ServerReach};
use crate::site::{Site, SiteKind};
use crate::supervisor::{self, PoolStatus, StatusOutcome};

#[derive(Debug, Serialize)]
pub struct Diagnostics {
    pub version: &'static str,
    pub site: PathBuf,
    /// What serves the site: "embedded" or "omeroweb".
    pub kind: SiteKind,
    /// Versions of what serves it (OMERO.web, Gunicorn, Python for an OMERO.web site).
    pub versions: BTreeMap<String, String>,
    pub config_file: PathBuf,
    pub config_file_exists: bool,
    pub pool: PoolState,
    pub log: Option<LogInfo>,
    pub nginx: NginxState,
    /// Load, memory and the free space where the site keeps its files.
    pub host: crate::host::HostFigures,
    /// Whether each OMERO.server of `omero.web.server_list` answers (OMERO.web
    /// sites only: an embedded site serves its own images and logs in nowhere).
    pub servers: Vec<ServerReach>,
    /// Problems of the config and of the deployment, one line each.
    pub warnings: Vec<String>,
    /// A check still runs in the background (the panel asks again soon).
    #[serde(skip)]
    pub checks_pending: bool,
    /// Values in the config file the strict rules refuse, by key: kept and used as
    /// each says (also among `warnings`).
    pub config_values: Vec<crate::config::ValueWarning>,
    /// Where the sessions live and, for Redis, whether it answers PING from this host
    /// (None: the config cannot be read).
    pub sessions: Option<crate::session_store::StoreCheck>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PoolState {
    Running {
        status: Box<PoolStatus>,
    },
    NotRunning,
    Stale {
        pid: Option<u32>,
        /// Workers the dead master left, still serving.
        orphans: Vec<u32>,
    },
    Halted {
        halt: Box<supervisor::Halt>,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Serialize)]
pub struct LogInfo {
    pub path: PathBuf,
    pub exists: bool,
    pub size: u64,
    /// Rotated files present (`OMEROweb.log.1` ...).
    pub rotated: Vec<PathBuf>,
    pub errors: u64,
    pub warnings: u64,
    /// Why a log that is there cannot be read (a directory in its place, no
    /// permission): its counts are then unknown, not zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NginxState {
    Running { pid: i32, port: Option<u16> },
    NotRunning,
    Error { message: String },
}

/// How long the CLI waits for the check that the saved config loads (the check has its
/// own, shorter deadline).
const CLI_CHECK_WAIT: Duration = Duration::from_secs(600);

/// Everything, with the OMERO.server probes (run while the rest is collected).
pub fn collect(site: &Site) -> Diagnostics {
    std::thread::scope(|scope| {
        let probes = scope.spawn(|| probe_servers(site));
        let mut report = collect_waiting(supervisor::for_site(site).as_ref(), CLI_CHECK_WAIT);
        match probes.join() {
            Ok(Ok(servers)) => report.add_servers(servers),
            Ok(Err(e)) => report.warnings.push(e),
            Err(_) => report
                .warnings
                .push("the OMERO.server check failed (a panic)".into()),
        }
        report
    })
}

/// The OMERO.server probes of a site's `server_list`: none on an embedded site.
pub fn probe_servers(site: &Site) -> Result<Vec<ServerReach>, String> {
    if site.kind() != SiteKind::OmeroWeb {
        return Ok(Vec::new());
    }
    // A config that cannot be loaded is reported once, by `collect_with`.
    let Ok(config) = Config::load(site) else {
        return Ok(Vec::new());
    };
    let entries = reachability::configured_servers(&config)?;
    Ok(reachability::probe_all(
        &entries,
        reachability::PROBE_TIMEOUT,
    ))
}

/// Diagnostics through a supervisor the caller keeps (the panel reuses its own; the
/// checks that run Python run in the background and show up in a later call; the
/// panel probes the OMERO.servers on its own schedule, so `servers` stays empty here).
pub fn collect_with(supervisor: &dyn supervisor::Supervisor) -> Diagnostics {
    collect_waiting(supervisor, Duration::from_millis(200))
}

fn collect_waiting(supervisor: &dyn supervisor::Supervisor, wait: Duration) -> Diagnostics {
    let site = supervisor.site();
    let mut warnings = Vec::new();
    let backend = supervisor.backend();
    if let Some(problem) = &backend.problem {
        warnings.push(problem.clone());
    }
    let config = Config::load(site);
    let mut config_values = Vec::new();
    let settings = match &config {
        Ok(config) => {
            config_values = config.value_warnings().into_iter().cloned().collect();
            // One bad value is named by key; every other value keeps being used.
            for w in &config_values {
                warnings.push(value_warning_line(w));
            }
            warnings.extend(config.deprecation_warnings());
            for key in config.unknown().keys() {
                warnings.push(format!(
                    "{key} is not a known property (set with --force); it has no effect"
                ));
            }
            Some(config.settings())
        }
        Err(e) => {
            warnings.push(format!("the config cannot be used: {e}"));
            None
        }
    };
    if let Some(s) = &settings {
        warnings.extend(s.public_bind_warning());
        if s.application_server != AppServer::WsgiTcp {
            warnings.push(format!(
                "omero.web.application_server={} is not managed by omero-webctl (start refuses it)",
                s.application_server.as_str()
            ));
        }
        warnings.extend(supervisor.settings_warnings(s));
    }

    // Before a worker needs it: a saved config the app cannot load halts the site at
    // the next worker boot (reload, restart, a worker that dies).
    let check = supervisor.saved_config_check(wait);
    if let supervisor::ConfigCheck::Fails(error) = &check {
        warnings.insert(
            0,
            format!(
                "OMERO.web does not load with the saved config: {error} (the next worker to boot fails and Gunicorn halts the site; fix the config first)"
            ),
        );
    }

    let pool = match supervisor.status() {
        Ok(StatusOutcome::Running(status)) => {
            if let Ok(config) = &config
                && let Some(note) = supervisor::pending_note(&supervisor::pending(config, &status))
            {
                warnings.insert(0, note);
            }
            for w in &status.warnings {
                if !warnings.contains(w) {
                    warnings.push(w.clone());
                }
            }
            PoolState::Running { status }
        }
        Ok(StatusOutcome::NotRunning) => PoolState::NotRunning,
        Ok(StatusOutcome::Stale { pid, orphans }) => {
            warnings.push(format!(
                "stale pid file {} (its master is gone; start takes it over)",
                supervisor.pid_file().display()
            ));
            if !orphans.is_empty() {
                warnings.insert(0, supervisor::orphans_note(&orphans));
            }
            PoolState::Stale { pid, orphans }
        }
        Ok(StatusOutcome::Halted(halt)) => {
            if let Some(note) = halt.pending_note() {
                warnings.insert(0, note);
            }
            warnings.insert(0, format!("OMERO.web {}", halt.describe()));
            PoolState::Halted { halt }
        }
        Err(e) => PoolState::Error {
            message: format!("{e:#}"),
        },
    };

    let log = supervisor
        .log_files()
        .first()
        .map(|main| log_info(&main.path));
    if let Some(info) = &log
        && let Some(why) = &info.unreadable
    {
        warnings.push(format!(
            "the log {} cannot be read ({why}): its error and warning counts are unknown",
            info.path.display()
        ));
    }
    if let Some(info) = &log
        && info.errors > 0
    {
        warnings.push(format!(
            "{} error lines in {} (see the Log tab or `grep ERROR`)",
            info.errors,
            info.path.display()
        ));
    }

    let nginx = match crate::nginx::instance::status(site) {
        Ok(crate::nginx::instance::Status::Running(r)) => NginxState::Running {
            pid: r.pid,
            port: r.port,
        },
        Ok(crate::nginx::instance::Status::NotRunning) => NginxState::NotRunning,
        Err(e) => NginxState::Error {
            message: e.to_string(),
        },
    };

    let sessions = config
        .as_ref()
        .ok()
        .map(|c| crate::session_store::check(c, SESSION_STORE_TIMEOUT));
    if let Some(problem) = sessions.as_ref().and_then(|s| s.problem.as_ref()) {
        warnings.push(format!("sessions: {problem}"));
    }

    let mut dirs = vec![("site files", site.var_dir())];
    // The rendered-thumbnail cache is the embedded gateway's.
    if site.kind() == SiteKind::Embedded {
        dirs.push(("cache", site.cache_dir()));
    }
    if let Some(main) = supervisor.log_files().first()
        && let Some(dir) = main.path.parent()
    {
        dirs.push(("logs", dir.to_path_buf()));
    }
    if let Some(s) = &settings
        && site.kind() == SiteKind::Embedded
    {
        dirs.push(("repository", s.repository.clone()));
    }
    let host = crate::host::observe(&dirs);
    warnings.extend(host.warnings());

    // Orphaned workers still serve behind nginx: no 502 (their note says what is wrong).
    let serving = match &pool {
        PoolState::Running { .. } => true,
        PoolState::Stale { orphans, .. } => !orphans.is_empty(),
        _ => false,
    };
    if let NginxState::Running { port, .. } = &nginx
        && !serving
    {
        warnings.insert(0, pool_down_behind_nginx(*port));
    }
    if let (NginxState::Running { port, .. }, Some(s)) = (&nginx, &settings) {
        warnings.extend(stale_nginx(
            site,
            s,
            port.unwrap_or(crate::nginx::instance::DEFAULT_PORT),
        ));
    }

    Diagnostics {
        version: env!("CARGO_PKG_VERSION"),
        site: site.root().to_path_buf(),
        kind: backend.kind,
        versions: backend.versions,
        host,
        config_file: site.config_file(),
        config_file_exists: site.config_file().is_file(),
        pool,
        log,
        nginx,
        servers: Vec::new(),
        warnings,
        checks_pending: check == supervisor::ConfigCheck::Pending,
        config_values,
        sessions,
    }
}

/// How long the session store may take to answer PING.
const SESSION_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// One line for a value the strict rules refuse, saying whether OMERO.web can run it.
pub fn value_warning_line(w: &crate::config::ValueWarning) -> String {
    if w.omero_fails {
        format!("config error: {w}")
    } else {
        format!("config: {w}")
    }
}

/// The worst a sysadmin can miss: nginx answers, the pool behind it does not.
pub fn pool_down_behind_nginx(port: Option<u16>) -> String {
    format!(
        "the private nginx{} is up but the pool is not: users get 502 (start the pool)",
        port.map(|p| format!(" (port {p})")).unwrap_or_default()
    )
}

/// The running private nginx reads var/nginx/nginx.conf, written at its last start
/// or reload; when the properties now give another config (say `wsgi_timeout`
/// changed `proxy_read_timeout`), it serves the old one until reloaded.
fn stale_nginx(site: &Site, settings: &crate::config::Settings, port: u16) -> Option<String> {
    let path = crate::nginx::instance::config_path(site);
    let running = std::fs::read_to_string(&path).ok()?;
    let wanted = crate::nginx::instance::render_config(site, settings, port).ok()?;
    if running.trim_end() == wanted.trim_end() {
        return None;
    }
    let old: std::collections::HashSet<&str> = running.lines().map(str::trim).collect();
    let first_new = wanted
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !old.contains(l));
    Some(format!(
        "the running private nginx has an older config than the properties give{}: reload it (omero-webctl nginx reload; in the panel: N)",
        first_new
            .map(|l| format!(" (now: {l})"))
            .unwrap_or_default()
    ))
}

fn log_info(path: &Path) -> LogInfo {
    let path = path.to_path_buf();
    let dir = path.parent().unwrap_or(Path::new("."));
    let meta = std::fs::metadata(&path);
    let size = meta.as_ref().ok().filter(|m| m.is_file()).map(|m| m.len());
    let rotated = (1..)
        .map(|n| dir.join(format!("{}.{n}", crate::logging::LOG_FILE_NAME)))
        .take_while(|p| p.exists())
        .collect();
    let counts = crate::logging::counts::count_levels(&path);
    let unreadable = match (&meta, &counts) {
        // A log not written yet is "missing", not a problem.
        (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => None,
        (Ok(m), _) if !m.is_file() => Some("not a regular file".to_string()),
        (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
        _ => None,
    };
    let counts = counts.unwrap_or_default();
    LogInfo {
        exists: size.is_some(),
        size: size.unwrap_or(0),
        rotated,
        errors: counts.errors(),
        warnings: counts.warnings(),
        unreadable,
        path,
    }
}

impl Diagnostics {
    /// Adds the probes' results; each server that cannot be reached leads the problems
    /// (the most common trouble: logins fail).
    pub fn add_servers(&mut self, servers: Vec<ServerReach>) {
        let problems: Vec<String> = servers.iter().filter_map(ServerReach::problem).collect();
        self.warnings.splice(0..0, problems);
        self.servers = servers;
    }

    /// The report as text, in the shape of `omero web diagnostics`.
    pub fn render(&self) -> String {
        let rule = "=".repeat(80);
        let mut out = format!(
            "{rule}\nOMERO Diagnostics (web) — omero-webctl {}\n{rule}\n\n",
            self.version
        );
        let exists = |b: bool| if b { "exists" } else { "missing" };
        out.push_str(&format!("Site dir  : {}\n", self.site.display()));
        out.push_str(&format!(
            "Served by : {}\n",
            supervisor::describe(self.kind, &self.versions)
        ));
        out.push_str(&format!(
            "Config    : {} ({})\n",
            self.config_file.display(),
            exists(self.config_file_exists)
        ));
        let pool = match &self.pool {
            PoolState::Running { status } => format!(
                "{} (PID {}) · {} {} workers on {} · {} requests · up {}s",
                status.state.as_str().to_uppercase(),
                status.master_pid,
                status.workers.len(),
                status.worker_class,
                status.bind,
                status.totals.requests,
                status.uptime_secs
            ),
            PoolState::NotRunning => "NOT STARTED".into(),
            PoolState::Stale { orphans, .. } if !orphans.is_empty() => format!(
                "MASTER GONE · {} orphaned worker(s) still serving (PIDs {})",
                orphans.len(),
                supervisor::pid_list(orphans)
            ),
            PoolState::Stale { pid, .. } => format!(
                "NOT STARTED (stale pid file of PID {})",
                pid.map_or_else(|| "?".to_string(), |p| p.to_string())
            ),
            PoolState::Halted { halt } => format!("HALTED ({})", halt.describe()),
            PoolState::Error { message } => format!("UNKNOWN ({message})"),
        };
        out.push_str(&format!("Pool      : {pool}\n"));
        if let Some(log) = &self.log {
            out.push_str(&format!(
                "Log file  : {} ({}, {} bytes, {} rotated) errors={} warnings={}\n",
                log.path.display(),
                if log.unreadable.is_some() {
                    "unreadable"
                } else {
                    exists(log.exists)
                },
                log.size,
                log.rotated.len(),
                log.errors,
                log.warnings
            ));
        }
        let nginx = match &self.nginx {
            NginxState::Running { pid, port } => format!(
                "RUNNING (PID {pid}){}",
                port.map(|p| format!(" on http://127.0.0.1:{p}/"))
                    .unwrap_or_default()
            ),
            NginxState::NotRunning => "NOT STARTED".into(),
            NginxState::Error { message } => format!("UNKNOWN ({message})"),
        };
        out.push_str(&format!("nginx     : private instance {nginx}\n"));
        for server in &self.servers {
            out.push_str(&format!(
                "Server    : {} — {}\n",
                server.server.label(),
                server.summary
            ));
        }
        if let Some(sessions) = &self.sessions {
            let ping = sessions
                .ping_ms
                .map(|ms| format!(" · PING {ms:.1} ms"))
                .unwrap_or_default();
            out.push_str(&format!("Sessions  : {}{ping}\n", sessions.location));
        }
        out.push_str(&format!("Host      : {}\n", self.host.summary()));
        for disk in &self.host.disks {
            out.push_str(&format!(
                "  {:<10} {} on {} ({:.1} GiB free)\n",
                disk.holds,
                disk.path.display(),
                disk.mount_point.display(),
                disk.available as f64 / (1u64 << 30) as f64
            ));
        }
        out.push('\n');
        if self.warnings.is_empty() {
            out.push_str("No problems found.\n");
        } else {
            out.push_str("Problems:\n");
            for w in &self.warnings {
                out.push_str(&format!("  - {w}\n"));
            }
        }
        out
    }
}
