//! Sessions in Redis shared by two pools and in files: listed, killed by id or user, and
//! failing closed.

use super::*;

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
