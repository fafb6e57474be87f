//! The embedded pool switching to a new binary under load, and a switch stopped part way
//! (a binary that does not come up, a config that cannot be read) ending cleanly.

use super::*;

/// The embedded kind's binary upgrade on the fly (issue 21): a copy of this binary as
/// the "new" one is switched in behind the private nginx under `ab -r -c 8` with no
/// failed request; `rollback` returns to the binary before; a "new binary" that exits
/// at once is refused before any switch, in one line, and the serving master never
/// noticed. `restart` takes the same path.
#[test]
fn the_embedded_pool_switches_to_a_new_binary_with_no_gap_and_refuses_one_that_does_not_come_up() {
    let test = "upgrade --binary";
    if !nginx_available(test) {
        return;
    }
    let (site, http) = started_behind_nginx(TestSite::new(2));
    let settle = Duration::from_secs(2);
    let (baseline, ()) = ab_around(http, settle, || std::thread::sleep(Duration::from_secs(4)));
    eprintln!("embedded baseline: {baseline:?}");

    let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let first = site.master_pid().expect("a master");
    let release = site.root().join("release/omero-webctl-new");
    std::fs::create_dir_all(release.parent().unwrap()).unwrap();
    std::fs::copy(support::BIN, &release).unwrap();
    // With its worker program beside it, as a build or the package puts it.
    let release_worker = release.with_file_name("omero-webctl-worker");
    std::fs::copy(env!("CARGO_BIN_EXE_omero-webctl-worker"), &release_worker).unwrap();
    let (upgrade, said) = ab_around(http, settle, || {
        site.ok(&["upgrade", "--binary", &release.display().to_string()])
    });
    eprintln!("embedded upgrade --binary: {upgrade:?}\n{said}");
    let second = site.master_pid().expect("a master after the upgrade");
    assert_ne!(first, second, "{said}");
    assert!(!support::alive(first), "the old master was stopped");
    let kept = exe(second);
    assert!(
        kept.starts_with(site.root().join("var/generations/binaries")),
        "the new master runs the kept copy: {}",
        kept.display()
    );
    // Its workers run the copy of the worker program kept beside it.
    let kept_worker = kept.with_file_name("omero-webctl-worker");
    for worker in site.ready_pids() {
        assert_eq!(exe(worker), kept_worker, "worker {worker}");
    }
    assert!(
        std::fs::read(&kept).unwrap() == std::fs::read(&release).unwrap(),
        "a copy of the new binary"
    );
    assert!(
        std::fs::read(&kept_worker).unwrap() == std::fs::read(&release_worker).unwrap(),
        "a copy of the new worker program"
    );
    assert_eq!(upgrade.failed, 0, "{upgrade:?}");
    assert_eq!(upgrade.non_2xx, 0, "{upgrade:?}");
    assert!(
        upgrade.longest_ms <= bound_ms(&baseline, &upgrade),
        "{upgrade:?} vs {baseline:?}"
    );
    assert!(
        support::wait_until(Duration::from_secs(30), || {
            support::processes_mentioning("interim-port").is_empty()
        }),
        "the interim master is gone"
    );

    // A "new binary" that exits at once: refused before any switch, one line.
    let broken = site.root().join("release/exits");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'this release is broken' >&2\nexit 3\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (refused, out) = ab_around(http, settle, || {
        site.run(&["upgrade", "--binary", &broken.display().to_string()])
    });
    let why = support::stderr(&out);
    eprintln!("a binary that exits: {refused:?}\n{why}");
    assert!(!out.status.success(), "{why}");
    assert_eq!(why.trim().lines().count(), 1, "{why}");
    assert!(
        why.starts_with("upgrade refused: the new binary did not come up")
            && why.contains(&format!("the running one (PID {second}) keeps serving")),
        "{why}"
    );
    assert_eq!(site.master_pid(), Some(second));
    assert_eq!(exe(second), kept);
    assert_eq!(refused.failed, 0, "{refused:?}");
    assert_eq!(refused.non_2xx, 0, "{refused:?}");

    // A "new binary" that passes readiness on its own bind and answers 500 behind nginx
    // (the real binary with a test-only fault on): the health window sees it and nginx
    // goes straight back to the serving master, which never stopped.
    // (A master is known by its executable's name: the real one keeps this program's.)
    let real = site.root().join("release/real/omero-webctl");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::copy(support::BIN, &real).unwrap();
    let failing = site.root().join("release/fails-behind-nginx");
    std::fs::write(
        &failing,
        format!(
            "#!/bin/sh\nOMEROWEBCTL_TEST_FAIL_BEHIND_PROXY=1 exec '{}' \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (unhealthy, (out, served_5xx)) = ab_around(http, settle, || {
        five_xx_span(http, || {
            site.run(&["upgrade", "--binary", &failing.display().to_string()])
        })
    });
    let why = support::stderr(&out);
    eprintln!("a binary failing behind nginx: {unhealthy:?}\n{why}");
    assert!(!out.status.success(), "{why}");
    assert_eq!(why.trim().lines().count(), 1, "{why}");
    assert!(
        why.contains("rolled back by itself: GET /webclient/login/ through nginx answered 500")
            && why.contains(&format!(
                "nginx switched back to the previous master (PID {second}, which never stopped)"
            )),
        "{why}"
    );
    assert_eq!(site.master_pid(), Some(second));
    assert_eq!(exe(second), kept);
    // History: the master after the rolled-back upgrade is the one before it, and the
    // interim master of the failing binary is named among its generations.
    let change = last_change(&site);
    assert_eq!(change["from_master"], second, "{change}");
    assert_eq!(change["to_master"], second, "{change}");
    let generations = change["generations"].as_array().expect("generations");
    assert!(
        generations.iter().any(|g| g["master"] == second),
        "{change}"
    );
    assert!(
        generations
            .iter()
            .any(|g| g["master"] != second && g["runs"].as_str().unwrap().contains("binaries")),
        "{change}"
    );
    assert!(
        unhealthy.non_2xx > 0,
        "it did fail behind nginx: {unhealthy:?}"
    );
    assert_eq!(unhealthy.failed_connections, 0, "{unhealthy:?}");
    let served_5xx = served_5xx.expect("the prober met the bad binary's 500s");
    eprintln!("5xx through nginx for {:.2} s", served_5xx.as_secs_f64());
    assert!(
        served_5xx <= Duration::from_secs(5),
        "5xx only from the switch to the switch back: for {served_5xx:?}"
    );
    let (after, ()) = ab_around(http, Duration::from_secs(1), || {
        std::thread::sleep(Duration::from_secs(2))
    });
    assert_eq!(after.non_2xx, 0, "{after:?}");
    assert_eq!(after.failed, 0, "{after:?}");

    // Back to the binary before (what the first master ran), no gap.
    let (back, said) = ab_around(http, settle, || site.ok(&["rollback"]));
    eprintln!("embedded rollback: {back:?}\n{said}");
    let third = site.master_pid().expect("a master after the rollback");
    assert_ne!(third, second);
    assert_ne!(exe(third), kept, "the previous binary again");
    assert!(exe(third).starts_with(site.root().join("var/generations/binaries")));
    // With the worker program the first master's workers ran, kept beside it.
    for worker in site.ready_pids() {
        assert_eq!(
            exe(worker),
            exe(third).with_file_name("omero-webctl-worker"),
            "worker {worker}"
        );
    }
    assert_eq!(back.failed, 0, "{back:?}");
    assert_eq!(back.non_2xx, 0, "{back:?}");
    assert!(back.longest_ms <= bound_ms(&baseline, &back), "{back:?}");

    // restart: a fresh master of the same binary, switched in the same way.
    let (restart, said) = ab_around(http, settle, || site.ok(&["restart"]));
    eprintln!("embedded restart: {restart:?}\n{said}");
    let fourth = site.master_pid().expect("a master after the restart");
    assert_ne!(fourth, third, "{said}");
    assert!(said.contains("Switched without a gap"), "{said}");
    assert_eq!(restart.failed, 0, "{restart:?}");
    assert_eq!(restart.non_2xx, 0, "{restart:?}");
    assert!(
        restart.longest_ms <= bound_ms(&baseline, &restart),
        "{restart:?}"
    );

    let history = site.ok(&["history"]);
    eprintln!("{history}");
    for action in ["upgrade", "rollback", "restart"] {
        assert!(history.contains(action), "{history}");
    }
    assert!(
        history.contains("the new binary did not come up"),
        "{history}"
    );

    // A stopped pool behind the running nginx is simply started by restart.
    site.ok(&["stop"]);
    let said = site.ok(&["restart"]);
    assert!(said.contains("Starting OMERO.web... [OK]"), "{said}");
    assert!(site.master_pid().is_some());
}

