//! The panel in a real terminal: tmux runs it, the test types keys with send-keys and
//! reads the screen with capture-pane.

use crate::support;

use std::time::Duration;

use support::tmux::Tmux;
use support::{BIN, TestSite, http_get, wait_until};

const LONG: Duration = Duration::from_secs(30);

fn panel_command(site: &TestSite) -> String {
    format!("{BIN} --omerodir {}", site.root().display())
}

#[test]
fn the_panel_starts_the_pool_shows_traffic_edits_config_tails_the_log_and_quits_cleanly() {
    let site = TestSite::new(2);
    site.append_config("\"omero.web.wsgi_worker_class\" = \"gevent\"\n");
    let nginx_port = site.pin_nginx_port();
    let Some(tmux) = Tmux::start(&panel_command(&site), 110, 60) else {
        return;
    };
    tmux.wait_for(LONG, "the stopped dashboard", |s| {
        s.contains("STOPPED") && s.contains("Press s to start")
    });

    // One key starts the pool (and the private nginx); the panel shows the workers
    // that `status --json` reports and the URL to open.
    tmux.keys(&["s"]);
    assert!(wait_until(LONG, || site.ready_pids().len() == 2));
    let pids = site.ready_pids();
    tmux.wait_for(LONG, "the worker PIDs", |s| {
        pids.iter().all(|p| s.contains(&p.to_string()))
    });
    if support::nginx_available("panel start") {
        tmux.wait_for(LONG, "the URL", |s| {
            s.contains(&format!("http://127.0.0.1:{nginx_port}/"))
        });
    }

    // Traffic shows up as counts and a rate.
    let port = site.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(http_get(port, "/__webctl/health").map(|r| r.0), Some(200));
                sent += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            sent
        })
    };
    let moved = tmux.wait_for(LONG, "a request rate", |s| {
        s.lines()
            .any(|l| l.contains(" req/s") && !l.contains(" 0.0 req/s"))
            && s.lines()
                .any(|l| l.contains("2xx ") && !l.contains("2xx 0 "))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = load.join().unwrap();
    eprintln!("request rate and count moved on screen {moved:?} after the load began");
    assert!(
        moved < Duration::from_secs(5),
        "the panel took {moved:?} to show traffic"
    );
    tmux.wait_for(LONG, "the final count", |s| {
        s.contains(&format!("2xx {sent}"))
    });

    // Edit a property: the config file and the nginx preview follow.
    tmux.keys(&["2", "/"]);
    tmux.text("wsgi_timeout");
    tmux.keys(&["Enter", "Enter", "BSpace", "BSpace"]);
    tmux.text("90");
    tmux.keys(&["Enter"]);
    assert!(wait_until(LONG, || std::fs::read_to_string(
        site.config_file()
    )
    .unwrap()
    .contains("\"omero.web.wsgi_timeout\" = 90")));
    // The change needs a pool reload and nginx: the panel offers both.
    tmux.wait_for(LONG, "the offer to apply", |s| s.contains("Apply it now?"));
    tmux.keys(&["y"]);
    assert!(wait_until(LONG, || site.status_json()["generation"] == 2));
    // The nginx tab shows the private nginx's own config (it has run), and once the
    // offered nginx reload has rewritten the file nginx reads, it says they agree.
    tmux.keys(&["3"]);
    tmux.wait_for(LONG, "the private nginx's config, in step", |s| {
        s.contains("kind nginx-development") && s.contains("var/nginx/nginx.conf: up to date")
    });
    let conf = std::fs::read_to_string(site.root().join("var/nginx/nginx.conf")).unwrap();
    assert!(conf.contains("proxy_read_timeout 95s;"), "{conf}");

    // A new log line shows in the Log tab.
    tmux.keys(&["4"]);
    tmux.wait_for(LONG, "the log", |s| s.contains("OMEROweb.log"));
    assert_eq!(
        http_get(port, "/a-page-that-is-not-there").map(|r| r.0),
        Some(404)
    );
    let shown = tmux.wait_for(LONG, "the new log line", |s| {
        s.contains("a-page-that-is-not-there")
    });
    eprintln!("the new log line appeared {shown:?} after the request");
    assert!(
        shown < Duration::from_secs(3),
        "the log line took {shown:?}"
    );

    // q quits; the terminal is back in its normal modes; the web keeps running.
    tmux.keys(&["q"]);
    tmux.wait_for(LONG, "the shell after the panel", |s| {
        s.contains("STTY-DONE")
    });
    let after = tmux.screen();
    assert!(after.contains("PANEL-EXITED 0"), "{after}");
    assert!(
        after.contains(" icanon") && after.contains(" echo ") && !after.contains("-icanon"),
        "{after}"
    );
    assert_eq!(
        site.ready_pids().len(),
        2,
        "closing the panel stopped the pool"
    );
}

#[test]
fn the_terminal_is_restored_after_sigterm_and_small_terminals_are_refused_politely() {
    let site = TestSite::new(1);
    let Some(tmux) = Tmux::start(&panel_command(&site), 40, 10) else {
        return;
    };
    tmux.wait_for(LONG, "the too-small notice", |s| {
        s.to_lowercase().contains("too small")
    });
    // The panel itself (not tmux or the shell that mention the same command line).
    let panel: Vec<u32> = support::processes_mentioning(&site.root().to_string_lossy())
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|&b| b == 0).next() == Some(BIN.as_bytes()))
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(panel.len(), 1, "{panel:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(panel[0] as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    tmux.wait_for(LONG, "the shell after the panel", |s| {
        s.contains("STTY-DONE")
    });
    let after = tmux.screen();
    assert!(
        after.contains(" icanon") && !after.contains("-icanon") && !after.contains("-echo "),
        "{after}"
    );
}

