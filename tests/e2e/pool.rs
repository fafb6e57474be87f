//! The worker pool with real processes, signals and sockets, through the real binary.

use crate::support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{TestSite, alive, http_get, processes_mentioning, wait_until};

const LONG: Duration = Duration::from_secs(30);

fn kill(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

#[test]
fn start_serve_status_stop_leaves_nothing_behind() {
    let site = TestSite::new(2);
    let out = site.ok(&["start"]);
    assert!(out.starts_with("Starting OMERO.web... [OK]\n"), "{out}");
    let status = site.status_json();
    assert_eq!(status["state"], "running");
    assert_eq!(status["target_workers"], 2);
    assert_eq!(status["bind"], format!("127.0.0.1:{}", site.port));
    let pids = site.ready_pids();
    assert_eq!(pids.len(), 2, "{status}");
    let master = site.master_pid().unwrap();
    let pid_file = std::fs::read_to_string(site.root().join("var/omeroweb.pid")).unwrap();
    assert!(pid_file.starts_with(&format!("{master}\n")));
    // And OMERO's own, as `omero web start` leaves it: the master's PID on one line.
    let django_pid = site.root().join("var/django.pid");
    assert_eq!(
        std::fs::read_to_string(&django_pid).unwrap(),
        format!("{master}\n")
    );

    for _ in 0..20 {
        assert_eq!(site.get("/__webctl/health"), Some((200, "ok\n".into())));
    }
    assert_eq!(site.get("/nope").map(|r| r.0), Some(404));
    assert!(wait_until(
        LONG,
        || site.status_json()["totals"]["requests"].as_u64() >= Some(21)
    ));
    // Latency percentiles come from histogram buckets: bounds, never exact figures.
    let status = site.status_json();
    let served: Vec<&serde_json::Value> = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["requests"].as_u64() > Some(0))
        .collect();
    assert!(!served.is_empty(), "{status}");
    for w in served {
        for p in ["latency_p50", "latency_p95", "latency_p99"] {
            assert!(
                w[p]["le_ms"].is_u64() || w[p]["gt_ms"].is_u64(),
                "{p} is not a bound: {w}"
            );
        }
        assert!(w.get("latency_p95_ms").is_none(), "{w}");
    }
    let text = site.ok(&["status"]);
    assert!(
        text.starts_with(&format!("OMERO.web status... [RUNNING] (PID {master})")),
        "{text}"
    );

    // Starting twice is refused.
    let again = site.run(&["start"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains(&format!("already started (PID {master})"))
    );

    let out = site.ok(&["stop"]);
    assert_eq!(
        out,
        format!("Stopping OMERO.web... [OK]\nOMERO.web workers (PID {master}) stopped.\n")
    );
    // stop waited: nothing is left the moment it returns.
    assert!(!alive(master));
    for pid in &pids {
        assert!(!alive(*pid), "worker {pid} outlived stop");
    }
    assert!(processes_mentioning(&site.root().to_string_lossy()).is_empty());
    assert!(!site.root().join("var/omeroweb.pid").exists());
    assert!(!django_pid.exists());
    let out = site.run(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "OMERO.web status... [NOT STARTED]\n"
    );
    assert_eq!(site.ok(&["stop"]), "Stopping OMERO.web... [NOT STARTED]\n");

    let log = site.log();
    assert!(log.contains("Listening at: http://127.0.0.1:"), "{log}");
    // Static assets were collected for nginx, as OMERO's collectstatic does.
    assert!(
        site.root()
            .join("var/static/webclient/webclient.css")
            .is_file()
    );
    assert!(log.contains("static files copied to"), "{log}");
    assert!(log.contains("Shutting down: Master"));
}

#[test]
fn a_killed_worker_is_replaced_and_requests_keep_being_served() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let before = site.ready_pids();
    let victim = before[0];
    let port = site.port;
    let load = std::thread::spawn(move || {
        let mut ok = 0;
        for _ in 0..300 {
            if http_get(port, "/__webctl/health").map(|r| r.0) == Some(200) {
                ok += 1;
            }
        }
        ok
    });
    kill(victim, nix::sys::signal::Signal::SIGKILL);
    assert!(wait_until(LONG, || {
        let pids = site.ready_pids();
        pids.len() == 2 && !pids.contains(&victim)
    }));
    let ok = load.join().unwrap();
    assert!(
        ok >= 290,
        "only {ok} of 300 requests succeeded around the kill"
    );
    assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
    assert!(site.log().contains(&format!(
        "Worker (pid:{victim}) was sent SIGKILL! Perhaps out of memory?"
    )));
    let status = site.status_json();
    let restarts: u64 = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["restarts"].as_u64().unwrap())
        .sum();
    assert_eq!(restarts, 1, "{status}");
    assert_eq!(status["restarts"], 1, "{status}");
    // A reload makes new slots: nobody restarted in them, the pool's count stays.
    // (Old workers may still be retiring when reload returns: they keep theirs.)
    site.ok(&["reload"]);
    let status = site.status_json();
    let new: Vec<&serde_json::Value> = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["generation"] == status["generation"])
        .collect();
    assert_eq!(new.len(), 2, "{status}");
    assert!(new.iter().all(|w| w["restarts"] == 0), "{status}");
    assert_eq!(status["restarts"], 1, "{status}");
}

