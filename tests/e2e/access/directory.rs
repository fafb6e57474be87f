//! Users from outside: LDAP against a real slapd (plain, LDAPS and StartTLS, certificates
//! checked) and a trusted proxy's header.

use super::*;

/// The site's `omero.ldap.*` for the test directory at `url`: users by `uid`, groups
/// by `cn`.
fn ldap_config(url: &str) -> String {
    format!(
        "\"omero.ldap.config\" = true\n\"omero.ldap.urls\" = \"{}\"\n\"omero.ldap.base\" = \"{}\"\n\
         \"omero.ldap.user_filter\" = \"(objectClass=inetOrgPerson)\"\n\"omero.ldap.user_mapping\" = \"omeName=uid,lastName=sn\"\n\
         \"omero.ldap.group_filter\" = \"(objectClass=groupOfNames)\"\n\"omero.ldap.group_mapping\" = \"name=cn\"\n\
         \"omero.ldap.new_user_group\" = \"\"\n",
        url,
        slapd::SUFFIX
    )
}

#[test]
fn ldap_users_log_in_against_a_real_slapd_and_see_their_groups_images() {
    assert!(
        slapd::available(),
        "this test needs Debian's slapd and ldap-utils (see .ci/run)"
    );
    let mut directory = slapd::Slapd::start();
    directory.add_user("carol", "pw-carol", &["labA"]);
    directory.add_user("dave", "pw-dave", &["labB"]);
    let site = three_group_site(&ldap_config(&directory.url()));
    // A local user who sees everything, to learn the images' IDs.
    add_user(&site, "admin", "pw-admin", &["labA", "labB", "public"]);
    site.ok(&["start"]);
    let port = site.port;
    let all = ids_by_group(port, &login(port, "sessionid", "admin", "pw-admin"));
    let id_of = |group: &str| all.iter().find(|(g, _)| g == group).unwrap().1;

    // carol is in labA in the directory: she sees the labA image and nothing else.
    let carol = login(port, "sessionid", "carol", "pw-carol");
    let (status, _, body) = request(port, "GET", "/api/v0/m/images/", &[("Cookie", &carol)], "");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let seen: Vec<u64> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["@id"].as_u64().unwrap())
        .collect();
    assert_eq!(seen, vec![id_of("labA")], "{json}");
    for (group, expected) in [("labA", 200), ("labB", 404), ("public", 404)] {
        let path = format!("/webgateway/render_thumbnail/{}/", id_of(group));
        let (status, _, _) = request(port, "GET", &path, &[("Cookie", &carol)], "");
        assert_eq!(status, expected, "carol, {group}'s thumbnail");
    }

    // The JSON API's login asks the same directory.
    let (status, _, json, dave) = api_login(port, "dave", "pw-dave");
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["eventContext"]["groupName"], "labB", "{json}");
    let path = format!("/webgateway/render_thumbnail/{}/", id_of("labB"));
    assert_eq!(request(port, "GET", &path, &[("Cookie", &dave)], "").0, 200);

    // A wrong LDAP password fails like a local one, and is throttled like one.
    for _ in 0..5 {
        let (status, headers, body) = login_with(port, "carol", "guess", None);
        assert_eq!(status, 200);
        assert!(set_cookie(&headers, "sessionid").is_none());
        assert!(String::from_utf8_lossy(&body).contains("check your user name and password"));
    }
    let (status, headers, _) = login_with(port, "carol", "pw-carol", None);
    assert_eq!(status, 429);
    assert!(set_cookie(&headers, "sessionid").is_none());
    assert!(wait_until(LONG, || site
        .log()
        .lines()
        .filter(|l| l.contains("Failed login for user 'carol' from 127.0.0.1"))
        .count()
        == 6));
    // Someone not in the directory is refused too.
    assert_eq!(login_with(port, "mallory", "pw-carol", None).0, 200);

    // The directory goes down: a clear answer and a log line, never a 500, and the
    // sessions made before still work.
    directory.stop();
    let (status, headers, body) = login_with(port, "dave", "pw-dave", None);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(set_cookie(&headers, "sessionid").is_none());
    assert!(String::from_utf8_lossy(&body).contains("user directory is not available"));
    assert!(wait_until(LONG, || site
        .log()
        .lines()
        .any(|l| l.contains(
            "Login for user 'dave' not checked: the user directory is not available"
        ) && l.contains(&directory.url()))));
    let log = site.log();
    assert!(!log.contains("pw-dave") && !log.contains("guess"), "{log}");
    let path = format!("/webgateway/render_thumbnail/{}/", id_of("labA"));
    assert_eq!(
        request(port, "GET", &path, &[("Cookie", &carol)], "").0,
        200
    );
}

