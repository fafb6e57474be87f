//! `GET /metrics` in Prometheus' text exposition format (version 0.0.4), made from
//! the status every supervisor reports, so both kinds (embedded pool, OMERO.web under
//! Gunicorn) expose the same series. Served on a loopback address only: a scraper on
//! another host reaches it through the front's allow-list, never directly.
//!
//! Counters end in `_total`, units are in the names, the latency histogram is in
//! seconds. Its `_sum` is left out: the pool counts requests per bucket and not the
//! time they took, and a made-up sum would be wrong in rate() queries.

use std::fmt::Write;
use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::status::WorkerState;
use crate::status::stats::LATENCY_BUCKETS_MS;
use crate::supervisor::PoolStatus;

/// The content type Prometheus scrapes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One source of figures: a site (no member label) or a fleet member.
pub struct Source<'a> {
    pub member: Option<&'a str>,
    /// `None` when it does not run or does not answer.
    pub status: Option<&'a PoolStatus>,
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<String>,
}

/// The exposition text of `sources`, each family once with every source's samples.
pub fn render(sources: &[Source]) -> String {
    let mut families = [
        family("omero_web_up", "gauge", "1 if the pool runs and answered"),
        family(
            "omero_web_requests_total",
            "counter",
            "Requests answered since the pool started, by status class",
        ),
        family(
            "omero_web_request_duration_seconds",
            "histogram",
            "Time to answer a request",
        ),
        family(
            "omero_web_in_flight_requests",
            "gauge",
            "Requests being answered now",
        ),
        family("omero_web_workers", "gauge", "Worker processes by state"),
        family(
            "omero_web_worker_restarts_total",
            "counter",
            "Workers that died unplanned (crash, kill, timeout)",
        ),
        family(
            "omero_web_generation",
            "gauge",
            "The pool's generation: one more after each reload",
        ),
        family(
            "omero_web_sent_bytes_total",
            "counter",
            "Response bytes sent",
        ),
        family(
            "omero_web_start_time_seconds",
            "gauge",
            "When the pool's master started, Unix time",
        ),
    ];
    for source in sources {
        let base = source
            .member
            .map(|m| format!("member=\"{}\"", escape(m)))
            .unwrap_or_default();
        let labels = |extra: &str| -> String {
            let all: Vec<&str> = [base.as_str(), extra]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            if all.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", all.join(","))
            }
        };
        let [
            up,
            requests,
            duration,
            in_flight,
            workers,
            restarts,
            generation,
            bytes,
            start,
        ] = &mut families;
        up.samples.push(format!(
            "omero_web_up{} {}",
            labels(""),
            u8::from(source.status.is_some())
        ));
        let Some(status) = source.status else {
            continue;
        };
        let t = &status.totals;
        for (class, count) in [
            ("2xx", t.status_2xx),
            ("3xx", t.status_3xx),
            ("4xx", t.status_4xx),
            ("5xx", t.status_5xx),
        ] {
            requests.samples.push(format!(
                "omero_web_requests_total{} {count}",
                labels(&format!("class=\"{class}\""))
            ));
        }
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            cumulative += t.latency_buckets.get(i).copied().unwrap_or(0);
            let le = *bound as f64 / 1000.0;
            duration.samples.push(format!(
                "omero_web_request_duration_seconds_bucket{} {cumulative}",
                labels(&format!("le=\"{le}\""))
            ));
        }
        let count: u64 = t.latency_buckets.iter().sum();
        duration.samples.push(format!(
            "omero_web_request_duration_seconds_bucket{} {count}",
            labels("le=\"+Inf\"")
        ));
        duration.samples.push(format!(
            "omero_web_request_duration_seconds_count{} {count}",
            labels("")
        ));
        in_flight.samples.push(format!(
            "omero_web_in_flight_requests{} {}",
            labels(""),
            t.in_flight
        ));
        for state in WorkerState::ALL {
            let n = status.workers.iter().filter(|w| w.state == state).count();
            workers.samples.push(format!(
                "omero_web_workers{} {n}",
                labels(&format!("state=\"{state}\""))
            ));
        }
        restarts.samples.push(format!(
            "omero_web_worker_restarts_total{} {}",
            labels(""),
            status.restarts
        ));
        generation.samples.push(format!(
            "omero_web_generation{} {}",
            labels(""),
            status.generation
        ));
        bytes.samples.push(format!(
            "omero_web_sent_bytes_total{} {}",
            labels(""),
            t.bytes_sent
        ));
        start.samples.push(format!(
            "omero_web_start_time_seconds{} {}",
            labels(""),
            status.started_at
        ));
    }
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for sample in &f.samples {
            let _ = writeln!(out, "{sample}");
        }
    }
    out
}

fn family(name: &'static str, kind: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind,
        help,
        samples: Vec::new(),
    }
}

/// A label value as the format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Parses `--listen` and refuses any address that is not loopback.
pub fn loopback_address(text: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|e| anyhow::anyhow!("--listen {text:?}: {e} (e.g. 127.0.0.1:9180)"))?;
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "--listen {text}: metrics are served on a loopback address only (127.0.0.1, ::1); \
             let the front proxy them to the hosts allowed to scrape"
        );
    }
    Ok(addr)
}

/// Serves `GET /metrics` on `listener` until the process ends, one connection at a
/// time (a scraper asks every few seconds); `body` makes the text afresh per scrape.
pub fn serve(listener: TcpListener, body: &(dyn Fn() -> String + Sync)) -> anyhow::Result<()> {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        // The request head only; a body (there should be none) is ignored.
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let line = String::from_utf8_lossy(&head);
        let mut words = line.split_whitespace();
        let (method, path) = (words.next(), words.next());
        let (code, kind, text) = match (method, path) {
            (Some("GET"), Some("/metrics")) => ("200 OK", CONTENT_TYPE, body()),
            (Some(_), Some("/metrics")) => (
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n".to_string(),
            ),
            _ => (
                "404 Not Found",
                "text/plain",
                "only /metrics here\n".to_string(),
            ),
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {code}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_served() {
        assert!(loopback_address("127.0.0.1:9180").is_ok());
        assert!(loopback_address("[::1]:9180").is_ok());
        let error = loopback_address("0.0.0.0:9180").unwrap_err().to_string();
        assert!(error.contains("loopback address only"), "{error}");
        assert!(loopback_address("10.0.0.2:9180").is_err());
    }

    #[test]
    fn a_source_that_does_not_run_is_down_with_no_other_series() {
        let text = render(&[Source {
            member: Some("we\"b1"),
            status: None,
        }]);
        assert_eq!(
            text,
            "# HELP omero_web_up 1 if the pool runs and answered\n# TYPE omero_web_up gauge\nomero_web_up{member=\"we\\\"b1\"} 0\n"
        );
    }
}
