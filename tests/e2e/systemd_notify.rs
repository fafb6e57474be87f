//! systemd's readiness protocol, with a real datagram socket standing in for systemd:
//! the real binary runs `start --foreground` (as the generated unit does) with
//! NOTIFY_SOCKET pointing at it; the test reads every message with the sender's
//! credentials, and drives a reload and a stop.

use crate::support;

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use support::{TestSite, http_get, wait_until};

const LONG: Duration = Duration::from_secs(60);

/// One datagram: who sent it (from SCM_CREDENTIALS, as systemd checks) and its text.
#[derive(Debug, Clone)]
struct Message {
    pid: i32,
    text: String,
}

impl Message {
    fn has(&self, line: &str) -> bool {
        self.text.lines().any(|l| l == line)
    }
    fn value(&self, key: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }
}

/// The stand-in for systemd's notification socket.
struct FakeSystemd {
    socket: UnixDatagram,
    /// Every message received so far, in order.
    seen: Vec<Message>,
}

impl FakeSystemd {
    fn new(socket: UnixDatagram) -> FakeSystemd {
        setsockopt(&socket, sockopt::PassCred, &true).unwrap();
        FakeSystemd {
            socket,
            seen: Vec::new(),
        }
    }

    /// Receives one message, waiting at most `limit`.
    fn receive(&mut self, limit: Duration) -> Option<Message> {
        self.socket
            .set_read_timeout(Some(limit.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        let msg = recvmsg::<()>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .ok()?;
        let mut pid = -1;
        for cmsg in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmCredentials(creds) = cmsg {
                pid = creds.pid();
            }
        }
        let len = msg.bytes;
        let message = Message {
            pid,
            text: String::from_utf8_lossy(&buf[..len]).into_owned(),
        };
        self.seen.push(message.clone());
        Some(message)
    }

    /// Receives until a message has `line` (returned), or fails after `limit`.
    fn wait_for(&mut self, line: &str, limit: Duration) -> Message {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("no {line:?} within {limit:?}; received: {:#?}", self.seen);
            }
            if let Some(m) = self.receive(left)
                && m.has(line)
            {
                return m;
            }
        }
    }

    /// Whatever is queued now, without waiting.
    fn drain(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = self.receive(Duration::from_millis(1)) {
            out.push(m);
        }
        out
    }

    /// The messages received so far other than watchdog pings and status refreshes.
    fn milestones(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|m| {
                ["READY=1", "RELOADING=1", "STOPPING=1"]
                    .into_iter()
                    .find(|l| m.has(l))
                    .map(str::to_string)
            })
            .collect()
    }
}

fn monotonic_usec() -> u64 {
    omero_webctl::pool::notify::monotonic_usec()
}

fn start_foreground(site: &TestSite, env: &[(&str, &str)]) -> Child {
    let mut cmd = site.command(&["start", "--foreground"]);
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().unwrap()
}

