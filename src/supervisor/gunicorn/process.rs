//! Which processes are a Gunicorn site's (by their command lines in `/proc`).

use std::path::Path;

// The Gunicorn code reads these as `process::…`; they are written once, in `proc`.
pub use crate::proc::run::output_with_deadline;
pub use crate::proc::{age_secs, children, cmdline, deleted_open_files, parent_of, state};

/// Whether `pid` is the Gunicorn master of this site: it runs gunicorn with exactly
/// this pid file (`-p PATH`, `--pid PATH` or `--pid=PATH`, relative paths taken from
/// its working directory), and it is not a worker (whose parent would run the same
/// command line). PID reuse by anything else, another site's Gunicorn included, fails.
pub fn is_site_gunicorn(pid: u32, pid_file: &Path) -> bool {
    let args = cmdline(pid);
    if !args.iter().any(|a| a.contains("gunicorn")) || !crate::proc::is_alive(pid) {
        return false;
    }
    let Some(named) = pid_file_arg(&args) else {
        return false;
    };
    let named = if named.is_absolute() {
        named
    } else {
        match std::fs::read_link(format!("/proc/{pid}/cwd")) {
            Ok(cwd) => cwd.join(named),
            Err(_) => return false,
        }
    };
    if !same_file_path(&named, pid_file) {
        return false;
    }
    // A worker has the master's command line; the master's parent does not.
    parent_of(pid).is_none_or(|parent| cmdline(parent) != args)
}

/// Processes that run gunicorn with this site's pid file: the master and its workers,
/// also workers left behind by a master that was killed (their parent is then init).
pub fn site_gunicorn_processes(pid_file: &Path) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let args = cmdline(pid);
            args.iter().any(|a| a.contains("gunicorn"))
                && pid_file_arg(&args).is_some_and(|named| {
                    let named = if named.is_absolute() {
                        named
                    } else {
                        std::fs::read_link(format!("/proc/{pid}/cwd"))
                            .map(|cwd| cwd.join(&named))
                            .unwrap_or(named)
                    };
                    same_file_path(&named, pid_file)
                })
                && crate::proc::is_alive(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The pid file a Gunicorn command line names.
fn pid_file_arg(args: &[String]) -> Option<std::path::PathBuf> {
    let mut found = None;
    for (i, arg) in args.iter().enumerate() {
        if arg == "-p" || arg == "--pid" {
            found = args.get(i + 1).cloned();
        } else if let Some(path) = arg.strip_prefix("--pid=") {
            found = Some(path.to_string());
        } else if let Some(path) = arg.strip_prefix("-p").filter(|p| !p.is_empty()) {
            found = Some(path.to_string());
        }
    }
    found.map(std::path::PathBuf::from)
}

/// Two paths name the same file: compared by their directories' canonical forms (the
/// file itself may be missing) and the file name.
fn same_file_path(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| {
        let dir = p.parent().and_then(|d| std::fs::canonicalize(d).ok());
        dir.zip(p.file_name()).map(|(d, n)| d.join(n))
    };
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => crate::site::normalize(a) == crate::site::normalize(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    #[test]
    fn children_and_cmdline_come_from_proc() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let me = std::process::id();
        let pid = child.id();
        let kids = children(me);
        // Right after the spawn the child may not have exec'd yet.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut args = cmdline(pid);
        while args != ["sleep", "30"] && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            args = cmdline(pid);
        }
        let age = age_secs(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(kids.contains(&pid), "{kids:?} lacks {pid}");
        assert_eq!(args, vec!["sleep".to_string(), "30".to_string()]);
        assert!(age.is_some_and(|a| a < 60.0), "{age:?}");
        // Not gunicorn, whatever its pid file: never taken for a master.
        assert!(!is_site_gunicorn(me, Path::new("/x/var/django.pid")));
    }

    /// Until the child has exec'd, its command line is the parent's.
    fn wait_for_cmdline(pid: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if cmdline(pid).iter().any(|a| a == "gunicorn") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn only_this_sites_pid_file_makes_a_master() {
        let dir = tempfile::tempdir().unwrap();
        let var = dir.path().join("var");
        std::fs::create_dir_all(&var).unwrap();
        let pid_file = var.join("django.pid");
        // A stand-in whose command line reads like another site's Gunicorn master.
        // (A shell looping over short sleeps keeps these arguments and leaves nothing behind.)
        let mut other = Command::new("/bin/sh")
            .args(["-c", "while :; do sleep 1; done", "gunicorn", "-p"])
            .arg(dir.path().join("elsewhere.pid"))
            .arg("omeroweb.wsgi:application")
            .spawn()
            .unwrap();
        let mut ours = Command::new("/bin/sh")
            .args(["-c", "while :; do sleep 1; done", "gunicorn", "-p"])
            .arg(&pid_file)
            .spawn()
            .unwrap();
        let other_is_ours = wait_for_cmdline(other.id()) && is_site_gunicorn(other.id(), &pid_file);
        let ours_is_ours = wait_for_cmdline(ours.id()) && is_site_gunicorn(ours.id(), &pid_file);
        let listed = site_gunicorn_processes(&pid_file);
        for child in [&mut other, &mut ours] {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(
            !other_is_ours,
            "another site's Gunicorn is not this site's master"
        );
        assert!(ours_is_ours);
        // (The shell's short-lived forks share its command line, like Gunicorn's
        // workers share their master's, so they may be listed too.)
        assert!(listed.contains(&ours.id()), "{listed:?}");
        assert!(!listed.contains(&other.id()), "{listed:?}");
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            pid_file_arg(&args(
                "gunicorn -D -p /s/var/django.pid --bind x omeroweb.wsgi:application"
            )),
            Some("/s/var/django.pid".into())
        );
        assert_eq!(
            pid_file_arg(&args("gunicorn --pid=/a/b.pid")),
            Some("/a/b.pid".into())
        );
        assert_eq!(
            pid_file_arg(&args("gunicorn -p/a/c.pid")),
            Some("/a/c.pid".into())
        );
        assert_eq!(
            pid_file_arg(&args("gunicorn omeroweb.wsgi:application")),
            None
        );
        assert!(same_file_path(&var.join("./django.pid"), &pid_file));
        assert!(same_file_path(
            &dir.path().join("var/../var/django.pid"),
            &pid_file
        ));
        assert!(!same_file_path(
            Path::new("/other/var/django.pid"),
            &pid_file
        ));
    }

    #[test]
    fn deleted_files_still_open_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = std::fs::canonicalize(dir.path()).unwrap().join("log");
        let file = std::fs::File::create(&path).unwrap();
        assert!(!deleted_open_files(std::process::id()).contains(&path));
        std::fs::remove_file(&path).unwrap();
        assert!(deleted_open_files(std::process::id()).contains(&path));
        drop(file);
    }
}
