//! Access control of the embedded gateway (issue 24): local users and groups, OMERO's
//! login and logout, sessions shared by every worker, the public user, and the guard
//! on every route, nginx's published thumbnails included. Real pool, real HTTP.

use crate::support;
use crate::support::browser;
use crate::support::slapd;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use support::{
    Headers, TestSite, add_user, csrf, fetch, free_port, header, login, login_with,
    nginx_available, request, set_cookie, wait_until,
};

const LONG: Duration = Duration::from_secs(60);

/// OMERO's documented filter for a public site (a negative lookahead: no downloads,
/// no webadmin, no logout or annotating as the public user).
const PUBLIC_FILTER: &str = r"^/(?!webadmin|webclient/(action|logout|annotate_(file|tag|comment|rating|map)|tag_image|attach_to_(share|field)|publish|save_(rdef|annotations))|webgateway/(archived_files|download_as))";

/// A JSON API client's login as omero-web's docs show it: `token/` for the CSRF
/// token (and its cookie), then a POST to `login/` with the token in `X-CSRFToken`.
/// The status, headers and JSON answer, and the `Cookie` value to send from then on.
fn api_login(port: u16, user: &str, password: &str) -> (u16, Headers, serde_json::Value, String) {
    let (status, headers, body) = request(port, "GET", "/api/v0/token/", &[], "");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let token: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let token = token["data"].as_str().unwrap().to_string();
    assert_eq!(set_cookie(&headers, "csrftoken").as_deref(), Some(&*token));
    let cookie = format!("csrftoken={token}");
    let (status, headers, body) = request(
        port,
        "POST",
        "/api/v0/login/",
        &[("Cookie", &cookie), ("X-CSRFToken", &token)],
        &format!("server=1&username={user}&password={password}"),
    );
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("{status}: {}", String::from_utf8_lossy(&body)));
    let cookie = match set_cookie(&headers, "sessionid") {
        Some(session) => format!("{cookie}; sessionid={session}"),
        None => cookie,
    };
    (status, headers, json, cookie)
}

/// A site whose repository holds one image of group labA, one of labB and one of the
/// public group (moved out of the demo directory before the pool starts).
fn three_group_site(extra_config: &str) -> TestSite {
    let site = TestSite::with_demo(
        2,
        extra_config,
        &[
            "--images",
            "3",
            "--size",
            "128",
            "--channels",
            "2",
            "--z",
            "2",
        ],
    );
    let repo = site.root().join("var/repository");
    for (n, group) in [(1, "labA"), (2, "labB"), (3, "public")] {
        std::fs::create_dir_all(repo.join(group)).unwrap();
        std::fs::rename(
            repo.join(format!("demo/demo-00{n}.ome.tiff")),
            repo.join(format!("{group}/{group}-image.ome.tiff")),
        )
        .unwrap();
    }
    site
}

/// Image IDs by group, as a member of every group lists them through the JSON API.
fn ids_by_group(port: u16, cookie: &str) -> Vec<(String, u64)> {
    let (status, _, body) = request(port, "GET", "/api/v0/m/images/", &[("Cookie", cookie)], "");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut ids: Vec<(String, u64)> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| {
            let name = image["Name"].as_str().unwrap();
            let group = name.split('-').next().unwrap().to_string();
            (group, image["@id"].as_u64().unwrap())
        })
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 3, "{json}");
    ids
}

