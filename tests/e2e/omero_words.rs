//! `--omero-compat` (and `OMERO_WEBCTL_OMERO_COMPAT`): `start`, `stop`, `restart` and
//! `status` answer as OMERO's own `omero web …` does — words, streams, exit codes —
//! checked against the real `omero web` on the same site, side by side.

use crate::support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use support::{TestSite, django_pid, omeroweb_venv, stderr, stdout, wait_until};

const LONG: Duration = Duration::from_secs(60);

/// What a script sees: stdout, stderr and the exit code.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    out: String,
    err: String,
    code: i32,
}

fn seen(output: Output) -> Seen {
    Seen {
        out: stdout(&output),
        err: stderr(&output),
        code: output.status.code().unwrap_or(-1),
    }
}

fn ours(site: &TestSite, args: &[&str]) -> Seen {
    let mut full = vec!["--omero-compat"];
    full.extend_from_slice(args);
    seen(site.run(&full))
}

fn omero(venv: &Path, site: &TestSite, args: &[&str]) -> Seen {
    let mut full = vec!["web"];
    full.extend_from_slice(args);
    seen(
        support::omero_cli(venv, site.root(), &full)
            .output()
            .unwrap(),
    )
}

/// A PID that no process has (a child that has exited and been reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn on_an_omeroweb_site_our_words_streams_and_exit_codes_are_omero_webs() {
    let Some(venv) = omeroweb_venv("omero-compat words") else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 1);
    let pid_file = site.root().join("var/django.pid");
    std::fs::create_dir_all(site.root().join("var")).unwrap();

    // Nothing runs: status says [NOT STARTED] on stderr and exits 0; stop on stdout.
    for args in [&["status"][..], &["stop"][..]] {
        let theirs = omero(&venv, &site, args);
        assert_eq!(ours(&site, args), theirs, "{args:?}");
    }
    assert_eq!(
        ours(&site, &["status"]),
        Seen {
            out: "OMERO.web status... ".into(),
            err: "[NOT STARTED]\n".into(),
            code: 0
        }
    );

    // A pid file naming a process that is gone: the same [ERROR] lines, the same
    // "Removed stale" (stop removes it, so it is written again for each).
    for args in [&["status"][..], &["stop"][..]] {
        let pid = dead_pid();
        std::fs::write(&pid_file, format!("{pid}\n")).unwrap();
        let theirs = omero(&venv, &site, args);
        std::fs::write(&pid_file, format!("{pid}\n")).unwrap();
        let mine = ours(&site, args);
        assert_eq!(mine, theirs, "{args:?} with a stale pid file");
        assert!(mine.err.contains(&format!("(PID {pid}) - no such process")));
    }
    let _ = std::fs::remove_file(&pid_file);

    // Started by us: the words of `omero web start`, then the real `omero web status`
    // and ours agree on [RUNNING] and the PID.
    let started = ours(&site, &["start"]);
    assert_eq!(started.out, "Starting OMERO.web... [OK]\n", "{started:?}");
    assert_eq!(started.code, 0);
    let master = django_pid(site.root()).expect("a pid file");
    let theirs = omero(&venv, &site, &["status"]);
    assert_eq!(ours(&site, &["status"]), theirs);
    assert_eq!(
        theirs.out,
        format!("OMERO.web status... [RUNNING] (PID {master})\n")
    );

    // Starting again fails as OMERO's does: its message on stderr, exit 94 (606).
    let theirs = omero(&venv, &site, &["start"]);
    let mine = ours(&site, &["start"]);
    assert_eq!(mine.code, 94, "{mine:?}");
    assert_eq!(theirs.code, 94, "{theirs:?}");
    assert_eq!(mine.err, theirs.err);
    assert_eq!(
        mine.err,
        format!(
            "[FAILED] OMERO.web already started. {} exists (PID: {master})! Use 'web stop or restart' first.\n",
            pid_file.display()
        )
    );
    // OMERO's stdout first carries collectstatic's and clearsessions' output; the last
    // words are the same.
    assert_eq!(mine.out, "Starting OMERO.web... ");
    assert!(theirs.out.ends_with("Starting OMERO.web... "), "{theirs:?}");

    // Stop: OMERO's two lines. Ours has waited for the workers to leave.
    let mine = ours(&site, &["stop"]);
    assert_eq!(
        mine,
        Seen {
            out: format!(
                "Stopping OMERO.web... [OK]\nOMERO.web WSGI workers (PID {master}) killed.\n"
            ),
            err: String::new(),
            code: 0
        }
    );
    assert!(!support::alive(master));

    // The real `omero web stop` of a site we started says the same two lines first
    // (then "Removed stale …", as Gunicorn has not yet removed its own pid file).
    let restarted = ours(&site, &["restart"]);
    assert_eq!(
        restarted.out,
        "Stopping OMERO.web... [NOT STARTED]\nStarting OMERO.web... [OK]\n"
    );
    let master = django_pid(site.root()).expect("restarted");
    let theirs = omero(&venv, &site, &["stop"]);
    assert_eq!(theirs.code, 0);
    assert!(
        theirs.out.starts_with(&format!(
            "Stopping OMERO.web... [OK]\nOMERO.web WSGI workers (PID {master}) killed.\n"
        )),
        "{theirs:?}"
    );
    assert!(wait_until(LONG, || !support::alive(master)));
}

#[test]
fn the_environment_variable_asks_for_omeros_words_on_an_embedded_site_too() {
    let site = TestSite::new(1);
    let status = seen(
        site.command(&["status"])
            .env("OMERO_WEBCTL_OMERO_COMPAT", "true")
            .output()
            .unwrap(),
    );
    assert_eq!(
        status,
        Seen {
            out: "OMERO.web status... ".into(),
            err: "[NOT STARTED]\n".into(),
            code: 0
        }
    );
    // Without it: our own words and exit code 3.
    let plain = seen(site.run(&["status"]));
    assert_eq!(plain.code, 3);
    assert_eq!(plain.out, "OMERO.web status... [NOT STARTED]\n");

    let started = ours(&site, &["start"]);
    assert_eq!(started.out, "Starting OMERO.web... [OK]\n", "{started:?}");
    let master = django_pid(site.root()).expect("the pool writes OMERO's pid file");
    let again = ours(&site, &["start"]);
    assert_eq!(again.code, 94, "{again:?}");
    assert!(
        again.err.starts_with("[FAILED] OMERO.web already started."),
        "{again:?}"
    );
    assert_eq!(
        ours(&site, &["status"]).out,
        format!("OMERO.web status... [RUNNING] (PID {master})\n")
    );
    let stopped = ours(&site, &["stop"]);
    assert_eq!(
        stopped.out,
        format!("Stopping OMERO.web... [OK]\nOMERO.web WSGI workers (PID {master}) killed.\n")
    );
    assert!(!support::alive(master));
}
