//! Dashboard state: the latest pool observation, rates computed from successive
//! samples, per-PID CPU and memory, the workers' sort order and selection.

use std::collections::{HashMap, VecDeque};

use crate::status::{PoolStatus, ServerState, WorkerStatus};

use super::event::{Job, NginxObservation, PoolObservation, ProcStat, Sample};

/// Rate points kept for the sparkline: ten minutes at one sample a second.
pub const RATE_HISTORY: usize = 600;

/// Columns the workers table can be sorted by, in the order `o` cycles through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    Pid,
    Age,
    Requests,
    Rate,
    InFlight,
    Cpu,
    Rss,
    Restarts,
}

impl SortColumn {
    pub const ALL: [SortColumn; 8] = [
        SortColumn::Pid,
        SortColumn::Age,
        SortColumn::Requests,
        SortColumn::Rate,
        SortColumn::InFlight,
        SortColumn::Cpu,
        SortColumn::Rss,
        SortColumn::Restarts,
    ];

    pub fn title(self) -> &'static str {
        match self {
            SortColumn::Pid => "PID",
            SortColumn::Age => "AGE",
            SortColumn::Requests => "REQS",
            SortColumn::Rate => "REQ/S",
            SortColumn::InFlight => "BUSY",
            SortColumn::Cpu => "CPU%",
            SortColumn::Rss => "RSS",
            SortColumn::Restarts => "RESTARTS",
        }
    }

    fn next(self) -> SortColumn {
        let i = SortColumn::ALL.iter().position(|&c| c == self).unwrap_or(0);
        SortColumn::ALL[(i + 1) % SortColumn::ALL.len()]
    }
}

/// The pool's state as the panel names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolState {
    /// No sample yet.
    Checking,
    Running,
    Degraded,
    Starting,
    Reloading,
    /// A restart of a running pool: a new generation switched in behind the private
    /// nginx (it keeps serving), or a stop and a start without one.
    Restarting,
    Stopping,
    Stopped,
    /// It stopped by itself (Gunicorn halted: a worker failed to boot).
    Halted,
    /// Its master is gone; workers it left still serve.
    MasterGone,
    /// The pool could not be asked.
    Unknown,
}

impl PoolState {
    pub fn label(self) -> &'static str {
        match self {
            PoolState::Checking => "CHECKING",
            PoolState::Running => "RUNNING",
            PoolState::Degraded => "DEGRADED",
            PoolState::Starting => "STARTING",
            PoolState::Reloading => "RELOADING",
            PoolState::Restarting => "RESTARTING",
            PoolState::Stopping => "STOPPING",
            PoolState::Stopped => "STOPPED",
            PoolState::Halted => "HALTED",
            PoolState::MasterGone => "MASTER GONE",
            PoolState::Unknown => "UNKNOWN",
        }
    }
}

/// One row of the workers table.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    pub status: WorkerStatus,
    pub rate: Option<f64>,
    pub cpu: Option<f64>,
    pub rss: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
struct Previous {
    at: f64,
    requests: HashMap<u32, u64>,
    /// The master and its cumulative request total.
    total: Option<(u32, u64)>,
    procs: HashMap<u32, ProcStat>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// `None` until the first sample.
    pub pool: Option<PoolObservation>,
    pub nginx: Option<NginxObservation>,
    /// Latest RSS per PID.
    pub rss: HashMap<u32, u64>,
    /// CPU% (of one core) per PID over the last interval.
    pub cpu: HashMap<u32, f64>,
    /// Requests per second per worker PID over the last interval.
    pub worker_rates: HashMap<u32, f64>,
    /// Total requests per second, oldest first.
    pub rates: VecDeque<f64>,
    previous: Option<Previous>,
    pub sort: SortColumn,
    pub descending: bool,
    pub selected_pid: Option<u32>,
    /// The `diagnostics` warnings (config and deployment problems).
    pub warnings: Vec<String>,
    /// Whether diagnostics have run yet (before that, "no problems" would be a guess).
    pub diagnosed: bool,
    /// What serves the site, with versions (empty until the first sample).
    pub backend: String,
    /// The host, as the diagnostics last read it.
    pub host: Option<crate::host::HostFigures>,
    /// Recent CPU %, RSS and req/s of each live worker, oldest first (drill-down).
    pub history: HashMap<u32, VecDeque<WorkerPoint>>,
    /// nginx's server errors of the last minute, by sample time.
    pub nginx_errors: VecDeque<(f64, super::event::NginxErrors)>,
    /// Whether the OMERO.servers of `server_list` answer (OMERO.web sites).
    pub servers: super::servers::ServerChecks,
    /// The change running now or the last one, and the history (the `U` screen; the
    /// Dashboard shows both generations while they coexist).
    pub changes: super::event::ChangesSeen,
    /// Access control's counts from the latest sample (None: off).
    pub access: Option<Result<crate::gateway::auth::AccessCounts, String>>,
}