#[test]
fn without_a_terminal_the_panel_points_at_the_cli() {
    let site = TestSite::new(1);
    let out = site.command(&["tui"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("terminal") && err.contains("omero-webctl status"),
        "{err}"
    );
}

#[test]
fn a_change_saved_from_the_cli_shows_as_pending_in_the_panel_until_r_applies_it() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let Some(tmux) = Tmux::start(&panel_command(&site), 100, 30) else {
        return;
    };
    tmux.wait_for(LONG, "the running pool", |s| s.contains("RUNNING"));
    site.ok(&["config", "set", "omero.web.wsgi_workers", "3"]);
    tmux.wait_for(LONG, "the pending change", |s| {
        s.contains("saved, not applied") && s.contains("wsgi_workers 2 → 3")
    });
    // r reloads at once (it does not ask: nothing is lost by a rolling reload).
    tmux.keys(&["r"]);
    tmux.wait_for(LONG, "the change applied", |s| {
        !s.contains("saved, not applied") && s.contains("3/3")
    });
    assert_eq!(site.ready_pids().len(), 3);
    tmux.keys(&["q"]);
    tmux.wait_for(LONG, "the shell after the panel", |s| {
        s.contains("PANEL-EXITED 0")
    });
}

#[test]
fn the_log_tab_says_when_its_file_is_deleted_and_follows_the_new_one() {
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let Some(tmux) = Tmux::start(&panel_command(&site), 100, 30) else {
        return;
    };
    tmux.wait_for(LONG, "the running pool", |s| s.contains("RUNNING"));
    tmux.keys(&["4"]);
    tmux.wait_for(LONG, "the log", |s| s.contains("OMEROweb.log following"));
    std::fs::remove_file(site.log_file()).unwrap();
    tmux.wait_for(LONG, "the deletion said", |s| s.contains("FILE DELETED"));
    // logrotate's next step: the writer reopens its log; new lines go to the new file.
    site.ok(&["reopen-logs"]);
    assert!(wait_until(LONG, || site.log_file().exists()));
    site.ok(&["scale", "2"]);
    tmux.wait_for(LONG, "the next line, from the new file", |s| {
        // (The line may wrap after "2": the message is matched up to there.)
        s.contains("Scaling from 1 to 2") && !s.contains("FILE DELETED")
    });
    assert!(site.log().contains("Scaling from 1 to 2 workers"));
    tmux.keys(&["q"]);
    tmux.wait_for(LONG, "the shell after the panel", |s| {
        s.contains("PANEL-EXITED 0")
    });
}

