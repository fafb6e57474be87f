//! `start`, `stop`, `restart`, `reload`, `scale`, `status`, and the hidden `master`
//! and `worker` entry points, with OMERO's wording and meaningful exit codes.

use std::io::Write;
use std::process::ExitCode;

use super::EXIT_NOT_RUNNING;
use crate::pool::client::{self, READY_FAILED, READY_OK, StartOutcome, StatusOutcome, StopOutcome};
use crate::pool::protocol::ControlRequest;
use crate::site::Site;

fn say(prefix: &str) {
    print!("{prefix}");
    let _ = std::io::stdout().flush();
}

pub fn start(site: &Site, foreground: bool) -> anyhow::Result<ExitCode> {
    if foreground {
        return Ok(run_foreground(site));
    }
    say("Starting OMERO.web... ");
    match client::start(site) {
        StartOutcome::Started {
            pid,
            detail,
            stale_pid,
        } => {
            println!("[OK]");
            println!("{detail} (master PID {pid})");
            if let Some(old) = stale_pid {
                eprintln!(
                    "WARNING: took over the stale pid file {} (PID {old} was not running)",
                    site.pid_file().display()
                );
            }
            warn_about_downloads(site);
            Ok(ExitCode::SUCCESS)
        }
        StartOutcome::AlreadyRunning { pid } => {
            println!("[FAILED]");
            eprintln!(
                "OMERO.web already started (PID {pid}). Use 'omero-webctl stop' or 'omero-webctl restart' first."
            );
            Ok(ExitCode::FAILURE)
        }
        StartOutcome::Failed { reason, log_tail } => {
            println!("[FAILED]");
            eprintln!("{reason}");
            if !log_tail.is_empty() {
                eprintln!("Last lines of the log:");
                for line in log_tail {
                    eprintln!("    {line}");
                }
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// systemd and containers: the master runs in this process and logs to stderr too.
fn run_foreground(site: &Site) -> ExitCode {
    say("Starting OMERO.web... ");
    let report: crate::pool::master::ReadyReport = Box::new(|result| match result {
        Ok(detail) => {
            println!("[OK]");
            println!("{detail} (master PID {}, foreground)", std::process::id());
        }
        Err(reason) => {
            println!("[FAILED]");
            eprintln!("{reason}");
        }
    });
    ExitCode::from(crate::pool::master::run(site.clone(), true, report))
}

/// The detached master: report readiness on stdout (read by `start`), then let go of
/// it so nothing is written to a closed pipe later.
pub fn master(site: &Site) -> ExitCode {
    let report: crate::pool::master::ReadyReport = Box::new(|result| {
        let line = match result {
            Ok(detail) => format!("{READY_OK}{detail}\n"),
            Err(reason) => format!("{READY_FAILED}{}\n", reason.replace('\n', " ")),
        };
        let mut out = std::io::stdout();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            use std::os::fd::AsRawFd;
            // SAFETY: replaces fd 1 with /dev/null; both descriptors are valid.
            unsafe {
                libc::dup2(null.as_raw_fd(), 1);
            }
        }
    });
    ExitCode::from(crate::pool::master::run(site.clone(), false, report))
}

fn warn_about_downloads(site: &Site) {
    if let Ok(StatusOutcome::Running(status)) = client::status(site) {
        for warning in &status.warnings {
            eprintln!("WARNING: {warning}");
        }
    }
}

pub fn stop(site: &Site, quick: bool) -> anyhow::Result<ExitCode> {
    say("Stopping OMERO.web... ");
    match client::stop(site, quick)? {
        StopOutcome::Stopped { pid } => {
            println!("[OK]");
            println!("OMERO.web workers (PID {pid}) stopped.");
        }
        StopOutcome::Killed { pid } => {
            println!("[OK]");
            eprintln!(
                "OMERO.web (PID {pid}) did not stop within the graceful timeout and was killed."
            );
        }
        StopOutcome::NotRunning => println!("[NOT STARTED]"),
        StopOutcome::Stale { pid } => {
            println!("[NOT STARTED]");
            eprintln!(
                "Removed stale {} (PID {} was not running)",
                site.pid_file().display(),
                pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn restart(site: &Site) -> anyhow::Result<ExitCode> {
    // stop waits for the master to exit, so the port is free for the new one.
    stop(site, false)?;
    start(site, false)
}

pub fn status(site: &Site, json: bool) -> anyhow::Result<ExitCode> {
    let outcome = client::status(site)?;
    if json {
        let value = match &outcome {
            StatusOutcome::Running(status) => serde_json::to_value(status)?,
            StatusOutcome::NotRunning => serde_json::json!({"state": "not running"}),
            StatusOutcome::Stale { pid } => {
                serde_json::json!({"state": "not running", "stale_pid": pid})
            }
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        say("OMERO.web status... ");
        match &outcome {
            StatusOutcome::Running(s) => {
                println!("[RUNNING] (PID {})", s.master_pid);
                println!(
                    "{} · {} {} workers (target {}) on {} · up {}s · {} requests",
                    s.state,
                    s.workers.len(),
                    s.worker_class,
                    s.target_workers,
                    s.bind,
                    s.uptime_secs,
                    s.totals.requests
                );
                for w in &s.workers {
                    println!(
                        "  worker {:>7}  {:8}  age {:>6.0}s  requests {:>8}  in flight {:>3}  restarts {}",
                        w.pid, w.state, w.age_secs, w.requests, w.in_flight, w.restarts
                    );
                }
                for warning in &s.warnings {
                    eprintln!("WARNING: {warning}");
                }
            }
            StatusOutcome::NotRunning => println!("[NOT STARTED]"),
            StatusOutcome::Stale { pid } => println!(
                "[NOT STARTED] (stale pid file of PID {})",
                pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            ),
        }
    }
    Ok(match outcome {
        StatusOutcome::Running(_) => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_NOT_RUNNING),
    })
}

pub fn reload(site: &Site) -> anyhow::Result<ExitCode> {
    say("Reloading OMERO.web... ");
    if !matches!(client::status(site)?, StatusOutcome::Running(_)) {
        println!("[NOT STARTED]");
        return Ok(ExitCode::from(EXIT_NOT_RUNNING));
    }
    let reply = client::reload(site)?;
    Ok(report(&reply))
}

/// `scale N`, `scale +N`, `scale -N`.
pub fn scale(site: &Site, count: &str) -> anyhow::Result<ExitCode> {
    let (to, by) = match count.as_bytes().first() {
        Some(b'+') | Some(b'-') => (
            None,
            Some(count.parse::<i32>().map_err(|_| bad_count(count))?),
        ),
        _ => (
            Some(count.parse::<u32>().map_err(|_| bad_count(count))?),
            None,
        ),
    };
    say("Scaling OMERO.web... ");
    if !matches!(client::status(site)?, StatusOutcome::Running(_)) {
        println!("[NOT STARTED]");
        return Ok(ExitCode::from(EXIT_NOT_RUNNING));
    }
    let reply = client::request(
        site,
        &ControlRequest::Scale { to, by },
        std::time::Duration::from_secs(5),
    )?;
    Ok(report(&reply))
}

/// `[OK]` and the master's message on stdout, or `[FAILED]` and the reason on stderr.
fn report(reply: &crate::pool::protocol::ControlResponse) -> ExitCode {
    if reply.ok {
        println!("[OK]");
        println!("{}", reply.message);
        ExitCode::SUCCESS
    } else {
        println!("[FAILED]");
        eprintln!("{}", reply.message);
        ExitCode::FAILURE
    }
}

fn bad_count(count: &str) -> anyhow::Error {
    anyhow::anyhow!("scale: {count:?} is not a worker count; allowed: N, +N or -N (e.g. 4, +1, -2)")
}