/// Samples of history kept per worker (about a minute).
pub const WORKER_HISTORY: usize = 60;

/// One sample of one worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerPoint {
    pub cpu: f64,
    pub rss: u64,
    pub rate: f64,
}

/// How far back the nginx errors shown on the Dashboard go (seconds).
pub const NGINX_ERROR_WINDOW: f64 = 60.0;

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            pool: None,
            nginx: None,
            rss: HashMap::new(),
            cpu: HashMap::new(),
            worker_rates: HashMap::new(),
            rates: VecDeque::new(),
            previous: None,
            sort: SortColumn::Pid,
            descending: false,
            selected_pid: None,
            warnings: Vec::new(),
            diagnosed: false,
            backend: String::new(),
            host: None,
            nginx_errors: VecDeque::new(),
            history: HashMap::new(),
            servers: Default::default(),
            changes: Default::default(),
            access: None,
        }
    }
}

/// Requests served between two samples, summed over workers. Per PID, so a worker
/// that was replaced (its counters gone with it) does not make the total go backwards;
/// a worker born since the last sample counts all its requests.
pub fn request_deltas(
    previous: &HashMap<u32, u64>,
    workers: &[WorkerStatus],
    interval: f64,
) -> HashMap<u32, u64> {
    workers
        .iter()
        .map(|w| {
            let delta = match previous.get(&w.pid) {
                Some(&before) => w.requests.saturating_sub(before),
                None if w.age_secs <= interval + 1.0 => w.requests,
                // Known from before the panel looked: its history is not this interval's.
                None => 0,
            };
            (w.pid, delta)
        })
        .collect()
}

/// CPU% of one core between two readings of a process's CPU time.
pub fn cpu_percent(before: &ProcStat, after: &ProcStat, interval: f64) -> f64 {
    if interval <= 0.0 {
        return 0.0;
    }
    ((after.cpu_secs - before.cpu_secs).max(0.0) / interval) * 100.0
}

/// The pool, nginx, per-worker CPU, RSS and rates, and access counts: what a sample
/// changes on the Dashboard.
type ShownBySample = (
    Option<PoolObservation>,
    Option<NginxObservation>,
    HashMap<u32, f64>,
    HashMap<u32, u64>,
    HashMap<u32, f64>,
    Option<Result<crate::gateway::auth::AccessCounts, String>>,
);

impl Dashboard {
    /// nginx's server errors within the window.
    pub fn recent_nginx_errors(&self) -> super::event::NginxErrors {
        let mut sum = super::event::NginxErrors::default();
        for (_, e) in &self.nginx_errors {
            sum.server_errors += e.server_errors;
            sum.bad_gateway += e.bad_gateway;
            sum.gateway_timeout += e.gateway_timeout;
        }
        sum
    }

