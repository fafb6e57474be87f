//! The master's start-up, one step after another (`start_up`), and the pieces it
//! sets up: held signals, the listener, the extra logs, the control socket.

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use super::{Event, LOGGER, Master, preflight};
use crate::config::wsgi_args::{LogTarget, WsgiArgs};
use crate::config::{Config, Settings};
use crate::http_app::AppFactory;
use crate::logging::{Level, LogWriter, Record};
use crate::pool::notify::Notifier;
use crate::pool::protocol::{self, ControlResponse};
use crate::pool::worker_program::WorkerProgram;
use crate::proc::pidfile::PidFileLock;
use crate::site::Site;

/// What a successful start-up holds for the master's life.
pub(super) struct StartUp {
    pub(super) config: Config,
    pub(super) settings: Settings,
    pub(super) wsgi: WsgiArgs,
    /// Lines the application's start-up jobs left for the log (`on_master_start`).
    pub(super) start_notes: Vec<String>,
    pub(super) pid_lock: PidFileLock,
    pub(super) log: LogWriter,
    pub(super) listener_fd: OwnedFd,
    pub(super) extra_logs: ExtraLogs,
    /// What workers run, and the log's line about it.
    pub(super) worker_program: (WorkerProgram, Result<String, String>),
    pub(super) control: tokio::task::JoinHandle<()>,
    pub(super) notifier: Result<Notifier, crate::pool::notify::NotifyError>,
}

/// Every start-up step, in order; the first that fails says why, and the caller
/// reports it once. Failures after the log opened are written to it too. Runs
/// inside the runtime (the control socket is served by a task); the control socket
/// is the last step, so a failure never leaves one behind.
pub(super) fn start_up(
    site: &Site,
    app: &dyn AppFactory,
    foreground: bool,
    interim_port: Option<u16>,
    events: mpsc::UnboundedSender<Event>,
) -> Result<StartUp, String> {
    let (config, mut settings, wsgi) = preflight(site)?;
    if let Some(port) = interim_port {
        settings.port = port;
    }
    // The application's start-up jobs (the gateway's: OMERO's collectstatic), before
    // the pid file is taken.
    let start_notes = app.on_master_start(site, &settings)?;
    let pid_lock = PidFileLock::acquire(&site.pid_file()).map_err(|e| e.to_string())?;
    let mut log = LogWriter::open(
        &settings.log_dir,
        settings.log_max_bytes,
        settings.log_backup_count,
    )
    .map_err(|e| format!("cannot open the log in {}: {e}", settings.log_dir.display()))?;
    log.tee_stderr(foreground);
    let logged = |log: &mut LogWriter, reason: String| {
        let _ = log.write(&Record::now(
            Level::Error,
            LOGGER,
            crate::here!(),
            reason.clone(),
        ));
        reason
    };
    let listener = bind(&settings).map_err(|reason| logged(&mut log, reason))?;
    let listener_fd =
        high_fd(&OwnedFd::from(listener)).map_err(|reason| logged(&mut log, reason))?;
    let extra_logs = ExtraLogs::open(site, &wsgi).map_err(|reason| logged(&mut log, reason))?;
    let worker_program = WorkerProgram::find();
    let control = bind_control_socket(site, events).map_err(|reason| logged(&mut log, reason))?;
    // Only a master in the foreground is the process systemd started (its MAINPID);
    // a detached one's messages would be refused, so it sends none.
    let notifier = if foreground {
        Notifier::from_env()
    } else {
        Ok(Notifier::disabled())
    };
    Ok(StartUp {
        config,
        settings,
        wsgi,
        start_notes,
        pid_lock,
        log,
        listener_fd,
        extra_logs,
        worker_program,
        control,
        notifier,
    })
}

impl Master {
    /// The first lines of the log, as Gunicorn's arbiter writes them.
    pub(super) fn log_start(
        &mut self,
        start_notes: Vec<String>,
        worker_program: Result<String, String>,
    ) {
        self.info(
            crate::here!(),
            format!(
                "Starting omero-webctl pool {} (pid: {})",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            ),
        );
        self.info(
            crate::here!(),
            format!(
                "Listening at: http://{} ({})",
                self.settings.bind(),
                std::process::id()
            ),
        );
        self.info(
            crate::here!(),
            format!(
                "Using worker: {}",
                self.settings.effective_worker_class().as_str()
            ),
        );
        match worker_program {
            Ok(line) => self.info(crate::here!(), line),
            Err(line) => self.warning(crate::here!(), line),
        }
        if let Some(note) = self.wsgi.no_effect_note() {
            self.warning(crate::here!(), note);
        }
        for note in start_notes {
            self.info(crate::here!(), note);
        }
    }
}

