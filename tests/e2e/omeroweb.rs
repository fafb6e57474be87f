//! A real OMERO.web (omero-web under Gunicorn, from the venv `scripts/omeroweb-venv`
//! builds) managed by the real binary, through the real nginx: the same commands as
//! the embedded pool, checked against what /proc, the pid file and HTTP say.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{
    TestSite, django_pid, free_port, http_get, nginx_available, omeroweb_venv, stderr, stdout,
    wait_until,
};

const LONG: Duration = Duration::from_secs(60);

/// `status --json`, failing loudly (with what the CLI said) if it printed no JSON.
fn status_of(site: &TestSite) -> serde_json::Value {
    let out = site.run(&["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json printed no JSON ({e}; exit {}):\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        )
    })
}

fn worker_pids(site: &TestSite) -> Vec<u32> {
    let status = status_of(site);
    let mut pids: Vec<u32> = status["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .map(|w| w["pid"].as_u64().unwrap() as u32)
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// Children of `pid` as /proc shows them: the workers Gunicorn really runs.
fn children(pid: u32) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                let rest = &stat[stat.rfind(')').unwrap() + 2..];
                rest.split_whitespace().nth(1) == Some(&pid.to_string())
            })
        })
        .collect();
    out.sort_unstable();
    out
}

fn requests(site: &TestSite) -> u64 {
    site.status_json()["totals"]["requests"]
        .as_u64()
        .unwrap_or(0)
}

/// Runs `ab` against `url` on a thread; returns its output when joined.
fn ab(url: String, requests: u32) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let out = Command::new("ab")
            .args(["-q", "-n", &requests.to_string(), "-c", "8", &url])
            .output()
            .expect("ab (apache2-utils) is installed");
        stdout(&out)
    })
}

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
fn the_panel_shows_an_omeroweb_site_as_it_shows_the_embedded_pool() {
    let test = "omeroweb panel";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 2);
    let nginx_port = site.pin_nginx_port();
    let command = format!("{} --omerodir {}", support::BIN, site.root().display());
    let Some(tmux) = support::tmux::Tmux::start(&command, 100, 30) else {
        return;
    };
    // The header names what serves the site, with its versions.
    let versions = site.status_json()["versions"].clone();
    let title = format!(
        "OMERO.web {} · Gunicorn {}",
        versions["omero-web"].as_str().unwrap(),
        versions["gunicorn"].as_str().unwrap()
    );
    tmux.wait_for(LONG, "the stopped dashboard of an OMERO.web site", |s| {
        s.contains("STOPPED") && s.contains(&title)
    });

    // One key starts Gunicorn; the panel shows the PIDs /proc knows as its workers.
    tmux.keys(&["s"]);
    assert!(wait_until(LONG, || worker_pids(&site).len() == 2));
    let master = django_pid(site.root()).unwrap();
    let pids = children(master);
    assert_eq!(pids, worker_pids(&site));
    tmux.wait_for(LONG, "the Gunicorn worker PIDs", |s| {
        pids.iter().all(|p| s.contains(&p.to_string())) && s.contains("RUNNING")
    });
    // Start is done (its own readiness request answered) once the panel says so.
    tmux.wait_for(LONG, "the start report", |s| {
        s.contains("Started OMERO.web")
    });
    if nginx_available(test) {
        // s started the private nginx too: the URL shown serves OMERO.web's login page.
        let url = format!("http://127.0.0.1:{nginx_port}/");
        tmux.wait_for(LONG, "the URL", |s| s.contains(&url));
        assert_eq!(http_get(nginx_port, "/webclient/login/").unwrap().0, 200);
    }

    // Traffic appears as a 2xx count equal to what was sent (on top of start's own
    // readiness request).
    let before = requests(&site);
    for _ in 0..7 {
        assert_eq!(http_get(site.port, "/webclient/login/").unwrap().0, 200);
    }
    let total = before + 7;
    tmux.wait_for(LONG, "the 2xx count", |s| {
        s.contains(&format!("2xx {total} "))
    });

    // The Log tab cycles through OMEROweb.log and Gunicorn's own logs.
    tmux.keys(&["4"]);
    tmux.wait_for(LONG, "OMEROweb.log", |s| s.contains("OMEROweb.log"));
    tmux.keys(&["s"]);
    tmux.wait_for(LONG, "Gunicorn's error log", |s| {
        s.contains("Gunicorn error log") && s.contains("Booting worker with pid")
    });
    tmux.keys(&["s"]);
    tmux.wait_for(LONG, "Gunicorn's access log", |s| {
        s.contains("Gunicorn access log") && s.contains("GET /webclient/login/")
    });

    // x stops it (after confirming); the panel and /proc agree.
    tmux.keys(&["1", "x"]);
    tmux.wait_for(LONG, "the confirmation", |s| s.contains("Stop"));
    tmux.keys(&["y"]);
    // The pool's own state line, which says STOPPED only once the whole stop job
    // (pool, then nginx) is done; "nginx STOPPED" shows a moment before.
    tmux.wait_for(LONG, "the stopped pool", |s| s.contains("State   STOPPED"));
    assert!(wait_until(LONG, || !support::alive(master)));
    tmux.keys(&["q"]);
    tmux.wait_for(LONG, "the shell after the panel", |s| {
        s.contains("PANEL-EXITED 0")
    });
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

