//! The private nginx: the `nginx-development` config run from `<site>/var/nginx/`, so
//! the whole stack runs on one machine without touching the system nginx. Everything
//! it reads or writes lives in that directory (conf, pid, logs, temp files, mime.types,
//! the remembered port), except the maintenance page (OMERO's etc/templates/error/)
//! and the static root it serves.
//!
//! nginx daemonizes itself, so the instance outlives the command that started it; it
//! is found again through its pid file, and a pid is only ever signalled after
//! /proc shows it is the nginx master of this site's config.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::check::{check, find_nginx, prefix_arg};
use super::{NginxError, NginxKind, RenderOptions, render};
use crate::config::Settings;
use crate::fsutil::write_atomic;
use crate::site::Site;

const MIME_TYPES: &str = include_str!("../../assets/nginx/mime.types");
const MAINTENANCE_PAGE: &str = include_str!("../../assets/maintainance.html");

/// The port used when `start` is not given one (OMERO's nginx-development default).
pub const DEFAULT_PORT: u16 = 8080;
/// The temp paths nginx uses; all are set in the config (see the template).
const TEMP_DIRS: [&str; 5] = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"];

const START_DEADLINE: Duration = Duration::from_secs(15);
const QUIT_DEADLINE: Duration = Duration::from_secs(15);
const TERM_DEADLINE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

/// A running private nginx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    /// The master process.
    pub pid: i32,
    /// The HTTP port it was started on (unknown if var/nginx/port is gone).
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running(Running),
    NotRunning,
}

/// The files of the instance, all under var/nginx/.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn of(site: &Site) -> Files {
        Files {
            dir: site.nginx_dir(),
        }
    }
    fn conf(&self) -> PathBuf {
        self.dir.join("nginx.conf")
    }
    fn pid(&self) -> PathBuf {
        self.dir.join("nginx.pid")
    }
    fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }
    fn port(&self) -> PathBuf {
        self.dir.join("port")
    }
    fn mime_types(&self) -> PathBuf {
        self.dir.join("mime.types")
    }
}

/// The config file the private nginx runs from (what the nginx tab writes to keep
/// the running instance in step).
pub fn config_path(site: &Site) -> PathBuf {
    Files::of(site).conf()
}

/// The port of the private nginx's last start (`var/nginx/port`), which `nginx start`
/// without `--http`, `s` in the panel and `nginx reload` all use.
pub fn remembered_port(site: &Site) -> Option<u16> {
    std::fs::read_to_string(Files::of(site).port())
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

/// Makes `port` the private nginx's port for its next start and reload.
pub fn remember_port(site: &Site, port: u16) -> Result<(), NginxError> {
    let files = Files::of(site);
    std::fs::create_dir_all(&files.dir).map_err(|e| NginxError::io(&files.dir, e))?;
    write_atomic(&files.port(), format!("{port}\n").as_bytes(), None)
        .map_err(|e| NginxError::io(&files.port(), e))
}

/// The `user` line for the workers, only when running as root. A root master would
/// run its workers as `nobody`, who may be unable to read the site or write its temp
/// directories; the site's owner can. Without root nginx cannot switch users at all,
/// and the line would only earn a warning, so it is left out.
pub fn worker_user(site: &Site) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(site.root()).map(|m| m.uid()).unwrap_or(0);
    let named = nix::unistd::User::from_uid(owner.into())
        .ok()
        .flatten()
        .filter(|user| !user.uid.is_root())
        .and_then(|user| {
            let group = nix::unistd::Group::from_gid(user.gid).ok().flatten()?;
            Some(format!("{} {}", user.name, group.name))
        });
    Some(named.unwrap_or_else(|| "root".to_string()))
}

/// The private instance's config: `nginx-development` on `http_port`.
pub fn render_config(
    site: &Site,
    settings: &Settings,
    http_port: u16,
) -> Result<String, NginxError> {
    render_front_config(site, settings, http_port, &[])
}

/// The private instance's config with `upstream_servers` in place of the site's own
/// pool when not empty (a fleet's front, see [`RenderOptions::upstream_servers`]).
pub fn render_front_config(
    site: &Site,
    settings: &Settings,
    http_port: u16,
    upstream_servers: &[String],
) -> Result<String, NginxError> {
    let options = RenderOptions {
        http_port: Some(http_port),
        worker_user: worker_user(site),
        upstream_servers: upstream_servers.to_vec(),
        ..RenderOptions::default()
    };
    render(settings, NginxKind::NginxDevelopment, &options)
}