    /// Takes in a sample; returns whether anything shown changed.
    pub fn apply_sample(&mut self, sample: &Sample) -> bool {
        let before = self.shown_by_sample();
        self.access = sample.access.clone();
        let workers: &[WorkerStatus] = match &sample.pool {
            PoolObservation::Running(status) => &status.workers,
            _ => &[],
        };
        let requests: HashMap<u32, u64> = workers.iter().map(|w| (w.pid, w.requests)).collect();
        let running = matches!(sample.pool, PoolObservation::Running(_));
        let status = match &sample.pool {
            PoolObservation::Running(status) => Some(status.as_ref()),
            _ => None,
        };
        let total = status.map(|s| (s.master_pid, s.totals.requests));
        // A sample right after another (an action asks for one) is too short an
        // interval for a rate: it updates what is shown but keeps the older baseline.
        let mut keep_baseline = false;
        match self.previous.take() {
            Some(prev) if sample.at - prev.at >= 0.2 => {
                let interval = sample.at - prev.at;
                let deltas = request_deltas(&prev.requests, workers, interval);
                self.worker_rates = deltas
                    .iter()
                    .map(|(&pid, &d)| (pid, d as f64 / interval))
                    .collect();
                // The pool's rate from its totals, which include workers that exited
                // meanwhile (summing the live workers' deltas would miss them).
                if let Some(status) = status {
                    let now = status.totals.requests;
                    let served = match prev.total {
                        Some((master, before)) if master == status.master_pid => {
                            now.saturating_sub(before)
                        }
                        _ if status.uptime_secs as f64 <= interval + 1.0 => now,
                        // A master the panel had not seen: no interval to divide by.
                        _ => 0,
                    };
                    self.push_rate(served as f64 / interval);
                }
                self.cpu = sample
                    .procs
                    .iter()
                    .filter_map(|(pid, now)| {
                        prev.procs
                            .get(pid)
                            .map(|then| (*pid, cpu_percent(then, now, interval)))
                    })
                    .collect();
            }
            Some(prev) => {
                self.previous = Some(prev);
                keep_baseline = true;
            }
            None => {
                self.worker_rates.clear();
                self.cpu.clear();
            }
        }
        if !running {
            self.worker_rates.clear();
        }
        self.rss = sample
            .procs
            .iter()
            .map(|(&pid, p)| (pid, p.rss_bytes))
            .collect();
        if !keep_baseline {
            self.previous = Some(Previous {
                at: sample.at,
                requests,
                total,
                procs: sample.procs.clone(),
            });
        }
        self.pool = Some(sample.pool.clone());
        self.nginx = Some(sample.nginx.clone());
        self.backend = sample.backend.clone();
        // Each live worker's figures over time; the departed are forgotten.
        for w in workers {
            let point = WorkerPoint {
                cpu: self.cpu.get(&w.pid).copied().unwrap_or(0.0),
                rss: self.rss.get(&w.pid).copied().unwrap_or(0),
                rate: self.worker_rates.get(&w.pid).copied().unwrap_or(0.0),
            };
            let history = self.history.entry(w.pid).or_default();
            history.push_back(point);
            while history.len() > WORKER_HISTORY {
                history.pop_front();
            }
        }
        self.history
            .retain(|pid, _| workers.iter().any(|w| w.pid == *pid));
        if sample.nginx_errors.server_errors > 0 {
            self.nginx_errors
                .push_back((sample.at, sample.nginx_errors));
        }
        while self
            .nginx_errors
            .front()
            .is_some_and(|(at, _)| sample.at - at > NGINX_ERROR_WINDOW)
        {
            self.nginx_errors.pop_front();
        }
        if let Some(pid) = self.selected_pid
            && !workers.iter().any(|w| w.pid == pid)
        {
            self.selected_pid = None;
        }
        if self.selected_pid.is_none() {
            self.selected_pid = self.sorted_workers().first().map(|w| w.status.pid);
        }
        before != self.shown_by_sample()
    }

    /// What a sample can change that the view shows, to compare before and after one.
    fn shown_by_sample(&self) -> ShownBySample {
        (
            self.pool.clone(),
            self.nginx.clone(),
            self.cpu.clone(),
            self.rss.clone(),
            self.worker_rates.clone(),
            self.access.clone(),
        )
    }

    fn push_rate(&mut self, rate: f64) {
        if self.rates.len() == RATE_HISTORY {
            self.rates.pop_front();
        }
        self.rates.push_back(rate);
    }

    pub fn status(&self) -> Option<&PoolStatus> {
        match &self.pool {
            Some(PoolObservation::Running(status)) => Some(status),
            _ => None,
        }
    }