fn wait_exit(child: &mut Child) -> Option<std::process::ExitStatus> {
    let mut status = None;
    wait_until(LONG, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status
}

#[test]
fn readiness_reload_watchdog_status_and_stop_arrive_in_order_on_a_path_socket() {
    let site = TestSite::new(2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let mut systemd = FakeSystemd::new(UnixDatagram::bind(&path).unwrap());
    let mut master = start_foreground(
        &site,
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let master_pid = master.id() as i32;

    // READY=1 only once every worker serves: at that moment both are ready and answer.
    let ready = systemd.wait_for("READY=1", LONG);
    let status = site.status_json();
    let states: Vec<_> = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["ready", "ready"], "{status}");
    assert_eq!(status["master_pid"], master_pid);
    assert_eq!(
        ready.value("STATUS"),
        Some("Serving: 2 of 2 workers ready, 0.0 req/s, 0 requests"),
        "{ready:?}"
    );
    assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
    // While it booted, the STATUS line said how far it was.
    let booting: Vec<_> = systemd
        .seen
        .iter()
        .filter_map(|m| m.value("STATUS"))
        .take_while(|s| s.starts_with("Starting: "))
        .collect();
    assert!(
        booting.contains(&"Starting: 1 of 2 workers ready"),
        "{:#?}",
        systemd.seen
    );

    // The STATUS line follows the traffic: workers and req/s.
    for _ in 0..30 {
        assert_eq!(
            http_get(site.port, "/__webctl/health").map(|r| r.0),
            Some(200)
        );
    }
    let deadline = Instant::now() + LONG;
    let refreshed = loop {
        assert!(Instant::now() < deadline, "{:#?}", systemd.seen);
        if let Some(m) = systemd.receive(Duration::from_secs(1))
            && let Some(text) = m.value("STATUS")
            && text.ends_with("31 requests")
        {
            break text.to_string();
        }
    };
    assert!(
        refreshed.starts_with("Serving: 2 of 2 workers ready, ") && refreshed.contains(" req/s, "),
        "{refreshed}"
    );
    let rate: f64 = refreshed
        .split(", ")
        .nth(1)
        .and_then(|r| r.strip_suffix(" req/s"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 0.0, "{refreshed}");

    // The watchdog: WATCHDOG_USEC=1s means a ping every half second. Counted over a
    // window of 3 s that starts with nothing queued: at most 3 / 0.5 + 1 can be sent
    // in it (a ping on every 250 ms tick would be 12), and a loaded machine still
    // manages two.
    systemd.drain();
    let window = Instant::now();
    let mut pings = Vec::new();
    while window.elapsed() < Duration::from_secs(3) {
        let left = Duration::from_secs(3).saturating_sub(window.elapsed());
        if let Some(m) = systemd.receive(left)
            && m.has("WATCHDOG=1")
        {
            pings.push(m);
        }
    }
    assert!((2..=7).contains(&pings.len()), "{pings:#?}");
    assert!(pings.iter().all(|m| m.text == "WATCHDOG=1"), "{pings:#?}");

    // A reload: RELOADING=1 with the monotonic time it began, then READY=1 — both sent
    // before `reload` (what ExecReload runs) returns.
    let before = monotonic_usec();
    let out = site.ok(&["reload"]);
    let after = monotonic_usec();
    assert!(out.starts_with("Reloading OMERO.web... [OK]"), "{out}");
    let queued = systemd.drain();
    let reloading = queued
        .iter()
        .position(|m| m.has("RELOADING=1"))
        .unwrap_or_else(|| panic!("{queued:#?}"));
    let usec: u64 = queued[reloading]
        .value("MONOTONIC_USEC")
        .unwrap()
        .parse()
        .unwrap();
    assert!(before <= usec && usec <= after, "{before} {usec} {after}");
    let ready_again = queued[reloading..]
        .iter()
        .find(|m| m.has("READY=1"))
        .unwrap_or_else(|| panic!("{queued:#?}"));
    assert!(
        ready_again
            .value("STATUS")
            .unwrap()
            .starts_with("Serving: "),
        "{ready_again:?}"
    );

    // Stop as systemd does it: SIGTERM to the main process.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    systemd.wait_for("STOPPING=1", LONG);
    let status = wait_exit(&mut master).expect("the master exits after SIGTERM");
    assert!(status.success(), "{status}");
    systemd.drain();

    assert_eq!(
        systemd.milestones(),
        ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]
    );
    // Every message came from the master (systemd's MAINPID), none from a worker.
    for m in &systemd.seen {
        assert_eq!(m.pid, master_pid, "{m:?}");
    }
}

#[test]
fn an_abstract_socket_gets_ready_and_stopping_and_a_refused_reload_ends_ready() {
    let site = TestSite::new(1);
    let name = format!("omero-webctl-test-{}-{}", std::process::id(), site.port);
    let addr = {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
    };
    let mut systemd = FakeSystemd::new(UnixDatagram::bind_addr(&addr).unwrap());
    let mut master = start_foreground(&site, &[("NOTIFY_SOCKET", &format!("@{name}"))]);

    systemd.wait_for("READY=1", LONG);
    // A config the reload refuses: RELOADING=1, then READY=1 again (the old workers
    // serve on), and `reload` fails.
    site.append_config("\"omero.web.wsgi_workers\" = \"many\"\n");
    let out = site.run(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    systemd.drain();
    let out = site.ok(&["stop"]);
    assert!(out.starts_with("Stopping OMERO.web... [OK]"), "{out}");
    systemd.wait_for("STOPPING=1", LONG);
    assert!(wait_exit(&mut master).is_some_and(|s| s.success()));
    systemd.drain();
    assert_eq!(
        systemd.milestones(),
        ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]
    );
    // No watchdog without WATCHDOG_USEC.
    assert!(!systemd.seen.iter().any(|m| m.has("WATCHDOG=1")));
}

#[test]
fn nothing_is_sent_by_a_detached_master_and_the_foreground_runs_without_the_variable() {
    // The detached master is not the process systemd started: it stays silent even
    // with NOTIFY_SOCKET in its environment.
    let site = TestSite::new(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let mut systemd = FakeSystemd::new(UnixDatagram::bind(&path).unwrap());
    let out = site
        .command(&["start"])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(site.ok(&["reload"]).contains("[OK]"));
    site.ok(&["stop"]);
    assert!(systemd.receive(Duration::from_secs(1)).is_none());
    assert!(systemd.seen.is_empty(), "{:#?}", systemd.seen);

    // In the foreground without NOTIFY_SOCKET: it serves and stops as usual.
    let mut master = start_foreground(&site, &[("WATCHDOG_USEC", "200000")]);
    assert!(wait_until(LONG, || site.ready_pids().len() == 1));
    assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
    site.ok(&["stop"]);
    assert!(wait_exit(&mut master).is_some_and(|s| s.success()));
    assert!(systemd.seen.is_empty());
}

/// A unit's setting (the first line `KEY=...`).
fn unit_setting<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in\n{unit}"))
}

/// Runs `command` (a unit's ExecStart or ExecReload) as systemd would with the unit's
/// filesystem hardening: a private mount namespace where `/` is read-only except the
/// unit's `ReadWritePaths` (ProtectSystem=strict) and /tmp is private when the unit
/// says PrivateTmp, under NoNewPrivileges, with the unit's `Environment=`.
fn hardened(unit: &str, command: &str, env: &[(&str, &str)]) -> std::process::Command {
    let mut script = String::from("set -e\n");
    if unit.lines().any(|l| l == "PrivateTmp=yes") {
        script.push_str("mount -t tmpfs tmpfs /tmp\nmount -t tmpfs tmpfs /var/tmp\n");
    }
    for path in unit_setting(unit, "ReadWritePaths").split(' ') {
        script.push_str(&format!("mount --bind '{path}' '{path}'\n"));
    }
    script.push_str("mount -o remount,bind,ro /\n");
    script.push_str(&format!(
        "exec setpriv --no-new-privs {}\n",
        unit_setting(unit, command)
    ));
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "bash", "-c", &script]);
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "OMERODIR"] {
        cmd.env_remove(var);
    }
    let (key, value) = unit_setting(unit, "Environment").split_once('=').unwrap();
    cmd.env(key, value).envs(env.iter().copied());
    cmd
}

