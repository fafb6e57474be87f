//! The lock files that serialise writers of a config file.
//!
//! * Our TOML file: `etc/.omero-web.toml.lock`, a blocking `flock`, kept on disk.
//! * OMERO's `etc/grid/config.xml`: the protocol of omero-py, so `omero config` and
//!   omero-webctl exclude each other. omero-py (`omero/config.py`, `ConfigXml`) opens
//!   `config.xml.lock` with mode `a+`, takes `portalocker.lock(LOCK_EX | LOCK_NB)`,
//!   which on POSIX is `fcntl.flock` (portalocker's `LOCKER = fcntl.flock`), holds it
//!   from before its read until after its rename, then closes the file and deletes
//!   it. A process that finds the lock taken fails at once ("Could not acquire lock",
//!   exit 112); we retry for a while instead.
//!
//!   Because OMERO deletes the lock file after unlocking, holding a lock on an open
//!   file is not enough: the file may have been unlinked (and a new one created and
//!   locked by someone else) meanwhile. After taking the lock we therefore check that
//!   the path still names the file we locked, and retry if not; [`FileLock::still_held`]
//!   repeats that check just before writing. We delete the lock file while still
//!   holding the lock (not after, as OMERO does), so our own release never lets two
//!   writers in.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use super::error::ConfigError;

/// How long a writer waits for OMERO's lock before giving up.
pub const OMERO_LOCK_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

/// Which convention a lock file follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Ours: blocking flock, the file stays.
    Blocking,
    /// omero-py's: non-blocking attempts (retried until `wait` passes), the file is
    /// deleted on release and re-checked after locking.
    Omero { wait: Duration },
}

/// An exclusive lock on a lock file; released (and for OMERO's style deleted) on drop.
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    style: Style,
    file: Option<Flock<File>>,
}

impl FileLock {
    /// Takes the lock at `path`, creating the file (and its directory).
    pub fn acquire(path: &Path, style: Style) -> Result<FileLock, ConfigError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ConfigError::io(dir, e))?;
        }
        let deadline = match style {
            Style::Blocking => None,
            Style::Omero { wait } => Some(Instant::now() + wait),
        };
        let arg = match style {
            Style::Blocking => FlockArg::LockExclusive,
            Style::Omero { .. } => FlockArg::LockExclusiveNonblock,
        };
        // `a+` as omero-py opens it: create, never truncate.
        let open = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(path)
        };
        loop {
            // A file deleted (or replaced) after our open is not locked: the lock is
            // taken on the file the path names once it is held.
            match crate::fsutil::lock_path(path, arg, open) {
                Ok(Some(locked)) => {
                    return Ok(FileLock {
                        path: path.to_path_buf(),
                        style,
                        file: Some(locked),
                    });
                }
                Ok(None) => {}
                Err(e) => return Err(ConfigError::io(path, e)),
            }
            if let Some(deadline) = deadline {
                if Instant::now() >= deadline {
                    return Err(ConfigError::Locked {
                        path: path.to_path_buf(),
                    });
                }
                std::thread::sleep(POLL);
            }
        }
    }

    /// Whether the lock file on disk is still the one this lock holds (OMERO deletes
    /// its lock file after unlocking it, and the next writer creates a new one).
    pub fn still_held(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        crate::fsutil::is_same_file(file, &self.path)
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if matches!(self.style, Style::Omero { .. }) && self.still_held() {
            // Delete while holding the lock: a writer waiting on this file sees it
            // gone when it gets the lock and starts over on a new one.
            let _ = std::fs::remove_file(&self.path);
        }
        // Dropping the Flock unlocks; dropping the File closes it.
        self.file.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omero_style_gives_up_after_waiting_and_deletes_on_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.xml.lock");
        let first = FileLock::acquire(&path, Style::Omero { wait: POLL }).unwrap();
        assert!(first.still_held());
        let started = Instant::now();
        let err = FileLock::acquire(
            &path,
            Style::Omero {
                wait: Duration::from_millis(100),
            },
        )
        .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(matches!(err, ConfigError::Locked { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "{} is held by another process (an `omero config` command?); nothing was written (run the command again)",
                path.display()
            )
        );
        drop(first);
        assert!(!path.exists(), "the lock file is deleted on release");
        let again = FileLock::acquire(&path, Style::Omero { wait: POLL }).unwrap();
        assert!(again.still_held());
    }

    #[test]
    fn a_lock_on_a_deleted_file_is_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.xml.lock");
        let lock = FileLock::acquire(&path, Style::Omero { wait: POLL }).unwrap();
        // What omero-py does after unlocking: delete the file; the next writer makes
        // a new one.
        std::fs::remove_file(&path).unwrap();
        assert!(!lock.still_held());
        std::fs::write(&path, "").unwrap();
        assert!(!lock.still_held());
        let other = FileLock::acquire(&path, Style::Omero { wait: POLL }).unwrap();
        // Dropping the stale lock must not delete the other writer's file.
        drop(lock);
        assert!(path.exists() && other.still_held());
    }
}
