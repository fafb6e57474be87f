//! The command `omero web start` runs (omero-web's `omero/plugins/web.py`), plus what a
//! supervisor needs: a per-site control socket, Gunicorn's error log under the logdir
//! and an access log that names the worker of every request.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::logs::ACCESS_FORMAT;
use super::python::PythonEnv;
use crate::config::wsgi_args::{self, LogTarget};
use crate::config::{Settings, WorkerClass};
use crate::site::Site;

/// Gunicorn's error log when `wsgi_args` names none.
pub const ERROR_LOG_NAME: &str = "gunicorn.log";
/// The access log when `wsgi_args` names none.
pub const ACCESS_LOG_NAME: &str = "gunicorn.access.log";

/// Where Gunicorn's two logs go for these settings (`wsgi_args` may move them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GunicornLogs {
    pub error: Option<PathBuf>,
    pub access: Option<PathBuf>,
}

pub fn logs(settings: &Settings) -> GunicornLogs {
    let flags = settings
        .wsgi_args
        .as_deref()
        .and_then(|args| wsgi_args::parse_for_gunicorn(args).ok())
        .unwrap_or_default();
    let resolve = |target: Option<LogTarget>, default: &str| match target {
        None => Some(settings.log_dir.join(default)),
        // `-` under -D goes nowhere we can read.
        Some(LogTarget::Stdio) => None,
        Some(LogTarget::File(path)) if path.is_absolute() => Some(path),
        // Gunicorn runs in the omeroweb package directory; relative paths are from
        // there, which nobody means: read them against the site instead.
        Some(LogTarget::File(path)) => Some(settings.site_root.join(path)),
    };
    GunicornLogs {
        error: resolve(flags.error_logfile, ERROR_LOG_NAME),
        access: resolve(flags.access_logfile, ACCESS_LOG_NAME),
    }
}

/// Gunicorn's arguments (after the program), in OMERO's order, then ours, then
/// `wsgi_args` (split with shell quoting; OMERO splits on whitespace), then the app.
/// Flags later on the line win in Gunicorn, so `wsgi_args` may move the logs.
pub fn gunicorn_args(site: &Site, settings: &Settings) -> Vec<OsString> {
    gunicorn_args_with(
        settings,
        &site.django_pid_file(),
        &site.gunicorn_control_socket(),
    )
}

/// [`gunicorn_args`] with another pid file and control socket: an interim
/// generation runs beside the live one with its own (see `generation`).
pub fn gunicorn_args_with(
    settings: &Settings,
    pid_file: &Path,
    control_socket: &Path,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |parts: &[&str]| args.extend(parts.iter().map(OsString::from));
    push(&["-D", "-p"]);
    args.push(pid_file.into());
    let mut push = |parts: &[&str]| args.extend(parts.iter().map(OsString::from));
    push(&["--bind", &settings.bind()]);
    push(&["--workers", &settings.workers.to_string()]);
    match settings.worker_class {
        WorkerClass::Sync => push(&["--threads", &settings.threads.to_string()]),
        WorkerClass::Gevent => push(&[
            "--worker-connections",
            &settings.worker_connections.to_string(),
            "--worker-class",
            "gevent",
        ]),
        // OMERO refuses gthread by name; Gunicorn has it, so we pass it on.
        WorkerClass::Gthread => push(&[
            "--threads",
            &settings.threads.to_string(),
            "--worker-class",
            "gthread",
        ]),
    }
    push(&["--timeout", &settings.timeout.to_string()]);
    push(&["--max-requests", &settings.max_requests.to_string()]);
    // Our wsgi_* extensions, when they differ from Gunicorn's defaults (which are
    // theirs), so that by default the command line stays OMERO's.
    let extensions: [(&str, u64, u64); 7] = [
        ("--max-requests-jitter", settings.max_requests_jitter, 0),
        ("--graceful-timeout", settings.graceful_timeout, 30),
        ("--keep-alive", settings.keepalive, 2),
        ("--backlog", settings.backlog as u64, 2048),
        (
            "--limit-request-line",
            settings.limit_request_line as u64,
            4094,
        ),
        (
            "--limit-request-fields",
            settings.limit_request_fields as u64,
            100,
        ),
        (
            "--limit-request-field_size",
            settings.limit_request_field_size as u64,
            8190,
        ),
    ];
    for (flag, value, gunicorn_default) in extensions {
        if value != gunicorn_default {
            push(&[flag, &value.to_string()]);
        }
    }
    let values: [OsString; 4] = [
        control_socket.into(),
        settings.log_dir.join(ERROR_LOG_NAME).into(),
        settings.log_dir.join(ACCESS_LOG_NAME).into(),
        ACCESS_FORMAT.into(),
    ];
    for (flag, value) in ADDED_FLAGS.into_iter().zip(values) {
        args.push(flag.into());
        args.push(value);
    }
    // The application before wsgi_args: a stray word there then makes Gunicorn refuse
    // to start ("unrecognized arguments") instead of serving that word as the app.
    args.push("omeroweb.wsgi:application".into());
    if let Some(extra) = &settings.wsgi_args {
        // Validated on load; an unsplittable value cannot get here.
        args.extend(
            shlex::split(extra)
                .unwrap_or_default()
                .into_iter()
                .map(OsString::from),
        );
    }
    args
}

