//! The master: binds the listener once, spawns workers that inherit it, and runs one
//! supervision loop with plainly named steps, as Gunicorn's arbiter does:
//! handle events (worker messages, exits, signals, control requests), then on every
//! tick `murder_workers` (heartbeat timeouts), `replace_stuck_workers` (blocking
//! threads stuck past the timeout), `manage_workers` (keep the count) and
//! `advance_reload` (the rolling restart). It is the only writer of OMEROweb.log.
//!
//! What each step decides is in `pool::arbiter` (pure, unit-tested); the master
//! carries the decisions out. This file holds the state and the loop; `startup`
//! (one start-up path, failing once), `workers` (spawn, reap, the steps), `reload`
//! (rolling restart, stop) and `control` (signals, control requests, status).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot};

use super::backoff::Backoff;
use super::ipc::WorkerMessage;
use super::notify::Notifier;
use super::protocol::{ControlRequest, ControlResponse};
use super::shared_stats::SharedStats;
use super::stats::WorkerStats;
use crate::config::wsgi_args::{self, WsgiArgs};
use crate::config::{AppServer, Config, Settings};
use crate::http_app::blocking::Stuck;
use crate::http_app::{AppFactory, AppNote, NoteSink};
use crate::logging::{Here, Level, LogWriter, Record};
use crate::proc::process::ProcessHandle;
use crate::site::Site;
use crate::status::WorkerState;
use crate::status::activity::WorkerActivity;

mod control;
mod reload;
mod startup;
mod workers;

use startup::{ExtraLogs, StartUp, held_signals, start_up};

const LOGGER: &str = "omeroweb.pool.master";

/// How the master tells whoever started it that the pool is serving (or why not).
pub type ReadyReport = Box<dyn FnOnce(Result<String, String>) + Send>;

struct Worker {
    pid: u32,
    /// Signals go through this handle, never through the bare PID, which could be
    /// another process's once this one was reaped.
    process: ProcessHandle,
    slot: u64,
    generation: u64,
    state: WorkerState,
    spawned_at: Instant,
    last_heartbeat: Instant,
    /// When SIGABRT was sent for a timeout; SIGKILL follows if it lingers.
    aborted_at: Option<Instant>,
    /// Killed by us (timeout, kill request): its SIGKILL is not an OOM mystery.
    killed_by_master: bool,
    /// Killed because an operator asked (`kill_worker`).
    killed_on_request: bool,
    /// Its request counters, in memory the worker writes as it serves.
    counters: SharedStats,
    /// What it serves now and has just served (from its last heartbeat).
    activity: WorkerActivity,
    /// Its blocking threads stuck past the timeout (from its last heartbeat).
    stuck: Stuck,
    boot_failure: Option<String>,
    /// The worker said it closed its listener (`Retiring`): new connections no longer
    /// reach it.
    stopped_accepting: bool,
}

enum Event {
    Message(u64, WorkerMessage),
    /// A line a worker wrote to stderr, with the worker's PID (it may be reaped by
    /// the time the line is handled).
    Stderr(u32, String),
    Exited(u64, ExitStatus),
    Signal(Signal),
    Control(ControlRequest, oneshot::Sender<ControlResponse>),
    /// The application's background work has something for the log.
    AppNote(AppNote),
}

/// A rolling restart in progress: new workers are started one at a time, each must
/// report ready before the next starts, and the old workers are retired only once the
/// whole new generation serves. Capacity never dips, and an abort leaves every old
/// worker in place (at the price of both generations running for a moment).
struct Reload {
    previous: Generation,
    previous_logs: ExtraLogs,
    old_workers: Vec<u64>,
    started: usize,
    pending: Option<u64>,
    /// Why the pending worker died before it was ready.
    pending_failure: Option<String>,
    waiters: Vec<oneshot::Sender<ControlResponse>>,
    /// The old workers told to retire, and when: the reload is answered once none of
    /// them accepts connections any more, so that a request sent after `reload`
    /// returns meets the new settings.
    retired: Vec<u64>,
    retired_at: Option<Instant>,
}

/// What a reload replaces, kept to go back to if it aborts.
struct Generation {
    settings: Settings,
    applied: BTreeMap<String, String>,
    wsgi: WsgiArgs,
    number: u64,
    target: usize,
}

struct Stopping {
    deadline: Instant,
    killed: bool,
}