#[test]
fn a_stopped_worker_is_killed_after_the_timeout_and_replaced() {
    let site = TestSite::new(1);
    site.append_config("\"omero.web.wsgi_timeout\" = 2\n");
    site.ok(&["start"]);
    let victim = site.ready_pids()[0];
    kill(victim, nix::sys::signal::Signal::SIGSTOP);
    assert!(
        wait_until(LONG, || !alive(victim)),
        "the stopped worker was not killed"
    );
    assert!(wait_until(LONG, || {
        let pids = site.ready_pids();
        pids.len() == 1 && pids[0] != victim
    }));
    assert!(
        site.log()
            .contains(&format!("WORKER TIMEOUT (pid:{victim})")),
        "{}",
        site.log()
    );
    assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
}

#[test]
fn max_requests_recycles_workers() {
    let site = TestSite::new(1);
    site.append_config("\"omero.web.application_server.max_requests\" = 2\n");
    site.ok(&["start"]);
    let first = site.ready_pids()[0];
    let master = site.master_pid().unwrap();
    let open_fds = || {
        std::fs::read_dir(format!("/proc/{master}/fd"))
            .unwrap()
            .count()
    };
    let fds_before = open_fds();
    let mut served = 0;
    for _ in 0..12 {
        if site.get("/__webctl/health").map(|r| r.0) == Some(200) {
            served += 1;
        }
    }
    assert_eq!(served, 12, "requests failed across recycling");
    // Six workers came and went; the master holds no descriptor of a dead one.
    assert!(wait_until(LONG, || site.ready_pids().len() == 1));
    assert!(
        wait_until(LONG, || open_fds() <= fds_before),
        "master leaks descriptors: {fds_before} before, {} after recycling",
        open_fds()
    );
    assert!(wait_until(LONG, || {
        let pids = site.ready_pids();
        pids.len() == 1 && pids[0] != first
    }));
    assert!(
        site.log()
            .contains("Autorestarting worker after current request.")
    );
    // Recycling is planned: no restart is counted, for the pool or the slot.
    let status = site.status_json();
    assert_eq!(status["restarts"], 0, "{status}");
    assert_eq!(status["workers"][0]["restarts"], 0, "{status}");
    assert_eq!(status["totals"]["requests"], 12, "{status}");
}

#[test]
fn scale_up_and_down_by_command_and_signal() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    assert_eq!(
        site.ok(&["scale", "4"]),
        "Scaling OMERO.web... [OK]\nscaling to 4 workers\nThe next reload or restart returns to omero.web.wsgi_workers = 2 (scale --persist saves 4).\n"
    );
    assert!(wait_until(LONG, || site.ready_pids().len() == 4));
    site.ok(&["scale", "-3"]);
    assert!(wait_until(LONG, || site.status_json()["workers"]
        .as_array()
        .map(|w| w.len())
        == Some(1)));
    let master = site.master_pid().unwrap();
    kill(master, nix::sys::signal::Signal::SIGTTIN);
    assert!(wait_until(LONG, || site.ready_pids().len() == 2));
    kill(master, nix::sys::signal::Signal::SIGTTOU);
    assert!(wait_until(LONG, || site.status_json()["workers"]
        .as_array()
        .map(|w| w.len())
        == Some(1)));
    let err = site.run(&["scale", "0"]);
    assert_eq!(err.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&err.stderr).contains("at least 1 worker"));
    let err = site.run(&["scale", "lots"]);
    assert_eq!(err.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&err.stderr).contains("allowed: N, +N or -N"));

    // --persist saves the count, so a reload keeps it.
    let out = site.ok(&["scale", "3", "--persist"]);
    assert!(out.contains("Saved omero.web.wsgi_workers = 3"), "{out}");
    assert!(site.ok(&["config", "get", "omero.web.wsgi_workers"]).trim() == "3");
    site.ok(&["reload"]);
    assert!(wait_until(LONG, || site.ready_pids().len() == 3));
}

