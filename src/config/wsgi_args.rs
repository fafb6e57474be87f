//! `omero.web.wsgi_args`: extra Gunicorn flags in one string.
//!
//! OMERO splits the string on whitespace, which breaks quoted values; we split it with
//! shell quoting. Every Gunicorn flag is accepted, as OMERO sites use them
//! (`--preload`, `--forwarded-allow-ips`); a word that is no Gunicorn flag is refused
//! by name. The embedded pool honours what it can and lists the rest as having no
//! effect on it (`WsgiArgs::no_effect`), so nobody believes a setting is in force that
//! is not. Integer ranges come from the matching `omero.web.wsgi_*` property, so a
//! flag can never set a value the property itself would refuse (those ranges follow
//! Gunicorn's).

use std::path::PathBuf;

use super::gunicorn_flags::{GUNICORN_FLAGS, GUNICORN_VERSION};
use crate::config::registry;
use crate::config::{Kind, Settings};
use crate::logging::Level;

/// Where `--error-logfile` / `--access-logfile` send their lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// `-`: stderr for the error log, stdout for the access log (as in Gunicorn).
    Stdio,
    /// A file path, kept as written (a relative path is for the caller to resolve).
    File(PathBuf),
}

/// The flags `wsgi_args` may carry. `None` = not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsgiArgs {
    pub log_level: Option<Level>,
    pub error_logfile: Option<LogTarget>,
    pub access_logfile: Option<LogTarget>,
    pub graceful_timeout: Option<u64>,
    pub keepalive: Option<u64>,
    pub backlog: Option<u32>,
    pub limit_request_line: Option<u32>,
    pub limit_request_fields: Option<u32>,
    pub limit_request_field_size: Option<u32>,
    pub max_requests_jitter: Option<u64>,
    pub timeout: Option<u64>,
    pub threads: Option<u32>,
    pub worker_connections: Option<u32>,
    /// `--forwarded-allow-ips`: the proxies trusted to name the client (`*`: all).
    pub forwarded_allow_ips: Option<String>,
    /// Gunicorn flags given that the embedded pool accepts but cannot honour, as
    /// written (Gunicorn itself honours them on an OMERO.web site).
    pub no_effect: Vec<String>,
}

/// Why `wsgi_args` was refused. Each message is one line naming the flag and value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsgiArgsError {
    #[error("omero.web.wsgi_args: unbalanced quote in \"{input}\"")]
    UnbalancedQuote { input: String },
    #[error("omero.web.wsgi_args: {flag} needs a value ({allowed})")]
    MissingValue { flag: String, allowed: String },
    #[error("omero.web.wsgi_args: invalid value \"{value}\" for {flag} (allowed: {allowed})")]
    BadValue {
        flag: String,
        value: String,
        allowed: String,
    },
    #[error("omero.web.wsgi_args: {flag} is not accepted here; set {instead} instead")]
    Covered { flag: String, instead: &'static str },
    #[error(
        "omero.web.wsgi_args: {flag} is not a flag of Gunicorn {GUNICORN_VERSION}{}",
        suggestion.map(|s| format!("; did you mean {s}?")).unwrap_or_default()
    )]
    Unknown {
        flag: String,
        suggestion: Option<&'static str>,
    },
    #[error("omero.web.wsgi_args: {flag} is ambiguous: it abbreviates {candidates}")]
    Ambiguous { flag: String, candidates: String },
    #[error("omero.web.wsgi_args: {flag} takes no value (\"{value}\" given)")]
    NoValueTaken { flag: String, value: String },
    #[error(
        "omero.web.wsgi_args: unexpected argument \"{arg}\"; only Gunicorn-style flags are accepted"
    )]
    UnexpectedArgument { arg: String },
    #[error("omero.web.wsgi_args: {flag} is set by omero-webctl ({why})")]
    Owned { flag: String, why: &'static str },
}

/// Gunicorn flags omero-webctl passes itself on an OMERO.web site.
const OWNED: &[(&str, &str)] = &[
    ("-p", "OMERO's pid file var/django.pid"),
    ("--pid", "OMERO's pid file var/django.pid"),
    ("-D", "start daemonizes Gunicorn as omero web start does"),
    (
        "--daemon",
        "start daemonizes Gunicorn as omero web start does",
    ),
    ("--control-socket", "the per-site var/gunicorn.ctl"),
    ("--no-control-socket", "the per-site var/gunicorn.ctl"),
    (
        "--access-logformat",
        "it counts requests per worker from it",
    ),
    (
        "--chdir",
        "Gunicorn runs in the omeroweb package as omero web start does",
    ),
    (
        "-c",
        "a config file could override everything above; use properties and wsgi_args",
    ),
    (
        "--config",
        "a config file could override everything above; use properties and wsgi_args",
    ),
];