/// What we add to `omero web start`'s Gunicorn command line, in one place (docs/omeroweb.md,
/// "A real OMERO.web site", lists the same): a per-site control socket (Gunicorn's
/// default is shared by every deployment of a user), Gunicorn's error log (under -D it
/// goes nowhere otherwise) and an access log naming each request's worker. Our
/// `wsgi_*` extensions reach it only when set away from Gunicorn's defaults, and
/// `wsgi_args` comes after the application, split with shell quoting.
pub const ADDED_FLAGS: [&str; 4] = [
    "--control-socket",
    "--error-logfile",
    "--access-logfile",
    "--access-logformat",
];

/// The environment `omero web start` gives Gunicorn and manage.py, on top of the
/// caller's: omero-py's `CLI._env()` (PYTHONPATH gets `$OMERODIR/var/lib` appended,
/// PATH the interpreter's directory appended) and web.py's `SCRIPT_NAME` for a prefix.
/// Nothing else: `ICE_CONFIG` is exported only by `omero web gateway|call`, and with
/// no `etc/ice.config` it turns every login POST into `Ice.FileException` (HTTP 500).
/// OMERODIR is the one addition, and only when the caller did not set it (`omero`
/// refuses to run without it; `--omerodir` does not need it).
pub fn environment(
    site: &Site,
    settings: &Settings,
    python: &PythonEnv,
) -> Vec<(OsString, OsString)> {
    environment_from(site, settings, python, |key| std::env::var_os(key))
}

/// [`environment`] against a given caller's environment (`caller(KEY)`).
fn environment_from(
    site: &Site,
    settings: &Settings,
    python: &PythonEnv,
    caller: impl Fn(&str) -> Option<OsString>,
) -> Vec<(OsString, OsString)> {
    // `omero`'s rule: a non-empty value gets `:` and ours appended (no second `:`
    // after a trailing one); an unset one becomes ours alone.
    let append = |old: Option<OsString>, ours: &Path| -> OsString {
        match old.filter(|v| !v.is_empty()) {
            Some(mut value) => {
                if !value.as_encoded_bytes().ends_with(b":") {
                    value.push(":");
                }
                value.push(ours);
                value
            }
            None => ours.into(),
        }
    };
    let mut env = vec![
        ("OMERODIR".into(), site.root().into()),
        (
            "PYTHONPATH".into(),
            append(caller("PYTHONPATH"), &site.var_dir().join("lib")),
        ),
    ];
    if let Some(bin) = python.bin_dir() {
        // `ospath + ":" + bin` even when bin is on it already (omero-py's check for
        // that compares against the wrong list and never matches).
        let path = match caller("PATH").filter(|v| !v.is_empty()) {
            Some(mut path) => {
                path.push(":");
                path.push(bin);
                path
            }
            None => bin.into(),
        };
        env.push(("PATH".into(), path));
    }
    if let Some(prefix) = &settings.prefix {
        env.push(("SCRIPT_NAME".into(), prefix.into()));
    }
    env
}