#[test]
fn reload_applies_a_new_count_and_class_one_worker_at_a_time() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let old = site.ready_pids();
    site.ok(&["config", "set", "omero.web.wsgi_workers", "3"]);
    site.ok(&["config", "set", "omero.web.wsgi_worker_class", "gevent"]);
    let out = site.ok(&["reload"]);
    assert!(out.starts_with("Reloading OMERO.web... [OK]\n"), "{out}");
    assert!(wait_until(LONG, || {
        let s = site.status_json();
        s["workers"].as_array().map(|w| w.len()) == Some(3) && s["state"] == "running"
    }));
    let status = site.status_json();
    assert_eq!(status["worker_class"], "gevent");
    assert_eq!(status["generation"], 2);
    for pid in site.ready_pids() {
        assert!(!old.contains(&pid), "old worker {pid} survived the reload");
    }
    assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
    assert!(
        site.log()
            .contains("Reload complete: generation 2 with 3 workers")
    );
}

#[test]
fn a_reload_whose_workers_cannot_boot_keeps_the_old_ones() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let old = site.ready_pids();
    let not_a_dir = site.root().join("not-a-directory");
    std::fs::write(&not_a_dir, "x").unwrap();
    site.ok(&[
        "config",
        "set",
        "omero.web.repository",
        not_a_dir.to_str().unwrap(),
    ]);
    let out = site.run(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Reloading OMERO.web... [FAILED]\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Reload aborted") && err.contains("is not a directory"),
        "{err}"
    );
    assert!(wait_until(LONG, || site.status_json()["workers"]
        .as_array()
        .map(|w| w.len())
        == Some(2)));
    let mut now = site.ready_pids();
    now.sort();
    let mut old_sorted = old.clone();
    old_sorted.sort();
    assert_eq!(now, old_sorted);
    assert_eq!(site.status_json()["generation"], 1);
    assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
}

#[test]
fn a_taken_port_fails_the_start_with_the_reason() {
    let site = TestSite::new(1);
    let _taken = std::net::TcpListener::bind(("127.0.0.1", site.port)).unwrap();
    let out = site.run(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Starting OMERO.web... [FAILED]\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("Connection in use: 127.0.0.1:{}", site.port)),
        "{err}"
    );
    assert!(processes_mentioning(&site.root().to_string_lossy()).is_empty());
}

#[test]
fn workers_follow_a_killed_master_and_the_next_start_succeeds() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let master = site.master_pid().unwrap();
    let workers = site.ready_pids();
    kill(master, nix::sys::signal::Signal::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(2), || workers
            .iter()
            .all(|p| !alive(*p))),
        "workers outlived their master by more than 2 s"
    );
    // Its workers can see it gone (their socket closed) a moment before the dying
    // master has closed its last file, the pid file's lock.
    assert!(wait_until(LONG, || !alive(master)));
    // The pid file is still there, but nobody holds its lock.
    assert!(site.root().join("var/omeroweb.pid").exists());
    let out = site.run(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // OMERO's pid file alone (our lock file deleted by hand) is recognised as stale too.
    std::fs::remove_file(site.root().join("var/omeroweb.pid")).unwrap();
    let django_pid = site.root().join("var/django.pid");
    assert_eq!(
        std::fs::read_to_string(&django_pid).unwrap(),
        format!("{master}\n")
    );
    let out = site.run(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("stale pid file of PID {master}")),
        "{out:?}"
    );
    let out = site.ok(&["start"]);
    assert!(out.starts_with("Starting OMERO.web... [OK]"), "{out}");
    assert_ne!(site.master_pid(), Some(master));
    assert_eq!(
        std::fs::read_to_string(&django_pid).unwrap(),
        format!("{}\n", site.master_pid().unwrap())
    );
}

