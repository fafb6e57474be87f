//! A small real filesystem for tests that fill or freeze a disk.

/// A small ext4 filesystem (a loop-mounted image) for one test, unmounted when
/// dropped. Root only. Not tmpfs: sysinfo, which the host view reads, does not list
/// virtual filesystems, and a real disk is what fills up in production.
pub struct SmallDisk {
    dir: std::path::PathBuf,
    _image: tempfile::TempDir,
}

impl SmallDisk {
    /// Remounts read-only ("ro") or writable ("rw"), as ext4 goes read-only by itself
    /// after an error. Refused while a file on it is open for writing.
    pub fn remount(&self, mode: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode} {}", self.dir.display());
    }

    pub fn mount(dir: &std::path::Path, megabytes: u64, test: &str) -> Option<SmallDisk> {
        let image_dir = tempfile::tempdir().unwrap();
        let image = image_dir.path().join("disk.ext4");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(megabytes << 20)
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let run = |program: &str, args: &[&std::ffi::OsStr]| {
            std::process::Command::new(program)
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let mounted = run(
            "mkfs.ext4",
            &["-q".as_ref(), "-F".as_ref(), image.as_os_str()],
        ) && run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                dir.as_os_str(),
            ],
        );
        if mounted {
            return Some(SmallDisk {
                dir: dir.to_path_buf(),
                _image: image_dir,
            });
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: cannot mount a small filesystem, and CI=true requires it (run as root)"
        );
        eprintln!("skipping {test}: cannot mount a small filesystem (not root?)");
        None
    }
}

/// Writes `path` until its filesystem has no byte left (large writes, then smaller).
pub fn fill(path: &std::path::Path) {
    let mut file = std::fs::File::create(path).unwrap();
    for size in [1 << 16, 1 << 12, 1] {
        let chunk = vec![b'x'; size];
        while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .output();
    }
}