/// The images of group labA the user named in `headers` sees through the JSON API.
fn images_seen(port: u16, headers: &[(&str, &str)]) -> (u16, Vec<String>) {
    let (status, _, body) = request(port, "GET", "/api/v0/m/images/", headers, "");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let names = json["data"]
        .as_array()
        .map(|images| {
            images
                .iter()
                .map(|image| image["Name"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    (status, names)
}

#[test]
fn the_trusted_header_names_the_user_only_from_trusted_proxies() {
    // Believed from 127.0.0.1 (the front on this host): alice is who the header says.
    let trusting = three_group_site(
        "\"omero.web.access.remote_user_header\" = \"X-Remote-User\"\n\"omero.web.access.remote_user_proxies\" = \"127.0.0.1\"\n",
    );
    add_user(&trusting, "alice", "pw-a", &["labA"]);
    trusting.ok(&["start"]);
    let (status, names) = images_seen(trusting.port, &[("X-Remote-User", "alice")]);
    assert_eq!(status, 200);
    assert_eq!(names, vec!["labA-image.ome.tiff"]);
    // Without the header nobody is logged in.
    assert_eq!(images_seen(trusting.port, &[]).0, 403);
    trusting.ok(&["stop"]);

    // The same header from an address not on the list is ignored, and logged once.
    let wary = three_group_site(
        "\"omero.web.access.remote_user_header\" = \"X-Remote-User\"\n\"omero.web.access.remote_user_proxies\" = \"192.0.2.7,10.0.0.0/8\"\n",
    );
    add_user(&wary, "alice", "pw-a", &["labA"]);
    wary.ok(&["start"]);
    for _ in 0..3 {
        assert_eq!(images_seen(wary.port, &[("X-Remote-User", "alice")]).0, 403);
    }
    let (status, headers, _) = request(
        wary.port,
        "GET",
        "/webclient/",
        &[("X-Remote-User", "alice")],
        "",
    );
    assert_eq!(status, 302);
    assert!(
        header(&headers, "location")
            .unwrap()
            .contains("/webclient/login/")
    );
    let ignored = |log: &str| {
        log.lines()
            .filter(|l| l.contains("Ignored the X-Remote-User header from 127.0.0.1"))
            .count()
    };
    assert!(wait_until(LONG, || ignored(&wary.log()) >= 1));
    // Once per worker at most (the site has two).
    let seen = ignored(&wary.log());
    assert!(seen <= 2, "{}", wary.log());
    // A login still works as ever.
    let cookie = login(wary.port, "sessionid", "alice", "pw-a");
    assert_eq!(
        images_seen(wary.port, &[("Cookie", &cookie)]).1,
        vec!["labA-image.ome.tiff"]
    );
}

#[test]
fn ldaps_and_starttls_logins_check_the_directorys_certificate() {
    assert!(
        slapd::available(),
        "this test needs Debian's slapd and ldap-utils (see .ci/run)"
    );
    let mut directory = slapd::Slapd::start_tls();
    directory.add_user("carol", "pw-carol", &["labA"]);
    let ldaps = format!("ldaps://127.0.0.1:{}", directory.tls_port.unwrap());
    let ca = format!(
        "\"omero.ldap.ca_file\" = \"{}\"\n",
        directory.ca_file().display()
    );
    let starttls = format!("{ca}\"omero.ldap.starttls\" = true\n");
    // LDAPS, and StartTLS on the plain port, with the test CA trusted: carol logs in
    // and sees her group's image.
    for (url, extra) in [(ldaps.as_str(), &ca), (directory.url().as_str(), &starttls)] {
        let site = three_group_site(&format!("{}{extra}", ldap_config(url)));
        site.ok(&["start"]);
        let cookie = login(site.port, "sessionid", "carol", "pw-carol");
        assert_eq!(
            images_seen(site.port, &[("Cookie", &cookie)]).1,
            vec!["labA-image.ome.tiff"],
            "{url} {extra}"
        );
        site.ok(&["stop"]);
    }
    // Without the CA the certificate is not trusted, and without StartTLS the
    // directory (which demands TLS) answers nothing: no login either way, no 500.
    for config in [
        ldap_config(&ldaps),
        format!("{}{ca}", ldap_config(&directory.url())),
    ] {
        let site = three_group_site(&config);
        site.ok(&["start"]);
        let (status, headers, _) = login_with(site.port, "carol", "pw-carol", None);
        assert_eq!(status, 503, "{config}");
        assert!(set_cookie(&headers, "sessionid").is_none());
        assert!(wait_until(LONG, || site
            .log()
            .lines()
            .any(|l| l.contains("Login for user 'carol' not checked"))));
        site.ok(&["stop"]);
    }
}
