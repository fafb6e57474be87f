//! A worker's request counters in memory it shares with its master (a memfd both map).
//! The worker counts every request there as it is served, and the master reads them
//! whenever it wants, including after the worker died: a worker killed with SIGKILL
//! loses nothing it had counted, where a snapshot sent with the heartbeat would lose
//! up to half a second of requests. (uWSGI keeps its stats in shared memory likewise.)

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

use super::stats::{LATENCY_BUCKETS_MS, WorkerStats};

const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// The layout both processes agree on: only `AtomicU64`s, so any bytes are valid and
/// a zero-filled memfd is a zeroed set of counters.
#[repr(C)]
struct Counters {
    requests: AtomicU64,
    in_flight: AtomicU64,
    status_2xx: AtomicU64,
    status_3xx: AtomicU64,
    status_4xx: AtomicU64,
    status_5xx: AtomicU64,
    bytes_sent: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS],
}

const SIZE: usize = std::mem::size_of::<Counters>();

/// One worker's counters, mapped shared. The master creates them before spawning the
/// worker, which maps the same memfd from the descriptor it inherits.
pub struct SharedStats {
    counters: NonNull<Counters>,
    fd: OwnedFd,
}

// SAFETY: the mapping is only reached through atomics, and it lives as long as `self`.
unsafe impl Send for SharedStats {}
// SAFETY: as for Send: shared access goes through atomics only.
unsafe impl Sync for SharedStats {}

impl SharedStats {
    /// New zeroed counters (the master's side).
    pub fn create() -> Result<SharedStats, String> {
        let fd = memfd_create(c"omero-webctl-worker-stats", MFdFlags::MFD_CLOEXEC)
            .map_err(|e| format!("cannot create the worker's counters (memfd): {e}"))?;
        nix::unistd::ftruncate(&fd, SIZE as i64)
            .map_err(|e| format!("cannot size the worker's counters: {e}"))?;
        SharedStats::map(fd)
    }

    /// Maps counters created by the master (the worker's side).
    pub fn map(fd: OwnedFd) -> Result<SharedStats, String> {
        let length = NonZeroUsize::new(SIZE).expect("counters have a size");
        // SAFETY: a fresh shared mapping of a descriptor we own, at least SIZE long
        // (the master sized it); page alignment satisfies AtomicU64's.
        let ptr = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd.as_fd(),
                0,
            )
        }
        .map_err(|e| format!("cannot map the worker's counters: {e}"))?;
        Ok(SharedStats {
            counters: ptr.cast(),
            fd,
        })
    }

    /// The descriptor to hand to the worker.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    fn counters(&self) -> &Counters {
        // SAFETY: mapped for the life of `self`; every field is an atomic.
        unsafe { self.counters.as_ref() }
    }

    /// A response was produced (its body is counted by `add_bytes` as it is sent).
    pub fn record(&self, status: u16, latency_ms: u64) {
        let c = self.counters();
        let class = match status {
            100..=299 => &c.status_2xx,
            300..=399 => &c.status_3xx,
            400..=499 => &c.status_4xx,
            _ => &c.status_5xx,
        };
        class.fetch_add(1, Ordering::Relaxed);
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| latency_ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        c.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Last, so a reader never sees more requests than status classes.
        c.requests.fetch_add(1, Ordering::Release);
    }

    pub fn add_bytes(&self, bytes: u64) {
        self.counters()
            .bytes_sent
            .fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn begin_request(&self) {
        self.counters().in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn end_request(&self) {
        self.counters().in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u64 {
        self.counters().in_flight.load(Ordering::Relaxed)
    }

    /// What the counters hold now.
    pub fn snapshot(&self) -> WorkerStats {
        let c = self.counters();
        let requests = c.requests.load(Ordering::Acquire);
        WorkerStats {
            requests,
            in_flight: c.in_flight.load(Ordering::Relaxed),
            status_2xx: c.status_2xx.load(Ordering::Relaxed),
            status_3xx: c.status_3xx.load(Ordering::Relaxed),
            status_4xx: c.status_4xx.load(Ordering::Relaxed),
            status_5xx: c.status_5xx.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            latency_buckets: c
                .latency_buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

impl Drop for SharedStats {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        let _ = unsafe { munmap(self.counters.cast(), SIZE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::stats::LatencyBound;

    #[test]
    fn counts_written_through_one_mapping_are_read_through_another() {
        let master = SharedStats::create().unwrap();
        let worker = SharedStats::map(master.fd().try_clone().unwrap()).unwrap();
        worker.begin_request();
        worker.record(200, 3);
        worker.record(503, 400);
        worker.add_bytes(1234);
        let seen = master.snapshot();
        assert_eq!(seen.requests, 2);
        assert_eq!(seen.in_flight, 1);
        assert_eq!((seen.status_2xx, seen.status_5xx), (1, 1));
        assert_eq!(seen.bytes_sent, 1234);
        assert_eq!(seen.percentile(50.0), Some(LatencyBound::AtMost(5)));
        assert_eq!(seen.percentile(99.0), Some(LatencyBound::AtMost(500)));
        // What a worker counted stays readable after its side is gone.
        worker.end_request();
        drop(worker);
        assert_eq!(master.snapshot().requests, 2);
        assert_eq!(master.snapshot().in_flight, 0);
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let stats = std::sync::Arc::new(SharedStats::create().unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        stats.record(200, 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(stats.snapshot().requests, 40_000);
        assert_eq!(stats.snapshot().status_2xx, 40_000);
    }
}
