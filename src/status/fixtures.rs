//! Status values for tests, written once: a running pool and its workers with
//! plausible figures, for the panel's and the supervisors' unit tests.

use super::stats::WorkerStats;
use super::{PoolStatus, ServerState, WorkerState, WorkerStatus};

pub fn worker(pid: u32, requests: u64, age: f64) -> WorkerStatus {
    WorkerStatus {
        pid,
        state: WorkerState::Ready,
        age_secs: age,
        generation: 1,
        restarts: 0,
        requests,
        in_flight: Some(0),
        status_2xx: requests,
        status_3xx: 0,
        status_4xx: 0,
        status_5xx: 0,
        bytes_sent: 0,
        latency_p50: None,
        latency_p95: None,
        latency_p99: None,
        last_heartbeat_secs: 0.5,
        activity: Default::default(),
    }
}

/// A running pool whose totals are its live workers' counts plus `retired`
/// requests of workers that have exited.
pub fn pool_status_with(workers: Vec<WorkerStatus>, retired: u64) -> PoolStatus {
    let mut status = pool_status(workers);
    status.totals = totals(&status.workers);
    status.totals.requests += retired;
    status.totals.status_2xx += retired;
    status
}

/// The live workers' counts summed, as the master totals them (no latencies).
pub fn totals(workers: &[WorkerStatus]) -> WorkerStats {
    let mut t = WorkerStats::new();
    for w in workers {
        t.requests += w.requests;
        t.in_flight += w.in_flight.unwrap_or(0);
        t.status_2xx += w.status_2xx;
        t.status_3xx += w.status_3xx;
        t.status_4xx += w.status_4xx;
        t.status_5xx += w.status_5xx;
        t.bytes_sent += w.bytes_sent;
    }
    t
}

pub fn pool_status(workers: Vec<WorkerStatus>) -> PoolStatus {
    PoolStatus {
        kind: crate::site::SiteKind::Embedded,
        versions: Default::default(),
        state: ServerState::Running,
        master_pid: 100,
        uptime_secs: 3725,
        // Unknown, so the panel's snapshots do not depend on the machine's time zone.
        started_at: 0,
        bind: "127.0.0.1:4080".into(),
        worker_class: "gthread".into(),
        target_workers: workers.len() as u32,
        generation: 1,
        log_file: "/srv/web/var/log/OMEROweb.log".into(),
        applied: Default::default(),
        totals: Default::default(),
        restarts: 0,
        stuck_replaced: 0,
        workers,
        warnings: vec![],
    }
}
