//! What Gunicorn's logs tell a supervisor that its control socket does not: requests,
//! status classes, bytes and latency per worker from the access log (our format puts
//! the worker PID first), and worker deaths from its error log. Both are read
//! incrementally from the offsets they had when the master started, so the figures
//! are cumulative since then and survive workers that have exited.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use crate::logging::{LogFollower, Start};
use crate::status::activity::ActivityLog;
use crate::status::stats::WorkerStats;

/// `--access-logformat` of the sites we start: worker PID (`<1234>`), time, client,
/// request line, status, bytes sent, duration in microseconds. (Sites started before
/// the time was added have lines without it; they parse too.)
pub const ACCESS_FORMAT: &str = r#"%(p)s %(t)s %(h)s "%(r)s" %(s)s %(B)s %(D)s"#;

/// One access-log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLine {
    pub pid: u32,
    /// When the response was logged (Unix seconds), if the line says.
    pub at: Option<u64>,
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    pub status: u16,
    pub bytes: u64,
    pub micros: u64,
}

/// Parses a line in [`ACCESS_FORMAT`]; `None` for any other line. The request line
/// may hold spaces and quotes, so the fixed fields are taken from both ends.
pub fn parse_access(line: &str) -> Option<AccessLine> {
    let rest = line.strip_prefix('<')?;
    let (pid, rest) = rest.split_once('>')?;
    let pid = pid.parse().ok()?;
    // `[30/Nov/2026:11:07:22 +0000]`, Gunicorn's %(t)s.
    let (at, rest) = match rest.strip_prefix(" [").and_then(|r| r.split_once(']')) {
        Some((time, rest)) => (
            chrono::DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z")
                .ok()
                .and_then(|t| u64::try_from(t.timestamp()).ok()),
            rest,
        ),
        None => (None, rest),
    };
    let mut tail = rest.rsplitn(4, ' ');
    let micros = tail.next()?.parse().ok()?;
    let bytes = tail.next()?.parse().unwrap_or(0); // "None" or "-" without a body
    let status = tail.next()?.parse().ok()?;
    let head = tail.next()?;
    // What remains is ` host "request"`: it must at least hold the quoted request.
    if !head.ends_with('"') || !head.contains(" \"") {
        return None;
    }
    let (_, request) = head[..head.len() - 1].split_once(" \"")?;
    let mut parts = request.splitn(2, ' ');
    let method = parts.next().unwrap_or_default().to_string();
    // The target ends before the protocol (`HTTP/1.1`), when there is one.
    let target = parts.next().unwrap_or_default();
    let target = match target.rsplit_once(' ') {
        Some((target, protocol)) if protocol.starts_with("HTTP/") => target,
        _ => target,
    }
    .to_string();
    Some(AccessLine {
        pid,
        at,
        method,
        target,
        status,
        bytes,
        micros,
    })
}

/// A worker death or timeout from Gunicorn's error log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerEvent {
    pub pid: u32,
    /// The log line's timestamp as Gunicorn wrote it, e.g. `2026-11-30 11:07:22 +0000`.
    pub at: String,
    pub what: String,
}

