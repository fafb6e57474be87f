//! A worker process: a re-execution of the binary (`omero-webctl worker`) that
//! inherits the listening socket on fd 3, its IPC socket on fd 4 and its counters
//! (memory shared with the master) on fd 5. It serves HTTP
//! with hyper under the limits of its worker class, heartbeats from inside its runtime,
//! and retires gracefully (stop accepting, finish in-flight work) on TERM,
//! `max_requests`, or when the master disappears.

use std::collections::BTreeMap;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, mpsc, watch};

use super::allocator;
use super::connection::{Connection, Listener};
use super::forwarded::TrustedProxies;
use super::ipc::{IPC_FD, LISTENER_FD, SPEC_ENV, STATS_FD, WorkerMessage};
use super::shared_stats::SharedStats;
use super::spec::WorkerSpec;
use crate::config::WorkerClass;
use crate::http_app::blocking::{self, Stuck, blocking_work};
use crate::http_app::{self as app, App, AppFactory};
use crate::logging::{Here, Level, Record, django_request_message};
use crate::status::activity::{self, ActivityLog, InFlight};

/// Exit code of a worker that could not boot (Gunicorn's WORKER_BOOT_ERROR).
pub const EXIT_BOOT_ERROR: u8 = 3;

/// Why the worker stops accepting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retire {
    No,
    Graceful(&'static str),
    Quick,
}

/// Runs a worker serving the application `factory` boots.
pub fn run(factory: Arc<dyn AppFactory>) -> std::process::ExitCode {
    let spec: WorkerSpec = match std::env::var(SPEC_ENV)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("error: this is an internal command of the pool ({SPEC_ENV}: {e})");
            return std::process::ExitCode::from(2);
        }
    };
    // Blocking threads are where heavy work runs; gthread caps them at wsgi_threads.
    let blocking_threads = match spec.worker_class {
        WorkerClass::Gthread => spec.threads as usize,
        _ => 4,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads.max(1))
        // Idle blocking threads go soon, with what they hold (a JPEG compressor sized
        // for the largest image), so that an idle worker can give the memory back.
        .thread_keep_alive(Duration::from_secs(1))
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(serve(spec, factory));
    // A blocking thread stuck on a hung filesystem never returns: the worker leaves
    // without it (dropping the runtime would wait for it forever), after giving work
    // that does end (a thumbnail being written to the cache) a moment.
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

/// What the IPC writer task receives: a message, or a request to confirm that
/// everything before it was written.
enum Outgoing {
    Message(WorkerMessage),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Sends log records and messages to the master; dropped silently once it is gone.
#[derive(Clone)]
struct ToMaster {
    tx: mpsc::UnboundedSender<Outgoing>,
    level: Level,
}

impl ToMaster {
    fn send(&self, msg: WorkerMessage) {
        let _ = self.tx.send(Outgoing::Message(msg));
    }

    /// Waits (briefly) until everything sent so far is on the socket.
    async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(Outgoing::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), wait).await;
        }
    }
    fn log(&self, level: Level, logger: &str, location: Here, message: String) {
        if level >= self.level {
            self.send(WorkerMessage::Log(Record::now(
                level, logger, location, message,
            )));
        }
    }
}

