//! HTTP clients that misbehave, straight to the pool: ambiguous framing, forged log lines,
//! slow headers and bodies, idle keep-alive connections.

use super::*;

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
fn a_sync_worker_answers_a_client_that_shut_its_side_after_the_request() {
    // `printf 'GET … \r\n\r\n' | nc -N host port`: Gunicorn's sync worker answers it;
    // so does ours (hyper alone would take the early EOF for a client gone).
    use std::io::{Read, Write};
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(b"GET /__webctl/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with("\r\n\r\nok\n"), "{answer:?}");
}
