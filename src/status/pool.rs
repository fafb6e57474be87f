//! What every supervisor reports, whatever serves the site: the pool's status with its
//! workers (`status --json`, the panel's Dashboard) and the answer to a control request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::activity::WorkerActivity;
use super::stats::{LatencyBound, WorkerStats};
use crate::site::SiteKind;

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

/// What a running server is doing, as `status --json` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    Running,
    /// Workers keep crashing (the pool backs off between replacements), or Gunicorn's
    /// master is stopped (SIGSTOP).
    Degraded,
    Reloading,
    Starting,
    Stopping,
}

/// One worker's state, as `status --json` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Booting,
    Ready,
    Retiring,
    /// Ended by the worker timeout (Gunicorn's "WORKER TIMEOUT"), not yet reaped.
    Aborted,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Running => "running",
            ServerState::Degraded => "degraded",
            ServerState::Reloading => "reloading",
            ServerState::Starting => "starting",
            ServerState::Stopping => "stopping",
        }
    }
}

impl WorkerState {
    pub const ALL: [WorkerState; 4] = [
        WorkerState::Booting,
        WorkerState::Ready,
        WorkerState::Retiring,
        WorkerState::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Booting => "booting",
            WorkerState::Ready => "ready",
            WorkerState::Retiring => "retiring",
            WorkerState::Aborted => "aborted",
        }
    }

    /// Counts toward the target worker count.
    pub fn is_active(self) -> bool {
        matches!(self, WorkerState::Booting | WorkerState::Ready)
    }
}

// `pad`, so that `{:8}` lines up the CLI's columns as it did for strings.
impl std::fmt::Display for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::fmt::Display for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The pool as `status --json` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// What serves the site.
    #[serde(default = "embedded")]
    pub kind: SiteKind,
    /// Versions of what serves it (omero-webctl; or OMERO.web, Gunicorn, Python).
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    pub state: ServerState,
    pub master_pid: u32,
    pub uptime_secs: u64,
    /// When the master started (Unix seconds): `totals` count from then, including
    /// workers that have exited since.
    #[serde(default)]
    pub started_at: u64,
    pub bind: String,
    pub worker_class: String,
    pub target_workers: u32,
    pub generation: u64,
    pub log_file: String,
    /// What the pool runs with, per property (see `Config::applied_values`): a saved
    /// value that differs is not applied yet. Empty when the server does not say.
    #[serde(default)]
    pub applied: BTreeMap<String, String>,
    pub totals: WorkerStats,
    /// Workers that died unplanned since the master started (crashes, kills,
    /// timeouts; not recycling, reloads or scaling).
    #[serde(default)]
    pub restarts: u64,
    /// Of those, workers replaced because their blocking threads stayed stuck past
    /// the worker timeout (a hung filesystem).
    #[serde(default)]
    pub stuck_replaced: u64,
    pub workers: Vec<WorkerStatus>,
    /// Things a sysadmin should know (crash loop, config problems, ...).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub pid: u32,
    pub state: WorkerState,
    pub age_secs: f64,
    pub generation: u64,
    /// How often this worker's slot had its worker die unplanned (crashes, kills,
    /// timeouts) since the slot was made, at start or at the last reload. Gunicorn has
    /// no slots: its workers always show 0, and the pool's `restarts` counts.
    pub restarts: u64,
    pub requests: u64,
    /// Requests it serves now; `None` where that is not known (Gunicorn does not
    /// say), rather than a false 0.
    pub in_flight: Option<u64>,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub bytes_sent: u64,
    /// Latency percentiles (whole request), as bounds: the histogram's buckets
    /// tell no exact figure.
    pub latency_p50: Option<LatencyBound>,
    pub latency_p95: Option<LatencyBound>,
    pub latency_p99: Option<LatencyBound>,
    /// Seconds since the last heartbeat.
    pub last_heartbeat_secs: f64,
    /// What it serves now, its last requests and its slowest paths.
    #[serde(default)]
    pub activity: WorkerActivity,
}

fn embedded() -> SiteKind {
    SiteKind::Embedded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON is a public interface (`status --json`, the fleet, scripts): the enums
    /// must write the very strings the `String` fields did.
    #[test]
    fn states_keep_their_json_spelling() {
        let servers = [
            (ServerState::Running, "running"),
            (ServerState::Degraded, "degraded"),
            (ServerState::Reloading, "reloading"),
            (ServerState::Starting, "starting"),
            (ServerState::Stopping, "stopping"),
        ];
        for (state, text) in servers {
            assert_eq!(serde_json::to_value(state).unwrap(), text);
            assert_eq!(state.as_str(), text);
            let back: ServerState = serde_json::from_value(text.into()).unwrap();
            assert_eq!(back, state);
        }
        let workers = ["booting", "ready", "retiring", "aborted"];
        for (state, text) in WorkerState::ALL.into_iter().zip(workers) {
            assert_eq!(serde_json::to_value(state).unwrap(), text);
            assert_eq!(state.as_str(), text);
            let back: WorkerState = serde_json::from_value(text.into()).unwrap();
            assert_eq!(back, state);
        }
        assert_eq!(format!("[{:8}]", WorkerState::Ready), "[ready   ]");
    }
}
