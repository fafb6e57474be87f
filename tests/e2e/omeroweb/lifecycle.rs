//! An OMERO.web site's life through our commands: start, watch, reload, scale, stop; a start
//! that cannot work; `omero web start`/`stop` used side by side with ours.

use super::*;

fn failed_requests(ab_output: &str) -> u64 {
    support::ab_field(ab_output, "Failed requests:")
        .unwrap_or_else(|| panic!("no ab summary in:\n{ab_output}"))
}

#[test]
fn an_omeroweb_site_is_started_watched_reloaded_scaled_and_stopped_like_the_embedded_pool() {
    let test = "omeroweb end to end";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    if !nginx_available(test) {
        return;
    }
    let site = TestSite::omeroweb(&venv, 2);
    let root = site.root().to_path_buf();
    assert!(root.join("etc/grid/config.xml").is_file());

    // Detected from config.xml alone, before anything runs.
    let status = site.status_json();
    assert_eq!(status["state"], "not running");
    assert_eq!(status["kind"], "omeroweb", "{status}");
    assert!(status["versions"]["omero-web"].is_string(), "{status}");
    assert!(status["versions"]["gunicorn"].is_string(), "{status}");

    let out = site.ok(&["start"]);
    assert!(out.starts_with("Starting OMERO.web... [OK]"), "{out}");
    assert!(out.contains("2 sync workers"), "{out}");

    // OMERO's one-line pid file names the master whose children are the workers.
    let master = django_pid(&root).expect("var/django.pid");
    let status = site.status_json();
    assert_eq!(status["master_pid"], master);
    assert_eq!(status["kind"], "omeroweb");
    assert_eq!(worker_pids(&site), children(master), "{status}");
    assert_eq!(worker_pids(&site).len(), 2);
    let text = site.ok(&["status"]);
    assert!(
        text.contains("[RUNNING]") && text.contains("OMERO.web "),
        "{text}"
    );

    // Through the private nginx: the login page and a collected static file.
    let http = free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);
    let (code, body) = http_get(http, "/webclient/login/").expect("nginx answers");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("OMERO"), "{body}");
    assert!(
        root.join("var/static/webgateway").is_dir(),
        "collectstatic ran"
    );
    let (code, _) = http_get(http, "/static/webgateway/img/ome.ico").unwrap();
    assert_eq!(code, 200, "nginx serves what collectstatic wrote");
    // A user logs in through nginx: up to the OMERO.server connection (none listens).
    assert_login_reaches_the_server_connection(http, "through the private nginx");

    // Traffic moves the counts, per worker and in total.
    let before = requests(&site);
    for _ in 0..20 {
        assert_eq!(http_get(site.port, "/webclient/login/").unwrap().0, 200);
    }
    assert!(
        wait_until(LONG, || requests(&site) >= before + 20),
        "20 requests counted: {}",
        site.status_json()
    );
    let status = site.status_json();
    let per_worker: u64 = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(per_worker, status["totals"]["requests"].as_u64().unwrap());
    let status = site.status_json();
    // Each worker's last requests come from the access log, with their time; what a
    // Gunicorn worker serves now is not known (null), never a made-up "idle".
    let workers = status["workers"].as_array().unwrap();
    let recent: Vec<&serde_json::Value> = workers
        .iter()
        .flat_map(|w| w["activity"]["recent"].as_array().unwrap())
        .collect();
    // Every entry is a request this test (or start's readiness probe) made: the login
    // page, or the one login POST. Sync workers share one socket, so how the 20 GETs
    // split between workers is up to the kernel; but one worker served at least 10 of
    // them after the POST, so its kept window is GETs only, and each worker keeps the
    // last `RECENT` (8) of what it served.
    let is_login_page = |r: &serde_json::Value| {
        r["method"] == "GET" && r["path"] == "/webclient/login/" && r["status"] == 200
    };
    assert!(
        recent.iter().all(|r| (is_login_page(r)
            || (r["method"] == "POST"
                && r["path"] == "/webclient/login/"
                && r["status"].as_u64() < Some(500)))
            && r["at"].as_u64() > Some(1_700_000_000)),
        "{status}"
    );
    assert!(
        recent.iter().filter(|r| r["method"] == "POST").count() <= 1,
        "one login POST was made: {status}"
    );
    for w in workers {
        let kept = w["activity"]["recent"].as_array().unwrap().len() as u64;
        assert_eq!(kept, w["requests"].as_u64().unwrap().min(8), "{w}");
    }
    assert!(
        workers.iter().any(|w| {
            let kept = w["activity"]["recent"].as_array().unwrap();
            kept.len() == 8 && kept.iter().all(is_login_page)
        }),
        "the busier worker's last 8 requests are the login page: {status}"
    );
    assert!(
        workers.iter().all(|w| w["activity"]["serving"].is_null()),
        "{status}"
    );
    // The real OMERO.web's log has the shape our pool writes (one regex for both).
    assert_eq!(http_get(site.port, "/nonexistent/").unwrap().0, 404);
    let log_file = root.join("var/log/OMEROweb.log");
    let django = support::django_404_line("/nonexistent/");
    assert!(
        wait_until(LONG, || std::fs::read_to_string(&log_file)
            .is_ok_and(|t| t.lines().any(|l| django.is_match(l)))),
        "{}",
        std::fs::read_to_string(&log_file).unwrap_or_default()
    );
    let omero_line = support::omero_log_line();
    let text = std::fs::read_to_string(&log_file).unwrap();
    let first = text.lines().next().unwrap();
    assert!(omero_line.is_match(first), "{first:?}");
    for line in text.lines().filter(|l| l.contains("django.request")) {
        assert!(omero_line.is_match(line), "{line:?}");
    }

    // A rolling reload under load: new PIDs, nothing failed.
    let old = worker_pids(&site);
    let load = ab(format!("http://127.0.0.1:{http}/webclient/login/"), 1500);
    std::thread::sleep(Duration::from_millis(500));
    let out = site.ok(&["reload"]);
    assert!(out.contains("Reloading OMERO.web... [OK]"), "{out}");
    let report = load.join().unwrap();
    assert_eq!(failed_requests(&report), 0, "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    let new = worker_pids(&site);
    assert_eq!(new.len(), 2);
    assert!(new.iter().all(|p| !old.contains(p)), "{old:?} → {new:?}");
    // Behind the private nginx a new generation replaced the old one (issue 21).
    let replaced = master;
    let master = django_pid(&root).expect("var/django.pid names the new master");
    assert_ne!(master, replaced, "{out}");
    assert!(!support::alive(replaced), "the old generation was stopped");
    assert_eq!(new, children(master), "new master, new workers");

    // A config the application cannot load: the reload is refused, the site serves on.
    // (Every worker has booted: they all served the load above. A worker still booting
    // when the config turns bad fails to boot, and Gunicorn then halts the whole site.)
    let before = worker_pids(&site);
    site.ok(&["config", "set", "omero.web.apps", "[\"no_such_app\"]"]);
    let out = site.run(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("[FAILED]"));
    assert!(stderr(&out).contains("reload refused"), "{}", stderr(&out));
    assert!(stderr(&out).contains("no_such_app"), "{}", stderr(&out));
    assert_eq!(
        worker_pids(&site),
        before,
        "the old workers keep serving; Gunicorn's log:\n{}",
        std::fs::read_to_string(root.join("var/log/gunicorn.log")).unwrap_or_default()
    );
    assert_eq!(http_get(http, "/webclient/login/").unwrap().0, 200);
    site.ok(&["config", "unset", "omero.web.apps"]);

    // Scale up and down, and say that the next reload returns to the saved count.
    let out = site.ok(&["scale", "+1"]);
    assert!(out.contains("2 → 3 workers"), "{out}");
    assert!(out.contains("omero.web.wsgi_workers = 2"), "{out}");
    assert_eq!(worker_pids(&site).len(), 3);
    assert_eq!(worker_pids(&site), children(master));
    site.ok(&["scale", "-1"]);
    assert_eq!(worker_pids(&site).len(), 2);

    // kill -9 of a worker: reported and replaced.
    let victim = worker_pids(&site)[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_until(LONG, || {
            let pids = worker_pids(&site);
            pids.len() == 2 && !pids.contains(&victim)
        }),
        "worker {victim} replaced: {}",
        site.status_json()
    );
    assert!(
        wait_until(LONG, || site.status_json()["warnings"]
            .to_string()
            .contains(&format!("worker {victim} was killed by SIGKILL"))),
        "the kill is reported: {}",
        site.status_json()
    );
    assert_eq!(site.status_json()["restarts"], 1);

    // kill-worker asks Gunicorn to stop one; it is replaced.
    let victim = worker_pids(&site)[1];
    let out = site.ok(&["kill-worker", &victim.to_string()]);
    assert!(out.contains("[OK]"), "{out}");
    assert!(wait_until(LONG, || {
        let pids = worker_pids(&site);
        pids.len() == 2 && !pids.contains(&victim)
    }));
    let out = site.run(&["kill-worker", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a worker of this OMERO.web"),
        "{}",
        stderr(&out)
    );

    // logrotate's way: rename the access log, reopen; counting goes on, nothing twice.
    let access = root.join("var/log/gunicorn.access.log");
    let counted = requests(&site);
    std::fs::rename(&access, root.join("var/log/gunicorn.access.log.1")).unwrap();
    site.ok(&["reopen-logs"]);
    assert!(
        wait_until(LONG, || access.exists()),
        "Gunicorn reopened its access log"
    );
    for _ in 0..5 {
        assert_eq!(http_get(site.port, "/webclient/login/").unwrap().0, 200);
    }
    assert!(
        wait_until(LONG, || requests(&site) == counted + 5),
        "{counted} + 5 after rotation: {}",
        site.status_json()
    );
    // Deleted under Gunicorn: said until the logs are reopened.
    std::fs::remove_file(&access).unwrap();
    assert!(
        status_of(&site)["warnings"]
            .to_string()
            .contains("was deleted while Gunicorn still writes it"),
        "{}",
        site.status_json()
    );
    site.ok(&["reopen-logs"]);
    assert!(wait_until(LONG, || access.exists()));
    assert!(wait_until(LONG, || !status_of(&site)["warnings"]
        .to_string()
        .contains("was deleted")));

    // Without the private nginx in front, a reload is Gunicorn's HUP, and says so.
    site.ok(&["nginx", "stop"]);
    // A Gunicorn flag a HUP cannot apply is named, not silently dropped.
    // (Any Gunicorn flag works on an OMERO.web site, not only those our pool honours.)
    site.ok(&[
        "config",
        "set",
        "omero.web.wsgi_args",
        "--log-level debug --worker-tmp-dir /dev/shm",
    ]);
    let out = site.ok(&["reload"]);
    assert!(
        out.contains("restart to apply: --log-level debug (new), --worker-tmp-dir /dev/shm (new)"),
        "{out}"
    );
    assert!(out.contains("by Gunicorn's HUP (no private nginx"), "{out}");
    assert_eq!(django_pid(&root), Some(master), "a HUP keeps the master");
    // ... and stays pending (what Gunicorn really runs) until a restart.
    let pending = status_of(&site)["pending"].clone();
    assert_eq!(pending[0]["key"], "omero.web.wsgi_args", "{pending}");
    assert_eq!(pending[0]["applies_with"], "restart", "{pending}");

    // Stop waits, and leaves no process and no pid file.
    let out = site.ok(&["stop"]);
    assert!(out.contains("[OK]"), "{out}");
    assert!(!support::alive(master));
    assert!(
        support::processes_mentioning(&root.to_string_lossy())
            .iter()
            .all(|p| !std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .unwrap_or_default()
                .contains("gunicorn")),
        "no Gunicorn process of the site is left"
    );
    assert!(!root.join("var/django.pid").exists());
    let out = site.run(&["status"]);
    assert_eq!(out.status.code(), Some(3));

    // A new master counts its own requests only, not the 1,500+ in the access log.
    site.ok(&["config", "unset", "omero.web.wsgi_args"]);
    site.ok(&["start"]);
    assert!(requests(&site) < 10, "{}", site.status_json());
    site.ok(&["stop"]);
}

#[test]
fn an_omeroweb_start_that_cannot_work_says_why_and_leaves_nothing_behind() {
    let test = "omeroweb start failures";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 1);
    let root = site.root().to_path_buf();

    // No Python there.
    site.ok(&["config", "set", "omero.web.python", "/nonexistent/venv"]);
    let out = site.run(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("[FAILED]"));
    assert!(
        stderr(&out).contains("omero.web.python = /nonexistent/venv does not exist"),
        "{}",
        stderr(&out)
    );
    site.ok(&["config", "set", "omero.web.python", &venv.to_string_lossy()]);

    // The port is taken.
    let taken = std::net::TcpListener::bind(("127.0.0.1", site.port)).unwrap();
    let out = site.run(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("Connection in use: 127.0.0.1:{}", site.port)),
        "{}",
        stderr(&out)
    );
    drop(taken);

    // The application cannot be imported: Gunicorn's own reason, no process left.
    site.ok(&["config", "set", "omero.web.apps", "[\"no_such_app\"]"]);
    let out = site.run(&["start"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no_such_app") || err.contains("failed to boot"),
        "{err}"
    );
    assert!(
        wait_until(LONG, || support::processes_mentioning(
            &root.to_string_lossy()
        )
        .is_empty()),
        "nothing of the site runs after [FAILED]"
    );
    assert!(!root.join("var/django.pid").exists());
}

