//! The program the pool's workers run.
//!
//! `omero-webctl-worker` is the worker alone (`src/bin/omero-webctl-worker.rs`), built
//! from this crate beside `omero-webctl`: about half the code, without the panel, the
//! CLI or the fleet. A worker maps and touches only its own program's pages, and its
//! RSS counts them, so each worker is about 3 MiB smaller than a worker running
//! `omero-webctl … worker` (docs/performance.md).
//!
//! The master looks for it beside its own executable, then in `../lib/omero-webctl/`
//! from there (the Debian package puts it in `/usr/lib/omero-webctl/`), and takes it
//! only when it reports this very build ([`BUILD_ID`]). Otherwise workers run this
//! program, as they always could, and the log says why: a site never fails to start
//! over the worker program.
//!
//! The file is held open for the master's life and run through `/proc/self/fd/N`, so
//! that workers keep matching their master after an upgrade replaced the file on disk,
//! as `/proc/self/exe` does for this program.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The worker program's file name.
pub const NAME: &str = "omero-webctl-worker";

/// The identity both executables of one build share (build.rs: a hash of the sources).
pub const BUILD_ID: &str = env!("OMERO_WEBCTL_BUILD_ID");

/// The argument that makes `omero-webctl-worker` print its [`BUILD_ID`] and exit.
pub const BUILD_ID_ARG: &str = "--build-id";

/// How long the identity check may take before the program is given up on.
const CHECK_DEADLINE: Duration = Duration::from_secs(10);

/// What workers are started as.
pub struct WorkerProgram {
    /// The worker program, open (`O_PATH`, at a descriptor of 10 or above); `None`:
    /// this program.
    file: Option<OwnedFd>,
    /// Its path, for `ps` (argv[0]) and the log.
    name: Option<String>,
}

impl WorkerProgram {
    /// The worker program beside this executable if it is trusted and of this build,
    /// else this program; with the line the log gets about the choice (`Err`: a
    /// warning, when a worker program was there but refused).
    pub fn find() -> (WorkerProgram, Result<String, String>) {
        let this = WorkerProgram {
            file: None,
            name: crate::proc::process::this_program_name(),
        };
        let here = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                return (
                    this,
                    Ok(format!(
                        "Workers run this program ({NAME} not looked for: {e})"
                    )),
                );
            }
        };
        // Trusted owners: root, and whoever owns this executable (a build in a
        // checkout).
        let owner = std::fs::metadata("/proc/self/exe")
            .or_else(|_| std::fs::metadata(&here))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(0);
        let candidates = candidates(&here);
        let mut refused = Vec::new();
        for path in candidates.iter().filter(|p| p.exists()) {
            match open_checked(path, owner) {
                Ok(file) => {
                    let line = format!("Worker program: {}", path.display());
                    let line = match refused.is_empty() {
                        true => Ok(line),
                        // A file refused on the way is worth a warning all the same.
                        false => Err(format!("{line} ({})", refused.join("; "))),
                    };
                    return (
                        WorkerProgram {
                            file: Some(file),
                            name: Some(path.display().to_string()),
                        },
                        line,
                    );
                }
                Err(why) => refused.push(format!("not {}: {why}", path.display())),
            }
        }
        let line = if refused.is_empty() {
            Ok(format!(
                "Workers run this program (no {NAME} at {})",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))
        } else {
            Err(format!("Workers run this program, {}", refused.join("; ")))
        };
        (this, line)
    }

    /// The path to execute: the held worker program, or this program.
    pub fn path(&self) -> std::io::Result<PathBuf> {
        match &self.file {
            Some(file) => Ok(fd_path(file)),
            None => crate::proc::process::this_program(),
        }
    }

    /// What `ps` shows as argv[0].
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// The worker program a running master (`pid`) holds open, as a path that opens that
/// very file even after it was replaced or removed on disk (`/proc/PID/fd/N`); `None`
/// when its workers run the master's own program (or it cannot be looked at: another
/// user's process).
pub fn held_by(pid: u32) -> Option<PathBuf> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    fds.flatten().map(|fd| fd.path()).find(|fd| {
        std::fs::read_link(fd).is_ok_and(|target| {
            target
                .file_name()
                .is_some_and(|n| n.to_string_lossy().trim_end_matches(" (deleted)") == NAME)
        })
    })
}

