//! What goes wrong under a running OMERO.web: a master killed with SIGKILL, a broken
//! config.xml, a garbage django.pid or a removed var/, a config that cannot load.

use super::*;

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