#[test]
fn user_and_group_commands_keep_a_private_store() {
    use std::os::unix::fs::PermissionsExt;
    let site = TestSite::new(1);
    add_user(&site, "alice", "correct horse", &["labA"]);
    let store = site.root().join("etc/access.json");
    let meta = std::fs::metadata(&store).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&store).unwrap();
    assert!(text.contains("$argon2id$"), "{text}");
    assert!(!text.contains("correct horse"));
    assert_eq!(site.ok(&["user", "list"]), "alice\tlabA\n");

    // Clear one-line errors; nothing changes.
    let before = std::fs::read(&store).unwrap();
    for (args, error) in [
        (vec!["user", "del", "bob"], "no user bob"),
        (vec!["group", "add", "../x"], "invalid group name \"../x\""),
        (
            vec!["group", "members", "labA", "--add", "bob"],
            "no user bob",
        ),
        (vec!["group", "del", "labZ"], "no group labZ"),
    ] {
        let out = site.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(error), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert_eq!(std::fs::read(&store).unwrap(), before, "{args:?}");
    }
    // Adding the same user again, or an empty password, is refused.
    let mut dup = site
        .command(&["user", "add", "alice", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    dup.stdin.take().unwrap().write_all(b"x\n").unwrap();
    let out = dup.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("user alice exists already"));
    let mut empty = site
        .command(&["user", "add", "bob", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    empty.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = empty.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty password refused"));
    // Without --password-stdin and without a terminal: said plainly.
    let out = site
        .command(&["user", "passwd", "alice"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--password-stdin"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(&store).unwrap(), before);

    // A symlink in the store's place is refused, read or written, and left alone.
    let elsewhere = site.root().join("elsewhere.json");
    std::fs::rename(&store, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &store).unwrap();
    for args in [vec!["user", "list"], vec!["group", "add", "labX"]] {
        let out = site.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains("is a symlink; refused"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read(&elsewhere).unwrap(), before);
    std::fs::remove_file(&store).unwrap();
    std::fs::rename(&elsewhere, &store).unwrap();

    site.ok(&["group", "add", "labB"]);
    add_user(&site, "bob", "pw-b", &[]);
    assert_eq!(
        site.ok(&["group", "members", "labB", "--add", "bob", "--add", "alice"]),
        "alice\nbob\n"
    );
    assert_eq!(site.ok(&["user", "list"]), "alice\tlabA,labB\nbob\tlabB\n");
    site.ok(&["user", "del", "alice"]);
    assert_eq!(site.ok(&["group", "members", "labB"]), "bob\n");
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn access_control_is_off_until_the_first_user_and_login_sessions_work_across_workers() {
    let site = three_group_site(
        "\"omero.web.session_cookie_name\" = \"omero_session\"\n\"omero.web.access.idle_timeout\" = 3\n",
    );
    site.ok(&["start"]);
    let port = site.port;
    // No user store: everyone sees everything, as before.
    let (status, _, _) = fetch(port, "/webgateway/render_thumbnail/1/", &[]);
    assert_eq!(status, 200);
    let (status, _, body) = fetch(port, "/webclient/", &[]);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("3 images"));

    // Without access control the login POST goes on to `url` too, but only to a
    // plain path here: a CR/LF in it neither injects a header nor costs the request.
    let (status, headers, _) = request(
        port,
        "POST",
        "/webclient/login/?url=%2Fx%0D%0ASet-Cookie:%20a=b",
        &[],
        "",
    );
    assert_eq!(
        (status, header(&headers, "location")),
        (302, Some("/webclient/"))
    );

    // The first user switches it on at once, in every worker.
    add_user(&site, "alice", "pw-a", &["labA"]);
    for _ in 0..6 {
        let (status, headers, _) = fetch(port, "/webgateway/render_thumbnail/1/?x=1", &[]);
        assert_eq!(status, 302);
        assert_eq!(
            header(&headers, "location"),
            Some("/webclient/login/?url=%2Fwebgateway%2Frender_thumbnail%2F1%2F%3Fx%3D1")
        );
    }
    // OMERO's login_required: 403 for XHR, a JSON 403 from the API.
    let (status, _, body) = fetch(
        port,
        "/webgateway/imgData/1/",
        &[("X-Requested-With", "XMLHttpRequest")],
    );
    assert_eq!((status, body.len()), (403, 0));
    let (status, _, body) = fetch(port, "/api/v0/m/images/", &[]);
    assert_eq!(status, 403);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"message": "Not logged in"})
    );

    // A POST without the CSRF pair is refused before any password is looked at.
    let (status, _, body) = request(
        port,
        "POST",
        "/webclient/login/",
        &[],
        "username=alice&password=pw-a",
    );
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("CSRF verification failed"));
    // Wrong password: the form again, no session.
    let (status, headers, body) = login_with(port, "alice", "wrong", None);
    assert_eq!(status, 200);
    assert!(set_cookie(&headers, "omero_session").is_none());
    assert!(String::from_utf8_lossy(&body).contains("please check your user name and password"));

    // The cookie is named by omero.web.session_cookie_name and shaped by its siblings.
    let (status, headers, _) = login_with(port, "alice", "pw-a", None);
    assert_eq!(status, 302);
    let cookie_line = headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("omero_session="))
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        cookie_line.ends_with("; Path=/; HttpOnly; SameSite=Lax"),
        "{cookie_line}"
    );
    let first = format!(
        "omero_session={}",
        set_cookie(&headers, "omero_session").unwrap()
    );
    // Every worker knows the session (files, not a worker's memory): many requests on
    // fresh connections, spread over both workers, all served.
    for _ in 0..20 {
        let (status, headers, _) = fetch(
            port,
            "/webgateway/render_thumbnail/1/",
            &[("Cookie", &first)],
        );
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "cache-control"), Some("private"));
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "vary" && v.contains("Cookie")),
            "{headers:?}"
        );
    }
    // Logging in again with that cookie gives a new session ID and ends the old one.
    let (status, headers, _) = login_with(port, "alice", "pw-a", Some(&first));
    assert_eq!(status, 302);
    let second = format!(
        "omero_session={}",
        set_cookie(&headers, "omero_session").unwrap()
    );
    assert_ne!(first, second);
    assert_eq!(
        fetch(
            port,
            "/webgateway/render_thumbnail/1/",
            &[("Cookie", &first)]
        )
        .0,
        302
    );
    assert_eq!(
        fetch(
            port,
            "/webgateway/render_thumbnail/1/",
            &[("Cookie", &second)]
        )
        .0,
        200
    );
    // Logout (a POST with the CSRF pair) ends it.
    let token = csrf(port);
    let (status, headers, _) = request(
        port,
        "POST",
        "/webclient/logout/",
        &[("Cookie", &format!("csrftoken={token}; {second}"))],
        &format!("csrfmiddlewaretoken={token}"),
    );
    assert_eq!(
        (status, header(&headers, "location")),
        (302, Some("/webclient/login/"))
    );
    assert_eq!(
        fetch(
            port,
            "/webgateway/render_thumbnail/1/",
            &[("Cookie", &second)]
        )
        .0,
        302
    );
    // A `url` that is not a plain path on this site leads to the webclient: no open
    // redirect (browsers read "/<tab>/host" as "//host"), no header injection.
    for target in [
        "%2F%09%2Fevil.example",
        "%2F%2Fevil.example",
        "%2Fx%0D%0ASet-Cookie:%20a=b",
    ] {
        let token = csrf(port);
        let (status, headers, _) = request(
            port,
            "POST",
            &format!("/webclient/login/?url={target}"),
            &[("Cookie", &format!("csrftoken={token}"))],
            &format!("csrfmiddlewaretoken={token}&username=alice&password=pw-a"),
        );
        assert_eq!(
            (status, header(&headers, "location")),
            (302, Some("/webclient/")),
            "{target}"
        );
    }
    // Idle expiry (omero.web.access.idle_timeout = 3 s).
    let third = login(port, "omero_session", "alice", "pw-a");
    assert_eq!(
        fetch(
            port,
            "/webgateway/render_thumbnail/1/",
            &[("Cookie", &third)]
        )
        .0,
        200
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        fetch(
            port,
            "/webgateway/render_thumbnail/1/",
            &[("Cookie", &third)]
        )
        .0,
        302
    );
    // A deleted user's sessions end with them.
    let fourth = login(port, "omero_session", "alice", "pw-a");
    site.ok(&["user", "del", "alice"]);
    assert_eq!(
        fetch(
            port,
            "/webgateway/render_thumbnail/1/",
            &[("Cookie", &fourth)]
        )
        .0,
        302
    );
}

