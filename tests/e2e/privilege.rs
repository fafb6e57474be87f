//! Issue 20: root never acts inside a site a user owns. Each attack of the issue is
//! reproduced with a real unprivileged user (created with `useradd`, removed with
//! `userdel -r` by a guard, also when the test fails) who owns the site and plants what
//! an attacker would, while root runs the real binary. Victims are files in a
//! root-owned directory the test creates; every test shows they kept their owner, mode
//! and content, and that the command either worked safely or refused in one line.
//! Attacks that need no root run as the current user when the suite is not root.

use crate::support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use omero_webctl::proc::children;
use support::{TestSite, free_port, http_get, nginx_available, stderr, stdout, wait_until};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A real unprivileged account for the length of a test. Dropping it kills its
/// processes (each by its PID) and removes it with `userdel -r`.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    /// `None` (with a note) when not root: only root can add users.
    fn create(test: &str) -> Option<TestUser> {
        if !is_root() {
            eprintln!("skipping the root part of {test}: needs root");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "owt{}x{}",
            std::process::id() % 1_000_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        // Tests run in parallel and useradd locks /etc/passwd: a busy lock is retried.
        let mut last = None;
        let added = wait_until(Duration::from_secs(60), || {
            let tried = Command::new("useradd")
                .args([
                    "--create-home",
                    "--user-group",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .arg(&name)
                .output()
                .unwrap();
            let done = tried.status.success();
            last = Some(tried);
            done
        });
        assert!(
            added,
            "useradd: {}",
            last.as_ref().map(stderr).unwrap_or_default()
        );
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        Some(TestUser {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            name,
        })
    }

    /// Gives `path` and everything under it to the user; links themselves, never
    /// what they point at.
    fn own(&self, path: &Path) {
        let status = Command::new("chown")
            .args(["-hR", &format!("{}:{}", self.uid, self.gid)])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn processes(&self) -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| uid_of(pid) == Some(self.uid))
            .collect()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        for pid in self.processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        wait_until(Duration::from_secs(10), || self.processes().is_empty());
        // Retried while another test holds the lock on /etc/passwd.
        wait_until(Duration::from_secs(60), || {
            let out = Command::new("userdel").args(["-r", &self.name]).output();
            out.is_ok_and(|o| o.status.success())
                || nix::unistd::User::from_name(&self.name)
                    .ok()
                    .flatten()
                    .is_none()
        });
    }
}

fn uid_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1)?.parse().ok())
}

/// Files an attacker aims at: a directory (0755) and a file (0644, "keep") that root
/// owns, in a temp directory of their own (never real /etc files).
struct Victims {
    dir: tempfile::TempDir,
}

/// Owner, group, mode and content (or listing) of a victim.
type Snapshot = Vec<(PathBuf, u32, u32, u32, String)>;

impl Victims {
    fn new() -> Victims {
        let dir = tempfile::Builder::new()
            .prefix("omero-webctl-victims.")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.path().join("cron.d")).unwrap();
        std::fs::write(dir.path().join("crontab"), "keep\n").unwrap();
        Victims { dir }
    }
    fn cron_dir(&self) -> PathBuf {
        self.dir.path().join("cron.d")
    }
    fn file(&self) -> PathBuf {
        self.dir.path().join("crontab")
    }
    fn snapshot(&self) -> Snapshot {
        [self.dir.path().to_path_buf(), self.cron_dir(), self.file()]
            .into_iter()
            .map(|p| {
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let content = if meta.is_dir() {
                    let mut names: Vec<String> = std::fs::read_dir(&p)
                        .unwrap()
                        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    names.join(",")
                } else {
                    std::fs::read_to_string(&p).unwrap()
                };
                (p, meta.uid(), meta.gid(), meta.mode(), content)
            })
            .collect()
    }
}

/// A refusal: exit 1 and one line of error on stderr that contains `needle`.
fn assert_refused_in_one_line(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(out), stderr(out));
    let text = stderr(out);
    let errors: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(
        errors.len(),
        1,
        "one line with {needle:?} expected:\n{text}"
    );
}

/// Paths under `root` that `uid` does not own.
fn not_owned_by(root: &Path, uid: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = entry.path().symlink_metadata().unwrap();
            if meta.uid() != uid {
                out.push(entry.path());
            }
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out
}

