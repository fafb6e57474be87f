//! Spawning, reaping and the supervision steps, carrying out the arbiter's decisions.

use std::os::fd::AsRawFd;
use std::process::ExitStatus;
use std::time::Instant;

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::startup::high_fd;
use super::{Event, Master, Worker};
use crate::http_app::blocking::Stuck;
use crate::logging::Level;
use crate::pool::arbiter::{self, Action};
use crate::pool::ipc::{IPC_FD, LISTENER_FD, SPEC_ENV, STATS_FD, WorkerMessage};
use crate::pool::shared_stats::SharedStats;
use crate::pool::spec::WorkerSpec;
use crate::proc::process::ProcessHandle;
use crate::status::WorkerState;
use crate::status::activity::WorkerActivity;

impl Master {
    // ---- spawning and reaping ------------------------------------------------------

    /// The spec of the current generation, with a worker's own max_requests.
    pub(super) fn spec(&self) -> WorkerSpec {
        let level = self.wsgi.log_level.unwrap_or(if self.settings.debug {
            Level::Debug
        } else {
            Level::Info
        });
        WorkerSpec::from_settings(
            &self.settings,
            self.app.config(&self.settings),
            self.generation,
            level,
            self.extra_logs.access.is_some(),
        )
        .with_max_requests(
            self.settings.max_requests,
            self.settings.max_requests_jitter,
        )
        .with_forwarded_allow_ips(self.wsgi.forwarded_allow_ips.as_deref())
    }