#[test]
fn failed_logins_are_throttled_per_user_and_logged_as_omero_logs() {
    let site = three_group_site("");
    add_user(&site, "alice", "pw-a", &["labA"]);
    site.ok(&["start"]);
    let port = site.port;
    for _ in 0..5 {
        assert_eq!(login_with(port, "alice", "guess", None).0, 200);
    }
    // Now even the right password is refused, without being checked.
    let (status, headers, body) = login_with(port, "alice", "pw-a", None);
    assert_eq!(status, 429);
    assert!(set_cookie(&headers, "sessionid").is_none());
    assert!(String::from_utf8_lossy(&body).contains("Too many failed logins"));
    // Another user from the same address is not blocked yet.
    add_user(&site, "bob", "pw-b", &["labB"]);
    login(port, "sessionid", "bob", "pw-b");
    // One line per failure, in OMEROweb.log's shape; never a password.
    assert!(wait_until(LONG, || site
        .log()
        .lines()
        .filter(|l| l.contains("Failed login for user 'alice' from 127.0.0.1"))
        .count()
        == 6));
    let log = site.log();
    let shape = support::omero_log_line();
    for line in log.lines().filter(|l| l.contains("Failed login")) {
        assert!(shape.is_match(line), "{line}");
        assert!(line.contains("WARNI"), "{line}");
    }
    assert!(!log.contains("guess") && !log.contains("pw-a"), "{log}");
}

/// The route families the guard covers; `{id}` is the image. `public` says whether
/// the documented public filter lets the public user open it.
const FAMILIES: &[(&str, bool)] = &[
    ("/webgateway/render_thumbnail/{id}/", true),
    ("/webgateway/render_thumbnail/{id}/48/", true),
    ("/webgateway/render_birds_eye_view/{id}/", true),
    ("/webgateway/render_image/{id}/0/0/", true),
    (
        "/webgateway/render_image_region/{id}/0/0/?region=0,0,32,32",
        true,
    ),
    ("/webgateway/render_split_channel/{id}/0/0/", true),
    ("/webgateway/render_row_plot/{id}/0/0/10/", true),
    ("/webgateway/histogram_json/{id}/channel/0/", true),
    ("/webgateway/imgData/{id}/", true),
    ("/webgateway/get_thumbnail/{id}/", true),
    ("/webgateway/get_image_rdefs_json/{id}/", true),
    ("/webclient/img_detail/{id}/", true),
    ("/webclient/render_image_download/{id}/?format=png", true),
    ("/api/v0/m/images/{id}/", true),
    ("/webgateway/archived_files/download/{id}/", false),
    ("/webgateway/archived_files/download/?image={id}", false),
];