/// The flags of `running` (a master's argv) that differ from `wanted`, as
/// `--workers 5 → 3`: what a HUP cannot change, since Gunicorn keeps its argv.
pub fn argv_changes(running: &[String], wanted: &[OsString]) -> Vec<String> {
    let wanted: Vec<String> = wanted
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Skip the interpreter and script in `running`: compare from the first flag.
    let start = running
        .iter()
        .position(|a| a == "-D" || a.starts_with("--"))
        .unwrap_or(running.len());
    let running = &running[start.min(running.len())..];
    let pairs = |args: &[String]| -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let flag = &args[i];
            if let Some((name, value)) = flag.split_once('=').filter(|_| flag.starts_with("--")) {
                out.push((name.to_string(), value.to_string()));
                i += 1;
            } else if flag.starts_with('-') && i + 1 < args.len() && !args[i + 1].starts_with('-') {
                out.push((flag.clone(), args[i + 1].clone()));
                i += 2;
            } else {
                out.push((flag.clone(), String::new()));
                i += 1;
            }
        }
        out
    };
    let old = pairs(running);
    let new = pairs(&wanted);
    let mut changes = Vec::new();
    for (flag, value) in &new {
        match old.iter().rev().find(|(f, _)| f == flag) {
            Some((_, was)) if was == value => {}
            Some((_, was)) => changes.push(format!("{flag} {was} → {value}")),
            None => changes.push(format!("{flag} {value} (new)").trim_end().to_string()),
        }
    }
    for (flag, value) in &old {
        if !new.iter().any(|(f, _)| f == flag) {
            changes.push(format!("{flag} {value} (removed)"));
        }
    }
    changes.dedup();
    changes
}

