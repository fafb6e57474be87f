//! Worker classes, wsgi_args flags and the pool's operational extras, through the real
//! binary with real processes.

use crate::support;

use std::time::Duration;

use support::disk::{SmallDisk, fill};
use support::{
    TestSite, alive, decode_jpeg, fetch, http_get, http_request, keep_alive_client, wait_until,
};

const LONG: Duration = Duration::from_secs(30);

fn kill(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

/// Starts `n` requests that each hold the worker for `ms`, and samples the pool's
/// in-flight count until they are done; returns the largest count seen.
fn max_in_flight(site: &TestSite, n: usize, ms: u64) -> u64 {
    let port = site.port;
    let clients: Vec<_> = (0..n)
        .map(|_| std::thread::spawn(move || http_get(port, &format!("/__webctl/test/sleep/{ms}/"))))
        .collect();
    let mut max = 0;
    while clients.iter().any(|c| !c.is_finished()) {
        let seen = site.status_json()["totals"]["in_flight"]
            .as_u64()
            .unwrap_or(0);
        max = max.max(seen);
        std::thread::sleep(Duration::from_millis(100));
    }
    for c in clients {
        assert_eq!(c.join().unwrap().map(|r| r.0), Some(200));
    }
    max
}

#[test]
fn worker_classes_bound_concurrency_as_documented() {
    // sync: one request at a time per worker, and no keep-alive.
    let site = TestSite::new(1);
    site.ok(&["start"]);
    assert_eq!(max_in_flight(&site, 3, 1500), 1);
    let (_, raw) = raw_http11(site.port);
    assert!(raw.to_lowercase().contains("connection: close"), "{raw}");
    site.ok(&["stop"]);

    // gthread (sync with threads > 1): that many at a time, keep-alive on.
    site.append_config("\"omero.web.wsgi_threads\" = 2\n");
    site.ok(&["start"]);
    assert_eq!(site.status_json()["worker_class"], "gthread");
    assert_eq!(max_in_flight(&site, 4, 1500), 2);
    let (_, raw) = raw_http11(site.port);
    assert!(!raw.to_lowercase().contains("connection: close"), "{raw}");
    site.ok(&["stop"]);

    // gevent: up to worker_connections connections.
    site.append_config(
        "\"omero.web.wsgi_worker_class\" = \"gevent\"\n\"omero.web.wsgi_worker_connections\" = 3\n",
    );
    site.ok(&["start"]);
    assert_eq!(site.status_json()["worker_class"], "gevent");
    assert_eq!(max_in_flight(&site, 5, 1500), 3);
}

/// One HTTP/1.1 request; returns status and the raw response head.
fn raw_http11(port: u16) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /__webctl/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text)
}

#[test]
fn wsgi_args_flags_take_effect() {
    let site = TestSite::new(1);
    let logs = site.root().join("my logs");
    site.append_config(&format!(
        "\"omero.web.wsgi_args\" = \"\"\"--log-level=DEBUG --error-logfile '{}/error.log' --access-logfile \"{}/access log.txt\" --timeout 2 --backlog 37 --limit-request-line 200 --limit-request-fields 6 --limit-request-field_size 100 --threads 2 --keep-alive 0\"\"\"\n",
        logs.display(),
        logs.display()
    ));
    site.ok(&["start"]);
    let status = site.status_json();
    // --threads 2 turns sync into gthread.
    assert_eq!(status["worker_class"], "gthread");

    // Request limits.
    assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
    let long = format!("/__webctl/health?{}", "x".repeat(300));
    assert_eq!(site.get(&long).map(|r| r.0), Some(414));
    let many: String = (0..10).map(|i| format!("X-H{i}: v\r\n")).collect();
    let req = format!("GET /__webctl/health HTTP/1.0\r\n{many}\r\n");
    assert_eq!(http_request(site.port, &req).map(|r| r.0), Some(431));
    let big = format!(
        "GET /__webctl/health HTTP/1.0\r\nX-Big: {}\r\n\r\n",
        "y".repeat(200)
    );
    assert_eq!(http_request(site.port, &big).map(|r| r.0), Some(431));

    // --keep-alive 0: even gthread closes the connection.
    let (_, raw) = raw_http11(site.port);
    assert!(raw.to_lowercase().contains("connection: close"), "{raw}");

    // --backlog: the listen queue length shows as Send-Q of the listening socket.
    let ss = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", site.port)])
        .output()
        .expect("ss (iproute2)");
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert_eq!(ss.split_whitespace().nth(2), Some("37"), "{ss}");

    // Log files from quoted paths with spaces; DEBUG lines in OMEROweb.log.
    assert!(wait_until(LONG, || {
        std::fs::read_to_string(logs.join("access log.txt"))
            .is_ok_and(|t| t.contains("\"GET /__webctl/health HTTP/1.0\" 200 3"))
    }));
    let error_log = std::fs::read_to_string(logs.join("error.log")).unwrap();
    assert!(
        error_log.contains("Listening at: http://127.0.0.1:"),
        "{error_log}"
    );
    assert!(site.log().contains("DEBUG [") && site.log().contains("Booting worker with pid"));

    // --timeout 2 (wsgi_timeout stays 60): a stopped worker is replaced quickly.
    let victim = site.ready_pids()[0];
    kill(victim, nix::sys::signal::Signal::SIGSTOP);
    assert!(wait_until(Duration::from_secs(15), || !alive(victim)));
    assert!(
        site.log()
            .contains(&format!("WORKER TIMEOUT (pid:{victim})"))
    );
}