pub struct Master {
    site: Site,
    /// The application the workers serve (the gateway), as the CLI passed it.
    app: Arc<dyn AppFactory>,
    settings: Settings,
    /// The properties as this generation applied them (reported for drift).
    applied: BTreeMap<String, String>,
    wsgi: WsgiArgs,
    generation: u64,
    target: usize,
    /// The listening socket, held for the master's life, at a descriptor above the
    /// ones workers receive it on.
    listener_fd: OwnedFd,
    /// What workers run: `omero-webctl-worker` of this build, or this program.
    worker_program: crate::pool::worker_program::WorkerProgram,
    workers: BTreeMap<u64, Worker>,
    next_id: u64,
    /// Unplanned replacements per slot of the current generation (a slot is a
    /// position in the pool that a worker fills; a reload starts new slots).
    slot_restarts: BTreeMap<(u64, u64), u64>,
    /// Workers that died unplanned since the master started (crashes, kills,
    /// timeouts; not recycling, reloads or scaling).
    restarts: u64,
    /// Workers replaced because their blocking threads stayed stuck, and why the last
    /// one was.
    stuck_replaced: u64,
    last_stuck: Option<String>,
    /// What workers that have exited served, so totals never go backwards.
    retired: WorkerStats,
    log: LogWriter,
    extra_logs: ExtraLogs,
    events: mpsc::UnboundedSender<Event>,
    backoff: Backoff,
    reload: Option<Reload>,
    /// Waiters of a reload asked for while another ran (`Some` = one is due).
    queued_reload: Option<Vec<oneshot::Sender<ControlResponse>>>,
    stopping: Option<Stopping>,
    started_at: Instant,
    ready_report: Option<ReadyReport>,
    /// systemd's readiness protocol (a no-op unless systemd runs us in the foreground).
    notifier: Notifier,
    /// When the request rate in systemd's STATUS line was last sampled, and the total
    /// number of requests then.
    rate_sample: (Instant, u64),
    exit_code: u8,
}

/// How often the STATUS line systemd shows is brought up to date.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Everything `start` checks before a master is spawned, so that most mistakes fail
/// in the foreground with a clear message.
pub fn preflight(site: &Site) -> Result<(Config, Settings, WsgiArgs), String> {
    let config = Config::load(site).map_err(|e| e.to_string())?;
    let settings = config.settings();
    match settings.application_server {
        AppServer::WsgiTcp => {}
        other => {
            return Err(format!(
                "omero.web.application_server={} is not managed by omero-webctl; set it to wsgi-tcp",
                other.as_str()
            ));
        }
    }
    let wsgi = match &settings.wsgi_args {
        Some(args) => wsgi_args::parse(args).map_err(|e| e.to_string())?,
        None => WsgiArgs::default(),
    };
    // (Settings::resolve already applied the wsgi_args overrides.)
    Ok((config, settings, wsgi))
}

/// Runs the master until the pool stops. `report` is called once: when every worker
/// is ready, or with the reason the pool could not start. `interim_port`: an interim
/// generation's master (`site.interim()`), serving on that port instead. `app`: what the
/// workers serve.
pub fn run(
    site: Site,
    foreground: bool,
    report: ReadyReport,
    interim_port: Option<u16>,
    app: Arc<dyn AppFactory>,
) -> u8 {
    // From the moment the pid file names us until our handlers exist, a HUP (from
    // logrotate, say) or a TTIN would kill or stop the master: hold them until then.
    let held = held_signals();
    let _ = held.thread_block();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The control socket's listener and its task need the runtime.
    let entered = runtime.enter();
    let (tx, rx) = mpsc::unbounded_channel();
    let started = match start_up(&site, app.as_ref(), foreground, interim_port, tx.clone()) {
        Ok(started) => started,
        Err(reason) => {
            report(Err(reason));
            return 1;
        }
    };
    drop(entered);
    let StartUp {
        config,
        settings,
        wsgi,
        start_notes,
        pid_lock,
        log,
        listener_fd,
        extra_logs,
        worker_program: (worker_program, worker_program_note),
        control,
        notifier,
    } = started;
    let control_socket = site.control_socket();
    let code = runtime.block_on(async move {
        let mut master = Master {
            app,
            applied: config.applied_values(),
            target: settings.workers as usize,
            site,
            settings,
            wsgi,
            generation: 1,
            listener_fd,
            worker_program,
            workers: BTreeMap::new(),
            next_id: 1,
            slot_restarts: BTreeMap::new(),
            restarts: 0,
            stuck_replaced: 0,
            last_stuck: None,
            retired: WorkerStats::new(),
            log,
            extra_logs,
            events: tx,
            backoff: Backoff::new(),
            reload: None,
            queued_reload: None,
            stopping: None,
            started_at: Instant::now(),
            ready_report: Some(report),
            notifier: Notifier::disabled(),
            rate_sample: (Instant::now(), 0),
            exit_code: 0,
        };
        match notifier {
            Ok(n) => master.notifier = n,
            Err(e) => master.warning(
                crate::here!(),
                format!("systemd notifications are off: {e}"),
            ),
        }
        master.forward_signals();
        // Before signals are unblocked here, so the application's threads (the
        // thumbnail publisher) keep them blocked and they all reach the loop.
        master.start_app_background();
        let _ = held_signals().thread_unblock();
        master.log_start(start_notes, worker_program_note);
        let code = master.run_loop(rx).await;
        drop(control);
        code
    });
    let _ = std::fs::remove_file(&control_socket);
    drop(pid_lock);
    code
}