/// The Gunicorn flag a word names, and whether it takes a value. Gunicorn's parser
/// (argparse) takes unique abbreviations of long flags (`--pi` is `--pid`), so they
/// are resolved the same way; an ambiguous one is refused as Gunicorn refuses it.
fn gunicorn_flag(flag: &str) -> Result<Option<(&'static str, bool)>, WsgiArgsError> {
    if let Some(&found) = GUNICORN_FLAGS.iter().find(|(name, _)| *name == flag) {
        return Ok(Some(found));
    }
    if !flag.starts_with("--") {
        return Ok(None);
    }
    let matches: Vec<(&str, bool)> = GUNICORN_FLAGS
        .iter()
        .filter(|(name, _)| name.starts_with(flag))
        .copied()
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(WsgiArgsError::Ambiguous {
            flag: flag.to_string(),
            candidates: many.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    LogLevel,
    ErrorLogfile,
    AccessLogfile,
    GracefulTimeout,
    Keepalive,
    Backlog,
    LimitRequestLine,
    LimitRequestFields,
    LimitRequestFieldSize,
    MaxRequestsJitter,
    Timeout,
    Threads,
    WorkerConnections,
}

/// Accepted spellings. Gunicorn's own is `--limit-request-field_size`; the all-hyphen
/// form is accepted too because everyone types it.
const FLAGS: &[(&str, Field)] = &[
    ("--log-level", Field::LogLevel),
    ("--error-logfile", Field::ErrorLogfile),
    ("--log-file", Field::ErrorLogfile),
    ("--access-logfile", Field::AccessLogfile),
    ("--graceful-timeout", Field::GracefulTimeout),
    ("--keep-alive", Field::Keepalive),
    ("--backlog", Field::Backlog),
    ("--limit-request-line", Field::LimitRequestLine),
    ("--limit-request-fields", Field::LimitRequestFields),
    ("--limit-request-field_size", Field::LimitRequestFieldSize),
    ("--limit-request-field-size", Field::LimitRequestFieldSize),
    ("--max-requests-jitter", Field::MaxRequestsJitter),
    ("--timeout", Field::Timeout),
    ("-t", Field::Timeout),
    ("--threads", Field::Threads),
    ("--worker-connections", Field::WorkerConnections),
];

/// Gunicorn flags whose job a property already does.
const COVERED: &[(&str, &str)] = &[
    ("--workers", "omero.web.wsgi_workers"),
    ("-w", "omero.web.wsgi_workers"),
    ("--worker-class", "omero.web.wsgi_worker_class"),
    ("-k", "omero.web.wsgi_worker_class"),
    (
        "--bind",
        "omero.web.application_server.host and omero.web.application_server.port",
    ),
    (
        "-b",
        "omero.web.application_server.host and omero.web.application_server.port",
    ),
    (
        "--max-requests",
        "omero.web.application_server.max_requests",
    ),
];

impl Field {
    /// The property whose range an integer flag shares; `None` for non-integers.
    fn property(self) -> Option<&'static str> {
        Some(match self {
            Field::LogLevel | Field::ErrorLogfile | Field::AccessLogfile => return None,
            Field::GracefulTimeout => "omero.web.wsgi_graceful_timeout",
            Field::Keepalive => "omero.web.wsgi_keepalive",
            Field::Backlog => "omero.web.wsgi_backlog",
            Field::LimitRequestLine => "omero.web.wsgi_limit_request_line",
            Field::LimitRequestFields => "omero.web.wsgi_limit_request_fields",
            Field::LimitRequestFieldSize => "omero.web.wsgi_limit_request_field_size",
            Field::MaxRequestsJitter => "omero.web.wsgi_max_requests_jitter",
            Field::Timeout => "omero.web.wsgi_timeout",
            Field::Threads => "omero.web.wsgi_threads",
            Field::WorkerConnections => "omero.web.wsgi_worker_connections",
        })
    }

    fn range(self) -> Option<(i64, i64)> {
        let key = self.property()?;
        match registry::lookup(key).map(|p| p.kind) {
            Some(Kind::Int { min, max }) => Some((min, max)),
            other => panic!("{key} should be an integer property, found {other:?}"),
        }
    }

    fn allowed(self) -> String {
        match self {
            Field::LogLevel => "debug, info, warning, error or critical".into(),
            Field::ErrorLogfile => "a file path, or - for stderr".into(),
            Field::AccessLogfile => "a file path, or - for stdout".into(),
            _ => {
                let (min, max) = self.range().expect("integer field");
                Kind::Int { min, max }.allowed()
            }
        }
    }
}

/// Parses `omero.web.wsgi_args` as the embedded pool runs it: any Gunicorn flag is
/// accepted; those the pool cannot honour are listed in `no_effect`. Accepts
/// `--flag=value`, `--flag value`, `-t N` and `-tN`; a flag given twice keeps the last
/// value, as in Gunicorn.
pub fn parse(s: &str) -> Result<WsgiArgs, WsgiArgsError> {
    parse_with(s, false)
}

/// The flags as Gunicorn runs them on an OMERO.web site: the ones the embedded pool
/// honours are read the same way; any other Gunicorn flag (`--preload`,
/// `--forwarded-allow-ips=*`, ...) is passed on, except those omero-webctl sets itself.
pub fn parse_for_gunicorn(s: &str) -> Result<WsgiArgs, WsgiArgsError> {
    parse_with(s, true)
}

fn parse_with(s: &str, gunicorn: bool) -> Result<WsgiArgs, WsgiArgsError> {
    let tokens = shlex::split(s).ok_or_else(|| WsgiArgsError::UnbalancedQuote {
        // Keep the message on one line even for a value written over several.
        input: s.trim().replace(['\n', '\r'], " "),
    })?;
    let mut args = WsgiArgs::default();
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        let (flag, attached) = split_flag(&token)?;
        // Our all-hyphen spelling first, then what Gunicorn would make of the word.
        let resolved = match lookup(flag) {
            Some(_) => None,
            None => Some(gunicorn_flag(flag)?.ok_or_else(|| WsgiArgsError::Unknown {
                flag: flag.to_string(),
                suggestion: suggest(flag),
            })?),
        };
        let named = resolved.map_or(flag, |(name, _)| name);
        let Some(field) = lookup(named) else {
            let takes_value = resolved.is_some_and(|(_, takes)| takes);
            if let Some(&(_, instead)) = COVERED.iter().find(|(name, _)| *name == named) {
                return Err(WsgiArgsError::Covered {
                    flag: flag.to_string(),
                    instead,
                });
            }
            if gunicorn && let Some(&(_, why)) = OWNED.iter().find(|(name, _)| *name == named) {
                return Err(WsgiArgsError::Owned {
                    flag: flag.to_string(),
                    why,
                });
            }
            let value = match (takes_value, attached) {
                (true, Some(v)) => Some(v.to_string()),
                (true, None) => match tokens.peek() {
                    Some(next) if !looks_like_flag(next) => tokens.next(),
                    _ => {
                        return Err(WsgiArgsError::MissingValue {
                            flag: flag.to_string(),
                            allowed: "a value".into(),
                        });
                    }
                },
                (false, Some(v)) => {
                    return Err(WsgiArgsError::NoValueTaken {
                        flag: flag.to_string(),
                        value: v.to_string(),
                    });
                }
                (false, None) => None,
            };
            if named == "--forwarded-allow-ips" {
                args.forwarded_allow_ips = value;
            } else if !gunicorn && !args.no_effect.iter().any(|f| f == flag) {
                args.no_effect.push(flag.to_string());
            }
            continue;
        };
        let value = match attached {
            Some(v) => v.to_string(),
            None => match tokens.peek() {
                Some(next) if !looks_like_flag(next) => tokens.next().unwrap_or_default(),
                _ => {
                    return Err(WsgiArgsError::MissingValue {
                        flag: flag.to_string(),
                        allowed: field.allowed(),
                    });
                }
            },
        };
        args.set(field, flag, &value)?;
    }
    Ok(args)
}

