//! Every kind of generated config through the real `nginx -t`, and a config nginx refuses
//! failing the check with nginx's own lines.

use super::*;

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
