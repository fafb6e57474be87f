//! OMERO.web's log line shape (omero-web `settings.py` LOGGING, reference §4):
//!
//! `%(asctime)s %(levelname)5.5s [%(name)40.40s] (proc.%(process)5.5d) %(funcName)s():%(lineno)d %(message)s`
//!
//! Requests answered 4xx/5xx are logged as Django's `log_response` logs them with
//! OMERO's `full_request` format: `... log_response():NNN HTTP 404 <WSGIRequest: GET
//! '/path/?q'>`. Keeping the shape lets existing grep/awk habits and log shippers work
//! unchanged.

use std::fmt::Display;

use chrono::{DateTime, FixedOffset, Local, TimeZone, Utc};

use super::record::{Level, Record};

/// Formats a record in the local time zone, as Python's `asctime` does.
pub fn format_line(rec: &Record) -> String {
    format_in(rec, &Local)
}

/// Formats a record at a fixed UTC offset (tests, and callers that log in UTC).
pub fn format_line_with_offset(rec: &Record, offset: &FixedOffset) -> String {
    format_in(rec, offset)
}

fn format_in<Tz: TimeZone>(rec: &Record, tz: &Tz) -> String
where
    Tz::Offset: Display,
{
    let utc = DateTime::<Utc>::from_timestamp_millis(rec.time_ms).unwrap_or_default();
    let time = utc.with_timezone(tz).format("%Y-%m-%d %H:%M:%S,%3f");
    // `{:>5.5}` = Python's `%5.5s`: right-aligned, cut to 5 (WARNING → WARNI).
    // `{:05}` = Python's `%5.5d`: at least 5 digits, zero-padded, never cut.
    format!(
        "{time} {:>5.5} [{:>40.40}] (proc.{:05}) {} {}",
        rec.level, rec.logger, rec.pid, rec.location, rec.message
    )
}

/// The message part of a request line as OMERO's `full_request` format writes it:
/// `HTTP 404 <WSGIRequest: GET '/x/?a=1'>` (Django's request repr: the method and
/// the full path, quoted as Python's `repr` quotes a string).
pub fn django_request_message(status: u16, method: &str, full_path: &str) -> String {
    format!(
        "HTTP {status} <WSGIRequest: {method} {}>",
        python_repr(full_path)
    )
}

/// A string as Python's `repr` writes it: single quotes unless the text holds a
/// single quote and no double quote; backslashes, the quote and control characters
/// escaped.
pub fn python_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Reads the level back from a line in OMERO's shape. `None` for anything else, such
/// as the continuation lines of a multi-line message (a traceback).
pub fn parse_level(line: &str) -> Option<Level> {
    // `YYYY-MM-DD HH:MM:SS,mmm LEVEL [` — the level sits in columns 24..29.
    let b = line.as_bytes();
    let shape_ok = b.len() >= 31
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b','
        && b[23] == b' '
        && &b[29..31] == b" [";
    if !shape_ok {
        return None;
    }
    // Also accepts the left-aligned variant (`INFO `) of omero-py's own handler.
    match line.get(24..29)?.trim() {
        "DEBUG" => Some(Level::Debug),
        "INFO" => Some(Level::Info),
        "WARNI" | "WARN" => Some(Level::Warning),
        "ERROR" => Some(Level::Error),
        "CRITI" => Some(Level::Critical),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-05-01 12:00:00.123 UTC
    const T: i64 = 1_714_564_800_123;

    fn rec(level: Level, logger: &str, pid: u32) -> Record {
        Record {
            time_ms: T,
            level,
            logger: logger.into(),
            pid,
            location: "load_template():123".into(),
            message: "some message".into(),
        }
    }

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    #[test]
    fn matches_omero_example_line() {
        let line =
            format_line_with_offset(&rec(Level::Info, "omeroweb.webclient.views", 1308), &utc());
        assert_eq!(
            line,
            "2024-05-01 12:00:00,123  INFO [                omeroweb.webclient.views] (proc.01308) load_template():123 some message"
        );
    }

    #[test]
    fn applies_offset() {
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        let line = format_line_with_offset(&rec(Level::Info, "x", 1), &plus2);
        assert!(line.starts_with("2024-05-01 14:00:00,123 "), "{line}");
        let early = Record {
            time_ms: 5,
            ..rec(Level::Info, "x", 1)
        };
        let line = format_line_with_offset(&early, &utc());
        assert!(line.starts_with("1970-01-01 00:00:00,005 "), "{line}");
    }

    #[test]
    fn cuts_levels_to_five() {
        let cases = [
            (Level::Debug, "DEBUG"),
            (Level::Info, " INFO"),
            (Level::Warning, "WARNI"),
            (Level::Error, "ERROR"),
            (Level::Critical, "CRITI"),
        ];
        for (level, shown) in cases {
            let line = format_line_with_offset(&rec(level, "x", 1), &utc());
            assert_eq!(&line[24..29], shown, "{line}");
            assert_eq!(parse_level(&line), Some(level), "{line}");
        }
    }

    #[test]
    fn pads_and_cuts_logger_to_forty() {
        let long = "a.very.long.logger.name.that.goes.on.and.on.forever";
        let line = format_line_with_offset(&rec(Level::Info, long, 1), &utc());
        assert!(
            line.contains("[a.very.long.logger.name.that.goes.on.and] "),
            "{line}"
        );
        let line = format_line_with_offset(&rec(Level::Info, "", 1), &utc());
        assert!(line.contains(&format!("[{}]", " ".repeat(40))), "{line}");
    }

    #[test]
    fn pads_pid_but_never_cuts_it() {
        let line = format_line_with_offset(&rec(Level::Info, "x", 7), &utc());
        assert!(line.contains("(proc.00007)"), "{line}");
        let line = format_line_with_offset(&rec(Level::Info, "x", 4_194_304), &utc());
        assert!(line.contains("(proc.4194304)"), "{line}");
    }

    #[test]
    fn request_lines_match_omero_request_format() {
        let r = Record {
            location: "log_response():241".into(),
            message: django_request_message(404, "GET", "/nonexistent/"),
            ..rec(Level::Warning, "django.request", 1308)
        };
        // As the real OMERO.web 5.33 wrote it (reference real-omeroweb.md §4), bar the
        // logger's padding, which OMERO's format applies too (%(name)40.40s).
        assert_eq!(
            format_line_with_offset(&r, &utc()),
            "2024-05-01 12:00:00,123 WARNI [                          django.request] (proc.01308) log_response():241 HTTP 404 <WSGIRequest: GET '/nonexistent/'>"
        );
        assert_eq!(python_repr("/a?b=1"), "'/a?b=1'");
        assert_eq!(python_repr("/it's"), "\"/it's\"");
        assert_eq!(python_repr("/'\"\\\n"), "'/\\'\"\\\\\\n'");
    }

    #[test]
    fn parse_level_rejects_other_lines() {
        for line in [
            "",
            "Traceback (most recent call last):",
            "  File \"x.py\", line 3, in <module> [x]",
            "[2024-01-09 13:24:39 +0000] [1637] [CRITICAL] WORKER TIMEOUT (pid:7214)",
            "2024-05-01 12:00:00,123 NOISE [x] (proc.00001) f():1 m",
        ] {
            assert_eq!(parse_level(line), None, "{line:?}");
        }
        // omero-py's own handler left-aligns the level.
        assert_eq!(
            parse_level("2024-05-01 12:00:00,123 INFO  [x] (Thread-1  ) m"),
            Some(Level::Info)
        );
    }
}
