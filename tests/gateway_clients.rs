//! What OMERO's own clients and monitors ask of an embedded site (issue 23): the
//! health-check URLs, the viewer's error pages, the published thumbnails' caching.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use support::{TestSite, fetch, header};

/// A raw POST with a form body: the whole response as text.
fn post_form(port: u16, path: &str, form: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn demo_site(images: u32) -> TestSite {
    let site = TestSite::new(1);
    site.ok(&["demo", "--images", &images.to_string(), "--size", "64"]);
    site
}

#[test]
fn login_and_keepalive_ping_answer_as_omero_does_for_a_live_session() {
    let site = demo_site(1);
    site.ok(&["start"]);
    let port = site.port;

    // keepalive_ping: OMERO's exact body and type.
    let (status, headers, body) = fetch(port, "/webclient/keepalive_ping/", &[]);
    assert_eq!(
        (status, header(&headers, "content-type"), body.as_slice()),
        (200, Some("text/plain"), b"OK".as_slice())
    );

    // GET login/: a 200 HTML page (monitors check for it) that says no login is needed
    // and links on.
    let (status, headers, body) = fetch(port, "/webclient/login/", &[]);
    let html = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{html}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        html.contains("id=\"login\"") && html.contains("href=\"/webclient/\""),
        "{html}"
    );
    let (_, _, body) = fetch(port, "/webclient/login/?url=/webclient/img_detail/1/", &[]);
    assert!(String::from_utf8_lossy(&body).contains("href=\"/webclient/img_detail/1/\""));

    // POST login/: where OMERO's successful login goes; never off the site.
    for (path, location) in [
        ("/webclient/login/", "/webclient/"),
        (
            "/webclient/login/?url=/webclient/img_detail/1/",
            "/webclient/img_detail/1/",
        ),
        ("/webclient/login/?url=//evil.example/", "/webclient/"),
        ("/webclient/login/?url=https://evil.example/", "/webclient/"),
    ] {
        let response = post_form(port, path, "username=a&password=b&server=1");
        assert!(response.starts_with("HTTP/1.0 302"), "{path}: {response}");
        assert!(
            response
                .lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("location: {location}"))),
            "{path}: {response}"
        );
    }
}