#[test]
fn a_stale_pid_file_naming_a_live_process_is_never_signalled() {
    let site = TestSite::new(1);
    // A pid file that names this very test process, as PID reuse would.
    std::fs::create_dir_all(site.root().join("var")).unwrap();
    std::fs::write(
        site.root().join("var/omeroweb.pid"),
        format!("{}\n1\n", std::process::id()),
    )
    .unwrap();
    let out = site.run(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(site.ok(&["stop"]), "Stopping OMERO.web... [NOT STARTED]\n");
    std::fs::write(
        site.root().join("var/omeroweb.pid"),
        format!("{}\n1\n", std::process::id()),
    )
    .unwrap();
    let out = site.run(&["start"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale pid file"));
    // We are still alive, and the pool serves.
    assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
}

/// A site whose pid file is a link to another site's, held by that site's live master:
/// status and stop refuse the link in one line, and the other master serves on (stop
/// used to take it for this site's master and stop it).
#[test]
fn a_pid_file_linked_to_another_sites_is_refused_and_that_master_never_stopped() {
    let other = TestSite::new(1);
    other.ok(&["start"]);
    let other_master = other.master_pid().unwrap();
    let site = TestSite::new(1);
    std::fs::create_dir_all(site.root().join("var")).unwrap();
    std::os::unix::fs::symlink(
        other.root().join("var/omeroweb.pid"),
        site.root().join("var/omeroweb.pid"),
    )
    .unwrap();
    for command in ["status", "stop"] {
        let out = site.run(&[command]);
        assert_eq!(out.status.code(), Some(1), "{command}: {out:?}");
        assert!(
            support::stderr(&out).contains("var/omeroweb.pid: is a symlink; refused"),
            "{command}: {out:?}"
        );
    }
    assert!(alive(other_master));
    assert_eq!(other.master_pid(), Some(other_master));
    assert_eq!(other.get("/__webctl/health").map(|r| r.0), Some(200));
    other.ok(&["stop"]);
}

/// Reads a streamed response in full: (status, body).
fn slow_stream(port: u16, ms: u64) -> std::thread::JoinHandle<Option<(u16, String)>> {
    std::thread::spawn(move || http_get(port, &format!("/__webctl/test/stream/{ms}/")))
}

fn complete_stream(result: Option<(u16, String)>) {
    let (status, body) = result.expect("the long response failed");
    assert_eq!(status, 200);
    let expected: String = (0..10).map(|i| format!("chunk {i}\n")).collect();
    assert!(body.ends_with(&expected), "truncated body: {body:?}");
}

#[test]
fn a_long_response_survives_reload_scale_down_and_recycling() {
    let site = TestSite::new(2);
    site.append_config("\"omero.web.wsgi_worker_class\" = \"gevent\"\n");
    site.ok(&["start"]);

    // Reload while a response streams.
    let stream = slow_stream(site.port, 6000);
    assert!(wait_until(
        LONG,
        || site.status_json()["totals"]["in_flight"].as_u64() == Some(1)
    ));
    site.ok(&["reload"]);
    complete_stream(stream.join().unwrap());

    // Scale down to one worker while each of two workers streams.
    assert!(wait_until(LONG, || site.ready_pids().len() == 2));
    let streams: Vec<_> = (0..4).map(|_| slow_stream(site.port, 6000)).collect();
    assert!(wait_until(
        LONG,
        || site.status_json()["totals"]["in_flight"].as_u64() == Some(4)
    ));
    site.ok(&["scale", "1"]);
    for s in streams {
        complete_stream(s.join().unwrap());
    }

    // max_requests reached while the response streams. (A reload re-reads the
    // config, so the pool is back at its configured 2 workers: scale is runtime only.)
    site.ok(&[
        "config",
        "set",
        "omero.web.application_server.max_requests",
        "1",
    ]);
    site.ok(&["reload"]);
    assert!(wait_until(LONG, || site.ready_pids().len() == 2));
    let before = site.ready_pids();
    let stream = slow_stream(site.port, 6000);
    complete_stream(stream.join().unwrap());
    assert!(wait_until(LONG, || {
        let pids = site.ready_pids();
        pids.len() == 2 && pids.iter().any(|p| !before.contains(p))
    }));
}

#[test]
fn start_refuses_a_bad_config_before_spawning_anything() {
    let site = TestSite::new(1);
    site.append_config("\"omero.web.application_server\" = \"development\"\n");
    let out = site.run(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("omero.web.application_server=development is not managed by omero-webctl"),
        "{err}"
    );
    assert!(!site.root().join("var/omeroweb.pid").exists());
}

/// The config broken while the pool runs: what runs is read from the pid file and the
/// master, so status, scale, kill-worker and stop work and say the config is broken;
/// only reload, which needs the config, is refused, the pool unchanged.
#[test]
fn a_config_broken_while_the_pool_runs_costs_neither_status_nor_control_nor_stop() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let master = site.master_pid().unwrap();
    let before = site.ready_pids();
    site.append_config("garbage = = [\n");
    let unusable = |out: &std::process::Output| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("WARNING: the config cannot be used: ")
                && err.contains("omero-web.toml:4: not valid TOML"),
            "{err}"
        );
    };

    let out = site.run(&["status"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("OMERO.web status... [RUNNING] (PID {master})")),
        "{out:?}"
    );
    unusable(&out);
    let json = site.status_json();
    assert_eq!(json["state"], "running", "{json}");
    assert!(
        json["config_problem"]
            .as_str()
            .is_some_and(|p| p.contains("not valid TOML")),
        "{json}"
    );

    assert!(site.ok(&["scale", "3"]).contains("[OK]"));
    assert!(wait_until(LONG, || site.ready_pids().len() == 3));
    let victim = before[0];
    assert!(
        site.ok(&["kill-worker", &victim.to_string()])
            .contains("[OK]")
    );
    assert!(wait_until(LONG, || {
        let pids = site.ready_pids();
        pids.len() == 3 && !pids.contains(&victim)
    }));
    // Reload and restart start workers from the config: refused before anything is
    // touched (a restart once stopped the pool, then could not start it).
    for (command, words) in [("reload", "Reloading"), ("restart", "Restarting")] {
        let out = site.run(&[command]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{words} OMERO.web... [FAILED]\n")
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not valid TOML")
                && String::from_utf8_lossy(&out.stderr).contains("nothing was stopped or changed"),
            "{out:?}"
        );
        assert_eq!(site.master_pid(), Some(master));
        assert_eq!(site.ready_pids().len(), 3);
    }

    let workers = site.ready_pids();
    let out = site.run(&["stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("Stopping OMERO.web... [OK]\n"),
        "{out:?}"
    );
    unusable(&out);
    assert!(wait_until(LONG, || {
        !alive(master) && workers.iter().all(|&w| !alive(w))
    }));
    let out = site.run(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    unusable(&out);
}

/// The pid file's text overwritten (by hand, a full disk) under a live master that
/// still holds its lock: the kernel names the holder, which runs this program, so
/// status and stop reach it instead of failing ("locked but does not name a live
/// master") and leaving a pool nothing can stop.
#[test]
fn a_garbage_pid_file_under_a_running_master_costs_neither_status_nor_stop() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let master = site.master_pid().unwrap();
    let workers = site.ready_pids();
    std::fs::write(site.root().join("var/omeroweb.pid"), "garbage\n").unwrap();
    let out = site.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("OMERO.web status... [RUNNING] (PID {master})")),
        "{out:?}"
    );
    let out = site.run(&["stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("(PID {master}) stopped")),
        "{out:?}"
    );
    assert!(wait_until(LONG, || {
        !alive(master) && workers.iter().all(|&w| !alive(w))
    }));
    assert_eq!(site.run(&["status"]).status.code(), Some(3));
    assert!(site.ok(&["start"]).contains("[OK]"), "and it starts again");
}

