//! Rolling upgrades of embedded members (`fleet upgrade --binary`) and undoing a whole
//! roll (`fleet rollback`), with real parts: embedded members behind their own private
//! nginx (what `upgrade --binary` switches through), an OMERO.web member the binary
//! does not fit, the real nginx front, and `ab -r` through it.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::fleet::*;
use support::{BIN, TestSite, free_port, http_get, stderr, stdout, wait_until};

const PAGE: &str = "/webclient/login/";

fn exe(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap()
}

fn master_exe(site: &TestSite) -> PathBuf {
    exe(site.master_pid().expect("a master"))
}

/// Where `needle` first shows in `text` (panics when it does not).
fn at(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"))
}

/// A "new release": a script that runs `real` (a copy of this binary), except as the
/// master of a site holding `etc/refuse-new-binary`, where it exits at once (a release
/// that does not come up on that member only).
fn release(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    // A master is known by its executable's name: the real one keeps this program's.
    let real = dir.join("real/omero-webctl");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::copy(BIN, &real).unwrap();
    let script = dir.join("omero-webctl-new");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprev=\nfor a in \"$@\"; do\n  if [ \"$prev\" = --omerodir ] && [ -e \"$a/etc/refuse-new-binary\" ]; then\n    echo 'this release does not come up here' >&2; exit 3\n  fi\n  prev=$a\ndone\nexec '{}' \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, real)
}

/// Runs `act` under `ab -r` through the front: its result, requests sent and failed.
fn under_load<T>(front: u16, act: impl FnOnce() -> T) -> (T, u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_path_until(front, PAGE, 50, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let result = act();
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = load.join().unwrap();
    (result, sent, failed)
}

/// Three embedded members and an OMERO.web one. `fleet upgrade --binary` gives e1 the
/// new binary, skips the OMERO.web member, and stops at e2 (where the release does not
/// come up: e2 keeps its master and returns to the front), leaving e3 untouched;
/// `fleet rollback` then returns e1 to the binary it ran. A roll over all three, then
/// its undo, last changed first. No request through the front fails meanwhile.
#[test]
fn fleet_upgrade_rolls_embedded_members_stops_at_the_first_failure_and_rollback_undoes_the_roll() {
    let test = "fleet_upgrade_rolls_embedded_members_stops_at_the_first_failure_and_rollback_undoes_the_roll";
    let Some(venv) = support::omeroweb_venv(test) else {
        return;
    };
    if !support::nginx_available(test) {
        return;
    }
    let e1 = TestSite::new(1);
    let web = TestSite::omeroweb(&venv, 1);
    let e2 = TestSite::new(1);
    let e3 = TestSite::new(1);
    let sites = [(&e1, "e1"), (&web, "w"), (&e2, "e2"), (&e3, "e3")];
    let mut entries = Vec::new();
    for (site, name) in sites {
        site.ok(&["start"]);
        let upstream = if name == "w" {
            format!("127.0.0.1:{}", site.port)
        } else {
            let http = free_port();
            site.ok(&["nginx", "start", "--http", &http.to_string()]);
            format!("127.0.0.1:{http}")
        };
        entries.push(Entry {
            name,
            ssh: "local".into(),
            site: site.root(),
            upstream,
        });
    }
    let control = TestSite::new(1);
    let front = free_port();
    std::fs::write(
        control.root().join("etc/fleet.toml"),
        fleet_toml(front, None, 30, &entries),
    )
    .unwrap();
    fleet_ok(&control, &["nginx", "start"]);
    // The OMERO.web member's login page is another length than the gateway's, which ab
    // counts as failed: it is kept out of the front (the roll still has to skip it).
    fleet_ok(&control, &["drain", "w"]);
    assert!(wait_until(Duration::from_secs(60), || {
        http_get(front, PAGE).is_some_and(|(code, _)| code == 200)
    }));
    let (script, real) = release(&control.root().join("release"));
    let script = script.display().to_string();
    let original = |site: &TestSite| {
        let exe = master_exe(site);
        assert_ne!(exe, real, "{} runs the old binary", site.root().display());
        exe
    };
    let (e2_master, e3_master) = (e2.master_pid().unwrap(), e3.master_pid().unwrap());
    let web_master = web.master_pid().unwrap();
    let e1_before = original(&e1);

    // Nothing to undo yet.
    let error = stderr(&fleet(&control, &["rollback"]));
    assert!(error.contains("no rolling upgrade to undo"), "{error}");

    std::fs::write(e2.root().join("etc/refuse-new-binary"), "").unwrap();
    let (out, sent, failed) = under_load(front, || {
        fleet(
            &control,
            &["upgrade", "--binary", &script, "--health-window", "2"],
        )
    });
    let (said, error) = (stdout(&out), stderr(&out));
    eprintln!("a roll stopped at e2: {sent} requests, {failed} failed\n{said}{error}");
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("e1: healthy"), "{said}");
    assert!(
        said.contains("w: no release of its kind given; skipped"),
        "{said}"
    );
    assert!(
        error.contains("e2: upgrade failed")
            && error.contains("healthy on its previous generation, back in the front")
            && error.contains("done before it: e1;")
            && error.contains("not touched: e3"),
        "{error}"
    );
    assert_eq!(failed, 0, "of {sent} requests through the front");
    assert_eq!(master_exe(&e1), real, "e1 runs the new binary");
    assert_eq!(e2.master_pid(), Some(e2_master), "e2 kept its master");
    assert_eq!(e3.master_pid(), Some(e3_master), "e3 untouched");
    assert_eq!(web.master_pid(), Some(web_master), "w untouched");
    let rows = status_rows(&control);
    for name in ["e1", "e2", "e3"] {
        assert_eq!(row(&rows, name)["drained"], false, "{name} is in the front");
    }

    // The stopped roll undone: e1 back on the binary it ran.
    let (said, sent, failed) = under_load(front, || fleet_ok(&control, &["rollback"]));
    eprintln!("the stopped roll undone: {sent} requests, {failed} failed\n{said}");
    assert!(said.contains("Rolled back: e1 "), "{said}");
    assert!(said.contains("Undoing the rolling upgrade of 20"), "{said}");
    assert_eq!(failed, 0, "of {sent} requests through the front");
    let e1_after = master_exe(&e1);
    assert_ne!(e1_after, real);
    assert_eq!(
        std::fs::metadata(&e1_after).unwrap().len(),
        std::fs::metadata(&e1_before).unwrap().len(),
        "e1 runs (a copy of) the binary it ran before: {}",
        e1_after.display()
    );
    assert_eq!(e2.master_pid(), Some(e2_master));
    let error = stderr(&fleet(&control, &["rollback"]));
    assert!(error.contains("no rolling upgrade to undo"), "{error}");

    // The whole roll, then its undo, last changed first.
    std::fs::remove_file(e2.root().join("etc/refuse-new-binary")).unwrap();
    let (said, sent, failed) = under_load(front, || {
        fleet_ok(
            &control,
            &["upgrade", "--binary", &script, "--health-window", "2"],
        )
    });
    eprintln!("a roll over e1, e2, e3: {sent} requests, {failed} failed\n{said}");
    assert!(said.contains("Every member upgraded."), "{said}");
    assert_eq!(failed, 0, "of {sent} requests through the front");
    for site in [&e1, &e2, &e3] {
        assert_eq!(master_exe(site), real);
    }
    let (said, sent, failed) = under_load(front, || fleet_ok(&control, &["rollback"]));
    eprintln!("the roll undone: {sent} requests, {failed} failed\n{said}");
    assert_eq!(failed, 0, "of {sent} requests through the front");
    assert!(
        at(&said, "e3: rollback…") < at(&said, "e2: rollback…")
            && at(&said, "e2: rollback…") < at(&said, "e1: rollback…"),
        "{said}"
    );
    assert!(said.contains("Rolled back: e3, e2, e1 "), "{said}");
    for site in [&e1, &e2, &e3] {
        assert_ne!(master_exe(site), real);
    }
    assert_eq!(web.master_pid(), Some(web_master), "w untouched");
}