/// The signals the master handles, blocked while it starts.
pub(super) fn held_signals() -> nix::sys::signal::SigSet {
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
pub(super) fn high_fd(fd: &OwnedFd) -> Result<OwnedFd, String> {
    let dup = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))
        .map_err(|e| format!("cannot duplicate a descriptor: {e}"))?;
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) })
}

/// Binds `host:port` once for the master's whole life (SO_REUSEADDR, the backlog).
pub(super) fn bind(settings: &Settings) -> Result<socket2::Socket, String> {
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
    defer_accept(&socket).map_err(|e| format!("cannot set TCP_DEFER_ACCEPT: {e}"))?;
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

/// Connections reach `accept` with their first bytes (the request) already in, so a
/// worker reads the request at once, without registering the socket with epoll and
/// waiting for it (see `pool::connection`). A client that connects and sends nothing
/// is handed over all the same about a second later (Linux retransmits its SYN-ACK
/// and accepts the ACK that answers it), and meets the request timeout as before.
fn defer_accept(socket: &socket2::Socket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let secs: libc::c_int = 1;
    // SAFETY: a valid socket, and the option's value is a c_int of the size given.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Extra log outputs from wsgi_args (`--access-logfile`, `--error-logfile`).
#[derive(Default)]
pub(super) struct ExtraLogs {
    pub(super) access: Option<Box<dyn std::io::Write + Send>>,
    pub(super) error: Option<Box<dyn std::io::Write + Send>>,
}

impl ExtraLogs {
    /// Opens the files named in wsgi_args (relative paths are under the site); `-`
    /// means stdout for the access log and stderr for the error log, as in Gunicorn.
    pub(super) fn open(site: &Site, wsgi: &WsgiArgs) -> Result<ExtraLogs, String> {
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
pub(super) fn bind_control_socket(
    site: &Site,
    events: mpsc::UnboundedSender<Event>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let path = site.control_socket();
    // We hold the pid file lock, so any socket file here is a leftover.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| format!("cannot create the control socket {}: {e}", path.display()))?;
    // On the socket itself: a link swapped in since the bind is refused, not followed.
    if let Err(e) = crate::fsutil::chmod_no_follow(&path, 0o600) {
        let _ = std::fs::remove_file(&path);
        return Err(format!("{}: {e}", path.display()));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Workers set no TCP_NODELAY per connection: what they accept inherits it from
    /// the listener the master binds.
    /// The master's listener as [`bind`] makes it from a site's settings, on a free
    /// port of 127.0.0.1 (returned with it).
    fn bound_listener() -> (crate::pool::connection::Listener, u16) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let site = Site::new("/home/omero/OMERO.server");
        let toml = format!("\"omero.web.application_server.port\" = {port}\n");
        let settings = Config::from_text(&site, site.config_file(), toml, None)
            .unwrap()
            .settings();
        let listener =
            crate::pool::connection::Listener::new(bind(&settings).unwrap().into()).unwrap();
        (listener, port)
    }

    #[tokio::test]
    async fn connections_accepted_from_the_bound_listener_have_tcp_nodelay() {
        let (listener, port) = bound_listener();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (connection, _) = listener.accept().await.unwrap();
        assert!(connection.nodelay());
    }

    /// A connection is accepted once its request is in (read then without waiting
    /// on epoll); one that sends nothing is still accepted, a moment later.
    #[tokio::test]
    async fn connections_are_accepted_with_their_first_bytes_or_a_moment_later() {
        use std::io::Write;
        use std::time::Duration;
        let (listener, port) = bound_listener();

        let mut sender = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let early = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(early.is_err(), "accepted before it sent anything");
        sender.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let (mut connection, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("accepted once its request is in")
            .unwrap();
        assert_eq!(connection.read_some().await, b"GET / HTTP/1.1\r\n\r\n");
        assert!(!connection.is_registered(), "read without waiting on epoll");

        let _silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        tokio::time::timeout(Duration::from_secs(20), listener.accept())
            .await
            .expect("a silent client is accepted all the same")
            .unwrap();
    }
}
