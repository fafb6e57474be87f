//! A `reload` and a `restart` of a real OMERO.web under `ab`: changed wsgi_args switch
//! the workers' generation with no failed request.

use super::*;

/// What `diagnostics` warns of about who started the serving Gunicorn, if anything.
fn not_ours_warning(site: &TestSite) -> Option<String> {
    let report: serde_json::Value =
        serde_json::from_str(&site.ok(&["diagnostics", "--json"])).unwrap();
    report["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w.as_str())
        .find(|w| w.contains("not started by omero-webctl"))
        .map(str::to_string)
}

/// Runs `during` while `status --json` is asked every 300 ms; returns what `during`
/// returned and every "not started by omero-webctl" warning status gave meanwhile.
fn watching_who_started<T>(site: &TestSite, during: impl FnOnce() -> T) -> (T, Vec<String>) {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut said = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let status = site.status_json();
                let warnings = status["warnings"].to_string();
                if warnings.contains("not started by omero-webctl") {
                    said.push(format!("master {}: {warnings}", status["master_pid"]));
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            said
        });
        let value = during();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (value, watcher.join().unwrap())
    })
}

#[test]
fn reload_and_restart_with_changed_wsgi_args_switch_generations_with_no_gap() {
    let test = "blue/green reload";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    if !nginx_available(test) {
        return;
    }
    let (site, http) = site_behind_nginx(&venv);
    let settle = Duration::from_secs(2);
    let (baseline, ()) = ab_around(http, settle, || std::thread::sleep(BASELINE));
    eprintln!("baseline: {baseline:?}");
    assert_eq!(baseline.failed, 0, "{baseline:?}");
    assert!(baseline.complete > 20, "{baseline:?}");

    let first = django_pid(site.root()).expect("var/django.pid");
    let started = Instant::now();
    let (reload, (said, lies)) = ab_around(http, settle, || {
        watching_who_started(&site, || site.ok(&["reload"]))
    });
    eprintln!(
        "reload ({:.1} s with the settles): {reload:?}\n{said}",
        started.elapsed().as_secs_f64()
    );
    // Every generation of the switch is ours: never, also not while the new master
    // boots on the configured port, is it said to be someone else's.
    assert_eq!(lies, Vec::<String>::new(), "{said}");
    assert_eq!(not_ours_warning(&site), None, "after the reload");
    let second = django_pid(site.root()).expect("var/django.pid after the reload");
    assert_ne!(first, second, "a new master serves: {said}");
    assert!(!support::alive(first), "the old generation was stopped");
    assert_eq!(reload.failed, 0, "{reload:?}");
    assert_eq!(reload.non_2xx, 0, "{reload:?}");
    assert!(
        reload.longest_ms <= bound_ms(&baseline, &reload),
        "the longest request took {} ms; without a change: {baseline:?} ({reload:?})",
        reload.longest_ms
    );

    // A flag only a restart applies: a new generation runs with it.
    site.ok(&[
        "config",
        "set",
        "omero.web.wsgi_args",
        "--max-requests-jitter 7",
    ]);
    let (restart, said) = ab_around(http, settle, || site.ok(&["restart"]));
    eprintln!("restart with a changed wsgi_args: {restart:?}\n{said}");
    assert_eq!(not_ours_warning(&site), None, "after the restart");
    let third = django_pid(site.root()).expect("var/django.pid after the restart");
    assert_ne!(third, second, "{said}");
    let argv = std::fs::read(format!("/proc/{third}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&argv).contains("--max-requests-jitter\x007"),
        "the new master runs with the new flag"
    );
    assert_eq!(restart.failed, 0, "{restart:?}");
    assert_eq!(restart.non_2xx, 0, "{restart:?}");
    assert!(
        restart.longest_ms <= bound_ms(&baseline, &restart),
        "the longest request took {} ms; without a change: {baseline:?} ({restart:?})",
        restart.longest_ms
    );

    // The history lists the three changes; the restart's names the flag it applied.
    let history = site.ok(&["history"]);
    eprintln!("{history}");
    let lines: Vec<&str> = history.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(
        lines[0].contains("start") && lines[0].contains(" ok"),
        "{history}"
    );
    assert!(
        lines[1].contains("reload") && lines[1].contains(&format!("master {first} → {second}")),
        "{history}"
    );
    assert!(
        lines[2].contains("restart") && lines[2].contains("(rollback available)"),
        "{history}"
    );
    assert!(
        history.contains("omero.web.wsgi_args (unset) → --max-requests-jitter 7"),
        "{history}"
    );

    // Rollback: the config of the generation before, switched in the same way.
    let (rollback, said) = ab_around(http, settle, || site.ok(&["rollback"]));
    eprintln!("rollback: {rollback:?}\n{said}");
    assert_eq!(not_ours_warning(&site), None, "after the rollback");
    let fourth = django_pid(site.root()).expect("var/django.pid after the rollback");
    assert_ne!(fourth, third, "{said}");
    let argv = std::fs::read(format!("/proc/{fourth}/cmdline")).unwrap();
    assert!(
        !String::from_utf8_lossy(&argv).contains("--max-requests-jitter"),
        "the previous flags again"
    );
    let config = std::fs::read_to_string(site.root().join("etc/grid/config.xml")).unwrap();
    assert!(!config.contains("max-requests-jitter"), "{config}");
    assert_eq!(rollback.failed, 0, "{rollback:?}");
    assert_eq!(rollback.non_2xx, 0, "{rollback:?}");
    assert!(
        rollback.longest_ms <= bound_ms(&baseline, &rollback),
        "{rollback:?}"
    );

    // A script's `omero web restart` (--omero-compat) gets OMERO's words for the same
    // gapless switch.
    let (compat, said) = ab_around(http, settle, || site.ok(&["--omero-compat", "restart"]));
    let fifth = django_pid(site.root()).expect("var/django.pid after the compat restart");
    assert_ne!(fifth, fourth, "{said}");
    assert_eq!(
        said,
        format!(
            "Stopping OMERO.web... [OK]\nOMERO.web WSGI workers (PID {fourth}) killed.\nStarting OMERO.web... [OK]\n"
        )
    );
    assert_eq!(compat.failed, 0, "{compat:?}");
    assert_eq!(compat.non_2xx, 0, "{compat:?}");
    let fourth = fifth;

    // A change whose workers cannot boot: refused before any switch, in one line; the
    // serving generation never noticed.
    site.ok(&["config", "set", "omero.web.apps", "[\"no_such_app\"]"]);
    let (broken, out) = ab_around(http, settle, || site.run(&["reload"]));
    eprintln!("broken reload: {broken:?}\n{}", support::stderr(&out));
    assert!(!out.status.success());
    let why = support::stderr(&out);
    assert_eq!(why.trim().lines().count(), 1, "{why}");
    assert!(
        why.contains("reload refused: the new generation did not come up")
            && why.contains("no_such_app")
            && why.contains(&format!("the running one (PID {fourth}) keeps serving")),
        "{why}"
    );
    assert_eq!(django_pid(site.root()), Some(fourth));
    assert_eq!(broken.failed, 0, "{broken:?}");
    assert_eq!(broken.non_2xx, 0, "{broken:?}");
    // Killed processes take a moment to go on a loaded machine.
    assert!(
        support::wait_until(Duration::from_secs(30), || {
            support::processes_mentioning("generations/interim").is_empty()
        }),
        "nothing of the failed generation is left: {:?}",
        support::processes_mentioning("generations/interim")
    );
}