#[test]
fn a_pool_killed_under_a_running_nginx_shows_the_502s_users_get() {
    if !support::nginx_available("panel 502") {
        return;
    }
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let http = support::free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);
    let Some(tmux) = Tmux::start(&panel_command(&site), 120, 40) else {
        return;
    };
    tmux.wait_for(LONG, "the running pool", |s| s.contains("RUNNING"));
    let master = site.master_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(LONG, || !support::alive(master)));
    assert!(wait_until(LONG, || {
        http_get(http, "/__webctl/health").is_some_and(|(code, _)| code == 502)
    }));
    for _ in 0..2 {
        assert_eq!(http_get(http, "/__webctl/health").unwrap().0, 502);
    }
    tmux.wait_for(LONG, "the 502 problems", |s| {
        s.contains("users get 502") && s.contains("× 502: the pool did not answer")
    });
    site.ok(&["nginx", "stop"]);
    tmux.keys(&["q"]);
    tmux.wait_for(LONG, "the shell after the panel", |s| {
        s.contains("PANEL-EXITED 0")
    });
}

/// The config broken after the start: the panel shows what runs and the config error,
/// refuses a restart (it would stop the pool, then fail to start it) and stops all.
#[test]
fn on_a_config_broken_after_the_start_the_panel_shows_the_truth_and_stops_all() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let nginx = support::nginx_available("panel broken config");
    if nginx {
        site.ok(&[
            "nginx",
            "start",
            "--http",
            &support::free_port().to_string(),
        ]);
    }
    let master = site.master_pid().unwrap();
    let workers = site.ready_pids();
    site.append_config("garbage = = [\n");
    let Some(tmux) = Tmux::start(&panel_command(&site), 160, 45) else {
        return;
    };
    tmux.wait_for(LONG, "the running pool and the config error", |s| {
        s.contains("RUNNING")
            && s.contains(&master.to_string())
            && workers.iter().all(|w| s.contains(&w.to_string()))
            && s.contains("the config cannot be used:")
            && s.contains("not valid TOML")
            && (!nginx || s.contains("nginx   RUNNING"))
    });
    tmux.keys(&["R"]);
    tmux.wait_for(LONG, "the restart question", |s| {
        s.contains("Restart OMERO.web?")
    });
    tmux.keys(&["y"]);
    tmux.wait_for(LONG, "the refused restart", |s| {
        s.contains("Restart refused:") && s.contains("RUNNING")
    });
    assert_eq!(
        site.master_pid(),
        Some(master),
        "the restart touched nothing"
    );
    assert_eq!(site.ready_pids(), workers);

    tmux.keys(&["x"]);
    tmux.wait_for(LONG, "the stop question", |s| s.contains("Stop OMERO.web"));
    tmux.keys(&["y"]);
    tmux.wait_for(LONG, "everything stopped", |s| {
        s.contains("State   STOPPED") && (!nginx || s.contains("nginx   STOPPED"))
    });
    assert!(wait_until(LONG, || {
        !support::alive(master) && workers.iter().all(|&w| !support::alive(w))
    }));
    if nginx {
        assert_eq!(site.run(&["nginx", "status"]).status.code(), Some(3));
    }
    tmux.keys(&["q"]);
    tmux.wait_for(LONG, "the shell after the panel", |s| {
        s.contains("PANEL-EXITED 0")
    });
}

#[test]
fn enter_on_a_worker_drills_down_into_it() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let Some(tmux) = Tmux::start(&panel_command(&site), 100, 30) else {
        return;
    };
    let pids = site.ready_pids();
    tmux.wait_for(LONG, "the workers", |s| {
        pids.iter().all(|p| s.contains(&p.to_string()))
    });
    tmux.keys(&["Down", "Enter"]);
    tmux.wait_for(LONG, "the worker's details", |s| {
        s.contains(" Worker ") && s.contains("CPU % (last minute)")
    });
    let shown = tmux.screen();
    assert!(
        pids.iter()
            .any(|p| shown.contains(&format!(" Worker {p} "))),
        "{shown}"
    );
    assert!(
        shown.contains("Last requests") && shown.contains("Serving"),
        "{shown}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait_for(LONG, "the dashboard again", |s| {
        !s.contains("CPU % (last minute)")
    });
    tmux.keys(&["q"]);
    tmux.wait_for(LONG, "the shell after the panel", |s| {
        s.contains("PANEL-EXITED 0")
    });
}

