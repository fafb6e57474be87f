//! Images an owner can make hostile: a FIFO, a read that never ends, a write hung on a
//! frozen filesystem; and zip downloads taking each image once.

use super::*;

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
