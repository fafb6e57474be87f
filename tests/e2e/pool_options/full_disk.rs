//! Full and read-only filesystems (a loop-mounted small ext4) under the log, the thumbnail
//! cache and the config.

use super::*;

#[test]
fn a_full_log_disk_costs_log_lines_not_requests_and_is_said() {
    let test = "a full log disk";
    let outside = tempfile::tempdir().unwrap();
    let logs = outside.path().join("logs");
    // Declared before the site: dropped after it, once the pool has stopped.
    let Some(_disk) = SmallDisk::mount(&logs, 8, test) else {
        return;
    };
    let site = TestSite::new(2);
    site.append_config(&format!("\"omero.web.logdir\" = \"{}\"\n", logs.display()));
    site.ok(&["start"]);
    // Fill the filesystem that holds the log.
    let filler = logs.join("filler");
    fill(&filler);
    // Every request still answers, though its log line cannot be written.
    for _ in 0..50 {
        assert_eq!(site.get("/missing-while-full").map(|r| r.0), Some(404));
        assert_eq!(site.get("/__webctl/health").map(|r| r.0), Some(200));
    }
    let status = site.status_json();
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["restarts"], 0, "{status}");
    // diagnostics says which filesystem is full.
    let report = site.ok(&["diagnostics"]);
    assert!(
        report.contains(&format!(
            "the filesystem {} (holding the logs)",
            logs.display()
        )),
        "{report}"
    );
    // Space back: logging goes on by itself.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(site.get("/missing-after").map(|r| r.0), Some(404));
    let log = || std::fs::read_to_string(logs.join("OMEROweb.log")).unwrap_or_default();
    assert!(
        wait_until(LONG, || log().contains("'/missing-after'")),
        "{}",
        log()
    );
    site.ok(&["stop"]);
}

#[test]
fn a_full_then_read_only_thumbnail_cache_costs_caching_not_thumbnails() {
    let test = "a full thumbnail cache";
    let site = TestSite::with_demo(
        1,
        "",
        &[
            "--images",
            "3",
            "--size",
            "256",
            "--channels",
            "2",
            "--z",
            "1",
        ],
    );
    let cache = site.root().join("var/cache");
    let Some(disk) = SmallDisk::mount(&cache, 8, test) else {
        return;
    };
    fill(&cache.join("filler"));
    site.ok(&["start"]);
    let thumbnail = |id: u32| {
        let (status, _, body) = fetch(
            site.port,
            &format!("/webgateway/render_thumbnail/{id}/"),
            &[],
        );
        assert_eq!(status, 200, "thumbnail {id}");
        decode_jpeg(&body);
    };
    // Nothing can be cached, published or indexed on the full disk: every thumbnail
    // is still rendered and served, again and again.
    for _ in 0..3 {
        for id in 1..=3 {
            thumbnail(id);
        }
    }
    let status = site.status_json();
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["restarts"], 0, "{status}");
    let report = site.ok(&["diagnostics"]);
    assert!(
        report.contains(&format!(
            "the filesystem {} (holding the cache)",
            cache.display()
        )),
        "{report}"
    );
    // Read-only (as ext4 remounts itself after an error; possible here because the
    // cache keeps no file open for writing): the same.
    std::fs::remove_file(cache.join("filler")).unwrap();
    disk.remount("ro");
    for id in 1..=3 {
        thumbnail(id);
    }
    assert_eq!(site.status_json()["restarts"], 0);
    // Writable again: thumbnails are published for nginx once more.
    disk.remount("rw");
    for id in 1..=3 {
        thumbnail(id);
    }
    let published = cache.join("published/t");
    assert!(
        wait_until(LONG, || (1..=3)
            .all(|id| published.join(format!("{id}.jpg")).is_file())),
        "thumbnails were not published once the cache was writable again"
    );
    site.ok(&["stop"]);
}

#[test]
fn a_config_write_on_a_full_or_read_only_disk_fails_clearly_and_leaves_the_file_whole() {
    let test = "a full config disk";
    let site = TestSite::new(1);
    let etc = site.root().join("etc");
    let before = std::fs::read_to_string(site.config_file()).unwrap();
    // The site's etc/ on a small filesystem of its own, holding the same config.
    let Some(disk) = SmallDisk::mount(&etc, 8, test) else {
        return;
    };
    std::fs::write(site.config_file(), &before).unwrap();
    let filler = etc.join("filler");
    fill(&filler);

    let out = site.run(&["config", "set", "omero.web.wsgi_workers", "3"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // The old file whole, and no temp file left beside it (the lock file stays, as
    // it always does).
    assert_eq!(std::fs::read_to_string(site.config_file()).unwrap(), before);
    let mut left: Vec<String> = std::fs::read_dir(&etc)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler" && n != "lost+found")
        .collect();
    left.sort();
    assert_eq!(left, [".omero-web.toml.lock", "omero-web.toml"], "{left:?}");

    // Space back, but the filesystem read-only: refused in one line as well, the file
    // still whole.
    std::fs::remove_file(&filler).unwrap();
    disk.remount("ro");
    let out = site.run(&["config", "set", "omero.web.wsgi_workers", "3"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(std::fs::read_to_string(site.config_file()).unwrap(), before);

    // Writable again: the same command works.
    disk.remount("rw");
    site.ok(&["config", "set", "omero.web.wsgi_workers", "3"]);
    assert_eq!(site.ok(&["config", "get", "omero.web.wsgi_workers"]), "3\n");
}