#[test]
fn after_ab_with_a_reload_and_a_kill_the_panel_counts_what_ab_sent() {
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let Some(tmux) = Tmux::start(&panel_command(&site), 100, 30) else {
        return;
    };
    tmux.wait_for(LONG, "the running pool", |s| s.contains("RUNNING"));
    let load = support::ab_health_load(site.port, 20000, 4);
    assert!(wait_until(LONG, || {
        site.status_json()["totals"]["requests"].as_u64() > Some(2000)
    }));
    site.ok(&["reload"]);
    let victim = site.ready_pids()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let counted = support::assert_counted(&site, load.join().unwrap(), 4);
    // The panel shows the same total, and the kill as a restart.
    tmux.wait_for(LONG, "the total", |s| {
        s.contains(&format!("Requests · {counted}")) && s.contains("1 restarts since start")
    });
    tmux.keys(&["q"]);
    tmux.wait_for(LONG, "the shell after the panel", |s| {
        s.contains("PANEL-EXITED 0")
    });
}

#[test]
fn s_starts_the_private_nginx_on_the_port_chosen_in_the_nginx_tab() {
    if !support::nginx_available("nginx tab port") {
        return;
    }
    let site = TestSite::new(1);
    // The port of an earlier start, which the tab shows first…
    let remembered = site.pin_nginx_port();
    let chosen = support::free_port();
    let Some(tmux) = Tmux::start(&panel_command(&site), 100, 30) else {
        return;
    };
    tmux.wait_for(LONG, "the stopped dashboard", |s| {
        s.contains("Press s to start")
    });
    tmux.keys(&["3"]);
    tmux.wait_for(LONG, "the nginx tab on the remembered port", |s| {
        s.contains(&format!("http {remembered} "))
    });
    // …and the one chosen there, which `s` must use.
    tmux.keys(&["p", "C-u"]);
    tmux.text(&chosen.to_string());
    tmux.keys(&["Enter"]);
    tmux.wait_for(LONG, "the chosen port in the tab", |s| {
        s.contains(&format!("http {chosen} "))
    });
    tmux.keys(&["1", "s"]);
    tmux.wait_for(LONG, "the URL on the chosen port", |s| {
        s.contains(&format!("http://127.0.0.1:{chosen}/"))
    });
    assert!(
        wait_until(LONG, || http_get(chosen, "/__webctl/health").is_some()),
        "nothing answers on the chosen port {chosen}"
    );
    assert!(http_get(remembered, "/__webctl/health").is_none());
    tmux.keys(&["q"]);
}

#[test]
fn a_stale_running_nginx_is_flagged_on_the_dashboard_and_n_reloads_it() {
    if !support::nginx_available("stale nginx flag") {
        return;
    }
    let site = TestSite::new(1);
    site.pin_nginx_port();
    let Some(tmux) = Tmux::start(&panel_command(&site), 120, 40) else {
        return;
    };
    tmux.wait_for(LONG, "the stopped dashboard", |s| {
        s.contains("Press s to start")
    });
    tmux.keys(&["s"]);
    tmux.wait_for(LONG, "nginx running", |s| s.contains("nginx   RUNNING"));
    // Changed behind the panel's back, as `omero config set` would.
    site.ok(&["config", "set", "omero.web.wsgi_timeout", "120"]);
    tmux.wait_for(LONG, "the stale nginx flagged with its key", |s| {
        s.contains("older config") && s.contains("in the panel: N")
    });
    tmux.keys(&["N"]);
    tmux.wait_for(LONG, "the flag gone after the reload", |s| {
        s.contains("Reloaded the private nginx") && !s.contains("older config")
    });
    let conf = std::fs::read_to_string(site.root().join("var/nginx/nginx.conf")).unwrap();
    assert!(conf.contains("proxy_read_timeout 125s;"), "{conf}");
    tmux.keys(&["q"]);
}