/// Where the worker program may be, for an executable at `here`, in order.
pub(crate) fn candidates(here: &Path) -> Vec<PathBuf> {
    let here = PathBuf::from(
        here.to_string_lossy()
            .trim_end_matches(" (deleted)")
            .to_string(),
    );
    let Some(dir) = here.parent() else {
        return Vec::new();
    };
    let mut found = vec![dir.join(NAME)];
    if let Some(prefix) = dir.parent() {
        found.push(prefix.join("lib/omero-webctl").join(NAME));
    }
    found
}

/// Opens `path` and checks, through the open file, that it is a regular file that
/// only root or `owner` could have put there or changed, and that it reports this
/// build's identity.
fn open_checked(path: &Path, owner: u32) -> Result<OwnedFd, String> {
    let file = open_trusted(path, owner)?;
    let reported = identity(&fd_path(&file))?;
    if reported != BUILD_ID {
        return Err(format!(
            "it is of another build ({reported:?}, this is {BUILD_ID:?}); install both programs of one build"
        ));
    }
    Ok(file)
}

/// The worker program that goes with the executable `binary` (an `upgrade --binary`
/// source), open, if one is there that only root or `binary`'s owner could have put
/// there; not run (the master that will use it checks its identity).
pub fn trusted_beside(binary: &Path) -> Option<OwnedFd> {
    let owner = std::fs::metadata(binary)
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .ok()?;
    candidates(binary)
        .iter()
        .filter(|p| p.exists())
        .find_map(|p| open_trusted(p, owner).ok())
}

/// A path that opens `file` (`/proc/self/fd/N`).
pub fn fd_path(file: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Opens `path` (at a descriptor of 10 or above) if it is a regular file that only
/// root or `owner` could have put there or changed.
fn open_trusted(path: &Path, owner: u32) -> Result<OwnedFd, String> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl, open, openat};
    use nix::sys::stat::Mode;
    // The directory first, then the file in that very directory (not a link out of
    // it): what is judged is what is run, whatever is swapped on the paths meanwhile.
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().ok_or("no file name")?;
    let dir_fd = open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    let dir_stat = nix::sys::stat::fstat(&dir_fd)
        .map_err(|e| format!("cannot stat {}: {e}", dir.display()))?;
    trusted(
        &dir.display().to_string(),
        dir_stat.st_uid,
        dir_stat.st_mode,
        owner,
    )?;
    let file = openat(
        &dir_fd,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open it: {e}"))?;
    // Above the descriptors a worker is given (3 to 5), which the master dup2s into
    // place before the exec resolves this one.
    let high = fcntl(&file, FcntlArg::F_DUPFD_CLOEXEC(10))
        .map_err(|e| format!("cannot duplicate its descriptor: {e}"))?;
    // SAFETY: a fresh descriptor we own.
    let file = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(high) };
    let stat = nix::sys::stat::fstat(&file).map_err(|e| format!("cannot stat it: {e}"))?;
    // (A link is opened as itself, so it is refused here.)
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err("not a regular file".into());
    }
    // Checked before it runs (the identity check runs it): a program anyone else could
    // have planted (a directory like /tmp) is never run, nor one that would run with
    // another user's rights.
    trusted("it", stat.st_uid, stat.st_mode, owner)?;
    if stat.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
        return Err("it is set-user-ID or set-group-ID".into());
    }
    Ok(file)
}

