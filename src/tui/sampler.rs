//! The producers that watch the world from their own threads: the pool sampler (about
//! once a second: pool status over the control socket, CPU and RSS of its processes
//! from /proc, the private nginx, the config file's stamp; diagnostics less often) and
//! the log tailer (about four times a second). Both only send events when asked to or
//! when something is new, and stop when the panel's receiver is gone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::logging::{LogFollower, Start};
use crate::site::Site;
use crate::supervisor::{self, StatusOutcome, Supervisor};

use super::event::{Event, NginxObservation, PoolObservation, ProcStat, Sample};
use super::log_view::MAX_LINES;

pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Diagnostics read the whole log to count errors: not every second.
pub const DIAGNOSTICS_INTERVAL: Duration = Duration::from_secs(30);
/// The log is read when the file system says it changed (notify); this poll is the
/// fallback where it says nothing (network filesystems, a watch that failed).
pub const LOG_POLL_INTERVAL: Duration = Duration::from_millis(1000);

/// Asks the sampler for a sample (and diagnostics) now, e.g. after an action.
pub struct SampleNow;

pub fn spawn_sampler(site: Site, events: UnboundedSender<Event>) -> Sender<SampleNow> {
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name("pool-sampler".into())
        .spawn(move || sampler_loop(site, events, rx))
        .expect("spawn the sampler thread");
    tx
}

