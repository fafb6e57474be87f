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
    /// The worker program beside this executable if it is of this build, else this
    /// program; with the line the log gets about the choice (`Err`: a warning).
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
        let candidates = candidates(&here);
        let Some(path) = candidates.iter().find(|p| p.exists()) else {
            return (
                this,
                Ok(format!(
                    "Workers run this program (no {NAME} at {})",
                    candidates
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )),
            );
        };
        match open_checked(path) {
            Ok(file) => (
                WorkerProgram {
                    file: Some(file),
                    name: Some(path.display().to_string()),
                },
                Ok(format!("Worker program: {}", path.display())),
            ),
            Err(why) => (
                this,
                Err(format!(
                    "Workers run this program, not {}: {why}",
                    path.display()
                )),
            ),
        }
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

    /// Whether workers run `omero-webctl-worker` (not this program).
    pub fn is_worker_program(&self) -> bool {
        self.file.is_some()
    }
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

fn fd_path(file: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Opens `path` and checks, through the open file, that it is an executable regular
/// file that reports this build's identity.
fn open_checked(path: &Path) -> Result<OwnedFd, String> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
    use nix::sys::stat::Mode;
    let file = open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("cannot open it: {e}"))?;
    // Above the descriptors a worker is given (3 to 5), which the master dup2s into
    // place before the exec resolves this one.
    let high = fcntl(&file, FcntlArg::F_DUPFD_CLOEXEC(10))
        .map_err(|e| format!("cannot duplicate its descriptor: {e}"))?;
    // SAFETY: a fresh descriptor we own.
    let file = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(high) };
    let stat = nix::sys::stat::fstat(&file).map_err(|e| format!("cannot stat it: {e}"))?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err("not a regular file".into());
    }
    let reported = identity(&fd_path(&file))?;
    if reported != BUILD_ID {
        return Err(format!(
            "it is of another build ({reported:?}, this is {BUILD_ID:?}); install both programs of one build"
        ));
    }
    Ok(file)
}

/// What `program --build-id` prints, within [`CHECK_DEADLINE`].
fn identity(program: &Path) -> Result<String, String> {
    let mut child = std::process::Command::new(program)
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
    let mut out = String::new();
    use std::io::Read;
    if let Some(mut stdout) = child.stdout.take() {
        // Bounded: a program that prints without end must not fill the master's memory.
        let _ = (&mut stdout).take(4096).read_to_string(&mut out);
    }
    Ok(out.trim().to_string())
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
        let dir = tempfile::tempdir().unwrap();
        // An executable that answers --build-id with something else: echo. (Run through
        // its descriptor, as the check does, only a binary can answer: a script's
        // interpreter would find the descriptor closed.)
        let other = dir.path().join(NAME);
        std::fs::copy("/bin/echo", &other).unwrap();
        let err = open_checked(&other).unwrap_err();
        assert!(err.contains("another build (\"--build-id\""), "{err}");
        assert!(err.contains(BUILD_ID), "{err}");
        let err = open_checked(dir.path()).unwrap_err();
        assert_eq!(err, "not a regular file");
        let err = open_checked(&dir.path().join("missing")).unwrap_err();
        assert!(err.starts_with("cannot open it"), "{err}");
    }
}