/// Creates what the `nginx-development` config refers to: var/nginx/ with its temp
/// directories and mime.types, the maintenance page (kept if the operator has one),
/// and the static root. Needed before `nginx -t` can test that config.
pub fn prepare(site: &Site, settings: &Settings) -> Result<(), NginxError> {
    let files = Files::of(site);
    // nginx chowns its temp paths to its worker user when its master runs as root,
    // through a symlink if one is planted: every directory here is made (or found)
    // without following a link, by the site's owner (src/privilege.rs).
    let nginx_rel = files
        .dir
        .strip_prefix(site.root())
        .unwrap_or(Path::new("var/nginx"));
    for name in TEMP_DIRS {
        let dir = files.dir.join("tmp").join(name);
        crate::fsutil::ensure_dir_beneath(site.root(), &nginx_rel.join("tmp").join(name))
            .map_err(|e| NginxError::io(&dir, e))?;
    }
    let mime = files.mime_types();
    if std::fs::read_to_string(&mime).ok().as_deref() != Some(MIME_TYPES) {
        write_atomic(&mime, MIME_TYPES.as_bytes(), None).map_err(|e| NginxError::io(&mime, e))?;
    }
    let page = site.maintenance_dir().join("maintainance.html");
    if !page.exists() {
        write_atomic(&page, MAINTENANCE_PAGE.as_bytes(), None)
            .map_err(|e| NginxError::io(&page, e))?;
    }
    let static_root = &settings.static_root;
    match static_root.strip_prefix(site.root()) {
        Ok(rel) if !rel.as_os_str().is_empty() => {
            crate::fsutil::ensure_dir_beneath(site.root(), rel).map(drop)
        }
        _ if static_root.is_dir() => Ok(()),
        _ => crate::privilege::refuse_outside_site(site.root(), static_root)
            .and_then(|()| std::fs::create_dir_all(static_root)),
    }
    .map_err(|e| NginxError::io(static_root, e))?;
    Ok(())
}

/// Whether the private nginx runs, judged by process identity, not by the pid file
/// alone (a stale file may name a reused pid).
pub fn status(site: &Site) -> Result<Status, NginxError> {
    let files = Files::of(site);
    // A pid file that is gone, garbage or names another process does not make a
    // running master stopped: the same identity check finds it among all processes
    // (else status would say "not started", stop leave it serving, start fail to bind).
    let Some(pid) = read_master_pid(&files.pid())
        .filter(|&pid| is_master_of(pid, &files))
        .or_else(|| find_master(&files))
    else {
        return Ok(Status::NotRunning);
    };
    let port = std::fs::read_to_string(files.port())
        .ok()
        .and_then(|text| text.trim().parse().ok());
    Ok(Status::Running(Running { pid, port }))
}

/// Starts the private nginx on `http_port` (default 8080) and returns once it serves:
/// its pid file names a live master of this config and the port accepts connections.
/// On failure the error carries nginx's own error lines.
pub fn start(
    site: &Site,
    settings: &Settings,
    http_port: Option<u16>,
) -> Result<Running, NginxError> {
    start_front(site, settings, http_port, &[])
}