#[test]
fn graceful_timeout_and_jitter_from_wsgi_args() {
    let site = TestSite::new(1);
    site.append_config(
        "\"omero.web.wsgi_worker_class\" = \"gevent\"\n\"omero.web.application_server.max_requests\" = 2\n\"omero.web.wsgi_args\" = \"--graceful-timeout 1 --max-requests-jitter 3\"\n",
    );
    site.ok(&["start"]);
    // The worker recycles after 2 + (0..=3) requests.
    let first = site.ready_pids()[0];
    let mut served = 0;
    while site.ready_pids().first() == Some(&first) && served < 10 {
        assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
        served += 1;
        wait_until(Duration::from_secs(2), || {
            site.ready_pids().first() != Some(&first)
        });
    }
    assert!(
        (2..=5).contains(&served),
        "recycled after {served} requests"
    );

    // --graceful-timeout 1: stop cuts a 20 s response after about a second.
    let port = site.port;
    let stream = std::thread::spawn(move || http_get(port, "/__webctl/test/stream/20000/"));
    assert!(wait_until(
        LONG,
        || site.status_json()["totals"]["in_flight"].as_u64() == Some(1)
    ));
    let started = std::time::Instant::now();
    site.ok(&["stop"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stop waited for the whole response"
    );
    let body = stream.join().unwrap().map(|r| r.1).unwrap_or_default();
    assert!(
        !body.contains("chunk 9"),
        "the response was not cut: {body}"
    );
}

#[test]
fn gunicorn_flags_are_taken_the_pool_honours_forwarded_allow_ips_and_names_the_rest() {
    let site = TestSite::new(1);
    // A word that is no Gunicorn flag is refused by name, with the nearest flag.
    let out = site.run(&["config", "set", "omero.web.wsgi_args", "--prelaod"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--prelaod is not a flag of Gunicorn 27.0.1; did you mean --preload?"),
        "{err}"
    );
    // Flags OMERO sites use are taken; the ones the pool cannot honour are named.
    let logs = site.root().join("var/log");
    let args = format!(
        "--preload --worker-tmp-dir /dev/shm --forwarded-allow-ips=127.0.0.1 --access-logfile {}/access.log",
        logs.display()
    );
    let out = site.run(&["config", "set", "omero.web.wsgi_args", &args]);
    assert!(out.status.success(), "{out:?}");
    let note =
        "omero.web.wsgi_args: --preload, --worker-tmp-dir have no effect on the embedded pool";
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(note),
        "{out:?}"
    );
    site.ok(&["start"]);
    assert!(site.status_json()["warnings"].to_string().contains(note));
    assert!(site.log().contains(note));
    let diagnostics = site.run(&["diagnostics"]);
    assert!(
        String::from_utf8_lossy(&diagnostics.stdout).contains(note),
        "{diagnostics:?}"
    );
    // Behind the trusted proxy (this host), the log names the client it forwarded for.
    let forwarded = "GET /__webctl/health HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.9\r\nConnection: close\r\n\r\n";
    assert_eq!(http_request(site.port, forwarded).map(|r| r.0), Some(200));
    let access = logs.join("access.log");
    assert!(wait_until(LONG, || std::fs::read_to_string(&access)
        .is_ok_and(|t| t
            .lines()
            .any(|l| l.starts_with("203.0.113.9 - - ")))));
    // An untrusted proxy cannot: its own address is logged.
    site.ok(&[
        "config",
        "set",
        "omero.web.wsgi_args",
        &format!(
            "--forwarded-allow-ips=10.0.0.0/8 --access-logfile {}/access.log",
            logs.display()
        ),
    ]);
    site.ok(&["reload"]);
    let forwarded = forwarded.replace("health", "health?untrusted=1");
    assert_eq!(http_request(site.port, &forwarded).map(|r| r.0), Some(200));
    assert!(wait_until(LONG, || std::fs::read_to_string(&access)
        .is_ok_and(|t| t.lines().any(|l| l
            .starts_with("127.0.0.1 - - ")
            && l.contains("untrusted=1")))));
}

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
fn control_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let mode = std::fs::metadata(site.root().join("var/omeroweb.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    site.ok(&["stop"]);
    assert!(!site.root().join("var/omeroweb.sock").exists());
}

#[test]
fn another_user_that_reaches_the_control_socket_is_still_refused() {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true requires root for the other-user test"
        );
        eprintln!("skipping: needs root to act as another user");
        return;
    }
    let site = TestSite::new(1);
    site.ok(&["start"]);
    // Open the way a careless chmod would: the directories and the socket itself.
    let socket = site.root().join("var/omeroweb.sock");
    for dir in [site.root().to_path_buf(), site.root().join("var")] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // nobody connects and asks the master to stop: the peer's uid is checked (the
    // refusal may come before the request is even read).
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ntry:\n  s.sendall(b'{\"cmd\":\"stop\",\"quick\":true}\\n')\nexcept BrokenPipeError:\n  pass\nprint(s.makefile().readline())";
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .arg(&socket)
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.contains("\"ok\":false") && reply.contains("uid 65534 may not control this pool"),
        "{reply} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(site.status_json()["state"], "running");
    site.ok(&["stop"]);
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
fn idle_keep_alive_connections_close_after_the_keep_alive_time() {
    use std::io::{Read, Write};
    let site = TestSite::new(1);
    site.append_config(
        "\"omero.web.wsgi_worker_class\" = \"gevent\"\n\"omero.web.wsgi_keepalive\" = 1\n",
    );
    site.ok(&["start"]);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(b"GET /__webctl/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Idle now: the worker closes the connection after about a second (EOF), well
    // before the 20 s read timeout.
    let started = std::time::Instant::now();
    assert_eq!(conn.read(&mut buf).unwrap(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "closed after {:?}",
        started.elapsed()
    );
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
fn a_silent_control_client_is_dropped_and_does_not_block_others() {
    use std::io::Read;
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let mut silent =
        std::os::unix::net::UnixStream::connect(site.root().join("var/omeroweb.sock")).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Others are served meanwhile.
    assert_eq!(site.status_json()["state"], "running");
    // The master gives up on the silent one (it answers the empty request and closes).
    let started = std::time::Instant::now();
    let mut reply = String::new();
    silent.read_to_string(&mut reply).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "held for {:?}",
        started.elapsed()
    );
    assert!(reply.contains("\"ok\":false"), "{reply}");
}

#[test]
fn hostile_control_clients_are_refused_and_the_pool_is_unchanged() {
    use std::io::{Read, Write};
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let pid = site.ready_pids()[0];
    // Garbage, a request of the wrong shape, binary noise.
    for request in [
        "hello",
        "{\"cmd\":\"launch_missiles\"}",
        "{\"cmd\":\"scale\",\"to\":-3}",
        "\u{0}\u{1}\u{ff}",
    ] {
        let reply = control(&site, request);
        assert!(
            reply.contains("\"ok\":false") && reply.contains("bad request"),
            "{request:?}: {reply}"
        );
    }
    // A fork bomb by request: refused with the limit, nothing spawned.
    let reply = control(&site, "{\"cmd\":\"scale\",\"to\":4000000000}");
    assert!(
        reply.contains("\"ok\":false") && reply.contains("at most 1024"),
        "{reply}"
    );
    let reply = control(&site, "{\"cmd\":\"scale\",\"by\":2000000000}");
    assert!(reply.contains("at most 1024"), "{reply}");
    // The CLI says the same in one line.
    let out = site.run(&["scale", "5000"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at most 1024"), "{stderr}");
    // A frame far over the 64 KiB limit, with no newline: cut off and answered.
    let mut socket =
        std::os::unix::net::UnixStream::connect(site.root().join("var/omeroweb.sock")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let huge = vec![b'x'; 4 << 20];
    let _ = socket.write_all(&huge); // the master stops reading; the write may fail
    let mut reply = String::new();
    let _ = socket.read_to_string(&mut reply);
    assert!(
        reply.is_empty() || reply.contains("\"ok\":false"),
        "{reply}"
    );
    // Through all of it: the same one worker, and the master answers.
    let status = site.status_json();
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(site.ready_pids(), [pid]);
    assert_eq!(status["target_workers"], 1, "{status}");
}

/// Sends one control request by hand, as any client of the documented protocol would.
fn control(site: &TestSite, request: &str) -> String {
    use std::io::{Read, Write};
    let mut socket =
        std::os::unix::net::UnixStream::connect(site.root().join("var/omeroweb.sock")).unwrap();
    socket.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    socket.read_to_string(&mut reply).unwrap();
    reply
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

#[test]
fn ambiguous_body_framing_never_keeps_the_connection() {
    // Request smuggling: a proxy and the pool must never read one request's body
    // differently and go on with the connection. Content-Length with
    // Transfer-Encoding: the length is ignored and the connection closed after the
    // answer (RFC 9112 §6.3; nginx, in front, answers 400). Other codings: 501.
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let worker = site.ready_pids()[0];
    let cases = [
        (
            "POST /__webctl/health HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            200,
        ),
        (
            "POST /__webctl/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
            200,
        ),
        (
            "POST /__webctl/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        // Already refused by the HTTP parser: duplicate lengths, obs-fold.
        (
            "POST /__webctl/health HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
            400,
        ),
        (
            "GET /__webctl/health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
            400,
        ),
    ];
    for (request, status) in cases {
        // No `Connection: close` asked: the pool must close of its own accord, or
        // this read would wait for the 30 s timeout.
        let started = std::time::Instant::now();
        assert_eq!(
            http_request(site.port, request).map(|r| r.0),
            Some(status),
            "{request:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{request:?} kept the connection"
        );
    }
    // Plain chunked bodies still work, and the worker is the same one.
    let chunked = "POST /__webctl/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
    assert_eq!(http_request(site.port, chunked).map(|r| r.0), Some(200));
    assert_eq!(site.ready_pids(), [worker]);
}

#[test]
fn request_paths_cannot_forge_log_lines() {
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let request = |target: &str| {
        http_request(
            site.port,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .map(|r| r.0)
    };
    // Control characters never get past the HTTP parser.
    assert_eq!(request("/missing\x1b[31mred"), Some(400));
    // Encoded line breaks stay encoded; quotes are escaped as Python's repr does.
    assert_eq!(request("/missing%0d%0aFAKE"), Some(404));
    assert_eq!(request("/missing'\"\\x"), Some(404));
    assert!(wait_until(LONG, || site
        .log()
        .contains(r#"HTTP 404 <WSGIRequest: GET '/missing\'"\\x'>"#)));
    let log = site.log();
    assert!(
        log.contains("HTTP 404 <WSGIRequest: GET '/missing%0d%0aFAKE'>"),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "{log}");
    let shape = support::omero_log_line();
    assert!(log.lines().all(|l| shape.is_match(l)), "{log}");
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off_on_every_worker_class() {
    use std::io::{Read, Write};
    // gthread/gevent: the keep-alive time (2 s); sync: 10 s for the one request.
    for (class, limit) in [("gthread", 2u64), ("gevent", 2), ("sync", 10)] {
        let site = TestSite::new(2);
        site.append_config(&format!(
            "\"omero.web.wsgi_worker_class\" = \"{class}\"\n\"omero.web.wsgi_keepalive\" = 2\n"
        ));
        site.ok(&["start"]);
        let mut slow = std::net::TcpStream::connect(("127.0.0.1", site.port)).unwrap();
        slow.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        slow.write_all(b"GET /__webctl/health HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let started = std::time::Instant::now();
        let mut closed = false;
        // One header byte every 200 ms, never the blank line that ends them.
        while started.elapsed() < Duration::from_secs(limit + 8) {
            if slow.write_all(b"X").is_err() {
                closed = true;
                break;
            }
            let mut buf = [0u8; 64];
            match slow.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            // Meanwhile, others are served (the other worker, or the same one).
            assert_eq!(
                http_get(site.port, "/__webctl/health").map(|r| r.0),
                Some(200),
                "{class}"
            );
        }
        let took = started.elapsed();
        assert!(closed, "{class}: the slow client was never cut off");
        assert!(
            took >= Duration::from_secs(limit.saturating_sub(1)),
            "{class}: cut off after {took:?}, before its {limit} s"
        );
    }
}

#[test]
fn a_body_sent_a_byte_at_a_time_holds_no_worker_on_any_class() {
    use std::io::{Read, Write};
    for class in ["sync", "gthread", "gevent"] {
        let site = TestSite::new(1);
        site.append_config(&format!(
            "\"omero.web.wsgi_worker_class\" = \"{class}\"\n\"omero.web.wsgi_keepalive\" = 2\n"
        ));
        site.ok(&["start"]);
        let mut slow = std::net::TcpStream::connect(("127.0.0.1", site.port)).unwrap();
        slow.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        slow.write_all(
            b"POST /__webctl/health HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
        )
        .unwrap();
        let started = std::time::Instant::now();
        let (mut answered, mut closed) = (None, None);
        // One body byte every 200 ms, for far longer than the body could need.
        while started.elapsed() < Duration::from_secs(15) && closed.is_none() {
            if slow.write_all(b"x").is_err() {
                closed = Some(started.elapsed());
                break;
            }
            let mut buf = [0u8; 256];
            match slow.read(&mut buf) {
                Ok(0) => closed = Some(started.elapsed()),
                Ok(n) => {
                    if answered.is_none() && buf[..n].starts_with(b"HTTP/1.1 ") {
                        answered = Some(started.elapsed());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => closed = Some(started.elapsed()),
            }
            // The one worker serves others all along.
            assert_eq!(
                http_get(site.port, "/__webctl/health").map(|r| r.0),
                Some(200),
                "{class}"
            );
        }
        // Answered at once (no route waits for a body it does not use), then the
        // connection is closed rather than kept for the rest of the trickle.
        let answered = answered.unwrap_or_else(|| panic!("{class}: no answer"));
        assert!(
            answered < Duration::from_secs(2),
            "{class}: answered after {answered:?}"
        );
        let closed = closed.unwrap_or_else(|| panic!("{class}: the trickle was never cut off"));
        assert!(
            closed < Duration::from_secs(10),
            "{class}: closed after {closed:?}"
        );
    }
}

#[test]
fn a_full_log_disk_costs_log_lines_not_requests_and_is_said() {
    let test = "a full log disk";
    let outside = tempfile::tempdir().unwrap();
    let logs = outside.path().join("logs");
    // Declared before the site: dropped after it, once the pool has stopped.
    let Some(_disk) = SmallDisk::mount(&logs, 8, test) else {
        return;
    };
    let site = TestSite::new(2);
    site.append_config(&format!("\"omero.web.logdir\" = \"{}\"\n", logs.display()));
    site.ok(&["start"]);
    // Fill the filesystem that holds the log.
    let filler = logs.join("filler");
    fill(&filler);
    // Every request still answers, though its log line cannot be written.
    for _ in 0..50 {
        assert_eq!(site.get("/missing-while-full").map(|r| r.0), Some(404));
        assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
    }
    let status = site.status_json();
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["restarts"], 0, "{status}");
    // diagnostics says which filesystem is full.
    let report = site.ok(&["diagnostics"]);
    assert!(
        report.contains(&format!(
            "the filesystem {} (holding the logs)",
            logs.display()
        )),
        "{report}"
    );
    // Space back: logging goes on by itself.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(site.get("/missing-after").map(|r| r.0), Some(404));
    let log = || std::fs::read_to_string(logs.join("OMEROweb.log")).unwrap_or_default();
    assert!(
        wait_until(LONG, || log().contains("'/missing-after'")),
        "{}",
        log()
    );
    site.ok(&["stop"]);
}

#[test]
fn a_full_then_read_only_thumbnail_cache_costs_caching_not_thumbnails() {
    let test = "a full thumbnail cache";
    let site = TestSite::with_demo(
        1,
        "",
        &[
            "--images",
            "3",
            "--size",
            "256",
            "--channels",
            "2",
            "--z",
            "1",
        ],
    );
    let cache = site.root().join("var/cache");
    let Some(disk) = SmallDisk::mount(&cache, 8, test) else {
        return;
    };
    fill(&cache.join("filler"));
    site.ok(&["start"]);
    let thumbnail = |id: u32| {
        let (status, _, body) = fetch(
            site.port,
            &format!("/webgateway/render_thumbnail/{id}/"),
            &[],
        );
        assert_eq!(status, 200, "thumbnail {id}");
        decode_jpeg(&body);
    };
    // Nothing can be cached, published or indexed on the full disk: every thumbnail
    // is still rendered and served, again and again.
    for _ in 0..3 {
        for id in 1..=3 {
            thumbnail(id);
        }
    }
    let status = site.status_json();
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["restarts"], 0, "{status}");
    let report = site.ok(&["diagnostics"]);
    assert!(
        report.contains(&format!(
            "the filesystem {} (holding the cache)",
            cache.display()
        )),
        "{report}"
    );
    // Read-only (as ext4 remounts itself after an error; possible here because the
    // cache keeps no file open for writing): the same.
    std::fs::remove_file(cache.join("filler")).unwrap();
    disk.remount("ro");
    for id in 1..=3 {
        thumbnail(id);
    }
    assert_eq!(site.status_json()["restarts"], 0);
    // Writable again: thumbnails are published for nginx once more.
    disk.remount("rw");
    for id in 1..=3 {
        thumbnail(id);
    }
    let published = cache.join("published/t");
    assert!(
        wait_until(LONG, || (1..=3)
            .all(|id| published.join(format!("{id}.jpg")).is_file())),
        "thumbnails were not published once the cache was writable again"
    );
    site.ok(&["stop"]);
}

#[test]
fn a_config_write_on_a_full_or_read_only_disk_fails_clearly_and_leaves_the_file_whole() {
    let test = "a full config disk";
    let site = TestSite::new(1);
    let etc = site.root().join("etc");
    let before = std::fs::read_to_string(site.config_file()).unwrap();
    // The site's etc/ on a small filesystem of its own, holding the same config.
    let Some(disk) = SmallDisk::mount(&etc, 8, test) else {
        return;
    };
    std::fs::write(site.config_file(), &before).unwrap();
    let filler = etc.join("filler");
    fill(&filler);

    let out = site.run(&["config", "set", "omero.web.wsgi_workers", "3"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // The old file whole, and no temp file left beside it (the lock file stays, as
    // it always does).
    assert_eq!(std::fs::read_to_string(site.config_file()).unwrap(), before);
    let mut left: Vec<String> = std::fs::read_dir(&etc)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler" && n != "lost+found")
        .collect();
    left.sort();
    assert_eq!(left, [".omero-web.toml.lock", "omero-web.toml"], "{left:?}");

    // Space back, but the filesystem read-only: refused in one line as well, the file
    // still whole.
    std::fs::remove_file(&filler).unwrap();
    disk.remount("ro");
    let out = site.run(&["config", "set", "omero.web.wsgi_workers", "3"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(std::fs::read_to_string(site.config_file()).unwrap(), before);

    // Writable again: the same command works.
    disk.remount("rw");
    site.ok(&["config", "set", "omero.web.wsgi_workers", "3"]);
    assert_eq!(site.ok(&["config", "get", "omero.web.wsgi_workers"]), "3\n");
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