/// The pid files deleted, then all of `var/` moved away, under a running pool: the
/// master is found by its command line (this program, `--omerodir ROOT master`), so
/// status says it runs (or that it cannot reach it) and stop ends it, where both said
/// "not started" and left the pool serving.
#[test]
fn a_pool_whose_pid_files_or_var_were_removed_under_it_is_still_seen_and_stopped() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let master = site.master_pid().unwrap();
    let workers = site.ready_pids();
    let var = site.root().join("var");
    for pid_file in ["omeroweb.pid", "django.pid"] {
        std::fs::remove_file(var.join(pid_file)).unwrap();
    }
    let out = site.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("OMERO.web status... [RUNNING] (PID {master})")),
        "{out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "WARNING: no pid file names the running master (PID {master})"
        )),
        "{out:?}"
    );
    let moved = tempfile::tempdir().unwrap();
    std::fs::rename(&var, moved.path().join("var")).unwrap();
    let out = site.run(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`stop` still ends it"),
        "{out:?}"
    );
    // start finds the same master and starts no second one beside it.
    let out = site.run(&["start"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("OMERO.web already started (PID {master})")),
        "{out:?}"
    );
    let needle = format!("--omerodir {} master", site.root().display());
    assert_eq!(
        support::processes_mentioning(&needle),
        vec![master],
        "one master for the site"
    );
    assert!(http_get(site.port, "/__webctl/health").is_some_and(|(code, _)| code == 200));
    let out = site.run(&["stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("(PID {master}) stopped")),
        "{out:?}"
    );
    assert!(wait_until(LONG, || {
        !alive(master) && workers.iter().all(|&w| !alive(w))
    }));
    assert_eq!(site.run(&["status"]).status.code(), Some(3));
}

