//! The master's control socket (`var/omeroweb.sock`, mode 0600, same-uid peers only).
//! One request per connection: the client writes one JSON line, the master answers
//! with one JSON line and closes. Every signal the master handles has a twin here.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::stats::WorkerStats;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Pool and per-worker status (`status --json`).
    Status,
    /// Stop the pool: graceful (TERM) or quick (INT/QUIT).
    Stop { quick: bool },
    /// Re-read the config and replace workers one by one (HUP). Answered when the
    /// rolling restart has finished or was aborted.
    Reload,
    /// Set the worker count (`to`) or change it (`by`), as TTIN/TTOU do by one.
    Scale {
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<i32>,
    },
    /// Reopen the log files (USR1).
    Reopen,
    /// Kill one worker (the pool replaces it).
    KillWorker { pid: u32 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlResponse {
    pub ok: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<PoolStatus>,
}

impl ControlResponse {
    pub fn ok(message: impl Into<String>) -> ControlResponse {
        ControlResponse {
            ok: true,
            message: message.into(),
            status: None,
        }
    }
    pub fn failed(message: impl Into<String>) -> ControlResponse {
        ControlResponse {
            ok: false,
            message: message.into(),
            status: None,
        }
    }
}

/// The pool as `status --json` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// "running", "degraded", "reloading", "starting" or "stopping".
    pub state: String,
    pub master_pid: u32,
    pub uptime_secs: u64,
    pub bind: String,
    pub worker_class: String,
    pub target_workers: u32,
    pub generation: u64,
    pub log_file: String,
    pub totals: WorkerStats,
    pub workers: Vec<WorkerStatus>,
    /// Things a sysadmin should know (crash loop, config problems, ...).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub pid: u32,
    /// "booting", "ready", "retiring" or "aborted".
    pub state: String,
    pub age_secs: f64,
    pub generation: u64,
    /// How many workers this slot has had replaced (crashes, timeouts, recycling).
    pub restarts: u64,
    pub requests: u64,
    pub in_flight: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub bytes_sent: u64,
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
    pub latency_p99_ms: Option<u64>,
    /// Seconds since the last heartbeat.
    pub last_heartbeat_secs: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the control socket {path} does not exist (is the pool running?)")]
    NoSocket { path: String },
    #[error("nothing answers on the control socket {path} (is the master gone or stuck?)")]
    Refused { path: String },
    #[error("cannot use the control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the master sent a reply that is not valid JSON: {0}")]
    BadReply(String),
}

/// Sends one request and waits up to `timeout` for the answer.
pub fn send(
    socket: &Path,
    request: &ControlRequest,
    timeout: Duration,
) -> Result<ControlResponse, ControlError> {
    let path = socket.display().to_string();
    let io = |source: std::io::Error| ControlError::Io {
        path: path.clone(),
        source,
    };
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ControlError::NoSocket { path: path.clone() },
        std::io::ErrorKind::ConnectionRefused => ControlError::Refused { path: path.clone() },
        _ => io(e),
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_string(request).expect("requests serialise");
    line.push('\n');
    (&stream).write_all(line.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).map_err(io)?;
    serde_json::from_str(&reply).map_err(|_| ControlError::BadReply(reply.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_dead_socket_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("omeroweb.sock");
        let err = send(&missing, &ControlRequest::Status, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ControlError::NoSocket { .. }), "{err}");
        // A socket file nobody listens on (a master killed with -9 leaves one).
        drop(std::os::unix::net::UnixListener::bind(&missing).unwrap());
        let err = send(&missing, &ControlRequest::Status, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ControlError::Refused { .. }), "{err}");
    }

    #[test]
    fn requests_have_a_stable_json_shape() {
        let cases = [
            (ControlRequest::Status, r#"{"cmd":"status"}"#),
            (
                ControlRequest::Stop { quick: false },
                r#"{"cmd":"stop","quick":false}"#,
            ),
            (ControlRequest::Reload, r#"{"cmd":"reload"}"#),
            (
                ControlRequest::Scale {
                    to: None,
                    by: Some(-1),
                },
                r#"{"cmd":"scale","by":-1}"#,
            ),
            (
                ControlRequest::KillWorker { pid: 42 },
                r#"{"cmd":"kill_worker","pid":42}"#,
            ),
        ];
        for (req, json) in cases {
            assert_eq!(serde_json::to_string(&req).unwrap(), json);
            assert_eq!(serde_json::from_str::<ControlRequest>(json).unwrap(), req);
        }
    }
}
