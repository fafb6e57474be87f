//! The pool's operational extras: USR1 log reopening and rotation, foreground mode,
//! `diagnostics`, and secrets kept out of every output.

use super::*;

#[test]
fn usr1_reopens_the_log_and_rotation_follows_the_properties() {
    let site = TestSite::new(1);
    site.append_config("\"omero.web.log.max_bytes\" = 4000\n\"omero.web.log.backup_count\" = 2\n");
    site.ok(&["start"]);
    // 404s are logged as warnings; enough of them rotate the log twice over.
    for _ in 0..60 {
        assert_eq!(site.get("/missing/page").map(|r| r.0), Some(404));
    }
    let log_dir = site.root().join("var/log");
    assert!(wait_until(LONG, || log_dir.join("OMEROweb.log.2").exists()));
    assert!(!log_dir.join("OMEROweb.log.3").exists());
    for name in ["OMEROweb.log", "OMEROweb.log.1", "OMEROweb.log.2"] {
        let size = std::fs::metadata(log_dir.join(name)).unwrap().len();
        assert!(size <= 4000, "{name} is {size} bytes");
    }
    // logrotate-style: move the file away, then USR1.
    std::fs::rename(site.log_file(), log_dir.join("moved.log")).unwrap();
    kill(
        site.master_pid().unwrap(),
        nix::sys::signal::Signal::SIGUSR1,
    );
    assert!(wait_until(LONG, || site
        .log()
        .contains("Log files reopened")));
}

#[test]
fn foreground_mode_serves_logs_to_stderr_and_stops_on_term() {
    use std::io::{BufRead, BufReader};
    let site = TestSite::new(1);
    let mut child = site
        .command(&["start", "--foreground"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "Starting OMERO.web... [OK]\n");
    assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
    assert_eq!(site.master_pid(), Some(child.id()));
    kill(child.id(), nix::sys::signal::Signal::SIGTERM);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("Listening at: http://127.0.0.1:")
            && stderr.contains("Shutting down: Master"),
        "{stderr}"
    );
}

#[test]
fn diagnostics_collects_state_log_counts_and_problems() {
    let site = TestSite::new(1);
    let out = site.ok(&["diagnostics"]);
    assert!(out.contains("Pool      : NOT STARTED"), "{out}");
    assert!(
        out.contains("nginx     : private instance NOT STARTED"),
        "{out}"
    );

    site.append_config("\"omero.web.force_script_name\" = \"/old\"\n");
    site.ok(&["start"]);
    assert_eq!(site.get("/missing").map(|r| r.0), Some(404));
    assert_eq!(site.get("/missing/?q='x'").map(|r| r.0), Some(404));
    // Django's log_response form, as OMERO.web's full_request format writes it.
    let django = support::django_404_line("/missing");
    assert!(
        wait_until(LONG, || site.log().lines().any(|l| django.is_match(l))),
        "{}",
        site.log()
    );
    // Written by the master as it hears of it: waited for, as the line above.
    assert!(
        wait_until(LONG, || site
            .log()
            .contains(r#"HTTP 404 <WSGIRequest: GET "/missing/?q='x'">"#)),
        "{}",
        site.log()
    );
    // Every line has OMERO's shape, funcName():lineno included.
    let omero_line = support::omero_log_line();
    for line in site.log().lines() {
        assert!(omero_line.is_match(line), "not OMERO's shape: {line:?}");
    }
    let out = site.ok(&["diagnostics"]);
    let master = site.master_pid().unwrap();
    assert!(out.starts_with(&"=".repeat(80)), "{out}");
    assert!(
        out.contains(&format!(
            "Pool      : RUNNING (PID {master}) · 1 sync workers on 127.0.0.1:{}",
            site.port
        )),
        "{out}"
    );
    assert!(out.contains("errors=0 warnings=2"), "{out}");
    assert!(
        out.contains("omero.web.force_script_name is deprecated; it applies as omero.web.prefix"),
        "{out}"
    );
    assert!(
        out.contains("downloads are allowed and workers are sync"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&site.ok(&["diagnostics", "--json"])).unwrap();
    assert_eq!(json["pool"]["state"], "running");
    assert_eq!(json["nginx"]["state"], "not_running");
    assert_eq!(json["log"]["warnings"], 2);
}

#[test]
fn secrets_appear_in_no_status_diagnostics_listing_or_log() {
    let site = TestSite::new(1);
    for (key, value) in [
        ("omero.web.secret_key", "SECRET-KEY-VALUE"),
        ("omero.mail.password", "MAIL-PASSWORD-VALUE"),
        ("omero.web.public.password", "PUBLIC-PASSWORD-VALUE"),
    ] {
        site.ok(&["config", "set", key, value]);
    }
    site.ok(&["start"]);
    site.ok(&["config", "set", "omero.web.wsgi_timeout", "61"]);
    site.ok(&["reload"]);
    let outputs = [
        site.ok(&["status", "--json"]),
        site.ok(&["diagnostics"]),
        site.ok(&["diagnostics", "--json"]),
        site.ok(&["config", "get"]),
        site.ok(&["config", "list"]),
        site.ok(&["config", "list", "--json"]),
        site.ok(&["config", "export"]),
        site.log(),
    ];
    for text in &outputs {
        assert!(!text.contains("-VALUE"), "a secret is shown:\n{text}");
    }
    // They are stored, and shown when asked for.
    assert!(
        site.ok(&["config", "export", "--show-password"])
            .contains("SECRET-KEY-VALUE")
    );
}
