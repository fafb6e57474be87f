//! The private nginx run by the binary: serving and stopping, workers of a dropped site,
//! a broken config or pid file under it, start failures and a stale config.

use super::*;

// ---- the private nginx ------------------------------------------------------------
// (TestSite's drop stops it, also when an assertion failed.)

fn master_pid(site: &TestSite) -> Option<u32> {
    std::fs::read_to_string(site.path("var/nginx/nginx.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !condition() {
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A raw HTTP/1.0 GET over TCP: (status line, body).
fn http_get(port: u16, path: &str) -> (String, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.lines().next().unwrap_or("").to_string();
    (status, response[split + 4..].to_vec())
}

/// The leak the site's cleanup closes: nginx workers whose master is gone (so `nginx
/// stop` has nothing to stop) do not name the site in their command line; their
/// working directory lies beneath it, and dropping the site kills them.
#[test]
fn a_dropped_site_kills_the_nginx_workers_its_stop_missed() {
    if !nginx_available("a_dropped_site_kills_the_nginx_workers_its_stop_missed") {
        return;
    }
    let site = TestSite::empty();
    let port = free_port();
    let out = site.run(&["nginx", "start", "--http", &port.to_string()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let master = master_pid(&site).expect("pid file");
    // A worker is forked, not exec'd: until it sets its own title it still carries the
    // master's command line (which names the config under the site), so wait for that.
    let mut workers = Vec::new();
    wait_until(
        "nginx's workers to title themselves",
        Duration::from_secs(30),
        || {
            workers = children(master);
            !workers.is_empty()
                && workers.iter().all(|w| {
                    let cmdline = std::fs::read(format!("/proc/{w}/cmdline")).unwrap_or_default();
                    !String::from_utf8_lossy(&cmdline).contains("master process")
                })
        },
    );
    let root = site.root().display().to_string();
    for worker in &workers {
        let cmdline = std::fs::read(format!("/proc/{worker}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&root),
            "worker {worker}'s command line names the site: this test proves nothing"
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the master to die", Duration::from_secs(30), || {
        !is_alive(master)
    });
    assert!(
        workers.iter().any(|w| is_alive(*w)),
        "no worker of {workers:?} outlived its master: nothing for the cleanup to do"
    );
    drop(site);
    wait_until(
        "the orphaned workers to die",
        Duration::from_secs(30),
        || workers.iter().all(|w| !is_alive(*w)),
    );
}

#[test]
fn private_nginx_serves_static_files_and_stops() {
    if !nginx_available("private_nginx_serves_static_files_and_stops") {
        return;
    }
    let site = TestSite::empty();
    let static_dir = site.path("var/static");
    std::fs::create_dir_all(&static_dir).unwrap();
    let content: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    std::fs::write(static_dir.join("probe.bin"), &content).unwrap();

    let port = free_port();
    let out = site.run(&["nginx", "start", "--http", &port.to_string()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("Starting nginx... [OK] http://127.0.0.1:{port}/\n")
    );
    assert!(site.path("etc/templates/error/maintainance.html").is_file());
    assert!(site.path("var/nginx/mime.types").is_file());

    let (status, body) = http_get(port, "/static/probe.bin");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, content);

    let out = site.run(&["nginx", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let pid = master_pid(&site).expect("pid file");
    assert_eq!(
        stdout(&out),
        format!("nginx status... [RUNNING] (PID {pid}) http://127.0.0.1:{port}/\n")
    );

    // A second start refuses; reload keeps the port and keeps serving.
    let out = site.run(&["nginx", "start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("nginx already running (PID {pid})")));
    let out = site.run(&["nginx", "reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("Reloading nginx... [OK] http://127.0.0.1:{port}/\n")
    );
    let (status, body) = http_get(port, "/static/probe.bin");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, content);

    let workers = children(pid);
    assert!(!workers.is_empty(), "no worker processes under {pid}");
    let out = site.run(&["nginx", "stop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Stopping nginx... [OK]\n");
    assert!(!is_alive(pid), "master {pid} still running after stop");
    wait_until("the workers to exit", Duration::from_secs(30), || {
        workers.iter().all(|w| !is_alive(*w))
    });

    let out = site.run(&["nginx", "status"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "nginx status... [NOT STARTED]\n");
    let out = site.run(&["nginx", "stop"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "Stopping nginx... [NOT STARTED]\n");
}

/// A sysadmin whose config broke while nginx runs (an edit gone wrong, a bad merge)
/// must still see the truth and stop everything: the pid file and the master's
/// identity say what runs, the config only what the next start or reload would do.
#[test]
fn a_config_broken_while_nginx_runs_costs_neither_status_nor_stop() {
    if !nginx_available("a_config_broken_while_nginx_runs_costs_neither_status_nor_stop") {
        return;
    }
    let site = TestSite::empty();
    let port = free_port();
    let out = site.run(&["nginx", "start", "--http", &port.to_string()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let pid = master_pid(&site).expect("pid file");
    let workers = children(pid);
    assert!(!workers.is_empty(), "no worker processes under {pid}");
    let broken = "\"omero.web.prefix\" = \"/omero\"\ngarbage = = [\n";
    site.write_config(broken);
    let unusable = |out: &std::process::Output| {
        let err = stderr(out);
        assert!(
            err.starts_with("WARNING: the config cannot be used: ")
                && err.contains("omero-web.toml:2: not valid TOML"),
            "{err}"
        );
    };

    let out = site.run(&["nginx", "status"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        stdout(&out),
        format!("nginx status... [RUNNING] (PID {pid}) http://127.0.0.1:{port}/\n")
    );
    unusable(&out);
    // A reload needs the config: refused in words, the running nginx left as it is.
    let out = site.run(&["nginx", "reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "Reloading nginx... [FAILED]\n");
    assert!(
        stderr(&out).contains("not valid TOML")
            && stderr(&out).contains("the running nginx keeps its config"),
        "{}",
        stderr(&out)
    );
    assert!(is_alive(pid) && workers.iter().all(|w| is_alive(*w)));

    let out = site.run(&["nginx", "stop"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out), "Stopping nginx... [OK]\n");
    unusable(&out);
    assert!(!is_alive(pid), "master {pid} still running after stop");
    wait_until("the workers to exit", Duration::from_secs(30), || {
        workers.iter().all(|w| !is_alive(*w))
    });
    let out = site.run(&["nginx", "status"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "nginx status... [NOT STARTED]\n");
    unusable(&out);
    assert_eq!(
        site.read_config(),
        broken,
        "the file is left as the sysadmin wrote it"
    );
}

/// nginx's pid file garbage or gone while it runs: the master is found by the same
/// identity (its command line names this site's config), so status tells the truth
/// and stop ends it, where both used to say "not started" and leave it serving.
#[test]
fn a_garbage_or_missing_nginx_pid_file_hides_no_running_nginx() {
    if !nginx_available("a_garbage_or_missing_nginx_pid_file_hides_no_running_nginx") {
        return;
    }
    let site = TestSite::empty();
    for damage in ["garbage\n", "1\n", ""] {
        let port = free_port();
        let out = site.run(&["nginx", "start", "--http", &port.to_string()]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let pid = master_pid(&site).expect("pid file");
        let workers = children(pid);
        let pid_file = site.path("var/nginx/nginx.pid");
        if damage.is_empty() {
            std::fs::remove_file(&pid_file).unwrap();
        } else {
            std::fs::write(&pid_file, damage).unwrap();
        }
        let out = site.run(&["nginx", "status"]);
        assert_eq!(out.status.code(), Some(0), "{damage:?}: {}", stdout(&out));
        assert_eq!(
            stdout(&out),
            format!("nginx status... [RUNNING] (PID {pid}) http://127.0.0.1:{port}/\n")
        );
        let out = site.run(&["nginx", "stop"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), "Stopping nginx... [OK]\n", "{damage:?}");
        assert!(!is_alive(pid), "master {pid} still running after stop");
        wait_until("the workers to exit", Duration::from_secs(30), || {
            workers.iter().all(|w| !is_alive(*w))
        });
        assert_eq!(site.run(&["nginx", "status"]).status.code(), Some(3));
    }
}

#[test]
fn private_nginx_start_failure_shows_nginx_error_lines() {
    if !nginx_available("private_nginx_start_failure_shows_nginx_error_lines") {
        return;
    }
    let site = TestSite::empty();
    // Hold the port on every address so nginx cannot bind it.
    let holder = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = site.run(&["nginx", "start", "--http", &port.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "Starting nginx... [FAILED]\n");
    let err = stderr(&out);
    assert!(err.starts_with("nginx did not start: "), "{err}");
    assert!(err.contains("Address already in use"), "{err}");
    let out = site.run(&["nginx", "status"]);
    assert_eq!(out.status.code(), Some(3));
    drop(holder);
}

#[test]
fn diagnostics_flag_a_running_private_nginx_whose_config_is_stale_until_reloaded() {
    if !nginx_available("diagnostics_flag_a_running_private_nginx_whose_config_is_stale") {
        return;
    }
    let site = TestSite::empty();
    let port = free_port();
    let out = site.run(&["nginx", "start", "--http", &port.to_string()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let stale = |site: &TestSite| -> Option<String> {
        let report: serde_json::Value =
            serde_json::from_str(&site.ok(&["diagnostics", "--json"])).unwrap();
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w.as_str())
            .find(|w| w.contains("older config"))
            .map(str::to_string)
    };
    assert_eq!(stale(&site), None);
    // The worker timeout sets nginx's proxy_read_timeout (timeout + 5 s).
    site.ok(&["config", "set", "omero.web.wsgi_timeout", "120"]);
    let warning = stale(&site).expect("the stale nginx is flagged");
    assert!(
        warning.contains("(now: proxy_read_timeout 125s;)") && warning.contains("N"),
        "{warning}"
    );
    site.ok(&["nginx", "reload"]);
    assert_eq!(stale(&site), None);
}