/// Recognises the error-log lines that mean a worker died unexpectedly:
/// `Worker (pid:N) was sent SIGKILL! Perhaps out of memory?`, `WORKER TIMEOUT (pid:N)`,
/// `Worker (pid:N) exited with code C.` (SIGTERM deaths are ordinary: reloads, scaling).
pub fn parse_worker_event(line: &str) -> Option<WorkerEvent> {
    let at = line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .map(|(at, _)| at.to_string())
        .unwrap_or_default();
    let pid_after = |marker: &str| -> Option<u32> {
        let start = line.find(marker)? + marker.len();
        let digits: String = line[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    if line.contains("WORKER TIMEOUT") {
        let pid = pid_after("(pid:")?;
        return Some(WorkerEvent {
            pid,
            at,
            what: "timed out (WORKER TIMEOUT) and was killed".into(),
        });
    }
    let pid = pid_after("Worker (pid:")?;
    if let Some(i) = line.find("was sent ") {
        let signal = line[i + "was sent ".len()..]
            .split(['!', ' '])
            .next()
            .unwrap_or("a signal");
        if signal == "SIGTERM" {
            return None;
        }
        return Some(WorkerEvent {
            pid,
            at,
            what: format!("was killed by {signal}"),
        });
    }
    if let Some(i) = line.find("exited with code ") {
        let code = line[i + "exited with code ".len()..].trim_end_matches('.');
        return Some(WorkerEvent {
            pid,
            at,
            what: format!("exited with code {code}"),
        });
    }
    None
}

/// How the last master in a Gunicorn error log ended, when it halted by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltLines {
    /// The `Shutting down: Master` line's timestamp, as Gunicorn wrote it.
    pub at: String,
    /// Gunicorn's `Reason:` (e.g. `Worker failed to boot.`).
    pub reason: String,
    /// The last Python exception line before it (the failing import, usually).
    pub error: Option<String>,
}

/// Whether the last master these error-log lines tell of halted by itself: its last
/// words are `Shutting down: Master` then `Reason: ...` (a stop asked for has no
/// reason), and no master started after it.
pub fn last_halt(lines: &[String]) -> Option<HaltLines> {
    let shutdown = lines
        .iter()
        .rposition(|l| l.contains("] Shutting down: Master"))?;
    let after = &lines[shutdown + 1..];
    if after
        .iter()
        .any(|l| l.contains("] Starting gunicorn") || l.contains("] Listening at:"))
    {
        return None;
    }
    let reason = after
        .iter()
        .find_map(|l| l.split_once("] Reason: "))
        .map(|(_, r)| r.trim().to_string())?;
    let at = lines[shutdown]
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .map(|(at, _)| at.to_string())
        .unwrap_or_default();
    let error = last_exception(&lines[..shutdown]);
    Some(HaltLines { at, reason, error })
}

/// The exception the last traceback in these lines ends with: `ModuleNotFoundError: No
/// module named 'x'`, `django.core.exceptions.ImproperlyConfigured: ...`.
pub fn last_exception(lines: &[String]) -> Option<String> {
    let exception = |l: &&String| {
        let head = l.split(':').next().unwrap_or("");
        !l.starts_with(['[', ' ', '\t'])
            && l.contains(": ")
            && !head.contains(' ')
            && (head.ends_with("Error")
                || head.ends_with("Exception")
                || head.ends_with("Configured"))
    };
    lines.iter().rev().find(exception).cloned()
}

/// The lines since the last master started (`Starting gunicorn`), or all of them.
pub fn since_last_start(lines: &[String]) -> &[String] {
    match lines
        .iter()
        .rposition(|l| l.contains("] Starting gunicorn"))
    {
        Some(start) => &lines[start..],
        None => lines,
    }
}

/// How many unexpected worker deaths are kept for warnings.
const RECENT_EVENTS: usize = 5;
/// How many workers' recent requests are kept (the ones seen last; workers recycled
/// long ago are forgotten).
const ACTIVITY_KEPT: usize = 64;

/// Figures gathered from both logs since the master started.
#[derive(Debug, Default)]
pub struct LogFigures {
    pub per_worker: BTreeMap<u32, WorkerStats>,
    /// Each worker's last requests and slowest paths, with the access-log line number
    /// it was last seen at (to forget the longest-gone first).
    pub activity: BTreeMap<u32, (u64, ActivityLog)>,
    /// Access-log lines counted.
    pub lines: u64,
    pub totals: WorkerStats,
    /// Unexpected worker deaths since the master started.
    pub worker_deaths: u64,
    pub recent_events: VecDeque<WorkerEvent>,
    /// Logs rotated since counting began whose older part could not be found again
    /// (compressed or deleted): what they held is not counted.
    pub lost: Vec<PathBuf>,
    /// When set, only worker events this master logged count: generations share the
    /// error log, and a failed or drained one's events are not the live one's.
    pub master: Option<u32>,
}

/// Where counting of one log begins: the file, the offset it had, and its inode then
/// (so a rotation since is recognised, even by a process that was not watching).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStart {
    pub path: PathBuf,
    pub offset: u64,
    pub inode: Option<u64>,
}

