//! Blocking work the application hands to the runtime's blocking pool, counted so that
//! the pool can tell when it is stuck.
//!
//! A read on a hung filesystem never returns, and a thread cannot be taken back from
//! it. So the request that waits for such work is bounded by the worker timeout
//! (`omero.web.wsgi_timeout`, see `pool::worker`), and the thread it leaves behind is
//! counted here: the worker's heartbeat says "N blocking threads stuck for S seconds"
//! and the master decides, as Gunicorn's arbiter decides on silent workers, to
//! replace a worker whose blocking threads stay stuck.
//!
//! Every job carries a label the operator can act on ("image 7 (open)"), never a file
//! path, and the request it serves (a task-local the worker sets), so that a request
//! that ran out of time names the work it waited for.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

tokio::task_local! {
    /// The request (the worker's own number for it) whose task is running.
    static REQUEST: u64;
}

/// Runs `future` as request `id`: blocking work it starts is filed under that request.
pub async fn as_request<F: Future>(id: u64, future: F) -> F::Output {
    REQUEST.scope(id, future).await
}

/// What the blocking pool of this process runs now (one per worker process, since
/// one application runs there).
pub fn blocking_work() -> &'static BlockingWork {
    static WORK: OnceLock<BlockingWork> = OnceLock::new();
    WORK.get_or_init(BlockingWork::default)
}

/// Runs `work` on the blocking pool, counted in [`blocking_work`] under `label` until
/// it returns (or panics). A drop-in for `tokio::task::spawn_blocking`.
pub fn spawn_blocking<T, F>(label: impl Into<String>, work: F) -> tokio::task::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    blocking_work().spawn(label, work)
}

/// Blocking jobs in flight, with when they started and for which request.
#[derive(Default)]
pub struct BlockingWork {
    next: AtomicU64,
    running: Mutex<BTreeMap<u64, Job>>,
}

struct Job {
    label: String,
    request: Option<u64>,
    started: Instant,
}

/// Jobs running for longer than a limit: how many, and how long past the limit the
/// oldest is. The worker's heartbeat carries it ("N blocking threads stuck for S
/// seconds"); the master replaces a worker whose threads stay stuck
/// (`Master::replace_stuck_workers`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stuck {
    pub threads: u32,
    /// Seconds since the oldest went past the limit.
    pub secs: f64,
    /// What the oldest works on ("image 7 (open)"), never a file path.
    #[serde(default)]
    pub oldest: Option<String>,
}

impl BlockingWork {
    /// [`spawn_blocking`] on this set of jobs.
    pub fn spawn<T, F>(
        &'static self,
        label: impl Into<String>,
        work: F,
    ) -> tokio::task::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let id = self.begin(label.into(), REQUEST.try_with(|r| *r).ok());
        tokio::task::spawn_blocking(move || {
            // Ends the job even if `work` panics.
            let _done = Finished { work: self, id };
            work()
        })
    }

    fn begin(&self, label: String, request: Option<u64>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            label,
            request,
            started: Instant::now(),
        };
        self.lock().insert(id, job);
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Job>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The labels of the jobs request `request` started that still run.
    pub fn of_request(&self, request: u64) -> Vec<String> {
        self.lock()
            .values()
            .filter(|job| job.request == Some(request))
            .map(|job| job.label.clone())
            .collect()
    }

    /// The labels of the jobs request `request` started that have run for longer
    /// than `limit` and still run.
    pub fn overdue_of_request(&self, request: u64, limit: Duration) -> Vec<String> {
        let now = Instant::now();
        self.lock()
            .values()
            .filter(|job| job.request == Some(request) && now.duration_since(job.started) > limit)
            .map(|job| job.label.clone())
            .collect()
    }

    /// The jobs that have run for longer than `limit`: waiting in the queue counts,
    /// since a job queued behind stuck threads is just as stuck.
    pub fn stuck(&self, limit: Duration) -> Stuck {
        let now = Instant::now();
        let mut stuck = Stuck::default();
        let mut oldest: Option<Duration> = None;
        for job in self.lock().values() {
            let ran = now.duration_since(job.started);
            if ran <= limit {
                continue;
            }
            stuck.threads += 1;
            if oldest.is_none_or(|o| ran > o) {
                oldest = Some(ran);
                stuck.oldest = Some(job.label.clone());
            }
        }
        stuck.secs = oldest.map_or(0.0, |o| (o - limit).as_secs_f64());
        stuck
    }
}

/// Removes its job from the running set when dropped.
struct Finished {
    work: &'static BlockingWork,
    id: u64,
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.work.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked() -> &'static BlockingWork {
        Box::leak(Box::default())
    }

    #[tokio::test]
    async fn jobs_past_the_limit_are_stuck_until_they_return() {
        let work = leaked();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        // Started from request 7's task, as the worker runs each request.
        let stuck_job = REQUEST.sync_scope(7, || {
            work.spawn("image 3 (open)", move || hold.recv().is_ok())
        });
        let quick = work.spawn("gallery", || 1 + 1);
        assert_eq!(quick.await.unwrap(), 2);
        assert_eq!(work.of_request(7), vec!["image 3 (open)".to_string()]);
        assert_eq!(work.stuck(Duration::from_secs(60)).threads, 0);
        tokio::time::sleep(Duration::from_millis(120)).await;
        let stuck = work.stuck(Duration::from_millis(50));
        assert_eq!(stuck.threads, 1);
        assert!(stuck.secs >= 0.06, "{stuck:?}");
        assert_eq!(stuck.oldest.as_deref(), Some("image 3 (open)"));
        release.send(()).unwrap();
        assert!(stuck_job.await.unwrap());
        assert_eq!(work.stuck(Duration::ZERO), Stuck::default());
        assert!(work.of_request(7).is_empty());
    }

    #[tokio::test]
    async fn a_job_that_panics_is_not_counted_as_running() {
        let work = leaked();
        let failed = work.spawn("image 1 (render)", || panic!("boom"));
        assert!(failed.await.is_err());
        assert_eq!(work.stuck(Duration::ZERO).threads, 0);
    }
}