async fn serve(spec: WorkerSpec, factory: Arc<dyn AppFactory>) -> std::process::ExitCode {
    // SAFETY: the master puts these three descriptors in place before exec (its
    // pre_exec dup2s them), and nothing else in this process owns them.
    let ipc = unsafe { std::os::unix::net::UnixStream::from_raw_fd(IPC_FD) };
    // SAFETY: as above: the listening socket, inherited at LISTENER_FD.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(LISTENER_FD) };
    // SAFETY: as above: the counters' memfd, inherited at STATS_FD.
    let counters = unsafe { std::os::fd::OwnedFd::from_raw_fd(STATS_FD) };
    ipc.set_nonblocking(true).expect("ipc socket");
    let ipc = tokio::net::UnixStream::from_std(ipc).expect("ipc socket");
    let (ipc_read, mut ipc_write) = ipc.into_split();

    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let to_master = ToMaster {
        tx,
        level: spec.log_level,
    };
    tokio::spawn(async move {
        while let Some(outgoing) = rx.recv().await {
            let msg = match outgoing {
                Outgoing::Message(msg) => msg,
                Outgoing::Flush(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            let mut line = serde_json::to_string(&msg).expect("messages serialise");
            line.push('\n');
            if ipc_write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });

    // Handlers first: a stop that arrives while the application boots is honoured.
    let (retire_tx, mut retire_rx) = watch::channel(Retire::No);
    let retire_tx = Arc::new(retire_tx);
    watch_signals(retire_tx.clone());

    // A worker's allocator keeps freed memory for the next request (given back when
    // idle, below), whatever application it serves.
    allocator::tune_allocator();
    let app = match factory.boot(&spec.app) {
        Ok(app) => app,
        Err(reason) => {
            to_master.log(
                Level::Error,
                "omeroweb.worker",
                crate::here!(),
                reason.clone(),
            );
            to_master.send(WorkerMessage::BootFailed { reason });
            to_master.flush().await;
            return std::process::ExitCode::from(EXIT_BOOT_ERROR);
        }
    };
    for note in factory.boot_notes(&spec.app) {
        let logger = note.logger.unwrap_or("omeroweb.worker");
        to_master.log(note.level, logger, crate::here!(), note.message);
    }
    let listener = Listener::new(listener).expect("listener");

    watch_master(ipc_read, retire_tx.clone(), to_master.clone());

    let stats = match SharedStats::map(counters) {
        Ok(stats) => Arc::new(stats),
        Err(reason) => {
            to_master.send(WorkerMessage::BootFailed { reason });
            to_master.flush().await;
            return std::process::ExitCode::from(EXIT_BOOT_ERROR);
        }
    };
    let activity = Arc::new(Activity::default());
    spawn_heartbeat(
        activity.clone(),
        stats.clone(),
        to_master.clone(),
        spec.timeout_secs,
        factory.clone(),
    );

    to_master.send(WorkerMessage::Ready);
    to_master.log(
        Level::Info,
        "omeroweb.worker",
        crate::here!(),
        format!(
            "Booting worker with pid: {} ({})",
            std::process::id(),
            spec.worker_class.as_str()
        ),
    );

    let shared = Arc::new(Shared {
        proxies: TrustedProxies::parse(&spec.forwarded_allow_ips),
        spec: spec.clone(),
        app,
        stats,
        activity,
        served: AtomicU64::new(0),
        request_slots: (spec.worker_class == WorkerClass::Gthread)
            .then(|| Semaphore::new(spec.threads as usize)),
        retire: retire_tx.clone(),
        to_master: to_master.clone(),
    });
    let connection_slots = Arc::new(Semaphore::new(match spec.worker_class {
        // sync: one connection, and so one request, at a time.
        WorkerClass::Sync => 1,
        _ => spec.worker_connections as usize,
    }));
    let connections = tokio_util::task::TaskTracker::new();

    loop {
        // `biased`: once retiring, never accept again, even if a connection is ready.
        let permit = tokio::select! {
            biased;
            _ = retire_rx.wait_for(|r| *r != Retire::No) => break,
            permit = connection_slots.clone().acquire_owned() => permit.expect("semaphore open"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = retire_rx.wait_for(|r| *r != Retire::No) => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    to_master.log(Level::Error, "omeroweb.worker", crate::here!(), format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // (TCP_NODELAY comes from the listener: see `Listener`.)
        connections.spawn(serve_connection(stream, peer, shared.clone(), permit));
    }
    drop(listener);
    connections.close();

    let retire = *retire_rx.borrow();
    let quick = retire == Retire::Quick;
    let reason = match retire {
        Retire::Graceful(reason) => reason,
        _ => "quick shutdown",
    };
    to_master.send(WorkerMessage::Retiring {
        reason: reason.to_string(),
    });
    if !quick {
        let deadline = Duration::from_secs(spec.graceful_timeout_secs.max(1));
        if tokio::time::timeout(deadline, connections.wait())
            .await
            .is_err()
        {
            to_master.log(
                Level::Warning,
                "omeroweb.worker",
                crate::here!(),
                format!(
                    "graceful timeout ({}s) passed with requests in flight",
                    deadline.as_secs()
                ),
            );
        }
    }
    to_master.log(
        Level::Info,
        "omeroweb.worker",
        crate::here!(),
        format!("Worker exiting (pid: {}): {reason}", std::process::id()),
    );
    to_master.flush().await;
    std::process::ExitCode::SUCCESS
}

/// Serves one connection. When the worker retires, every response it still sends
/// carries `Connection: close` (see `Shared::handle`), so a busy keep-alive connection
/// ends cleanly after its current request; an idle one ends at its idle timeout. The
/// worker never closes a connection on its own while a client (or nginx, whose
/// upstream keep-alive times out sooner) may be sending a request on it.
async fn serve_connection(
    stream: Connection,
    peer: std::net::SocketAddr,
    shared: Arc<Shared>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let spec = &shared.spec;
    let keep_alive = spec.worker_class != WorkerClass::Sync && spec.keepalive_secs > 0;
    // hyper's header timer runs from the moment a connection waits for a request, so
    // it is the keep-alive idle time (Gunicorn's --keep-alive) and bounds clients that
    // connect and send nothing; without keep-alive, 10 s for the one request.
    let header_timeout = if keep_alive {
        Duration::from_secs(spec.keepalive_secs)
    } else {
        Duration::from_secs(10)
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(keep_alive)
        // A sync worker, as Gunicorn's, answers a request whose client has shut its
        // side after sending it, and does not read on while the application works
        // (hyper's check for a client gone mid-request: a read that finds nothing
        // and would register the connection with epoll, on every request).
        .half_close(spec.worker_class == WorkerClass::Sync)
        .header_read_timeout(header_timeout)
        .max_headers(spec.limit_request_fields as usize);
    let service = {
        let shared = shared.clone();
        service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(shared.handle(req, peer).await) }
        })
    };
    let _ = builder.serve_connection(stream, service).await;
}

/// What every connection of the worker shares.
struct Shared {
    spec: WorkerSpec,
    /// Proxies whose X-Forwarded-For names the client (`--forwarded-allow-ips`).
    proxies: TrustedProxies,
    app: Arc<dyn App>,
    /// Counted in memory the master reads, so nothing is lost if this worker dies.
    stats: Arc<SharedStats>,
    activity: Arc<Activity>,
    served: AtomicU64,
    request_slots: Option<Semaphore>,
    retire: Arc<watch::Sender<Retire>>,
    to_master: ToMaster,
}

impl Shared {
    async fn handle(&self, mut req: app::Request, peer: std::net::SocketAddr) -> app::Response {
        let started = Instant::now();
        let client = self.proxies.client(
            peer.ip(),
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok()),
        );
        req.extensions_mut().insert(app::ClientAddr(client));
        req.extensions_mut().insert(app::PeerAddr(peer.ip()));
        let request_line = format!("{} {} {:?}", req.method(), req.uri(), req.version());
        // gthread: requests beyond wsgi_threads wait here (as in Gunicorn); "in
        // flight" counts the ones being served.
        let _slot = match &self.request_slots {
            Some(slots) => Some(slots.acquire().await.expect("semaphore open")),
            None => None,
        };
        let method = req.method().to_string();
        let target = full_path(req.uri());
        self.stats.begin_request();
        let serving = self.activity.begin(&method, &target);
        // Created now, so the count comes down even if the handler panics (unwinding
        // drops it) or the client goes away before the body ends.
        let mut guard = BodyGuard {
            stats: self.stats.clone(),
            activity: self.activity.clone(),
            serving,
            method,
            target,
            started,
            status: None,
            bytes: 0,
        };
        let response = match self.check_limits(&req) {
            Some(refusal) => refusal,
            None => self.answer_in_time(req, serving).await,
        };
        let status = response.status().as_u16();
        // Counted once the body is sent, with the whole time (as Gunicorn's %(D)s).
        guard.status = Some(status);
        if status >= 400 {
            self.log_response(status, &guard.method, &guard.target);
        }
        if let Some(note) = response.extensions().get::<app::LogNote>() {
            self.to_master.log(
                Level::Warning,
                note.logger,
                crate::here!(),
                note.message.clone(),
            );
        }
        if self.spec.log_requests {
            self.to_master.send(WorkerMessage::Access {
                line: access_line(client, &request_line, status, &response),
            });
        }
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        if self.spec.max_requests > 0 && served == self.spec.max_requests {
            self.to_master.log(
                Level::Info,
                "omeroweb.worker",
                crate::here!(),
                "Autorestarting worker after current request.".into(),
            );
            self.retire
                .send_replace(Retire::Graceful("max_requests reached"));
        }
        let mut response = response;
        if *self.retire.borrow() != Retire::No {
            // Retiring: this connection ends after this response.
            response.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
        }
        // In flight until the body is fully sent (or dropped): streams count too.
        response.map(|body| track_body(body, guard))
    }

    /// The application's answer; 504 instead if it waits for blocking work of its
    /// own that has run past the worker timeout (a read on a hung filesystem, say):
    /// the request's connection and slot are freed, while the thread stays stuck and
    /// is reported in the heartbeat. Waiting for anything else (a slow client's body)
    /// is not cut short here.
    async fn answer_in_time(&self, req: app::Request, request: u64) -> app::Response {
        let answer = blocking::as_request(request, self.app.handle(req));
        if self.spec.timeout_secs == 0 {
            return answer.await;
        }
        let limit = Duration::from_secs(self.spec.timeout_secs);
        tokio::pin!(answer);
        // Most answers come long before the limit: one timer, then a few checks.
        let mut wait = limit;
        loop {
            match tokio::time::timeout(wait, &mut answer).await {
                Ok(response) => return response,
                Err(_) => wait = Duration::from_millis(250),
            }
            let overdue = blocking_work().overdue_of_request(request, limit);
            if overdue.is_empty() {
                continue;
            }
            let what = overdue.join(", ");
            let secs = limit.as_secs();
            self.to_master.log(
                Level::Error,
                "omeroweb.worker",
                crate::here!(),
                format!(
                    "Blocking work did not finish within {secs}s (omero.web.wsgi_timeout): {what}; its request was answered 504, the thread stays stuck"
                ),
            );
            return app::text(
                504,
                format!("Gateway Timeout: {what} did not finish within {secs}s\n"),
            );
        }
    }

    /// What Django's `log_response` logs for a 4xx or 5xx: a warning or an error on
    /// `django.request`, with the request as Django writes it.
    fn log_response(&self, status: u16, method: &str, full_path: &str) {
        let level = if status >= 500 {
            Level::Error
        } else {
            Level::Warning
        };
        self.to_master.log(
            level,
            "django.request",
            crate::here!(),
            django_request_message(status, method, full_path),
        );
    }

    /// Gunicorn's request limits: request line length and header field size (the
    /// field count is enforced by hyper's `max_headers`).
    fn check_limits(&self, req: &app::Request) -> Option<app::Response> {
        if let Some(refusal) = check_framing(req.headers()) {
            return Some(refusal);
        }
        let line_len = req.method().as_str().len() + req.uri().to_string().len() + 10;
        if line_len > self.spec.limit_request_line as usize {
            return Some(app::text(414, "Request line is too large\n"));
        }
        let too_big = req.headers().iter().any(|(name, value)| {
            name.as_str().len() + value.len() + 2 > self.spec.limit_request_field_size as usize
        });
        too_big.then(|| app::text(431, "Request header field is too large\n"))
    }
}

/// Body framing a proxy in front may read otherwise than we do is refused, as nginx
/// refuses it (request smuggling): a transfer coding other than just `chunked` is 501,
/// and the connection closes, its framing no longer to be trusted. (Content-Length
/// with Transfer-Encoding never reaches here: hyper drops the length, reads the body
/// as chunked and closes the connection after the response, as RFC 9112 §6.3 says.)
fn check_framing(headers: &hyper::HeaderMap) -> Option<app::Response> {
    use hyper::header::{CONNECTION, HeaderValue, TRANSFER_ENCODING};
    if !headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    let codings: Vec<String> = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    if codings == ["chunked"] {
        return None;
    }
    let mut refusal = app::text(
        501,
        "Not Implemented: only the chunked transfer coding is accepted\n",
    );
    refusal
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    Some(refusal)
}

/// Counts a request when its response body is sent (or dropped): status, whole time
/// and bytes; and ends its "in flight" time.
struct BodyGuard {
    stats: Arc<SharedStats>,
    activity: Arc<Activity>,
    serving: u64,
    method: String,
    target: String,
    started: Instant,
    /// Set once the application answered (a handler that panicked never does).
    status: Option<u16>,
    bytes: u64,
}

impl Drop for BodyGuard {
    fn drop(&mut self) {
        if let Some(status) = self.status {
            let ms = self.started.elapsed().as_millis() as u64;
            self.stats.record(status, ms);
            self.activity
                .finished(&self.method, &self.target, status, ms);
        }
        self.stats.add_bytes(self.bytes);
        // Last: whoever sees nothing in flight sees every count.
        self.stats.end_request();
        self.activity.end(self.serving);
    }
}

/// What the worker serves now and has just served, for the master's drill-down.
#[derive(Default)]
struct Activity {
    next: AtomicU64,
    /// Requests in flight by id: method, target, since when.
    serving: Mutex<BTreeMap<u64, (String, String, Instant)>>,
    log: Mutex<ActivityLog>,
}

impl Activity {
    fn begin(&self, method: &str, target: &str) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = (
            method.to_string(),
            activity::shorten(target),
            Instant::now(),
        );
        self.serving
            .lock()
            .expect("activity lock")
            .insert(id, entry);
        id
    }

    fn end(&self, id: u64) {
        self.serving.lock().expect("activity lock").remove(&id);
    }

    fn finished(&self, method: &str, target: &str, status: u16, ms: u64) {
        self.log.lock().expect("activity lock").finished(
            method,
            target,
            status,
            ms,
            activity::unix_now(),
        );
    }

    fn report(&self) -> activity::WorkerActivity {
        let mut serving: Vec<InFlight> = self
            .serving
            .lock()
            .expect("activity lock")
            .values()
            .map(|(method, path, since)| InFlight {
                method: method.clone(),
                path: path.clone(),
                secs: since.elapsed().as_secs_f64(),
            })
            .collect();
        serving.sort_by(|a, b| b.secs.total_cmp(&a.secs));
        serving.truncate(activity::SERVING);
        self.log
            .lock()
            .expect("activity lock")
            .report(Some(serving))
    }
}

fn track_body(body: app::Body, guard: BodyGuard) -> app::Body {
    use http_body_util::BodyExt;
    TrackedBody { inner: body, guard }.boxed()
}

/// A response body that counts its bytes and forwards the size hint, so a response
/// of known length keeps its Content-Length.
struct TrackedBody {
    inner: app::Body,
    guard: BodyGuard,
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.guard.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Gunicorn's default access log format:
/// `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"`.
fn access_line(
    client: std::net::IpAddr,
    request_line: &str,
    status: u16,
    response: &app::Response,
) -> String {
    let size = hyper::body::Body::size_hint(response.body())
        .exact()
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into());
    let time = chrono::Local::now().format("[%d/%b/%Y:%H:%M:%S %z]");
    format!("{client} - - {time} \"{request_line}\" {status} {size} \"-\" \"-\"")
}

/// The master talks to workers with signals only; EOF on the IPC socket means it is
/// gone, and the worker winds down within about a second.
fn watch_master(
    ipc_read: tokio::net::unix::OwnedReadHalf,
    retire: Arc<watch::Sender<Retire>>,
    to_master: ToMaster,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(ipc_read).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
        retire.send_replace(Retire::Quick);
        drop(to_master);
        // Give in-flight responses a moment, then leave even if they are not done.
        tokio::time::sleep(Duration::from_millis(500)).await;
        std::process::exit(0);
    });
}