#[test]
fn every_route_family_answers_exactly_the_viewers_allowed_to_see_the_image() {
    let nginx = nginx_available("the access matrix's nginx column");
    let site = three_group_site(&format!(
        "\"omero.web.public.enabled\" = true\n\"omero.web.public.url_filter\" = '{PUBLIC_FILTER}'\n"
    ));
    add_user(&site, "alice", "pw-a", &["labA"]);
    add_user(&site, "bob", "pw-b", &["labB"]);
    add_user(&site, "root-of-all", "pw-r", &["labA", "labB", "public"]);
    site.ok(&["start"]);
    let port = site.port;
    let all = login(port, "sessionid", "root-of-all", "pw-r");
    let images = ids_by_group(port, &all);
    let viewers = [
        ("alice", Some(login(port, "sessionid", "alice", "pw-a"))),
        ("bob", Some(login(port, "sessionid", "bob", "pw-b"))),
        // The public user is whoever comes without a session.
        ("public", None),
    ];
    let mut cells = 0;
    for (family, public_ok) in FAMILIES {
        for (group, id) in &images {
            let path = family.replace("{id}", &id.to_string());
            for (viewer, cookie) in &viewers {
                let headers: Vec<(&str, &str)> = cookie
                    .as_deref()
                    .map(|c| vec![("Cookie", c)])
                    .unwrap_or_default();
                let (status, _, body) = fetch(port, &path, &headers);
                let allowed = match *viewer {
                    "alice" => group == "labA",
                    "bob" => group == "labB",
                    _ => group == "public" && *public_ok,
                };
                assert_eq!(
                    (200..300).contains(&status),
                    allowed,
                    "{viewer} on {group}'s image: {path} answered {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                );
                cells += 1;
            }
        }
    }
    assert_eq!(cells, FAMILIES.len() * 9);

    // Batches and listings only ever hold what the viewer sees.
    let id_of = |g: &str| images.iter().find(|(group, _)| group == g).unwrap().1;
    let (a, b, p) = (id_of("labA"), id_of("labB"), id_of("public"));
    let batch = format!("/webgateway/get_thumbnails/?id={a}&id={b}&id={p}");
    for (viewer, cookie, expected) in [
        ("alice", viewers[0].1.as_deref(), vec![a]),
        ("bob", viewers[1].1.as_deref(), vec![b]),
        ("public", None, vec![p]),
    ] {
        let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("Cookie", c)]).unwrap_or_default();
        let (status, _, body) = fetch(port, &batch, &headers);
        assert_eq!(status, 200);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut got: Vec<u64> = json
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.is_string())
            .map(|(k, _)| k.parse().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, expected, "{viewer}: {json}");
        let (_, _, body) = fetch(port, "/api/v0/m/images/", &headers);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let listed: Vec<u64> = json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["@id"].as_u64().unwrap())
            .collect();
        assert_eq!(listed, expected, "{viewer}'s API listing");
        let (_, _, page) = fetch(port, "/webclient/", &headers);
        let page = String::from_utf8_lossy(&page);
        assert!(page.contains("1 image"), "{viewer}'s gallery: {page}");
    }
    // The webclient's thumbnail answers an image one may not see as a missing one:
    // the placeholder.
    let missing = fetch(
        port,
        "/webclient/render_thumbnail/999999/",
        &[("Cookie", &all)],
    )
    .2;
    let alice = viewers[0].1.as_deref().unwrap();
    assert_eq!(
        fetch(
            port,
            &format!("/webclient/render_thumbnail/{b}/"),
            &[("Cookie", alice)]
        )
        .2,
        missing
    );
    assert_ne!(
        fetch(
            port,
            &format!("/webclient/render_thumbnail/{a}/"),
            &[("Cookie", alice)]
        )
        .2,
        missing
    );

    if !nginx {
        return;
    }
    // nginx's published path: only the public image is published, so only it is
    // served without the pool; the others go to the pool and its guard.
    let http = free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);
    let published = site.root().join("var/cache/published/t");
    assert!(
        wait_until(LONG, || published.join(format!("{p}.jpg")).is_file()),
        "the public thumbnail is published: {}",
        site.log()
    );
    // Give the publisher time for more passes: the others must stay unpublished.
    std::thread::sleep(Duration::from_secs(3));
    for id in [a, b] {
        assert!(!published.join(format!("{id}.jpg")).exists());
    }
    for (group, id) in &images {
        for app in ["webgateway", "webclient"] {
            let path = format!("/{app}/render_thumbnail/{id}/");
            let (status, headers, body) = fetch(http, &path, &[]);
            if group == "public" {
                assert_eq!(status, 200, "{path}");
                assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
            } else {
                // The pool answered: to the public user (this URL is one the filter
                // allows) another group's image is one that is not there.
                // (the webclient's thumbnail: its placeholder).
                let (direct, _, direct_body) = fetch(port, &path, &[]);
                assert!(
                    !(200..300).contains(&status) || (app == "webclient" && body == missing),
                    "{group}'s {path} through nginx: {status}"
                );
                assert_eq!((status, body), (direct, direct_body), "{group}'s {path}");
            }
        }
    }
}

