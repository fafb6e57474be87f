//! `omero-webctl nginx`, driven through the real binary: the rendering against OMERO's
//! reference output, the real `nginx -t`, refused injections, and the private nginx
//! serving a static file over TCP.

use crate::support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use omero_webctl::proc::{children, is_alive};
use support::{TestSite, free_port, nginx_available, stderr, stdout};

/// OMERO's rendering of the `nginx` template with defaults (ome/omero-web
/// test/unit/reference_templates/nginx.conf), with the site directory as `{ROOT}` and
/// the static root as `{STATIC_ROOT}`.
const OMERO_NGINX: &str = "upstream omeroweb {
    server 127.0.0.1:4080 fail_timeout=0;
}

server {
    listen 80;
    server_name $hostname;

    sendfile on;
    client_max_body_size 0;



    # maintenance page serve from here
    location @maintenance {
        root {ROOT}/etc/templates/error;
        try_files $uri /maintainance.html =502;
    }

    # weblitz django apps serve media from here
    location /static {
        alias {STATIC_ROOT};
    }

    location @proxy_to_app {
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header Host $http_host;
        proxy_redirect off;
        proxy_buffering off;

        proxy_pass http://omeroweb;
    }

    location / {

        error_page 502 @maintenance;
        # checks for static file, if not found proxy to app
        try_files $uri @proxy_to_app;
    }

}
";

/// OMERO's rendering with prefix /test, static URL /test-static/, 0.0.0.0:12345,
/// `--http 1234 --servername omeroweb.host --max-body-size 2m` and an extra config
/// (reference_templates/nginx-withoptions.conf).
const OMERO_NGINX_WITH_OPTIONS: &str = "upstream omeroweb_test {
    server 0.0.0.0:12345 fail_timeout=0;
}

server {
    listen 1234;
    server_name omeroweb.host;

    sendfile on;
    client_max_body_size 2m;

# <<<<< omero.web.nginx_server_extra_config
listen 443 ssl;
ssl_certificate {ROOT}/etc/fullchain.pem;
ssl_certificate_key {ROOT}/etc/private.key;
# omero.web.nginx_server_extra_config >>>>>

    # maintenance page serve from here
    location @maintenance_test {
        root {ROOT}/etc/templates/error;
        try_files $uri /maintainance.html =502;
    }

    # weblitz django apps serve media from here
    location /test-static {
        alias {STATIC_ROOT};
    }

    location @proxy_to_app_test {
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header Host $http_host;
        proxy_redirect off;
        proxy_buffering off;

        proxy_pass http://omeroweb_test;
    }

    location /test {

        error_page 502 @maintenance_test;
        # checks for static file, if not found proxy to app
        try_files $uri @proxy_to_app_test;
    }

}
";

/// OMERO's `nginx-location` rendering with defaults (reference_templates/
/// nginx-location.conf); the only wording change is our command name in the header.
const OMERO_NGINX_LOCATION: &str =
    "# These location blocks should be included in your server configuration
# For example:
#
##server {
##    listen 80;
##    server_name $hostname;
##
##    # SSL configuration ...
##
##    sendfile on;
##    client_max_body_size 0;
##
##    # Include generated file from omero-webctl nginx nginx-location:
##    include /opt/omero/web/omero-web-location.include;
##}

# maintenance page serve from here
location @maintenance {
    root {ROOT}/etc/templates/error;
    try_files $uri /maintainance.html =502;
}

# weblitz django apps serve media from here
location /static {
    alias {STATIC_ROOT};
}

location @proxy_to_app {
    error_page 502 =502 @maintenance;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header Host $http_host;
    proxy_redirect off;
    proxy_buffering off;

    proxy_pass http://127.0.0.1:4080;
}

location / {

    error_page 502 =502 @maintenance;
    # checks for static file, if not found proxy to app
    try_files $uri @proxy_to_app;
}
";

