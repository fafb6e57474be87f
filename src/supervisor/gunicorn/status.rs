//! `status`: the running master's workers (from its control socket, else `/proc`),
//! the requests and deaths counted from its logs, and the warnings a reader needs (a
//! stopped master, a deleted or rotated log, a master omero-webctl did not start);
//! without a master, a stale pid file, orphans, or how the last master halted.

use std::collections::BTreeMap;

use super::master::Master;
use super::reload::argv_flag;
use super::{CTL_TIMEOUT, Gunicorn, control, log_files, process, python};
use crate::site::SiteKind;
use crate::status::{ServerState, WorkerState};
use crate::supervisor::{PoolStatus, StatusOutcome, WorkerStatus};

impl Gunicorn {
    pub(super) fn read_status(&self) -> anyhow::Result<StatusOutcome> {
        let pid = match self.master() {
            Master::Running(pid) => pid,
            stopped => {
                let orphans = self.orphans();
                return Ok(match stopped {
                    Master::Stale(pid) => StatusOutcome::Stale { pid, orphans },
                    _ if !orphans.is_empty() => StatusOutcome::Stale { pid: None, orphans },
                    _ => match self.halt() {
                        Some(halt) => StatusOutcome::Halted(Box::new(halt)),
                        None => StatusOutcome::NotRunning,
                    },
                });
            }
        };
        let settings = self.settings().ok();
        let mut warnings = Vec::new();
        // A stopped master answers nothing: do not wait for it, say so.
        let stopped = process::state(pid) == Some('T');
        let asked = if stopped {
            warnings.push(format!(
                "the Gunicorn master (PID {pid}) is stopped (SIGSTOP): nothing supervises the workers until it gets SIGCONT"
            ));
            None
        } else {
            Some((
                control::stats(&self.socket(), CTL_TIMEOUT),
                control::workers(&self.socket(), CTL_TIMEOUT),
            ))
        };
        let (stats, workers) = match asked {
            Some((Ok(stats), Ok(workers))) => (stats, workers),
            other => {
                if let Some((Err(e), _) | (_, Err(e))) = other {
                    warnings.push(format!(
                        "{e}; workers are read from /proc, scaling uses signals"
                    ));
                }
                let pids = process::children(pid);
                let stats = control::Stats {
                    uptime: process::age_secs(pid),
                    pid,
                    workers_current: pids.len() as u32,
                    workers_target: settings.as_ref().map_or(pids.len() as u32, |s| s.workers),
                    ..Default::default()
                };
                let workers = pids
                    .iter()
                    .map(|&pid| control::Worker {
                        pid,
                        age: 0,
                        aborted: false,
                        last_heartbeat: None,
                    })
                    .collect();
                (stats, workers)
            }
        };
        let live: Vec<u32> = workers.iter().map(|w| w.pid).collect();
        let (totals, per_worker, activity, deaths, events, lost, record) =
            self.figures(pid, |f, record| {
                (
                    f.totals.clone(),
                    f.per_worker.clone(),
                    // Gunicorn does not say what a worker serves now: `serving` is unknown.
                    live.iter()
                        .filter_map(|pid| Some((*pid, f.activity.get(pid)?.1.report(None))))
                        .collect::<BTreeMap<_, _>>(),
                    f.worker_deaths,
                    f.recent_events.clone(),
                    f.lost.clone(),
                    record.clone(),
                )
            });
        // A log deleted under Gunicorn: it writes on into the deleted file.
        let deleted = process::deleted_open_files(pid);
        for log in log_files(&self.site, settings.as_ref()).iter().skip(1) {
            if deleted.contains(&log.path) {
                warnings.push(format!(
                    "{} was deleted while Gunicorn still writes it: nothing new can be read or counted until `omero-webctl reopen-logs`",
                    log.path.display()
                ));
            }
        }
        for log in lost {
            warnings.push(format!(
                "{} was rotated since the master started and its older part is gone: what it held is not counted",
                log.display()
            ));
        }
        if let Some(since) = &record.counting_since {
            warnings.push(format!(
                "this Gunicorn was not started by omero-webctl: requests are counted since {since}"
            ));
        }
        if stats.workers_current < stats.workers_target {
            warnings.push(format!(
                "{} of {} workers running",
                stats.workers_current, stats.workers_target
            ));
        }
        if let Some(last) = events.back() {
            warnings.push(format!(
                "{deaths} worker(s) died unexpectedly since start; last: worker {} {} at {} (Gunicorn replaced it)",
                last.pid, last.what, last.at
            ));
        }
        if record.access_log.is_none() {
            warnings.push(
                "this Gunicorn writes no access log omero-webctl can read; per-worker requests are unknown (restart it with omero-webctl)".into(),
            );
        }
        let generation = stats.reloads + 1;
        let workers = workers
            .iter()
            .map(|w| {
                let figures = per_worker.get(&w.pid).cloned().unwrap_or_default();
                WorkerStatus {
                    pid: w.pid,
                    state: if w.aborted {
                        WorkerState::Aborted
                    } else {
                        WorkerState::Ready
                    },
                    age_secs: process::age_secs(w.pid).unwrap_or(0.0),
                    generation,
                    restarts: 0,
                    requests: figures.requests,
                    in_flight: None,
                    status_2xx: figures.status_2xx,
                    status_3xx: figures.status_3xx,
                    status_4xx: figures.status_4xx,
                    status_5xx: figures.status_5xx,
                    bytes_sent: figures.bytes_sent,
                    latency_p50: figures.percentile(50.0),
                    latency_p95: figures.percentile(95.0),
                    latency_p99: figures.percentile(99.0),
                    last_heartbeat_secs: w.last_heartbeat.unwrap_or(0.0),
                    activity: activity.get(&w.pid).cloned().unwrap_or_default(),
                }
            })
            .collect();
        // A config broken since the start costs none of this: what the master runs
        // (its interpreter, bind and class) is on its command line.
        let argv = process::cmdline(pid);
        let interpreter = match &settings {
            Some(s) => s.python.clone(),
            None => argv.first().map(std::path::PathBuf::from),
        };
        let python_versions = python::inspect(interpreter.as_deref())
            .map(|p| p.versions)
            .unwrap_or_default();
        let (bind, worker_class) = match &settings {
            Some(s) => (s.bind(), s.effective_worker_class().as_str().to_string()),
            None => (
                argv_flag(&argv, &["--bind", "-b"])
                    .unwrap_or("?")
                    .to_string(),
                running_worker_class(&argv),
            ),
        };
        Ok(StatusOutcome::Running(Box::new(PoolStatus {
            kind: SiteKind::OmeroWeb,
            versions: python_versions,
            state: if stopped {
                ServerState::Degraded
            } else {
                ServerState::Running
            },
            master_pid: pid,
            uptime_secs: stats.uptime.unwrap_or(0.0) as u64,
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .saturating_sub(stats.uptime.unwrap_or(0.0) as u64),
            bind,
            worker_class,
            target_workers: stats.workers_target,
            generation,
            // From the file (a reload updates it), and only if it is this master's.
            applied: Some(self.record())
                .filter(|r| r.master_pid == Some(pid))
                .map(|r| r.applied)
                .unwrap_or_default(),
            log_file: log_files(&self.site, settings.as_ref())[0]
                .path
                .display()
                .to_string(),
            totals,
            restarts: deaths,
            stuck_replaced: 0,
            workers,
            warnings,
        })))
    }
}

/// The worker class a running Gunicorn was started with: `-k`, else Gunicorn's own
/// choice (sync, which it runs as gthread when given more than one thread).
fn running_worker_class(argv: &[String]) -> String {
    match argv_flag(argv, &["--worker-class", "-k"]) {
        Some(class) => class.to_string(),
        None if argv_flag(argv, &["--threads"]).and_then(|t| t.parse::<u32>().ok()) > Some(1) => {
            "gthread".into()
        }
        None => "sync".into(),
    }
}