#[test]
fn passwords_typed_at_a_terminal_are_not_echoed_and_must_match() {
    let site = TestSite::new(1);
    let command = format!(
        "{} --omerodir {} user add carol --group labC",
        support::BIN,
        site.root().display()
    );
    let Some(tmux) = support::tmux::Tmux::start(&command, 100, 20) else {
        return;
    };
    tmux.wait_for(LONG, "the first prompt", |s| s.contains("Password:"));
    tmux.text("typed secret");
    tmux.keys(&["Enter"]);
    tmux.wait_for(LONG, "the second prompt", |s| {
        s.contains("Password (again):")
    });
    tmux.text("typed secret");
    tmux.keys(&["Enter"]);
    tmux.wait_for(LONG, "the command's end", |s| s.contains("PANEL-EXITED 0"));
    let screen = tmux.screen();
    assert!(!screen.contains("typed secret"), "{screen}");
    assert!(screen.contains("added user carol"), "{screen}");
    // The terminal's echo is back on afterwards.
    assert!(screen.contains(" echo "), "{screen}");
    assert_eq!(site.ok(&["user", "list"]), "carol\tlabC\n");
    let store = std::fs::read_to_string(site.root().join("etc/access.json")).unwrap();
    assert!(!store.contains("typed secret"));

    // Two different passwords: refused, nothing written.
    let command = format!(
        "{} --omerodir {} user passwd carol",
        support::BIN,
        site.root().display()
    );
    let Some(tmux) = support::tmux::Tmux::start(&command, 100, 20) else {
        return;
    };
    tmux.wait_for(LONG, "the first prompt", |s| s.contains("Password:"));
    tmux.text("one");
    tmux.keys(&["Enter"]);
    tmux.wait_for(LONG, "the second prompt", |s| {
        s.contains("Password (again):")
    });
    tmux.text("two");
    tmux.keys(&["Enter"]);
    tmux.wait_for(LONG, "the command's end", |s| s.contains("PANEL-EXITED 1"));
    assert!(
        tmux.screen()
            .contains("the passwords differ; nothing changed")
    );
    assert_eq!(
        std::fs::read_to_string(site.root().join("etc/access.json")).unwrap(),
        store
    );
}

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
fn the_first_user_unpublishes_private_thumbnails_at_once() {
    let site = three_group_site(&format!(
        "\"omero.web.public.enabled\" = true\n\"omero.web.public.url_filter\" = '{PUBLIC_FILTER}'\n"
    ));
    site.ok(&["start"]);
    let published = site.root().join("var/cache/published/t");
    let count = || std::fs::read_dir(&published).map_or(0, |d| d.count());
    // Without access control every image's thumbnail is published for nginx.
    assert!(
        wait_until(LONG, || count() == 3),
        "all three published: {}",
        site.log()
    );
    let index = std::fs::read_to_string(site.root().join("var/.omero-webctl-index.json")).unwrap();
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    let public_id = index["images"]["public/public-image.ome.tiff"]
        .as_u64()
        .unwrap();
    add_user(&site, "alice", "pw-a", &["labA"]);
    // Private ones are gone when the command returns, not a publisher pass later
    // (the public one may be back already: the publisher runs meanwhile).
    let public_file = format!("{public_id}.jpg");
    let private_left: Vec<_> = std::fs::read_dir(&published)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| *name != public_file)
        .collect();
    assert!(private_left.is_empty(), "{private_left:?}");
    // The publisher puts back the public group's only.
    assert!(wait_until(LONG, || published.join(&public_file).is_file()));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(), 1);
}

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

/// A site of `three_group_site`'s shape whose sessions live in `redis`, as OMERO.web's
/// properties say it (Django's cache engine, the default cache on django-redis).
fn redis_session_site(redis: &support::redis::Redis) -> TestSite {
    let site = three_group_site("");
    site.ok(&[
        "config",
        "set",
        "omero.web.session_engine",
        "django.contrib.sessions.backends.cache",
    ]);
    let caches = format!(
        r#"{{"default": {{"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "{}"}}}}"#,
        redis.url()
    );
    site.ok(&["config", "set", "omero.web.caches", &caches]);
    site
}

#[test]
fn sessions_in_redis_are_shared_by_two_pools_listed_killed_and_fail_closed() {
    let test = "sessions_in_redis_are_shared_by_two_pools_listed_killed_and_fail_closed";
    let Some(redis) = support::redis::Redis::start(test) else {
        return;
    };
    let first = redis_session_site(&redis);
    let second = redis_session_site(&redis);
    add_user(&first, "alice", "pw-a", &["labA"]);
    // The second site shares the users: a copy of the same store.
    std::fs::create_dir_all(second.root().join("etc")).unwrap();
    std::fs::copy(
        first.root().join("etc/access.json"),
        second.root().join("etc/access.json"),
    )
    .unwrap();
    first.ok(&["start"]);
    second.ok(&["start"]);
    for site in [&first, &second] {
        assert!(
            wait_until(LONG, || site
                .log()
                .contains(&format!("Sessions are kept in Redis {}", redis.url()))),
            "the gateway says where its sessions are: {}",
            site.log()
        );
    }
    let thumbnail = "/webgateway/render_thumbnail/1/";
    assert_eq!(fetch(second.port, thumbnail, &[]).0, 302);

    // A login through the first pool is valid through the second.
    let cookie = login(first.port, "sessionid", "alice", "pw-a");
    let id = cookie.strip_prefix("sessionid=").unwrap().to_string();
    for port in [first.port, second.port] {
        assert_eq!(fetch(port, thumbnail, &[("Cookie", &cookie)]).0, 200);
    }
    // One key with a TTL (the session's next expiry), no file.
    let key = format!("omero-webctl:session:{id}");
    let ttl: i64 = redis.cli(&["TTL", &key]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 600, "TTL {ttl}");
    assert!(!first.root().join("var/sessions").join(&id).exists());

    // `sessions list` shows it from either site, with an ID prefix only.
    let listed: serde_json::Value =
        serde_json::from_str(&second.ok(&["sessions", "list", "--json"])).unwrap();
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["user"], "alice");
    assert_eq!(rows[0]["address"], "127.0.0.1");
    assert_eq!(rows[0]["id"].as_str().unwrap(), &id[..12]);
    assert!(rows[0]["expires"].as_u64().unwrap() > rows[0]["created"].as_u64().unwrap());
    let table = first.ok(&["sessions", "list"]);
    assert!(
        table.contains("alice") && table.contains(&id[..12]),
        "{table}"
    );
    assert!(!table.contains(&id), "a full ID is a login: {table}");

    // Killed through the second site: logged out in both.
    let out = second.ok(&["sessions", "kill", "--user", "alice"]);
    assert!(out.contains("Ended 1 session"), "{out}");
    for port in [first.port, second.port] {
        assert_eq!(fetch(port, thumbnail, &[("Cookie", &cookie)]).0, 302);
    }
    assert_eq!(redis.cli(&["EXISTS", &key]), "0");
    // By ID prefix too.
    let cookie = login(second.port, "sessionid", "alice", "pw-a");
    let id = cookie.strip_prefix("sessionid=").unwrap().to_string();
    first.ok(&["sessions", "kill", &id[..10]]);
    assert_eq!(fetch(first.port, thumbnail, &[("Cookie", &cookie)]).0, 302);

    // Redis down: a request with a session and a login both get a clear 503 and a log
    // line; nobody is let in.
    let cookie = login(first.port, "sessionid", "alice", "pw-a");
    drop(redis);
    let (status, headers, body) = fetch(first.port, thumbnail, &[("Cookie", &cookie)]);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("session store is not available"));
    assert_eq!(header(&headers, "retry-after"), Some("5"));
    let (status, _, _) = login_with(second.port, "alice", "pw-a", None);
    assert_eq!(status, 503);
    assert_eq!(fetch(second.port, thumbnail, &[]).0, 302);
    for site in [&first, &second] {
        assert!(
            wait_until(LONG, || {
                site.log()
                    .lines()
                    .any(|l| l.contains(" WARNI ") && l.contains("session store Redis"))
            }),
            "{}",
            site.log()
        );
    }
    assert!(
        second
            .log()
            .contains("Cannot start a session for user 'alice': session store Redis")
    );
    let listing = first.run(&["sessions", "list"]);
    assert!(!listing.status.success());
    assert!(
        support::stderr(&listing).contains("cannot list the sessions"),
        "{listing:?}"
    );
}

