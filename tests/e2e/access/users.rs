//! Local users and groups: the commands and their private store, passwords at a terminal,
//! access control off until the first user, logins across workers, throttled failures.

use super::*;

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
    // The form sits in the site's one page shell: its stylesheet and header.
    let page = String::from_utf8_lossy(&body);
    assert!(
        page.contains("/static/webclient/webclient.css\"")
            && page.contains("<header><h1><a href=\"/webclient/\">OMERO.web</a></h1>"),
        "{page}"
    );

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
        // Private to the viewer; the thumbnail's own `max-age=0, must-revalidate`
        // kept (guard::make_private), so no browser shows it stale after a change.
        assert_eq!(
            header(&headers, "cache-control"),
            Some("private, max-age=0, must-revalidate")
        );
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
