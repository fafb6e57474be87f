//! An OMERO.web site's config.xml, edited by omero-webctl and by the real `omero
//! config` (omero-py, from the venv `scripts/omeroweb-venv` builds) side by side.
//!
//! The venv is `$OMERO_WEBCTL_VENV`, else `${XDG_CACHE_HOME:-$HOME/.cache}/
//! omero-webctl/omeroweb-venv`. Without it each test prints why and passes, except
//! under CI (`CI=true`), where it fails.
//!
//! omero-py's `bin/omero` refuses to run as root (`omero/main.py`, `not_root()`,
//! with no way around it). As root the tests run the same CLI without that guard:
//! `python -c 'import omero.cli; omero.cli.argv()'`, which is all `bin/omero` does
//! after the check, so `config set/get/def` are OMERO's own code either way.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{BIN, stderr, stdout};

/// The real OMERO CLI of the venv.
struct Omero {
    venv: PathBuf,
}

impl Omero {
    fn find(test: &str) -> Option<Omero> {
        support::omeroweb_venv(test).map(|venv| Omero { venv })
    }

    /// `omero ARGS` with `OMERODIR=dir` (and `OMERO_CONFIG` when given).
    fn command(&self, dir: &Path, profile: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = support::omero_cli(&self.venv, dir, args);
        match profile {
            Some(p) => cmd.env("OMERO_CONFIG", p),
            None => cmd.env_remove("OMERO_CONFIG"),
        };
        cmd
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        self.command(dir, None, args).output().unwrap()
    }

