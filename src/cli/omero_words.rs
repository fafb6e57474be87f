//! `--omero-compat`: `start`, `stop`, `restart` and `status` print what OMERO's own
//! `omero web start|stop|restart|status` print (omero-web 5.33, `omero/plugins/web.py`):
//! the same words, on the same streams, with the same exit codes, for scripts written
//! against `omero web`. Only where OMERO's answer would be untrue do we differ: a start
//! that fails says `[FAILED]` and exits 1 (OMERO says `[OK]` once Gunicorn is spawned,
//! even when it dies at once), and a stop waits for the workers to exit before saying
//! they were killed. docs/omeroweb.md's table lists every difference.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::site::Site;
use crate::supervisor::{self, StartOutcome, StatusOutcome, StopOutcome};

/// `omero web start` on a running site dies with return code 606; a process exit status
/// holds its low byte, so the shell sees 94.
pub const EXIT_ALREADY_STARTED: u8 = (606 % 256) as u8;

/// OMERO's `ctx.out(text, newline=False)`: stdout, flushed, so the words before a
/// result come first even when the result goes to stderr.
fn out_part(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

/// What OMERO prints to stderr for a pid file whose process is gone (`_check_pid`).
fn no_such_process(pid: Option<u32>, pid_file: &Path) {
    let pid = pid.map(|p| p.to_string()).unwrap_or_else(|| "None".into());
    eprintln!(
        "[ERROR] OMERO.web workers (PID {pid}) - no such process. Use `ps aux | grep {}` and kill stale processes by hand.",
        pid_file.display()
    );
}

/// Both kinds of site write OMERO's `var/django.pid`; OMERO's messages name it.
fn pid_file(site: &Site) -> std::path::PathBuf {
    site.django_pid_file()
}

pub fn start(site: &Site) -> anyhow::Result<ExitCode> {
    let supervisor = supervisor::for_site(site);
    out_part("Starting OMERO.web... ");
    match supervisor.start() {
        StartOutcome::Started { stale_pid, .. } => {
            if let Some(old) = stale_pid {
                no_such_process(Some(old), &pid_file(site));
                eprintln!("WARNING: Removed stale {}", pid_file(site).display());
            }
            println!("[OK]");
            Ok(ExitCode::SUCCESS)
        }
        StartOutcome::AlreadyRunning { pid } => {
            eprintln!(
                "[FAILED] OMERO.web already started. {} exists (PID: {pid})! Use 'web stop or restart' first.",
                pid_file(site).display()
            );
            Ok(ExitCode::from(EXIT_ALREADY_STARTED))
        }
        StartOutcome::Failed { reason, log_tail } => {
            println!("[FAILED]");
            eprintln!("{reason}");
            for line in log_tail {
                eprintln!("    {line}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn stop(site: &Site, quick: bool) -> anyhow::Result<ExitCode> {
    let supervisor = supervisor::for_site(site);
    out_part("Stopping OMERO.web... ");
    match supervisor.stop(quick)? {
        StopOutcome::Stopped { pid } | StopOutcome::Killed { pid } => {
            println!("[OK]");
            println!("OMERO.web WSGI workers (PID {pid}) killed.");
        }
        StopOutcome::NotRunning => println!("[NOT STARTED]"),
        StopOutcome::Stale { pid } => {
            no_such_process(pid, &pid_file(site));
            println!("Removed stale {}", pid_file(site).display());
        }
        StopOutcome::Orphans { pids } => {
            // OMERO cannot see these: its pid file names a dead master. Its words for
            // that case, then ours for what we did about the workers it left.
            no_such_process(None, &pid_file(site));
            println!("Removed stale {}", pid_file(site).display());
            eprintln!(
                "Ended {} worker(s) a dead master had left (PIDs {}).",
                pids.len(),
                supervisor::pid_list(&pids)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A restart without a gap (a new generation behind the private nginx) where one can
/// be made, told in `omero web restart`'s words: the old workers stopped, new ones
/// started; else stop, then start, as OMERO does.
pub fn restart(site: &Site) -> anyhow::Result<ExitCode> {
    let supervisor = supervisor::for_site(site);
    let old = match supervisor.status()? {
        StatusOutcome::Running(status) => Some(status.master_pid),
        _ => None,
    };
    if let Some(old) = old
        && let Some(reply) = supervisor.restart_without_gap()?
    {
        if !reply.ok {
            out_part("Starting OMERO.web... ");
            println!("[FAILED]");
            eprintln!("{}", reply.message);
            return Ok(ExitCode::FAILURE);
        }
        println!("Stopping OMERO.web... [OK]");
        println!("OMERO.web WSGI workers (PID {old}) killed.");
        println!("Starting OMERO.web... [OK]");
        return Ok(ExitCode::SUCCESS);
    }
    stop(site, false)?;
    start(site)
}

/// `omero web status` exits 0 whether or not OMERO.web runs.
pub fn status(site: &Site) -> anyhow::Result<ExitCode> {
    let supervisor = supervisor::for_site(site);
    let outcome = supervisor.status()?;
    out_part("OMERO.web status... ");
    match outcome {
        StatusOutcome::Running(status) => println!("[RUNNING] (PID {})", status.master_pid),
        StatusOutcome::NotRunning => eprintln!("[NOT STARTED]"),
        // Gunicorn removed its pid file as it halted: OMERO sees nothing running.
        StatusOutcome::Halted(halt) => {
            eprintln!("[NOT STARTED]");
            eprintln!("WARNING: {}", halt.describe());
        }
        StatusOutcome::Stale { pid, orphans } => {
            no_such_process(pid, &pid_file(site));
            eprintln!("[NOT STARTED]");
            if !orphans.is_empty() {
                eprintln!("WARNING: {}", supervisor::orphans_note(&orphans));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
