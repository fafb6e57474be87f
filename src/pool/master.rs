//! The master: binds the listener once, spawns workers that inherit it, and runs one
//! supervision loop with plainly named steps, as Gunicorn's arbiter does:
//! handle events (worker messages, exits, signals, control requests), then on every
//! tick `murder_workers` (heartbeat timeouts), `replace_stuck_workers` (blocking
//! threads stuck past the timeout), `manage_workers` (keep the count) and
//! `advance_reload` (the rolling restart). It is the only writer of OMEROweb.log.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use super::arbiter::{self, Action, WorkerState};
use super::backoff::Backoff;
use super::ipc::{IPC_FD, LISTENER_FD, SPEC_ENV, STATS_FD, WorkerMessage};
use super::notify::Notifier;
use super::pidfile::PidFileLock;
use super::process::ProcessHandle;
use super::protocol::{self, ControlRequest, ControlResponse, PoolStatus, WorkerStatus};
use super::shared_stats::SharedStats;
use super::spec::WorkerSpec;
use super::stats::WorkerStats;
use crate::config::wsgi_args::{self, LogTarget, WsgiArgs};
use crate::config::{AppServer, Config, Settings};
use crate::http_app::blocking::Stuck;
use crate::logging::{Here, Level, LogWriter, Record};
use crate::site::Site;
use crate::supervisor::activity::WorkerActivity;

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
    /// The thumbnail publisher changed something (`gateway::published`).
    Published(crate::gateway::published::Pass),
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
    settings: Settings,
    /// The properties as this generation applied them (reported for drift).
    applied: BTreeMap<String, String>,
    wsgi: WsgiArgs,
    generation: u64,
    target: usize,
    /// The listening socket, held for the master's life, at a descriptor above the
    /// ones workers receive it on.
    listener_fd: OwnedFd,
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
/// generation's master (`site.interim()`), serving on that port instead.
pub fn run(site: Site, foreground: bool, report: ReadyReport, interim_port: Option<u16>) -> u8 {
    // From the moment the pid file names us until our handlers exist, a HUP (from
    // logrotate, say) or a TTIN would kill or stop the master: hold them until then.
    let held = held_signals();
    let _ = held.thread_block();
    let (config, mut settings, wsgi) = match preflight(&site) {
        Ok(x) => x,
        Err(reason) => {
            report(Err(reason));
            return 1;
        }
    };
    if let Some(port) = interim_port {
        settings.port = port;
    }
    // OMERO's collectstatic: nginx serves these from static_root.
    let collected = match crate::gateway::static_files::collect(&settings.static_root) {
        Ok(n) => n,
        Err(e) => {
            report(Err(format!(
                "cannot collect static files into {} (omero.web.static_root): {e}",
                settings.static_root.display()
            )));
            return 1;
        }
    };
    // An installed OMERO.iviewer's files, collected as Django's collectstatic would.
    if let Some(bundle) = crate::gateway::iviewer::Bundle::locate(&site.var_dir())
        && let Err(e) = bundle.collect_static(&settings.static_root)
    {
        report(Err(format!(
            "cannot collect OMERO.iviewer's static files into {} (omero.web.static_root): {e}",
            settings.static_root.display()
        )));
        return 1;
    }
    let pid_lock = match PidFileLock::acquire(&site.pid_file()) {
        Ok(lock) => lock,
        Err(e) => {
            report(Err(e.to_string()));
            return 1;
        }
    };
    let mut log = match LogWriter::open(
        &settings.log_dir,
        settings.log_max_bytes,
        settings.log_backup_count,
    ) {
        Ok(log) => log,
        Err(e) => {
            report(Err(format!(
                "cannot open the log in {}: {e}",
                settings.log_dir.display()
            )));
            return 1;
        }
    };
    log.tee_stderr(foreground);
    let listener = match bind(&settings) {
        Ok(l) => l,
        Err(reason) => {
            let _ = log.write(&Record::now(
                Level::Error,
                LOGGER,
                crate::here!(),
                reason.clone(),
            ));
            report(Err(reason));
            return 1;
        }
    };
    let listener_fd = match high_fd(&OwnedFd::from(listener)) {
        Ok(fd) => fd,
        Err(reason) => {
            report(Err(reason));
            return 1;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Only a master in the foreground is the process systemd started (its MAINPID);
    // a detached one's messages would be refused, so it sends none.
    let notifier = if foreground {
        Notifier::from_env()
    } else {
        Ok(Notifier::disabled())
    };
    let control_socket = site.control_socket();
    let code = runtime.block_on(async move {
        let (tx, rx) = mpsc::unbounded_channel();
        let control = match bind_control_socket(&site, tx.clone()) {
            Ok(c) => c,
            Err(reason) => {
                report(Err(reason));
                return 1;
            }
        };
        let extra_logs = match ExtraLogs::open(&site, &wsgi) {
            Ok(logs) => logs,
            Err(reason) => {
                report(Err(reason));
                return 1;
            }
        };
        let mut master = Master {
            applied: config.applied_values(),
            target: settings.workers as usize,
            site,
            settings,
            wsgi,
            generation: 1,
            listener_fd,
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
        // Before signals are unblocked here, so the publisher thread keeps them
        // blocked and they all reach the loop.
        master.start_publisher();
        let _ = held_signals().thread_unblock();
        master.info(
            crate::here!(),
            format!(
                "Starting omero-webctl pool {} (pid: {})",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            ),
        );
        master.info(
            crate::here!(),
            format!(
                "Listening at: http://{} ({})",
                master.settings.bind(),
                std::process::id()
            ),
        );
        master.info(
            crate::here!(),
            format!(
                "Using worker: {}",
                master.settings.effective_worker_class().as_str()
            ),
        );
        if let Some(note) = master.wsgi.no_effect_note() {
            master.warning(crate::here!(), note);
        }
        master.info(
            crate::here!(),
            format!(
                "{collected} static files copied to '{}', {} unmodified",
                master.settings.static_root.display(),
                crate::gateway::static_files::ASSETS.len() - collected
            ),
        );
        let code = master.run_loop(rx).await;
        drop(control);
        code
    });
    let _ = std::fs::remove_file(&control_socket);
    drop(pid_lock);
    code
}

/// The signals the master handles, blocked while it starts.
fn held_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ] {
        set.add(signal);
    }
    set
}

/// A close-on-exec duplicate of `fd` numbered 10 or above.
fn high_fd(fd: &OwnedFd) -> Result<OwnedFd, String> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid descriptor returns a new one or -1.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if dup < 0 {
        return Err(format!(
            "cannot duplicate a descriptor: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) })
}

/// Binds `host:port` once for the master's whole life (SO_REUSEADDR, the backlog).
fn bind(settings: &Settings) -> Result<socket2::Socket, String> {
    use std::net::ToSocketAddrs;
    let bind = settings.bind();
    let addr = bind
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {bind}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {bind}"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .map_err(|e| format!("cannot create a socket: {e}"))?;
    socket.set_reuse_address(true).map_err(|e| e.to_string())?;
    socket.set_tcp_nodelay(true).map_err(|e| e.to_string())?;
    socket.bind(&addr.into()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "Connection in use: {bind} (port {} is taken by another process)",
                settings.port
            )
        } else {
            format!("cannot bind {bind}: {e}")
        }
    })?;
    socket
        .listen(settings.backlog as i32)
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    Ok(socket)
}

