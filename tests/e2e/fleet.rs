//! The fleet with real parts: members' own omero-webctl asked over a real sshd in
//! network namespaces (and local members directly), the real nginx as the front, and
//! `ab -r` through it while members are drained, restarted and reconfigured.

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::fleet::*;
use support::netns::Keys;
use support::{TestSite, free_port, http_get, stderr, stdout, wait_until};

/// The worker processes of the control site's front nginx (children of its master).
fn front_workers(control: &TestSite) -> Vec<u32> {
    let pid_file = control.root().join("var/nginx/nginx.pid");
    let master = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    omero_webctl::proc::children(master)
}

#[test]
fn local_fleet_front_drain_and_rolling_restart_fail_nothing() {
    if !support::nginx_available("local_fleet_front_drain_and_rolling_restart_fail_nothing") {
        return;
    }
    let members = [TestSite::new(2), TestSite::new(2)];
    for m in &members {
        m.ok(&["start"]);
    }
    let control = TestSite::new(1);
    let front = free_port();
    let entries = local_entries(&members, &["a", "b"]);
    control.write_config(&format!(
        "\"omero.web.application_server.port\" = {}\n",
        free_port()
    ));
    std::fs::write(
        control.root().join("etc/fleet.toml"),
        fleet_toml(front, None, 10, &entries),
    )
    .unwrap();

    let table = fleet_ok(&control, &["status"]);
    assert!(table.starts_with("MEMBER"), "{table}");
    for name in ["a", "b"] {
        let line = table.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(
            line.contains("local") && line.contains("running") && line.contains("2/2"),
            "{line}"
        );
        assert!(
            line.contains("none"),
            "no drift between identical members: {line}"
        );
    }

    let config = fleet_ok(&control, &["nginx", "--check"]);
    for m in &members {
        assert!(
            config.contains(&format!(
                "server 127.0.0.1:{} weight=1 max_fails=1 fail_timeout=5s;",
                m.port
            )),
            "{config}"
        );
    }
    assert!(config.contains("proxy_next_upstream error timeout http_502 http_503;"));
    fleet_ok(&control, &["nginx", "start"]);
    assert!(wait_until(Duration::from_secs(10), || {
        http_get(front, "/__webctl/health").is_some_and(|(code, _)| code == 200)
    }));

    // Drained: the front sends it nothing, and says so.
    fleet_ok(&control, &["drain", "a"]);
    let conf = std::fs::read_to_string(control.root().join("var/nginx/nginx.conf")).unwrap();
    assert!(conf.contains(&format!(
        "{} weight=1 max_fails=1 fail_timeout=5s down;",
        entries[0].upstream
    )));
    let before = members[0].status_json()["totals"]["requests"]
        .as_u64()
        .unwrap();
    for _ in 0..40 {
        assert_eq!(http_get(front, "/__webctl/health").unwrap().0, 200);
    }
    let rows = status_rows(&control);
    assert_eq!(row(&rows, "a")["drained"], true);
    assert_eq!(
        members[0].status_json()["totals"]["requests"]
            .as_u64()
            .unwrap(),
        before
    );
    // Undrained, the command returns once the front's workers from before are gone,
    // so no client keeps a connection to a worker about to close it.
    let before = front_workers(&control);
    assert!(!before.is_empty());
    fleet_ok(&control, &["undrain", "a"]);
    let after = front_workers(&control);
    assert!(
        before.iter().all(|pid| !after.contains(pid)),
        "{before:?} {after:?}"
    );
    assert_eq!(status_rows(&control).len(), 2);
    assert_eq!(row(&status_rows(&control), "a")["drained"], false);

    // A rolling restart under load: every member gets a new master, no request fails.
    let masters: Vec<_> = members.iter().map(|m| m.master_pid().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_until(front, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let out = fleet_ok(&control, &["restart"]);
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = load.join().unwrap();
    eprintln!("rolling restart of 2 local members: {took:?}, {sent} requests, {failed} failed");
    assert!(
        out.contains("a: healthy") && out.contains("b: healthy"),
        "{out}"
    );
    assert_eq!(failed, 0, "of {sent} requests through the front\n{out}");
    for (m, old) in members.iter().zip(masters) {
        assert_ne!(m.master_pid().unwrap(), old, "restarted");
    }
    assert!(status_rows(&control).iter().all(|r| r["drained"] == false));

    // A member the operator drained is reloaded too, and stays drained; the roll then
    // stops rather than drain the last member left in the front.
    fleet_ok(&control, &["drain", "a"]);
    let generations: Vec<u64> = members
        .iter()
        .map(|m| m.status_json()["generation"].as_u64().unwrap())
        .collect();
    let out = fleet(&control, &["reload"]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("a: drained already; it stays drained"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("b: cannot drain: draining b would leave no member in the front"),
        "{}",
        stderr(&out)
    );
    assert!(members[0].status_json()["generation"].as_u64().unwrap() > generations[0]);
    assert_eq!(
        members[1].status_json()["generation"].as_u64().unwrap(),
        generations[1]
    );
    let rows = status_rows(&control);
    assert_eq!(row(&rows, "a")["drained"], true);
    assert_eq!(row(&rows, "b")["drained"], false);
    fleet_ok(&control, &["undrain", "a"]);

    // A rolling config set under load: both members set and reloaded, nothing failed.
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_until(front, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let out = fleet_ok(&control, &["config", "set", "omero.web.wsgi_workers", "3"]);
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = load.join().unwrap();
    eprintln!("rolling config set of 2 local members: {sent} requests, {failed} failed");
    assert_eq!(failed, 0, "of {sent} requests through the front\n{out}");
    for m in &members {
        assert!(
            m.ok(&["config", "get", "omero.web.wsgi_workers"])
                .starts_with('3')
        );
        assert_eq!(m.status_json()["target_workers"], 3);
    }

    // A member changed behind the fleet's back shows drift in that key.
    members[1].ok(&["config", "set", "omero.web.wsgi_workers", "2"]);
    members[1].ok(&["reload"]);
    let rows = status_rows(&control);
    // Load went through both since the previous sample: their rates show it.
    for name in ["a", "b"] {
        assert!(
            row(&rows, name)["requests_per_sec"].as_f64().unwrap() > 0.0,
            "{rows:?}"
        );
    }
    assert_eq!(row(&rows, "a")["drift"], serde_json::json!([]));
    assert_eq!(
        row(&rows, "b")["drift"],
        serde_json::json!(["omero.web.wsgi_workers"])
    );

    // kill -9 of b's master under load: the front passes over it, costing at most the
    // requests in flight, and the status shows b down within 5 s.
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_until(front, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let master = members[1].master_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed = Instant::now();
    let mut state = String::new();
    let seen = wait_until(Duration::from_secs(5), || {
        state = row(&status_rows(&control), "b")["state"]
            .as_str()
            .unwrap()
            .to_string();
        state != "running"
    });
    let took = killed.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = load.join().unwrap();
    eprintln!(
        "kill -9 of b's master: status says {state:?} after {took:?}; {sent} requests, {failed} failed"
    );
    assert!(
        seen,
        "b still shown running {took:?} after kill -9 of its master"
    );
    assert!(
        failed <= CONCURRENCY,
        "{failed} of {sent} failed: more than the in-flight ones"
    );
}

#[test]
fn ssh_members_status_unreachable_in_time_and_config_set_all_or_none() {
    let test = "ssh_members_status_unreachable_in_time_and_config_set_all_or_none";
    if !support::netns::available(test) {
        return;
    }
    let keys = Keys::new();
    let (ns1, site1) = ns_member(&keys, 1);
    let (ns2, site2) = ns_member(&keys, 1);
    let local = TestSite::new(1);
    local.ok(&["start"]);
    let control = TestSite::new(1);
    let entries = [
        Entry {
            name: "m1",
            ssh: format!("root@{}", ns1.address),
            site: site1.root(),
            upstream: format!("{}:4080", ns1.address),
        },
        Entry {
            name: "m2",
            ssh: format!("root@{}:22", ns2.address),
            site: site2.root(),
            upstream: format!("{}:4080", ns2.address),
        },
        Entry {
            name: "here",
            ssh: "local".into(),
            site: local.root(),
            upstream: format!("127.0.0.1:{}", local.port),
        },
    ];
    let fleet_file = control.root().join("etc/fleet.toml");
    std::fs::write(
        &fleet_file,
        // 10 s: a member's own command under a loaded CI machine can take over 5 s
        // (a rehearsal saw m1 time out in `config set` beside other suites).
        fleet_toml(free_port(), Some(&keys), 10, &entries),
    )
    .unwrap();

    // Cold (handshakes), then multiplexed over the masters the first call left.
    let started = Instant::now();
    let rows = status_rows(&control);
    let cold = started.elapsed();
    let started = Instant::now();
    let table = fleet_ok(&control, &["status"]);
    let warm = started.elapsed();
    eprintln!("fleet status, 3 members: cold {cold:?}, multiplexed {warm:?}");
    for name in ["m1", "m2", "here"] {
        let r = row(&rows, name);
        assert_eq!(r["state"], "running", "{r}");
        assert_eq!(r["workers_ready"], 1, "{r}");
    }
    assert_eq!(row(&rows, "m1")["transport"], "ssh");
    assert_eq!(row(&rows, "here")["transport"], "local");
    assert!(
        table.contains("m2") && table.contains("embedded pool"),
        "{table}"
    );
    let sockets = std::fs::read_dir(control.root().join("var/fleet/ssh"))
        .unwrap()
        .count();
    assert_eq!(sockets, 2, "one master connection per ssh member");

    // Off the network: unreachable within the timeout, not a hung command.
    ns2.set_link(false);
    let started = Instant::now();
    let out = fleet(&control, &["status", "--json"]);
    let took = started.elapsed();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "not every member runs");
    assert_eq!(
        row(&rows, "m2")["state"],
        "unreachable",
        "{:?}",
        row(&rows, "m2")
    );
    assert_eq!(row(&rows, "m1")["state"], "running");
    // The 10 s timeout, and a margin for a loaded machine.
    assert!(
        took < Duration::from_secs(14),
        "status took {took:?} with a member gone"
    );

    // All or none: with m2 unreachable, no member is changed.
    let before: Vec<String> = [&site1, &local]
        .iter()
        .map(|s| std::fs::read_to_string(s.config_file()).unwrap())
        .collect();
    let out = fleet(
        &control,
        &[
            "config",
            "set",
            "omero.web.wsgi_workers",
            "3",
            "--no-reload",
        ],
    );
    assert!(!out.status.success());
    let error = stderr(&out);
    assert!(
        error.contains("m2") && error.contains("no member changed"),
        "{error}"
    );
    for (s, text) in [&site1, &local].iter().zip(&before) {
        assert_eq!(&std::fs::read_to_string(s.config_file()).unwrap(), text);
    }
    ns2.set_link(true);
}

#[test]
fn ssh_fleet_rolling_restart_and_a_member_off_the_network_under_load() {
    let test = "ssh_fleet_rolling_restart_and_a_member_off_the_network_under_load";
    if !support::netns::available(test) || !support::nginx_available(test) {
        return;
    }
    let keys = Keys::new();
    let (ns1, site1) = ns_member(&keys, 2);
    let (ns2, site2) = ns_member(&keys, 2);
    let control = TestSite::new(1);
    let front = free_port();
    let entries = [(&ns1, &site1, "m1"), (&ns2, &site2, "m2")].map(|(ns, site, name)| Entry {
        name,
        ssh: format!("root@{}", ns.address),
        site: site.root(),
        upstream: format!("{}:4080", ns.address),
    });
    std::fs::write(
        control.root().join("etc/fleet.toml"),
        fleet_toml(front, Some(&keys), 3, &entries),
    )
    .unwrap();
    fleet_ok(&control, &["nginx", "start"]);
    assert!(wait_until(Duration::from_secs(10), || {
        http_get(front, "/__webctl/health").is_some_and(|(code, _)| code == 200)
    }));

    let masters: Vec<_> = [&site1, &site2].map(|s| s.master_pid().unwrap()).to_vec();
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_until(front, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let out = fleet_ok(&control, &["restart"]);
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = load.join().unwrap();
    eprintln!("rolling restart of 2 ssh members: {took:?}, {sent} requests, {failed} failed");
    assert_eq!(failed, 0, "of {sent} requests through the front\n{out}");
    for (s, old) in [&site1, &site2].iter().zip(masters) {
        assert_ne!(s.master_pid().unwrap(), old, "restarted");
    }

    // m2 drops off the network under load: nginx passes over it, the status says so
    // within 5 s.
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_until(front, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    ns2.set_link(false);
    let gone = Instant::now();
    let rows = status_rows(&control);
    let seen = gone.elapsed();
    assert_eq!(row(&rows, "m2")["state"], "unreachable");
    assert!(
        seen < Duration::from_secs(5),
        "took {seen:?} to see m2 gone"
    );
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = load.join().unwrap();
    eprintln!("m2 off the network: seen in {seen:?}; {sent} requests, {failed} failed");
    let errors = std::fs::read_to_string(control.root().join("var/nginx/error.log")).unwrap();
    let tail: Vec<&str> = errors.lines().rev().take(5).collect();
    assert!(
        failed <= CONCURRENCY,
        "{failed} of {sent} failed: more than the in-flight ones; the front's log ends:\n{}",
        tail.join("\n")
    );
    ns2.set_link(true);
}

/// Every sample of an exposition text as Prometheus' own Python client parses it
/// (Debian's python3-prometheus-client): (name, labels, value). None: no parser here.
fn parse_prometheus(text: &str) -> Option<Vec<(String, serde_json::Value, f64)>> {
    const SCRIPT: &str = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = []\n\
        for family in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in family.samples:\n\
        \x20       out.append([s.name, s.labels, s.value, family.type])\n\
        print(json.dumps(out))\n";
    let available = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true needs python3-prometheus-client"
        );
        eprintln!("skipping the parse: python3-prometheus-client is not installed");
        return None;
    }
    use std::io::Write;
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused:\n{text}\n{}",
        stderr(&out)
    );
    let samples: Vec<(String, serde_json::Value, f64, String)> =
        serde_json::from_slice(&out.stdout).unwrap();
    Some(samples.into_iter().map(|(n, l, v, _)| (n, l, v)).collect())
}

fn sample(
    samples: &[(String, serde_json::Value, f64)],
    name: &str,
    labels: serde_json::Value,
) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == labels)
        .unwrap_or_else(|| panic!("no {name} {labels} in {samples:?}"))
        .2
}

#[test]
fn metrics_of_a_site_and_of_the_fleet_parse_as_prometheus_text() {
    let members = [TestSite::new(1), TestSite::new(1)];
    for m in &members {
        m.ok(&["start"]);
    }
    for _ in 0..7 {
        assert_eq!(members[0].get("/__webctl/health").unwrap().0, 200);
    }
    assert!(members[0].get("/no/such/page").unwrap().0 >= 400);
    assert!(wait_until(Duration::from_secs(10), || {
        members[0].status_json()["totals"]["requests"] == 8
    }));
    let text = members[0].ok(&["metrics"]);
    if let Some(samples) = parse_prometheus(&text) {
        use serde_json::json;
        assert_eq!(sample(&samples, "omero_web_up", json!({})), 1.0);
        assert_eq!(
            sample(
                &samples,
                "omero_web_requests_total",
                json!({"class": "2xx"})
            ),
            7.0
        );
        assert_eq!(
            sample(
                &samples,
                "omero_web_requests_total",
                json!({"class": "4xx"})
            ),
            1.0
        );
        assert_eq!(
            sample(
                &samples,
                "omero_web_request_duration_seconds_count",
                json!({})
            ),
            8.0
        );
        assert_eq!(
            sample(
                &samples,
                "omero_web_request_duration_seconds_bucket",
                json!({"le": "+Inf"})
            ),
            8.0
        );
        assert_eq!(
            sample(&samples, "omero_web_workers", json!({"state": "ready"})),
            1.0
        );
    }

    // Served on loopback only.
    let refused = members[0].run(&["metrics", "--listen", "0.0.0.0:9"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("loopback address only"),
        "{}",
        stderr(&refused)
    );
    let port = free_port();
    let mut server = members[0]
        .command(&["metrics", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let served = wait_until(Duration::from_secs(10), || {
        http_get(port, "/metrics").is_some_and(|(code, body)| {
            code == 200 && body.contains("omero_web_requests_total{class=\"2xx\"}")
        })
    });
    let _ = server.kill();
    let _ = server.wait();
    assert!(served, "GET /metrics on 127.0.0.1:{port}");

    // The fleet's: every member's series with its name, and members by state.
    let control = TestSite::new(1);
    let entries = local_entries(&members, &["a", "b"]);
    std::fs::write(
        control.root().join("etc/fleet.toml"),
        fleet_toml(free_port(), None, 10, &entries),
    )
    .unwrap();
    members[1].ok(&["stop"]);
    let text = fleet_ok(&control, &["metrics"]);
    if let Some(samples) = parse_prometheus(&text) {
        use serde_json::json;
        assert_eq!(
            sample(&samples, "omero_web_up", json!({"member": "a"})),
            1.0
        );
        assert_eq!(
            sample(&samples, "omero_web_up", json!({"member": "b"})),
            0.0
        );
        assert_eq!(
            sample(
                &samples,
                "omero_web_requests_total",
                json!({"member": "a", "class": "2xx"})
            ),
            7.0
        );
        assert_eq!(
            sample(
                &samples,
                "omero_web_fleet_members",
                json!({"state": "running"})
            ),
            1.0
        );
        assert_eq!(
            sample(
                &samples,
                "omero_web_fleet_members",
                json!({"state": "other"})
            ),
            1.0
        );
    }
}

#[test]
fn omeroweb_members_status_metrics_and_a_rolling_restart_under_load() {
    let test = "omeroweb_members_status_metrics_and_a_rolling_restart_under_load";
    let Some(venv) = support::omeroweb_venv(test) else {
        return;
    };
    if !support::nginx_available(test) {
        return;
    }
    let (_members, control, front) = omeroweb_fleet(&venv, 10);
    let table = fleet_ok(&control, &["status"]);
    for name in ["w1", "w2"] {
        let line = table.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(
            line.contains("OMERO.web 5.") && line.contains("Gunicorn") && line.contains("running"),
            "{table}"
        );
    }
    fleet_ok(&control, &["nginx", "start"]);
    assert!(wait_until(Duration::from_secs(30), || {
        http_get(front, "/webclient/login/").is_some_and(|(code, _)| code == 200)
    }));

    let stop = Arc::new(AtomicBool::new(false));
    let load = load_path_until(front, "/webclient/login/", 50, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let out = fleet_ok(&control, &["restart"]);
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = load.join().unwrap();
    eprintln!("rolling restart of 2 OMERO.web members: {took:?}, {sent} requests, {failed} failed");
    assert_eq!(failed, 0, "of {sent} requests through the front\n{out}");
    assert!(out.contains("w2: healthy"), "{out}");

    let text = fleet_ok(&control, &["metrics"]);
    if let Some(samples) = parse_prometheus(&text) {
        use serde_json::json;
        for name in ["w1", "w2"] {
            assert_eq!(
                sample(&samples, "omero_web_up", json!({"member": name})),
                1.0
            );
            sample(
                &samples,
                "omero_web_requests_total",
                json!({"member": name, "class": "2xx"}),
            );
        }
    }
}

#[test]
fn init_writes_an_example_once_and_a_bad_fleet_file_is_one_line() {
    let control = support::TestSite::empty();
    let out = control.ok(&["fleet", "init"]);
    let file = control.path("etc/fleet.toml");
    assert!(out.contains("Wrote an example fleet file"), "{out}");
    let example = std::fs::read_to_string(&file).unwrap();
    assert!(example.contains("[[member]]") && example.contains("ssh = \"local\""));
    let error = control.fails(&["fleet", "init"]);
    assert!(error.contains("exists; not overwritten"), "{error}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), example);

    std::fs::write(
        &file,
        "[[member]]\nname = \"a\"\nssh = \"x@-oProxyCommand=sh\"\nsite = \"/srv/a\"\n",
    )
    .unwrap();
    let error = control.fails(&["fleet", "status"]);
    assert_eq!(error.trim().lines().count(), 1, "{error}");
    assert!(
        error.contains("member \"a\": ssh: \"-oProxyCommand=sh\" is not a host name"),
        "{error}"
    );
    // A member whose site is missing answers so; asking does not create it.
    std::fs::write(
        &file,
        "[[member]]\nname = \"gone\"\nssh = \"local\"\nsite = \"/nonexistent/owc-fleet-site\"\n",
    )
    .unwrap();
    let out = control.run(&["fleet", "status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).contains(
            "gone: status --json: site directory /nonexistent/owc-fleet-site does not exist"
        ),
        "{}",
        stdout(&out)
    );
    assert!(!Path::new("/nonexistent").exists());
    let other = control.path("elsewhere.toml");
    let error = control.fails(&["fleet", "--fleet", other.to_str().unwrap(), "status"]);
    assert!(error.contains("elsewhere.toml: cannot read it"), "{error}");
}

#[test]
fn config_set_refused_by_one_member_puts_the_others_back() {
    let test = "config_set_refused_by_one_member_puts_the_others_back";
    let Some(venv) = support::omeroweb_venv(test) else {
        return;
    };
    // gevent: the embedded pool has it, this OMERO.web venv does not (refused when set).
    let embedded = TestSite::new(1);
    embedded.append_config("\"omero.web.wsgi_worker_class\" = \"sync\"\n");
    let omeroweb = TestSite::omeroweb(&venv, 1);
    let control = TestSite::new(1);
    let entries = [
        Entry {
            name: "e1",
            ssh: "local".into(),
            site: embedded.root(),
            upstream: format!("127.0.0.1:{}", embedded.port),
        },
        Entry {
            name: "o1",
            ssh: "local".into(),
            site: omeroweb.root(),
            upstream: format!("127.0.0.1:{}", omeroweb.port),
        },
    ];
    std::fs::write(
        control.root().join("etc/fleet.toml"),
        fleet_toml(free_port(), None, 30, &entries),
    )
    .unwrap();
    let before = [
        std::fs::read_to_string(embedded.config_file()).unwrap(),
        std::fs::read_to_string(omeroweb.root().join("etc/grid/config.xml")).unwrap(),
    ];
    let out = fleet(
        &control,
        &[
            "config",
            "set",
            "omero.web.wsgi_worker_class",
            "gevent",
            "--no-reload",
        ],
    );
    assert!(!out.status.success());
    let error = stderr(&out);
    assert!(
        error.contains("o1: ") && error.contains("gevent"),
        "{error}"
    );
    assert!(error.contains("put back: e1"), "{error}");
    assert!(stdout(&out).contains("e1: omero.web.wsgi_worker_class set"));
    assert_eq!(
        embedded
            .ok(&["config", "get", "omero.web.wsgi_worker_class"])
            .trim(),
        "sync"
    );
    assert_eq!(
        std::fs::read_to_string(omeroweb.root().join("etc/grid/config.xml")).unwrap(),
        before[1]
    );
}