fn watch_signals(retire: Arc<watch::Sender<Retire>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    let mut quit = signal(SignalKind::quit()).expect("signal handler");
    let mut int = signal(SignalKind::interrupt()).expect("signal handler");
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { retire.send_replace(Retire::Graceful("stopped by the master")); }
                _ = quit.recv() => { retire.send_replace(Retire::Quick); std::process::exit(0); }
                _ = int.recv() => { retire.send_replace(Retire::Quick); std::process::exit(0); }
            }
        }
    });
}

fn spawn_heartbeat(
    activity: Arc<Activity>,
    stats: Arc<SharedStats>,
    to_master: ToMaster,
    timeout_secs: u64,
    factory: Arc<dyn AppFactory>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut trimmed_at, mut served_before, mut idle_ticks) = (0, 0, 0);
        loop {
            tick.tick().await;
            // "N blocking threads stuck for S seconds": the master decides.
            let stuck = match timeout_secs {
                0 => Stuck::default(),
                secs => blocking_work().stuck(Duration::from_secs(secs)),
            };
            to_master.send(WorkerMessage::Heartbeat {
                activity: activity.report(),
                stuck,
            });
            // Idle for a whole tick after serving: the memory the application kept for
            // the next request goes back to the system (a burst keeps it; an idle worker
            // stays small).
            // (Trimmed once the blocking threads, idle for their 1 s keep-alive,
            // have gone: after 2 s without a request.)
            let served = stats.snapshot().requests;
            idle_ticks = if served == served_before && stats.in_flight() == 0 {
                idle_ticks + 1
            } else {
                0
            };
            if idle_ticks >= 4 && served != trimmed_at {
                trimmed_at = served;
                factory.on_idle();
                allocator::release_free_memory();
            }
            served_before = served;
        }
    });
}

/// Django's `request.get_full_path()`: the path, and the query string if there is one.
fn full_path(uri: &hyper::Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string())
}
