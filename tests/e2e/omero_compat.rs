//! What pins omero-webctl to OMERO.web itself: the real omero-web release in the
//! test venv is asked for its properties, their defaults and which are booleans,
//! and the real Gunicorn for its flags; both are compared with our registry and
//! tables. (Log lines are pinned in `tests/e2e/omeroweb/lifecycle.rs` and
//! `tests/e2e/pool_options/hostile_http.rs` with one regex; the webgateway URLs in
//! `tests/e2e/gateway_compat.rs`.)

use crate::support;

use std::collections::BTreeMap;
use std::process::Command;

use support::{TestSite, omeroweb_venv};

/// Every property OMERO.web reads (settings.py's four tables and the JSON API's),
/// with its default as text and the name of its parser.
const OMERO_PROPERTIES: &str = r#"
import json, omeroweb.settings as s
from omeroweb.api import api_settings as a
out = {}
for table in (s.CUSTOM_SETTINGS_MAPPINGS, s.DEPRECATED_SETTINGS_MAPPINGS,
              s.INTERNAL_SETTINGS_MAPPING, s.DEVELOPMENT_SETTINGS_MAPPINGS,
              a.API_SETTINGS_MAPPING):
    for key, v in table.items():
        out[key] = {"default": None if v[1] is None else str(v[1]),
                    "parser": getattr(v[2], "__name__", str(v[2]))}
print(json.dumps(out))
"#;

fn omero_properties(venv: &std::path::Path) -> BTreeMap<String, serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc/grid")).unwrap();
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", OMERO_PROPERTIES])
        .env("OMERODIR", dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_registry_has_exactly_omero_webs_properties_with_its_defaults_and_booleans() {
    let Some(venv) = omeroweb_venv("omero compat: properties") else {
        return;
    };
    let omero = omero_properties(&venv);
    let site = TestSite::empty();
    let ours: Vec<serde_json::Value> =
        serde_json::from_str(&site.ok(&["config", "list", "--all", "--json"])).unwrap();
    let ours: BTreeMap<String, serde_json::Value> = ours
        .into_iter()
        .map(|p| (p["key"].as_str().unwrap().to_string(), p))
        .collect();

    // The same keys: ours minus our flagged extensions is OMERO's list.
    let not_extension: Vec<&String> = ours
        .iter()
        .filter(|(_, p)| p["extension"] == false)
        .map(|(k, _)| k)
        .collect();
    let theirs: Vec<&String> = omero.keys().collect();
    assert_eq!(not_extension, theirs);
    assert!(omero.len() >= 100, "{} properties", omero.len());

    let root = site.root().display().to_string();
    for (key, theirs) in &omero {
        let mine = &ours[key];
        let their_default = theirs["default"].as_str().map(str::to_string);
        let my_default = mine["default"].as_str().map(str::to_string);
        let same = match (&their_default, &my_default) {
            (None, None) => true,
            // Paths under the site: under OMERODIR in OMERO (var/log, var/static).
            (Some(t), Some(m)) if m.starts_with(&root) => {
                t.ends_with(m.strip_prefix(&root).unwrap())
            }
            // JSON defaults are compared as JSON (OMERO writes some without spaces).
            (Some(t), Some(m)) if mine["type"].as_str().unwrap().starts_with("JSON") => {
                serde_json::from_str::<serde_json::Value>(t).unwrap()
                    == serde_json::from_str::<serde_json::Value>(m).unwrap()
            }
            (Some(t), Some(m)) => t == m,
            // OMERO's unset and our empty text read the same.
            (None, Some(m)) | (Some(m), None) => m.is_empty(),
        };
        assert!(
            same,
            "{key}: OMERO's default {their_default:?}, ours {my_default:?}"
        );
        // Exactly OMERO's booleans are booleans here.
        assert_eq!(
            theirs["parser"] == "parse_boolean",
            mine["type"] == "boolean",
            "{key}: OMERO parses it with {}, ours is {}",
            theirs["parser"],
            mine["type"]
        );
    }
}

#[test]
fn a_typical_config_xml_imports_with_nothing_refused() {
    let Some(venv) = omeroweb_venv("omero compat: import") else {
        return;
    };
    // Written by the real `omero config set`, including the keys the audit found
    // missing and the forms OMERO's docs show.
    let dir = tempfile::tempdir().unwrap();
    let values = [
        (
            "omero.web.open_with",
            r#"[["Image viewer", "webgateway", {"supported_objects": ["image"]}], ["omero_iviewer", "omero_iviewer_index", {"supported_objects": ["images", "dataset", "well"], "script_url": "omero_iviewer/openwith.js", "label": "OMERO.iviewer"}]]"#,
        ),
        ("omero.web.login_view", "weblogin"),
        (
            "omero.web.login_redirect",
            r#"{"redirect": ["webindex"], "viewname": "load_template", "args": ["userdata"], "query_string": {"experimenter": -1}}"#,
        ),
        ("omero.web.login_logo", "https://example.org/logo.png"),
        (
            "omero.web.login_incorrect_credentials_text",
            "Wrong user name or password.",
        ),
        ("omero.web.static_url", "https://static.example.org/omero/"),
        (
            "omero.web.wsgi_args",
            "--preload --forwarded-allow-ips=* --worker-tmp-dir /dev/shm",
        ),
        ("omero.web.debug", "True"),
        ("omero.web.public.enabled", "t"),
        ("omero.web.session_engine", "omeroweb.filesessionstore"),
        ("omero.web.wsgi_workers", "9"),
    ];
    for (key, value) in values {
        let out = support::omero_cli(&venv, dir.path(), &["config", "set", key, value])
            .output()
            .unwrap();
        assert!(out.status.success(), "omero config set {key}: {out:?}");
    }
    let site = TestSite::empty();
    let config_xml = dir.path().join("etc/grid/config.xml");
    let out = site.run(&["config", "import", config_xml.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("refused"), "{stderr}");
    for (key, _) in values {
        assert!(
            stdout.contains(&format!("imported {key}=")),
            "{key}: {stdout}"
        );
    }
    assert_eq!(
        site.ok(&["config", "get", "omero.web.static_url"]),
        "https://static.example.org/omero/\n"
    );
    assert_eq!(site.ok(&["config", "get", "omero.web.debug"]), "true\n");
}

#[test]
fn our_gunicorn_flag_table_is_the_installed_gunicorns() {
    let Some(venv) = omeroweb_venv("omero compat: gunicorn flags") else {
        return;
    };
    let out = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import gunicorn, gunicorn.config as c\n\
             print(gunicorn.__version__)\n\
             for k in c.KNOWN_SETTINGS:\n\
             \x20   for f in (k.cli or []):\n\
             \x20       print(f, k.action not in ('store_true', 'store_false', 'store_const', 'count') and k.nargs != 0)",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(omero_webctl::config::gunicorn_flags::GUNICORN_VERSION)
    );
    let theirs: Vec<(String, bool)> = lines
        .map(|l| {
            let (flag, takes) = l.split_once(' ').unwrap();
            (flag.to_string(), takes == "True")
        })
        .collect();
    let ours: Vec<(String, bool)> = omero_webctl::config::gunicorn_flags::GUNICORN_FLAGS
        .iter()
        .map(|&(f, t)| (f.to_string(), t))
        .collect();
    assert_eq!(ours, theirs);
}