#[test]
fn sessions_in_files_are_listed_with_a_prefix_and_killed_by_id_or_user() {
    let site = three_group_site("");
    add_user(&site, "alice", "pw-a", &["labA"]);
    add_user(&site, "bob", "pw-b", &["labB"]);
    site.ok(&["start"]);
    assert!(
        wait_until(LONG, || site.log().contains(&format!(
            "Sessions are kept in files under {}",
            site.root().join("var/sessions").display()
        ))),
        "{}",
        site.log()
    );
    let port = site.port;
    let thumbnail = "/webgateway/render_thumbnail/1/";
    let alice = login(port, "sessionid", "alice", "pw-a");
    let alice_again = login(port, "sessionid", "alice", "pw-a");
    let bob = login(port, "sessionid", "bob", "pw-b");
    let listed: serde_json::Value =
        serde_json::from_str(&site.ok(&["sessions", "list", "--json"])).unwrap();
    let mut users: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user"].as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "alice", "bob"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"].as_str().unwrap().len() == 12 && r["address"] == "127.0.0.1")
    );
    let table = site.ok(&["sessions", "list"]);
    assert!(
        table.starts_with("Sessions are kept in files under"),
        "{table}"
    );

    // Too short a prefix is refused, and nothing ends.
    let short = site.run(&["sessions", "kill", "abc"]);
    assert!(!short.status.success());
    assert!(support::stderr(&short).contains("at least 8 characters"));
    let bob_id = bob.strip_prefix("sessionid=").unwrap();
    site.ok(&["sessions", "kill", &bob_id[..12]]);
    assert_eq!(fetch(port, thumbnail, &[("Cookie", &bob)]).0, 302);
    assert_eq!(fetch(port, thumbnail, &[("Cookie", &alice)]).0, 200);
    let out = site.ok(&["sessions", "kill", "--user", "alice"]);
    assert!(out.contains("Ended 2 session(s)"), "{out}");
    for cookie in [&alice, &alice_again] {
        assert_eq!(fetch(port, thumbnail, &[("Cookie", cookie)]).0, 302);
    }
    assert!(site.ok(&["sessions", "list"]).contains("No sessions."));
}

