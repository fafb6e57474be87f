//! The whole stack on one machine: the private nginx in front of the pool.

mod support;

use support::{TestSite, free_port, http_get, keep_alive_client, nginx_available, stdout};

#[test]
fn nginx_proxies_to_the_pool_and_shows_the_maintenance_page_when_it_is_down() {
    if !nginx_available("nginx_proxies_to_the_pool") {
        return;
    }
    let site = TestSite::new(2);
    site.ok(&["start"]);
    let http = free_port();
    let out = site.run(&["nginx", "start", "--http", &http.to_string()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).starts_with("Starting nginx... [OK]"),
        "{out:?}"
    );

    // Through nginx to a worker, and the request shows in the pool's statistics.
    assert_eq!(
        http_get(http, "/__webctl/health"),
        Some((200, "ok\n".into()))
    );
    let (status, _) = http_get(http, "/").unwrap();
    assert_eq!(status, 302);
    assert!(support::wait_until(
        std::time::Duration::from_secs(10),
        || { site.status_json()["totals"]["requests"].as_u64() >= Some(2) }
    ));

    // The pool is down: nginx answers 502 with OMERO's maintenance page.
    site.ok(&["stop"]);
    let (status, body) = http_get(http, "/__webctl/health").unwrap();
    assert_eq!(status, 502);
    let page =
        std::fs::read_to_string(site.root().join("etc/templates/error/maintainance.html")).unwrap();
    assert_eq!(body, page);

    // diagnostics says so first, in a sysadmin's words.
    let report = site.ok(&["diagnostics"]);
    let problems = report.split("Problems:").nth(1).unwrap_or_default();
    assert!(
        problems
            .trim_start()
            .starts_with("- the private nginx (port "),
        "{report}"
    );
    assert!(problems.contains("users get 502"), "{report}");
    site.ok(&["nginx", "stop"]);
    assert_eq!(site.run(&["nginx", "status"]).status.code(), Some(3));

    // Started again without --http, the private nginx keeps its port.
    site.ok(&["start"]);
    site.ok(&["nginx", "start"]);
    assert_eq!(
        http_get(http, "/__webctl/health"),
        Some((200, "ok\n".into()))
    );
    site.ok(&["nginx", "stop"]);
}

#[test]
fn through_nginx_with_upstream_keep_alive_a_rolling_reload_fails_no_request() {
    if !nginx_available("through_nginx_with_upstream_keep_alive") {
        return;
    }
    let site = TestSite::new(2);
    site.append_config("\"omero.web.wsgi_worker_class\" = \"gevent\"\n");
    site.ok(&["start"]);
    let http = free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);
    let config = std::fs::read_to_string(site.root().join("var/nginx/nginx.conf")).unwrap();
    assert!(config.contains("keepalive 32;"), "{config}");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || keep_alive_client(http, stop))
        })
        .collect();
    assert!(support::wait_until(
        std::time::Duration::from_secs(30),
        || { site.status_json()["totals"]["requests"].as_u64() > Some(200) }
    ));
    site.ok(&["reload"]);
    site.ok(&["reload"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failures) = (0, 0);
    for c in clients {
        let (o, _closes, f) = c.join().unwrap();
        ok += o;
        failures += f;
    }
    assert_eq!(
        failures, 0,
        "{failures} requests failed through nginx across two reloads ({ok} ok)"
    );
    assert!(ok > 200);
}
