//! One log record. Workers build these and send them to the master as JSON over their
//! IPC channel; the master alone formats and writes them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Severity, ordered from least to most severe so that `level >= Level::Warning` works
/// as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Debug,
        Level::Info,
        Level::Warning,
        Level::Error,
        Level::Critical,
    ];

    /// Python's `levelname`: the full upper-case name (`WARNING`, not `WARN`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so that width/precision flags (`{:>5.5}`) apply as for a &str.
        f.pad(self.as_str())
    }
}

/// The error of [`Level::from_str`]; its text lists what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?} (allowed: debug, info, warning, error, critical)")]
pub struct ParseLevelError(pub String);

impl FromStr for Level {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Level, ParseLevelError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warning" | "warn" => Ok(Level::Warning),
            "error" => Ok(Level::Error),
            "critical" => Ok(Level::Critical),
            _ => Err(ParseLevelError(s.to_string())),
        }
    }
}

/// A log record as it travels from a worker to the master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Unix epoch milliseconds. The master formats it in its local time zone, as
    /// Python's `asctime` does.
    pub time_ms: i64,
    pub level: Level,
    /// Dotted logger name, e.g. `omeroweb.webgateway.views`.
    pub logger: String,
    pub pid: u32,
    /// `function():line`, e.g. `serve_request():120`.
    pub location: String,
    pub message: String,
}

/// Where a record was logged from: `function():line`, OMERO's `%(funcName)s():%(lineno)d`.
/// Made by [`here!`](crate::here) at the call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Here {
    pub function: &'static str,
    pub line: u32,
}

impl Here {
    /// From the type name of a function item declared inside the calling function
    /// (`crate::pool::master::Master::reap_worker::f`): the enclosing function's name,
    /// closures skipped.
    pub fn new(marker: &'static str, line: u32) -> Here {
        let path = marker.strip_suffix("::f").unwrap_or(marker);
        let function = path
            .rsplit("::")
            .find(|segment| !segment.starts_with('{'))
            .unwrap_or(path);
        Here { function, line }
    }
}

impl std::fmt::Display for Here {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}():{}", self.function, self.line)
    }
}

impl From<Here> for String {
    fn from(here: Here) -> String {
        here.to_string()
    }
}

/// The calling function's name and line, for a log record's location.
#[macro_export]
macro_rules! here {
    () => {{
        fn f() {}
        $crate::logging::Here::new(::std::any::type_name_of_val(&f), line!())
    }};
}

impl Record {
    /// A record stamped with the current time and this process's pid.
    pub fn now(
        level: Level,
        logger: impl Into<String>,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Record {
        Record {
            time_ms: chrono::Utc::now().timestamp_millis(),
            level,
            logger: logger.into(),
            pid: std::process::id(),
            location: location.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logging_function() -> Here {
        crate::here!()
    }

    #[test]
    fn here_names_the_calling_function_and_line() {
        let here = logging_function();
        assert_eq!(here.function, "logging_function");
        assert!(here.line > 0);
        let closure = || crate::here!();
        let in_closure = closure();
        assert_eq!(
            in_closure.function,
            "here_names_the_calling_function_and_line"
        );
        assert_eq!(
            String::from(Here {
                function: "reap_worker",
                line: 712
            }),
            "reap_worker():712"
        );
    }

    #[test]
    fn parses_levels_case_insensitively() {
        for (text, level) in [
            ("debug", Level::Debug),
            ("INFO", Level::Info),
            ("Warning", Level::Warning),
            ("warn", Level::Warning),
            ("ERROR", Level::Error),
            ("critical", Level::Critical),
        ] {
            assert_eq!(text.parse::<Level>(), Ok(level), "{text}");
        }
        let err = "verbose".parse::<Level>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown log level \"verbose\" (allowed: debug, info, warning, error, critical)"
        );
    }

    #[test]
    fn orders_by_severity() {
        assert!(Level::Debug < Level::Info);
        assert!(Level::Info < Level::Warning);
        assert!(Level::Warning < Level::Error);
        assert!(Level::Error < Level::Critical);
        assert_eq!(Level::ALL.iter().max(), Some(&Level::Critical));
    }

    #[test]
    fn round_trips_through_json() {
        let rec = Record {
            time_ms: 1_714_564_800_123,
            level: Level::Warning,
            logger: "omeroweb.webgateway".into(),
            pid: 42,
            location: "render_thumbnail():88".into(),
            message: "slow \"render\"\nsecond line".into(),
        };
        let json = serde_json::to_string(&rec).unwrap();
        assert!(json.contains("\"level\":\"warning\""), "{json}");
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn now_uses_this_process() {
        let rec = Record::now(Level::Info, "a", "f():1", "m");
        assert_eq!(rec.pid, std::process::id());
        assert!(rec.time_ms > 1_600_000_000_000);
    }
}