/// A directory in the log's place under a running pool: diagnostics says the log
/// cannot be read and its counts are unknown (it used to report it as an existing
/// 4096-byte log with 0 errors); the pool serves on and stop works.
#[test]
fn an_unreadable_log_is_said_by_diagnostics_and_costs_no_request() {
    let site = TestSite::new(1);
    site.ok(&["start"]);
    std::fs::remove_file(site.log_file()).unwrap();
    std::fs::create_dir(site.log_file()).unwrap();
    let report = site.ok(&["diagnostics"]);
    let log = site.log_file().display().to_string();
    assert!(
        report.contains(&format!("Log file  : {log} (unreadable, 0 bytes"))
            && report.contains(&format!(
                "the log {log} cannot be read (not a regular file): its error and warning counts are unknown"
            )),
        "{report}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&site.ok(&["diagnostics", "--json"])).unwrap();
    assert_eq!(json["log"]["unreadable"], "not a regular file", "{json}");
    assert!(http_get(site.port, "/__webctl/health").is_some_and(|(code, _)| code == 200));
    assert!(site.ok(&["stop"]).contains("[OK]"));
}

#[test]
fn kill_worker_and_reopen_logs_by_command() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let victim = site.ready_pids()[0];
    let out = site.ok(&["kill-worker", &victim.to_string()]);
    assert!(out.contains("[OK]"), "{out}");
    assert!(wait_until(LONG, || {
        let pids = site.ready_pids();
        pids.len() == 2 && !pids.contains(&victim)
    }));
    let out = site.run(&["kill-worker", "1"]);
    assert_eq!(out.status.code(), Some(1));
    // The log moved away by logrotate is recreated when the logs are reopened.
    std::fs::rename(site.log_file(), site.root().join("var/log/OMEROweb.log.1")).unwrap();
    assert!(site.ok(&["reopen-logs"]).contains("[OK]"));
    assert!(wait_until(LONG, || site.log_file().exists()));
}

#[test]
fn totals_count_every_request_across_reloads_and_recycling() {
    let site = TestSite::new(2);
    site.append_config("\"omero.web.wsgi_worker_class\" = \"gevent\"\n\"omero.web.application_server.max_requests\" = 300\n");
    site.ok(&["start"]);
    let port = site.port;
    let load = std::thread::spawn(move || {
        Command::new("ab")
            .args(["-q", "-n", "3000", "-c", "8"])
            .arg(format!("http://127.0.0.1:{port}/__webctl/health"))
            .output()
            .expect("ab (apache2-utils) is installed")
    });
    // Workers are recycled every ~300 requests, and two reloads replace them all.
    site.ok(&["reload"]);
    site.ok(&["reload"]);
    let out = load.join().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("Failed requests:        0"), "{report}");
    assert!(
        wait_until(LONG, || site.status_json()["totals"]["requests"] == 3000),
        "the master's totals equal ab's count: {}",
        site.status_json()
    );
    let status = site.status_json();
    assert_eq!(status["totals"]["status_2xx"], 3000);
    assert!(status["started_at"].as_u64().unwrap() > 1_700_000_000);
}

#[test]
fn a_worker_killed_with_sigkill_under_load_loses_no_counted_request() {
    // The counts live in memory the master shares with each worker, so a SIGKILL
    // loses at most the requests in flight (ab's concurrency), not the half second
    // since the last heartbeat.
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let load = support::ab_health_load(site.port, 20000, 4);
    assert!(wait_until(LONG, || {
        site.status_json()["totals"]["requests"].as_u64() > Some(2000)
    }));
    let victim = site.ready_pids()[0];
    kill(victim, nix::sys::signal::Signal::SIGKILL);
    support::assert_counted(&site, load.join().unwrap(), 4);
    assert_eq!(site.status_json()["restarts"], 1);
}

