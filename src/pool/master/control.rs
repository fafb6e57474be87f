//! Signals, control-socket requests, the status they answer, and systemd's STATUS line.

use std::time::Instant;

use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::{Event, ExtraLogs, Master, STATUS_EVERY};
use crate::pool::arbiter;
use crate::pool::protocol::{ControlRequest, ControlResponse, PoolStatus, WorkerStatus};
use crate::status::activity::unix_now;
use crate::status::{ServerState, WorkerState};

impl Master {
    // ---- systemd -------------------------------------------------------------------

    /// What `systemctl status` shows: the state, workers serving, the request rate.
    pub(super) fn systemd_status_line(&mut self) -> String {
        let requests = self.retired.requests
            + self
                .workers
                .values()
                .map(|w| w.counters.snapshot().requests)
                .sum::<u64>();
        let (at, before) = self.rate_sample;
        let secs = at.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            requests.saturating_sub(before) as f64 / secs
        } else {
            0.0
        };
        self.rate_sample = (Instant::now(), requests);
        let ready = self
            .workers
            .values()
            .filter(|w| w.state == WorkerState::Ready)
            .count();
        let state = if self.backoff.is_degraded() {
            "Degraded (workers keep crashing)"
        } else {
            "Serving"
        };
        format!(
            "{state}: {ready} of {} workers ready, {rate:.1} req/s, {requests} requests",
            self.target
        )
    }

    /// Refreshes the STATUS line every few seconds while the pool simply runs (start,
    /// reload and stop send their own).
    pub(super) fn update_systemd_status(&mut self) {
        if !self.notifier.is_enabled()
            || self.ready_report.is_some()
            || self.reload.is_some()
            || self.stopping.is_some()
            || self.rate_sample.0.elapsed() < STATUS_EVERY
        {
            return;
        }
        let line = self.systemd_status_line();
        self.notifier.status(&line);
    }

    // ---- signals and control -------------------------------------------------------

    pub(super) fn forward_signals(&self) {
        use tokio::signal::unix::{SignalKind, signal};
        let pairs = [
            (SignalKind::terminate(), Signal::SIGTERM),
            (SignalKind::interrupt(), Signal::SIGINT),
            (SignalKind::quit(), Signal::SIGQUIT),
            (SignalKind::hangup(), Signal::SIGHUP),
            (SignalKind::user_defined1(), Signal::SIGUSR1),
            (SignalKind::from_raw(libc::SIGTTIN), Signal::SIGTTIN),
            (SignalKind::from_raw(libc::SIGTTOU), Signal::SIGTTOU),
        ];
        for (kind, sig) in pairs {
            let events = self.events.clone();
            let mut stream = signal(kind).expect("signal handler");
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    let _ = events.send(Event::Signal(sig));
                }
            });
        }
    }

    pub(super) fn handle_signal(&mut self, signal: Signal) {
        self.info(
            crate::here!(),
            format!(
                "Handling signal: {}",
                signal.as_str().trim_start_matches("SIG").to_lowercase()
            ),
        );
        match signal {
            Signal::SIGTERM => self.begin_stop(false),
            Signal::SIGINT | Signal::SIGQUIT => self.begin_stop(true),
            Signal::SIGHUP => self.begin_reload(Vec::new()),
            Signal::SIGUSR1 => {
                let _ = self.reopen_logs();
            }
            Signal::SIGTTIN => self.scale(self.target as i64 + 1),
            Signal::SIGTTOU => self.scale(self.target as i64 - 1),
            _ => {}
        }
    }

    pub(super) fn handle_control(
        &mut self,
        request: ControlRequest,
        reply: oneshot::Sender<ControlResponse>,
    ) {
        let response = match request {
            ControlRequest::Status => ControlResponse {
                ok: true,
                message: String::new(),
                status: Some(self.status()),
            },
            ControlRequest::Stop { quick } => {
                self.info(
                    crate::here!(),
                    format!(
                        "Stop requested ({})",
                        if quick { "quick" } else { "graceful" }
                    ),
                );
                self.begin_stop(quick);
                ControlResponse::ok("stopping")
            }
            ControlRequest::Reload => return self.begin_reload(vec![reply]),
            ControlRequest::Scale { to, by } => {
                let target = match (to, by) {
                    (Some(n), _) => n as i64,
                    (None, Some(d)) => self.target as i64 + d as i64,
                    (None, None) => self.target as i64,
                };
                if target < 1 {
                    ControlResponse::failed(format!("cannot scale to {target}: at least 1 worker"))
                } else if let Some(refusal) = crate::config::registry::scale_refusal(target) {
                    ControlResponse::failed(refusal)
                } else {
                    self.scale(target);
                    ControlResponse::ok(format!("scaling to {} workers", self.target))
                }
            }
            ControlRequest::Reopen => match self.reopen_logs() {
                Ok(()) => ControlResponse::ok("log files reopened"),
                Err(message) => ControlResponse::failed(message),
            },
            ControlRequest::KillWorker { pid } => {
                match self.workers.values_mut().find(|w| w.pid == pid) {
                    Some(worker) => {
                        worker.killed_by_master = true;
                        worker.killed_on_request = true;
                        let _ = worker.process.signal(Signal::SIGKILL);
                        self.warning(
                            crate::here!(),
                            format!("Worker (pid:{pid}) killed on request"),
                        );
                        ControlResponse::ok(format!("killed worker {pid}; the pool replaces it"))
                    }
                    None => ControlResponse::failed(format!("no worker with pid {pid}")),
                }
            }
        };
        let _ = reply.send(response);
    }

    pub(super) fn scale(&mut self, target: i64) {
        // TTIN past the limit does nothing; the control socket refuses it with a reason.
        let target = arbiter::scale_target(target);
        if target != self.target {
            self.info(
                crate::here!(),
                format!("Scaling from {} to {target} workers", self.target),
            );
            self.target = target;
            self.manage_workers();
        }
    }

    /// Reopens the log files (USR1 / `reopen`); the error, if any, is logged (through
    /// the old file when the new one cannot be opened) and returned.
    pub(super) fn reopen_logs(&mut self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Err(e) = self.log.reopen() {
            problems.push(format!("cannot reopen {}: {e}", self.log.path().display()));
        }
        match ExtraLogs::open(&self.site, &self.wsgi) {
            Ok(logs) => self.extra_logs = logs,
            Err(e) => problems.push(e),
        }
        if problems.is_empty() {
            self.info(crate::here!(), "Log files reopened".into());
            Ok(())
        } else {
            let message = problems.join("; ");
            self.error(crate::here!(), message.clone());
            Err(message)
        }
    }

    pub(super) fn status(&self) -> PoolStatus {
        let now = Instant::now();
        let mut totals = self.retired.clone();
        let workers = self
            .workers
            .values()
            .map(|w| {
                let stats = w.counters.snapshot();
                totals.add(&stats);
                WorkerStatus {
                    pid: w.pid,
                    state: w.state,
                    age_secs: now.duration_since(w.spawned_at).as_secs_f64(),
                    generation: w.generation,
                    restarts: self
                        .slot_restarts
                        .get(&(w.generation, w.slot))
                        .copied()
                        .unwrap_or(0),
                    requests: stats.requests,
                    in_flight: Some(stats.in_flight),
                    status_2xx: stats.status_2xx,
                    status_3xx: stats.status_3xx,
                    status_4xx: stats.status_4xx,
                    status_5xx: stats.status_5xx,
                    bytes_sent: stats.bytes_sent,
                    latency_p50: stats.percentile(50.0),
                    latency_p95: stats.percentile(95.0),
                    latency_p99: stats.percentile(99.0),
                    last_heartbeat_secs: now.duration_since(w.last_heartbeat).as_secs_f64(),
                    activity: w.activity.clone(),
                }
            })
            .collect();
        let mut warnings: Vec<String> = self.wsgi.no_effect_note().into_iter().collect();
        warnings.extend(self.settings.public_bind_warning());
        if let Some(why) = &self.last_stuck {
            warnings.push(format!(
                "{} worker(s) replaced for stuck blocking work; last: {why}",
                self.stuck_replaced
            ));
        }
        if self.backoff.is_degraded() {
            warnings.push(format!(
                "workers keep crashing: {} recent failures, next restart delayed {:.1}s",
                self.backoff.recent_failures(),
                self.backoff.delay().as_secs_f64()
            ));
        }
        warnings.extend(crate::pool::spec::sync_downloads_warning(&self.settings));
        let state = if self.stopping.is_some() {
            ServerState::Stopping
        } else if self.ready_report.is_some() {
            ServerState::Starting
        } else if self.reload.is_some() {
            ServerState::Reloading
        } else if self.backoff.is_degraded() {
            ServerState::Degraded
        } else {
            ServerState::Running
        };
        PoolStatus {
            kind: crate::site::SiteKind::Embedded,
            versions: [(
                "omero-webctl".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )]
            .into(),
            state,
            master_pid: std::process::id(),
            uptime_secs: self.started_at.elapsed().as_secs(),
            started_at: unix_now().saturating_sub(self.started_at.elapsed().as_secs()),
            bind: self.settings.bind(),
            worker_class: self.settings.effective_worker_class().as_str().into(),
            target_workers: self.target as u32,
            generation: self.generation,
            log_file: self.log.path().display().to_string(),
            applied: self.applied.clone(),
            totals,
            restarts: self.restarts,
            stuck_replaced: self.stuck_replaced,
            workers,
            warnings,
        }
    }
}
