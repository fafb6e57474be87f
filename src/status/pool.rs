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

/// The pool as `status --json` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// What serves the site.
    #[serde(default = "embedded")]
    pub kind: SiteKind,
    /// Versions of what serves it (omero-webctl; or OMERO.web, Gunicorn, Python).
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    /// "running", "degraded", "reloading", "starting" or "stopping".
    pub state: String,
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
    /// "booting", "ready", "retiring" or "aborted".
    pub state: String,
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