/// Extra log outputs from wsgi_args (`--access-logfile`, `--error-logfile`).
#[derive(Default)]
struct ExtraLogs {
    access: Option<Box<dyn std::io::Write + Send>>,
    error: Option<Box<dyn std::io::Write + Send>>,
}

impl ExtraLogs {
    /// Opens the files named in wsgi_args (relative paths are under the site); `-`
    /// means stdout for the access log and stderr for the error log, as in Gunicorn.
    fn open(site: &Site, wsgi: &WsgiArgs) -> Result<ExtraLogs, String> {
        fn open_one(
            site: &Site,
            target: &Option<LogTarget>,
            stdio: fn() -> Box<dyn std::io::Write + Send>,
            flag: &str,
        ) -> Result<Option<Box<dyn std::io::Write + Send>>, String> {
            match target {
                None => Ok(None),
                Some(LogTarget::Stdio) => Ok(Some(stdio())),
                Some(LogTarget::File(path)) => {
                    let path = site.root().join(path);
                    if let Some(dir) = path.parent() {
                        let _ = std::fs::create_dir_all(dir);
                    }
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map(|f| Some(Box::new(f) as Box<dyn std::io::Write + Send>))
                        .map_err(|e| {
                            format!(
                                "omero.web.wsgi_args {flag}: cannot open {}: {e}",
                                path.display()
                            )
                        })
                }
            }
        }
        Ok(ExtraLogs {
            access: open_one(
                site,
                &wsgi.access_logfile,
                || Box::new(std::io::stdout()),
                "--access-logfile",
            )?,
            error: open_one(
                site,
                &wsgi.error_logfile,
                || Box::new(std::io::stderr()),
                "--error-logfile",
            )?,
        })
    }
}

