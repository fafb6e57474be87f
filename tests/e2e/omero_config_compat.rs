//! Reading a site's config as OMERO does (issue 19), against the real omero-web and
//! omero-py in the test venv: every value OMERO's own parsers accept loads (kept as
//! written, read as OMERO reads it, with a warning where our rules would refuse it);
//! a site whose config.xml the real `omero config` filled with such values is
//! started, shown and edited; and `--omero-compat config get` prints what
//! `omero config get` prints.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use omero_webctl::config::{Config, Value, registry};
use omero_webctl::site::{Site, SiteKind};
use support::{BIN, TestSite, omero_cli, omeroweb_venv, stderr, stdout};

/// Writes each round of probes into its own config.xml with omero-py's `ConfigXml`
/// (what `omero config set` calls, in one process instead of one per value), reads
/// the file back as settings.py does, and feeds every value to its property's own
/// parser from settings.py's tables. Prints, per round and key, whether OMERO
/// accepts the value and, for booleans and integers, what it reads.
const JUDGE: &str = r#"
import json, os, sys
from omero.config import ConfigXml
rounds = json.load(sys.stdin)
root = sys.argv[1]
os.environ["OMERODIR"] = os.path.join(root, "empty")
os.makedirs(os.path.join(root, "empty", "etc", "grid"), exist_ok=True)
import omeroweb.settings as s
from omeroweb.api import api_settings as a
parsers = {}
for table in (s.INTERNAL_SETTINGS_MAPPING, s.CUSTOM_SETTINGS_MAPPINGS,
              s.DEPRECATED_SETTINGS_MAPPINGS, s.DEVELOPMENT_SETTINGS_MAPPINGS,
              a.API_SETTINGS_MAPPING):
    for key, v in table.items():
        parsers[key] = v[2]
out = []
for i, probes in enumerate(rounds):
    grid = os.path.join(root, "round%d" % i, "etc", "grid")
    os.makedirs(grid, exist_ok=True)
    config = ConfigXml(os.path.join(grid, "config.xml"))
    for key, value in probes.items():
        config[key] = value
    stored = config.as_map()
    config.close()
    for key, value in probes.items():
        read = None
        try:
            parsed = parsers[key](stored[key])
            accepted = True
            if isinstance(parsed, (bool, int)):
                read = parsed
        except Exception as e:
            accepted = False
        out.append({"round": i, "key": key, "value": stored[key],
                    "accepted": accepted, "read": read})
print(json.dumps(out))
"#;

/// The parser settings.py names for each property OMERO.web reads.
const PARSERS: &str = r#"
import json, omeroweb.settings as s
from omeroweb.api import api_settings as a
out = {}
for table in (s.INTERNAL_SETTINGS_MAPPING, s.CUSTOM_SETTINGS_MAPPINGS,
              s.DEPRECATED_SETTINGS_MAPPINGS, s.DEVELOPMENT_SETTINGS_MAPPINGS,
              a.API_SETTINGS_MAPPING):
    for key, v in table.items():
        out[key] = getattr(v[2], "__name__", str(v[2]))
print(json.dumps(out))
"#;