/// The working directory of Gunicorn and manage.py: the installed package.
pub fn working_dir(python: &PythonEnv) -> &Path {
    &python.omeroweb_dir
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn settings(site: &Site, toml: &str) -> Settings {
        Config::from_text(site, site.toml_config_file(), toml.to_string(), None)
            .unwrap()
            .settings()
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn omeros_argv_then_ours_then_wsgi_args() {
        let site = Site::new("/srv/omero");
        let s = settings(
            &site,
            "\"omero.web.wsgi_workers\" = 3\n\"omero.web.wsgi_args\" = \"--log-level debug --error-logfile '/var/log/my web.log'\"\n",
        );
        let args = strings(&gunicorn_args(&site, &s));
        let line = args.join(" ");
        assert!(
            line.starts_with("-D -p /srv/omero/var/django.pid --bind 127.0.0.1:4080 --workers 3 --threads 1 --timeout 60 --max-requests 0 --control-socket /srv/omero/var/gunicorn.ctl"),
            "{line}"
        );
        assert!(
            args.contains(&"/var/log/my web.log".to_string()),
            "quoting honoured: {args:?}"
        );
        let app = args
            .iter()
            .position(|a| a == "omeroweb.wsgi:application")
            .unwrap();
        let extra = args.iter().position(|a| a == "--log-level").unwrap();
        assert!(app < extra, "the app comes before wsgi_args: {args:?}");
        let logs = logs(&s);
        assert_eq!(
            logs.error.as_deref(),
            Some(Path::new("/var/log/my web.log"))
        );
        assert_eq!(
            logs.access.as_deref(),
            Some(Path::new("/srv/omero/var/log/gunicorn.access.log"))
        );
    }

    #[test]
    fn our_wsgi_extensions_reach_gunicorn_only_when_they_differ_from_its_defaults() {
        let site = Site::new("/srv/omero");
        let defaults = strings(&gunicorn_args(&site, &settings(&site, ""))).join(" ");
        assert!(!defaults.contains("--graceful-timeout"), "{defaults}");
        assert!(!defaults.contains("--limit-request"), "{defaults}");
        let s = settings(
            &site,
            "\"omero.web.wsgi_graceful_timeout\" = 5\n\"omero.web.wsgi_limit_request_line\" = 2000\n",
        );
        let line = strings(&gunicorn_args(&site, &s)).join(" ");
        assert!(line.contains("--graceful-timeout 5"), "{line}");
        assert!(line.contains("--limit-request-line 2000"), "{line}");
    }

    #[test]
    fn gevent_gets_its_connections_and_class() {
        let site = Site::new("/srv/omero");
        let s = settings(
            &site,
            "\"omero.web.wsgi_worker_class\" = \"gevent\"\n\"omero.web.wsgi_worker_connections\" = 500\n",
        );
        let line = strings(&gunicorn_args(&site, &s)).join(" ");
        assert!(
            line.contains("--worker-connections 500 --worker-class gevent"),
            "{line}"
        );
        assert!(!line.contains("--threads"), "{line}");
    }

    #[test]
    fn the_environment_is_omeros_without_ice_config() {
        let site = Site::new("/srv/omero");
        let s = settings(&site, "\"omero.web.prefix\" = \"/omero\"\n");
        let python = PythonEnv {
            python: PathBuf::from("/venv/bin/python"),
            gunicorn_script: None,
            omeroweb_dir: PathBuf::from("/venv/lib/omeroweb"),
            versions: Default::default(),
        };
        let caller = |key: &str| match key {
            "PATH" => Some(OsString::from("/usr/bin:/bin")),
            "PYTHONPATH" => Some(OsString::from("/mine:")),
            _ => None,
        };
        let env: std::collections::BTreeMap<String, String> =
            environment_from(&site, &s, &python, caller)
                .into_iter()
                .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
                .collect();
        assert!(!env.contains_key("ICE_CONFIG"), "{env:?}");
        assert_eq!(
            env["PATH"], "/usr/bin:/bin:/venv/bin",
            "appended, as omero-py does"
        );
        assert_eq!(env["PYTHONPATH"], "/mine:/srv/omero/var/lib");
        assert_eq!(env["SCRIPT_NAME"], "/omero");
        assert_eq!(env["OMERODIR"], "/srv/omero");
        // A caller without PATH or PYTHONPATH: ours alone.
        let env = environment_from(&site, &settings(&site, ""), &python, |_| None);
        assert!(
            env.contains(&("PATH".into(), "/venv/bin".into())),
            "{env:?}"
        );
        assert!(
            env.contains(&("PYTHONPATH".into(), "/srv/omero/var/lib".into())),
            "{env:?}"
        );
        assert!(!env.iter().any(|(k, _)| k == "SCRIPT_NAME"), "{env:?}");
    }

    #[test]
    fn changes_a_hup_cannot_apply_are_listed() {
        let running: Vec<String> = "/v/bin/python /v/bin/gunicorn -D -p /s/var/django.pid --workers 5 --timeout 60 omeroweb.wsgi:application"
            .split(' ')
            .map(String::from)
            .collect();
        let wanted: Vec<OsString> = "-D -p /s/var/django.pid --workers 3 --timeout 60 --log-level debug omeroweb.wsgi:application"
            .split(' ')
            .map(OsString::from)
            .collect();
        assert_eq!(
            argv_changes(&running, &wanted),
            vec![
                "--workers 5 → 3".to_string(),
                "--log-level debug (new)".to_string()
            ]
        );
        assert!(
            argv_changes(
                &running,
                &running
                    .iter()
                    .skip(2)
                    .map(OsString::from)
                    .collect::<Vec<_>>()
            )
            .is_empty()
        );
    }

    /// A value of `prop` other than its default, as TOML.
    fn other_value(prop: &crate::config::property::Property) -> String {
        use crate::config::property::Kind;
        match prop.kind {
            Kind::Int { max, .. } => {
                let default: i64 = prop.default.and_then(|d| d.parse().ok()).unwrap_or(0);
                (if default < max {
                    default + 1
                } else {
                    default - 1
                })
                .to_string()
            }
            Kind::Choice(words) => {
                let other = words.iter().find(|w| Some(**w) != prop.default).unwrap();
                format!("{other:?}")
            }
            Kind::Host => "\"127.0.0.2\"".into(),
            Kind::Path => "\"/srv/elsewhere\"".into(),
            Kind::WsgiArgs => "\"--log-level debug\"".into(),
            other => panic!("{}: no other value for {other:?}", prop.key),
        }
    }

    /// The value after `flag` (the last one: later flags win in Gunicorn).
    fn flag_value(args: &[String], flag: &str) -> Option<String> {
        args.iter()
            .rposition(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    }

    /// The registry's `gunicorn` column is what the argv builder reads: every property
    /// it puts on the command line changes that flag when set away from its default.
    /// Fails for a property mapped to a flag the builder ignores (or to the wrong flag).
    #[test]
    fn every_property_the_registry_puts_on_gunicorns_argv_reaches_it() {
        use crate::config::property::GunicornArgv;
        let site = Site::new("/srv/omero");
        let mut checked = 0;
        for prop in crate::config::registry::PROPERTIES {
            let Some(how) = prop.gunicorn else { continue };
            // Gunicorn reads --worker-connections only for gevent workers, and the
            // builder passes it only then.
            let context = if prop.key == "omero.web.wsgi_worker_connections" {
                "\"omero.web.wsgi_worker_class\" = \"gevent\"\n"
            } else {
                ""
            };
            let before = strings(&gunicorn_args(&site, &settings(&site, context)));
            let changed = format!("{context}{:?} = {}\n", prop.key, other_value(prop));
            let changed_settings = settings(&site, &changed);
            let after = strings(&gunicorn_args(&site, &changed_settings));
            match how {
                GunicornArgv::Flag(_) | GunicornArgv::WorkerCount => {
                    let flag = match how {
                        GunicornArgv::Flag(flag) => flag,
                        _ => "--workers",
                    };
                    let now = flag_value(&after, flag);
                    assert!(now.is_some(), "{}: {flag} is not on {after:?}", prop.key);
                    assert_ne!(
                        flag_value(&before, flag),
                        now,
                        "{}: setting it to {changed:?} leaves {flag} as it was",
                        prop.key
                    );
                }
                GunicornArgv::Appended => {
                    assert!(
                        after.ends_with(&["--log-level".into(), "debug".into()]),
                        "{after:?}"
                    );
                }
                GunicornArgv::Interpreter => {
                    // Not a flag: the Python that runs Gunicorn comes from it.
                    assert_eq!(
                        changed_settings.python.as_deref(),
                        Some(Path::new("/srv/elsewhere")),
                        "{}",
                        prop.key
                    );
                }
            }
            checked += 1;
        }
        assert_eq!(checked, 18, "the properties on Gunicorn's command line");
    }

    /// Only the worker count of the command line is applied by a reload.
    #[test]
    fn argv_properties_need_a_restart_except_the_worker_count() {
        assert!(super::super::needs_restart("omero.web.wsgi_timeout"));
        assert!(super::super::needs_restart("omero.web.python"));
        assert!(!super::super::needs_restart("omero.web.wsgi_workers"));
        assert!(!super::super::needs_restart("omero.web.debug"));
    }
}