    /// Runs, expects success, returns stdout.
    fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.run(dir, args);
        assert!(
            out.status.success(),
            "omero {args:?} failed ({}):\n{}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }
}

fn webctl(dir: &Path, profile: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--omerodir").arg(dir).args(args);
    match profile {
        Some(p) => cmd.env("OMERO_CONFIG", p),
        None => cmd.env_remove("OMERO_CONFIG"),
    };
    cmd
}

/// `omero-webctl --omerodir DIR ARGS`, expecting success; returns stdout.
fn ours(dir: &Path, args: &[&str]) -> String {
    let out = webctl(dir, None, args).output().unwrap();
    assert!(
        out.status.success(),
        "omero-webctl {args:?} failed ({}):\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn config_xml(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("etc/grid/config.xml")).unwrap()
}

/// The file without the time in its comment.
fn timeless(text: &str) -> String {
    let (head, rest) = text.split_once(" by the OmeroConfig system.").unwrap();
    let (prefix, _) = head.split_once("generated at ").unwrap();
    format!("{prefix}generated at TIME by the OmeroConfig system.{rest}")
}

#[test]
fn what_we_write_omero_reads_and_writes_alike() {
    let Some(omero) = Omero::find("what_we_write_omero_reads_and_writes_alike") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // No config.xml yet: --backend omeroweb makes one, as OMERO would.
    ours(
        dir,
        &[
            "--backend",
            "omeroweb",
            "config",
            "set",
            "omero.web.wsgi_workers",
            "7",
        ],
    );
    assert_eq!(
        omero.ok(dir, &["config", "get", "omero.web.wsgi_workers"]),
        "7\n"
    );
    let written_by_us = config_xml(dir);
    // `omero config get` saves the file too (ConfigXml.close): what it writes is
    // byte for byte ours, but the time.
    assert_eq!(timeless(&config_xml(dir)), timeless(&written_by_us));
    assert!(!dir.join("etc/grid/config.xml.lock").exists());

    // From now on the site is detected as an OMERO.web site (no --backend).
    assert_eq!(
        ours(dir, &["config", "get", "omero.web.wsgi_workers"]),
        "7\n"
    );
    ours(dir, &["config", "set", "omero.web.wsgi_workers", "3"]);
    ours(dir, &["config", "set", "omero.web.debug", "1"]);
    assert_eq!(
        omero.ok(dir, &["config", "get"]),
        "omero.web.debug=true\nomero.web.wsgi_workers=3\n"
    );
    ours(dir, &["config", "unset", "omero.web.debug"]);
    assert_eq!(
        omero.ok(dir, &["config", "get"]),
        "omero.web.wsgi_workers=3\n"
    );
}

#[test]
fn what_omero_writes_we_read_and_keep() {
    let Some(omero) = Omero::find("what_omero_writes_we_read_and_keep") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    omero.ok(dir, &["config", "set", "omero.web.prefix", "/omero"]);
    omero.ok(dir, &["config", "set", "omero.db.name", "omero_db"]);
    omero.ok(dir, &["config", "set", "omero.data.dir", "/OMERO"]);
    omero.ok(dir, &["config", "set", "omero.web.wsgi_workers", "4"]);
    assert_eq!(
        ours(dir, &["config", "get", "omero.web.prefix"]),
        "/omero\n"
    );
    assert_eq!(
        ours(dir, &["config", "get", "omero.web.wsgi_workers"]),
        "4\n"
    );
    let list = ours(dir, &["config", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("omero.web.prefix ") && l.contains(" set ")),
        "{list}"
    );

    // Our write keeps every property of other components, and their order.
    ours(dir, &["config", "set", "omero.web.wsgi_workers", "9"]);
    assert_eq!(
        omero.ok(dir, &["config", "get"]),
        "omero.data.dir=/OMERO\nomero.db.name=omero_db\nomero.web.prefix=/omero\nomero.web.wsgi_workers=9\n"
    );
    let text = config_xml(dir);
    let order = [
        "omero.web.prefix",
        "omero.db.name",
        "omero.data.dir",
        "omero.web.wsgi_workers",
    ]
    .map(|k| text.rfind(&format!("name=\"{k}\"")).unwrap());
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");

    // A value OMERO's parser cannot read (its import fails): reported by key, and
    // never a reason to refuse another key's change; the value stays as written.
    omero.ok(dir, &["config", "set", "omero.web.wsgi_workers", "many"]);
    let out = webctl(dir, None, &["config", "set", "omero.web.debug", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list = ours(dir, &["config", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&list).unwrap();
    let workers = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "omero.web.wsgi_workers")
        .unwrap();
    assert_eq!(workers["value"], "many");
    assert_eq!(workers["omero_fails"], true);
    assert_eq!(
        omero.ok(dir, &["config", "get"]),
        "omero.data.dir=/OMERO\nomero.db.name=omero_db\nomero.web.debug=true\nomero.web.prefix=/omero\nomero.web.wsgi_workers=many\n"
    );
}

#[test]
fn json_quotes_and_newlines_round_trip_both_ways() {
    let Some(omero) = Omero::find("json_quotes_and_newlines_round_trip_both_ways") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let ours_value = "[[\"Data & more\", \"webindex\", {\"title\": \"<b>it's \\\"here\\\"</b>\"}],\n\t[\"Help\", \"https://x.org/?a=1&b=2\"]]";
    ours(
        dir,
        &[
            "--backend",
            "omeroweb",
            "config",
            "set",
            "omero.web.ui.top_links",
            ours_value,
        ],
    );
    assert_eq!(
        omero.ok(dir, &["config", "get", "omero.web.ui.top_links"]),
        format!("{ours_value}\n")
    );
    let theirs = "{\"a&b\": \"<tag attr='1'>\", \"q\": \"\\\"x\\\"\",\n \"tab\": \"\\t\"}";
    omero.ok(
        dir,
        &["config", "set", "omero.web.sharing.opengraph", theirs],
    );
    assert_eq!(
        ours(dir, &["config", "get", "omero.web.sharing.opengraph"]),
        format!("{theirs}\n")
    );
    // And after our next write, OMERO still reads both unchanged.
    ours(dir, &["config", "set", "omero.web.wsgi_workers", "2"]);
    assert_eq!(
        omero.ok(dir, &["config", "get", "omero.web.ui.top_links"]),
        format!("{ours_value}\n")
    );
    assert_eq!(
        omero.ok(dir, &["config", "get", "omero.web.sharing.opengraph"]),
        format!("{theirs}\n")
    );
}

#[test]
fn profiles_follow_omero_config_and_active() {
    let Some(omero) = Omero::find("profiles_follow_omero_config_and_active") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    omero.ok(dir, &["config", "set", "omero.web.wsgi_workers", "2"]);
    // OMERO_CONFIG=test: both read and write the profile "test".
    let out = omero
        .command(
            dir,
            Some("test"),
            &["config", "set", "omero.web.wsgi_workers", "6"],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let get = |profile| {
        let out = webctl(dir, profile, &["config", "get", "omero.web.wsgi_workers"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(get(Some("test")), "6\n");
    assert_eq!(get(None), "2\n");
    let out = webctl(
        dir,
        Some("test"),
        &["config", "set", "omero.web.prefix", "/test"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = omero
        .command(dir, Some("test"), &["config", "get"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out),
        "omero.web.prefix=/test\nomero.web.wsgi_workers=6\n"
    );
    assert_eq!(
        omero.ok(dir, &["config", "get"]),
        "omero.web.wsgi_workers=2\n"
    );

    // `omero config def test` makes "test" the active profile (__ACTIVE__): we
    // follow it without OMERO_CONFIG, and our save keeps it active.
    omero.ok(dir, &["config", "def", "test"]);
    assert_eq!(get(None), "6\n");
    ours(dir, &["config", "set", "omero.web.wsgi_workers", "8"]);
    assert_eq!(omero.ok(dir, &["config", "def"]), "test\n");
    assert_eq!(
        omero.ok(dir, &["config", "get"]),
        "omero.web.prefix=/test\nomero.web.wsgi_workers=8\n"
    );
    let out = omero
        .command(dir, Some("default"), &["config", "get"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "omero.web.wsgi_workers=2\n");
}

#[test]
fn concurrent_writers_lose_no_update() {
    let Some(omero) = Omero::find("concurrent_writers_lose_no_update") else {
        return;
    };
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_path_buf();
    omero.ok(&dir, &["config", "set", "omero.db.name", "omero_db"]);
    const WRITERS: usize = 3;
    const KEYS: usize = 2;
    let omero = Arc::new(omero);
    let omero_running = Arc::new(AtomicUsize::new(WRITERS));
    let collisions = Arc::new(AtomicUsize::new(0));
    // One `omero config set` at a time among OMERO's own writers: omero-py unlocks its
    // lock file before deleting it, so two of its own writers can both get in (one on
    // the old file, one on a new one) and lose each other's update, whatever we do.
    // Ours run at any moment against them.
    let omero_turn = Arc::new(std::sync::Mutex::new(()));
    let mut theirs = Vec::new();
    for w in 0..WRITERS {
        // omero config set: fails at once (exit 112, "Could not acquire lock") when
        // the lock is taken, so it is retried, as a deployment script would.
        let (omero, target, turn) = (omero.clone(), dir.clone(), omero_turn.clone());
        let (running, collisions) = (omero_running.clone(), collisions.clone());
        theirs.push(std::thread::spawn(move || {
            // Counts this writer out even when it panics, so ours stop.
            struct Finished(Arc<AtomicUsize>);
            impl Drop for Finished {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::Relaxed);
                }
            }
            let _finished = Finished(running);
            for k in 0..KEYS {
                let key = format!("omero.custom.omero_{w}_{k}");
                loop {
                    let out = {
                        let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
                        omero.run(&target, &["config", "set", &key, &format!("{w}.{k}")])
                    };
                    match out.status.code() {
                        Some(0) => break,
                        Some(112) => collisions.fetch_add(1, Ordering::Relaxed),
                        _ => panic!("omero config set {key}: {}{}", stdout(&out), stderr(&out)),
                    };
                }
            }
        }));
    }
    // Ours write all the time OMERO's run: each its own key, a new value each time.
    // They wait for the lock and hold it from read to write, so they never fail.
    let mut ours_threads = Vec::new();
    for w in 0..WRITERS {
        let (target, running) = (dir.clone(), omero_running.clone());
        ours_threads.push(std::thread::spawn(move || {
            let key = format!("omero.web.webctl_{w}");
            let mut n = 0;
            while running.load(Ordering::Relaxed) > 0 || n == 0 {
                n += 1;
                let out = webctl(
                    &target,
                    None,
                    &["config", "set", "--force", &key, &n.to_string()],
                )
                .output()
                .unwrap();
                assert!(
                    out.status.success(),
                    "omero-webctl config set {key} {n}: {}",
                    stderr(&out)
                );
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
            (key, n)
        }));
    }
    for t in theirs {
        t.join().unwrap();
    }
    let last: Vec<(String, usize)> = ours_threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    eprintln!(
        "omero config set found the lock taken {} times; ours wrote {:?}",
        collisions.load(Ordering::Relaxed),
        last
    );

    let all = omero.ok(&dir, &["config", "get"]);
    let ours_all = ours(&dir, &["config", "get"]);
    let mut expected: Vec<String> = (0..WRITERS)
        .flat_map(|w| (0..KEYS).map(move |k| format!("omero.custom.omero_{w}_{k}={w}.{k}")))
        .collect();
    expected.extend(last.iter().map(|(key, n)| format!("{key}={n}")));
    expected.push("omero.db.name=omero_db".into());
    for line in &expected {
        assert!(
            all.lines().any(|l| l == line),
            "{line} lost; omero config get:\n{all}"
        );
        assert!(
            ours_all.lines().any(|l| l == line),
            "{line} lost; ours:\n{ours_all}"
        );
    }
    assert_eq!(all.lines().count(), expected.len(), "{all}");
}
