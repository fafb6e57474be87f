//! Per-worker request statistics. Workers keep them and send a snapshot with every
//! heartbeat; the master keeps the latest snapshot per worker and answers `status`.

use serde::{Deserialize, Serialize};

/// Upper bounds (ms) of the latency histogram buckets; the last bucket is open-ended.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    pub requests: u64,
    pub in_flight: u64,
    /// Responses by status class: 1xx+2xx, 3xx, 4xx, 5xx.
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub bytes_sent: u64,
    /// Counts per bucket of `LATENCY_BUCKETS_MS`, plus one overflow bucket.
    pub latency_buckets: Vec<u64>,
}

impl WorkerStats {
    pub fn new() -> WorkerStats {
        WorkerStats {
            latency_buckets: vec![0; LATENCY_BUCKETS_MS.len() + 1],
            ..WorkerStats::default()
        }
    }

    pub fn record(&mut self, status: u16, latency_ms: u64) {
        self.requests += 1;
        match status {
            100..=299 => self.status_2xx += 1,
            300..=399 => self.status_3xx += 1,
            400..=499 => self.status_4xx += 1,
            _ => self.status_5xx += 1,
        }
        if self.latency_buckets.len() != LATENCY_BUCKETS_MS.len() + 1 {
            self.latency_buckets = vec![0; LATENCY_BUCKETS_MS.len() + 1];
        }
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| latency_ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency_buckets[bucket] += 1;
    }

    /// Adds another worker's counters (for pool totals).
    pub fn add(&mut self, other: &WorkerStats) {
        self.requests += other.requests;
        self.in_flight += other.in_flight;
        self.status_2xx += other.status_2xx;
        self.status_3xx += other.status_3xx;
        self.status_4xx += other.status_4xx;
        self.status_5xx += other.status_5xx;
        self.bytes_sent += other.bytes_sent;
        if self.latency_buckets.len() < other.latency_buckets.len() {
            self.latency_buckets.resize(other.latency_buckets.len(), 0);
        }
        for (mine, theirs) in self.latency_buckets.iter_mut().zip(&other.latency_buckets) {
            *mine += theirs;
        }
    }

    /// Latency percentile (0–100) as far as the histogram can tell: at most the upper
    /// bound of the bucket it falls in, or over the last bound (`None` without
    /// requests). A bound, never an exact figure: a 616 ms request is "≤ 1000 ms".
    pub fn percentile(&self, pct: f64) -> Option<LatencyBound> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((pct / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.latency_buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(match LATENCY_BUCKETS_MS.get(i) {
                    Some(&bound) => LatencyBound::AtMost(bound),
                    None => LatencyBound::Over(*LATENCY_BUCKETS_MS.last().unwrap()),
                });
            }
        }
        None
    }
}

/// A latency percentile read from histogram buckets. In JSON `{"le_ms": 1000}`
/// (at most 1000 ms) or `{"gt_ms": 10000}` (over 10 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LatencyBound {
    #[serde(rename = "le_ms")]
    AtMost(u64),
    #[serde(rename = "gt_ms")]
    Over(u64),
}

impl std::fmt::Display for LatencyBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LatencyBound::AtMost(ms) => write!(f, "≤{ms}ms"),
            LatencyBound::Over(ms) => write!(f, ">{ms}ms"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_buckets() {
        let mut s = WorkerStats::new();
        assert_eq!(s.percentile(50.0), None);
        for _ in 0..90 {
            s.record(200, 3);
        }
        for _ in 0..10 {
            s.record(500, 400);
        }
        assert_eq!(s.requests, 100);
        assert_eq!((s.status_2xx, s.status_5xx), (90, 10));
        assert_eq!(s.percentile(50.0), Some(LatencyBound::AtMost(5)));
        assert_eq!(s.percentile(90.0), Some(LatencyBound::AtMost(5)));
        assert_eq!(s.percentile(95.0), Some(LatencyBound::AtMost(500)));
        let mut total = WorkerStats::new();
        total.add(&s);
        total.add(&s);
        assert_eq!(total.requests, 200);
        assert_eq!(total.percentile(99.0), Some(LatencyBound::AtMost(500)));
    }

    #[test]
    fn a_percentile_is_a_bound_never_a_made_up_exact_figure() {
        let mut s = WorkerStats::new();
        s.record(200, 616);
        let p50 = s.percentile(50.0).unwrap();
        assert_eq!(p50, LatencyBound::AtMost(1000));
        assert_eq!(p50.to_string(), "≤1000ms");
        s.record(200, 60_000);
        let p99 = s.percentile(99.0).unwrap();
        assert_eq!(p99, LatencyBound::Over(10_000));
        assert_eq!(p99.to_string(), ">10000ms");
        assert_eq!(
            serde_json::to_string(&[p50, p99]).unwrap(),
            r#"[{"le_ms":1000},{"gt_ms":10000}]"#
        );
    }
}