/// Whether a file or directory owned by `uid` with `mode` can only have been written
/// by root or `owner` (as OpenSSH's StrictModes judges).
fn trusted(what: &str, uid: u32, mode: u32, owner: u32) -> Result<(), String> {
    if uid != 0 && uid != owner {
        return Err(format!(
            "{what} belongs to uid {uid}, neither root nor this program's owner"
        ));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "{what} is writable by others (mode {:o})",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// What `program --build-id` prints, within [`CHECK_DEADLINE`].
fn identity(program: &Path) -> Result<String, String> {
    let mut command = std::process::Command::new(program);
    // Only the master speaks to systemd.
    for var in crate::pool::notify::ENV_VARS {
        command.env_remove(var);
    }
    let mut child = command
        .arg(BUILD_ID_ARG)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let deadline = Instant::now() + CHECK_DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{BUILD_ID_ARG} did not answer within {}s",
                    CHECK_DEADLINE.as_secs()
                ));
            }
        }
    }
    // What it printed before it exited is in the pipe. Read without waiting (a process
    // it left behind may hold the pipe open) and at most 4 KiB.
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        use std::io::Read;
        let fd = std::os::fd::OwnedFd::from(stdout);
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut buf = [0u8; 4096];
        let mut pipe = std::fs::File::from(fd);
        while out.len() < buf.len() {
            match pipe.read(&mut buf[..4096 - out.len()]) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_program_is_looked_for_beside_this_program_then_in_lib() {
        assert_eq!(
            candidates(Path::new("/usr/bin/omero-webctl")),
            [
                PathBuf::from("/usr/bin/omero-webctl-worker"),
                PathBuf::from("/usr/lib/omero-webctl/omero-webctl-worker")
            ]
        );
        // A replaced executable: /proc/self/exe reads "… (deleted)".
        assert_eq!(
            candidates(Path::new("/opt/x/bin/omero-webctl (deleted)"))[0],
            PathBuf::from("/opt/x/bin/omero-webctl-worker")
        );
    }

    #[test]
    fn a_program_of_another_build_or_none_at_all_is_refused_with_the_reason() {
        // An executable that answers --build-id with something else: echo, where it
        // is (a copy could meet ETXTBSY from another test's fork).
        let err = open_checked(Path::new("/bin/echo"), 0).unwrap_err();
        assert!(err.contains("another build (\"--build-id\""), "{err}");
        assert!(err.contains(BUILD_ID), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let err = open_checked(&sub, 0).unwrap_err();
        assert_eq!(err, "not a regular file");
        let err = open_checked(&dir.path().join("missing"), 0).unwrap_err();
        assert!(err.starts_with("cannot open it"), "{err}");
    }

    /// A worker program anybody could have planted (a world-writable directory such as
    /// /tmp, a file of another user) is refused before it is run: the check runs it.
    #[test]
    fn a_program_someone_else_could_have_planted_is_refused_before_it_runs() {
        use std::os::unix::fs::PermissionsExt;
        let me = nix::unistd::geteuid().as_raw();
        let dir = tempfile::tempdir().unwrap();
        // A link is judged as itself, not as what it points to.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/bin/echo", &link).unwrap();
        assert_eq!(open_checked(&link, me).unwrap_err(), "not a regular file");
        // Never run below (a run of a fresh copy could meet ETXTBSY from another
        // test's fork).
        let planted = dir.path().join(NAME);
        std::fs::copy("/bin/echo", &planted).unwrap();
        assert!(open_trusted(&planted, me).is_ok());
        // Set-user-ID: refused.
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o4755)).unwrap();
        assert_eq!(
            open_checked(&planted, me).unwrap_err(),
            "it is set-user-ID or set-group-ID"
        );
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o755)).unwrap();
        // In a directory others may write to: refused unrun.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = open_checked(&planted, me).unwrap_err();
        assert_eq!(
            err,
            format!("{} is writable by others (mode 1777)", dir.path().display())
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // A file of someone else (neither root nor the owner named): refused unrun.
        if me == 0 {
            let theirs = dir.path().join("theirs");
            std::fs::copy("/bin/echo", &theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
            let err = open_checked(&theirs, me).unwrap_err();
            assert_eq!(
                err,
                "it belongs to uid 65534, neither root nor this program's owner"
            );
        }
        let err = trusted("it", 65534, 0o100755, me).unwrap_err();
        assert_eq!(
            err,
            "it belongs to uid 65534, neither root nor this program's owner"
        );
        assert!(trusted("it", 0, 0o100755, me).is_ok());
        assert!(trusted("it", me, 0o100775, me).is_err());
    }
}