fn can_unshare(test: &str) -> bool {
    let ok = nix::unistd::geteuid().is_root()
        && std::process::Command::new("unshare")
            .args(["--mount", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: needs root and unshare (util-linux), and CI=true requires it"
        );
        eprintln!("skipping {test}: needs root and unshare (util-linux)");
    }
    ok
}

#[test]
fn the_generated_unit_serves_reloads_and_stops_under_its_own_hardening() {
    if !can_unshare("the_generated_unit_serves_reloads_and_stops_under_its_own_hardening") {
        return;
    }
    let site = site_outside_tmp(2);
    site.ok(&["demo", "--images", "1", "--size", "64", "--z", "1"]);
    let units = tempfile::tempdir().unwrap();
    let binary = unit_binary();
    write_units(&site, units.path(), &binary);
    let unit = std::fs::read_to_string(units.path().join("omero-web.service")).unwrap();
    assert_eq!(unit_setting(&unit, "NoNewPrivileges"), "yes");
    assert_eq!(unit_setting(&unit, "ProtectSystem"), "strict");
    assert_eq!(unit_setting(&unit, "PrivateTmp"), "yes");
    assert_eq!(
        unit_setting(&unit, "ReadWritePaths"),
        site.root().join("var").to_str().unwrap()
    );

    let name = format!("omero-webctl-hardened-{}-{}", std::process::id(), site.port);
    let addr = {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
    };
    let mut systemd = FakeSystemd::new(UnixDatagram::bind_addr(&addr).unwrap());
    let mut master = hardened(
        &unit,
        "ExecStart",
        &[("NOTIFY_SOCKET", &format!("@{name}"))],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Its command line does not name the site (OMERODIR does), so the site's cleanup
    // would miss it if the test failed: kill it then.
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0 as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let guard = KillOnDrop(master.id());
    systemd.wait_for("READY=1", LONG);
    // It writes where it may: the log, static files, the thumbnail cache.
    let (status, _, jpeg) = support::fetch(site.port, "/webgateway/render_thumbnail/1/", &[]);
    assert_eq!(status, 200);
    assert!(jpeg.starts_with(&[0xff, 0xd8]));
    assert!(site.log().contains("Pool ready: 2 workers"));
    // And the sandbox is real: in it, the site's etc/ cannot be written, var/ can.
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "bash", "-c"])
        .arg(format!(
            "mount --bind '{var}' '{var}'; mount -o remount,bind,ro /; touch '{etc}/probe' 2>&1; touch '{var}/probe' && echo var-writable",
            var = site.root().join("var").display(),
            etc = site.root().join("etc").display()
        ))
        .output()
        .unwrap();
    let said = support::stdout(&out);
    assert!(said.contains("Read-only file system"), "{said}");
    assert!(said.contains("var-writable"), "{said}");

    // ExecReload, under the same hardening: the rolling reload completes.
    let reload = hardened(&unit, "ExecReload", &[]).output().unwrap();
    assert!(reload.status.success(), "{}", support::stderr(&reload));
    assert!(support::stdout(&reload).starts_with("Reloading OMERO.web... [OK]"));
    systemd.wait_for("RELOADING=1", LONG);
    systemd.wait_for("READY=1", LONG);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    systemd.wait_for("STOPPING=1", LONG);
    let status = wait_exit(&mut master).expect("the master exits after SIGTERM");
    // Reaped: its PID may be another process's now.
    std::mem::forget(guard);
    let mut errors = String::new();
    use std::io::Read;
    master
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut errors)
        .unwrap();
    assert!(status.success(), "{status}: {errors}");
    // Nothing in the log says a write was refused.
    let log = site.log();
    assert!(!log.contains("Read-only file system"), "{log}");
    assert!(!log.contains("Permission denied"), "{log}");
}