    /// The state to show, taking a job in progress into account (a start shows as
    /// STARTING before the master can answer).
    pub fn state(&self, job: Option<Job>) -> PoolState {
        let observed = match &self.pool {
            None => PoolState::Checking,
            Some(PoolObservation::Running(s)) => match s.state {
                ServerState::Degraded => PoolState::Degraded,
                ServerState::Reloading => PoolState::Reloading,
                ServerState::Starting => PoolState::Starting,
                ServerState::Stopping => PoolState::Stopping,
                ServerState::Running => PoolState::Running,
            },
            Some(PoolObservation::Stale { orphans, .. }) if !orphans.is_empty() => {
                PoolState::MasterGone
            }
            Some(PoolObservation::NotRunning) | Some(PoolObservation::Stale { .. }) => {
                PoolState::Stopped
            }
            Some(PoolObservation::Halted(_)) => PoolState::Halted,
            Some(PoolObservation::Error(_)) => PoolState::Unknown,
        };
        match job {
            Some(Job::Start { .. }) if observed != PoolState::Running => PoolState::Starting,
            Some(Job::Stop) => PoolState::Stopping,
            Some(Job::Restart)
                if matches!(
                    observed,
                    PoolState::Stopped | PoolState::Halted | PoolState::MasterGone
                ) =>
            {
                PoolState::Starting
            }
            Some(Job::Restart) => PoolState::Restarting,
            Some(Job::Reload) => PoolState::Reloading,
            _ => observed,
        }
    }

    /// The workers in display order. Ties are broken by PID so the order is stable.
    pub fn sorted_workers(&self) -> Vec<WorkerRow> {
        let Some(status) = self.status() else {
            return Vec::new();
        };
        let mut rows: Vec<WorkerRow> = status
            .workers
            .iter()
            .map(|w| WorkerRow {
                status: w.clone(),
                rate: self.worker_rates.get(&w.pid).copied(),
                cpu: self.cpu.get(&w.pid).copied(),
                rss: self.rss.get(&w.pid).copied(),
            })
            .collect();
        let key = |r: &WorkerRow| -> f64 {
            match self.sort {
                SortColumn::Pid => r.status.pid as f64,
                SortColumn::Age => r.status.age_secs,
                SortColumn::Requests => r.status.requests as f64,
                SortColumn::Rate => r.rate.unwrap_or(-1.0),
                SortColumn::InFlight => r.status.in_flight.map_or(-1.0, |n| n as f64),
                SortColumn::Cpu => r.cpu.unwrap_or(-1.0),
                SortColumn::Rss => r.rss.map(|b| b as f64).unwrap_or(-1.0),
                SortColumn::Restarts => r.status.restarts as f64,
            }
        };
        rows.sort_by(|a, b| {
            let order = key(a).total_cmp(&key(b));
            let order = if self.descending {
                order.reverse()
            } else {
                order
            };
            order.then(a.status.pid.cmp(&b.status.pid))
        });
        rows
    }

    pub fn next_sort(&mut self) {
        self.sort = self.sort.next();
        // Bigger-is-interesting columns start with the biggest.
        self.descending = !matches!(self.sort, SortColumn::Pid);
    }

    /// Moves the selection by `delta` rows in display order (clamped).
    pub fn move_selection(&mut self, delta: isize) {
        let rows = self.sorted_workers();
        if rows.is_empty() {
            self.selected_pid = None;
            return;
        }
        let current = self
            .selected_pid
            .and_then(|pid| rows.iter().position(|r| r.status.pid == pid))
            .unwrap_or(0);
        let target = (current as isize + delta).clamp(0, rows.len() as isize - 1) as usize;
        self.selected_pid = Some(rows[target].status.pid);
    }

