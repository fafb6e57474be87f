//! The fleet's shared sessions and its restoring rolls, with real parts: real
//! OMERO.web members (Gunicorn, the cached venv with django-redis), a real
//! `redis-server` on a free port, the real nginx front, and `ab -r` through it.

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::fleet::*;
use support::redis::Redis;
use support::{TestSite, fetch, free_port, http_get, stderr, stdout, wait_until};

/// The Django session key a response sets (`Set-Cookie: sessionid=…`), if any.
fn session_set(port: u16, path: &str, cookie: Option<&str>) -> Option<String> {
    let header = cookie.map(|key| format!("sessionid={key}"));
    let headers: Vec<(&str, &str)> = header.iter().map(|h| ("Cookie", h.as_str())).collect();
    let (_, headers, _) = fetch(port, path, &headers);
    headers
        .iter()
        .filter(|(name, _)| name == "set-cookie")
        .find_map(|(_, value)| value.strip_prefix("sessionid="))
        .map(|rest| rest.split(';').next().unwrap_or("").to_string())
        .filter(|key| !key.is_empty())
}

/// Sessions in Redis through `fleet sessions`; a session made through w1 is the one
/// w2 continues; a fleet-wide change that leaves a member unable to save sessions
/// gets that member its old values back, under load through the front, failing
/// nothing.
///
/// The session is a real one from OMERO.web's own code path, not one made by hand:
/// without an OMERO.server a login writes nothing, but `GET /webclient/?bsession=K`
/// stores a Connector for the OMERO session key K in `request.session` before it tries
/// (and fails) to join it, so Django saves the session and sets its cookie. A member
/// handed that cookie keeps the key only if its store holds the session; Django gives
/// a key its store does not know a new one (session fixation protection). So w2
/// answering with the same key shows it read w1's session from Redis; emptying Redis
/// and asking again shows the answer depends on the store (a new key).
#[test]
fn sessions_in_redis_are_shared_and_a_member_that_cannot_save_them_is_restored() {
    let test = "sessions_in_redis_are_shared_and_a_member_that_cannot_save_them_is_restored";
    let Some(venv) = support::omeroweb_venv(test) else {
        return;
    };
    if !support::nginx_available(test) {
        return;
    }
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let (members, control, front) = omeroweb_fleet(&venv, 30);

    // Before: each member keeps its sessions in files of its own host.
    let before = fleet(&control, &["sessions"]);
    assert!(!before.status.success());
    let before = stdout(&before);
    assert!(
        before.contains("files in the temp dir of this host"),
        "{before}"
    );
    assert!(
        before.contains("do NOT share one reachable session store"),
        "{before}"
    );
    // A bad URL is refused before any member is asked.
    let error = stderr(&fleet(&control, &["sessions", "10.0.0.1:6379"]));
    assert!(error.contains("is not a Redis URL"), "{error}");

    // Saved but not applied, a store nobody listens on: every member says it cannot
    // reach it (each member PINGs from its own host), and the verdict fails.
    let nobody = format!("redis://127.0.0.1:{}/0", free_port());
    let out = fleet(&control, &["sessions", &nobody, "--no-reload"]);
    assert!(!out.status.success());
    let said = stdout(&out);
    assert_eq!(
        said.matches("cannot connect to 127.0.0.1:").count(),
        2,
        "{said}"
    );
    assert!(
        said.contains("do NOT share one reachable session store"),
        "{said}"
    );

    let out = fleet_ok(&control, &["sessions", &redis.url()]);
    eprintln!("{out}");
    for name in ["w1", "w2"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{out}"));
        assert!(
            line.contains(&format!("Redis {} — PING", redis.url())),
            "{out}"
        );
    }
    assert!(
        out.contains("Every member keeps its sessions in the same store."),
        "{out}"
    );
    for m in &members {
        assert_eq!(
            m.ok(&["config", "get", "omero.web.session_engine"]).trim(),
            "django.contrib.sessions.backends.cache"
        );
    }

    let (w1, w2) = (members[0].port, members[1].port);
    let key = session_set(w1, "/webclient/?bsession=made-on-w1", None)
        .expect("w1 saves the session and sets its cookie");
    let stored = redis.cli(&["--scan"]);
    assert!(
        stored.contains(&key),
        "{key} not among Redis' keys: {stored}"
    );
    let continued = session_set(w2, "/webclient/?bsession=continued-on-w2", Some(&key));
    assert_eq!(
        continued.as_deref(),
        Some(key.as_str()),
        "w2 did not read w1's session"
    );
    assert_eq!(redis.cli(&["FLUSHDB"]), "OK");
    let after_flush = session_set(w2, "/webclient/?bsession=continued-on-w2", Some(&key));
    assert!(
        after_flush.as_ref().is_some_and(|k| *k != key),
        "with the store emptied w2 must issue a new key, not {after_flush:?}"
    );

    // A store no member reaches: w1 is reloaded with it, cannot save a session, gets
    // its old values back and returns to the front; w2 is never reloaded.
    fleet_ok(&control, &["nginx", "start"]);
    assert!(wait_until(Duration::from_secs(30), || {
        http_get(front, "/webclient/login/").is_some_and(|(code, _)| code == 200)
    }));
    let caches_before = members[1].ok(&["config", "get", "omero.web.caches"]);
    let w2_master = members[1].master_pid();
    let dead = free_port();
    let bad = format!(
        "{{\"default\": {{\"BACKEND\": \"django_redis.cache.RedisCache\", \"LOCATION\": \"redis://127.0.0.1:{dead}/0\"}}}}"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_path_until(front, "/webclient/login/", 50, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let out = fleet(&control, &["config", "set", "omero.web.caches", &bad]);
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = load.join().unwrap();
    let (said, error) = (stdout(&out), stderr(&out));
    eprintln!("restored in {took:?}; {sent} requests, {failed} failed\n{said}{error}");
    assert!(!out.status.success(), "{said}");
    assert!(
        error.contains("w1: ")
            && error.contains("saving a session")
            && error.contains("answered 500")
            && error.contains("restored: its previous values back, healthy, back in the front")
            && error.contains("the roll stopped")
            && error.contains("not touched: w2"),
        "{error}"
    );
    assert!(
        said.contains("w2: old values put back (not reloaded)"),
        "{said}"
    );
    assert_eq!(failed, 0, "of {sent} requests through the front");
    for m in &members {
        assert_eq!(m.ok(&["config", "get", "omero.web.caches"]), caches_before);
    }
    assert_eq!(members[1].master_pid(), w2_master);
    let drained =
        std::fs::read_to_string(control.root().join("var/fleet/drained")).unwrap_or_default();
    assert!(!drained.contains("w1"), "w1 still drained: {drained}");
    // w1 saves sessions in Redis again, and w2 continues them.
    let key = session_set(w1, "/webclient/?bsession=after-restore", None).unwrap();
    assert_eq!(
        session_set(w2, "/webclient/?bsession=after-restore", Some(&key)).as_deref(),
        Some(key.as_str())
    );
}

/// Rolling upgrades under `ab -r` through the front, members behind their own private
/// nginx (what `upgrade --venv` needs): a release that fails the fleet's health check
/// gets the member its previous generation back and stops the roll; then 5.32.0 →
/// 5.33.2 member by member. No request fails in either.
#[test]
fn a_rolling_upgrade_fails_no_request_and_a_member_unhealthy_after_it_gets_its_generation_back() {
    let test = "a_rolling_upgrade_fails_no_request_and_a_member_unhealthy_after_it_gets_its_generation_back";
    let (Some(new_venv), Some(old_venv)) =
        (support::omeroweb_venv(test), support::older_venv(test))
    else {
        return;
    };
    if !support::nginx_available(test) {
        return;
    }
    let members = [
        TestSite::omeroweb(&old_venv, 1),
        TestSite::omeroweb(&old_venv, 1),
    ];
    let mut entries = Vec::new();
    for (m, name) in members.iter().zip(["w1", "w2"]) {
        m.ok(&["start"]);
        let http = free_port();
        m.ok(&["nginx", "start", "--http", &http.to_string()]);
        entries.push(Entry {
            name,
            ssh: "local".into(),
            site: m.root(),
            upstream: format!("127.0.0.1:{http}"),
        });
    }
    let control = TestSite::new(1);
    let front = free_port();
    std::fs::write(
        control.root().join("etc/fleet.toml"),
        fleet_toml(front, None, 30, &entries),
    )
    .unwrap();
    let table = fleet_ok(&control, &["status"]);
    assert_eq!(table.matches("OMERO.web 5.32.0").count(), 2, "{table}");
    fleet_ok(&control, &["nginx", "start"]);
    assert!(wait_until(Duration::from_secs(30), || {
        http_get(front, "/webclient/login/").is_some_and(|(code, _)| code == 200)
    }));

    // A release that boots and serves its login page (the member's own health window
    // passes) but cannot save a session: w1 is upgraded, fails the fleet's health
    // check, gets its previous generation back and returns to the front; the roll
    // stops before w2. Nothing fails through the front meanwhile.
    let broken = no_sessions_release(&new_venv, &control.root().join("no-sessions-venv"));
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_path_until(front, "/webclient/login/", 50, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let out = fleet(
        &control,
        &[
            "upgrade",
            "--venv",
            &broken.display().to_string(),
            "--health-window",
            "3",
        ],
    );
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = load.join().unwrap();
    let (said, error) = (stdout(&out), stderr(&out));
    eprintln!(
        "a release that cannot save sessions, restored in {took:?}: {sent} requests, {failed} failed\n{said}{error}"
    );
    assert!(!out.status.success(), "{said}");
    assert!(
        error.contains("w1: ")
            && error.contains("saving a session")
            && error.contains("restored: its previous generation back, healthy, back in the front")
            && error.contains("not touched: w2"),
        "{error}"
    );
    assert_eq!(failed, 0, "of {sent} requests through the front");
    let table = fleet_ok(&control, &["status"]);
    assert_eq!(table.matches("OMERO.web 5.32.0").count(), 2, "{table}");
    assert!(!table.contains("drained"), "{table}");

    let stop = Arc::new(AtomicBool::new(false));
    let load = load_path_until(front, "/webclient/login/", 50, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let venv = new_venv.display().to_string();
    let out = fleet_ok(
        &control,
        &["upgrade", "--venv", &venv, "--health-window", "3"],
    );
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = load.join().unwrap();
    eprintln!(
        "rolling upgrade of 2 OMERO.web members: {took:?}, {sent} requests, {failed} failed\n{out}"
    );
    assert_eq!(failed, 0, "of {sent} requests through the front\n{out}");
    assert!(
        out.contains("w1: healthy") && out.contains("w2: healthy"),
        "{out}"
    );
    assert!(out.contains("Every member upgraded."), "{out}");
    let table = fleet_ok(&control, &["status"]);
    assert_eq!(table.matches("OMERO.web 5.33.2").count(), 2, "{table}");
}

/// A copy of the release in `good` whose OMERO.web cannot store its Connector in the
/// session (what a login does): it boots and its login page answers 200.
fn no_sessions_release(good: &Path, dir: &Path) -> std::path::PathBuf {
    let to = support::copied_release(good, dir);
    let connector = to.join("omeroweb/connector.py");
    let code = std::fs::read_to_string(&connector).unwrap();
    let line = "request.session[\"connector\"] = self.__dict__";
    assert!(
        code.contains(line),
        "omeroweb/connector.py changed: no {line}"
    );
    std::fs::write(
        &connector,
        code.replace(
            line,
            "raise RuntimeError(\"this release cannot save sessions\")",
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

/// An OMERO.web member and an embedded member put on one real redis-server by `fleet
/// sessions URL`: each member counts what the shared store holds from its own host, so
/// a gateway login made through the embedded member and a Django session made through
/// the OMERO.web member are counted in both rows; `fleet sessions --end-user` ends the
/// login in the store (the embedded member sends its cookie to the login page after),
/// and the Django session lives on. A member still on its own files shows no count.
#[test]
fn fleet_sessions_counts_and_ends_what_an_omeroweb_and_an_embedded_member_share_in_redis() {
    let test =
        "fleet_sessions_counts_and_ends_what_an_omeroweb_and_an_embedded_member_share_in_redis";
    let Some(venv) = support::omeroweb_venv(test) else {
        return;
    };
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let members = [TestSite::omeroweb(&venv, 1), TestSite::new(1)];
    let [web, embedded] = &members;
    support::add_user(embedded, "alice", "pw-a", &[]);
    for m in &members {
        m.ok(&["start"]);
    }
    let control = TestSite::new(1);
    std::fs::write(
        control.root().join("etc/fleet.toml"),
        fleet_toml(free_port(), None, 30, &local_entries(&members, &["w", "e"])),
    )
    .unwrap();

    let out = fleet_ok(&control, &["sessions", &redis.url()]);
    assert!(
        out.contains("Every member keeps its sessions in the same store."),
        "{out}"
    );
    assert!(
        wait_until(Duration::from_secs(60), || embedded
            .log()
            .contains(&format!("Sessions are kept in Redis {}", redis.url()))),
        "{}",
        embedded.log()
    );
    // The health probes of the roll left throw-away Django sessions: start from none.
    assert_eq!(redis.cli(&["FLUSHDB"]), "OK");

    let login = support::login(embedded.port, "sessionid", "alice", "pw-a");
    let id = login.strip_prefix("sessionid=").unwrap().to_string();
    assert_eq!(
        redis.cli(&["EXISTS", &format!("omero-webctl:session:{id}")]),
        "1"
    );
    let page = "/webclient/";
    assert_ne!(fetch(embedded.port, page, &[("Cookie", &login)]).0, 302);
    let django = session_set(web.port, "/webclient/?bsession=fleet-count", None).unwrap();

    let table = fleet_ok(&control, &["sessions"]);
    eprintln!("{table}");
    assert_eq!(
        table
            .matches("1 gateway login(s), 1 Django session(s)")
            .count(),
        2,
        "{table}"
    );

    let out = fleet_ok(&control, &["sessions", "--end-user", "alice"]);
    eprintln!("{out}");
    assert!(out.contains("e: ended 1 session(s) of alice"), "{out}");
    assert!(
        out.contains("Ended 1 session(s) of alice in the fleet."),
        "{out}"
    );
    assert_eq!(
        out.matches("0 gateway login(s), 1 Django session(s)")
            .count(),
        2,
        "{out}"
    );
    assert_eq!(fetch(embedded.port, page, &[("Cookie", &login)]).0, 302);
    // OMERO.web's session is not the gateway's user's: it lives on.
    assert_eq!(
        session_set(web.port, "/webclient/?bsession=fleet-count", Some(&django)).as_deref(),
        Some(django.as_str())
    );

    // Back on its own files, the OMERO.web member no longer sees the store's sessions.
    web.ok(&["config", "unset", "omero.web.session_engine"]);
    let out = fleet(&control, &["sessions"]);
    let said = stdout(&out);
    assert!(!out.status.success(), "{said}");
    assert_eq!(said.matches("gateway login(s)").count(), 1, "{said}");
}

/// `rediss://`: a redis-server that speaks TLS only, with a CA of the test's own named
/// in the URL (`ssl_ca_certs`, redis-py's option). `fleet sessions` puts two OMERO.web
/// members on it (the roll's health probe saves a session through django-redis over
/// TLS), each member's own check PINGs it over TLS trusting that CA, and a session made
/// through w1 is continued by w2. Without the CA the check refuses the certificate.
#[test]
fn fleet_sessions_on_a_tls_redis_named_by_a_rediss_url() {
    let test = "fleet_sessions_on_a_tls_redis_named_by_a_rediss_url";
    let Some(venv) = support::omeroweb_venv(test) else {
        return;
    };
    let Some(redis) = Redis::start_tls(test) else {
        return;
    };
    let ([w1, w2], control, _) = omeroweb_fleet(&venv, 30);
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let out = fleet_ok(&control, &["sessions", &url]);
    eprintln!("{out}");
    assert!(
        out.contains("Every member keeps its sessions in the same store."),
        "{out}"
    );
    assert_eq!(out.matches(" — PING ").count(), 2, "{out}");
    let key = session_set(w1.port, "/webclient/?bsession=over-tls", None).unwrap();
    assert_eq!(
        session_set(w2.port, "/webclient/?bsession=over-tls", Some(&key)).as_deref(),
        Some(key.as_str())
    );
    let keys: u64 = redis.cli(&["DBSIZE"]).parse().unwrap();
    assert!(keys > 0, "the sessions are in the TLS Redis");

    // The same server without the CA: the members' check does not trust it.
    let untrusted = url.split('?').next().unwrap().to_string();
    let out = fleet(&control, &["sessions", &untrusted, "--no-reload"]);
    let said = stdout(&out);
    assert!(!out.status.success(), "{said}");
    assert_eq!(said.matches("TLS with 127.0.0.1:").count(), 2, "{said}");
}