/// A directory outside /tmp and /var/tmp, where production sites live (a site under
/// them gets the shared /tmp, not a private one): the target directory, unless the
/// checkout itself is under /tmp, as a CI clone may be; then /srv.
fn production_parent() -> std::path::PathBuf {
    let target = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    if !(target.starts_with("/tmp") || target.starts_with("/var/tmp")) {
        return target;
    }
    let srv = std::path::PathBuf::from("/srv/omero-webctl-tests");
    std::fs::create_dir_all(&srv).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the checkout is under /tmp, so the sites of the hardening tests need a directory outside it)",
            srv.display()
        )
    });
    srv
}

/// The binary as the units run it. A unit with a private /tmp cannot see a binary
/// under /tmp (in a checkout there, as the CI clone is), so then a copy outside it,
/// where an installed binary would be; `None` when the build's own binary will do.
/// The directory is removed when the guard is dropped.
fn unit_binary() -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    let built = std::path::PathBuf::from(env!("CARGO_BIN_EXE_omero-webctl"));
    if !(built.starts_with("/tmp") || built.starts_with("/var/tmp")) {
        return None;
    }
    let dir = tempfile::tempdir_in(production_parent()).unwrap();
    let copy = dir.path().join("omero-webctl");
    std::fs::copy(&built, &copy).unwrap();
    Some((dir, copy))
}