#[test]
fn status_says_what_each_worker_serves_now_and_has_served() {
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let long = slow_stream(site.port, 3000);
    let serving = |status: &serde_json::Value| -> Option<(String, f64)> {
        let now = &status["workers"][0]["activity"]["serving"][0];
        Some((now["path"].as_str()?.to_string(), now["secs"].as_f64()?))
    };
    assert!(
        wait_until(LONG, || serving(&site.status_json()).is_some_and(
            |(path, secs)| path == "/__webctl/test/stream/3000/" && secs > 0.5
        )),
        "{}",
        site.status_json()
    );
    let text = site.ok(&["status"]);
    assert!(
        text.contains("serving GET /__webctl/test/stream/3000/ for"),
        "{text}"
    );
    complete_stream(long.join().unwrap());
    assert_eq!(site.get("/__webctl/health?probe=1").map(|r| r.0), Some(200));
    assert!(wait_until(LONG, || {
        let activity = &site.status_json()["workers"][0]["activity"];
        activity["serving"] == serde_json::json!([])
            && activity["recent"].as_array().is_some_and(|r| r.len() == 2)
    }));
    let activity = site.status_json()["workers"][0]["activity"].clone();
    assert_eq!(activity["recent"][1]["path"], "/__webctl/health?probe=1");
    assert_eq!(activity["recent"][0]["status"], 200);
    let slowest = &activity["slowest"][0];
    assert_eq!(slowest["path"], "/__webctl/test/stream/3000/", "{activity}");
    assert_eq!(activity["slowest"][1]["path"], "/__webctl/health");
}

#[test]
fn a_saved_change_the_pool_does_not_run_is_pending_until_a_reload() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    assert_eq!(site.status_json()["pending"], serde_json::json!([]));
    site.ok(&["config", "set", "omero.web.wsgi_workers", "3"]);
    let status = site.status_json();
    assert_eq!(
        status["pending"],
        serde_json::json!([{"key": "omero.web.wsgi_workers", "running": "2", "saved": "3", "applies_with": "reload"}]),
        "{status}"
    );
    let text = site.ok(&["status"]);
    assert!(
        text.contains("Saved, not applied (reload applies it): omero.web.wsgi_workers 2 → 3"),
        "{text}"
    );
    assert!(site.ok(&["diagnostics"]).contains("saved, not applied"));
    site.ok(&["reload"]);
    assert_eq!(site.status_json()["pending"], serde_json::json!([]));
    assert!(!site.ok(&["status"]).contains("not applied"));
}

#[test]
fn a_graceful_stop_under_load_completes_every_request_a_worker_accepted() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let site = TestSite::new(2);
    site.append_config(
        "\"omero.web.wsgi_worker_class\" = \"gthread\"\n\"omero.web.wsgi_threads\" = 8\n",
    );
    site.ok(&["start"]);
    let port = site.port;
    // Long responses in flight when the stop comes.
    let streams: Vec<_> = (0..4).map(|_| slow_stream(port, 2000)).collect();
    assert!(wait_until(
        LONG,
        || site.status_json()["totals"]["in_flight"].as_u64() == Some(4)
    ));
    // Quick requests all along, each on a new connection: answered whole, or refused
    // (or reset unanswered) once the pool stops accepting; never cut in the middle.
    let stopped = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stopped = stopped.clone();
            std::thread::spawn(move || {
                let (mut answered, mut unanswered) = (0u32, 0u32);
                while !stopped.load(Ordering::SeqCst) {
                    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                        unanswered += 1;
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    stream
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .unwrap();
                    let _ = stream.write_all(b"GET /__webctl/health HTTP/1.0\r\n\r\n");
                    let mut response = Vec::new();
                    let _ = stream.read_to_end(&mut response);
                    let text = String::from_utf8_lossy(&response);
                    if response.is_empty() {
                        unanswered += 1;
                    } else {
                        assert!(
                            text.starts_with("HTTP/1.0 200") && text.ends_with("ok\n"),
                            "a response cut short: {text:?}"
                        );
                        answered += 1;
                    }
                }
                (answered, unanswered)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200)); // let the clients get going
    site.ok(&["stop"]);
    stopped.store(true, Ordering::SeqCst);
    // Every long response accepted before the stop completed, whole.
    for s in streams {
        complete_stream(s.join().unwrap());
    }
    let answered: u32 = clients.into_iter().map(|c| c.join().unwrap().0).sum();
    assert!(answered > 0, "the quick clients were never served");
    assert!(!site.root().join("var/omeroweb.pid").exists());
}