#[test]
fn the_dashboard_of_an_omeroweb_site_says_whether_its_omero_server_answers() {
    use std::io::Write;
    let site = tempfile::tempdir().unwrap();
    let set = |value: &str| {
        let out = std::process::Command::new(BIN)
            .arg("--omerodir")
            .arg(site.path())
            .args([
                "--backend",
                "omeroweb",
                "config",
                "set",
                "omero.web.server_list",
                value,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", support::stderr(&out));
    };
    let refused = support::free_port();
    set(&format!(r#"[["127.0.0.1", {refused}, "omero"]]"#));
    let Some(tmux) = Tmux::start(
        &format!("{BIN} --omerodir {}", site.path().display()),
        100,
        30,
    ) else {
        return;
    };
    tmux.wait_for(LONG, "the refused server on the dashboard", |s| {
        s.contains("Server  connection refused")
            && s.contains(&format!(
                "OMERO.server omero (127.0.0.1:{refused}): connection refused"
            ))
    });
    // A fake Ice endpoint (it sends the ValidateConnection frame first), named by
    // `config set` behind the panel's back: re-checked at once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ice = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(&[0x49, 0x63, 0x65, 0x50, 1, 0, 1, 0, 3, 0, 14, 0, 0, 0]);
            std::thread::sleep(Duration::from_secs(5));
        }
    });
    set(&format!(r#"[["127.0.0.1", {ice}, "omero"]]"#));
    tmux.wait_for(LONG, "the reachable server", |s| {
        s.contains("Server  reachable (Ice/TCP)") && !s.contains("connection refused")
    });
    tmux.keys(&["q"]);
}

#[test]
fn on_a_real_gunicorn_site_busy_is_unknown_latency_is_a_bound_and_60x16_keeps_the_log_tab() {
    let Some(venv) = support::omeroweb_venv("gunicorn panel figures") else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 2);
    site.ok(&["start"]);
    for _ in 0..5 {
        assert_eq!(site.get("/webclient/login/").map(|r| r.0), Some(200));
    }
    // The CLI says the same: not known, not 0.
    let status = site.ok(&["status"]);
    let workers: Vec<&str> = status.lines().filter(|l| l.contains("  worker ")).collect();
    assert_eq!(workers.len(), 2, "{status}");
    assert!(
        workers.iter().all(|l| l.contains("in flight   —")),
        "{status}"
    );
    let Some(tmux) = Tmux::start(&panel_command(&site), 100, 30) else {
        return;
    };
    let pids = site.ready_pids();
    let rows = tmux.wait_for(LONG, "both workers with BUSY unknown", |s| {
        pids.iter().all(|p| {
            s.lines().any(|l| {
                let cells: Vec<&str> = l.trim_matches('│').split_whitespace().collect();
                // PID STATE AGE REQS REQ/S BUSY
                cells.first() == Some(&p.to_string().as_str()) && cells.get(5) == Some(&"—")
            })
        })
    });
    eprintln!("worker rows with BUSY — after {rows:?}");
    tmux.wait_for(LONG, "latency as bounds", |s| s.contains("p50 ≤"));
    // Nothing listens on OMERO's default localhost:4064 here.
    tmux.wait_for(LONG, "the OMERO.server's state", |s| {
        s.contains("Server  connection refused")
    });
    // At the minimum size the Log tab stays on the tab bar, and figures stay whole.
    tmux.resize(60, 16);
    // The panel redraws at the new size first (the tab bar at 60 columns); only then
    // the key, so it is not sent while the terminal is still being resized.
    tmux.wait_for(LONG, "the dashboard redrawn at 60x16", |s| {
        s.lines().count() <= 16
            && s.lines().all(|l| l.chars().count() <= 60)
            && s.lines()
                .any(|bar| bar.contains("omero-webctl") && bar.contains("4 Log"))
    });
    tmux.keys(&["4"]);
    tmux.wait_for(LONG, "the Log tab on the bar at 60x16", |s| {
        s.lines()
            .any(|bar| bar.contains("omero-webctl") && bar.contains("4 Log"))
            && s.contains("OMEROweb.log")
    });
    tmux.keys(&["q"]);
}

#[test]
fn a_status_message_cut_at_the_width_is_whole_in_the_message_history() {
    let site = TestSite::new(1);
    let Some(tmux) = Tmux::start(&panel_command(&site), 60, 16) else {
        return;
    };
    tmux.wait_for(LONG, "the dashboard", |s| s.contains("Press s to start"));
    // r on the nginx tab with no private nginx running says why, at length.
    tmux.keys(&["3", "r"]);
    let said = "The private nginx is not running (Dashboard: n starts it).";
    tmux.wait_for(LONG, "the message, cut between words", |s| {
        s.contains("warning: The private nginx is not running") && !s.contains(said)
    });
    tmux.keys(&["m"]);
    tmux.wait_for(LONG, "the whole message in the history", |s| {
        let text: Vec<&str> = s
            .lines()
            .flat_map(|l| l.trim_matches(|c| c == '│' || c == ' ').split_whitespace())
            .collect();
        text.join(" ").contains(said)
    });
    tmux.keys(&["Escape", "q"]);
}

/// Gunicorn's traceback of a worker that cannot load the app is the cause a sysadmin
/// looks for: with the Log tab's level filter at ERROR, its lines stay with their ERROR
/// record while INFO records go.
#[test]
fn the_level_filter_keeps_a_gunicorn_tracebacks_lines_with_its_error_record() {
    let Some(venv) = support::omeroweb_venv("gunicorn traceback under the level filter") else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 1);
    site.ok(&["start"]);
    let master = site.master_pid().expect("a master");
    // The saved config cannot load; the worker Gunicorn boots to replace a killed one
    // logs the traceback at ERROR, and Gunicorn halts.
    site.ok(&["config", "set", "omero.web.apps", "[\"no_such_app\"]"]);
    let worker = site.ready_pids()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_until(LONG, || !support::alive(master)),
        "Gunicorn halted"
    );
    let error_log = std::fs::read_to_string(site.root().join("var/log/gunicorn.log")).unwrap();
    assert!(
        error_log.contains("[INFO] Booting worker")
            && error_log.contains("ModuleNotFoundError: No module named 'no_such_app'"),
        "{error_log}"
    );

    let Some(tmux) = Tmux::start(&panel_command(&site), 160, 50) else {
        return;
    };
    tmux.keys(&["4"]);
    tmux.wait_for(LONG, "OMEROweb.log in the Log tab", |s| {
        s.contains("OMEROweb.log")
    });
    tmux.keys(&["s"]);
    tmux.wait_for(LONG, "Gunicorn's error log with an INFO line", |s| {
        s.contains("Gunicorn error log") && s.contains("[INFO] Worker exiting")
    });
    // all → INFO → WARNING → ERROR
    tmux.keys(&["l", "l", "l"]);
    tmux.wait_for(LONG, "the traceback kept, the INFO lines gone", |s| {
        s.contains("≥ERROR")
            && s.contains("ModuleNotFoundError: No module named 'no_such_app'")
            && s.contains("in _find_and_load")
            && s.contains("[ERROR] Reason: Worker failed to boot.")
            && !s.contains("[INFO]")
    });
    tmux.keys(&["q"]);
}