/// `omero-webctl systemd` for `site`'s units in `units`, run by `binary`.
fn write_units(
    site: &TestSite,
    units: &std::path::Path,
    binary: &Option<(tempfile::TempDir, std::path::PathBuf)>,
) {
    let mut args = vec![
        "systemd",
        "--user",
        "root",
        "--output",
        units.to_str().unwrap(),
    ];
    if let Some((_, exe)) = binary {
        args.extend(["--exe", exe.to_str().unwrap()]);
    }
    site.ok(&args);
}

/// A site where production sites live, outside /tmp, so its units get a private /tmp
/// and only var/ writable.
fn site_outside_tmp(workers: u32) -> TestSite {
    let site = TestSite {
        dir: tempfile::tempdir_in(production_parent()).unwrap(),
        port: support::free_port(),
    };
    site.write_config(&format!(
        "\"omero.web.application_server.port\" = {}\n\"omero.web.wsgi_workers\" = {workers}\n\"omero.web.wsgi_graceful_timeout\" = 10\n",
        site.port
    ));
    site
}

#[test]
fn the_omeroweb_unit_leaves_gunicorn_serving_from_its_pid_file_under_its_hardening() {
    const NAME: &str =
        "the_omeroweb_unit_leaves_gunicorn_serving_from_its_pid_file_under_its_hardening";
    let Some(venv) = support::omeroweb_venv(NAME) else {
        return;
    };
    if !can_unshare(NAME) {
        return;
    }
    let site = TestSite {
        dir: tempfile::tempdir_in(production_parent()).unwrap(),
        port: support::free_port(),
    };
    for (key, value) in [
        ("omero.web.python", venv.to_string_lossy().into_owned()),
        ("omero.web.application_server.port", site.port.to_string()),
        ("omero.web.wsgi_workers", "2".into()),
        ("omero.web.wsgi_graceful_timeout", "10".into()),
    ] {
        site.ok(&["--backend", "omeroweb", "config", "set", key, &value]);
    }
    let units = tempfile::tempdir().unwrap();
    let binary = unit_binary();
    write_units(&site, units.path(), &binary);
    let unit = std::fs::read_to_string(units.path().join("omero-web.service")).unwrap();
    assert_eq!(unit_setting(&unit, "Type"), "forking");
    assert_eq!(unit_setting(&unit, "PrivateTmp"), "yes");

    // ExecStart returns once Gunicorn serves; then systemd reads the pid file.
    let start = hardened(&unit, "ExecStart", &[]).output().unwrap();
    assert!(
        start.status.success(),
        "{}{}",
        support::stdout(&start),
        support::stderr(&start)
    );
    assert!(support::stdout(&start).starts_with("Starting OMERO.web... [OK]"));
    let pid_file = unit_setting(&unit, "PIDFile");
    let pid: u32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(support::alive(pid));
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .replace('\0', " ");
    assert!(cmdline.contains("gunicorn"), "{cmdline}");
    assert_eq!(site.get("/webclient/login/").map(|r| r.0), Some(200));

    let reload = hardened(&unit, "ExecReload", &[]).output().unwrap();
    assert!(reload.status.success(), "{}", support::stderr(&reload));
    assert!(wait_until(LONG, || site
        .get("/webclient/login/")
        .map(|r| r.0)
        == Some(200)));

    let stop = hardened(&unit, "ExecStop", &[]).output().unwrap();
    assert!(stop.status.success(), "{}", support::stderr(&stop));
    assert!(wait_until(LONG, || !support::alive(pid)));
}
