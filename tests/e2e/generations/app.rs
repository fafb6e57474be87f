//! `app add` (omero-iviewer) under load: the switch with no gap, and a broken app refused
//! before the switch.

use super::*;

/// The whole answer (status line and headers too) to a GET through port `http`.
fn raw_get(http: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A wheel of app `module` (distribution `module` with `-`, version 0.1) holding
/// `files` (paths inside the package → text), in `dir`: pip finds it with --find-links.
fn app_wheel(dir: &std::path::Path, module: &str, files: &[(&str, &str)]) {
    let made = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            r#"
import json, sys, zipfile
module, out = sys.argv[1], sys.argv[2]
files = {f"{module}/{path}": text for path, text in json.loads(sys.argv[3])}
info = f"{module}-0.1.dist-info"
files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n"
files[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: omero-webctl-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
with zipfile.ZipFile(f"{out}/{module}-0.1-py3-none-any.whl", "w") as wheel:
    for name, text in files.items():
        wheel.writestr(name, text)
"#,
        )
        .arg(module)
        .arg(dir)
        .arg(serde_json::to_string(files).unwrap())
        .status()
        .unwrap();
    assert!(made.success());
}

fn venv_generations(site: &TestSite) -> Vec<String> {
    std::fs::read_dir(site.root().join("var/venvs"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("apps-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn app_add_omero_iviewer_switches_with_no_gap_and_a_broken_app_is_refused_before_the_switch() {
    let test = "app add";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    if !nginx_available(test) {
        return;
    }
    let (site, http) = site_behind_nginx(&venv);
    let config_file = site.root().join("etc/grid/config.xml");
    let settle = Duration::from_secs(2);

    // An app that does not import: refused before any switch, in one line, under load.
    let wheels = site.root().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    app_wheel(
        &wheels,
        "omero_webctl_test_broken",
        &[(
            "__init__.py",
            "raise RuntimeError('omero_webctl_test_broken is broken on purpose')\n",
        )],
    );
    // And one that imports, but whose page answers 500.
    app_wheel(
        &wheels,
        "omero_webctl_test_500",
        &[
            ("__init__.py", ""),
            (
                "urls.py",
                "from django.urls import re_path\n\ndef fail(request):\n    raise RuntimeError('fails on purpose')\n\nurlpatterns = [re_path(r'^$', fail)]\n",
            ),
        ],
    );
    let before = std::fs::read(&config_file).unwrap();
    let master = django_pid(site.root());
    let (refused, out) = ab_around(http, settle, || {
        site.run(&[
            "app",
            "add",
            "omero-webctl-test-broken==0.1",
            "--find-links",
            &wheels.display().to_string(),
        ])
    });
    let why = support::stderr(&out);
    eprintln!("a broken app: {refused:?}\n{}{why}", stdout(&out));
    assert!(!out.status.success(), "{why}");
    assert_eq!(why.trim().lines().count(), 1, "{why}");
    assert!(
        why.starts_with("app add omero-webctl-test-broken refused: ")
            && why.contains("RuntimeError: omero_webctl_test_broken is broken on purpose")
            && why.contains("the running generation keeps serving"),
        "{why}"
    );
    assert_eq!(std::fs::read(&config_file).unwrap(), before);
    assert_eq!(django_pid(site.root()), master);
    assert!(venv_generations(&site).is_empty(), "its venv is not kept");
    assert_eq!(refused.failed, 0, "{refused:?}");
    assert_eq!(refused.non_2xx, 0, "{refused:?}");
    assert_eq!(http_get(http, "/iviewer/").unwrap().0, 404, "no app yet");

    // An app whose URL answers 500 on the new generation: refused before the switch.
    let out = site.run(&[
        "app",
        "add",
        "omero-webctl-test-500==0.1",
        "--find-links",
        &wheels.display().to_string(),
        "--url",
        "/omero_webctl_test_500/",
    ]);
    let why = support::stderr(&out);
    eprintln!("an app answering 500:\n{}{why}", stdout(&out));
    assert!(!out.status.success(), "{why}");
    assert_eq!(why.trim().lines().count(), 1, "{why}");
    assert!(
        why.starts_with("app add omero-webctl-test-500 refused: GET /omero_webctl_test_500/ on the new generation answered 500")
            && why.contains(&format!("the running one (PID {}) keeps serving", master.unwrap()))
            && why.contains("the config file is as it was"),
        "{why}"
    );
    assert_eq!(std::fs::read(&config_file).unwrap(), before);
    assert_eq!(django_pid(site.root()), master);
    assert!(venv_generations(&site).is_empty(), "its venv is not kept");
    assert!(
        support::wait_until(Duration::from_secs(30), || {
            support::processes_mentioning("generations/interim").is_empty()
        }),
        "its generation was ended"
    );

    // omero-iviewer from PyPI, in a new venv generation prepared first (pip runs
    // outside the switch), then switched in under load.
    let prepared = site.ok(&["app", "add", "omero-iviewer", "--prepare"]);
    eprintln!("app add omero-iviewer --prepare:\n{prepared}");
    assert!(prepared.contains("Prepared "), "{prepared}");
    assert!(prepared.contains("nothing switched"), "{prepared}");
    assert_eq!(
        django_pid(site.root()),
        master,
        "a prepare switches nothing"
    );
    assert_eq!(std::fs::read(&config_file).unwrap(), before);
    assert_eq!(http_get(http, "/iviewer/").unwrap().0, 404, "not yet");
    let generation = venv_generations(&site);
    assert_eq!(generation.len(), 1, "{generation:?}");
    let new_venv = site.root().join("var/venvs").join(&generation[0]);
    let (baseline, ()) = ab_around(http, settle, || std::thread::sleep(BASELINE));
    let (added, said) = ab_around(http, settle, || {
        site.ok(&["app", "add", "omero-iviewer", "--health-window", "5"])
    });
    eprintln!("baseline: {baseline:?}\napp add omero-iviewer: {added:?}\n{said}");
    assert!(said.contains("Added omero-iviewer "), "{said}");
    assert!(
        said.contains(&format!(
            "the venv prepared for it: {} (not built again)",
            new_venv.display()
        )),
        "{said}"
    );
    assert!(said.contains("session store: keep"), "{said}");
    assert_eq!(added.failed, 0, "{added:?}");
    assert_eq!(added.non_2xx, 0, "{added:?}");
    // With pip done beforehand, the window holds the preflight import, collectstatic
    // and the switch: held to the same bound as reload and restart.
    assert!(added.longest_ms <= bound_ms(&baseline, &added), "{added:?}");
    assert_eq!(venv_generations(&site), generation, "no second venv built");
    assert!(master_cmdline(&site).contains(&new_venv.display().to_string()));
    assert!(
        !venv
            .join("lib/python3.11/site-packages/omero_iviewer")
            .exists(),
        "nothing was installed into the live venv"
    );
    // The app's URL answers as OMERO.web does without an OMERO.server: the login.
    let answer = raw_get(http, "/iviewer/");
    assert!(answer.starts_with("HTTP/1.1 302"), "{answer}");
    assert!(
        answer.contains("/webclient/login/?url=%2Fiviewer%2F"),
        "{answer}"
    );
    // Its JS bundle, served by nginx from the new generation's static directory.
    let statics = site.root().join(format!("var/static-{}", generation[0]));
    let bundle = statics.join("omero_iviewer/main.js");
    assert!(bundle.is_file(), "{}", bundle.display());
    let nginx_conf = std::fs::read_to_string(site.root().join("var/nginx/nginx.conf")).unwrap();
    assert!(
        nginx_conf.contains(&statics.display().to_string()),
        "{nginx_conf}"
    );
    let (code, body) = http_get(http, "/static/omero_iviewer/main.js").unwrap();
    assert_eq!(code, 200);
    assert_eq!(body.len() as u64, std::fs::metadata(&bundle).unwrap().len());
    let listed: serde_json::Value =
        serde_json::from_str(&site.ok(&["app", "list", "--json"])).unwrap();
    assert_eq!(
        listed,
        serde_json::json!([{"name": "omero-iviewer", "module": "omero_iviewer",
            "version": listed[0]["version"].clone(), "configured": true}])
    );
    assert!(listed[0]["version"].as_str().is_some_and(|v| !v.is_empty()));
    let history = site.ok(&["history"]);
    assert!(history.contains("app add omero-iviewer"), "{history}");
    assert!(
        history.contains("omero.web.apps [] → [\"omero_iviewer\"]"),
        "{history}"
    );

    // Remove reverses it: a newer generation without the app, its settings gone.
    let removed = site.ok(&["app", "remove", "omero-iviewer", "--health-window", "2"]);
    eprintln!("{removed}");
    assert_eq!(http_get(http, "/iviewer/").unwrap().0, 404);
    assert!(
        site.ok(&["app", "list"]).starts_with("No OMERO.web apps"),
        "{removed}"
    );
    let config = std::fs::read_to_string(&config_file).unwrap();
    assert!(!config.contains("omero_iviewer"), "{config}");

    // And rollback returns to the generation with the app.
    site.ok(&["rollback"]);
    assert!(raw_get(http, "/iviewer/").starts_with("HTTP/1.1 302"));
    assert!(master_cmdline(&site).contains(&new_venv.display().to_string()));
}