/// [`start`] with the upstream of a fleet's front (empty: the site's own pool).
pub fn start_front(
    site: &Site,
    settings: &Settings,
    http_port: Option<u16>,
    upstream_servers: &[String],
) -> Result<Running, NginxError> {
    if let Status::Running(running) = status(site)? {
        return Err(NginxError::AlreadyRunning { pid: running.pid });
    }
    let nginx = find_nginx()?;
    let files = Files::of(site);
    // Without --http, the port of the last start (var/nginx/port), else 8080.
    let remembered = std::fs::read_to_string(files.port())
        .ok()
        .and_then(|text| text.trim().parse::<u16>().ok());
    let port = http_port.or(remembered).unwrap_or(DEFAULT_PORT);
    // Root binds a port below 1024 for the owner only when its own command line named
    // it (src/privilege.rs), never because a file the owner writes says so.
    if port < 1024
        && crate::privilege::acting_for_root().is_some()
        && crate::privilege::kept_listener(port).is_none()
    {
        return Err(NginxError::StartFailed {
            reason: format!(
                "port {port} is below 1024 and came from var/nginx/port: as root, name it on the command line (nginx start --http {port}) to have it bound for the site's owner"
            ),
            nginx_lines: Vec::new(),
        });
    }
    let text = render_front_config(site, settings, port, upstream_servers)?;
    prepare(site, settings)?;
    let report = check(&text, NginxKind::NginxDevelopment)?;
    if !report.ok {
        return Err(NginxError::StartFailed {
            reason: "nginx -t refused the config".into(),
            nginx_lines: report.nginx_lines,
        });
    }
    write_atomic(&files.conf(), text.as_bytes(), None)
        .map_err(|e| NginxError::io(&files.conf(), e))?;
    write_atomic(&files.port(), format!("{port}\n").as_bytes(), None)
        .map_err(|e| NginxError::io(&files.port(), e))?;
    // The pid file, if any, is stale (status said not running).
    let _ = std::fs::remove_file(files.pid());

    let log = files.error_log();
    let log_offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| NginxError::io(&log, e))?;
    // nginx forks its master into the background and exits; messages from before
    // that go to the error log (-e), as does our launcher's stderr.
    let mut command = Command::new(&nginx);
    command
        .arg("-p")
        .arg(prefix_arg(&files.dir))
        .arg("-c")
        .arg(files.conf())
        .arg("-e")
        .arg(&log)
        .current_dir(&files.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    let spawn_error = |source| NginxError::Spawn {
        program: nginx.clone(),
        source,
    };
    // A privileged port root bound before dropping to the site's owner: nginx (run as
    // the owner) inherits it as in its binary upgrade, and then does not daemonize
    // itself, so it is started in a session of its own and not waited for.
    let mut inheriting = match crate::privilege::kept_listener(port) {
        None => {
            let launched = command.status().map_err(spawn_error)?;
            if !launched.success() {
                return Err(NginxError::StartFailed {
                    reason: format!("nginx exited with {launched}"),
                    nginx_lines: log_lines_since(&log, log_offset),
                });
            }
            None
        }
        Some(listener) => {
            let fd = std::os::fd::AsRawFd::as_raw_fd(listener);
            command.env("NGINX", crate::privilege::nginx_inherit_value(listener));
            crate::proc::process::detach(&mut command);
            // SAFETY: fcntl is async-signal-safe; only the child's descriptor is changed.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            Some(command.spawn().map_err(spawn_error)?)
        }
    };

    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Some(child) = inheriting.as_mut()
            && let Ok(Some(exited)) = child.try_wait()
        {
            return Err(NginxError::StartFailed {
                reason: format!("nginx exited with {exited}"),
                nginx_lines: log_lines_since(&log, log_offset),
            });
        }
        if let Some(pid) = read_master_pid(&files.pid())
            && is_master_of(pid, &files)
            && port_accepts(port)
        {
            return Ok(Running {
                pid,
                port: Some(port),
            });
        }
        if Instant::now() >= deadline {
            return Err(NginxError::StartFailed {
                reason: format!(
                    "not serving on port {port} after {} s",
                    START_DEADLINE.as_secs()
                ),
                nginx_lines: log_lines_since(&log, log_offset),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Re-renders the config (keeping the port it was started on), tests it with
/// `nginx -t`, and only then swaps it in and signals the master to reload. A config
/// nginx refuses leaves the running instance and its config file untouched.
pub fn reload(site: &Site, settings: &Settings) -> Result<Running, NginxError> {
    reload_front(site, settings, &[])
}

/// [`reload`] with the upstream of a fleet's front (empty: the site's own pool).
pub fn reload_front(
    site: &Site,
    settings: &Settings,
    upstream_servers: &[String],
) -> Result<Running, NginxError> {
    let Status::Running(running) = status(site)? else {
        return Err(NginxError::NotRunning);
    };
    let files = Files::of(site);
    let port = running.port.unwrap_or(DEFAULT_PORT);
    let text = render_front_config(site, settings, port, upstream_servers)?;
    prepare(site, settings)?;
    let report = check(&text, NginxKind::NginxDevelopment)?;
    if !report.ok {
        return Err(NginxError::CheckFailed {
            nginx_lines: report.nginx_lines,
        });
    }
    write_atomic(&files.conf(), text.as_bytes(), None)
        .map_err(|e| NginxError::io(&files.conf(), e))?;
    // SIGHUP is what `nginx -s reload` sends; signalling directly spares nginx from
    // parsing the config just to find the pid file, and uses the pid we verified.
    signal_master(running.pid, &files, Signal::SIGHUP)?;
    Ok(Running {
        pid: running.pid,
        port: Some(port),
    })
}

/// Stops the private nginx gracefully (SIGQUIT, as `nginx -s quit`: in-flight
/// requests finish), waits for the master to exit, and falls back to SIGTERM after a
/// deadline. Returns the pid it stopped, or `None` if nothing was running.
pub fn stop(site: &Site) -> Result<Option<i32>, NginxError> {
    let Status::Running(running) = status(site)? else {
        return Ok(None);
    };
    let files = Files::of(site);
    let pid = running.pid;
    signal_master(pid, &files, Signal::SIGQUIT)?;
    if wait_for_exit(pid, &files, QUIT_DEADLINE) {
        return Ok(Some(pid));
    }
    signal_master(pid, &files, Signal::SIGTERM)?;
    if wait_for_exit(pid, &files, TERM_DEADLINE) {
        return Ok(Some(pid));
    }
    Err(NginxError::StopFailed {
        pid,
        reason: format!(
            "still running {} s after SIGQUIT and SIGTERM",
            (QUIT_DEADLINE + TERM_DEADLINE).as_secs()
        ),
    })
}

/// Sends `signal` only if `pid` is still this site's nginx master. One that exited in
/// the meantime is fine: there is nothing left to signal.
fn signal_master(pid: i32, files: &Files, signal: Signal) -> Result<(), NginxError> {
    if !is_master_of(pid, files) {
        return Ok(());
    }
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(errno) => Err(NginxError::StopFailed {
            pid,
            reason: format!("cannot send {signal}: {errno}"),
        }),
    }
}

/// Until `pid` is no longer this site's nginx master (exited, or PID reused).
fn wait_for_exit(pid: i32, files: &Files, deadline: Duration) -> bool {
    crate::proc::process::wait_until_exited(deadline, || !is_master_of(pid, files))
}

/// The master PID in nginx's pid file, as `kill` takes it (`read_pid` keeps it within `pid_t`).
fn read_master_pid(path: &Path) -> Option<i32> {
    let pid = crate::proc::pidfile::read_pid(path).ok().flatten()?;
    i32::try_from(pid).ok()
}

/// Whether `pid` is the nginx master running this site's config: nginx rewrites the
/// master's command line to `nginx: master process <argv>`, and our argv names the
/// config file. A process that exited (also one left as a zombie, whose command line
/// is empty) or any other process does not match.
fn is_master_of(pid: i32, files: &Files) -> bool {
    let cmdline = crate::proc::cmdline(pid as u32).join(" ");
    let conf = files.conf().display().to_string();
    cmdline.starts_with("nginx: master process ")
        && cmdline.split_whitespace().any(|word| word == conf)
}

/// The master of this site's config among all processes, for when its pid file
/// does not name it.
fn find_master(files: &Files) -> Option<i32> {
    crate::proc::all_pids()
        .into_iter()
        .filter_map(|pid| i32::try_from(pid).ok())
        .find(|&pid| is_master_of(pid, files))
}

fn port_accepts(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok()
}

/// The error-log lines written since `offset` (what this start attempt produced).
fn log_lines_since(path: &Path, offset: u64) -> Vec<String> {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.seek(std::io::SeekFrom::Start(offset));
        let _ = file.read_to_string(&mut text);
    }
    text.lines()
        .map(|line| super::check::tidy_line(line, Path::new("/nonexistent")))
        .filter(|line| !line.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_remembered_once_for_start_reload_and_the_panel() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::new(dir.path());
        assert_eq!(remembered_port(&site), None);
        remember_port(&site, 8099).unwrap();
        assert_eq!(remembered_port(&site), Some(8099));
        assert!(config_path(&site).ends_with("var/nginx/nginx.conf"));
    }

    #[test]
    fn a_pid_that_is_not_our_nginx_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::new(dir.path());
        let files = Files::of(&site);
        std::fs::create_dir_all(&files.dir).unwrap();
        assert_eq!(status(&site).unwrap(), Status::NotRunning);
        // Our own pid is alive but is not an nginx master: never signalled.
        std::fs::write(files.pid(), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(status(&site).unwrap(), Status::NotRunning);
        assert_eq!(stop(&site).unwrap(), None);
        std::fs::write(files.pid(), "garbage\n").unwrap();
        assert_eq!(status(&site).unwrap(), Status::NotRunning);
    }

    #[test]
    fn prepare_lays_out_var_nginx() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::new(dir.path());
        let config =
            crate::config::Config::from_text(&site, site.config_file(), String::new(), None)
                .unwrap();
        let settings = config.settings();
        let page = site.maintenance_dir().join("maintainance.html");
        std::fs::create_dir_all(page.parent().unwrap()).unwrap();
        std::fs::write(&page, "ours").unwrap();
        prepare(&site, &settings).unwrap();
        for name in TEMP_DIRS {
            assert!(site.nginx_dir().join("tmp").join(name).is_dir(), "{name}");
        }
        assert_eq!(
            std::fs::read_to_string(site.nginx_dir().join("mime.types")).unwrap(),
            MIME_TYPES
        );
        // An operator's maintenance page is kept.
        assert_eq!(std::fs::read_to_string(&page).unwrap(), "ours");
        assert!(settings.static_root.is_dir());
    }
}
