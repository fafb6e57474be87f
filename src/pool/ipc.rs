//! Worker → master messages, one JSON object per line over the worker's socketpair
//! (fd 4 in the worker). The master talks back only with signals, as Gunicorn does.
//! Request counts do not travel here: they are in memory both share (fd 5).

use serde::{Deserialize, Serialize};

use crate::http_app::blocking::Stuck;
use crate::logging::Record;
use crate::status::activity::WorkerActivity;

/// File descriptor of the inherited listening socket in a worker.
pub const LISTENER_FD: i32 = 3;
/// File descriptor of the worker's end of its IPC socketpair.
pub const IPC_FD: i32 = 4;
/// File descriptor of the worker's counters (a memfd shared with the master).
pub const STATS_FD: i32 = 5;
/// Environment variable carrying the worker's spec (JSON).
pub const SPEC_ENV: &str = "OMEROWEBCTL_WORKER_SPEC";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// The worker booted and accepts connections.
    Ready,
    /// Sent twice a second from inside the worker's runtime, so a stalled
    /// runtime stops the heartbeats; it carries what the worker serves now.
    Heartbeat {
        activity: WorkerActivity,
        /// Blocking jobs past the worker timeout (their requests were answered 504).
        #[serde(default)]
        stuck: Stuck,
    },
    /// A log record for the master to write to OMEROweb.log.
    Log(Record),
    /// The worker stopped accepting and will exit once in-flight work is done.
    Retiring { reason: String },
    /// One access-log line (only with `--access-logfile` in wsgi_args).
    Access { line: String },
    /// The worker could not boot; it exits right after.
    BootFailed { reason: String },
}
