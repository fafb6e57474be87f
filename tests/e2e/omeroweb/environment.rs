//! The Gunicorn we start: as root it runs as the site's owner; its environment and argv
//! are `omero web start`'s plus only our flags; logins reach the server.

use super::*;

/// Whether a user other than root can reach `path` (every directory on the way
/// searchable by others).
fn reachable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .skip(1)
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn chown_tree(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn uid_of(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn as_root_the_sites_python_runs_as_the_sites_owner_never_as_root() {
    let test = "omeroweb as root";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: needs root");
        return;
    }
    const NOBODY: u32 = 65534;
    // A site another user owns: Gunicorn and Django run as that user.
    if reachable_by_others(&venv.join("bin/python")) {
        let site = TestSite::omeroweb(&venv, 1);
        // nobody's home does not exist; omero-py needs a temp dir it can lock.
        let tmp = site.root().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        // A link planted where root writes its state: root must not write through it.
        let precious = site.root().join("precious");
        std::fs::write(&precious, "keep").unwrap();
        std::fs::create_dir_all(site.root().join("var")).unwrap();
        std::os::unix::fs::symlink(
            &precious,
            site.root().join("var/.omero-webctl-gunicorn.json"),
        )
        .unwrap();
        chown_tree(site.root(), NOBODY);
        // As root, a directory outside the site is not created and handed over.
        let outside = format!("/tmp/omero-webctl-test-outside-{}", site.port);
        site.ok(&["config", "set", "omero.web.logdir", &outside]);
        let out = site.run(&["start"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("creates directories only inside the site"),
            "{}",
            stderr(&out)
        );
        assert!(!Path::new(&outside).exists());
        site.ok(&["config", "unset", "omero.web.logdir"]);
        chown_tree(site.root(), NOBODY);
        let out = site
            .command(&["start"])
            .env("OMERO_TMPDIR", &tmp)
            .env("SECRET_TOKEN", "hunter2")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let master = django_pid(site.root()).unwrap();
        assert_eq!(uid_of(master), NOBODY);
        assert!(children(master).iter().all(|&w| uid_of(w) == NOBODY));
        // Nothing of root's environment or groups crossed over.
        let environ = std::fs::read(format!("/proc/{master}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(!environ.contains("hunter2"), "{environ}");
        assert!(
            environ.contains("OMERO_TMPDIR="),
            "OMERO's own variables do cross"
        );
        let groups = std::fs::read_to_string(format!("/proc/{master}/status")).unwrap();
        let groups = groups.lines().find(|l| l.starts_with("Groups:")).unwrap();
        assert!(!groups.split_whitespace().any(|g| g == "0"), "{groups}");
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
        site.ok(&["stop"]);
    } else if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{test}: the venv {} is not reachable by other users",
            venv.display()
        );
    } else {
        eprintln!(
            "{test}: part skipped, {} is not reachable by other users",
            venv.display()
        );
    }

    // A root-owned site whose interpreter another user owns: refused, nothing run.
    let site = TestSite::omeroweb(&venv, 1);
    let foreign = site.root().join("foreign-venv");
    std::fs::create_dir_all(foreign.join("bin")).unwrap();
    std::fs::create_dir_all(foreign.join("lib/python3.11")).unwrap();
    std::fs::copy(venv.join("pyvenv.cfg"), foreign.join("pyvenv.cfg")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3.11", foreign.join("bin/python")).unwrap();
    std::os::unix::fs::symlink(
        venv.join("lib/python3.11/site-packages"),
        foreign.join("lib/python3.11/site-packages"),
    )
    .unwrap();
    chown_tree(&foreign, NOBODY);
    site.ok(&[
        "config",
        "set",
        "omero.web.python",
        &foreign.to_string_lossy(),
    ]);
    let out = site.run(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not run another user's Python as root"),
        "{}",
        stderr(&out)
    );
    assert!(
        !site.root().join("var/static").exists(),
        "collectstatic did not run"
    );
}

/// A process's environment (`/proc/PID/environ`) and arguments (`cmdline`).
fn environ_and_argv(pid: u32) -> (std::collections::BTreeMap<String, String>, Vec<String>) {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ)
        .split('\0')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv = String::from_utf8_lossy(&argv)
        .split('\0')
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    (environ, argv)
}

#[test]
fn our_gunicorn_runs_with_omero_web_starts_environment_and_argv_plus_only_our_flags_and_logins_work()
 {
    let test = "omeroweb environment as omero web start";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 1);
    let root = site.root().to_path_buf();
    // A config OMERO alone could have written: none of our extensions.
    site.ok(&["config", "unset", "omero.web.wsgi_graceful_timeout"]);
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Both started from the same, known environment (a caller's variable must pass).
    let controlled = |cmd: &mut Command| {
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .env("OMERODIR", &root)
            .env("OMEROWEBCTL_TEST_ROUTES", "1")
            .env("CALLERS_OWN", "kept");
    };
    let read_master = |what: &str| {
        assert!(
            wait_until(LONG, || django_pid(&root)
                .is_some_and(|m| children(m).len() == 1)),
            "{what}: a master with one worker"
        );
        let master = django_pid(&root).unwrap();
        (master, environ_and_argv(master))
    };

    let mut cmd = support::omero_cli(&venv, &root, &["web", "start"]);
    controlled(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (theirs, (their_env, their_argv)) = read_master("omero web start");
    assert!(
        wait_until(LONG, || http_get(site.port, "/webclient/login/")
            .is_some_and(|(c, _)| c == 200)),
        "omero web start's site serves"
    );
    assert_login_reaches_the_server_connection(site.port, "omero web start");
    let mut cmd = support::omero_cli(&venv, &root, &["web", "stop"]);
    controlled(&mut cmd);
    assert!(cmd.output().unwrap().status.success());
    assert!(wait_until(LONG, || !support::alive(theirs)
        && children(theirs).is_empty()
        && std::net::TcpListener::bind(("127.0.0.1", site.port))
            .is_ok()));

    let mut cmd = site.command(&["start"]);
    controlled(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (_, (our_env, our_argv)) = read_master("omero-webctl start");

    // The environment: the same, variable for variable (no ICE_CONFIG).
    assert_eq!(
        their_env.get("CALLERS_OWN").map(String::as_str),
        Some("kept")
    );
    assert_eq!(
        our_env, their_env,
        "environment of our master vs omero web start's"
    );
    // The command line: OMERO's, plus our documented flags, each with its value.
    const OURS: [&str; 4] = [
        "--control-socket",
        "--error-logfile",
        "--access-logfile",
        "--access-logformat",
    ];
    let mut without_ours = Vec::new();
    let mut added = Vec::new();
    let mut args = our_argv.iter();
    while let Some(arg) = args.next() {
        if OURS.contains(&arg.as_str()) {
            added.push(arg.as_str());
            args.next().expect("a value after our flag");
        } else {
            without_ours.push(arg.clone());
        }
    }
    assert_eq!(added, OURS, "{our_argv:?}");
    assert_eq!(
        without_ours, their_argv,
        "argv of our master vs omero web start's"
    );

    // And the login that answered 500 under our old environment.
    assert_login_reaches_the_server_connection(site.port, "omero-webctl start");
    site.ok(&["stop"]);
}