/// How many rotated generations (`log.1` …) are searched for the file counting began in.
const ROTATED_SEARCHED: u32 = 9;

/// Reads the two logs from remembered offsets and keeps the figures up to date.
pub struct LogCounters {
    access: Option<LogFollower>,
    error: Option<LogFollower>,
    pub figures: LogFigures,
}

impl LogCounters {
    /// Follows both logs from where they stood (`None`: no such log). When a log has
    /// been rotated since (logrotate renames it to `log.1`, ...), the rotated files are
    /// read first, from the remembered offset, then the current file from its start.
    pub fn open(access: Option<LogStart>, error: Option<LogStart>) -> LogCounters {
        Self::open_for(None, access, error)
    }

    /// [`LogCounters::open`], counting only the worker events `master` logged.
    pub fn open_for(
        master: Option<u32>,
        access: Option<LogStart>,
        error: Option<LogStart>,
    ) -> LogCounters {
        let mut counters = LogCounters {
            access: None,
            error: None,
            figures: LogFigures {
                master,
                ..LogFigures::default()
            },
        };
        counters.access = access.and_then(|start| counters.follow(start, count_access));
        counters.error = error.and_then(|start| counters.follow(start, count_error));
        counters
    }

    fn follow(&mut self, start: LogStart, count: fn(&mut LogFigures, &str)) -> Option<LogFollower> {
        let current = inode_of(&start.path);
        let offset = if start.inode.is_none() || current == start.inode {
            start.offset
        } else {
            let rotated: Vec<PathBuf> = (1..=ROTATED_SEARCHED)
                .map(|n| crate::logging::writer::backup_path(&start.path, n))
                .collect();
            match rotated.iter().position(|p| inode_of(p) == start.inode) {
                Some(found) => {
                    // The oldest first: from the offset, then the newer ones whole.
                    for (i, path) in rotated[..=found].iter().enumerate().rev() {
                        let from = if i == found { start.offset } else { 0 };
                        if let Ok(mut old) = LogFollower::open(path, Start::At(from)) {
                            drain(&mut old, |line| count(&mut self.figures, line));
                        }
                    }
                }
                None => self.figures.lost.push(start.path.clone()),
            }
            0
        };
        LogFollower::open(&start.path, Start::At(offset)).ok()
    }

    /// Reads everything new in both logs.
    pub fn update(&mut self) {
        let figures = &mut self.figures;
        if let Some(access) = &mut self.access {
            drain(access, |line| count_access(figures, line));
        }
        if let Some(error) = &mut self.error {
            drain(error, |line| count_error(figures, line));
        }
    }
}