fn python(venv: &Path, script: &str, dir: &Path, args: &[&str], input: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .env("OMERODIR", dir)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(input.unwrap_or_default().as_bytes())
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// Probe values for a parser of settings.py: the audit's kinds (out-of-range and
/// odd integers, words OMERO reads as false, JSON of the wrong type, text our rules
/// refuse), plus plain valid ones.
fn probes_for(parser: &str, key: &str) -> Vec<String> {
    let mut probes: Vec<&str> = match parser {
        "parse_boolean" => vec![
            "yes", "on", "Y", " TRUE ", "maybe", "", "0", "t", "enabled", "1",
        ],
        "int" | "leave_none_unset_int" => vec![
            "0",
            "-1",
            "+7",
            " 12 ",
            "1_000",
            "99999999999999999999",
            "banana",
            "",
            "1.5",
            "0x10",
            "65536",
            "2",
        ],
        "loads" => vec![
            "5",
            "\"text\"",
            "{}",
            "[]",
            "null",
            "[1,",
            "[NaN]",
            "{\"a\": [1]}",
            "true",
            "[\"x\"]",
        ],
        "check_server_type" => vec![
            "wsgi-tcp",
            "wsgi",
            "development",
            "WSGI-TCP",
            "fcgi",
            "",
            " wsgi-tcp",
        ],
        "check_session_engine" => vec![
            "django.contrib.sessions.backends.db",
            "omeroweb.filesessionstore",
            "bogus",
            "",
            "omeroweb.filesessionstore ",
        ],
        "check_timezone" => vec!["Europe/London", "europe/london", "UTC", "Mars/Olympus", ""],
        "compile" => vec![
            "[",
            "a{2,1}",
            "\\d+(?i)x",
            "^/webgateway/",
            "(?<=a)b",
            "(?i)x",
            "",
        ],
        "check_worker_class" => vec!["sync", "gthread", "eventlet", "bogus", ""],
        _ => vec![
            "",
            "relative/path",
            "with space",
            "/ok/",
            "a;b",
            "omero",
            "lax",
            "bogus",
        ],
    };
    match key {
        "omero.web.wsgi_args" => probes.extend([
            "--worker-class gthread --threads 4",
            "--preload",
            "--bogus-flag",
            "--bind 0.0.0.0:1",
            "'unbalanced",
        ]),
        "omero.web.session_cookie_samesite" | "omero.web.csrf_cookie_samesite" => {
            probes.extend(["Lax", "strict", "NONE"])
        }
        _ => {}
    }
    probes.into_iter().map(String::from).collect()
}

#[test]
fn every_value_omeros_parsers_accept_loads_kept_as_written_and_read_alike() {
    let Some(venv) = omeroweb_venv("every_value_omeros_parsers_accept_loads") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc/grid")).unwrap();
    let parsers: BTreeMap<String, String> =
        serde_json::from_str(&python(&venv, PARSERS, dir.path(), &[], None)).unwrap();
    // Round i holds every property's i-th probe.
    let mut rounds: Vec<BTreeMap<String, String>> = Vec::new();
    for prop in registry::PROPERTIES.iter().filter(|p| !p.extension) {
        let Some(parser) = parsers.get(prop.key) else {
            continue;
        };
        for (i, probe) in probes_for(parser, prop.key).into_iter().enumerate() {
            if rounds.len() <= i {
                rounds.push(BTreeMap::new());
            }
            rounds[i].insert(prop.key.to_string(), probe);
        }
    }
    let judged: Vec<serde_json::Value> = serde_json::from_str(&python(
        &venv,
        JUDGE,
        dir.path(),
        &[&dir.path().to_string_lossy()],
        Some(&serde_json::to_string(&rounds).unwrap()),
    ))
    .unwrap();
    let configs: Vec<Config> = (0..rounds.len())
        .map(|i| {
            let site = Site::with_kind(dir.path().join(format!("round{i}")), SiteKind::OmeroWeb);
            Config::load(&site).unwrap_or_else(|e| panic!("round {i} does not load: {e}"))
        })
        .collect();
    let mut failures = Vec::new();
    let (mut accepted, mut warned) = (0, 0);
    for j in &judged {
        let round = j["round"].as_u64().unwrap() as usize;
        let key = j["key"].as_str().unwrap();
        let value = j["value"].as_str().unwrap();
        let config = &configs[round];
        let prop = registry::lookup(key).unwrap();
        if j["accepted"] != true {
            // And what OMERO's parser refuses is reported by key as stopping it.
            if !config.value_warning(key).is_some_and(|w| w.omero_fails) {
                failures.push(format!(
                    "{key}={value:?}: OMERO refuses it, we do not say so"
                ));
            }
            continue;
        }
        accepted += 1;
        // Kept exactly as written.
        if config.raw(key).as_deref() != Some(value) {
            failures.push(format!("{key}={value:?}: kept as {:?}", config.raw(key)));
        }
        // Odd for our rules => a warning that says how it is read.
        let strict = prop.parse(value);
        match (strict.is_ok(), config.value_warning(key)) {
            (false, None) => failures.push(format!("{key}={value:?}: refused without a warning")),
            (_, Some(w)) if w.omero_fails => {
                failures.push(format!("{key}={value:?}: OMERO accepts it, we say: {w}"))
            }
            (false, Some(_)) => warned += 1,
            _ => {}
        }
        // Read as OMERO reads it, where we use a reading.
        let ours = config.get(key);
        match (&j["read"], ours) {
            (serde_json::Value::Bool(b), Some(v)) if *v != Value::Bool(*b) => {
                failures.push(format!("{key}={value:?}: OMERO reads {b}, we use {v:?}"))
            }
            (serde_json::Value::Number(n), Some(Value::Int(i))) if n.as_i64() != Some(*i) => {
                failures.push(format!("{key}={value:?}: OMERO reads {n}, we use {i}"))
            }
            _ => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} probes:\n{}",
        failures.len(),
        judged.len(),
        failures.join("\n")
    );
    eprintln!("{accepted} probes OMERO accepts, {warned} of them odd for our rules");
    // The list holds what the audit found: many values only OMERO accepts.
    assert!(warned >= 53, "only {warned} odd values among {accepted}");
}

fn ours(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--omerodir")
        .arg(dir)
        .args(["--backend", "omeroweb", "--omero-compat", "config", "get"])
        .args(args)
        .env_remove("OMERO_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn omero_compat_config_get_prints_what_omero_config_get_prints() {
    let Some(venv) = omeroweb_venv("omero_compat_config_get_prints_what_omero_config_get_prints")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("omero.web.wsgi_workers", "3"),
        ("omero.web.debug", "yes"),
        ("omero.web.public.password", "s3cret"),
        ("omero.web.prefix", "omero"),
        ("omero.db.host", "db.example.org"),
    ] {
        let out = omero_cli(&venv, dir.path(), &["config", "set", key, value])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for args in [
        &["omero.web.wsgi_workers"][..],
        &["omero.web.debug"],
        &["omero.web.wsgi_timeout"],
        &["omero.web.no_such_key"],
        &["omero.web.wsgi_workers", "omero.web.debug"],
        &[
            "omero.web.public.password",
            "omero.web.wsgi_timeout",
            "omero.db.host",
            "omero.web.prefix",
        ],
        &[],
        &["--show-password"],
    ] {
        let theirs = omero_cli(&venv, dir.path(), &[&["config", "get"][..], args].concat())
            .output()
            .unwrap();
        let mine = ours(dir.path(), args);
        assert_eq!(
            (stdout(&mine), stderr(&mine), mine.status.code()),
            (stdout(&theirs), String::new(), theirs.status.code()),
            "config get {args:?}"
        );
        assert!(stderr(&theirs).is_empty(), "{args:?}: {}", stderr(&theirs));
    }
}

#[test]
fn a_site_omero_config_filled_with_odd_values_is_started_shown_and_edited() {
    let Some(venv) = omeroweb_venv("a_site_omero_config_filled_with_odd_values") else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 1);
    // What an OMERO sysadmin may have set with OMERO's own tool; OMERO.web runs it.
    let odd = [
        ("omero.web.wsgi_args", "--worker-class gthread --threads 4"),
        ("omero.web.session_cookie_samesite", "lax"),
        ("omero.web.debug", "yes"),
        ("omero.web.public.enabled", "on"),
        ("omero.web.prefix", "omero"),
        ("omero.web.page_size", "0"),
        ("omero.web.thumbnails_batch", "-5"),
        ("omero.web.login.show_client_downloads", "Y"),
        ("omero.web.ping_interval", "1_000"),
    ];
    for (key, value) in odd {
        let out = omero_cli(&venv, site.root(), &["config", "set", key, value])
            .output()
            .unwrap();
        assert!(out.status.success(), "{key}: {}", stderr(&out));
    }
    let list = site.ok(&["config", "list"]);
    for (key, value) in odd {
        let line = list
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{key} not listed:\n{list}"));
        assert!(
            line.contains(&format!("{value:?}")) && line.contains("(warning: "),
            "{line}"
        );
    }
    let start = site.ok(&["start"]);
    assert!(start.contains("[OK]"), "{start}");
    let status = site.command(&["status"]).output().unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    assert!(stdout(&status).contains("[RUNNING]"), "{}", stdout(&status));
    let warnings = stderr(&status);
    for (key, _) in odd {
        assert!(
            warnings.contains(&format!("WARNING: config: {key} = ")),
            "{warnings}"
        );
    }
    // Editing another key leaves every odd value as OMERO wrote it.
    site.ok(&["config", "set", "omero.web.wsgi_timeout", "61"]);
    for (key, value) in odd {
        let out = omero_cli(&venv, site.root(), &["config", "get", key])
            .output()
            .unwrap();
        assert_eq!(stdout(&out), format!("{value}\n"), "{key}");
    }
    let out = omero_cli(
        &venv,
        site.root(),
        &["config", "get", "omero.web.wsgi_timeout"],
    )
    .output()
    .unwrap();
    assert_eq!(stdout(&out), "61\n");
    site.ok(&["stop"]);
}

#[test]
fn diagnostics_name_each_odd_value_and_say_gthread_leaves_omeros_tools() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("--omerodir")
            .arg(dir.path())
            .args(["--backend", "omeroweb"])
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        run(&["config", "set", "omero.web.wsgi_worker_class", "gthread"])
            .status
            .success()
    );
    // What `omero config set omero.web.wsgi_workers banana` leaves in config.xml.
    let file = dir.path().join("etc/grid/config.xml");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "<property name=\"omero.web.wsgi_worker_class\"",
        "<property name=\"omero.web.wsgi_workers\" value=\"banana\" /><property name=\"omero.web.wsgi_worker_class\"",
    );
    std::fs::write(&file, text).unwrap();
    let out = run(&["diagnostics", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings.contains(&omero_webctl::supervisor::gunicorn::gthread_note().as_str()),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "config error: omero.web.wsgi_workers = \"banana\": not an integer: OMERO.web cannot start with it"
        )),
        "{warnings:?}"
    );
    let values = report["config_values"].as_array().unwrap();
    assert_eq!(values.len(), 1, "{values:?}");
    assert_eq!(values[0]["key"], "omero.web.wsgi_workers");
    assert_eq!(values[0]["omero_fails"], true);
}