/// The control socket: mode 0600, and only peers with our uid (or root) are served.
fn bind_control_socket(
    site: &Site,
    events: mpsc::UnboundedSender<Event>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let path = site.control_socket();
    // We hold the pid file lock, so any socket file here is a leftover.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| format!("cannot create the control socket {}: {e}", path.display()))?;
    // On the socket itself: a link swapped in since the bind is refused, not followed.
    crate::fsutil::chmod_no_follow(&path, 0o600).map_err(|e| format!("{}: {e}", path.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    Ok(tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of descriptors and the like: retry later, do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let peer_uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
            let events = events.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let reply = if peer_uid != me && peer_uid != 0 {
                    ControlResponse::failed(format!("uid {peer_uid} may not control this pool"))
                } else {
                    let mut line = String::new();
                    // One bounded line, soon: a silent client holds nothing for long.
                    let mut limited = BufReader::new(read.take(64 * 1024));
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), limited.read_line(&mut line))
                            .await;
                    match protocol::parse_request(&line) {
                        Ok(req) => {
                            let (tx, rx) = oneshot::channel();
                            let _ = events.send(Event::Control(req, tx));
                            rx.await.unwrap_or_else(|_| {
                                ControlResponse::failed("the master is shutting down")
                            })
                        }
                        Err(e) => ControlResponse::failed(e),
                    }
                };
                let mut text = serde_json::to_string(&reply).expect("responses serialise");
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
            });
        }
    }))
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
            Event::Published(pass) => {
                let message = format!(
                    "Thumbnails for nginx: {} published, {} removed as stale, {} failed to render",
                    pass.rendered, pass.removed, pass.failed
                );
                if pass.failed > 0 {
                    self.warning(crate::here!(), message);
                } else {
                    self.debug(crate::here!(), message);
                }
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

    /// Starts the thread that publishes default thumbnails for nginx and keeps them
    /// true to the repository (`omero.web.nginx.published_thumbnails`).
    fn start_publisher(&mut self) {
        if !self.settings.published_thumbnails {
            return;
        }
        let config = crate::gateway::GatewayConfig::from_settings(&self.settings);
        let events = self.events.clone();
        let started = crate::gateway::published::spawn(config, move |pass| {
            let _ = events.send(Event::Published(pass));
        });
        if let Err(e) = started {
            self.warning(
                crate::here!(),
                format!("cannot publish thumbnails for nginx (they are served by the pool): {e}"),
            );
        }
    }

    // ---- spawning and reaping ------------------------------------------------------

    /// The spec of the current generation, with a worker's own max_requests.
    fn spec(&self) -> WorkerSpec {
        let level = self.wsgi.log_level.unwrap_or(if self.settings.debug {
            Level::Debug
        } else {
            Level::Info
        });
        WorkerSpec::from_settings(
            &self.settings,
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

    fn spawn_worker(&mut self, slot: u64) -> Result<u64, String> {
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
        // The very binary this master runs, even after it was replaced on disk (an
        // upgrade): workers keep matching their master until a restart.
        let exe = super::process::this_program().map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new(exe);
        if let Some(name) = super::process::this_program_name() {
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
        for var in super::notify::ENV_VARS {
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
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
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
    fn reap_worker(&mut self, id: u64, status: ExitStatus) {
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
    fn murder_workers(&mut self) {
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
    fn replace_stuck_workers(&mut self) {
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
    fn manage_workers(&mut self) {
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
    fn table(&self) -> Vec<arbiter::Seen> {
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
    fn unexpected(&mut self, action: Action) {
        self.error(
            crate::here!(),
            format!("internal error: unexpected supervision action {action:?}"),
        );
    }

    /// Asks a worker to finish its requests and exit (SIGTERM).
    fn retire(&mut self, id: u64) {
        if let Some(worker) = self.workers.get_mut(&id) {
            worker.state = WorkerState::Retiring;
            let _ = worker.process.signal(Signal::SIGTERM);
        }
    }

    /// Reports the first start once every worker is ready (or the boot timed out).
    fn check_boot(&mut self) {
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

    fn fail_start(&mut self, reason: String) {
        self.error(crate::here!(), format!("Reason: {reason}"));
        self.notifier
            .status(&format!("Failed to start: {}", reason.replace('\n', " ")));
        if let Some(report) = self.ready_report.take() {
            report(Err(reason));
        }
        self.exit_code = 1;
        self.begin_stop(true);
    }

    // ---- reload --------------------------------------------------------------------

    fn begin_reload(&mut self, waiters: Vec<oneshot::Sender<ControlResponse>>) {
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
    fn advance_reload(&mut self) {
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
    fn complete_reload(&mut self, reload: Reload) {
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
    fn run_queued_reload(&mut self) {
        if let Some(waiters) = self.queued_reload.take() {
            self.begin_reload(waiters);
        }
    }

    fn abort_reload(&mut self, reload: Reload, reason: String) {
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

    fn begin_stop(&mut self, quick: bool) {
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
    fn stop_finished(&mut self) -> bool {
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

    // ---- systemd -------------------------------------------------------------------

    /// What `systemctl status` shows: the state, workers serving, the request rate.
    fn systemd_status_line(&mut self) -> String {
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
    fn update_systemd_status(&mut self) {
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

    fn forward_signals(&self) {
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

    fn handle_signal(&mut self, signal: Signal) {
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

    fn handle_control(&mut self, request: ControlRequest, reply: oneshot::Sender<ControlResponse>) {
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
                } else if let Some(refusal) = crate::supervisor::scale_refusal(target) {
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

    fn scale(&mut self, target: i64) {
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
    fn reopen_logs(&mut self) -> Result<(), String> {
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

    fn status(&self) -> PoolStatus {
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
                    state: w.state.name().into(),
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
        if self.settings.worker_class == crate::config::WorkerClass::Sync
            && self.settings.threads <= 1
            && self.settings.downloads_allowed()
        {
            warnings.push(
                "downloads are allowed and workers are sync: each download holds a worker for its whole length (use gevent or gthread)".into(),
            );
        }
        let state = if self.stopping.is_some() {
            "stopping"
        } else if self.ready_report.is_some() {
            "starting"
        } else if self.reload.is_some() {
            "reloading"
        } else if self.backoff.is_degraded() {
            "degraded"
        } else {
            "running"
        };
        PoolStatus {
            kind: crate::site::SiteKind::Embedded,
            versions: [(
                "omero-webctl".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )]
            .into(),
            state: state.into(),
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

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
