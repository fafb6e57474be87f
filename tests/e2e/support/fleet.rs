//! The fleet tests' shared parts: the fleet file of test members, the control site's
//! `fleet` commands, and `ab -r` load through the front.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::netns::{Keys, Netns};
use super::{BIN, TestSite, stderr, stdout};

/// One fleet member's line in the fleet file.
pub struct Entry<'a> {
    pub name: &'a str,
    pub ssh: String,
    pub site: &'a Path,
    pub upstream: String,
}

/// Members on this host (`ssh = "local"`), named in order.
pub fn local_entries<'a>(members: &'a [TestSite], names: &[&'a str]) -> Vec<Entry<'a>> {
    members
        .iter()
        .zip(names)
        .map(|(m, name)| Entry {
            name,
            ssh: "local".into(),
            site: m.root(),
            upstream: format!("127.0.0.1:{}", m.port),
        })
        .collect()
}

/// The fleet file. Over ssh, members run a wrapper that gives the pools they start
/// the test routes (`__webctl/health`), as the tests' own commands do.
pub fn fleet_toml(front_port: u16, keys: Option<&Keys>, timeout: u32, members: &[Entry]) -> String {
    let program = match keys {
        None => BIN.to_string(),
        Some(keys) => {
            let wrapper = keys.dir.path().join("omero-webctl");
            std::fs::write(
                &wrapper,
                format!("#!/bin/sh\nOMEROWEBCTL_TEST_ROUTES=1 exec '{BIN}' \"$@\"\n"),
            )
            .unwrap();
            std::fs::set_permissions(
                &wrapper,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
            wrapper.display().to_string()
        }
    };
    let mut text = format!(
        "[front]\nport = {front_port}\n[ssh]\nprogram = \"{program}\"\ntimeout = {timeout}\n"
    );
    if let Some(keys) = keys {
        text.push_str(&format!(
            "identity = \"{}\"\nknown_hosts = \"{}\"\n",
            keys.identity().display(),
            keys.known_hosts().display()
        ));
    }
    for m in members {
        text.push_str(&format!(
            "[[member]]\nname = \"{}\"\nssh = \"{}\"\nsite = \"{}\"\nupstream = \"{}\"\n",
            m.name,
            m.ssh,
            m.site.display(),
            m.upstream
        ));
    }
    text
}

pub fn fleet(control: &TestSite, args: &[&str]) -> Output {
    let mut all = vec!["fleet"];
    all.extend_from_slice(args);
    control.run(&all)
}

pub fn fleet_ok(control: &TestSite, args: &[&str]) -> String {
    let out = fleet(control, args);
    assert!(
        out.status.success(),
        "fleet {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

pub fn status_rows(control: &TestSite) -> Vec<serde_json::Value> {
    let out = fleet(control, &["status", "--json"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}{}", stdout(&out), stderr(&out)))
        .as_array()
        .unwrap()
        .clone()
}

pub fn row<'a>(rows: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    rows.iter().find(|r| r["name"] == name).unwrap()
}

/// `ab -r` on the health route through `port`, round after round until `stop`: the
/// requests sent and the ones that failed (transport errors and non-2xx answers).
pub fn load_until(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    load_path_until(port, "/__webctl/health", 400, stop)
}

/// Requests ab keeps in flight.
pub const CONCURRENCY: u64 = 4;

/// [`load_until`] on `path`, `round` requests per ab run.
pub fn load_path_until(
    port: u16,
    path: &'static str,
    round: u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let (mut sent, mut failed) = (0, 0);
        while !stop.load(Ordering::SeqCst) {
            let out = std::process::Command::new("ab")
                .args(["-q", "-r", "-s", "5", "-c", &CONCURRENCY.to_string(), "-n"])
                .arg(round.to_string())
                .arg(format!("http://127.0.0.1:{port}{path}"))
                .output()
                .expect("ab (apache2-utils) is installed");
            let report = String::from_utf8_lossy(&out.stdout);
            let field = |name: &str| super::ab_field(&report, name).unwrap_or(0);
            // A request that hangs (in flight to a member cut off the network) ends
            // the round after ab's timeout: ab stops sending, so what failed is what
            // it had in flight then, at most its concurrency.
            if let Some(done) = report
                .split("Total of ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            {
                sent += done + CONCURRENCY;
                failed += CONCURRENCY;
                continue;
            }
            let complete = field("Complete requests:");
            assert!(complete > 0, "ab ran no request:\n{report}");
            sent += complete;
            // A non-2xx answer of another length is counted by both.
            failed += field("Failed requests:").max(field("Non-2xx responses:"));
        }
        (sent, failed)
    })
}

/// Two started OMERO.web members (one worker each) on this host, named w1 and w2, and a
/// control site whose fleet file names them (ssh `timeout` seconds); the front's port.
pub fn omeroweb_fleet(venv: &Path, timeout: u32) -> ([TestSite; 2], TestSite, u16) {
    let members = [TestSite::omeroweb(venv, 1), TestSite::omeroweb(venv, 1)];
    for m in &members {
        m.ok(&["start"]);
    }
    let control = TestSite::new(1);
    let front = super::free_port();
    let entries = local_entries(&members, &["w1", "w2"]);
    std::fs::write(
        control.root().join("etc/fleet.toml"),
        fleet_toml(front, None, timeout, &entries),
    )
    .unwrap();
    (members, control, front)
}

/// An embedded member's site: its pool binds `host:port`.
pub fn member_site(host: &str, port: u16, workers: u32) -> TestSite {
    let site = TestSite::new(workers);
    site.write_config(&format!(
        "\"omero.web.application_server.host\" = \"{host}\"\n\"omero.web.application_server.port\" = {port}\n\"omero.web.wsgi_workers\" = {workers}\n\"omero.web.wsgi_graceful_timeout\" = 10\n"
    ));
    site
}

/// A member of `keys`'s fleet: a namespace with sshd and an embedded pool inside.
pub fn ns_member(keys: &Keys, workers: u32) -> (Netns, TestSite) {
    let ns = Netns::new(keys);
    let site = member_site(&ns.address, 4080, workers);
    let out = ns
        .command(BIN)
        .arg("--omerodir")
        .arg(site.root())
        .arg("start")
        .env("OMEROWEBCTL_TEST_ROUTES", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "start in {}: {}",
        ns.name,
        stderr(&out)
    );
    (ns, site)
}