/// OMERO's reference for this site, plus the only additions allowed with default
/// properties: the two proxy timeout lines after `proxy_buffering off;`, where
/// OMERO's reference lacks it `error_page 502 =502 @maintenance…` at the top of
/// `@proxy_to_app` (so the maintenance page can show), and after the static files'
/// location the two of the thumbnails published for nginx (plain and versioned URLs).
/// Ends with the extra
/// newline OMERO's CLI prints after the template.
fn omero_plus_timeouts(reference: &str, site: &TestSite, timeout: u64) -> String {
    let filled = reference
        .replace("{ROOT}", &site.root().display().to_string())
        .replace(
            "{STATIC_ROOT}",
            &site.path("var/static").display().to_string(),
        );
    // `@proxy_to_app_test` names the prefix `/test`.
    let suffix = filled
        .lines()
        .find_map(|l| l.trim().strip_prefix("location @proxy_to_app"))
        .map(|rest| rest.trim_end_matches(" {").to_string())
        .unwrap_or_default();
    let prefix = suffix.replacen('_', "/", 1);
    let mut out = String::new();
    let mut lines = filled.lines().peekable();
    let mut in_static = false;
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        if line.trim().starts_with("alias ") {
            in_static = true;
        } else if in_static && line.trim() == "}" {
            in_static = false;
            let indent = &line[..line.len() - line.trim_start().len()];
            let published = site.path("var/cache/published").display().to_string();
            out.push_str(&format!(
                "\n{indent}# default thumbnails the pool published on disk, served without calling it;\n\
                 {indent}# anything else (other sizes, query strings, missing files) goes to the pool\n\
                 {indent}location ~ ^{prefix}/(?:webgateway|webclient)/render_thumbnail/(?<omeroweb_thumbnail>[0-9]+)/$ {{\n\
                 {indent}    root {published};\n\
                 {indent}    types {{ image/jpeg jpg; }}\n\
                 {indent}    # browsers revalidate (a cheap 304): a replaced file's new thumbnail shows at once\n\
                 {indent}    add_header Cache-Control \"no-cache\";\n\
                 {indent}    try_files /t$is_args/$omeroweb_thumbnail.jpg @omeroweb_versioned_thumbnail{suffix};\n\
                 {indent}}}\n\
                 \n\
                 {indent}# the same for a versioned URL (?v=<version>): a file named after the query, kept\n\
                 {indent}# a year by browsers (a new image or new settings give a new URL); others to the pool\n\
                 {indent}location @omeroweb_versioned_thumbnail{suffix} {{\n\
                 {indent}    root {published};\n\
                 {indent}    types {{ image/jpeg jpg; }}\n\
                 {indent}    add_header Cache-Control \"private, max-age=31536000, immutable\";\n\
                 {indent}    try_files /v/$omeroweb_thumbnail$is_args$args.jpg @proxy_to_app{suffix};\n\
                 {indent}}}\n"
            ));
        }
        if let Some(name) = line.trim().strip_prefix("location @proxy_to_app") {
            let suffix = name.trim_end_matches(" {");
            let inner = lines.peek().copied().unwrap_or("");
            if !inner.contains("error_page") {
                let indent = &inner[..inner.len() - inner.trim_start().len()];
                out.push_str(&format!(
                    "{indent}error_page 502 =502 @maintenance{suffix};\n"
                ));
            }
        }
        if line.trim() == "proxy_buffering off;" {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{indent}proxy_read_timeout {timeout}s;\n"));
            out.push_str(&format!("{indent}proxy_send_timeout {timeout}s;\n"));
        }
    }
    out.push('\n');
    out
}

/// Compares line by line, so a failure names the first line that differs.
fn assert_same_lines(actual: &str, expected: &str) {
    let actual_lines: Vec<&str> = actual.split('\n').collect();
    let expected_lines: Vec<&str> = expected.split('\n').collect();
    for (number, (a, e)) in actual_lines.iter().zip(&expected_lines).enumerate() {
        assert_eq!(a, e, "line {} differs\n--- actual:\n{actual}", number + 1);
    }
    assert_eq!(
        actual_lines.len(),
        expected_lines.len(),
        "line count differs\n--- actual:\n{actual}"
    );
}