    /// Total requests per second over the last interval.
    pub fn current_rate(&self) -> Option<f64> {
        self.status()?;
        self.rates.back().copied()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub use crate::status::fixtures::{pool_status, pool_status_with, worker};

    fn sample(at: f64, workers: Vec<WorkerStatus>, cpu: &[(u32, f64)]) -> Sample {
        sample_retired(at, workers, 0, cpu)
    }

    fn sample_retired(
        at: f64,
        workers: Vec<WorkerStatus>,
        retired: u64,
        cpu: &[(u32, f64)],
    ) -> Sample {
        Sample {
            at,
            pool: PoolObservation::Running(Box::new(pool_status_with(workers, retired))),
            procs: cpu
                .iter()
                .map(|&(pid, secs)| {
                    (
                        pid,
                        ProcStat {
                            cpu_secs: secs,
                            rss_bytes: 1 << 20,
                        },
                    )
                })
                .collect(),
            nginx: NginxObservation::NotRunning,
            config_stamp: None,
            backend: "embedded pool 0.1.0".into(),
            nginx_errors: Default::default(),
            access: None,
        }
    }

    #[test]
    fn rates_come_from_the_masters_totals_and_per_worker_deltas() {
        let mut d = Dashboard::default();
        d.apply_sample(&sample(
            0.0,
            vec![worker(1, 100, 60.0), worker(2, 50, 60.0)],
            &[],
        ));
        // First sample: no interval yet, so no rate.
        assert!(d.rates.is_empty());
        d.apply_sample(&sample(
            2.0,
            vec![worker(1, 120, 62.0), worker(2, 60, 62.0)],
            &[],
        ));
        assert_eq!(d.rates.back(), Some(&15.0));
        assert_eq!(d.worker_rates[&1], 10.0);
        assert_eq!(d.worker_rates[&2], 5.0);
        // Worker 2 recycled after serving 2 more (62 in all): the master's totals keep
        // them, so the pool's rate counts them too (summing live workers would not).
        d.apply_sample(&sample_retired(
            3.0,
            vec![worker(1, 121, 63.0), worker(3, 4, 0.5)],
            62,
            &[],
        ));
        assert_eq!(d.rates.back(), Some(&7.0));
        assert_eq!(d.worker_rates[&3], 4.0, "a young worker counts fully");
    }

    #[test]
    fn old_workers_seen_for_the_first_time_do_not_spike() {
        let prev = HashMap::from([(1, 10)]);
        let deltas = request_deltas(&prev, &[worker(1, 12, 100.0), worker(9, 5000, 100.0)], 1.0);
        assert_eq!(deltas[&1], 2);
        assert_eq!(deltas[&9], 0);
    }

    #[test]
    fn rate_history_is_bounded() {
        let mut d = Dashboard::default();
        for i in 0..(RATE_HISTORY + 50) {
            d.apply_sample(&sample(i as f64, vec![worker(1, i as u64 * 3, 1e6)], &[]));
        }
        assert_eq!(d.rates.len(), RATE_HISTORY);
        assert_eq!(d.current_rate(), Some(3.0));
    }

    #[test]
    fn cpu_percent_of_one_core() {
        let a = ProcStat {
            cpu_secs: 10.0,
            rss_bytes: 0,
        };
        let b = ProcStat {
            cpu_secs: 10.5,
            rss_bytes: 0,
        };
        assert_eq!(cpu_percent(&a, &b, 2.0), 25.0);
        assert_eq!(cpu_percent(&b, &a, 2.0), 0.0);
        assert_eq!(cpu_percent(&a, &b, 0.0), 0.0);
        let mut d = Dashboard::default();
        d.apply_sample(&sample(0.0, vec![worker(1, 0, 9.0)], &[(1, 1.0)]));
        d.apply_sample(&sample(1.0, vec![worker(1, 0, 10.0)], &[(1, 1.25)]));
        assert_eq!(d.cpu[&1], 25.0);
        assert_eq!(d.rss[&1], 1 << 20);
    }

    #[test]
    fn sorting_and_selection_follow_the_pid() {
        let mut d = Dashboard::default();
        let mut busy = worker(3, 500, 10.0);
        busy.restarts = 2;
        d.apply_sample(&sample(
            0.0,
            vec![worker(1, 10, 30.0), worker(2, 900, 20.0), busy],
            &[],
        ));
        let pids = |d: &Dashboard| -> Vec<u32> {
            d.sorted_workers().iter().map(|r| r.status.pid).collect()
        };
        assert_eq!(pids(&d), [1, 2, 3]);
        assert_eq!(d.selected_pid, Some(1));
        d.next_sort(); // AGE, biggest first
        assert_eq!(d.sort, SortColumn::Age);
        assert_eq!(pids(&d), [1, 2, 3]);
        d.next_sort(); // REQS
        assert_eq!(pids(&d), [2, 3, 1]);
        d.descending = false;
        assert_eq!(pids(&d), [1, 3, 2]);
        d.sort = SortColumn::Restarts;
        d.descending = true;
        assert_eq!(pids(&d), [3, 1, 2]);
        // The selection is a PID: it stays on the worker when the order changes.
        assert_eq!(d.selected_pid, Some(1));
        d.move_selection(1);
        assert_eq!(d.selected_pid, Some(2));
        d.move_selection(-10);
        assert_eq!(d.selected_pid, Some(3));
        d.sort = SortColumn::Pid;
        d.descending = false;
        // Still worker 3, now in last place.
        d.move_selection(-1);
        assert_eq!(d.selected_pid, Some(2));
    }

    #[test]
    fn jobs_in_progress_shape_the_state() {
        let mut d = Dashboard::default();
        assert_eq!(d.state(None), PoolState::Checking);
        d.pool = Some(PoolObservation::NotRunning);
        assert_eq!(d.state(None), PoolState::Stopped);
        assert_eq!(
            d.state(Some(Job::Start { nginx_port: None })),
            PoolState::Starting
        );
        assert_eq!(d.state(Some(Job::Restart)), PoolState::Starting);
        d.pool = Some(PoolObservation::Running(Box::new(pool_status(vec![]))));
        assert_eq!(d.state(None), PoolState::Running);
        assert_eq!(d.state(Some(Job::Restart)), PoolState::Restarting);
        assert_eq!(d.state(Some(Job::Reload)), PoolState::Reloading);
        assert_eq!(d.state(Some(Job::Scale(1))), PoolState::Running);
        d.pool = Some(PoolObservation::Error("permission denied".into()));
        assert_eq!(d.state(None), PoolState::Unknown);
    }

    #[test]
    fn a_halt_and_orphans_are_states_of_their_own_that_a_start_leaves() {
        let halt = crate::supervisor::Halt {
            at: "2026-12-06 18:40:10 +0000".into(),
            reason: "Worker failed to boot.".into(),
            error: None,
            log: "/s/var/log/gunicorn.log".into(),
            pending: vec![],
        };
        let mut d = Dashboard {
            pool: Some(PoolObservation::Halted(Box::new(halt))),
            ..Default::default()
        };
        assert_eq!(d.state(None), PoolState::Halted);
        assert_eq!(PoolState::Halted.label(), "HALTED");
        assert_eq!(
            d.state(Some(Job::Start { nginx_port: None })),
            PoolState::Starting
        );
        assert_eq!(d.state(Some(Job::Restart)), PoolState::Starting);
        d.pool = Some(PoolObservation::Stale {
            pid: Some(7),
            orphans: vec![8, 9],
        });
        assert_eq!(d.state(None), PoolState::MasterGone);
        assert_eq!(PoolState::MasterGone.label(), "MASTER GONE");
        assert_eq!(d.state(Some(Job::Restart)), PoolState::Starting);
        d.pool = Some(PoolObservation::Stale {
            pid: Some(7),
            orphans: vec![],
        });
        assert_eq!(d.state(None), PoolState::Stopped);
    }

    #[test]
    fn an_unchanged_stopped_pool_needs_no_redraw() {
        let mut d = Dashboard::default();
        let stopped = Sample {
            at: 0.0,
            pool: PoolObservation::NotRunning,
            procs: HashMap::new(),
            nginx: NginxObservation::NotRunning,
            config_stamp: None,
            backend: "embedded pool 0.1.0".into(),
            nginx_errors: Default::default(),
            access: None,
        };
        assert!(d.apply_sample(&stopped));
        let later = Sample { at: 1.0, ..stopped };
        assert!(!d.apply_sample(&later));
    }
}
