//! Crash-loop back-off, PM2's shape: after an unexpected worker exit the next spawn
//! waits 100 ms, growing ×1.5 per further failure up to 15 s; 30 s without a failure
//! resets it. The pool keeps serving with the workers it has and shows `degraded`.

use std::time::{Duration, Instant};

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(15);
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// A worker that dies sooner than this after its spawn counts as a failed boot.
const MIN_UPTIME: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Backoff {
    delay: Duration,
    last_failure: Option<Instant>,
    recent_failures: u32,
    next_spawn: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            delay: Duration::ZERO,
            last_failure: None,
            recent_failures: 0,
            next_spawn: None,
        }
    }

    fn reset_if_stable(&mut self, now: Instant) {
        if self
            .last_failure
            .is_some_and(|t| now.duration_since(t) > STABLE_AFTER)
        {
            self.delay = Duration::ZERO;
            self.recent_failures = 0;
            self.last_failure = None;
        }
    }

    /// A worker died unexpectedly after `uptime`.
    pub fn record_failure(&mut self, uptime: Duration) {
        self.record_failure_at(Instant::now(), uptime)
    }

    pub fn record_failure_at(&mut self, now: Instant, uptime: Duration) {
        self.reset_if_stable(now);
        self.recent_failures += 1;
        self.last_failure = Some(now);
        // One crash of a long-lived worker is replaced at once; repeats back off.
        if self.recent_failures >= 2 || uptime < MIN_UPTIME {
            self.delay = if self.delay.is_zero() {
                FIRST_DELAY
            } else {
                (self.delay.mul_f64(1.5)).min(MAX_DELAY)
            };
            self.next_spawn = Some(now + self.delay);
        }
    }

    pub fn may_spawn(&mut self) -> bool {
        self.may_spawn_at(Instant::now())
    }

    pub fn may_spawn_at(&mut self, now: Instant) -> bool {
        self.reset_if_stable(now);
        self.next_spawn.is_none_or(|t| now >= t)
    }

    /// Called after a spawn: the next one waits for the current delay again.
    pub fn spawned(&mut self) {
        if !self.delay.is_zero() {
            self.next_spawn = Some(Instant::now() + self.delay);
        }
    }

    pub fn is_delaying(&self) -> bool {
        !self.delay.is_zero()
    }

    pub fn delay(&self) -> Duration {
        self.delay
    }

    pub fn recent_failures(&self) -> u32 {
        self.recent_failures
    }

    /// Shown as the pool's `degraded` state: repeated failures within the window.
    pub fn is_degraded(&self) -> bool {
        self.recent_failures >= 2
            && self
                .last_failure
                .is_some_and(|t| t.elapsed() <= STABLE_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new();
        let t0 = Instant::now();
        // One crash of a worker that ran for a while: replaced at once.
        b.record_failure_at(t0, Duration::from_secs(60));
        assert!(!b.is_delaying());
        assert!(b.may_spawn_at(t0));
        // Repeats back off: 100 ms, 150 ms, 225 ms, ... capped at 15 s.
        b.record_failure_at(t0, Duration::from_millis(10));
        assert_eq!(b.delay(), FIRST_DELAY);
        assert!(!b.may_spawn_at(t0));
        assert!(b.may_spawn_at(t0 + Duration::from_millis(100)));
        b.record_failure_at(t0, Duration::from_millis(10));
        assert_eq!(b.delay(), Duration::from_millis(150));
        for _ in 0..30 {
            b.record_failure_at(t0, Duration::from_millis(10));
        }
        assert_eq!(b.delay(), MAX_DELAY);
        // 30 s without failures resets everything.
        assert!(b.may_spawn_at(t0 + STABLE_AFTER + Duration::from_secs(1)));
        assert!(!b.is_delaying());
        assert_eq!(b.recent_failures(), 0);
    }
}
