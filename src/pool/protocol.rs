//! The master's control socket (`var/omeroweb.sock`, mode 0600, same-uid peers only).
//! One request per connection: the client writes one JSON line, the master answers
//! with one JSON line and closes. Every signal the master handles has a twin here.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::status::{ControlResponse, PoolStatus, WorkerStatus};

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

/// Reads one request line as the master receives it; the error says what is wrong.
pub fn parse_request(line: &str) -> Result<ControlRequest, String> {
    serde_json::from_str(line).map_err(|e| format!("bad request: {e}"))
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
