//! What one worker is doing and has just done, for the panel's worker drill-down and
//! `status --json`: the requests it serves now, its last requests and its slowest
//! URLs. Embedded workers keep it as they serve; for Gunicorn it comes from the
//! access log, which says nothing of requests still being served.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// How many finished requests are kept per worker.
pub const RECENT: usize = 8;
/// How many of the requests in flight are reported per worker (the longest first).
pub const SERVING: usize = 8;
/// How many of the slowest URLs are reported per worker.
pub const SLOWEST: usize = 5;
/// How many distinct paths are remembered for "slowest" (the fastest are forgotten
/// first, so memory stays bounded however many URLs a worker sees).
const PATHS_KEPT: usize = 256;
/// Longest path kept, in bytes (longer ones are cut, with "…").
const PATH_MAX: usize = 160;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerActivity {
    /// Requests being served now, the longest-running first; `None` when the server
    /// does not say (Gunicorn).
    #[serde(default)]
    pub serving: Option<Vec<InFlight>>,
    /// The last requests it finished, the newest last.
    #[serde(default)]
    pub recent: Vec<FinishedRequest>,
    /// Its slowest paths (query strings left out), the slowest first.
    #[serde(default)]
    pub slowest: Vec<SlowPath>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    pub method: String,
    pub path: String,
    /// For how long it has been served.
    pub secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedRequest {
    /// When it finished (Unix seconds).
    pub at: u64,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowPath {
    pub path: String,
    pub count: u64,
    pub max_ms: u64,
    pub mean_ms: u64,
}

#[derive(Debug, Default, Clone)]
struct PathTimes {
    count: u64,
    total_ms: u64,
    max_ms: u64,
}

/// Keeps one worker's recent requests and per-path times, bounded.
#[derive(Debug, Default, Clone)]
pub struct ActivityLog {
    recent: VecDeque<FinishedRequest>,
    paths: HashMap<String, PathTimes>,
}

impl ActivityLog {
    /// A request finished. `target` is the request target as received (path and
    /// query); `at` is Unix seconds.
    pub fn finished(&mut self, method: &str, target: &str, status: u16, ms: u64, at: u64) {
        let path = shorten(target);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(FinishedRequest {
            at,
            method: method.to_string(),
            path: path.clone(),
            status,
            ms,
        });
        let without_query = path.split('?').next().unwrap_or_default().to_string();
        if !self.paths.contains_key(&without_query) && self.paths.len() >= PATHS_KEPT {
            self.forget_fastest();
        }
        let times = self.paths.entry(without_query).or_default();
        times.count += 1;
        times.total_ms += ms;
        times.max_ms = times.max_ms.max(ms);
    }

    fn forget_fastest(&mut self) {
        if let Some(fastest) = self
            .paths
            .iter()
            .min_by_key(|(_, t)| t.max_ms)
            .map(|(path, _)| path.clone())
        {
            self.paths.remove(&fastest);
        }
    }

    /// The report, with what is being served now (if the server knows).
    pub fn report(&self, serving: Option<Vec<InFlight>>) -> WorkerActivity {
        let mut slowest: Vec<SlowPath> = self
            .paths
            .iter()
            .map(|(path, t)| SlowPath {
                path: path.clone(),
                count: t.count,
                max_ms: t.max_ms,
                mean_ms: t.total_ms / t.count.max(1),
            })
            .collect();
        slowest.sort_by(|a, b| b.max_ms.cmp(&a.max_ms).then_with(|| a.path.cmp(&b.path)));
        slowest.truncate(SLOWEST);
        WorkerActivity {
            serving,
            recent: self.recent.iter().cloned().collect(),
            slowest,
        }
    }
}

/// Cuts a request target to `PATH_MAX` bytes on a character boundary.
pub fn shorten(target: &str) -> String {
    if target.len() <= PATH_MAX {
        return target.to_string();
    }
    let mut end = PATH_MAX;
    while !target.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &target[..end])
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_requests_and_the_slowest_paths_without_queries() {
        let mut log = ActivityLog::default();
        for i in 0..20u64 {
            log.finished("GET", &format!("/fast/{}", i % 3), 200, i, 1000 + i);
        }
        log.finished(
            "GET",
            "/webgateway/render_image/1/?c=1|0:255$FF0000",
            200,
            900,
            2000,
        );
        log.finished("GET", "/webgateway/render_image/1/?c=2", 200, 300, 2001);
        log.finished("POST", "/webclient/login/", 500, 40, 2002);
        let report = log.report(Some(vec![]));
        assert_eq!(report.recent.len(), RECENT);
        let last = report.recent.last().unwrap();
        assert_eq!(
            (last.method.as_str(), last.status, last.at),
            ("POST", 500, 2002)
        );
        assert_eq!(
            report.recent[RECENT - 3].path,
            "/webgateway/render_image/1/?c=1|0:255$FF0000"
        );
        let top = &report.slowest[0];
        assert_eq!(top.path, "/webgateway/render_image/1/");
        assert_eq!((top.count, top.max_ms, top.mean_ms), (2, 900, 600));
        assert_eq!(report.slowest.len(), SLOWEST);
        assert_eq!(report.slowest[1].path, "/webclient/login/");
        assert_eq!(report.serving, Some(vec![]));
    }

    #[test]
    fn memory_stays_bounded_and_slow_paths_are_kept() {
        let mut log = ActivityLog::default();
        log.finished("GET", "/slow", 200, 5000, 1);
        for i in 0..10_000 {
            log.finished("GET", &format!("/image/{i}"), 200, 1, 2);
        }
        assert!(log.paths.len() <= PATHS_KEPT);
        assert_eq!(log.report(None).slowest[0].path, "/slow");
    }

    #[test]
    fn long_targets_are_cut_on_a_character_boundary() {
        let long = format!("/{}", "é".repeat(200));
        let cut = shorten(&long);
        assert!(cut.len() <= PATH_MAX + "…".len());
        assert!(cut.ends_with('…'));
    }
}
