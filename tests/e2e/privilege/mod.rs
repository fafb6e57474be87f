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

mod hostile_files;
mod nginx_as_owner;
mod pool_as_owner;

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
