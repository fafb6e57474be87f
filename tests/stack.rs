//! The whole stack on one machine: the private nginx in front of the pool.

mod support;

use support::{TestSite, free_port, http_get, nginx_available, stdout};

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
