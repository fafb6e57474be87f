//! The pool's workers and master across crashes, restarts, reloads, a replaced binary and
//! workers killed on request.

use super::*;

#[test]
fn a_crash_loop_shows_degraded_and_the_pool_recovers() {
    let site = TestSite::new(1);
    site.ok(&["start"]);
    for _ in 0..3 {
        let mut pid = None;
        assert!(wait_until(LONG, || {
            pid = site.ready_pids().first().copied();
            pid.is_some()
        }));
        kill(pid.unwrap(), nix::sys::signal::Signal::SIGKILL);
        assert!(wait_until(LONG, || !site
            .ready_pids()
            .contains(&pid.unwrap())));
    }
    let status = site.status_json();
    assert_eq!(status["state"], "degraded", "{status}");
    assert!(
        status["warnings"][0]
            .as_str()
            .unwrap()
            .contains("workers keep crashing")
    );
    assert!(site.log().contains("(back-off)"));
    // The pool keeps replacing workers and serving.
    assert!(wait_until(LONG, || site.ready_pids().len() == 1));
    assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
}

#[test]
fn restart_replaces_the_master_without_racing_for_the_port() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let old = site.master_pid().unwrap();
    let out = site.ok(&["restart"]);
    assert!(
        out.starts_with("Stopping OMERO.web... [OK]") && out.contains("Starting OMERO.web... [OK]"),
        "{out}"
    );
    assert!(!alive(old));
    assert_ne!(site.master_pid(), Some(old));
    assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
}

#[test]
fn keep_alive_clients_see_no_failure_across_a_rolling_reload() {
    let site = TestSite::new(2);
    site.append_config("\"omero.web.wsgi_worker_class\" = \"gevent\"\n");
    site.ok(&["start"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (port, stop) = (site.port, stop.clone());
            std::thread::spawn(move || keep_alive_client(port, stop))
        })
        .collect();
    assert!(wait_until(
        LONG,
        || site.status_json()["totals"]["requests"].as_u64() > Some(200)
    ));
    site.ok(&["reload"]);
    assert!(wait_until(LONG, || site.status_json()["generation"] == 2
        && site.ready_pids().len() == 2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut closes, mut failures) = (0, 0, 0);
    for c in clients {
        let (o, c, f) = c.join().unwrap();
        ok += o;
        closes += c;
        failures += f;
    }
    assert_eq!(
        failures, 0,
        "{failures} failed requests across the reload ({ok} ok)"
    );
    // Every client was moved off an old worker by a `Connection: close`.
    assert!(
        closes >= 4,
        "only {closes} connections were closed by the retiring workers"
    );
    assert!(ok > 200);
}

#[test]
fn workers_still_spawn_after_the_binary_was_replaced_on_disk() {
    let site = TestSite::new(1);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("omero-webctl");
    std::fs::copy(support::BIN, &copy).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(&copy)
            .arg("--omerodir")
            .arg(site.root())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["start"]).status.success());
    // An upgrade replaces the file under the running master.
    std::fs::remove_file(&copy).unwrap();
    site.ok(&["scale", "2"]);
    assert!(
        wait_until(LONG, || site.ready_pids().len() == 2),
        "{}",
        site.log()
    );
    assert!(!site.log().contains("cannot spawn a worker"));
}

#[test]
fn a_reload_during_a_stop_is_refused_and_one_during_a_reload_runs_after_it() {
    let site = TestSite::new(2);
    site.append_config("\"omero.web.wsgi_worker_class\" = \"gevent\"\n");
    site.ok(&["start"]);
    // Two reloads asked for at once: the second runs after the first (generation 3).
    let a = site.command(&["reload"]).spawn().unwrap();
    let b = site.command(&["reload"]).spawn().unwrap();
    assert!(a.wait_with_output().unwrap().status.success());
    assert!(b.wait_with_output().unwrap().status.success());
    assert!(
        wait_until(LONG, || site.status_json()["generation"] == 3),
        "{}",
        site.status_json()
    );

    // A HUP while stopping does not start a new generation.
    let port = site.port;
    let stream = std::thread::spawn(move || http_get(port, "/__webctl/test/stream/3000/"));
    assert!(wait_until(
        LONG,
        || site.status_json()["totals"]["in_flight"].as_u64() == Some(1)
    ));
    let master = site.master_pid().unwrap();
    kill(master, nix::sys::signal::Signal::SIGTERM);
    assert!(wait_until(LONG, || site
        .log()
        .contains("Handling signal: term")));
    kill(master, nix::sys::signal::Signal::SIGHUP);
    assert!(
        wait_until(LONG, || !alive(master)),
        "the master did not stop"
    );
    assert!(
        stream
            .join()
            .unwrap()
            .is_some_and(|r| r.1.contains("chunk 9"))
    );
    assert!(
        !site.log().contains("starting generation 4"),
        "{}",
        site.log()
    );
}

#[test]
fn workers_killed_on_request_are_replaced_without_counting_as_a_crash_loop() {
    let site = TestSite::new(1);
    site.ok(&["start"]);
    for _ in 0..3 {
        let pid = site.ready_pids()[0];
        let reply = control(&site, &format!("{{\"cmd\":\"kill_worker\",\"pid\":{pid}}}"));
        assert!(reply.contains("\"ok\":true"), "{reply}");
        assert!(wait_until(LONG, || {
            let pids = site.ready_pids();
            pids.len() == 1 && pids[0] != pid
        }));
    }
    let status = site.status_json();
    assert_eq!(status["state"], "running", "{status}");
    assert!(
        status["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| !w.as_str().unwrap().contains("crashing"))
    );
    let reply = control(&site, "{\"cmd\":\"kill_worker\",\"pid\":1}");
    assert!(
        reply.contains("\"ok\":false") && reply.contains("no worker with pid 1"),
        "{reply}"
    );
}