impl Master {
    // ---- the loop ------------------------------------------------------------------

    async fn run_loop(&mut self, mut rx: mpsc::UnboundedReceiver<Event>) -> u8 {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.manage_workers();
        loop {
            tokio::select! {
                Some(event) = rx.recv() => self.handle_event(event),
                _ = tick.tick() => {
                    self.murder_workers();
                    self.replace_stuck_workers();
                    self.check_boot();
                    self.manage_workers();
                    self.notifier.watchdog_if_due();
                    self.update_systemd_status();
                }
            }
            self.advance_reload();
            if self.stop_finished() {
                break;
            }
        }
        self.info(crate::here!(), "Shutting down: Master".into());
        self.exit_code
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Message(id, msg) => self.handle_message(id, msg),
            Event::Stderr(pid, line) => {
                self.write_record(Record {
                    pid,
                    ..Record::now(Level::Error, "omeroweb.worker.stderr", crate::here!(), line)
                });
            }
            Event::Exited(id, status) => self.reap_worker(id, status),
            Event::Signal(signal) => self.handle_signal(signal),
            Event::Control(req, reply) => self.handle_control(req, reply),
            Event::AppNote(note) => {
                let logger = note.logger.unwrap_or(LOGGER);
                let record = Record::now(note.level, logger, crate::here!(), note.message);
                self.write_record(record);
            }
        }
    }

    fn handle_message(&mut self, id: u64, msg: WorkerMessage) {
        let Some(worker) = self.workers.get_mut(&id) else {
            return;
        };
        worker.last_heartbeat = Instant::now();
        match msg {
            WorkerMessage::Ready => {
                if worker.state == WorkerState::Booting {
                    worker.state = WorkerState::Ready;
                }
                self.check_boot();
            }
            WorkerMessage::Heartbeat { activity, stuck } => {
                worker.activity = activity;
                worker.stuck = stuck;
            }
            WorkerMessage::Log(record) => self.write_record(record),
            WorkerMessage::Access { line } => {
                if let Some(out) = &mut self.extra_logs.access {
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
            WorkerMessage::Retiring { .. } => {
                worker.stopped_accepting = true;
                if worker.state.is_active() {
                    worker.state = WorkerState::Retiring;
                }
            }
            WorkerMessage::BootFailed { reason } => worker.boot_failure = Some(reason),
        }
    }

    /// Starts the application's background work (the gateway's thumbnail publisher),
    /// whose notes reach the log through the event loop.
    fn start_app_background(&mut self) {
        let events = self.events.clone();
        let notes: NoteSink = Box::new(move |note| {
            let _ = events.send(Event::AppNote(note));
        });
        if let Err(warning) = self.app.start_background(&self.settings, notes) {
            self.warning(crate::here!(), warning);
        }
    }

    // ---- logging -------------------------------------------------------------------

    fn write_record(&mut self, record: Record) {
        let threshold = self.wsgi.log_level.unwrap_or(if self.settings.debug {
            Level::Debug
        } else {
            Level::Info
        });
        if record.level < threshold {
            return;
        }
        if let Err(e) = self.log.write(&record) {
            eprintln!("cannot write {}: {e}", self.log.path().display());
        }
        if let Some(out) = &mut self.extra_logs.error {
            let _ = writeln!(out, "{}", crate::logging::format_line(&record));
            let _ = out.flush();
        }
    }
    fn log(&mut self, level: Level, at: Here, message: String) {
        self.write_record(Record::now(level, LOGGER, at, message));
    }
    fn debug(&mut self, at: Here, message: String) {
        self.log(Level::Debug, at, message);
    }
    fn info(&mut self, at: Here, message: String) {
        self.log(Level::Info, at, message);
    }
    fn warning(&mut self, at: Here, message: String) {
        self.log(Level::Warning, at, message);
    }
    fn error(&mut self, at: Here, message: String) {
        self.log(Level::Error, at, message);
    }
}