#[test]
fn default_nginx_is_omeros_reference_plus_documented_additions() {
    let site = TestSite::empty();
    let out = site.run(&["nginx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_lines(&stdout(&out), &omero_plus_timeouts(OMERO_NGINX, &site, 65));
    // The explicit kind is the same.
    assert_eq!(site.run(&["nginx", "nginx"]).stdout, out.stdout);
}

#[test]
fn nginx_with_options_matches_omeros_reference() {
    let site = TestSite::empty();
    site.write_config(
        &r#""omero.web.prefix" = "/test"
"omero.web.static_url" = "/test-static/"
"omero.web.application_server.host" = "0.0.0.0"
"omero.web.application_server.port" = "12345"
"omero.web.nginx_server_extra_config" = '["listen 443 ssl;", "ssl_certificate {ROOT}/etc/fullchain.pem;", "ssl_certificate_key {ROOT}/etc/private.key;"]'
"#
        .replace("{ROOT}", &site.root().display().to_string()),
    );
    let out = site.run(&[
        "nginx",
        "--http",
        "1234",
        "--servername",
        "omeroweb.host",
        "--max-body-size",
        "2m",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_lines(
        &stdout(&out),
        &omero_plus_timeouts(OMERO_NGINX_WITH_OPTIONS, &site, 65),
    );
}

#[test]
fn default_nginx_location_is_omeros_reference_plus_documented_additions() {
    let site = TestSite::empty();
    let out = site.run(&["nginx", "nginx-location"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_lines(
        &stdout(&out),
        &omero_plus_timeouts(OMERO_NGINX_LOCATION, &site, 65),
    );
}

#[test]
fn proxy_timeouts_follow_the_worker_timeout() {
    let site = TestSite::empty();
    site.write_config("\"omero.web.wsgi_timeout\" = 300\n");
    let text = stdout(&site.run(&["nginx"]));
    assert!(text.contains("        proxy_read_timeout 305s;\n        proxy_send_timeout 305s;\n"));
    site.write_config("\"omero.web.nginx.proxy_timeout\" = 900\n");
    let text = stdout(&site.run(&["nginx", "nginx-location"]));
    assert!(text.contains("    proxy_read_timeout 900s;\n    proxy_send_timeout 900s;\n"));
    // The wsgi_args --timeout flag overrides wsgi_timeout for nginx too.
    site.write_config("\"omero.web.wsgi_args\" = \"--timeout 120\"\n");
    let text = stdout(&site.run(&["nginx"]));
    assert!(
        text.contains("        proxy_read_timeout 125s;\n"),
        "{text}"
    );
}

#[test]
fn nginx_development_has_omeros_structure_under_var_nginx() {
    let site = TestSite::empty();
    site.write_config("\"omero.web.prefix\" = \"/omero\"\n");
    let out = site.run(&["nginx", "nginx-development"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let root = site.root().display().to_string();
    let nginx_dir = format!("{root}/var/nginx");
    let expected_in_order = [
        format!("pid {nginx_dir}/nginx.pid;"),
        format!("error_log {nginx_dir}/error.log;"),
        "worker_processes  5;".to_string(),
        "events {".to_string(),
        "http {".to_string(),
        format!("    access_log    {nginx_dir}/access.log;"),
        format!("    include       {nginx_dir}/mime.types;"),
        "    default_type  application/octet-stream;".to_string(),
        "    keepalive_timeout 65;".to_string(),
        "    upstream omeroweb_omero {".to_string(),
        "        server 127.0.0.1:4080 fail_timeout=0;".to_string(),
        "    server {".to_string(),
        "        listen 8080;".to_string(),
        "        server_name _;".to_string(),
        format!("        proxy_temp_path {nginx_dir}/tmp/proxy;"),
        "        sendfile on;".to_string(),
        "        client_max_body_size 0;".to_string(),
        "        location @maintenance_omero {".to_string(),
        format!("            root {root}/etc/templates/error;"),
        "        location /static {".to_string(),
        format!("            alias {root}/var/static;"),
        "        location @proxy_to_app_omero {".to_string(),
        "            proxy_read_timeout 65s;".to_string(),
        "            proxy_pass http://omeroweb_omero;".to_string(),
        "        location /omero {".to_string(),
        "            error_page 502 @maintenance_omero;".to_string(),
        "            try_files $uri @proxy_to_app_omero;".to_string(),
    ];
    let lines: Vec<&str> = text.lines().collect();
    let mut at = 0;
    for wanted in &expected_in_order {
        match lines[at..].iter().position(|l| l == wanted) {
            Some(offset) => at += offset + 1,
            None => panic!("{wanted:?} missing or out of order in\n{text}"),
        }
    }
    for temp in ["client_body", "fastcgi", "uwsgi", "scgi"] {
        assert!(text.contains(&format!("    {temp}_temp_path {nginx_dir}/tmp/{temp};\n")));
    }
    assert!(!text.contains("/var/lib/nginx"));
}

#[test]
fn output_writes_atomically_and_confirms_on_stderr() {
    let site = TestSite::empty();
    let file = site.path("out/omeroweb.conf");
    let out = site.run(&["nginx", "--output", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert_eq!(
        stderr(&out).trim(),
        format!("Wrote the nginx config to {}", file.display())
    );
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written, stdout(&site.run(&["nginx"])));
}

#[test]
fn omero_prechecks_refuse_with_omeros_messages() {
    let site = TestSite::empty();
    site.write_config("\"omero.web.application_server\" = \"development\"\n");
    let out = site.run(&["nginx", "nginx-location"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(
        "configuration mismatch. omero.web.application_server=development cannot be used with 'omero-webctl nginx nginx-location'."
    ), "{}", stderr(&out));

    site.write_config("\"omero.web.application_server.port\" = 8080\n");
    let out = site.run(&["nginx", "nginx-development"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Port conflict: HTTP(8080) and wsgi(8080)."));
    let out = site.run(&["nginx", "nginx-location", "--http", "8080"]);
    assert!(stderr(&out).contains("Port conflict: HTTP(8080) and wsgi(8080)."));
}

#[test]
fn injection_attempts_are_refused_and_nothing_is_written() {
    let site = TestSite::empty();
    let file = site.path("injected.conf");
    let output = file.to_str().unwrap();
    let attempts: [(&[&str], &str); 7] = [
        (
            &["--servername", "a;b"],
            "--servername \"a;b\": \"a;b\" is not a host name",
        ),
        (&["--servername", "x{"], "--servername \"x{\""),
        (&["--servername", "\"x\""], "--servername"),
        (&["--servername", "a\nb"], "--servername"),
        (&["--servername", "h; return 200 pwned"], "--servername"),
        (
            &["--max-body-size", "1m;"],
            "--max-body-size \"1m;\": not an nginx size",
        ),
        (&["--max-body-size", "1m\n}"], "--max-body-size"),
    ];
    for (args, message) in attempts {
        for kind in ["nginx", "nginx-location", "nginx-development"] {
            let mut full = vec!["nginx", kind, "--output", output];
            full.extend_from_slice(args);
            let out = site.run(&full);
            assert_eq!(out.status.code(), Some(1), "{full:?} was accepted");
            let err = stderr(&out);
            assert!(err.contains(message), "{full:?}: {err}");
            assert!(err.contains("allowed: "), "{full:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{full:?}: {err}");
            assert!(!file.exists(), "{full:?} wrote {}", file.display());
        }
    }

    // Properties: refused by the config layer or by the nginx layer, one line each.
    let configs = [
        (
            r#""omero.web.nginx_server_extra_config" = '["}", "server {"]'"#,
            "closes a block it did not open",
        ),
        (
            r#""omero.web.nginx_server_extra_config" = '["location /x {"]'"#,
            "do not balance",
        ),
        (
            r#""omero.web.nginx_server_extra_config" = '["listen 80;\nserver_name x;"]'"#,
            "line break",
        ),
        (
            r#""omero.web.nginx_server_extra_config" = '["proxy_read_timeout 300s"]'"#,
            "does not end with",
        ),
        (r#""omero.web.prefix" = "/a;b""#, "omero.web.prefix"),
        (
            // An absolute URL is accepted (it only goes into a comment), but not one
            // that would break out of the comment's line.
            r#""omero.web.static_url" = "https://h/s/\nlocation / {""#,
            "omero.web.static_url",
        ),
        (
            r#""omero.web.static_root" = "/srv/my static""#,
            "omero.web.static_root",
        ),
    ];
    for (config, message) in configs {
        site.write_config(&format!("{config}\n"));
        let out = site.run(&["nginx", "--output", output]);
        assert_eq!(out.status.code(), Some(1), "{config} was accepted");
        let err = stderr(&out);
        assert!(err.contains(message), "{config}: {err}");
        assert_eq!(err.lines().count(), 1, "{config}: {err}");
        assert!(!file.exists(), "{config} wrote {}", file.display());
    }
}

/// Writes a self-signed certificate and key for localhost into the site.
fn make_certificate(site: &TestSite) -> (String, String) {
    let cert = site.path("etc/web.crt");
    let key = site.path("etc/web.key");
    std::fs::create_dir_all(site.path("etc")).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-subj", "/CN=localhost", "-days", "1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make a test certificate");
    assert!(out.status.success(), "{}", stderr(&out));
    (cert.display().to_string(), key.display().to_string())
}

fn assert_check_passes(site: &TestSite, args: &[&str]) {
    let mut full = vec!["nginx"];
    full.extend_from_slice(args);
    full.push("--check");
    let out = site.run(&full);
    let err = stderr(&out);
    assert!(out.status.success(), "{full:?} failed nginx -t:\n{err}");
    assert!(err.lines().any(|l| l == "nginx -t: ok"), "{err}");
}

#[test]
fn all_kinds_pass_the_real_nginx_check() {
    if !nginx_available("all_kinds_pass_the_real_nginx_check") {
        return;
    }
    let site = TestSite::empty();
    for kind in ["nginx", "nginx-location", "nginx-development"] {
        assert_check_passes(&site, &[kind]);
    }
    site.write_config(
        r#""omero.web.prefix" = "/test"
"omero.web.static_url" = "/test-static/"
"omero.web.nginx_server_extra_config" = '["add_header X-Frame-Options SAMEORIGIN;", "location /x {", "    return 403;", "}"]'
"#,
    );
    let options = [
        "--servername",
        "omeroweb.host *.example.org",
        "--max-body-size",
        "2m",
    ];
    for kind in ["nginx", "nginx-location", "nginx-development"] {
        let mut args = vec![kind];
        args.extend_from_slice(&options);
        assert_check_passes(&site, &args);
    }
    // Static files on another server (a form OMERO's docs show): accepted by
    // `config set`, and nginx gets no /static location but still passes its check.
    site.ok(&[
        "config",
        "set",
        "omero.web.static_url",
        "https://static.example.org/omero/",
    ]);
    for kind in ["nginx", "nginx-location", "nginx-development"] {
        assert_check_passes(&site, &[kind]);
        let text = site.ok(&["nginx", kind]);
        assert!(!text.contains("alias "), "{text}");
    }
}

#[test]
fn https_and_download_limits_pass_the_real_nginx_check() {
    if !nginx_available("https_and_download_limits_pass_the_real_nginx_check") {
        return;
    }
    let site = TestSite::empty();
    let (cert, key) = make_certificate(&site);
    site.write_config(&format!(
        r#""omero.web.nginx.ssl_certificate" = "{cert}"
"omero.web.nginx.ssl_certificate_key" = "{key}"
"omero.web.nginx.https_port" = 8443
"omero.web.nginx.download_limit_conn" = 2
"omero.web.nginx.download_limit_rate" = "10m"
"omero.web.prefix" = "/omero"
"omero.web.static_url" = "/omero/static/"
"#
    ));
    for kind in ["nginx", "nginx-location", "nginx-development"] {
        assert_check_passes(&site, &[kind]);
    }
    let text = stdout(&site.run(&["nginx"]));
    assert!(text.contains("    listen 8443 ssl;\n"));
    assert!(text.contains(&format!("    ssl_certificate {cert};\n")));
    assert!(text.contains("    return 301 https://$host:8443$request_uri;\n"));
    assert!(
        text.contains("limit_conn_zone $binary_remote_addr zone=omeroweb_downloads_omero:10m;")
    );
    assert!(text.contains("        limit_conn omeroweb_downloads_omero 2;\n"));
    assert!(text.contains("    location /omero/webgateway/archived_files/download/ {\n"));
}

#[test]
fn a_config_nginx_refuses_fails_the_check_with_nginx_lines() {
    if !nginx_available("a_config_nginx_refuses_fails_the_check_with_nginx_lines") {
        return;
    }
    let site = TestSite::empty();
    // Valid to our rules (balanced, ends with ';') but not a directive nginx knows.
    site.write_config(r#""omero.web.nginx_server_extra_config" = '["no_such_directive on;"]'"#);
    let file = site.path("checked.conf");
    let out = site.run(&["nginx", "--check", "--output", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("nginx -t: failed"), "{err}");
    assert!(
        err.contains("unknown directive \"no_such_directive\""),
        "{err}"
    );
    assert!(!file.exists());
}

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
    let mut workers = Vec::new();
    wait_until("nginx's workers", Duration::from_secs(30), || {
        workers = children(master);
        !workers.is_empty()
    });
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
