//! The rolling restart (reload) and the stop, carrying out the arbiter's decisions.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::{ExtraLogs, Generation, Master, Reload, Stopping, preflight};
use crate::pool::arbiter;
use crate::pool::protocol::ControlResponse;
use crate::status::WorkerState;

impl Master {
    // ---- reload --------------------------------------------------------------------

    pub(super) fn begin_reload(&mut self, waiters: Vec<oneshot::Sender<ControlResponse>>) {
        if self.stopping.is_some() {
            for w in waiters {
                let _ = w.send(ControlResponse::failed("the pool is stopping"));
            }
            return;
        }
        if self.reload.is_some() {
            // The config may have changed again since this reload read it: run another
            // one when it ends, rather than answering "done" for a config never read.
            self.info(
                crate::here!(),
                "Reload requested during a reload: it runs when this one ends".into(),
            );
            self.queued_reload
                .get_or_insert_with(Vec::new)
                .extend(waiters);
            return;
        }
        self.info(
            crate::here!(),
            "Handling signal: hup — reloading the configuration".into(),
        );
        // READY=1 follows whatever the outcome: refused, aborted or complete, the pool
        // serves again when the reload ends.
        self.notifier.reloading();
        let checked = preflight(&self.site).and_then(|(config, settings, wsgi)| {
            let logs = ExtraLogs::open(&self.site, &wsgi)?;
            Ok((config, settings, wsgi, logs))
        });
        let (config, mut settings, wsgi, extra_logs) = match checked {
            Ok(x) => x,
            Err(reason) => {
                let message = format!("Reload refused: {reason}; the pool keeps running unchanged");
                self.error(crate::here!(), message.clone());
                let line = self.systemd_status_line();
                self.notifier.ready(&line);
                for w in waiters {
                    let _ = w.send(ControlResponse::failed(message.clone()));
                }
                return;
            }
        };
        if settings.bind() != self.settings.bind() {
            self.warning(crate::here!(), format!(
                "application_server host/port changed to {}; a restart applies it, the pool keeps {}",
                settings.bind(),
                self.settings.bind()
            ));
            settings.host = self.settings.host.clone();
            settings.port = self.settings.port;
        }
        let old_workers: Vec<u64> = self
            .workers
            .iter()
            .filter(|(_, w)| w.state.is_active())
            .map(|(&id, _)| id)
            .collect();
        let mut applied = config.applied_values();
        for key in [
            "omero.web.application_server.host",
            "omero.web.application_server.port",
        ] {
            // The listener is kept over a reload: these stay what they were.
            if let Some(old) = self.applied.get(key) {
                applied.insert(key.to_string(), old.clone());
            }
        }
        let previous = Generation {
            applied: std::mem::replace(&mut self.applied, applied),
            settings: std::mem::replace(&mut self.settings, settings),
            wsgi: std::mem::replace(&mut self.wsgi, wsgi),
            number: self.generation,
            target: self.target,
        };
        self.generation += 1;
        self.target = self.settings.workers as usize;
        let previous_logs = std::mem::replace(&mut self.extra_logs, extra_logs);
        self.info(
            crate::here!(),
            format!(
                "Reload: starting generation {} ({} {} workers), replacing {} one by one",
                self.generation,
                self.target,
                self.settings.effective_worker_class().as_str(),
                old_workers.len()
            ),
        );
        if let Some(note) = self.wsgi.no_effect_note() {
            self.warning(crate::here!(), note);
        }
        self.reload = Some(Reload {
            previous,
            previous_logs,
            old_workers,
            started: 0,
            pending: None,
            pending_failure: None,
            waiters,
            retired: Vec::new(),
            retired_at: None,
        });
    }

    /// One step of the rolling restart (`arbiter::reload_step`): wait for the pending
    /// new worker, start the next; once all are ready, retire the old ones. Abort
    /// (keeping the old workers) if one fails.
    pub(super) fn advance_reload(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let Some(mut reload) = self.reload.take() else {
            return;
        };
        let view = arbiter::ReloadView {
            started: reload.started,
            pending: reload.pending,
            pending_failure: reload.pending_failure.as_deref(),
            retired: &reload.retired,
            retired_at: reload.retired_at,
        };
        match arbiter::reload_step(&view, &self.table(), self.target, Instant::now()) {
            arbiter::ReloadStep::Wait => self.reload = Some(reload),
            arbiter::ReloadStep::Complete => self.complete_reload(reload),
            arbiter::ReloadStep::Abort(reason) => self.abort_reload(reload, reason),
            arbiter::ReloadStep::SpawnNext { slot } => {
                reload.pending = None;
                match self.spawn_worker(slot) {
                    Ok(id) => {
                        reload.started += 1;
                        reload.pending = Some(id);
                        self.reload = Some(reload);
                    }
                    Err(e) => self.abort_reload(reload, e),
                }
            }
            arbiter::ReloadStep::RetireOld => {
                reload.pending = None;
                for old in std::mem::take(&mut reload.old_workers) {
                    if self.workers.get(&old).is_some_and(|w| w.state.is_active()) {
                        self.retire(old);
                        reload.retired.push(old);
                    }
                }
                reload.retired_at = Some(Instant::now());
                // Answered by the next step, once the old workers confirm.
                self.reload = Some(reload);
                self.advance_reload();
            }
        }
    }