fn sampler_loop(site: Site, events: UnboundedSender<Event>, requests: Receiver<SampleNow>) {
    // One supervisor for the panel's life: it reads logs incrementally between samples.
    let supervisor = supervisor::for_site(&site);
    let mut processes = ProcessFigures::default();
    // nginx's access log, from now on: what users get, counted per interval.
    let mut nginx_access = LogFollower::open(site.nginx_dir().join("access.log"), Start::End).ok();
    let started = Instant::now();
    let mut backend = describe_backend(supervisor.as_ref());
    let mut last_diagnostics: Option<Instant> = None;
    let mut diagnostics_now = true;
    let mut last_report_pending = false;
    loop {
        let mut sample = take_sample(
            supervisor.as_ref(),
            &mut processes,
            &backend,
            started.elapsed().as_secs_f64(),
        );
        if let Some(follower) = &mut nginx_access {
            let mut lines = Vec::new();
            while let Ok(batch) = follower.poll() {
                if batch.is_empty() {
                    break;
                }
                lines.extend(batch);
            }
            sample.nginx_errors = super::event::NginxErrors::count(&lines);
        }
        if events.send(Event::Sample(Box::new(sample))).is_err() {
            return;
        }
        if diagnostics_now || last_diagnostics.is_none_or(|t| t.elapsed() >= DIAGNOSTICS_INTERVAL) {
            let report = crate::diagnostics::collect_with(supervisor.as_ref());
            last_report_pending = report.checks_pending;
            if events.send(Event::Host(Box::new(report.host))).is_err()
                || events.send(Event::Diagnostics(report.warnings)).is_err()
            {
                return;
            }
            last_diagnostics = Some(Instant::now());
            backend = describe_backend(supervisor.as_ref());
        }
        // A check still running (the saved config's import): ask again next second.
        diagnostics_now = last_report_pending;
        match requests.recv_timeout(SAMPLE_INTERVAL) {
            Ok(SampleNow) => diagnostics_now = true,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One reading. Never fails: what cannot be read is reported inside the sample.
pub fn take_sample(
    supervisor: &dyn Supervisor,
    processes: &mut ProcessFigures,
    backend: &str,
    at: f64,
) -> Sample {
    let site = supervisor.site();
    let pool = match supervisor.status() {
        Ok(StatusOutcome::Running(status)) => PoolObservation::Running(status),
        Ok(StatusOutcome::NotRunning) => PoolObservation::NotRunning,
        Ok(StatusOutcome::Stale { pid, orphans }) => PoolObservation::Stale { pid, orphans },
        Ok(StatusOutcome::Halted(halt)) => PoolObservation::Halted(halt),
        Err(e) => PoolObservation::Error(format!("{e:#}")),
    };
    let mut pids = Vec::new();
    if let PoolObservation::Running(status) = &pool {
        pids.push(status.master_pid);
        pids.extend(status.workers.iter().map(|w| w.pid));
    }
    let procs = processes.read(&pids);
    let nginx = match crate::nginx::instance::status(site) {
        Ok(crate::nginx::Status::Running(r)) => NginxObservation::Running {
            pid: r.pid,
            port: r.port,
        },
        Ok(crate::nginx::Status::NotRunning) => NginxObservation::NotRunning,
        Err(e) => NginxObservation::Error(e.to_string()),
    };
    Sample {
        at,
        pool,
        procs,
        nginx,
        config_stamp: file_stamp(&site.config_file()),
        nginx_errors: Default::default(),
        backend: backend.to_string(),
        access: access_counts(site),
    }
}

/// The access-control counts of an embedded site (its config read afresh, as the
/// workers would open the stores).
fn access_counts(site: &Site) -> Option<Result<crate::gateway::auth::AccessCounts, String>> {
    if site.kind() != crate::site::SiteKind::Embedded {
        return None;
    }
    let config = crate::config::Config::load(site).ok()?;
    let access = crate::gateway::auth::AccessConfig::from_settings(&config.settings());
    crate::gateway::auth::counts(&access)
}

/// Reads what the CLI writes about changes twice a second, apart from the samples,
/// and sends it when it changed.
pub fn spawn_changes_watcher(site: Site, events: UnboundedSender<Event>) {
    std::thread::Builder::new()
        .name("changes-watcher".into())
        .spawn(move || {
            let mut last = None;
            loop {
                let now = read_changes(&site);
                if last.as_ref() != Some(&now) {
                    if events.send(Event::Changes(Box::new(now.clone()))).is_err() {
                        return;
                    }
                    last = Some(now);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
        .expect("spawn the changes watcher thread");
}

/// How many changes of the history the `U` screen lists.
const HISTORY_SHOWN: usize = 30;

/// What the CLI wrote about changes, and the worker count of each generation while a
/// change runs.
fn read_changes(site: &Site) -> super::event::ChangesSeen {
    let progress = crate::supervisor::progress::read(site);
    let running = progress.as_ref().is_some_and(|p| p.running());
    let generations = match (&progress, running) {
        (Some(p), true) => p
            .generations
            .iter()
            .map(|g| (g.clone(), crate::proc::children(g.master).len()))
            .collect(),
        _ => Vec::new(),
    };
    let supervisor = crate::supervisor::for_site(site);
    let mut changes = supervisor.history();
    changes.reverse();
    changes.truncate(HISTORY_SHOWN);
    let rollback_target = supervisor.rollback_target();
    super::event::ChangesSeen {
        progress,
        running,
        generations,
        history: changes,
        rollback_target,
    }
}

/// What serves the site, in one line (read with the diagnostics, not every second:
/// for an OMERO.web site it lists the venv's site-packages).
fn describe_backend(supervisor: &dyn Supervisor) -> String {
    let backend = supervisor.backend();
    match backend.problem {
        Some(problem) => format!("{} ({problem})", supervisor.site().kind().title()),
        None => backend.describe(),
    }
}

/// Modification time (ns since the epoch) and length: enough to notice a rewrite.
fn file_stamp(path: &Path) -> Option<(i128, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((
        meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        meta.len(),
    ))
}

/// CPU time and RSS of the pool's processes, read with `sysinfo` (one reader kept
/// for the panel's life, refreshing only the processes asked about).
pub struct ProcessFigures {
    system: Option<sysinfo::System>,
}

impl Default for ProcessFigures {
    fn default() -> Self {
        ProcessFigures {
            system: sysinfo::System::new().ok(),
        }
    }
}

impl ProcessFigures {
    /// The figures of `pids` that exist now.
    pub fn read(&mut self, pids: &[u32]) -> HashMap<u32, ProcStat> {
        use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate};
        let Some(system) = &mut self.system else {
            return HashMap::new();
        };
        let wanted: Vec<Pid> = pids.iter().map(|&p| Pid::from_u32(p)).collect();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&wanted),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        pids.iter()
            .filter_map(|&pid| {
                let process = system.process(Pid::from_u32(pid))?;
                Some((
                    pid,
                    ProcStat {
                        cpu_secs: process.accumulated_cpu_time() as f64 / 1000.0,
                        rss_bytes: process.memory(),
                    },
                ))
            })
            .collect()
    }
}

/// Points the tailer at a file; its events carry the generation.
pub struct Follow {
    pub path: PathBuf,
    pub generation: u64,
}

/// What wakes the tailer: a file to follow, or the file system saying something in
/// the followed file's directory changed.
enum Wake {
    Follow(Follow),
    Changed,
    /// The panel is gone.
    Stop,
}

pub fn spawn_tailer(events: UnboundedSender<Event>) -> Sender<Follow> {
    let (tx, rx) = channel::<Follow>();
    let (wake_tx, wake_rx) = channel::<Wake>();
    let forward = wake_tx.clone();
    std::thread::Builder::new()
        .name("log-follow-requests".into())
        .spawn(move || {
            for follow in rx {
                if forward.send(Wake::Follow(follow)).is_err() {
                    return;
                }
            }
            let _ = forward.send(Wake::Stop);
        })
        .expect("spawn the log request thread");
    std::thread::Builder::new()
        .name("log-tailer".into())
        .spawn(move || tailer_loop(events, wake_rx, wake_tx))
        .expect("spawn the log tailer thread");
    tx
}

/// A watch on the directory of the followed file (its rotation and recreation
/// happen there); `None` where the file system offers none: polling alone then.
fn watcher(wake: Sender<Wake>) -> Option<notify::RecommendedWatcher> {
    notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = wake.send(Wake::Changed);
        }
    })
    .ok()
}

fn tailer_loop(events: UnboundedSender<Event>, wakes: Receiver<Wake>, wake: Sender<Wake>) {
    use notify::Watcher;
    let mut watch = watcher(wake);
    let mut watched: Option<PathBuf> = None;
    let mut current: Option<(LogFollower, u64)> = None;
    let mut last_error: Option<String> = None;
    let mut deleted = false;
    // A Follow found while draining a burst of changes, handled next.
    let mut pending: Option<Wake> = None;
    loop {
        let woken = match pending.take() {
            Some(wake) => Ok(wake),
            None => wakes.recv_timeout(LOG_POLL_INTERVAL),
        };
        match woken {
            Ok(Wake::Changed) | Err(RecvTimeoutError::Timeout) => {
                // Under heavy writing every write is an event: one read serves them all.
                loop {
                    match wakes.try_recv() {
                        Ok(Wake::Changed) => continue,
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
            Ok(Wake::Stop) => return,
            Ok(Wake::Follow(Follow { path, generation })) => {
                if let Some(w) = &mut watch {
                    if let Some(old) = watched.take() {
                        let _ = w.unwatch(&old);
                    }
                    let dir = path.parent().map(Path::to_path_buf);
                    if let Some(dir) = dir
                        && w.watch(&dir, notify::RecursiveMode::NonRecursive).is_ok()
                    {
                        watched = Some(dir);
                    }
                }
                last_error = None;
                deleted = false;
                let (follower, event) = open_follower(path, generation);
                current = follower.map(|f| (f, generation));
                if events.send(event).is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some((follower, generation)) = &mut current else {
            continue;
        };
        // Said once per change: deleted under the writer, or back.
        let now_deleted = follower.reading_deleted_file();
        if now_deleted != deleted {
            deleted = now_deleted;
            let event = Event::LogDeleted {
                generation: *generation,
                deleted,
            };
            if events.send(event).is_err() {
                return;
            }
        }
        let event = match follower.poll() {
            Ok(lines) if lines.is_empty() => continue,
            Ok(lines) => {
                last_error = None;
                Event::LogLines {
                    generation: *generation,
                    lines,
                }
            }
            Err(e) => {
                let error = e.to_string();
                // Report a lasting problem once, not four times a second.
                if last_error.as_ref() == Some(&error) {
                    continue;
                }
                last_error = Some(error.clone());
                Event::LogError {
                    generation: *generation,
                    error,
                }
            }
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

fn open_follower(path: PathBuf, generation: u64) -> (Option<LogFollower>, Event) {
    match LogFollower::open(&path, Start::LastLines(MAX_LINES)) {
        Ok(mut follower) => {
            let (lines, error) = match follower.poll() {
                Ok(lines) => (lines, None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            (
                Some(follower),
                Event::LogReset {
                    generation,
                    lines,
                    error,
                },
            )
        }
        Err(e) => (
            None,
            Event::LogReset {
                generation,
                lines: Vec::new(),
                error: Some(format!("{}: {e}", path.display())),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_sampled() {
        let me = std::process::id();
        let figures = ProcessFigures::default().read(&[me, u32::MAX - 1]);
        assert!(figures[&me].rss_bytes > 0);
        assert!(figures[&me].cpu_secs >= 0.0);
        assert!(!figures.contains_key(&(u32::MAX - 1)), "no such process");
    }

    #[test]
    fn a_missing_log_file_is_followed_until_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("OMEROweb.log");
        let (follower, event) = open_follower(path.clone(), 7);
        assert!(follower.is_some());
        match event {
            Event::LogReset {
                generation,
                lines,
                error,
            } => {
                assert_eq!(generation, 7);
                assert!(lines.is_empty());
                assert_eq!(error, None);
            }
            other => panic!("{other:?}"),
        }
        let mut follower = follower.unwrap();
        std::fs::write(&path, "one\ntwo\n").unwrap();
        assert_eq!(follower.poll().unwrap(), ["one", "two"]);
    }

    #[tokio::test]
    async fn the_tailer_delivers_new_lines_of_the_followed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("OMEROweb.log");
        std::fs::write(&path, "old\n").unwrap();
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let follow = spawn_tailer(events);
        follow
            .send(Follow {
                path: path.clone(),
                generation: 3,
            })
            .unwrap();
        let next = |received: &mut tokio::sync::mpsc::UnboundedReceiver<Event>| {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                match received.try_recv() {
                    Ok(event) => return event,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => panic!("no event: {e}"),
                }
            }
        };
        assert!(matches!(
            next(&mut received),
            Event::LogReset { generation: 3, .. }
        ));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"new\n").unwrap();
        match next(&mut received) {
            Event::LogLines { generation, lines } => {
                assert_eq!(generation, 3);
                assert_eq!(lines, ["new"]);
            }
            other => panic!("{other:?}"),
        }
        drop(follow);
    }

    #[test]
    fn a_busy_process_accumulates_cpu_time() {
        let mut busy = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let pid = busy.id();
        let mut figures = ProcessFigures::default();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut cpu = 0.0;
        while cpu < 0.05 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            cpu = figures.read(&[pid]).get(&pid).map_or(0.0, |f| f.cpu_secs);
        }
        let _ = busy.kill();
        let _ = busy.wait();
        assert!(cpu >= 0.05, "{cpu} s of CPU after a busy loop");
    }
}