#[test]
fn omero_web_start_and_stop_and_omero_webctl_work_side_by_side() {
    let test = "omeroweb beside omero web";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 2);
    let root = site.root().to_path_buf();
    let omero = |args: &[&str]| {
        let out = support::omero_cli(&venv, &root, args).output().unwrap();
        assert!(
            out.status.success(),
            "omero {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };

    // OMERO's own `omero web start`: no control socket, no access log of ours.
    let out = omero(&["web", "start"]);
    assert!(out.contains("[OK]"), "{out}");
    let master = django_pid(&root).expect("omero web start wrote var/django.pid");
    assert!(wait_until(LONG, || children(master).len() == 2));
    let status = site.status_json();
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["master_pid"], master);
    assert_eq!(worker_pids(&site), children(master));
    let warnings = status["warnings"].to_string();
    assert!(
        warnings.contains("not started by omero-webctl"),
        "{warnings}"
    );
    assert!(warnings.contains("no access log"), "{warnings}");
    assert!(warnings.contains("scaling uses signals"), "{warnings}");
    // diagnostics (so the panel's warnings) says the same of it.
    let report = site.ok(&["diagnostics", "--json"]);
    assert!(report.contains("not started by omero-webctl"), "{report}");

    // We scale it with signals (one at a time: TTINs sent together coalesce) and stop
    // it, leaving nothing.
    let out = site.ok(&["scale", "+2"]);
    assert!(out.contains("2 → 4 workers"), "{out}");
    assert_eq!(worker_pids(&site).len(), 4);
    assert_eq!(worker_pids(&site), children(master));
    let out = site.ok(&["stop"]);
    assert!(out.contains("[OK]"), "{out}");
    assert!(!support::alive(master));
    assert!(!root.join("var/django.pid").exists());

    // And the other way round: what we start, `omero web stop` stops.
    site.ok(&["start"]);
    let ours = django_pid(&root).unwrap();
    let out = omero(&["web", "stop"]);
    assert!(out.contains("[OK]"), "{out}");
    assert!(wait_until(LONG, || !support::alive(ours)));
    assert!(
        wait_until(LONG, || children(ours).is_empty()),
        "its workers leave with it"
    );
    assert_eq!(site.run(&["status"]).status.code(), Some(3));
}