impl WsgiArgs {
    /// What the embedded pool says of the flags it accepts but cannot honour.
    pub fn no_effect_note(&self) -> Option<String> {
        (!self.no_effect.is_empty()).then(|| {
            format!(
                "omero.web.wsgi_args: {} {} no effect on the embedded pool (Gunicorn honours {} on an OMERO.web site)",
                self.no_effect.join(", "),
                if self.no_effect.len() == 1 { "has" } else { "have" },
                if self.no_effect.len() == 1 { "it" } else { "them" },
            )
        })
    }

    /// Overrides the pool settings these flags carry. The log level and log files are
    /// left to the caller, which owns the log destinations.
    pub fn apply(&self, settings: &mut Settings) {
        fn put<T: Copy>(target: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *target = v;
            }
        }
        put(&mut settings.timeout, self.timeout);
        put(&mut settings.graceful_timeout, self.graceful_timeout);
        put(&mut settings.keepalive, self.keepalive);
        put(&mut settings.backlog, self.backlog);
        put(&mut settings.limit_request_line, self.limit_request_line);
        put(
            &mut settings.limit_request_fields,
            self.limit_request_fields,
        );
        put(
            &mut settings.limit_request_field_size,
            self.limit_request_field_size,
        );
        put(&mut settings.max_requests_jitter, self.max_requests_jitter);
        put(&mut settings.threads, self.threads);
        put(&mut settings.worker_connections, self.worker_connections);
    }

    fn set(&mut self, field: Field, flag: &str, value: &str) -> Result<(), WsgiArgsError> {
        let bad = || WsgiArgsError::BadValue {
            flag: flag.to_string(),
            value: value.to_string(),
            allowed: field.allowed(),
        };
        let int = || -> Result<i64, WsgiArgsError> {
            let (min, max) = field.range().expect("integer field");
            match value.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(bad()),
            }
        };
        let as_u64 = || int().map(|n| n as u64);
        let as_u32 = || int().and_then(|n| u32::try_from(n).map_err(|_| bad()));
        let target = |v: &str| match v {
            "" => Err(bad()),
            "-" => Ok(LogTarget::Stdio),
            path => Ok(LogTarget::File(PathBuf::from(path))),
        };
        match field {
            Field::LogLevel => self.log_level = Some(value.parse().map_err(|_| bad())?),
            Field::ErrorLogfile => self.error_logfile = Some(target(value)?),
            Field::AccessLogfile => self.access_logfile = Some(target(value)?),
            Field::GracefulTimeout => self.graceful_timeout = Some(as_u64()?),
            Field::Keepalive => self.keepalive = Some(as_u64()?),
            Field::Backlog => self.backlog = Some(as_u32()?),
            Field::LimitRequestLine => self.limit_request_line = Some(as_u32()?),
            Field::LimitRequestFields => self.limit_request_fields = Some(as_u32()?),
            Field::LimitRequestFieldSize => self.limit_request_field_size = Some(as_u32()?),
            Field::MaxRequestsJitter => self.max_requests_jitter = Some(as_u64()?),
            Field::Timeout => self.timeout = Some(as_u64()?),
            Field::Threads => self.threads = Some(as_u32()?),
            Field::WorkerConnections => self.worker_connections = Some(as_u32()?),
        }
        Ok(())
    }
}