/// A restart on a config the switch could not read is refused before anything starts
/// (`supervisor::refuse_unusable_config`, shared by the CLI and the panel): the old
/// master serves on, no switch record is left "running", and the history gains no
/// change, since nothing changed. (Before the refusal existed, the switch started,
/// failed on the settings and had to end its record; a refusal is the stronger rule.)
#[test]
fn an_embedded_restart_on_an_unreadable_config_is_refused_before_any_switch_starts() {
    let test = "embedded restart with a broken config";
    if !nginx_available(test) {
        return;
    }
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let http = free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);
    let master = site.master_pid().expect("a master");
    let history_before = site.ok(&["history", "--json"]);
    // What a hand edit can leave: the switch cannot read the settings it would start.
    let config = site.root().join("etc/omero-web.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}\ngarbage = = =\n")).unwrap();
    let out = site.run(&["restart"]);
    assert!(!out.status.success(), "{out:?}");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("not valid TOML"), "{said}");
    assert!(said.contains("nothing was stopped or changed"), "{said}");
    // The old master still serves, through nginx.
    assert_eq!(site.master_pid(), Some(master));
    let (status, _) = http_get(http, "/__webctl/health").expect("nginx answers");
    assert_eq!(status, 200);
    // No switch left a record running.
    if let Ok(text) = std::fs::read_to_string(site.root().join("var/generations/progress.json")) {
        let progress: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            progress["steps"]
                .as_array()
                .is_none_or(|steps| steps.iter().all(|s| s["state"] != "running")),
            "{progress}"
        );
    }
    std::fs::write(&config, good).unwrap();
    assert_eq!(site.ok(&["history", "--json"]), history_before);
}

