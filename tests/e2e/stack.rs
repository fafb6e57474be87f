//! The whole stack on one machine: the private nginx in front of the pool.

use crate::support;

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

#[test]
fn nginx_serves_published_thumbnails_and_never_a_stale_one() {
    if !nginx_available("published thumbnails") {
        return;
    }
    use std::time::Duration;
    use support::{fetch, header, wait_until};
    const LONG: Duration = Duration::from_secs(60);
    let site = TestSite::with_demo(
        1,
        "",
        &["--images", "2", "--size", "200", "--channels", "2"],
    );
    site.ok(&["start"]);
    let http = free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);
    let published = site.root().join("var/cache/published/t");

    // Rendered ahead of any request, as OMERO renders thumbnails at import.
    assert!(
        wait_until(LONG, || published.join("1.jpg").is_file()
            && published.join("2.jpg").is_file()),
        "the publisher rendered both thumbnails: {}",
        site.log()
    );
    let requests = || site.status_json()["totals"]["requests"].as_u64().unwrap();
    let before = requests();
    let (status, headers, body) = fetch(http, "/webgateway/render_thumbnail/1/", &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("image/jpeg"));
    assert_eq!(body, std::fs::read(published.join("1.jpg")).unwrap());
    // Revalidated on every use, so a replaced file never shows its old thumbnail.
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    // The very bytes the pool renders for it.
    let (_, _, from_pool) = fetch(site.port, "/webgateway/render_thumbnail/1/", &[]);
    assert_eq!(body, from_pool);
    // nginx answered without the pool: only the direct request above was counted.
    assert!(wait_until(LONG, || requests() == before + 1));
    let (status, _, _) = fetch(http, "/webclient/render_thumbnail/1/", &[]);
    assert_eq!(status, 200);
    assert_eq!(requests(), before + 1);
    // Conditional requests: nginx answers 304 itself.
    let etag = header(&headers, "etag")
        .expect("nginx sends an ETag")
        .to_string();
    let (status, headers304, _) = fetch(
        http,
        "/webgateway/render_thumbnail/1/",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(status, 304);
    assert_eq!(header(&headers304, "cache-control"), Some("no-cache"));
    // Anything else goes to the pool: another size, a query string.
    fetch(http, "/webgateway/render_thumbnail/1/64/", &[]);
    fetch(
        http,
        "/webgateway/render_thumbnail/1/?c=1|0:100$FF0000",
        &[],
    );
    assert!(wait_until(LONG, || requests() == before + 3));

    // The source changes (image 2's file copied over image 1's): the stale thumbnail
    // goes at once, and nginx serves the new one, the same as the pool renders.
    let demo = site.root().join("var/repository/demo");
    let images = [
        demo.join("demo-001.ome.tiff"),
        demo.join("demo-002.ome.tiff"),
    ];
    let old = body;
    // Renamed into place, as a careful copy does; not an image name meanwhile.
    let tmp = demo.join("incoming.part");
    std::fs::copy(&images[1], &tmp).unwrap();
    std::fs::rename(&tmp, &images[0]).unwrap();
    assert!(
        wait_until(LONG, || {
            let (status, _, now) = fetch(http, "/webgateway/render_thumbnail/1/", &[]);
            let (_, _, fresh) = fetch(site.port, "/webgateway/render_thumbnail/1/", &[]);
            status == 200 && now != old && now == fresh
        }),
        "nginx serves the new thumbnail"
    );

    // The source goes: so does its thumbnail, and nginx passes the 404 on.
    std::fs::remove_file(&images[0]).unwrap();
    assert!(wait_until(LONG, || !published.join("1.jpg").exists()));
    let (status, _, _) = fetch(http, "/webgateway/render_thumbnail/1/", &[]);
    assert_eq!(status, 404);
    site.ok(&["nginx", "stop"]);
}

#[test]
fn full_nginx_temp_files_cost_only_the_large_request_bodies() {
    if !nginx_available("full nginx temp files") {
        return;
    }
    use support::disk::{SmallDisk, fill};
    use support::{fetch, http_request};
    let site = TestSite::with_demo(
        1,
        "",
        &["--images", "1", "--size", "256", "--channels", "2"],
    );
    // nginx's temp files (request bodies it buffers) on a small filesystem, full.
    let tmp = site.root().join("var/nginx/tmp");
    let Some(_disk) = SmallDisk::mount(&tmp, 8, "full nginx temp files") else {
        return;
    };
    site.ok(&["start"]);
    let http = free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);
    let filler = tmp.join("filler");
    fill(&filler);
    // A route that reads the whole body and says how much came (test routes only):
    // answered before the body was read, a route could close on nginx still sending.
    let post = |len: usize| {
        let body = "x".repeat(len);
        http_request(
            http,
            &format!(
                "POST /__webctl/test/echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}"
            ),
        )
    };
    // A body larger than nginx keeps in memory needs a temp file: refused with 500.
    assert_eq!(post(256 * 1024).map(|r| r.0), Some(500));
    let errors = std::fs::read_to_string(site.root().join("var/nginx/error.log")).unwrap();
    assert!(errors.contains("No space left on device"), "{errors}");
    // Everything else is served: small bodies, thumbnails, downloads (never buffered
    // to disk: proxy_buffering is off), static files.
    assert_eq!(post(100), Some((200, "received 100 bytes\n".to_string())));
    for path in [
        "/webgateway/render_thumbnail/1/",
        "/webgateway/render_image/1/0/0/",
        "/webgateway/archived_files/download/1/",
        "/__webctl/health",
    ] {
        let (status, _, _) = fetch(http, path, &[]);
        assert_eq!(status, 200, "{path}");
    }
    let original =
        std::fs::read(site.root().join("var/repository/demo/demo-001.ome.tiff")).unwrap();
    let (_, _, downloaded) = fetch(http, "/webgateway/archived_files/download/1/", &[]);
    assert_eq!(downloaded, original, "the download is whole");
    // Space back: the large body goes through, whole.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        post(256 * 1024),
        Some((200, "received 262144 bytes\n".to_string()))
    );
    site.ok(&["nginx", "stop"]);
    site.ok(&["stop"]);
}

