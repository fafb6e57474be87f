//! The pool as its clients see it: start (spawn a detached master and wait until it
//! serves), stop (and wait), status, reload, scale. The CLI and the panel both call
//! these; neither talks to the master any other way.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use super::protocol::{self, ControlError, ControlRequest, ControlResponse};
use crate::proc::pidfile::{self, MasterState};
use crate::site::Site;
pub use crate::status::{StartOutcome, StatusOutcome, StopOutcome};

/// Line prefixes of the master's one-line readiness report on its stdout.
pub const READY_OK: &str = "OK ";
pub const READY_FAILED: &str = "FAILED ";

/// Starts a detached master and waits until all its workers serve (or it fails). It
/// runs the binary the site was last switched to (`upgrade --binary`), if any.
pub fn start(site: &Site) -> StartOutcome {
    match super::binaries::site_program(site) {
        Ok(program) => start_program(site, &program, None),
        Err(e) => StartOutcome::Failed {
            reason: format!("cannot find this program: {e}"),
            log_tail: vec![],
        },
    }
}

/// Starts a detached master of `program` and waits until all its workers serve (or
/// it fails). `interim_port`: an interim generation beside the live master
/// (`site` is then `site.interim()`), on that port.
pub fn start_program(
    site: &Site,
    program: &std::path::Path,
    interim_port: Option<u16>,
) -> StartOutcome {
    let settings = match super::master::preflight(site) {
        Ok((_, settings, _)) => settings,
        Err(reason) => {
            return StartOutcome::Failed {
                reason,
                log_tail: vec![],
            };
        }
    };
    let stale_pid = match pidfile::probe(&site.pid_file()) {
        Ok(MasterState::Running { pid }) => return StartOutcome::AlreadyRunning { pid },
        Ok(MasterState::Stale { pid }) => Some(pid.unwrap_or(0)),
        // A live master that lost its pid file (`var/` moved under it) still holds
        // the site: a second one beside it would serve from another config or fail
        // on the port. (An interim start never finds the live master: see there.)
        Ok(MasterState::NotRunning) => match unnamed_master(site) {
            Some(pid) => return StartOutcome::AlreadyRunning { pid },
            None => None,
        },
        Err(e) => {
            return StartOutcome::Failed {
                reason: e.to_string(),
                log_tail: vec![],
            };
        }
    };
    let log_file = settings.log_dir.join(crate::logging::LOG_FILE_NAME);
    let failed = |reason: String| StartOutcome::Failed {
        reason,
        log_tail: crate::logging::tail_lines(&log_file, 12).unwrap_or_default(),
    };
    let mut cmd = std::process::Command::new(program);
    // This very program shows in `ps` under its own name, not `/proc/self/exe`.
    if crate::proc::process::this_program().is_ok_and(|me| me == program)
        && let Some(name) = crate::proc::process::this_program_name()
    {
        cmd.arg0(name);
    }
    cmd.arg("--omerodir").arg(site.root()).arg("master");
    if let Some(port) = interim_port {
        cmd.arg("--interim-port").arg(port.to_string());
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    // Closing this terminal (or the panel) must not stop the web.
    crate::proc::process::detach(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return failed(format!("cannot spawn the master: {e}")),
    };
    let pid = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let wait = Duration::from_secs(settings.boot_timeout + 15);
    let line = match rx.recv_timeout(wait) {
        Ok(line) => line,
        Err(_) => {
            // Still our unreaped child, so its PID is safe to signal: do not leave a
            // master behind that comes up after start said FAILED.
            let _ = child.kill();
            let _ = child.wait();
            return failed(format!(
                "the master (PID {pid}) did not report within {}s and was stopped",
                wait.as_secs()
            ));
        }
    };
    // The master lives on in its own session; reap it only if it already exited.
    let exited = child.try_wait().ok().flatten();
    if let Some(detail) = line.strip_prefix(READY_OK) {
        // Reap the master whenever it exits, so a long-lived caller (the panel) is not
        // left with a zombie child.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        StartOutcome::Started {
            pid,
            detail: detail.trim().to_string(),
            stale_pid,
        }
    } else if let Some(reason) = line.strip_prefix(READY_FAILED) {
        let _ = child.wait();
        failed(reason.trim().to_string())
    } else {
        let status = exited.or_else(|| child.wait().ok());
        failed(format!(
            "the master exited before it was ready ({})",
            status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown status".into())
        ))
    }
}

