//! `omero-webctl nginx` output against OMERO's reference configs, its prechecks, atomic
//! writes, and refused injections.

use super::*;

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