/// The inode a path names now.
pub fn inode_of(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

fn drain(follower: &mut LogFollower, mut each: impl FnMut(&str)) {
    while let Ok(lines) = follower.poll() {
        if lines.is_empty() {
            break;
        }
        for line in &lines {
            each(line);
        }
    }
}

fn count_access(figures: &mut LogFigures, line: &str) {
    if let Some(hit) = parse_access(line) {
        let ms = hit.micros.div_ceil(1000);
        let worker = figures.per_worker.entry(hit.pid).or_default();
        worker.record(hit.status, ms);
        worker.bytes_sent += hit.bytes;
        figures.totals.record(hit.status, ms);
        figures.totals.bytes_sent += hit.bytes;
        figures.lines += 1;
        let seen = figures.lines;
        if !figures.activity.contains_key(&hit.pid) && figures.activity.len() >= ACTIVITY_KEPT {
            let gone_longest = figures
                .activity
                .iter()
                .min_by_key(|(_, (seen, _))| *seen)
                .map(|(pid, _)| *pid);
            if let Some(pid) = gone_longest {
                figures.activity.remove(&pid);
            }
        }
        let (last_seen, log) = figures.activity.entry(hit.pid).or_default();
        *last_seen = seen;
        let at = hit.at.unwrap_or_else(crate::status::activity::unix_now);
        log.finished(&hit.method, &hit.target, hit.status, ms, at);
    }
}

/// The process that wrote an error-log line: `[time] [PID] [LEVEL] ...`.
fn logged_by(line: &str) -> Option<u32> {
    let rest = line.strip_prefix('[')?.split_once("] [")?.1;
    rest.split_once(']')?.0.parse().ok()
}

fn count_error(figures: &mut LogFigures, line: &str) {
    if let Some(master) = figures.master
        && logged_by(line) != Some(master)
    {
        return;
    }
    if let Some(event) = parse_worker_event(line) {
        figures.worker_deaths += 1;
        if figures.recent_events.len() == RECENT_EVENTS {
            figures.recent_events.pop_front();
        }
        figures.recent_events.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_import_of_a_master_stopped_before_its_halt_lines_is_its_own() {
        let lines: Vec<String> = [
            "[2026-12-06 20:00:00 +0000] [10] [INFO] Starting gunicorn 27.0.1",
            "ModuleNotFoundError: No module named 'older'",
            "[2026-12-06 20:00:05 +0000] [20] [INFO] Starting gunicorn 27.0.1",
            "[2026-12-06 20:00:06 +0000] [21] [INFO] Booting worker with pid: 21",
            "Traceback (most recent call last):",
            "  File \"x.py\", line 1, in <module>",
            "ModuleNotFoundError: No module named 'no_such_app'",
            "[2026-12-06 20:00:06 +0000] [21] [INFO] Worker exiting (pid: 21)",
            "[2026-12-06 20:00:06 +0000] [20] [ERROR] Worker (pid:21) exited with code 3.",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(last_halt(&lines), None, "no halt lines were written");
        assert_eq!(
            last_exception(since_last_start(&lines)).as_deref(),
            Some("ModuleNotFoundError: No module named 'no_such_app'")
        );
        // A master that left no traceback is not blamed on an older one's.
        let clean = &lines[..2 + 2];
        assert_eq!(last_exception(since_last_start(clean)), None);
    }

    #[test]
    fn a_halt_is_read_with_its_time_reason_and_failing_import() {
        let log: Vec<String> = "\
[2026-12-06 18:40:01 +0000] [100] [INFO] Starting gunicorn 27.0.1
[2026-12-06 18:40:01 +0000] [100] [INFO] Listening at: http://127.0.0.1:4080 (100)
[2026-12-06 18:40:09 +0000] [120] [ERROR] Exception in worker process
Traceback (most recent call last):
  File \"/v/lib/python3.11/site-packages/gunicorn/arbiter.py\", line 608, in spawn_worker
ModuleNotFoundError: No module named 'no_such_app'
[2026-12-06 18:40:09 +0000] [120] [INFO] Worker exiting (pid: 120)
[2026-12-06 18:40:10 +0000] [100] [ERROR] Worker (pid:120) exited with code 3
[2026-12-06 18:40:10 +0000] [100] [ERROR] Shutting down: Master
[2026-12-06 18:40:10 +0000] [100] [ERROR] Reason: Worker failed to boot."
            .lines()
            .map(String::from)
            .collect();
        let halt = last_halt(&log).unwrap();
        assert_eq!(halt.at, "2026-12-06 18:40:10 +0000");
        assert_eq!(halt.reason, "Worker failed to boot.");
        assert_eq!(
            halt.error.as_deref(),
            Some("ModuleNotFoundError: No module named 'no_such_app'")
        );
        // A master started after it: that one counts.
        let mut later = log.clone();
        later.push("[2026-12-06 18:41:00 +0000] [200] [INFO] Starting gunicorn 27.0.1".into());
        assert_eq!(last_halt(&later), None);
        // A stop that was asked for has no reason: no halt.
        let stopped: Vec<String> = [
            "[2026-12-06 18:40:01 +0000] [100] [INFO] Handling signal: term",
            "[2026-12-06 18:40:02 +0000] [100] [INFO] Shutting down: Master",
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        assert_eq!(last_halt(&stopped), None);
    }
    use std::io::Write;

    #[test]
    fn access_lines_in_our_format_parse_from_both_ends() {
        let line = r#"<6031> [30/Nov/2026:11:07:22 +0100] 127.0.0.1 "GET /webclient/login/?q="a b" HTTP/1.0" 200 5123 48123"#;
        assert_eq!(
            parse_access(line),
            Some(AccessLine {
                pid: 6031,
                at: Some(1_796_033_242),
                method: "GET".into(),
                target: "/webclient/login/?q=\"a b\"".into(),
                status: 200,
                bytes: 5123,
                micros: 48123
            })
        );
        let without_time = r#"<6031> 127.0.0.1 "GET /a HTTP/1.0" 200 5123 48123"#;
        let parsed = parse_access(without_time).unwrap();
        assert_eq!((parsed.at, parsed.target.as_str()), (None, "/a"));
        let no_body = r#"<7> ::1 "HEAD / HTTP/1.1" 302 None 900"#;
        assert_eq!(parse_access(no_body).unwrap().bytes, 0);
        assert_eq!(parse_access("127.0.0.1 - - [x] \"GET /\" 200 1"), None);
        assert_eq!(parse_access("<x> h \"GET /\" 200 1 2"), None);
    }

    #[test]
    fn only_the_counted_masters_worker_events_count() {
        let mut figures = LogFigures {
            master: Some(6029),
            ..LogFigures::default()
        };
        count_error(
            &mut figures,
            "[2026-11-30 11:07:22 +0000] [7001] [ERROR] Worker (pid:7003) exited with code 3.",
        );
        assert_eq!(figures.worker_deaths, 0, "another generation's worker");
        count_error(
            &mut figures,
            "[2026-11-30 11:07:22 +0000] [6029] [ERROR] Worker (pid:6033) exited with code 3.",
        );
        assert_eq!(figures.worker_deaths, 1);
        assert_eq!(logged_by("[x] [12] [INFO] y"), Some(12));
        assert_eq!(logged_by("no brackets"), None);
    }

    #[test]
    fn unexpected_worker_deaths_are_recognised_and_sigterm_is_not() {
        let kill = "[2026-11-30 11:07:22 +0000] [6029] [ERROR] Worker (pid:6031) was sent SIGKILL! Perhaps out of memory?";
        let e = parse_worker_event(kill).unwrap();
        assert_eq!((e.pid, e.at.as_str()), (6031, "2026-11-30 11:07:22 +0000"));
        assert_eq!(e.what, "was killed by SIGKILL");
        let timeout = "[2026-11-30 11:07:22 +0000] [6029] [CRITICAL] WORKER TIMEOUT (pid:6032)";
        assert_eq!(parse_worker_event(timeout).unwrap().pid, 6032);
        let code =
            "[2026-11-30 11:07:22 +0000] [6029] [ERROR] Worker (pid:6033) exited with code 3.";
        assert_eq!(parse_worker_event(code).unwrap().what, "exited with code 3");
        let term = "[2026-11-30 11:07:22 +0000] [6029] [INFO] Worker (pid:6034) was sent SIGTERM!";
        assert_eq!(parse_worker_event(term), None);
        assert_eq!(
            parse_worker_event("[x] [1] [INFO] Booting worker with pid: 5"),
            None
        );
    }

    #[test]
    fn counters_are_cumulative_from_the_start_offset() {
        let dir = tempfile::tempdir().unwrap();
        let access = dir.path().join("access.log");
        let error = dir.path().join("error.log");
        std::fs::write(&access, "<1> h \"GET /old HTTP/1.0\" 200 10 1000\n").unwrap();
        std::fs::write(&error, "").unwrap();
        let start = std::fs::metadata(&access).unwrap().len();
        let mut counters = LogCounters::open(
            Some(LogStart {
                path: access.clone(),
                offset: start,
                inode: inode_of(&access),
            }),
            Some(LogStart {
                path: error.clone(),
                offset: 0,
                inode: None,
            }),
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&access)
            .unwrap();
        writeln!(f, "<5> h \"GET /a HTTP/1.0\" 200 100 2500").unwrap();
        writeln!(f, "<5> h \"GET /b HTTP/1.0\" 404 7 100").unwrap();
        writeln!(f, "<6> h \"GET /c HTTP/1.0\" 500 1 100").unwrap();
        std::fs::write(
            &error,
            "[t] [1] [ERROR] Worker (pid:6) was sent SIGKILL! Perhaps out of memory?\n",
        )
        .unwrap();
        counters.update();
        let fig = &counters.figures;
        assert_eq!(
            fig.totals.requests, 3,
            "the line before the start is not counted"
        );
        assert_eq!(fig.per_worker[&5].requests, 2);
        assert_eq!(
            (fig.per_worker[&5].status_2xx, fig.per_worker[&5].status_4xx),
            (1, 1)
        );
        assert_eq!(fig.per_worker[&5].bytes_sent, 107);
        assert_eq!(fig.per_worker[&6].status_5xx, 1);
        assert_eq!(
            fig.totals.percentile(99.0),
            Some(crate::status::stats::LatencyBound::AtMost(5)),
            "2.5 ms falls in the 5 ms bucket"
        );
        assert_eq!(fig.worker_deaths, 1);
        // A worker that is gone keeps its requests in the totals.
        writeln!(f, "<7> h \"GET /d HTTP/1.0\" 200 1 100").unwrap();
        counters.update();
        assert_eq!(counters.figures.totals.requests, 4);
    }

    #[test]
    fn a_process_that_was_not_watching_finds_the_rotated_file_and_counts_each_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let access = dir.path().join("access.log");
        std::fs::write(&access, "<1> h \"GET /before HTTP/1.0\" 200 1 1\n").unwrap();
        let start = LogStart {
            path: access.clone(),
            offset: std::fs::metadata(&access).unwrap().len(),
            inode: inode_of(&access),
        };
        let line = "<2> h \"GET / HTTP/1.0\" 200 1 1\n";
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&access)
            .unwrap();
        write!(f, "{line}{line}").unwrap();
        // logrotate: access.log → .1 → .2, twice, with traffic between.
        std::fs::rename(&access, dir.path().join("access.log.1")).unwrap();
        std::fs::write(&access, line.repeat(3)).unwrap();
        std::fs::rename(
            dir.path().join("access.log.1"),
            dir.path().join("access.log.2"),
        )
        .unwrap();
        std::fs::rename(&access, dir.path().join("access.log.1")).unwrap();
        std::fs::write(&access, line.repeat(4)).unwrap();
        let mut counters = LogCounters::open(Some(start.clone()), None);
        counters.update();
        assert_eq!(counters.figures.totals.requests, 2 + 3 + 4);
        assert!(counters.figures.lost.is_empty());
        // The file counting began in is gone (compressed, deleted): say so.
        std::fs::remove_file(dir.path().join("access.log.2")).unwrap();
        let mut counters = LogCounters::open(Some(start), None);
        counters.update();
        assert_eq!(counters.figures.totals.requests, 4);
        assert_eq!(counters.figures.lost, vec![access]);
    }
}