    /// Ends a reload whose old workers no longer accept connections.
    pub(super) fn complete_reload(&mut self, reload: Reload) {
        let message = format!(
            "Reload complete: generation {} with {} workers",
            self.generation, self.target
        );
        self.info(crate::here!(), message.clone());
        // Before the waiters hear of it: `systemctl reload` (whose ExecReload is such a
        // waiter) returns once systemd knows the unit is ready again.
        let line = self.systemd_status_line();
        self.notifier.ready(&line);
        for waiter in reload.waiters {
            let _ = waiter.send(ControlResponse::ok(message.clone()));
        }
        self.run_queued_reload();
    }

    /// Starts the reload that was asked for while the last one ran.
    pub(super) fn run_queued_reload(&mut self) {
        if let Some(waiters) = self.queued_reload.take() {
            self.begin_reload(waiters);
        }
    }

    pub(super) fn abort_reload(&mut self, reload: Reload, reason: String) {
        let detail = reason;
        let new_generation = self.generation;
        let new_ids: Vec<u64> = self
            .workers
            .iter()
            .filter(|(_, w)| w.generation == new_generation)
            .map(|(&id, _)| id)
            .collect();
        for id in new_ids {
            if let Some(w) = self.workers.get_mut(&id) {
                w.killed_by_master = true;
            }
            self.retire(id);
        }
        let Generation {
            settings,
            applied,
            wsgi,
            number: generation,
            target,
        } = reload.previous;
        self.settings = settings;
        self.applied = applied;
        self.wsgi = wsgi;
        self.generation = generation;
        self.target = target;
        self.extra_logs = reload.previous_logs;
        let message = format!(
            "Reload aborted: {detail}; keeping the running workers (generation {generation})"
        );
        self.error(crate::here!(), message.clone());
        let line = self.systemd_status_line();
        self.notifier.ready(&line);
        for waiter in reload.waiters {
            let _ = waiter.send(ControlResponse::failed(message.clone()));
        }
        self.run_queued_reload();
    }

    // ---- stopping ------------------------------------------------------------------

    pub(super) fn begin_stop(&mut self, quick: bool) {
        if self.stopping.as_ref().is_some_and(|s| s.killed) {
            return;
        }
        let (grace, signal, ids) =
            arbiter::stop_plan(&self.table(), quick, self.settings.graceful_timeout);
        if self.stopping.is_none() {
            self.notifier.stopping();
        }
        let deadline = Instant::now() + Duration::from_secs(grace);
        let deadline = match &self.stopping {
            Some(s) => s.deadline.min(deadline),
            None => deadline,
        };
        self.stopping = Some(Stopping {
            deadline,
            killed: false,
        });
        let reload_waiters = self.reload.take().map(|r| r.waiters).unwrap_or_default();
        let queued = self.queued_reload.take().unwrap_or_default();
        for waiter in reload_waiters.into_iter().chain(queued) {
            let _ = waiter.send(ControlResponse::failed("the pool is stopping"));
        }
        for id in ids {
            if let Some(worker) = self.workers.get_mut(&id) {
                worker.state = WorkerState::Retiring;
                let _ = worker.process.signal(signal);
            }
        }
    }

    /// True once every worker is gone; kills stragglers after the deadline.
    pub(super) fn stop_finished(&mut self) -> bool {
        let Some(stopping) = &mut self.stopping else {
            return false;
        };
        let now = Instant::now();
        match arbiter::stop_step(self.workers.len(), now, stopping.deadline, stopping.killed) {
            arbiter::StopStep::Done => true,
            arbiter::StopStep::Wait => false,
            arbiter::StopStep::KillRemaining => {
                stopping.killed = true;
                stopping.deadline = now + arbiter::KILLED_REAP_WAIT;
                for worker in self.workers.values_mut() {
                    worker.killed_by_master = true;
                    let _ = worker.process.signal(Signal::SIGKILL);
                }
                self.warning(
                    crate::here!(),
                    "Graceful timeout passed: killed the remaining workers".into(),
                );
                false
            }
        }
    }
}