/// Issue 21 in the panel: while a reload switches generations of a real OMERO.web
/// behind the private nginx, the Dashboard lists both generations and `U` shows the
/// steps as they pass; afterwards `U`'s history has the reload with its outcome.
#[test]
fn during_a_generation_switch_the_dashboard_shows_both_and_u_shows_the_steps_then_the_history() {
    let test = "panel during a switch";
    let Some(venv) = support::omeroweb_venv(test) else {
        return;
    };
    if !support::nginx_available(test) {
        return;
    }
    let site = TestSite::omeroweb(&venv, 2);
    site.ok(&["start"]);
    let http = support::free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);
    let old = site.ready_pids();
    let Some(tmux) = Tmux::start(&panel_command(&site), 120, 40) else {
        return;
    };
    // The first diagnostics (the saved config's import check) hold the sampler for a
    // while on a loaded machine: the switch starts once they are in.
    tmux.wait_for(
        Duration::from_secs(90),
        "the dashboard with its diagnostics",
        |s| s.contains("RUNNING") && s.contains("Diagnostics: ") && s.contains("warning"),
    );
    let root = site.root().to_path_buf();
    let reload = std::thread::spawn(move || {
        std::process::Command::new(BIN)
            .arg("--omerodir")
            .arg(&root)
            .arg("reload")
            .output()
            .unwrap()
    });
    // Both generations on the Dashboard, each with its master, port and workers.
    // (Their roles change as the switch goes on: serving and new, then draining and
    // serving, ...; two masters are named in every phase.)
    let both = tmux.wait_for(Duration::from_secs(90), "both generations", |s| {
        s.split_once("reload running:")
            .is_some_and(|(_, rest)| rest.matches("master ").count() >= 2)
    });
    eprintln!("both generations on the Dashboard {both:?} after the reload began");
    let screen = tmux.screen();
    assert!(screen.contains(" · 2 workers"), "{screen}");
    // U: the steps, some done, one under way.
    tmux.keys(&["U"]);
    tmux.wait_for(LONG, "the steps of the reload", |s| {
        s.contains("Upgrades:")
            && s.contains("reload, started")
            && s.contains("✓ start the new generation beside the live one")
            && (s.contains("▶") || s.contains("✓ stop the interim generation"))
    });
    assert!(
        tmux.screen().contains("b roll back"),
        "the hint bar names U's key"
    );
    let out = reload.join().unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(old.iter().all(|p| !support::alive(*p)));
    // After it: the outcome, and the history row.
    tmux.wait_for(LONG, "the reload's outcome and its history row", |s| {
        s.contains("reload, started")
            && s.contains(": ok")
            && s.lines()
                .any(|l| l.contains(" reload ") && l.contains("  ok"))
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for(LONG, "one generation again", |s| {
        !s.contains("reload running:")
    });
    tmux.keys(&["q"]);
}

/// Issue 21: during an upgrade's health window, `U` keeps showing the switch's own
/// record (its action, the steps done so far) with the window's figures under them;
/// the window used to write a record of its own ("health window, started …") that
/// replaced the switch's steps until the next step.
#[test]
fn during_a_health_window_u_shows_the_switch_steps_with_the_window_figures() {
    let test = "panel during a health window";
    let Some(venv) = support::omeroweb_venv(test) else {
        return;
    };
    if !support::nginx_available(test) {
        return;
    }
    let site = TestSite::omeroweb(&venv, 1);
    site.ok(&["start"]);
    let http = support::free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);
    let Some(tmux) = Tmux::start(&panel_command(&site), 120, 40) else {
        return;
    };
    tmux.wait_for(
        Duration::from_secs(90),
        "the dashboard with its diagnostics",
        |s| s.contains("RUNNING") && s.contains("Diagnostics: "),
    );
    tmux.keys(&["U"]);
    tmux.wait_for(LONG, "the U screen", |s| s.contains("Upgrades:"));
    let root = site.root().to_path_buf();
    let venv_arg = venv.display().to_string();
    let upgrade = std::thread::spawn(move || {
        std::process::Command::new(BIN)
            .arg("--omerodir")
            .arg(&root)
            .args(["upgrade", "--venv", &venv_arg, "--health-window", "8"])
            .output()
            .unwrap()
    });
    tmux.wait_for(
        Duration::from_secs(120),
        "the health window's figures",
        |s| s.contains("health window: "),
    );
    // For a while within the window, every screen shows the switch with its figures.
    let mut looked = 0;
    while looked < 8 {
        let s = tmux.screen();
        if !s.contains("health window: ") {
            break;
        }
        assert!(!s.contains("health window, started"), "{s}");
        assert!(s.contains("upgrade, started"), "{s}");
        assert!(s.contains("✓ switch nginx to it"), "{s}");
        looked += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(looked >= 2, "the window was seen on {looked} screens");
    let out = upgrade.join().unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    tmux.keys(&["q"]);
}
