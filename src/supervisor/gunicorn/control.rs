//! Gunicorn's control socket (`--control-socket`, Gunicorn ≥ 25.1): one request per
//! connection, each message a 4-byte big-endian length then JSON.
//! Request `{"id":1,"command":"show stats","args":[]}`; answer
//! `{"id":1,"status":"ok","data":{…}}` or `{"id":1,"status":"error","error":"…"}`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Answers larger than this are refused (Gunicorn's own limit is 16 MiB).
const MAX_REPLY: u32 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("Gunicorn's control socket {path} does not exist (started without --control-socket?)")]
    NoSocket { path: String },
    #[error("nothing answers on Gunicorn's control socket {path}")]
    Refused { path: String },
    #[error(
        "Gunicorn's control socket {path} accepts no connection (its master is stopped or stuck)"
    )]
    Busy { path: String },
    #[error("Gunicorn's control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("Gunicorn's control socket {path} sent a reply that is not its protocol: {detail}")]
    BadReply { path: String, detail: String },
    #[error("Gunicorn refused '{command}': {message}")]
    Refusal { command: String, message: String },
}

#[derive(Debug, Deserialize)]
struct Reply {
    status: String,
    #[serde(default)]
    data: serde_json::Value,
    #[serde(default)]
    error: Option<String>,
}

/// Connects without ever blocking: a blocking connect to a socket whose master no
/// longer accepts waits forever once the listen backlog is full.
fn connect(socket: &Path) -> std::io::Result<UnixStream> {
    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.connect(&socket2::SockAddr::unix(socket)?)?;
    sock.set_nonblocking(false)?;
    Ok(UnixStream::from(std::os::fd::OwnedFd::from(sock)))
}

/// Sends one command (e.g. `show workers`, `worker add 2`) and returns its `data`.
pub fn call(
    socket: &Path,
    command: &str,
    timeout: Duration,
) -> Result<serde_json::Value, CtlError> {
    let path = socket.display().to_string();
    let io = |source: std::io::Error| CtlError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CtlError::NoSocket { path: path.clone() },
        std::io::ErrorKind::ConnectionRefused => CtlError::Refused { path: path.clone() },
        // A full backlog: the master has not accepted for a while (stopped, stuck).
        std::io::ErrorKind::WouldBlock => CtlError::Busy { path: path.clone() },
        _ => io(e),
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = serde_json::json!({"id": 1, "command": command, "args": []});
    let payload = serde_json::to_vec(&request).expect("a JSON value serialises");
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    stream.write_all(&frame).map_err(io)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(io)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_REPLY {
        return Err(CtlError::BadReply {
            path,
            detail: format!("a {len}-byte message"),
        });
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).map_err(io)?;
    let reply: Reply = serde_json::from_slice(&body).map_err(|e| CtlError::BadReply {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    if reply.status == "ok" {
        Ok(reply.data)
    } else {
        Err(CtlError::Refusal {
            command: command.to_string(),
            message: reply.error.unwrap_or(reply.status),
        })
    }
}

/// `show stats`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Stats {
    #[serde(default)]
    pub uptime: Option<f64>,
    pub pid: u32,
    pub workers_current: u32,
    pub workers_target: u32,
    #[serde(default)]
    pub workers_spawned: u64,
    #[serde(default)]
    pub workers_killed: u64,
    #[serde(default)]
    pub reloads: u64,
}

/// One entry of `show workers`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Worker {
    pub pid: u32,
    /// Spawn order, not seconds.
    pub age: u64,
    #[serde(default)]
    pub aborted: bool,
    #[serde(default)]
    pub last_heartbeat: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Workers {
    workers: Vec<Worker>,
}

pub fn stats(socket: &Path, timeout: Duration) -> Result<Stats, CtlError> {
    let data = call(socket, "show stats", timeout)?;
    serde_json::from_value(data).map_err(|e| CtlError::BadReply {
        path: socket.display().to_string(),
        detail: e.to_string(),
    })
}

pub fn workers(socket: &Path, timeout: Duration) -> Result<Vec<Worker>, CtlError> {
    let data = call(socket, "show workers", timeout)?;
    serde_json::from_value::<Workers>(data)
        .map(|w| w.workers)
        .map_err(|e| CtlError::BadReply {
            path: socket.display().to_string(),
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A stand-in that speaks the framing: answers each request with `reply`.
    fn serve_once(
        listener: UnixListener,
        reply: serde_json::Value,
    ) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut len = [0u8; 4];
            conn.read_exact(&mut len).unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            conn.read_exact(&mut body).unwrap();
            let out = serde_json::to_vec(&reply).unwrap();
            conn.write_all(&(out.len() as u32).to_be_bytes()).unwrap();
            conn.write_all(&out).unwrap();
            String::from_utf8(body).unwrap()
        })
    }

    #[test]
    fn frames_requests_and_reads_data_or_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("g.ctl");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = serve_once(
            listener,
            serde_json::json!({"id": 1, "status": "ok", "data": {"pid": 7, "workers_current": 2, "workers_target": 3, "reloads": 1}}),
        );
        let stats = stats(&sock, Duration::from_secs(5)).unwrap();
        let request: serde_json::Value = serde_json::from_str(&server.join().unwrap()).unwrap();
        assert_eq!(request["command"], "show stats");
        assert_eq!(
            (
                stats.pid,
                stats.workers_current,
                stats.workers_target,
                stats.reloads
            ),
            (7, 2, 3, 1)
        );

        std::fs::remove_file(&sock).unwrap();
        let listener = UnixListener::bind(&sock).unwrap();
        let server = serve_once(
            listener,
            serde_json::json!({"id": 1, "status": "error", "error": "Worker 9 not found"}),
        );
        let err = call(&sock, "worker kill 9", Duration::from_secs(5)).unwrap_err();
        server.join().unwrap();
        assert_eq!(
            err.to_string(),
            "Gunicorn refused 'worker kill 9': Worker 9 not found"
        );
    }

    #[test]
    fn a_master_that_stopped_accepting_never_hangs_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("stuck.ctl");
        // Bound and listening with a tiny backlog, never accepting (a SIGSTOP'd master).
        let listener =
            socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        listener
            .bind(&socket2::SockAddr::unix(&sock).unwrap())
            .unwrap();
        listener.listen(1).unwrap();
        let started = std::time::Instant::now();
        let mut errors = Vec::new();
        for _ in 0..5 {
            errors.push(call(&sock, "show stats", Duration::from_millis(200)).unwrap_err());
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert!(
            errors.iter().any(|e| matches!(e, CtlError::Busy { .. })),
            "once the backlog is full, connects fail at once: {errors:?}"
        );
        drop(listener);
    }

    #[test]
    fn a_missing_socket_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = call(
            &dir.path().join("none.ctl"),
            "show stats",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, CtlError::NoSocket { .. }), "{err}");
    }
}
