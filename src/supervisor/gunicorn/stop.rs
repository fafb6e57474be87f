//! `stop`: TERM (graceful) or INT (quick) to the master, KILL when it outlives its
//! graceful timeout; then, by start time (a PID can be reused), no worker of it stays.
//! Without a master, what a dead one left (orphans, a stale pid file) is cleared.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::master::Master;
use super::wait_gone;
use super::{Gunicorn, process};
use crate::supervisor::StopOutcome;

impl Gunicorn {
    pub(super) fn stop_gunicorn(&self, quick: bool) -> anyhow::Result<StopOutcome> {
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
                wait_gone(*worker, Duration::from_secs(5));
                if crate::proc::process_start_time(*worker) == *started {
                    let _ = self.signal(*worker, Signal::SIGKILL);
                    outcome = StopOutcome::Killed { pid };
                }
            }
        }
        // Gunicorn removes its pid file; after a SIGKILL nobody did.
        let pid_file = self.site.django_pid_file();
        if crate::proc::pidfile::read_pid(&pid_file).ok().flatten() == Some(pid) {
            let _ = std::fs::remove_file(&pid_file);
        }
        Ok(outcome)
    }
}