/// Splits a token into the flag name and a value attached with `=` (or, for a short
/// flag, written right after it: `-t60`).
fn split_flag(token: &str) -> Result<(&str, Option<&str>), WsgiArgsError> {
    if let Some(rest) = token.strip_prefix("--")
        && !rest.is_empty()
    {
        return Ok(match token.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (token, None),
        });
    }
    if looks_like_flag(token) {
        // Short flags are one ASCII letter, so byte 2 is a char boundary.
        let (flag, rest) = token.split_at(2);
        let rest = rest.strip_prefix('=').unwrap_or(rest);
        return Ok((flag, (!rest.is_empty()).then_some(rest)));
    }
    Err(WsgiArgsError::UnexpectedArgument {
        arg: token.to_string(),
    })
}

/// `--anything` or `-x`; a lone `-` (stdio) and `-5` are values.
fn looks_like_flag(token: &str) -> bool {
    let b = token.as_bytes();
    (token.starts_with("--") && b.len() > 2)
        || (b.len() >= 2 && b[0] == b'-' && b[1].is_ascii_alphabetic())
}

fn lookup(flag: &str) -> Option<Field> {
    FLAGS
        .iter()
        .find(|(name, _)| *name == flag)
        .map(|&(_, f)| f)
}

/// The Gunicorn flag a word that is none was probably meant to be: the same letters
/// with other separators (`--keepalive`), else the nearest by edit distance.
fn suggest(flag: &str) -> Option<&'static str> {
    if !flag.starts_with("--") || flag.len() < 4 {
        return None;
    }
    let letters = |s: &str| -> String { s.chars().filter(|c| *c != '-' && *c != '_').collect() };
    let wanted = letters(flag);
    let long = || {
        GUNICORN_FLAGS
            .iter()
            .map(|(name, _)| *name)
            .filter(|n| n.starts_with("--"))
    };
    if let Some(name) = long().find(|name| letters(name) == wanted) {
        return Some(name);
    }
    long()
        .map(|name| (strsim::levenshtein(flag, name), name))
        .filter(|&(distance, _)| distance <= 2)
        .min()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::site::Site;

    fn file(p: &str) -> Option<LogTarget> {
        Some(LogTarget::File(PathBuf::from(p)))
    }

    #[test]
    fn gunicorn_takes_its_other_flags_but_not_ours_and_the_pool_refuses_them() {
        let line = "--worker-tmp-dir /dev/shm --forwarded-allow-ips=* --preload --timeout 90";
        let flags = parse_for_gunicorn(line).unwrap();
        assert_eq!(flags.timeout, Some(90), "known flags are still read");
        assert_eq!(flags.forwarded_allow_ips.as_deref(), Some("*"));
        assert!(flags.no_effect.is_empty(), "Gunicorn honours them all");
        // The embedded pool accepts them too, honours what it can and lists the rest.
        let pool = parse(line).unwrap();
        assert_eq!(pool.timeout, Some(90));
        assert_eq!(pool.forwarded_allow_ips.as_deref(), Some("*"));
        assert_eq!(pool.no_effect, ["--worker-tmp-dir", "--preload"]);
        assert_eq!(
            parse_for_gunicorn("--preload -p /tmp/x.pid")
                .unwrap_err()
                .to_string(),
            "omero.web.wsgi_args: -p is set by omero-webctl (OMERO's pid file var/django.pid)"
        );
        assert!(matches!(
            parse_for_gunicorn("--access-logformat '%(h)s'").unwrap_err(),
            WsgiArgsError::Owned { .. }
        ));
        assert!(matches!(
            parse_for_gunicorn("--workers 3").unwrap_err(),
            WsgiArgsError::Covered { .. }
        ));
        // Gunicorn takes abbreviations: they are the flags they abbreviate.
        for sneaky in [
            "--pi /evil.pid",
            "--daem",
            "--no-control",
            "--bin 0.0.0.0:1",
            "-c x.py",
            "--conf x.py",
        ] {
            assert!(
                parse_for_gunicorn(sneaky).is_err(),
                "{sneaky} must be refused"
            );
        }
        assert!(matches!(
            parse_for_gunicorn("--timeout abc").unwrap_err(),
            WsgiArgsError::BadValue { .. }
        ));
    }

    #[test]
    fn parses_valid_inputs() {
        let cases: Vec<(&str, WsgiArgs)> = vec![
            ("", WsgiArgs::default()),
            ("   ", WsgiArgs::default()),
            (
                // The OMERO docs' debugging recipe.
                "--log-level=DEBUG --error-logfile=/path/var/log/error.log",
                WsgiArgs {
                    log_level: Some(Level::Debug),
                    error_logfile: file("/path/var/log/error.log"),
                    ..Default::default()
                },
            ),
            (
                "--access-logfile \"/var/log/my web/access.log\"",
                WsgiArgs {
                    access_logfile: file("/var/log/my web/access.log"),
                    ..Default::default()
                },
            ),
            (
                "--access-logfile='/var/log/my web/a.log' --log-file -",
                WsgiArgs {
                    access_logfile: file("/var/log/my web/a.log"),
                    error_logfile: Some(LogTarget::Stdio),
                    ..Default::default()
                },
            ),
            (
                "--error-logfile - --access-logfile=-",
                WsgiArgs {
                    error_logfile: Some(LogTarget::Stdio),
                    access_logfile: Some(LogTarget::Stdio),
                    ..Default::default()
                },
            ),
            (
                "-t 90 --graceful-timeout 10 --keep-alive=5 --backlog 64",
                WsgiArgs {
                    timeout: Some(90),
                    graceful_timeout: Some(10),
                    keepalive: Some(5),
                    backlog: Some(64),
                    ..Default::default()
                },
            ),
            (
                "-t0",
                WsgiArgs {
                    timeout: Some(0),
                    ..Default::default()
                },
            ),
            (
                "--timeout 5 --timeout=7",
                WsgiArgs {
                    timeout: Some(7),
                    ..Default::default()
                },
            ),
            (
                "--limit-request-line 8190 --limit-request-fields=32768 --limit-request-field_size 0",
                WsgiArgs {
                    limit_request_line: Some(8190),
                    limit_request_fields: Some(32768),
                    limit_request_field_size: Some(0),
                    ..Default::default()
                },
            ),
            (
                "--limit-request-line=0 --limit-request-fields 1 --limit-request-field-size=16384",
                WsgiArgs {
                    limit_request_line: Some(0),
                    limit_request_fields: Some(1),
                    limit_request_field_size: Some(16384),
                    ..Default::default()
                },
            ),
            (
                "--max-requests-jitter 50 --threads 4 --worker-connections 200 --log-level warn",
                WsgiArgs {
                    max_requests_jitter: Some(50),
                    threads: Some(4),
                    worker_connections: Some(200),
                    log_level: Some(Level::Warning),
                    ..Default::default()
                },
            ),
            (
                "--log-level Critical\t--log-level=error",
                WsgiArgs {
                    log_level: Some(Level::Error),
                    ..Default::default()
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn the_pool_accepts_every_gunicorn_flag_and_says_which_have_no_effect() {
        let args = parse(
            "--timeout 30 --reload --preload --daemon --user=omero -D --graceful 5 \
             --forwarded-allow-ips 10.0.0.1,10.0.0.2",
        )
        .unwrap();
        assert_eq!(args.timeout, Some(30));
        // A unique abbreviation is the flag it abbreviates, as in Gunicorn.
        assert_eq!(args.graceful_timeout, Some(5));
        assert_eq!(
            args.forwarded_allow_ips.as_deref(),
            Some("10.0.0.1,10.0.0.2")
        );
        assert_eq!(
            args.no_effect,
            ["--reload", "--preload", "--daemon", "--user", "-D"]
        );
        assert_eq!(
            parse("--preload").unwrap().no_effect_note().as_deref(),
            Some(
                "omero.web.wsgi_args: --preload has no effect on the embedded pool (Gunicorn honours it on an OMERO.web site)"
            )
        );
        assert_eq!(parse("--timeout 5").unwrap().no_effect_note(), None);
    }

    #[test]
    fn refuses_invalid_inputs_with_one_line_messages() {
        let cases = [
            (
                "--error-logfile \"/var/log/x.log",
                "omero.web.wsgi_args: unbalanced quote in \"--error-logfile \"/var/log/x.log\"",
            ),
            (
                "--timeout",
                "omero.web.wsgi_args: --timeout needs a value (an integer >= 0)",
            ),
            (
                "--error-logfile --log-level debug",
                "omero.web.wsgi_args: --error-logfile needs a value (a file path, or - for stderr)",
            ),
            (
                "-t abc",
                "omero.web.wsgi_args: invalid value \"abc\" for -t (allowed: an integer >= 0)",
            ),
            (
                "--timeout -5",
                "omero.web.wsgi_args: invalid value \"-5\" for --timeout (allowed: an integer >= 0)",
            ),
            (
                "--limit-request-line 8191",
                "omero.web.wsgi_args: invalid value \"8191\" for --limit-request-line (allowed: an integer from 0 to 8190)",
            ),
            (
                "--limit-request-fields=0",
                "omero.web.wsgi_args: invalid value \"0\" for --limit-request-fields (allowed: an integer from 1 to 32768)",
            ),
            (
                "--limit-request-fields 32769",
                "omero.web.wsgi_args: invalid value \"32769\" for --limit-request-fields (allowed: an integer from 1 to 32768)",
            ),
            (
                "--backlog 0",
                "omero.web.wsgi_args: invalid value \"0\" for --backlog (allowed: an integer from 1 to 65535)",
            ),
            (
                "--threads=0",
                "omero.web.wsgi_args: invalid value \"0\" for --threads (allowed: an integer from 1 to 1024)",
            ),
            (
                "--log-level=verbose",
                "omero.web.wsgi_args: invalid value \"verbose\" for --log-level (allowed: debug, info, warning, error or critical)",
            ),
            (
                "--access-logfile=",
                "omero.web.wsgi_args: invalid value \"\" for --access-logfile (allowed: a file path, or - for stdout)",
            ),
            (
                "--workers 8",
                "omero.web.wsgi_args: --workers is not accepted here; set omero.web.wsgi_workers instead",
            ),
            (
                "-w 8",
                "omero.web.wsgi_args: -w is not accepted here; set omero.web.wsgi_workers instead",
            ),
            (
                "--worker-class=gevent",
                "omero.web.wsgi_args: --worker-class is not accepted here; set omero.web.wsgi_worker_class instead",
            ),
            (
                "-k gthread",
                "omero.web.wsgi_args: -k is not accepted here; set omero.web.wsgi_worker_class instead",
            ),
            (
                "--bind 0.0.0.0:80",
                "omero.web.wsgi_args: --bind is not accepted here; set omero.web.application_server.host and omero.web.application_server.port instead",
            ),
            (
                "-b unix:/tmp/s",
                "omero.web.wsgi_args: -b is not accepted here; set omero.web.application_server.host and omero.web.application_server.port instead",
            ),
            (
                "--max-requests=100",
                "omero.web.wsgi_args: --max-requests is not accepted here; set omero.web.application_server.max_requests instead",
            ),
            (
                "--keepalive 5",
                "omero.web.wsgi_args: --keepalive is not a flag of Gunicorn 27.0.1; did you mean --keep-alive?",
            ),
            (
                "--worker-tmpdir /dev/shm",
                "omero.web.wsgi_args: --worker-tmpdir is not a flag of Gunicorn 27.0.1; did you mean --worker-tmp-dir?",
            ),
            (
                "--frobnicate",
                "omero.web.wsgi_args: --frobnicate is not a flag of Gunicorn 27.0.1",
            ),
            (
                "-Z",
                "omero.web.wsgi_args: -Z is not a flag of Gunicorn 27.0.1",
            ),
            (
                "--limit-request-field 5",
                "omero.web.wsgi_args: --limit-request-field is ambiguous: it abbreviates --limit-request-fields, --limit-request-field_size",
            ),
            (
                "--preload=yes",
                "omero.web.wsgi_args: --preload takes no value (\"yes\" given)",
            ),
            (
                "--user",
                "omero.web.wsgi_args: --user needs a value (a value)",
            ),
            (
                "omeroweb.wsgi:application",
                "omero.web.wsgi_args: unexpected argument \"omeroweb.wsgi:application\"; only Gunicorn-style flags are accepted",
            ),
            (
                "--timeout 5 6",
                "omero.web.wsgi_args: unexpected argument \"6\"; only Gunicorn-style flags are accepted",
            ),
        ];
        for (input, message) in cases {
            let err = parse(input).expect_err(input);
            assert_eq!(err.to_string(), message, "{input}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn every_integer_flag_has_an_integer_property() {
        for &(flag, field) in FLAGS {
            if field.property().is_some() {
                assert!(field.range().is_some(), "{flag}");
            }
        }
    }

    #[test]
    fn apply_overrides_pool_settings_only() {
        let tmp = tempfile::tempdir().unwrap();
        let site = Site::new(tmp.path());
        let config = Config::from_text(&site, site.config_file(), String::new(), None).unwrap();
        let before = config.settings();
        let mut settings = before.clone();
        parse("--log-level debug --error-logfile /tmp/e.log")
            .unwrap()
            .apply(&mut settings);
        assert_eq!(format!("{settings:?}"), format!("{before:?}"));

        let args = parse(
            "-t 90 --graceful-timeout 10 --keep-alive 5 --backlog 64 --limit-request-line 100 \
             --limit-request-fields 20 --limit-request-field_size 300 --max-requests-jitter 7 \
             --threads 3 --worker-connections 50",
        )
        .unwrap();
        args.apply(&mut settings);
        assert_eq!(settings.timeout, 90);
        assert_eq!(settings.graceful_timeout, 10);
        assert_eq!(settings.keepalive, 5);
        assert_eq!(settings.backlog, 64);
        assert_eq!(settings.limit_request_line, 100);
        assert_eq!(settings.limit_request_fields, 20);
        assert_eq!(settings.limit_request_field_size, 300);
        assert_eq!(settings.max_requests_jitter, 7);
        assert_eq!(settings.threads, 3);
        assert_eq!(settings.worker_connections, 50);
        assert_eq!(settings.workers, before.workers);
        assert_eq!(settings.max_requests, before.max_requests);
    }
}
