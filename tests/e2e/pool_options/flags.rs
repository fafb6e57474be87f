//! Worker classes and wsgi_args flags taking effect in the real pool: concurrency per class,
//! Gunicorn's flags, graceful timeout and jitter, forwarded_allow_ips.

use super::*;

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