#[test]
fn a_master_killed_with_sigkill_is_recognised_and_what_it_left_is_ended() {
    let test = "omeroweb master kill -9";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 2);
    let root = site.root().to_path_buf();
    site.ok(&["start"]);
    let master = django_pid(&root).unwrap();
    let workers = children(master);
    let signal =
        |sig| nix::sys::signal::kill(nix::unistd::Pid::from_raw(master as i32), sig).unwrap();

    // A stopped master is named as such, without waiting on its socket.
    signal(nix::sys::signal::Signal::SIGSTOP);
    // The stop takes effect when the master next runs: wait for it, as a sysadmin
    // running `status` after `kill -STOP` would see it.
    let stopped = || {
        std::fs::read_to_string(format!("/proc/{master}/stat"))
            .ok()
            .and_then(|s| Some(s.rsplit_once(") ")?.1.starts_with('T')))
            .unwrap_or(false)
    };
    assert!(wait_until(LONG, stopped), "the master stops");
    let json = status_of(&site);
    signal(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(json["state"], "degraded", "{json}");
    assert!(
        json["warnings"]
            .to_string()
            .contains("is stopped (SIGSTOP)"),
        "{json}"
    );
    assert_eq!(status_of(&site)["state"], "running");

    // The walk's case: the master dies under load.
    let mut load = KillOnDrop(Some(
        Command::new("ab")
            .args(["-q", "-c", "8", "-t", "300", "-n", "100000000"])
            .arg(format!("http://127.0.0.1:{}/webclient/login/", site.port))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("ab (apache2-utils) is installed"),
    ));
    std::thread::sleep(Duration::from_secs(1));
    signal(nix::sys::signal::Signal::SIGKILL);
    assert!(wait_until(LONG, || !support::alive(master)));
    // Its workers serve on (Gunicorn's notice their master is gone only after a while):
    // status says so instead of a plain "not started".
    let out = site.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["stale_pid"], master, "{json}");
    let mut orphans: Vec<u32> = json["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    orphans.sort_unstable();
    assert_eq!(orphans, workers, "{json}");
    assert_eq!(json["state"], "master gone", "{json}");
    // Under load they serve on for good (a sync worker looks for its master only when
    // no request waits): every face says so, and what stop and start do about them.
    let out = site.run(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).contains("[MASTER GONE] 2 orphaned worker(s) still serving"),
        "{}",
        stdout(&out)
    );
    let pids = format!("(PIDs {}, {})", workers[0], workers[1]);
    assert!(
        stderr(&out).contains(&pids)
            && stderr(&out).contains("stop ends them, start ends them and starts a new master"),
        "{}",
        stderr(&out)
    );
    let nginx = nginx_available(test);
    if nginx {
        site.ok(&["nginx", "start", "--http", &free_port().to_string()]);
    }
    let report = site.ok(&["diagnostics"]);
    assert!(
        report.contains("MASTER GONE · 2 orphaned worker(s) still serving")
            && report.contains(&pids),
        "{report}"
    );
    assert!(!report.contains("users get 502"), "{report}");
    let command = format!("{} --omerodir {}", support::BIN, root.display());
    if let Some(tmux) = support::tmux::Tmux::start(&command, 160, 40) {
        tmux.wait_for(LONG, "the orphans on the panel", |s| {
            s.contains("MASTER GONE")
                && s.contains(&format!("2 orphaned workers {pids} still serve"))
                && s.contains("s ends them and starts a new master")
        });
        assert!(
            !tmux.screen().contains("users get 502"),
            "{}",
            tmux.screen()
        );
        tmux.keys(&["q"]);
    }
    assert!(
        workers.iter().all(|&w| support::alive(w)),
        "the orphans served the load all along"
    );
    let mut ab = load.0.take().unwrap();
    let _ = ab.kill();
    let report = String::from_utf8_lossy(&ab.wait_with_output().unwrap().stdout).into_owned();
    assert!(!report.contains("Non-2xx"), "{report}");
    // start ends them and takes the port back, rather than blaming another program.
    let out = site.ok(&["start"]);
    assert!(out.contains("[OK]"), "{out}");
    assert!(workers.iter().all(|&w| !support::alive(w)));
    let master = django_pid(&root).unwrap();
    assert_eq!(worker_pids(&site), children(master));
    site.ok(&["stop"]);
}