/// The panel's restart (`R`, then `y`) takes the CLI's path: behind the running private
/// nginx, a new generation is switched in under `ab -r -c 8` with no failed request,
/// and the panel says so; while it runs, the pool's state never reads STOPPING or
/// STOPPED.
#[test]
fn the_panels_restart_switches_a_new_generation_in_with_no_gap() {
    let test = "panel restart";
    if !nginx_available(test) {
        return;
    }
    let (site, http) = started_behind_nginx(TestSite::new(2));
    let first = site.master_pid().expect("a master");
    let panel = format!("{} --omerodir {}", support::BIN, site.root().display());
    let Some(tmux) = support::tmux::Tmux::start(&panel, 160, 45) else {
        return;
    };
    let long = Duration::from_secs(60);
    tmux.wait_for(long, "the running pool and nginx", |s| {
        s.contains("RUNNING") && s.contains(&first.to_string()) && s.contains("nginx   RUNNING")
    });
    let settle = Duration::from_secs(2);
    let (baseline, ()) = ab_around(http, settle, || std::thread::sleep(Duration::from_secs(4)));
    eprintln!("baseline: {baseline:?}");

    tmux.keys(&["R"]);
    tmux.wait_for(long, "the restart question", |s| {
        s.contains("Restart OMERO.web?") && s.contains("the site stays up")
    });
    let (restart, (screens, said)) = ab_around(http, settle, || {
        tmux.keys(&["y"]);
        let screens = std::cell::RefCell::new(Vec::new());
        tmux.wait_for(Duration::from_secs(120), "the switch's answer", |s| {
            screens.borrow_mut().push(s.to_string());
            s.contains("Switched without a gap")
        });
        (screens.into_inner(), tmux.screen())
    });
    eprintln!("panel restart: {restart:?}\n{said}");
    let second = site.master_pid().expect("a master after the restart");
    assert_ne!(second, first, "a new generation serves:\n{said}");
    assert!(!support::alive(first), "the old generation was stopped");
    assert_eq!(restart.failed, 0, "{restart:?}");
    assert_eq!(restart.non_2xx, 0, "{restart:?}");
    assert!(
        restart.longest_ms <= bound_ms(&baseline, &restart),
        "{restart:?} against {baseline:?}"
    );
    assert!(
        !screens.iter().any(|s| s.contains("State   STOPP")),
        "the pool was never said to stop:\n{}",
        screens.join("\n----\n")
    );
    assert!(site.ok(&["history"]).contains("restart"));
    tmux.keys(&["q"]);
}