/// Stops the pool and waits until the master has exited (it holds the port until
/// then, so a following start cannot race for it).
pub fn stop(site: &Site, quick: bool) -> anyhow::Result<StopOutcome> {
    let pid = match pidfile::probe(&site.pid_file())? {
        MasterState::NotRunning => match unnamed_master(site) {
            Some(pid) => pid,
            None => return Ok(StopOutcome::NotRunning),
        },
        MasterState::Stale { pid } => {
            if pidfile::remove_if_stale(&site.pid_file()) {
                let _ = std::fs::remove_file(site.control_socket());
            }
            return Ok(StopOutcome::Stale { pid });
        }
        MasterState::Running { pid } => pid,
    };
    let graceful = crate::config::Config::load(site)
        .map(|c| c.settings().graceful_timeout)
        .unwrap_or(30);
    let request = ControlRequest::Stop { quick };
    if protocol::send(&site.control_socket(), &request, Duration::from_secs(5)).is_err() {
        // The socket is gone or stuck; the pid file lock vouched for this PID.
        let signal = if quick {
            nix::sys::signal::Signal::SIGQUIT
        } else {
            nix::sys::signal::Signal::SIGTERM
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
    }
    let limit = Duration::from_secs(if quick { 5 } else { graceful + 5 });
    if wait_for_exit(site, pid, limit) {
        return Ok(StopOutcome::Stopped { pid });
    }
    // Still running: verify it is still our master before the SIGKILL.
    let still_ours = match pidfile::probe(&site.pid_file()) {
        Ok(MasterState::Running { pid: still }) => still == pid,
        Ok(MasterState::NotRunning) => unnamed_master(site) == Some(pid),
        _ => false,
    };
    if still_ours {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    wait_for_exit(site, pid, Duration::from_secs(10));
    // Only once nobody holds it: never pull a pid file from under a live master.
    if pidfile::remove_if_stale(&site.pid_file()) {
        let _ = std::fs::remove_file(site.control_socket());
    }
    Ok(StopOutcome::Killed { pid })
}

/// Polls until the master no longer holds the pid file and the process is gone.
fn wait_for_exit(site: &Site, pid: u32, limit: Duration) -> bool {
    crate::proc::process::wait_until_exited(limit, || {
        let released = !matches!(
            pidfile::probe(&site.pid_file()),
            Ok(MasterState::Running { .. }) | Err(_)
        );
        released && !crate::proc::is_alive(pid)
    })
}

pub fn status(site: &Site) -> anyhow::Result<StatusOutcome> {
    match pidfile::probe(&site.pid_file())? {
        MasterState::NotRunning => match unnamed_master(site) {
            None => Ok(StatusOutcome::NotRunning),
            Some(pid) => {
                let lost = format!(
                    "no pid file names the running master (PID {pid}): {} was removed under it; `stop` still ends it",
                    site.pid_file().display()
                );
                match request(site, &ControlRequest::Status, Duration::from_secs(5)) {
                    Ok(ControlResponse {
                        status: Some(mut status),
                        ..
                    }) => {
                        status.warnings.push(lost);
                        Ok(StatusOutcome::Running(Box::new(status)))
                    }
                    _ => anyhow::bail!(
                        "{lost}; its control socket {} does not answer either",
                        site.control_socket().display()
                    ),
                }
            }
        },
        MasterState::Stale { pid } => Ok(StatusOutcome::Stale {
            pid,
            orphans: Vec::new(),
        }),
        MasterState::Running { .. } => {
            let reply = request(site, &ControlRequest::Status, Duration::from_secs(5))?;
            match reply.status {
                Some(status) => Ok(StatusOutcome::Running(Box::new(status))),
                None => anyhow::bail!("the master answered without a status: {}", reply.message),
            }
        }
    }
}

/// This site's master when no pid file names it (`var/` removed or moved under a
/// running pool): a process of this program, as our user, started by [`start`] as
/// `--omerodir ROOT master` for this very root (an interim one with `--interim-port
/// N` after it). Else status would call a serving pool stopped and stop would leave it
/// running.
fn unnamed_master(site: &Site) -> Option<u32> {
    let root = std::fs::canonicalize(site.root()).ok()?;
    crate::proc::all_pids().into_iter().find(|&pid| {
        let args = crate::proc::cmdline(pid);
        // An interim master shares the site's root and adds its port: each kind
        // matches only its own, so cleaning up a failed interim never finds (and
        // stops) the live master, and the other way round.
        let (flag, dir, role) = match (site.is_interim(), args.as_slice()) {
            (false, [.., flag, dir, role]) => (flag, dir, role),
            (true, [.., flag, dir, role, port_flag, _port]) if port_flag == "--interim-port" => {
                (flag, dir, role)
            }
            _ => return false,
        };
        flag == "--omerodir"
            && role == "master"
            && std::fs::canonicalize(dir).is_ok_and(|dir| dir == root)
            && pidfile::runs_this_program_as_us(pid)
    })
}

/// Sends a control request to the running master.
pub fn request(
    site: &Site,
    request: &ControlRequest,
    timeout: Duration,
) -> Result<ControlResponse, ControlError> {
    protocol::send(&site.control_socket(), request, timeout)
}

/// A rolling reload; returns when it completed or was aborted.
pub fn reload(site: &Site) -> anyhow::Result<ControlResponse> {
    let (boot, workers) = crate::config::Config::load(site)
        .map(|c| c.settings())
        .map(|s| (s.boot_timeout, s.workers as u64))
        .unwrap_or((30, 5));
    // Each new worker may take up to the boot timeout; add room for retiring.
    let limit = Duration::from_secs(boot * workers.max(1) + 30);
    Ok(request(site, &ControlRequest::Reload, limit)?)
}