/// The gallery's versioned thumbnail URL (`render_thumbnail/<id>/?v=<version>`) of
/// image `id`, as the gallery page gives it.
fn versioned_thumbnail_url(port: u16, id: u32) -> String {
    let html = String::from_utf8(support::fetch(port, "/webclient/", &[]).2).unwrap();
    let needle = format!("src=\"/webclient/render_thumbnail/{id}/?v=");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no versioned thumbnail of {id}: {html}"));
    html[at + 5..].split('"').next().unwrap().to_string()
}

#[test]
fn nginx_serves_versioned_thumbnail_urls_from_the_published_files() {
    if !nginx_available("versioned thumbnails") {
        return;
    }
    use std::time::Duration;
    use support::{fetch, header, wait_until};
    const LONG: Duration = Duration::from_secs(60);
    let site = TestSite::with_demo(
        1,
        "",
        &["--images", "2", "--size", "200", "--channels", "2"],
    );
    site.ok(&["start"]);
    let http = free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);
    let published = site.root().join("var/cache/published");
    let url = versioned_thumbnail_url(site.port, 1);
    let version = url.split("?v=").nth(1).unwrap().to_string();
    let link = published.join(format!("v/1?v={version}.jpg"));
    assert!(
        wait_until(LONG, || link.is_file()
            && published.join("t/2.jpg").is_file()),
        "the publisher linked the versioned thumbnail: {}",
        site.log()
    );
    let (_, _, from_pool) = fetch(site.port, &url, &[]);

    // With the pool stopped, nginx alone answers: the versioned URL with the pool's
    // very bytes and the year-long lifetime, the plain URL still revalidated.
    site.ok(&["stop"]);
    let pool_down = || std::net::TcpStream::connect(("127.0.0.1", site.port)).is_err();
    assert!(wait_until(LONG, pool_down), "the pool is still listening");
    let (status, headers, body) = fetch(http, &url, &[]);
    assert_eq!(status, 200, "{url}");
    assert_eq!(body, from_pool);
    assert_eq!(header(&headers, "content-type"), Some("image/jpeg"));
    assert_eq!(
        header(&headers, "cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    let etag = header(&headers, "etag")
        .expect("nginx sends an ETag")
        .to_string();
    let (status, _, _) = fetch(http, &url, &[("If-None-Match", &etag)]);
    assert_eq!(status, 304);
    let (status, headers, _) = fetch(http, "/webclient/render_thumbnail/1/", &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    // Any other query goes to the pool (down: nginx's 502 maintenance page), and so
    // does a version that is not published; no query reaches outside v/.
    for other in [
        format!("{url}&c=1"),
        "/webclient/render_thumbnail/1/?v=0000000000000000".to_string(),
        "/webclient/render_thumbnail/1/?/../../t/1".to_string(),
    ] {
        let (status, _, _) = fetch(http, &other, &[]);
        assert_eq!(status, 502, "{other}");
    }
    site.ok(&["start"]);

    // A new version (the file replaced): the old link goes, the new one is served
    // by nginx, with the new picture.
    let file = site.root().join("var/repository/demo/demo-001.ome.tiff");
    let copy = site.root().join("var/repository/demo/incoming.part");
    std::fs::copy(
        site.root().join("var/repository/demo/demo-002.ome.tiff"),
        &copy,
    )
    .unwrap();
    std::fs::rename(&copy, &file).unwrap();
    assert!(
        wait_until(LONG, || versioned_thumbnail_url(site.port, 1) != url),
        "the replaced file's URL did not change"
    );
    let new_url = versioned_thumbnail_url(site.port, 1);
    let new_version = new_url.split("?v=").nth(1).unwrap().to_string();
    let new_link = published.join(format!("v/1?v={new_version}.jpg"));
    assert!(wait_until(LONG, || new_link.is_file() && !link.exists()));
    let (_, _, fresh) = fetch(site.port, &new_url, &[]);
    site.ok(&["stop"]);
    assert!(wait_until(LONG, pool_down), "the pool is still listening");
    let (status, _, body) = fetch(http, &new_url, &[]);
    assert_eq!(status, 200);
    assert_eq!(body, fresh);
    assert_ne!(body, from_pool);
    site.ok(&["nginx", "stop"]);
}
