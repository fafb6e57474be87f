//! `scale` and `kill-worker`: through Gunicorn's control socket (`worker add|remove|
//! kill`), with TTIN/TTOU/TERM as the fallback for a master started without one
//! (signals sent back to back coalesce, so one at a time, waiting for the count).

use std::time::Duration;

use nix::sys::signal::Signal;

use super::{CTL_TIMEOUT, Gunicorn, control, process};
use crate::supervisor::{ControlResponse, Scale, pid_list};

impl Gunicorn {
    pub(super) fn scale_gunicorn(&self, change: Scale) -> anyhow::Result<ControlResponse> {
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
                pid_list(&pids)
            ))),
            Err(reason) => Ok(ControlResponse::failed(format!(
                "asked Gunicorn for {target} workers, but {reason}"
            ))),
        }
    }

    pub(super) fn kill_gunicorn_worker(&self, worker: u32) -> anyhow::Result<ControlResponse> {
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
}