/// The master's exact worker command line (`--omerodir DIR worker`) is dispatched
/// before clap; run by hand, or with anything else on it, a worker still refuses with
/// a clear error and exit 2, whichever way it was dispatched.
#[test]
fn a_worker_started_by_hand_or_with_other_arguments_is_refused_clearly() {
    let site = TestSite::empty();
    let spec_env = "OMEROWEBCTL_WORKER_SPEC";
    // The master's shape without the master's spec.
    let out = site
        .command(&["worker"])
        .env_remove(spec_env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    assert!(
        support::stderr(&out).contains(&format!(
            "error: this is an internal command of the pool ({spec_env}: "
        )),
        "{}",
        support::stderr(&out)
    );
    // The same worker through clap (the site given after the command): the same words.
    let out = Command::new(support::BIN)
        .arg("worker")
        .arg("--omerodir")
        .arg(site.root())
        .env_remove(spec_env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    assert!(
        support::stderr(&out).contains("error: this is an internal command of the pool"),
        "{}",
        support::stderr(&out)
    );
    // Anything more on the line is clap's usage error, as for every command.
    let out = site
        .command(&["worker", "--bogus"])
        .env(spec_env, "{}")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    assert!(
        support::stderr(&out).contains("unexpected argument '--bogus'"),
        "{}",
        support::stderr(&out)
    );
}

/// Workers run `omero-webctl-worker` of this very build (the worker alone: fewer pages
/// in each worker's RSS), and the log says so. A copy of `omero-webctl` beside a worker
/// program of another build (`echo`, which answers `--build-id` with something else)
/// starts its pool all the same, its workers running the copy itself, and the log says
/// why. Run by hand, the worker program refuses clearly.
#[test]
fn workers_run_the_worker_program_of_this_build_and_never_one_of_another() {
    let worker_program = PathBuf::from(env!("CARGO_BIN_EXE_omero-webctl-worker"));
    let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let workers = site.ready_pids();
    assert_eq!(workers.len(), 2, "{}", site.log());
    for worker in &workers {
        assert_eq!(exe(*worker), worker_program, "worker {worker}");
        // Named for ps and top by its program, not by the descriptor it was run from.
        let comm = std::fs::read_to_string(format!("/proc/{worker}/comm")).unwrap();
        assert_eq!(comm.trim(), "omero-webctl-wo", "worker {worker}");
    }
    let log = site.log();
    assert!(
        log.contains(&format!("Worker program: {}", worker_program.display())),
        "{log}"
    );
    assert_eq!(
        http_get(site.port, "/webclient/login/").map(|(code, _)| code),
        Some(200)
    );
    site.ok(&["stop"]);

    // A copy beside a worker program of another build.
    let release = site.path("release");
    std::fs::create_dir_all(&release).unwrap();
    let copy = release.join("omero-webctl");
    std::fs::copy(support::BIN, &copy).unwrap();
    let stranger = release.join("omero-webctl-worker");
    std::fs::copy("/bin/echo", &stranger).unwrap();
    let out = support::unless_text_busy(|| {
        Command::new(&copy)
            .arg("--omerodir")
            .arg(site.root())
            .arg("start")
            .output()
    })
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        support::stderr(&out),
        site.log()
    );
    let workers = site.ready_pids();
    assert_eq!(workers.len(), 2, "{}", site.log());
    for worker in &workers {
        assert_eq!(exe(*worker), copy, "worker {worker}");
    }
    let log = site.log();
    let warning = format!(
        "Workers run this program, not {}: it is of another build (\"--build-id\"",
        stranger.display()
    );
    assert!(
        log.lines()
            .any(|l| l.contains(" WARNI [") && l.contains(&warning)),
        "{log}"
    );
    assert_eq!(
        http_get(site.port, "/webclient/login/").map(|(code, _)| code),
        Some(200)
    );
    site.ok(&["stop"]);

    // By hand.
    let out = Command::new(&worker_program).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("runs the workers of omero-webctl's pool"),
        "{}",
        support::stderr(&out)
    );
}