    pub(super) fn spawn_worker(&mut self, slot: u64) -> Result<u64, String> {
        let id = self.next_id;
        self.next_id += 1;
        let spec = self.spec();
        let (master_end, worker_end) =
            std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string())?;
        // Everything that can fail happens before the spawn: a child is never left
        // unsupervised.
        master_end
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let stream = tokio::net::UnixStream::from_std(master_end).map_err(|e| e.to_string())?;
        let counters = SharedStats::create()?;
        // Above the descriptors the worker gets (3 to 5), so the dup2 calls below can
        // neither be no-ops (which would keep close-on-exec) nor overwrite each other.
        let worker_fd = high_fd(&worker_end.into())?;
        let counters_fd = high_fd(counters.fd())?;
        let listener_fd = self.listener_fd.as_raw_fd();
        let ipc_fd = worker_fd.as_raw_fd();
        let stats_fd = counters_fd.as_raw_fd();
        // The worker program (or this one) as the master found it at start, held
        // open: workers keep matching their master until a restart, even after an
        // upgrade replaced the files on disk.
        let exe = self.worker_program.path().map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new(exe);
        if let Some(name) = self.worker_program.name() {
            cmd.arg0(name);
        }
        cmd.arg("--omerodir")
            .arg(self.site.root())
            .arg("worker")
            .env(
                SPEC_ENV,
                serde_json::to_string(&spec).expect("spec serialises"),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(false);
        // Only the master speaks to systemd.
        for var in crate::pool::notify::ENV_VARS {
            cmd.env_remove(var);
        }
        // SAFETY: only async-signal-safe calls run between fork and exec: dup2, and
        // clearing the signal mask (the master blocks signals while it starts).
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(listener_fd, LISTENER_FD) < 0
                    || libc::dup2(ipc_fd, IPC_FD) < 0
                    || libc::dup2(stats_fd, STATS_FD) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                let empty = nix::sys::signal::SigSet::empty();
                let _ = nix::sys::signal::sigprocmask(
                    nix::sys::signal::SigmaskHow::SIG_SETMASK,
                    Some(&empty),
                    None,
                );
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot spawn a worker: {e}"))?;
        drop(worker_fd);
        drop(counters_fd);
        let Some(pid) = child.id() else {
            return Err("the new worker exited before it could be supervised".into());
        };
        // Opened before anything can reap the child, so it names this very process.
        let process = ProcessHandle::open(pid);
        let now = Instant::now();
        self.workers.insert(
            id,
            Worker {
                pid,
                process,
                slot,
                generation: self.generation,
                state: WorkerState::Booting,
                spawned_at: now,
                last_heartbeat: now,
                aborted_at: None,
                killed_by_master: false,
                killed_on_request: false,
                counters,
                activity: WorkerActivity::default(),
                stuck: Stuck::default(),
                boot_failure: None,
                stopped_accepting: false,
            },
        );
        let events = self.events.clone();
        if let Some(stderr) = child.stderr.take() {
            let events = events.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = events.send(Event::Stderr(pid, line));
                }
            });
        }
        tokio::spawn(async move {
            // Our write half stays open while the worker lives: it reads EOF as
            // "master gone". Every message is forwarded before the exit is reported,
            // so a boot failure's reason is known when the exit is handled.
            let (read, write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(msg) = serde_json::from_str::<WorkerMessage>(&line) {
                    let _ = events.send(Event::Message(id, msg));
                }
            }
            if let Ok(status) = child.wait().await {
                let _ = events.send(Event::Exited(id, status));
            }
            drop(write);
        });
        self.debug(
            crate::here!(),
            format!(
                "Booting worker with pid: {pid} (generation {})",
                self.generation
            ),
        );
        Ok(id)
    }

    /// A worker exited: say how, count crashes for the back-off, free its slot
    /// (`arbiter::exit_verdict`).
    pub(super) fn reap_worker(&mut self, id: u64, status: ExitStatus) {
        use std::os::unix::process::ExitStatusExt;
        let Some(worker) = self.workers.remove(&id) else {
            return;
        };
        // Read from the shared counters: exact even for a worker killed with SIGKILL.
        let mut served = worker.counters.snapshot();
        served.in_flight = 0;
        self.retired.add(&served);
        let pid = worker.pid;
        let exit = arbiter::Exit {
            pid,
            state: worker.state,
            generation: worker.generation,
            killed_by_master: worker.killed_by_master,
            killed_on_request: worker.killed_on_request,
            boot_failure: worker.boot_failure.clone(),
            code: status.code(),
            signal: status.signal(),
        };
        let verdict = arbiter::exit_verdict(&exit, self.stopping.is_some(), self.generation);
        self.log(verdict.level, crate::here!(), verdict.message);
        if !verdict.planned {
            self.restarts += 1;
            *self
                .slot_restarts
                .entry((worker.generation, worker.slot))
                .or_default() += 1;
        }
        // Slots of generations no worker belongs to any more are forgotten.
        let oldest = self.workers.values().map(|w| w.generation).min();
        let oldest = oldest.unwrap_or(self.generation).min(self.generation);
        self.slot_restarts
            .retain(|&(generation, _), _| generation >= oldest);
        if verdict.crash {
            self.backoff.record_failure(worker.spawned_at.elapsed());
            if self.backoff.is_delaying() {
                self.warning(
                    crate::here!(),
                    format!(
                        "Worker crash loop: next worker in {:.1}s (back-off)",
                        self.backoff.delay().as_secs_f64()
                    ),
                );
            }
        }
        if worker.state == WorkerState::Booting {
            let reason = worker.boot_failure.unwrap_or_else(|| {
                format!(
                    "worker (pid:{pid}) {} before it was ready",
                    arbiter::exit_how(&exit)
                )
            });
            if let Some(reload) = &mut self.reload
                && reload.pending == Some(id)
            {
                reload.pending_failure = Some(format!("new worker failed to boot: {reason}"));
            }
            // During the first boot, a worker that cannot boot means the config is wrong.
            if self.ready_report.is_some() {
                self.fail_start(format!("Worker failed to boot: {reason}"));
            }
        }
    }

    // ---- the supervision steps -----------------------------------------------------

    /// Workers silent for longer than the timeout get SIGABRT, then SIGKILL; workers
    /// that do not report ready within the boot timeout are killed
    /// (`arbiter::murder`).
    pub(super) fn murder_workers(&mut self) {
        let limits = arbiter::Timeouts {
            timeout: self.settings.timeout,
            boot_timeout: self.settings.boot_timeout,
        };
        let now = Instant::now();
        for action in arbiter::murder(&self.table(), limits, now) {
            match action {
                Action::KillAgain { id } => {
                    if let Some(worker) = self.workers.get_mut(&id) {
                        let _ = worker.process.signal(Signal::SIGKILL);
                        worker.aborted_at = Some(now);
                    }
                }
                Action::Abort { id, message } => {
                    if let Some(worker) = self.workers.get_mut(&id) {
                        worker.state = WorkerState::Aborted;
                        worker.aborted_at = Some(now);
                        worker.killed_by_master = true;
                        let _ = worker.process.signal(Signal::SIGABRT);
                    }
                    self.log(Level::Critical, crate::here!(), message);
                }
                other => self.unexpected(other),
            }
        }
    }

    /// A worker whose blocking threads stay stuck (their requests were answered 504
    /// at the timeout, and another timeout has passed) is replaced: told to retire
    /// (its other requests finish or time out) while `manage_workers` starts a new
    /// one. Its heartbeats keep coming, since its runtime is fine, so
    /// `murder_workers` would never see it; a pool whose every thread is stuck on a
    /// hung filesystem would otherwise say "running" while it serves nothing.
    pub(super) fn replace_stuck_workers(&mut self) {
        let stopping = self.stopping.is_some();
        for action in arbiter::stuck(&self.table(), self.settings.timeout, stopping) {
            let Action::ReplaceStuck { id, message } = action else {
                self.unexpected(action);
                continue;
            };
            self.error(crate::here!(), message.clone());
            self.retire(id);
            if let Some(worker) = self.workers.get(&id) {
                // Unplanned, as a timeout is: counted now, since a thread stuck in
                // the kernel may keep the process from exiting for a long time.
                self.restarts += 1;
                *self
                    .slot_restarts
                    .entry((worker.generation, worker.slot))
                    .or_default() += 1;
            }
            self.stuck_replaced += 1;
            self.last_stuck = Some(message);
        }
    }

    /// Keeps the number of active workers at the target: spawn missing ones (subject
    /// to the crash back-off), retire the oldest extra ones (`arbiter::manage`).
    pub(super) fn manage_workers(&mut self) {
        let actions = arbiter::manage(
            &self.table(),
            self.target,
            self.stopping.is_some(),
            self.reload.is_some(),
        );
        if matches!(actions.first(), Some(Action::Spawn { .. })) && !self.backoff.may_spawn() {
            return;
        }
        for action in actions {
            match action {
                Action::Spawn { slot } => {
                    if let Err(e) = self.spawn_worker(slot) {
                        self.error(crate::here!(), e);
                        break;
                    }
                    self.backoff.spawned();
                    if self.backoff.is_delaying() {
                        break;
                    }
                }
                Action::Retire { id } => self.retire(id),
                other => self.unexpected(other),
            }
        }
    }

    /// The workers as the arbiter sees them.
    pub(super) fn table(&self) -> Vec<arbiter::Seen> {
        self.workers
            .iter()
            .map(|(&id, w)| arbiter::Seen {
                id,
                pid: w.pid,
                slot: w.slot,
                state: w.state,
                spawned_at: w.spawned_at,
                last_heartbeat: w.last_heartbeat,
                aborted_at: w.aborted_at,
                stuck: w.stuck.clone(),
                stopped_accepting: w.stopped_accepting,
            })
            .collect()
    }

    /// An action a step does not produce: a bug in the arbiter, logged, not acted on.
    pub(super) fn unexpected(&mut self, action: Action) {
        self.error(
            crate::here!(),
            format!("internal error: unexpected supervision action {action:?}"),
        );
    }

    /// Asks a worker to finish its requests and exit (SIGTERM).
    pub(super) fn retire(&mut self, id: u64) {
        if let Some(worker) = self.workers.get_mut(&id) {
            worker.state = WorkerState::Retiring;
            let _ = worker.process.signal(Signal::SIGTERM);
        }
    }

    /// Reports the first start once every worker is ready (or the boot timed out).
    pub(super) fn check_boot(&mut self) {
        if self.ready_report.is_none() {
            return;
        }
        let progress = arbiter::boot_progress(
            &self.table(),
            self.target,
            self.started_at.elapsed(),
            self.settings.boot_timeout,
        );
        match progress {
            arbiter::Boot::Ready(ready) => {
                let pids: Vec<String> = self.workers.values().map(|w| w.pid.to_string()).collect();
                self.info(
                    crate::here!(),
                    format!("Pool ready: {ready} workers (pids {})", pids.join(", ")),
                );
                let line = self.systemd_status_line();
                self.notifier.ready(&line);
                if let Some(report) = self.ready_report.take() {
                    report(Ok(format!(
                        "{} workers on http://{}",
                        ready,
                        self.settings.bind()
                    )));
                }
            }
            arbiter::Boot::Failed(reason) => self.fail_start(reason),
            arbiter::Boot::Waiting { ready } => {
                // `systemctl status` of a unit still activating shows how far the boot is.
                self.notifier.status(&format!(
                    "Starting: {ready} of {} workers ready",
                    self.target
                ));
            }
        }
    }

    pub(super) fn fail_start(&mut self, reason: String) {
        self.error(crate::here!(), format!("Reason: {reason}"));
        self.notifier
            .status(&format!("Failed to start: {}", reason.replace('\n', " ")));
        if let Some(report) = self.ready_report.take() {
            report(Err(reason));
        }
        self.exit_code = 1;
        self.begin_stop(true);
    }
}
