//! Clients logging in: a JSON API client with the CSRF token, and Chromium browsing its
//! groups' images.

use super::*;

#[test]
fn chromium_logs_in_browses_its_groups_images_and_logs_out() {
    let Some(chromium) = browser::chromium("chromium_logs_in_browses_and_logs_out") else {
        return;
    };
    let site = three_group_site("");
    add_user(&site, "alice", "pw-a", &["labA"]);
    site.ok(&["start"]);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", site.port);
    let mut browser = browser::Browser::launch(&chromium, browser::DESKTOP);
    // The gallery needs a login: the browser lands on OMERO's login form.
    browser.open(&url("/webclient/"));
    assert_eq!(
        browser.eval("location.pathname + location.search"),
        "/webclient/login/?url=%2Fwebclient%2F"
    );
    browser.eval(
        "document.querySelector('[name=username]').value = 'alice'; \
         document.querySelector('[name=password]').value = 'pw-a'; \
         document.querySelector('form').submit(); true",
    );
    let loaded = "location.pathname === '/webclient/' && document.readyState === 'complete' \
        && document.images.length > 0 \
        && [...document.images].every(i => i.complete && i.naturalWidth > 0)";
    assert!(
        browser.wait_for(loaded, LONG),
        "the gallery after the login"
    );
    browser.clear();
    // alice's gallery holds labA's image alone, and its viewer opens.
    let links = browser.eval(
        "[...document.querySelectorAll('a[href*=\"img_detail\"]')].map(a => a.getAttribute('href'))",
    );
    let links = links.as_array().unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    browser.open(&url(links[0].as_str().unwrap()));
    assert!(
        browser.wait_for(
            "(() => { const o = document.getElementById('overview'); return o !== null && o.complete && o.naturalWidth > 0; })()",
            LONG
        ),
        "the viewer's image"
    );
    browser.pump();
    assert!(browser.errors.is_empty(), "{:#?}", browser.errors);
    assert!(
        browser.failed_responses().is_empty(),
        "{:#?}",
        browser.failed_responses()
    );
    // Logging out (OMERO's page asks, a POST ends the session) leads to the login.
    browser.open(&url("/webclient/logout/"));
    browser.eval("document.querySelector('form').submit(); true");
    assert!(
        browser.wait_for(
            "location.pathname === '/webclient/login/' && document.readyState === 'complete'",
            LONG
        ),
        "the login page after the logout"
    );
    browser.open(&url("/webclient/"));
    assert_eq!(browser.eval("location.pathname"), "/webclient/login/");
}

#[test]
fn json_api_clients_log_in_call_the_api_and_log_out_with_the_csrf_token() {
    let site = three_group_site("");
    add_user(&site, "alice", "pw-a", &["labA"]);
    add_user(&site, "admin", "pw-admin", &["labA", "labB", "public"]);
    site.ok(&["start"]);
    let port = site.port;
    let all = ids_by_group(port, &login(port, "sessionid", "admin", "pw-admin"));
    let id_of = |group: &str| all.iter().find(|(g, _)| g == group).unwrap().1;

    // Not logged in: the API's data is refused, its login routes are open.
    let (status, _, body) = request(port, "GET", "/api/v0/m/images/", &[], "");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let (status, _, json, alice) = api_login(port, "alice", "pw-a");
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["success"], true, "{json}");
    assert_eq!(json["eventContext"]["userName"], "alice", "{json}");
    assert_eq!(json["eventContext"]["groupName"], "labA", "{json}");
    assert!(alice.contains("sessionid="), "{alice}");

    // The session is alice's: the API lists her group's image only, and the
    // image routes follow.
    let (status, _, body) = request(port, "GET", "/api/v0/m/images/", &[("Cookie", &alice)], "");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let seen: Vec<u64> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["@id"].as_u64().unwrap())
        .collect();
    assert_eq!(seen, vec![id_of("labA")], "{json}");
    for (group, expected) in [("labA", 200), ("labB", 404)] {
        let path = format!("/webgateway/render_thumbnail/{}/", id_of(group));
        assert_eq!(
            request(port, "GET", &path, &[("Cookie", &alice)], "").0,
            expected,
            "alice, {group}'s thumbnail"
        );
    }
    // A POST with only the token repeats the logged-in user's event context.
    let token = alice
        .split("; ")
        .find_map(|c| c.strip_prefix("csrftoken="))
        .unwrap()
        .to_string();
    let (status, _, body) = request(
        port,
        "POST",
        "/api/v0/login/",
        &[("Cookie", &alice), ("X-CSRFToken", &token)],
        "",
    );
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, &json["eventContext"]["userName"]),
        (200, &serde_json::json!("alice")),
        "{json}"
    );

    // Wrong password, a form error, a JSON body, and no CSRF token: OMERO's answers.
    let (status, headers, json, _) = api_login(port, "alice", "guess");
    assert_eq!(status, 403);
    assert_eq!(
        json["message"],
        "Connection not available, please check your user name and password."
    );
    assert!(set_cookie(&headers, "sessionid").is_none());
    assert!(wait_until(LONG, || site
        .log()
        .contains("Failed login for user 'alice' from 127.0.0.1")));
    let cookie = format!("csrftoken={token}");
    let (status, _, body) = request(
        port,
        "POST",
        "/api/v0/login/",
        &[("Cookie", &cookie), ("X-CSRFToken", &token)],
        "username=alice&password=pw-a",
    );
    assert_eq!(status, 403);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["message"], "Server: This field is required.");
    let (status, headers, body) = request(
        port,
        "POST",
        "/api/v0/login/",
        &[
            ("Cookie", &cookie),
            ("X-CSRFToken", &token),
            ("Content-Type", "application/json"),
        ],
        r#"{"server": 1, "username": "alice", "password": "pw-a"}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(set_cookie(&headers, "sessionid").is_some());
    let (status, headers, body) = request(
        port,
        "POST",
        "/api/v0/login/",
        &[("Cookie", &cookie)],
        "server=1&username=alice&password=pw-a",
    );
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("CSRF verification failed"));
    assert!(set_cookie(&headers, "sessionid").is_none());
    let log = site.log();
    assert!(!log.contains("pw-a") && !log.contains("guess"), "{log}");

    // Logout (the webclient's, with the token in the header as a script sends it)
    // ends the session for the API too.
    let (status, _, _) = request(
        port,
        "POST",
        "/webclient/logout/",
        &[("Cookie", &alice), ("X-CSRFToken", &token)],
        "",
    );
    assert_eq!(status, 302);
    let (status, _, body) = request(port, "GET", "/api/v0/m/images/", &[("Cookie", &alice)], "");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("Not logged in"));
}