/// OMERO's config.xml broken while OMERO.web runs (what OMERO runs, we run: read
/// leniently). Status shows what runs, read from the master (its argv and venv) where
/// the config cannot say; reload and restart, which start workers from the config,
/// are refused before anything is touched; nginx and the pool stop.
#[test]
fn a_config_xml_broken_while_omeroweb_runs_costs_neither_status_nor_stop() {
    let test = "omeroweb broken config.xml";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 2);
    let root = site.root().to_path_buf();
    site.ok(&["start"]);
    let master = django_pid(&root).unwrap();
    let workers = children(master);
    assert_eq!(workers.len(), 2);
    let healthy = site.ok(&["status"]);
    let nginx = nginx_available(test);
    if nginx {
        site.ok(&["nginx", "start", "--http", &free_port().to_string()]);
    }
    let config = root.join("etc/grid/config.xml");
    let mut broken = std::fs::read_to_string(&config).unwrap();
    broken.push_str("<broken\n");
    std::fs::write(&config, &broken).unwrap();
    let unusable = |out: &std::process::Output| {
        assert!(
            stderr(out).contains("WARNING: the config cannot be used: ")
                && stderr(out).contains("not a valid OMERO config.xml"),
            "{}",
            stderr(out)
        );
    };

    let out = site.run(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    unusable(&out);
    let lines: Vec<&str> = healthy.lines().collect();
    let now = stdout(&out);
    assert!(now.starts_with(lines[0]), "{now}");
    assert!(now.contains(lines[1]), "the versions as before: {now}");
    assert!(
        now.contains(&format!(
            "2 sync workers (target 2) on 127.0.0.1:{}",
            site.port
        )),
        "{now}"
    );
    let json = status_of(&site);
    assert_eq!(json["bind"], format!("127.0.0.1:{}", site.port), "{json}");
    assert_eq!(json["worker_class"], "sync", "{json}");
    assert!(
        json["config_problem"]
            .as_str()
            .is_some_and(|p| p.contains("config.xml")),
        "{json}"
    );
    for (command, words) in [("reload", "Reloading"), ("restart", "Restarting")] {
        let out = site.run(&[command]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{words} OMERO.web... [FAILED]\n"));
        assert!(
            stderr(&out).contains("nothing was stopped or changed"),
            "{}",
            stderr(&out)
        );
        assert_eq!(django_pid(&root), Some(master));
        assert_eq!(children(master), workers);
    }
    if nginx {
        let out = site.run(&["nginx", "status"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stdout(&out).contains("[RUNNING]"), "{}", stdout(&out));
        unusable(&out);
        let out = site.run(&["nginx", "stop"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), "Stopping nginx... [OK]\n");
        unusable(&out);
    }
    let out = site.run(&["stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("Stopping OMERO.web... [OK]"),
        "{}",
        stdout(&out)
    );
    unusable(&out);
    assert!(wait_until(LONG, || {
        !support::alive(master) && workers.iter().all(|&w| !support::alive(w))
    }));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), broken);
}

/// OMERO's `var/django.pid` overwritten with garbage, then all of `var/` moved away,
/// under a running Gunicorn: its master is found among the site's Gunicorn processes
/// (the one whose children are its workers), so status shows it running, not as an
/// orphan of a dead master, and stop ends it gracefully.
#[test]
fn a_garbage_django_pid_or_a_removed_var_hides_no_running_gunicorn() {
    let test = "omeroweb garbage pid file";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 2);
    let root = site.root().to_path_buf();
    site.ok(&["start"]);
    let master = django_pid(&root).unwrap();
    let workers = children(master);
    let running = |site: &TestSite| {
        let json = status_of(site);
        assert_eq!(json["state"], "running", "{json}");
        assert_eq!(json["master_pid"], master, "{json}");
    };
    std::fs::write(root.join("var/django.pid"), "garbage\n").unwrap();
    running(&site);
    let moved = tempfile::tempdir().unwrap();
    std::fs::rename(root.join("var"), moved.path().join("var")).unwrap();
    running(&site);
    let out = site.run(&["stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("OMERO.web workers (PID {master}) stopped.")),
        "{}",
        stdout(&out)
    );
    assert!(wait_until(LONG, || {
        !support::alive(master) && workers.iter().all(|&w| !support::alive(w))
    }));
}

/// A child process (a load generator) ended when the test ends, failed or not.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a user other than root can reach `path` (every directory on the way
/// searchable by others).
fn reachable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .skip(1)
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn chown_tree(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn uid_of(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn as_root_the_sites_python_runs_as_the_sites_owner_never_as_root() {
    let test = "omeroweb as root";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: needs root");
        return;
    }
    const NOBODY: u32 = 65534;
    // A site another user owns: Gunicorn and Django run as that user.
    if reachable_by_others(&venv.join("bin/python")) {
        let site = TestSite::omeroweb(&venv, 1);
        // nobody's home does not exist; omero-py needs a temp dir it can lock.
        let tmp = site.root().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        // A link planted where root writes its state: root must not write through it.
        let precious = site.root().join("precious");
        std::fs::write(&precious, "keep").unwrap();
        std::fs::create_dir_all(site.root().join("var")).unwrap();
        std::os::unix::fs::symlink(
            &precious,
            site.root().join("var/.omero-webctl-gunicorn.json"),
        )
        .unwrap();
        chown_tree(site.root(), NOBODY);
        // As root, a directory outside the site is not created and handed over.
        let outside = format!("/tmp/omero-webctl-test-outside-{}", site.port);
        site.ok(&["config", "set", "omero.web.logdir", &outside]);
        let out = site.run(&["start"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("creates directories only inside the site"),
            "{}",
            stderr(&out)
        );
        assert!(!Path::new(&outside).exists());
        site.ok(&["config", "unset", "omero.web.logdir"]);
        chown_tree(site.root(), NOBODY);
        let out = site
            .command(&["start"])
            .env("OMERO_TMPDIR", &tmp)
            .env("SECRET_TOKEN", "hunter2")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let master = django_pid(site.root()).unwrap();
        assert_eq!(uid_of(master), NOBODY);
        assert!(children(master).iter().all(|&w| uid_of(w) == NOBODY));
        // Nothing of root's environment or groups crossed over.
        let environ = std::fs::read(format!("/proc/{master}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(!environ.contains("hunter2"), "{environ}");
        assert!(
            environ.contains("OMERO_TMPDIR="),
            "OMERO's own variables do cross"
        );
        let groups = std::fs::read_to_string(format!("/proc/{master}/status")).unwrap();
        let groups = groups.lines().find(|l| l.starts_with("Groups:")).unwrap();
        assert!(!groups.split_whitespace().any(|g| g == "0"), "{groups}");
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
        site.ok(&["stop"]);
    } else if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{test}: the venv {} is not reachable by other users",
            venv.display()
        );
    } else {
        eprintln!(
            "{test}: part skipped, {} is not reachable by other users",
            venv.display()
        );
    }

    // A root-owned site whose interpreter another user owns: refused, nothing run.
    let site = TestSite::omeroweb(&venv, 1);
    let foreign = site.root().join("foreign-venv");
    std::fs::create_dir_all(foreign.join("bin")).unwrap();
    std::fs::create_dir_all(foreign.join("lib/python3.11")).unwrap();
    std::fs::copy(venv.join("pyvenv.cfg"), foreign.join("pyvenv.cfg")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3.11", foreign.join("bin/python")).unwrap();
    std::os::unix::fs::symlink(
        venv.join("lib/python3.11/site-packages"),
        foreign.join("lib/python3.11/site-packages"),
    )
    .unwrap();
    chown_tree(&foreign, NOBODY);
    site.ok(&[
        "config",
        "set",
        "omero.web.python",
        &foreign.to_string_lossy(),
    ]);
    let out = site.run(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not run another user's Python as root"),
        "{}",
        stderr(&out)
    );
    assert!(
        !site.root().join("var/static").exists(),
        "collectstatic did not run"
    );
}

/// A process's environment (`/proc/PID/environ`) and arguments (`cmdline`).
fn environ_and_argv(pid: u32) -> (std::collections::BTreeMap<String, String>, Vec<String>) {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ)
        .split('\0')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv = String::from_utf8_lossy(&argv)
        .split('\0')
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    (environ, argv)
}

/// Login answers OMERO.web gives without an OMERO.server: the login page again, saying
/// so (never a server error).
fn assert_login_reaches_the_server_connection(port: u16, who: &str) {
    let (code, body) = support::omeroweb_login(port, "root", "omero");
    assert!(code < 500, "{who}: the login POST answered {code}:\n{body}");
    assert!(
        body.contains("not responding"),
        "{who}: OMERO's 'server is not responding' answer expected ({code}):\n{body}"
    );
}

#[test]
fn our_gunicorn_runs_with_omero_web_starts_environment_and_argv_plus_only_our_flags_and_logins_work()
 {
    let test = "omeroweb environment as omero web start";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 1);
    let root = site.root().to_path_buf();
    // A config OMERO alone could have written: none of our extensions.
    site.ok(&["config", "unset", "omero.web.wsgi_graceful_timeout"]);
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Both started from the same, known environment (a caller's variable must pass).
    let controlled = |cmd: &mut Command| {
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .env("OMERODIR", &root)
            .env("OMEROWEBCTL_TEST_ROUTES", "1")
            .env("CALLERS_OWN", "kept");
    };
    let read_master = |what: &str| {
        assert!(
            wait_until(LONG, || django_pid(&root)
                .is_some_and(|m| children(m).len() == 1)),
            "{what}: a master with one worker"
        );
        let master = django_pid(&root).unwrap();
        (master, environ_and_argv(master))
    };

    let mut cmd = support::omero_cli(&venv, &root, &["web", "start"]);
    controlled(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (theirs, (their_env, their_argv)) = read_master("omero web start");
    assert!(
        wait_until(LONG, || http_get(site.port, "/webclient/login/")
            .is_some_and(|(c, _)| c == 200)),
        "omero web start's site serves"
    );
    assert_login_reaches_the_server_connection(site.port, "omero web start");
    let mut cmd = support::omero_cli(&venv, &root, &["web", "stop"]);
    controlled(&mut cmd);
    assert!(cmd.output().unwrap().status.success());
    assert!(wait_until(LONG, || !support::alive(theirs)
        && children(theirs).is_empty()
        && std::net::TcpListener::bind(("127.0.0.1", site.port))
            .is_ok()));

    let mut cmd = site.command(&["start"]);
    controlled(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (_, (our_env, our_argv)) = read_master("omero-webctl start");

    // The environment: the same, variable for variable (no ICE_CONFIG).
    assert_eq!(
        their_env.get("CALLERS_OWN").map(String::as_str),
        Some("kept")
    );
    assert_eq!(
        our_env, their_env,
        "environment of our master vs omero web start's"
    );
    // The command line: OMERO's, plus our documented flags, each with its value.
    const OURS: [&str; 4] = [
        "--control-socket",
        "--error-logfile",
        "--access-logfile",
        "--access-logformat",
    ];
    let mut without_ours = Vec::new();
    let mut added = Vec::new();
    let mut args = our_argv.iter();
    while let Some(arg) = args.next() {
        if OURS.contains(&arg.as_str()) {
            added.push(arg.as_str());
            args.next().expect("a value after our flag");
        } else {
            without_ours.push(arg.clone());
        }
    }
    assert_eq!(added, OURS, "{our_argv:?}");
    assert_eq!(
        without_ours, their_argv,
        "argv of our master vs omero web start's"
    );

    // And the login that answered 500 under our old environment.
    assert_login_reaches_the_server_connection(site.port, "omero-webctl start");
    site.ok(&["stop"]);
}

#[test]
fn a_worker_class_the_venv_lacks_is_refused_and_gthread_is_accepted_with_the_way_back() {
    let test = "omeroweb worker classes";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 1);
    let has_gevent = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .any(|d| d.path().join("site-packages/gevent").is_dir());
    if has_gevent {
        eprintln!("{test}: part skipped, {} has gevent", venv.display());
    } else {
        let out = site.run(&["config", "set", "omero.web.wsgi_worker_class", "gevent"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("needs the gevent module"), "{err}");
        assert!(err.contains("No module named 'gevent'"), "{err}");
        // Nothing was saved: OMERO's own tooling still works on the site.
        assert_eq!(
            site.ok(&["config", "get", "omero.web.wsgi_worker_class"])
                .trim(),
            "sync"
        );
    }

    let out = site.run(&["config", "set", "omero.web.wsgi_worker_class", "gthread"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("OMERO's own `omero web start` refuses it")
            && err.contains("config set omero.web.wsgi_worker_class sync"),
        "{err}"
    );
    let report = site.ok(&["diagnostics"]);
    assert!(
        report.contains("OMERO's own `omero web start` refuses it"),
        "{report}"
    );
    // And OMERO's start does refuse it, as said.
    let out = support::omero_cli(&venv, site.root(), &["web", "start"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        format!("{}{}", stdout(&out), stderr(&out))
            .contains("Invalid omero.web.wsgi_worker_class gthread"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn a_config_that_cannot_load_is_flagged_before_a_worker_needs_it_and_a_halt_reads_halted_with_its_reason()
 {
    let test = "omeroweb halt";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 1);
    let root = site.root().to_path_buf();
    site.ok(&["start"]);
    let master = django_pid(&root).unwrap();
    let command = format!("{} --omerodir {}", support::BIN, root.display());
    let Some(tmux) = support::tmux::Tmux::start(&command, 160, 40) else {
        return;
    };
    tmux.wait_for(LONG, "the running dashboard", |s| s.contains("RUNNING"));

    // Saved, not applied, and it does not load: said now, before any worker needs it.
    site.ok(&["config", "set", "omero.web.apps", "[\"no_such_app\"]"]);
    let report = site.ok(&["diagnostics"]);
    assert!(
        report.contains("OMERO.web does not load with the saved config")
            && report.contains("No module named 'no_such_app'"),
        "{report}"
    );
    tmux.wait_for(LONG, "the panel's warning about the saved config", |s| {
        s.contains("does not load with the saved config")
    });

    // A worker dies; the one Gunicorn boots instead loads the saved config, fails, and
    // Gunicorn halts the whole site.
    let worker = children(master)[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_until(LONG, || !support::alive(master)),
        "Gunicorn halted"
    );

    let out = site.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["state"], "halted", "{json}");
    assert_eq!(json["halt"]["reason"], "Worker failed to boot.", "{json}");
    assert!(
        json["halt"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("No module named 'no_such_app'")),
        "{json}"
    );
    assert!(
        json["halt"]["at"].as_str().is_some_and(|t| t.len() >= 19),
        "{json}"
    );
    assert_eq!(json["pending"][0]["key"], "omero.web.apps", "{json}");
    let out = site.run(&["status"]);
    let text = stdout(&out);
    assert!(
        text.contains("[HALTED] halted at") && text.contains("Worker failed to boot."),
        "{text}"
    );
    assert!(text.contains("Saved, not applied"), "{text}");
    // In OMERO's words: Gunicorn removed its pid file, so `omero web status` sees
    // nothing; ours says so too, and why, on stderr.
    let compat = site.run(&["--omero-compat", "status"]);
    assert_eq!(compat.status.code(), Some(0));
    assert_eq!(stdout(&compat), "OMERO.web status... ");
    let err = stderr(&compat);
    assert!(
        err.starts_with("[NOT STARTED]\nWARNING: halted at") && err.contains("no_such_app"),
        "{err}"
    );
    let report = site.ok(&["diagnostics"]);
    assert!(
        report.contains("HALTED (halted at") && report.contains("no_such_app"),
        "{report}"
    );
    tmux.wait_for(
        LONG,
        "the halted panel with its reason and the pending change",
        |s| {
            s.contains("HALTED")
                && s.contains("The pool halted by itself: Worker failed to boot")
                && s.contains("No module named 'no_such_app'")
                && s.contains("saved, not applied when it halted")
        },
    );

    // Fixed and started again: running, the halt is history.
    site.ok(&["config", "unset", "omero.web.apps"]);
    site.ok(&["start"]);
    assert_eq!(site.status_json()["state"], "running");
    tmux.keys(&["q"]);
    site.ok(&["stop"]);
}

#[test]
fn the_panel_refuses_a_worker_class_the_venv_lacks_and_keeps_the_file() {
    let test = "omeroweb panel worker class";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let has_gevent = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .any(|d| d.path().join("site-packages/gevent").is_dir());
    if has_gevent {
        eprintln!("skipping {test}: {} has gevent", venv.display());
        return;
    }
    let site = TestSite::omeroweb(&venv, 1);
    let before = std::fs::read_to_string(site.root().join("etc/grid/config.xml")).unwrap();
    let command = format!("{} --omerodir {}", support::BIN, site.root().display());
    let Some(tmux) = support::tmux::Tmux::start(&command, 160, 30) else {
        return;
    };
    tmux.wait_for(LONG, "the stopped dashboard", |s| s.contains("STOPPED"));
    tmux.keys(&["2", "/"]);
    tmux.text("wsgi_worker_class");
    tmux.keys(&["Enter", "Enter", "BSpace", "BSpace", "BSpace", "BSpace"]);
    tmux.text("gevent");
    tmux.keys(&["Enter"]);
    tmux.wait_for(LONG, "the refusal with its reason", |s| {
        s.contains("Not saved: omero.web.wsgi_worker_class = gevent needs the gevent module")
    });
    assert_eq!(
        std::fs::read_to_string(site.root().join("etc/grid/config.xml")).unwrap(),
        before,
        "nothing was written"
    );
    tmux.keys(&["Escape", "q"]);
}