/// The same over ssh: two embedded members in network namespaces (sshd in each, their
/// private nginx inside), rolled to a new binary through the front and back with `fleet
/// rollback`, the last changed first; nothing fails through the front.
#[test]
fn fleet_upgrade_and_rollback_of_embedded_members_over_ssh() {
    let test = "fleet_upgrade_and_rollback_of_embedded_members_over_ssh";
    if !support::netns::available(test) || !support::nginx_available(test) {
        return;
    }
    let keys = support::netns::Keys::new();
    let members = [ns_member(&keys, 1), ns_member(&keys, 1)];
    let mut entries = Vec::new();
    for ((ns, site), name) in members.iter().zip(["m1", "m2"]) {
        let out = ns
            .command(BIN)
            .arg("--omerodir")
            .arg(site.root())
            .args(["nginx", "start", "--http", "8080"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nginx start in {name}: {}",
            stderr(&out)
        );
        entries.push(Entry {
            name,
            ssh: format!("root@{}", ns.address),
            site: site.root(),
            upstream: format!("{}:8080", ns.address),
        });
    }
    let control = TestSite::new(1);
    let front = free_port();
    std::fs::write(
        control.root().join("etc/fleet.toml"),
        fleet_toml(front, Some(&keys), 10, &entries),
    )
    .unwrap();
    fleet_ok(&control, &["nginx", "start"]);
    assert!(wait_until(Duration::from_secs(60), || {
        http_get(front, PAGE).is_some_and(|(code, _)| code == 200)
    }));
    let (script, real) = release(&control.root().join("release"));
    let script = script.display().to_string();
    let before: Vec<PathBuf> = members.iter().map(|(_, s)| master_exe(s)).collect();
    for exe in &before {
        assert_ne!(exe, &real);
    }

    let (said, sent, failed) = under_load(front, || {
        fleet_ok(
            &control,
            &["upgrade", "--binary", &script, "--health-window", "2"],
        )
    });
    eprintln!("over ssh, a roll of m1, m2: {sent} requests, {failed} failed\n{said}");
    assert!(
        said.contains("m1: healthy") && said.contains("m2: healthy"),
        "{said}"
    );
    assert_eq!(failed, 0, "of {sent} requests through the front");
    for (_, site) in &members {
        assert_eq!(master_exe(site), real);
    }

    let (said, sent, failed) = under_load(front, || fleet_ok(&control, &["rollback"]));
    eprintln!("over ssh, the roll undone: {sent} requests, {failed} failed\n{said}");
    assert_eq!(failed, 0, "of {sent} requests through the front");
    assert!(
        at(&said, "m2: rollback…") < at(&said, "m1: rollback…"),
        "{said}"
    );
    assert!(said.contains("Rolled back: m2, m1 "), "{said}");
    for ((_, site), old) in members.iter().zip(&before) {
        let now = master_exe(site);
        assert_ne!(now, real);
        assert_eq!(
            std::fs::metadata(&now).unwrap().len(),
            std::fs::metadata(old).unwrap().len()
        );
    }
}