fn nginx_master(site: &TestSite) -> Option<u32> {
    std::fs::read_to_string(site.root().join("var/nginx/nginx.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A privileged port nothing listens on.
fn free_privileged_port() -> u16 {
    (700..1000)
        .find(|&p| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok())
        .expect("a free port below 1024")
}

// ---- Attack 1: nginx temp paths ---------------------------------------------------

#[test]
fn attack1_a_temp_path_linked_to_a_root_directory_is_refused_and_nginx_runs_as_the_owner() {
    let test = "attack 1";
    if !nginx_available(test) {
        return;
    }
    let Some(user) = TestUser::create(test) else {
        return;
    };
    let victims = Victims::new();
    let site = TestSite::new(1);
    let tmp = site.root().join("var/nginx/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::os::unix::fs::symlink(victims.cron_dir(), tmp.join("proxy")).unwrap();
    user.own(site.root());
    let before = victims.snapshot();
    let port = free_port().to_string();

    let out = site.run(&["nginx", "start", "--http", &port]);
    assert_refused_in_one_line(&out, "var/nginx/tmp/proxy is a symlink");
    assert_eq!(victims.snapshot(), before);
    assert!(nginx_master(&site).is_none());

    // Without the link: nginx runs, master and workers as the owner, and everything
    // root's command made in the site belongs to the owner (issue 19: a root-owned
    // var/ made the owner's next start fail).
    std::fs::remove_file(tmp.join("proxy")).unwrap();
    let out = site.run(&["nginx", "start", "--http", &port]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let master = nginx_master(&site).unwrap();
    assert_eq!(uid_of(master), Some(user.uid));
    assert!(wait_until(Duration::from_secs(10), || !children(master).is_empty()));
    for worker in children(master) {
        assert_eq!(uid_of(worker), Some(user.uid), "worker {worker}");
    }
    assert_eq!(not_owned_by(site.root(), user.uid), Vec::<PathBuf>::new());
    site.ok(&["nginx", "stop"]);
    assert_eq!(victims.snapshot(), before);
}

#[test]
fn a_privileged_port_is_bound_by_root_and_handed_to_nginx_running_as_the_owner() {
    let test = "privileged port";
    if !nginx_available(test) {
        return;
    }
    let Some(user) = TestUser::create(test) else {
        return;
    };
    let site = TestSite::new(1);
    std::fs::create_dir_all(site.root().join("var")).unwrap();
    user.own(site.root());
    let port = free_privileged_port();
    let out = site.run(&["nginx", "start", "--http", &port.to_string()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let master = nginx_master(&site).unwrap();
    assert_eq!(uid_of(master), Some(user.uid), "the master is not root");
    // The pool is not running: nginx answers 502 from the port root bound.
    assert_eq!(http_get(port, "/").map(|(code, _)| code), Some(502));
    site.ok(&["nginx", "reload"]);
    assert_eq!(http_get(port, "/").map(|(code, _)| code), Some(502));
    site.ok(&["nginx", "stop"]);
    assert!(wait_until(Duration::from_secs(10), || http_get(port, "/").is_none()));
    // Without --http the port comes from var/nginx/port, which the owner writes: root
    // binds nothing for it, and says how to ask.
    let out = site.run(&["nginx", "start"]);
    assert_refused_in_one_line(&out, &format!("nginx start --http {port}"));
    assert!(http_get(port, "/").is_none());
}

// ---- Attack 2: nginx extra config ----------------------------------------------------

/// The lines of the issue: `\"` outside quotes hides a `}` from a checker that takes
/// `"` for a string, and the rest defines a server whose access log is a root file.
fn escaping_lines(victim: &Path, port: u16) -> String {
    let lines = [
        "add_header X-A \\\";}".to_string(),
        "log_format evil \"$http_user_agent\";".to_string(),
        "server {".to_string(),
        format!("listen {port};"),
        format!("access_log {} evil;", victim.display()),
        "}".to_string(),
        "server {".to_string(),
    ];
    serde_json::to_string(&lines).unwrap()
}

#[test]
fn attack2_extra_config_that_leaves_the_server_block_is_refused_at_config_set() {
    let user = TestUser::create("attack 2");
    let victims = Victims::new();
    let site = TestSite::new(1);
    if let Some(user) = &user {
        user.own(site.root());
    }
    let before = victims.snapshot();
    let config_before = std::fs::read(site.config_file()).unwrap();
    let key = "omero.web.nginx_server_extra_config";

    let out = site.run(&[
        "config",
        "set",
        key,
        &escaping_lines(&victims.file(), free_port()),
    ]);
    assert_refused_in_one_line(&out, "line 1");
    assert!(
        stderr(&out).contains("closes a block it did not open"),
        "{}",
        stderr(&out)
    );
    // Even without the bypass, a file-opening directive is refused with its reason.
    let plain =
        serde_json::to_string(&[format!("access_log {};", victims.file().display())]).unwrap();
    let out = site.run(&["config", "set", key, &plain]);
    assert_refused_in_one_line(&out, "makes nginx open or create files");
    let out = site.run(&["config", "set", key, r#"["include /etc/nginx/x.conf;"]"#]);
    assert_refused_in_one_line(&out, "\"include\"");
    assert_eq!(std::fs::read(site.config_file()).unwrap(), config_before);

    // Written into the file behind our back: generating nginx's config refuses too,
    // and writes nothing.
    site.append_config(&format!(
        "\"{key}\" = '{}'\n",
        escaping_lines(&victims.file(), free_port())
    ));
    let generated = site.root().join("omero-web.conf");
    let out = site.run(&["nginx", "--output", generated.to_str().unwrap()]);
    assert_refused_in_one_line(&out, "closes a block it did not open");
    assert!(!generated.exists());
    assert_eq!(victims.snapshot(), before);
}

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

// ---- Smaller items (no root needed) -----------------------------------------------------

#[test]
fn a_fifo_in_place_of_an_image_is_refused_and_costs_only_its_own_requests() {
    let site = TestSite::with_demo(
        1,
        "",
        &[
            "--images",
            "2",
            "--size",
            "64",
            "--channels",
            "1",
            "--z",
            "1",
        ],
    );
    site.ok(&["start"]);
    assert_eq!(
        site.get("/webgateway/render_thumbnail/1/").map(|r| r.0),
        Some(200)
    );
    // Whoever can write the repository swaps image 2 for a FIFO nobody writes to.
    let image = site.root().join("var/repository/demo/demo-002.ome.tiff");
    std::fs::remove_file(&image).unwrap();
    nix::unistd::mkfifo(&image, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    // More requests than the worker has blocking threads: each is answered at once,
    // none with the FIFO's content. (The race between the repository's check and the
    // open is `cargo test --lib a_fifo_in_place_of_an_image_is_refused_without_blocking`.)
    for round in 0..8 {
        for path in [
            "/webgateway/render_thumbnail/2/",
            "/webgateway/render_image/2/0/0/",
            "/webgateway/archived_files/download/2/",
        ] {
            let asked = std::time::Instant::now();
            let answer = site.get(path);
            assert!(
                asked.elapsed() < Duration::from_secs(10),
                "{path} (round {round}) took {:?}",
                asked.elapsed()
            );
            let (code, body) = answer.unwrap_or_else(|| panic!("{path}: no answer"));
            assert_ne!(code, 200, "{path}: {body}");
            // Error bodies name no absolute path.
            assert!(
                !body.contains(site.root().to_str().unwrap()),
                "{path}: {body}"
            );
        }
    }
    assert_eq!(
        site.get("/webgateway/render_thumbnail/1/").map(|r| r.0),
        Some(200)
    );
    assert_eq!(site.ready_pids().len(), 1);
    site.ok(&["stop"]);
}

/// A read that never returns (a hung network filesystem; simulated by the test-only
/// `OMEROWEBCTL_TEST_HANG_OPEN`, since no local filesystem can be made to hang a
/// read: `fsfreeze` holds writes only) costs its own request 504 at the worker
/// timeout, naming the image; other requests are served meanwhile; the worker, whose
/// thread stays stuck, is replaced and `status` says why.
#[test]
fn a_stuck_image_read_is_answered_at_the_timeout_and_its_worker_replaced() {
    let site = TestSite::with_demo(
        1,
        "\"omero.web.wsgi_timeout\" = 3\n\"omero.web.wsgi_worker_class\" = \"gthread\"\n\"omero.web.wsgi_threads\" = 4\n",
        &[
            "--images",
            "2",
            "--size",
            "64",
            "--channels",
            "1",
            "--z",
            "1",
        ],
    );
    let started = site
        .command(&["start"])
        .env("OMEROWEBCTL_TEST_HANG_OPEN", "demo-002.ome.tiff")
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", stderr(&started));
    assert_eq!(
        site.get("/webgateway/render_image/1/0/0/").map(|r| r.0),
        Some(200)
    );
    let victim = site.ready_pids()[0];

    let port = site.port;
    let stuck = std::thread::spawn(move || {
        let asked = std::time::Instant::now();
        let answer = http_get(port, "/webgateway/render_image/2/0/0/");
        (answer, asked.elapsed())
    });
    // Served meanwhile, by the same worker, while image 2's read hangs.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        let asked = std::time::Instant::now();
        assert_eq!(
            site.get("/webgateway/render_thumbnail/1/").map(|r| r.0),
            Some(200)
        );
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{:?}",
            asked.elapsed()
        );
    }
    let (answer, took) = stuck.join().unwrap();
    let (code, body) = answer.expect("the stuck request got no answer");
    assert_eq!(code, 504, "{body}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(3 + 7),
        "answered after {took:?}"
    );
    assert!(body.contains("image 2"), "{body}");
    assert!(!body.contains(site.root().to_str().unwrap()), "{body}");
    // The worker's log line reaches the master's log a moment after the answer.
    assert!(
        wait_until(Duration::from_secs(10), || {
            site.log()
                .contains("did not finish within 3s (omero.web.wsgi_timeout): image 2 (open)")
        }),
        "{}",
        site.log()
    );

    // The stuck thread stays: the master replaces the worker (gracefully: it exits).
    assert!(
        wait_until(Duration::from_secs(60), || {
            let pids = site.ready_pids();
            pids.len() == 1 && pids[0] != victim
        }),
        "the stuck worker was not replaced: {}",
        site.status_json()
    );
    assert!(
        wait_until(Duration::from_secs(30), || !support::alive(victim)),
        "the replaced worker did not exit"
    );
    let log = site.log();
    assert!(
        log.contains(&format!(
            "Worker (pid:{victim}) replaced: 1 blocking thread stuck"
        )) && log.contains("(oldest: image 2 (open))"),
        "{log}"
    );
    let status = site.status_json();
    assert_eq!(status["stuck_replaced"], 1, "{status}");
    assert_eq!(status["restarts"], 1, "{status}");
    let said = site.run(&["status"]);
    let (out, warned) = (stdout(&said), stderr(&said));
    assert!(
        out.contains("1 of the restarts replaced workers whose blocking threads stayed stuck"),
        "{out}"
    );
    assert!(
        warned.contains("1 worker(s) replaced for stuck blocking work; last: Worker (pid:"),
        "{warned}"
    );
    assert_eq!(
        site.get("/webgateway/render_thumbnail/1/").map(|r| r.0),
        Some(200)
    );
    site.ok(&["stop"]);
}

/// A directory of the site on a loop-mounted ext4 that is frozen (`fsfreeze`) while
/// the pool runs: a real filesystem on which writes hang in the kernel. Dropping it
/// thaws the filesystem, stops the site and unmounts, also when the test fails.
struct FrozenDir<'a> {
    site: &'a TestSite,
    dir: PathBuf,
}

impl<'a> FrozenDir<'a> {
    fn mount(site: &'a TestSite, relative: &str) -> FrozenDir<'a> {
        let image = site.root().join("frozen.img");
        let dir = site.root().join(relative);
        std::fs::create_dir_all(&dir).unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
        };
        run(Command::new("truncate").args(["-s", "64M"]).arg(&image));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        let mounted = FrozenDir { site, dir };
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mounted.dir));
        mounted
    }

    fn freeze(&self) {
        let out = Command::new("fsfreeze")
            .arg("-f")
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "fsfreeze: {}", stderr(&out));
    }
}

impl Drop for FrozenDir<'_> {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.dir).output();
        let _ = self.site.command(&["stop", "--quick"]).output();
        let root = self.site.root().to_string_lossy().into_owned();
        for pid in support::processes_mentioning(&root) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        wait_until(Duration::from_secs(20), || {
            Command::new("umount")
                .arg(&self.dir)
                .output()
                .is_ok_and(|o| o.status.success())
        });
    }
}

/// The real-filesystem case of the stuck request: saving rendering settings writes
/// `var/rdefs/`, here a frozen ext4, so the write hangs in the kernel. The request is
/// answered 504 at the timeout naming the image, renders go on meanwhile, and the
/// worker is replaced by one that serves.
#[test]
fn a_write_hung_on_a_frozen_filesystem_is_answered_at_the_timeout_and_its_worker_replaced() {
    if !is_root() {
        eprintln!("skipping: mounting and freezing a filesystem needs root");
        return;
    }
    let site = TestSite::with_demo(
        1,
        "\"omero.web.wsgi_timeout\" = 3\n\"omero.web.wsgi_worker_class\" = \"gthread\"\n\"omero.web.wsgi_threads\" = 4\n",
        &[
            "--images",
            "1",
            "--size",
            "64",
            "--channels",
            "1",
            "--z",
            "1",
        ],
    );
    let frozen = FrozenDir::mount(&site, "var/rdefs");
    site.ok(&["start"]);
    assert_eq!(
        site.get("/webgateway/render_image/1/0/0/").map(|r| r.0),
        Some(200)
    );
    let victim = site.ready_pids()[0];
    frozen.freeze();

    let port = site.port;
    let save = std::thread::spawn(move || {
        let asked = std::time::Instant::now();
        let answer = support::http_request(
            port,
            "POST /webgateway/saveImgRDef/1/?c=1|0:100$00FF00 HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        );
        (answer, asked.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        assert_eq!(
            site.get("/webgateway/render_image/1/0/0/").map(|r| r.0),
            Some(200)
        );
    }
    let (answer, took) = save.join().unwrap();
    let (code, body) = answer.expect("the hung save got no answer");
    assert_eq!(code, 504, "{body}");
    assert!(took < Duration::from_secs(3 + 7), "answered after {took:?}");
    assert!(body.contains("image 1 (save settings)"), "{body}");
    assert!(
        wait_until(Duration::from_secs(60), || {
            let pids = site.ready_pids();
            pids.len() == 1 && pids[0] != victim
        }),
        "the stuck worker was not replaced: {}\n{}",
        site.status_json(),
        site.log()
    );
    assert!(
        site.log()
            .contains(&format!("Worker (pid:{victim}) replaced: ")),
        "{}",
        site.log()
    );
    assert_eq!(site.status_json()["stuck_replaced"], 1);
    // The new worker serves, the filesystem still frozen.
    assert_eq!(
        site.get("/webgateway/render_image/1/0/0/").map(|r| r.0),
        Some(200)
    );
    drop(frozen);
}

#[test]
fn zip_downloads_take_each_image_once_and_leave_unknown_ids_out() {
    let site = TestSite::with_demo(
        1,
        "",
        &[
            "--images",
            "2",
            "--size",
            "64",
            "--channels",
            "1",
            "--z",
            "1",
        ],
    );
    site.ok(&["start"]);
    let size = |path: &str| {
        let (status, headers, body) = support::fetch(site.port, path, &[]);
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            support::header(&headers, "content-length"),
            Some(body.len().to_string().as_str())
        );
        body.len()
    };
    let once = size("/webgateway/archived_files/download/?image=1&image=2");
    let repeated = format!(
        "/webgateway/archived_files/download/?{}image=2",
        "image=1&".repeat(50)
    );
    assert_eq!(size(&repeated), once, "duplicates add nothing");
    // A missing image is left out, as OMERO's getObjects leaves it out: image 1 alone.
    assert_eq!(
        size("/webgateway/archived_files/download/?image=1&image=999"),
        size("/webgateway/archived_files/download/?image=1")
    );
    let (status, body) = site
        .get("/webgateway/archived_files/download/?image=998&image=999")
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (
            500,
            "Cannot download archived file because Images not found (ids: ['998', '999'])\n"
        )
    );
    site.ok(&["stop"]);
}

// ---- nginx's reading of what we accept ---------------------------------------------------

#[test]
fn extra_config_we_accept_has_the_same_block_structure_in_nginx_t() {
    use omero_webctl::nginx::differential::{Verdict, compare_with_nginx, lines_from};
    if !nginx_available("nginx differential") {
        return;
    }
    let site = Path::new("/srv/omero-web");
    let mut rng = fastrand::Rng::with_seed(20);
    let (mut agreed, mut refused, mut runs) = (0, 0, 0);
    for _ in 0..20_000 {
        if runs == 300 {
            break;
        }
        let len = rng.usize(5..40);
        let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let lines = lines_from(&bytes);
        if omero_webctl::nginx::validate_extra_config(&lines, site).is_err() {
            refused += 1;
            continue;
        }
        runs += 1;
        match compare_with_nginx(&lines).expect("nginx is installed") {
            Verdict::Agrees => agreed += 1,
            Verdict::Inconclusive => {}
            Verdict::Differs(said) => panic!("accepted {lines:?}; nginx -t: {said}"),
        }
    }
    // The comparison learnt something: values were refused, and many accepted ones
    // were read by nginx to the end with the marker in its place.
    assert!(refused > 100, "{refused} refused");
    assert!(
        agreed >= 50,
        "only {agreed} of {runs} accepted values agreed"
    );
}

#[test]
fn nginx_output_as_root_reads_the_site_as_its_owner_and_writes_only_roots_file() {
    let Some(user) = TestUser::create("nginx --output") else {
        return;
    };
    let victims = Victims::new();
    // A root-only secret, and the site's config file made a link to it.
    let secret = victims.dir.path().join("shadow");
    std::fs::write(&secret, "root:SECRET-HASH:19000::::::\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let site = TestSite::new(1);
    let config = site.config_file();
    let saved = std::fs::read(&config).unwrap();
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink(&secret, &config).unwrap();
    user.own(site.root());
    let before = victims.snapshot();
    let conf_dir = tempfile::tempdir().unwrap();
    let output = conf_dir.path().join("omero-web.conf");

    let out = site.run(&["nginx", "--output", output.to_str().unwrap()]);
    assert_refused_in_one_line(&out, "Permission denied");
    assert!(!stderr(&out).contains("SECRET-HASH"), "{}", stderr(&out));
    assert!(!output.exists());
    assert_eq!(victims.snapshot(), before);

    // The owner's real config: root writes the system nginx's file, and it is root's.
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, saved).unwrap();
    user.own(site.root());
    let out = site.run(&["nginx", "--output", output.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(
        written.contains(&format!("server 127.0.0.1:{}", site.port)),
        "{written}"
    );
    assert_eq!(std::fs::metadata(&output).unwrap().uid(), 0);
    assert_eq!(not_owned_by(site.root(), user.uid), Vec::<PathBuf>::new());
}

// ---- Issue 19, walk finding 6 -----------------------------------------------------------

#[test]
fn after_roots_nginx_start_the_owner_starts_its_omeroweb_site_itself() {
    let test = "root's nginx start, then the owner's start";
    if !nginx_available(test) {
        return;
    }
    let Some(venv) = support::omeroweb_venv(test) else {
        return;
    };
    let Some(user) = TestUser::create(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 1);
    user.own(site.root());
    // Root's nginx start used to leave var/ and var/static/ root's, and the owner's
    // next start then failed on var/django_secret_key.
    let port = free_port().to_string();
    site.ok(&["nginx", "start", "--http", &port]);
    assert_eq!(not_owned_by(site.root(), user.uid), Vec::<PathBuf>::new());
    let binary = support::shared_binary();
    let as_owner = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", &user.name, "--"])
            .arg(&binary.path)
            .arg("--omerodir")
            .arg(site.root())
            .args(args)
            .current_dir("/")
            .output()
            .unwrap()
    };
    let out = as_owner(&["start"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(wait_until(Duration::from_secs(30), || {
        http_get(port.parse().unwrap(), "/webclient/login/").is_some_and(|(code, _)| code == 200)
    }));
    let out = as_owner(&["stop"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    site.ok(&["nginx", "stop"]);
}
