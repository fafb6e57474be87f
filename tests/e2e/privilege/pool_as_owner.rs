//! Root starting a user's pool and writing its systemd units: no link followed, nothing
//! created or handed over outside the site, the pool running as the owner.

use super::*;

// ---- Attack 3: the embedded pool run by root -------------------------------------------

#[test]
fn attack3_the_pool_started_by_root_follows_no_link_and_runs_as_the_owner() {
    let Some(user) = TestUser::create("attack 3") else {
        return;
    };
    let victims = Victims::new();
    let site = TestSite::new(1);
    let var = site.root().join("var");
    std::fs::create_dir_all(var.join("log")).unwrap();
    let before = victims.snapshot();

    // The pool's pid file, then its log, linked to root's file: refused, untouched.
    std::os::unix::fs::symlink(victims.file(), var.join("omeroweb.pid")).unwrap();
    user.own(site.root());
    let out = site.run(&["start"]);
    assert_refused_in_one_line(&out, "omeroweb.pid: is a symlink; refused");
    assert_eq!(victims.snapshot(), before);
    std::fs::remove_file(var.join("omeroweb.pid")).unwrap();
    std::os::unix::fs::symlink(victims.file(), var.join("log/OMEROweb.log")).unwrap();
    user.own(site.root());
    let out = site.run(&["start"]);
    assert_refused_in_one_line(&out, "OMEROweb.log: is a symlink; refused");
    assert_eq!(victims.snapshot(), before);
    std::fs::remove_file(var.join("log/OMEROweb.log")).unwrap();

    // wsgi_args naming root's file as the access log: opened as the owner, who may not.
    let access_log = format!("--access-logfile={}", victims.file().display());
    site.ok(&["config", "set", "omero.web.wsgi_args", &access_log]);
    user.own(site.root());
    let out = site
        .command(&["start"])
        .env("SECRET_TOKEN", "hunter2")
        .output()
        .unwrap();
    if out.status.success() {
        site.ok(&["stop"]);
    }
    assert_eq!(
        victims.snapshot(),
        before,
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // A clean start: master and workers are the owner's, with none of root's
    // environment or groups.
    site.ok(&["config", "unset", "omero.web.wsgi_args"]);
    let out = site
        .command(&["start"])
        .env("SECRET_TOKEN", "hunter2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let master = site.master_pid().unwrap();
    assert_eq!(uid_of(master), Some(user.uid));
    let workers = site.ready_pids();
    assert!(!workers.is_empty());
    for worker in workers {
        assert_eq!(uid_of(worker), Some(user.uid), "worker {worker}");
    }
    let environ =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{master}/environ")).unwrap())
            .into_owned();
    assert!(!environ.contains("hunter2"), "{environ}");
    assert!(
        environ.contains(&format!("USER={}", user.name)),
        "{environ}"
    );
    let status = std::fs::read_to_string(format!("/proc/{master}/status")).unwrap();
    let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert!(!groups.split_whitespace().any(|g| g == "0"), "{groups}");
    assert!(site.get("/").is_some());
    site.ok(&["stop"]);
    assert_eq!(not_owned_by(site.root(), user.uid), Vec::<PathBuf>::new());
    assert_eq!(victims.snapshot(), before);
}

// ---- Attack 4: systemd --output ----------------------------------------------------------

#[test]
fn attack4_systemd_output_creates_and_hands_over_nothing_outside_the_site() {
    let Some(user) = TestUser::create("attack 4") else {
        return;
    };
    let victims = Victims::new();
    let site = TestSite::new(1);
    let units = tempfile::tempdir().unwrap();
    let before = victims.snapshot();
    // A log directory that does not exist, where root would create and chown it.
    let planted = victims.cron_dir().join("ssh.service.d");
    site.ok(&[
        "config",
        "set",
        "omero.web.logdir",
        planted.to_str().unwrap(),
    ]);
    user.own(site.root());
    let out = site.run(&["systemd", "--output", units.path().to_str().unwrap()]);
    assert_refused_in_one_line(&out, "outside the site and does not exist");
    assert_eq!(
        std::fs::read_dir(units.path()).unwrap().count(),
        0,
        "nothing written"
    );
    assert!(!planted.exists());
    assert_eq!(victims.snapshot(), before);

    // One that exists but belongs to someone else: refused too.
    let foreign = tempfile::tempdir().unwrap();
    nix::unistd::chown(foreign.path(), Some(12345.into()), Some(12345.into())).unwrap();
    site.ok(&[
        "config",
        "set",
        "omero.web.logdir",
        foreign.path().to_str().unwrap(),
    ]);
    let out = site.run(&["systemd", "--output", units.path().to_str().unwrap()]);
    assert_refused_in_one_line(&out, "belongs to uid 12345");
    assert_eq!(std::fs::read_dir(units.path()).unwrap().count(), 0);

    // Inside the site: the owner creates what the units may write, root writes the
    // units into the directory its command line named.
    site.ok(&["config", "unset", "omero.web.logdir"]);
    std::fs::remove_dir_all(site.root().join("var")).ok();
    user.own(site.root());
    let out = site.run(&["systemd", "--output", units.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let unit = std::fs::read_to_string(units.path().join("omero-web.service")).unwrap();
    assert!(unit.contains(&format!("User={}", user.name)), "{unit}");
    assert_eq!(
        std::fs::metadata(units.path().join("omero-web.service"))
            .unwrap()
            .uid(),
        0
    );
    assert!(
        site.root().join("var").is_dir(),
        "ReadWritePaths must exist"
    );
    assert_eq!(not_owned_by(site.root(), user.uid), Vec::<PathBuf>::new());
    assert_eq!(victims.snapshot(), before);
}