/// imgData's `perms` tell OMERO.iviewer whether its "Save" works: a member of the
/// owning group may save rendering settings; the public user sees the public image
/// but may not save (refused even where the site lets it POST).
#[test]
fn members_may_save_rendering_settings_and_the_public_user_may_not() {
    let site = three_group_site(&format!(
        "\"omero.web.public.enabled\" = true\n\"omero.web.public.get_only\" = false\n\"omero.web.public.url_filter\" = '{PUBLIC_FILTER}'\n"
    ));
    add_user(&site, "alice", "pw-a", &["labA", "labB", "public"]);
    site.ok(&["start"]);
    let port = site.port;
    let alice = login(port, "sessionid", "alice", "pw-a");
    let images = ids_by_group(port, &alice);
    let id_of = |g: &str| images.iter().find(|(group, _)| group == g).unwrap().1;
    let (lab_a, public) = (id_of("labA"), id_of("public"));
    let perms = |id: u64, cookie: Option<&str>| {
        let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("Cookie", c)]).unwrap_or_default();
        let (status, _, body) = request(
            port,
            "GET",
            &format!("/webgateway/imgData/{id}/"),
            &headers,
            "",
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json["perms"].clone()
    };
    let save = |id: u64, cookie: Option<&str>| {
        let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("Cookie", c)]).unwrap_or_default();
        let (status, _, body) = request(
            port,
            "POST",
            &format!("/webgateway/saveImgRDef/{id}/"),
            &headers,
            "c=1%7C5%3A60%24FF0000%2C2%7C0%3A90%2400FF00&m=c",
        );
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    for id in [lab_a, public] {
        assert_eq!(
            perms(id, Some(&alice))["canAnnotate"],
            true,
            "alice on {id}"
        );
        assert_eq!(
            save(id, Some(&alice)),
            (200, "true".to_string()),
            "alice on {id}"
        );
    }
    let public_perms = perms(public, None);
    assert_eq!(public_perms["canAnnotate"], false, "{public_perms}");
    assert_eq!(public_perms["canEdit"], false, "{public_perms}");
    let before = std::fs::read_dir(site.root().join("var/rdefs"))
        .map(|d| d.count())
        .unwrap_or(0);
    let (status, body) = save(public, None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not save rendering settings"), "{body}");
    // Alice's saved window is still what she sees (her own set: the public user sees
    // the owner's, see the per-user test below).
    let (_, _, rdef) = request(
        port,
        "GET",
        &format!("/webgateway/imgData/{public}/"),
        &[("Cookie", &alice)],
        "",
    );
    let rdef: serde_json::Value = serde_json::from_slice(&rdef).unwrap();
    assert_eq!(rdef["channels"][0]["window"]["start"], 5.0, "{rdef}");
    assert_eq!(rdef["channels"][0]["window"]["end"], 60.0, "{rdef}");
    let after = std::fs::read_dir(site.root().join("var/rdefs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(before, after);
}

#[test]
fn each_user_renders_with_their_own_settings_and_the_published_thumbnail_stays_the_owners() {
    let site = three_group_site(&format!(
        "\"omero.web.public.enabled\" = true\n\"omero.web.public.url_filter\" = '{PUBLIC_FILTER}'\n"
    ));
    add_user(&site, "alice", "pw-a", &["labA", "labB", "public"]);
    add_user(&site, "bob", "pw-b", &["labA", "labB", "public"]);
    site.ok(&["start"]);
    let port = site.port;
    let alice = login(port, "sessionid", "alice", "pw-a");
    let bob = login(port, "sessionid", "bob", "pw-b");
    let images = ids_by_group(port, &alice);
    let id = images.iter().find(|(g, _)| g == "public").unwrap().1;
    let get = |path: &str, cookie: Option<&str>| {
        let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("Cookie", c)]).unwrap_or_default();
        let (status, _, body) = request(port, "GET", path, &headers, "");
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        body
    };
    let post = |path: &str, cookie: &str, body: &str| {
        let (status, _, answer) = request(port, "POST", path, &[("Cookie", cookie)], body);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&answer));
        String::from_utf8_lossy(&answer).into_owned()
    };
    let window = |cookie: Option<&str>| {
        let json: serde_json::Value =
            serde_json::from_slice(&get(&format!("/webgateway/imgData/{id}/"), cookie)).unwrap();
        let w = &json["channels"][0]["window"];
        (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap())
    };
    let render = |cookie: Option<&str>| get(&format!("/webgateway/render_image/{id}/0/0/"), cookie);
    let thumb = |cookie: Option<&str>| get(&format!("/webgateway/render_thumbnail/{id}/"), cookie);
    // The version in the gallery's thumbnail URL (`?v=`), as a user's browser keeps it.
    let version = |cookie: &str| {
        let page = String::from_utf8(get("/webclient/", Some(cookie))).unwrap();
        let marker = format!("render_thumbnail/{id}/?v=");
        let start = page.find(&marker).expect("the image's thumbnail URL") + marker.len();
        page[start..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
    };
    let owners_version = version(&bob);

    // The owner's rendering (the imported defaults): the public user's thumbnail is
    // published for nginx.
    let defaults = window(None);
    let owners_render = render(None);
    let owners_thumb = thumb(None);
    let published = site.root().join(format!("var/cache/published/t/{id}.jpg"));
    assert!(
        wait_until(LONG, || published.is_file()),
        "the public thumbnail is published: {}",
        site.log()
    );
    let published_bytes = std::fs::read(&published).unwrap();

    // Alice saves a window: hers alone.
    let saved = post(
        &format!("/webgateway/saveImgRDef/{id}/"),
        &alice,
        "c=1%7C5%3A60%24FF0000%2C2%7C0%3A90%2400FF00&m=c",
    );
    assert_eq!(saved, "true");
    assert_eq!(window(Some(&alice)), (5.0, 60.0));
    assert_eq!(window(Some(&bob)), defaults, "bob sees the owner's");
    assert_eq!(window(None), defaults, "the public user sees the owner's");
    let alice_render = render(Some(&alice));
    assert_ne!(alice_render, owners_render);
    assert_eq!(render(Some(&bob)), owners_render);
    let alice_thumb = thumb(Some(&alice));
    assert_ne!(alice_thumb, owners_thumb);
    assert_eq!(thumb(Some(&bob)), owners_thumb);
    assert_ne!(
        version(&alice),
        owners_version,
        "alice's thumbnail URL is her own"
    );
    assert_eq!(version(&bob), owners_version);

    // Bob saves his own; each sees theirs.
    let saved = post(
        &format!("/webgateway/saveImgRDef/{id}/"),
        &bob,
        "c=1%7C0%3A20%240000FF%2C2%7C0%3A30%24FF00FF&m=c",
    );
    assert_eq!(saved, "true");
    assert_eq!(window(Some(&bob)), (0.0, 20.0));
    assert_eq!(window(Some(&alice)), (5.0, 60.0));
    let bob_render = render(Some(&bob));
    assert_ne!(bob_render, alice_render);
    assert_ne!(bob_render, owners_render);
    assert_eq!(render(Some(&alice)), alice_render);
    let bob_thumb = thumb(Some(&bob));
    assert_ne!(bob_thumb, alice_thumb);
    assert_ne!(bob_thumb, owners_thumb);
    assert_eq!(thumb(None), owners_thumb);
    // Every user's set is listed, as OMERO's getAllRenderingDefs.
    let listed: serde_json::Value = serde_json::from_slice(&get(
        &format!("/webgateway/get_image_rdefs_json/{id}/"),
        Some(&alice),
    ))
    .unwrap();
    let names: Vec<&str> = listed["rdefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["owner"]["omeName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["", "alice", "bob"], "{listed}");
    assert_eq!(listed["rdefs"][2]["c"][0]["end"], 20.0, "{listed}");
    // The published thumbnail (nginx, no pool) stays the owner's.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(std::fs::read(&published).unwrap(), published_bytes);

    // applyOwnersRDef brings bob back to the owner's; alice keeps hers.
    let done = post(
        "/webgateway/applyOwnersRDef/",
        &bob,
        &format!("toids={id}&to_type=image"),
    );
    assert_eq!(done, format!("[{id}]"));
    assert_eq!(window(Some(&bob)), defaults);
    assert_eq!(render(Some(&bob)), owners_render);
    assert_eq!(thumb(Some(&bob)), owners_thumb);
    assert_eq!(version(&bob), owners_version);
    assert_eq!(window(Some(&alice)), (5.0, 60.0));
    // resetRDef takes alice's own set back to the imported defaults.
    let done = post(
        "/webgateway/resetRDef/",
        &alice,
        &format!("toids={id}&to_type=image"),
    );
    assert_eq!(done, format!("[{id}]"));
    assert_eq!(window(Some(&alice)), defaults);
    assert_eq!(render(Some(&alice)), owners_render);
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

#[test]
fn an_image_one_may_not_see_answers_exactly_as_a_missing_one() {
    let site = three_group_site("");
    add_user(&site, "alice", "pw-a", &["labA"]);
    add_user(&site, "admin", "pw-admin", &["labA", "labB", "public"]);
    site.ok(&["start"]);
    let port = site.port;
    let all = ids_by_group(port, &login(port, "sessionid", "admin", "pw-admin"));
    let id_of = |group: &str| all.iter().find(|(g, _)| g == group).unwrap().1;
    let (mine, denied) = (id_of("labA"), id_of("labB"));
    let missing = (1..)
        .map(|n| denied + n)
        .find(|n| all.iter().all(|(_, id)| id != n))
        .unwrap();
    let alice = login(port, "sessionid", "alice", "pw-a");
    let cookie = [("Cookie", alice.as_str())];
    // The answer with the asked-for IDs written as ID: only then are two answers
    // about different IDs comparable.
    let answer = |path: String, ids: &[u64]| {
        let (status, headers, body) = fetch(port, &path, &cookie);
        let mut body = String::from_utf8_lossy(&body).into_owned();
        for id in ids {
            body = body.replace(&id.to_string(), "ID");
        }
        (
            status,
            header(&headers, "content-type").map(str::to_string),
            body,
        )
    };
    for (family, _) in FAMILIES {
        let at = |id: u64| family.replace("{id}", &id.to_string());
        let shown = answer(at(mine), &[mine]);
        assert!((200..300).contains(&shown.0), "{family}: {}", shown.0);
        assert_eq!(
            answer(at(denied), &[denied]),
            answer(at(missing), &[missing]),
            "{family}: denied vs missing"
        );
    }
    // Batches: a denied ID is null where a missing one is, as OMERO's thumbnail set
    // does not find either.
    let (status, _, body) = fetch(
        port,
        &format!("/webgateway/get_thumbnails/?id={mine}&id={denied}&id={missing}"),
        &cookie,
    );
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json[mine.to_string()].is_string(), "{json}");
    assert_eq!(json[denied.to_string()], serde_json::Value::Null, "{json}");
    assert_eq!(json[missing.to_string()], serde_json::Value::Null, "{json}");
    assert_eq!(json.as_object().unwrap().len(), 3, "{json}");
    // Zips: OMERO's query finds neither, so a mix zips what is found, and nothing
    // found is the same error either way.
    // (The file's own bytes are compared as they are: only error texts name IDs.)
    let zip = |ids: &[u64], written_as_id: &[u64]| {
        let query: Vec<String> = ids.iter().map(|id| format!("image={id}")).collect();
        answer(
            format!("/webgateway/archived_files/download/?{}", query.join("&")),
            written_as_id,
        )
    };
    let with_denied = zip(&[mine, denied], &[]);
    assert_eq!(with_denied.0, 200, "{:.200}", with_denied.2);
    assert!(
        with_denied == zip(&[mine, missing], &[]),
        "a mix with a denied ID differs from one with a missing ID"
    );
    let none_found = zip(&[denied], &[denied]);
    assert_eq!(none_found, zip(&[missing], &[missing]));
    assert!(none_found.2.contains("Images not found"), "{none_found:?}");
}
