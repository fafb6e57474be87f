//! The master's pid file, `var/omeroweb.pid`. The master holds an advisory lock on it
//! for its whole life, so "is it running?" is answered by the lock, not by
//! `kill(pid, 0)` (which cannot tell a reused PID from our master). The file also
//! records the process start time, checked before any PID is signalled.
//!
//! Beside it the master writes OMERO's own pid file, `var/django.pid`: its PID on one
//! line, as `omero web start` leaves it, for the systemd units (`PIDFile=`) and
//! scripts that read it. It is removed with the lock; one left behind by a master that
//! died is recognised as stale like the lock file.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::fsutil::PathLock;

use super::{is_alive, process_start_time};

/// The lock the running master holds; dropping it releases the lock.
#[derive(Debug)]
pub struct PidFileLock {
    path: PathBuf,
    _lock: Flock<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("OMERO.web already started (PID {pid}, pid file {path})")]
    AlreadyRunning { pid: u32, path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the pid file says about the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterState {
    NotRunning,
    /// A pid file nobody holds: left behind by a master that died.
    Stale {
        pid: Option<u32>,
    },
    Running {
        pid: u32,
    },
}

impl PidFileLock {
    /// Takes the lock and writes our PID and start time. Fails if a live master holds
    /// it; a stale file is simply taken over.
    pub fn acquire(path: &Path) -> Result<PidFileLock, PidFileError> {
        let io = |source| PidFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Never through a link the site's owner planted (it would truncate and rewrite
        // the link's target); a link fails with ELOOP.
        let open = |path: &Path| {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(crate::fsutil::explain_refused_link)
        };
        // Locked only once the path still names the file (a stale file removed
        // meanwhile would leave us a lock on an unlinked inode, guarding nothing).
        let mut lock =
            match crate::fsutil::try_lock_path(path, FlockArg::LockExclusiveNonblock, open)
                .map_err(io)?
            {
                PathLock::Locked(lock) => lock,
                PathLock::Held(file) => {
                    let pid = read_pid_and_start(&file).map(|(pid, _)| pid).unwrap_or(0);
                    return Err(PidFileError::AlreadyRunning {
                        pid,
                        path: path.to_path_buf(),
                    });
                }
            };
        // Written in place (not renamed) so the lock stays on this very file.
        let pid = std::process::id();
        let start = process_start_time(pid).unwrap_or(0);
        lock.set_len(0).map_err(io)?;
        lock.write_all(format!("{pid}\n{start}\n").as_bytes())
            .map_err(io)?;
        lock.sync_all().map_err(io)?;
        let omero_pid_file = omero_pid_file(path);
        crate::fsutil::replace_atomic(&omero_pid_file, format!("{pid}\n").as_bytes()).map_err(
            |source| PidFileError::Io {
                path: omero_pid_file,
                source,
            },
        )?;
        Ok(PidFileLock {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFileLock {
    fn drop(&mut self) {
        // Removed while still locked, and only if the path still names our file.
        if crate::fsutil::is_same_file(&self._lock, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
        let omero = omero_pid_file(&self.path);
        if read_pid(&omero).ok().flatten() == Some(std::process::id()) {
            let _ = std::fs::remove_file(omero);
        }
    }
}

/// OMERO's pid file beside ours: `var/django.pid`.
pub fn omero_pid_file(pid_file: &Path) -> PathBuf {
    pid_file.with_file_name("django.pid")
}

/// The PID in a one-line pid file, as OMERO (`var/django.pid`), Gunicorn (`-p`) and
/// nginx (`pid`) write it: the first line, blanks around it ignored. `Ok(None)` when
/// the file holds no usable PID: not a number, 0, or beyond `pid_t` (either would make
/// `kill` signal a whole process group). An error when it cannot be read: missing, or
/// not a regular file (opened without blocking, so a FIFO put there cannot hang us).
/// Links are followed, as every reader of these files always has: reading a number
/// through one writes nothing.
pub fn read_pid(path: &Path) -> std::io::Result<Option<u32>> {
    // A pid file is a few bytes; never load more than a line's worth of a big file.
    const ENOUGH: u64 = 64;
    let mut bytes = Vec::new();
    crate::fsutil::open_regular(path)?
        .take(ENOUGH)
        .read_to_end(&mut bytes)?;
    // A first line longer than that is no PID (and cut short could read as another).
    if bytes.len() as u64 == ENOUGH && !bytes.contains(&b'\n') {
        return Ok(None);
    }
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(std::str::from_utf8(first_line)
        .ok()
        .and_then(|line| line.trim().parse::<u32>().ok())
        .filter(|&pid| pid > 0 && pid <= libc::pid_t::MAX as u32))
}

/// Removes a stale pid file, under its lock so that a master starting at the same
/// moment cannot lose its file; returns whether it was removed.
pub fn remove_if_stale(path: &Path) -> bool {
    // OMERO's pid file goes too when nothing alive is named in it.
    let omero = omero_pid_file(path);
    let omero_stale = read_pid(&omero)
        .ok()
        .flatten()
        .is_none_or(|pid| !is_alive(pid));
    let omero_removed = omero_stale && omero.exists() && std::fs::remove_file(&omero).is_ok();
    // Never through a link: its target's lock is not this site's to judge.
    let open = crate::fsutil::open_regular_no_follow;
    match crate::fsutil::lock_path(path, FlockArg::LockExclusiveNonblock, open) {
        Ok(Some(_held)) => std::fs::remove_file(path).is_ok(),
        Ok(None) => false,
        // No pid file: only OMERO's could go.
        Err(_) => omero_removed,
    }
}

/// Reads the pid file and tells whether a live master holds it. Judged on the file
/// the path names once its lock was tried (a master stopping removes its file, one
/// starting makes a new one: a file opened before either says nothing of now), read
/// from that very descriptor, and never through a link (root must not take the lock
/// or PID of a file the site's owner pointed it at for this site's master).
pub fn probe(path: &Path) -> std::io::Result<MasterState> {
    probe_opening(path, crate::fsutil::open_regular_no_follow)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// [`probe`] with the pid file opened by `open` (tests swap the file in it).
fn probe_opening(
    path: &Path,
    open: impl Fn(&Path) -> std::io::Result<File>,
) -> std::io::Result<MasterState> {
    let held = match crate::fsutil::try_lock_path(path, FlockArg::LockSharedNonblock, open) {
        // We got the lock: nobody holds it, so the file is stale.
        Ok(PathLock::Locked(stale)) => {
            return Ok(MasterState::Stale {
                pid: read_pid_and_start(&stale).map(|(pid, _)| pid),
            });
        }
        Ok(PathLock::Held(file)) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Only OMERO's pid file: left by a master that died (stale), or naming a
            // live process whose lock file is gone, which cannot be trusted either way.
            let omero = omero_pid_file(path);
            return match read_pid(&omero).ok().flatten() {
                None if !omero.exists() => Ok(MasterState::NotRunning),
                None => Ok(MasterState::Stale { pid: None }),
                Some(pid) if !is_alive(pid) => Ok(MasterState::Stale { pid: Some(pid) }),
                Some(pid) => Err(std::io::Error::other(format!(
                    "{} names PID {pid}, which is alive, but the pid file is missing: is it this site's master? (`ps -p {pid}`)",
                    omero.display(),
                ))),
            };
        }
        Err(e) => return Err(e),
    };
    match read_pid_and_start(&held) {
        // A lock proves nothing by itself (whoever can write the site can hold one):
        // the PID must also run our program, as our user, since the time the file
        // records.
        Some((pid, start))
            if process_start_time(pid) == Some(start) && runs_this_program_as_us(pid) =>
        {
            Ok(MasterState::Running { pid })
        }
        // The text is garbage (overwritten by hand, a full disk) but the lock is held:
        // the kernel names its holder, which must still run our program as our user.
        // Failing closed here would leave a running master that neither status nor
        // stop can reach.
        None if let Some(pid) =
            super::flock_holder(&held).filter(|&pid| runs_this_program_as_us(pid)) =>
        {
            Ok(MasterState::Running { pid })
        }
        // Locked but not yet written (a master is starting) or unreadable.
        _ => Err(std::io::Error::other(
            "locked but does not name a live master (starting?)",
        )),
    }
}

/// The PID and start time the master wrote, read from the open pid file itself (by
/// path it could be another file by now).
fn read_pid_and_start(file: &File) -> Option<(u32, u64)> {
    use std::os::unix::fs::FileExt;
    // Two numbers; never load more of a big file planted there.
    let mut bytes = [0u8; 64];
    let len = file.read_at(&mut bytes, 0).ok()?;
    let text = std::str::from_utf8(&bytes[..len]).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let start = lines.next()?.trim().parse().ok()?;
    Some((pid, start))
}

/// Whether `pid` runs this program (same executable name; `(deleted)` after an
/// upgrade replaced it on disk) under our effective uid (any, when we are root).
pub fn runs_this_program_as_us(pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let name_of = |path: &Path| {
        path.file_name().map(|n| {
            n.to_string_lossy()
                .trim_end_matches(" (deleted)")
                .to_string()
        })
    };
    let ours = std::env::current_exe().ok().and_then(|p| name_of(&p));
    let theirs = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| name_of(&p));
    let me = nix::unistd::geteuid();
    let same_user = me.is_root()
        || std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == me.as_raw());
    ours.is_some() && ours == theirs && same_user
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_detects_running_and_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/omeroweb.pid");
        assert_eq!(probe(&path).unwrap(), MasterState::NotRunning);
        let lock = PidFileLock::acquire(&path).unwrap();
        assert_eq!(
            probe(&path).unwrap(),
            MasterState::Running {
                pid: std::process::id()
            }
        );
        assert!(matches!(
            PidFileLock::acquire(&path),
            Err(PidFileError::AlreadyRunning { .. })
        ));
        drop(lock);
        assert!(!path.exists());
        // A file left by a crashed master: same PID even, but nobody holds the lock.
        std::fs::write(&path, format!("{}\n1\n", std::process::id())).unwrap();
        assert_eq!(
            probe(&path).unwrap(),
            MasterState::Stale {
                pid: Some(std::process::id())
            }
        );
        let _taken_over = PidFileLock::acquire(&path).unwrap();
    }

    /// An open that meets the file at the path and then, the first time only, runs
    /// `swap` before the lock is tried: the race of a master stopping or starting
    /// between probe's open and its lock.
    fn open_then(swap: impl FnOnce()) -> impl Fn(&Path) -> std::io::Result<File> {
        let swap = std::cell::RefCell::new(Some(swap));
        move |path: &Path| {
            let file = crate::fsutil::open_regular_no_follow(path)?;
            if let Some(swap) = swap.borrow_mut().take() {
                swap();
            }
            Ok(file)
        }
    }

    #[test]
    fn a_pid_file_replaced_or_removed_between_open_and_lock_is_judged_on_the_file_now_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("omeroweb.pid");
        let me = std::process::id();
        // A stale file (its master died) is opened; meanwhile `stop` removes it and a
        // new master starts on a new file. The old file's free lock is not the answer.
        std::fs::write(&path, "4194304\n1\n").unwrap();
        let master = std::cell::RefCell::new(None);
        let state = probe_opening(
            &path,
            open_then(|| {
                std::fs::remove_file(&path).unwrap();
                *master.borrow_mut() = Some(PidFileLock::acquire(&path).unwrap());
            }),
        );
        assert_eq!(state.unwrap(), MasterState::Running { pid: me });
        // The running master's file is opened; meanwhile it stops (removes its file,
        // then unlocks). Nothing is left: not running, rather than a stale file.
        let state = probe_opening(&path, open_then(|| drop(master.borrow_mut().take())));
        assert_eq!(state.unwrap(), MasterState::NotRunning);
        // A held file that is replaced by a stale one: the stale one is what is there.
        let master = PidFileLock::acquire(&path).unwrap();
        let state = probe_opening(
            &path,
            open_then(|| {
                let stale = dir.path().join("stale");
                std::fs::write(&stale, "4194304\n1\n").unwrap();
                std::fs::rename(&stale, &path).unwrap();
            }),
        );
        drop(master);
        assert_eq!(state.unwrap(), MasterState::Stale { pid: Some(4194304) });
    }

    #[test]
    fn probe_follows_no_link_and_says_which_file_it_refused() {
        // A link to another site's pid file, held by its live master (us): taken as
        // this site's, root's `stop` would signal that master.
        let dir = tempfile::tempdir().unwrap();
        let other_site = dir.path().join("other.pid");
        let _other_master = PidFileLock::acquire(&other_site).unwrap();
        let path = dir.path().join("omeroweb.pid");
        std::os::unix::fs::symlink(&other_site, &path).unwrap();
        let err = probe(&path).unwrap_err().to_string();
        assert!(err.contains("omeroweb.pid: is a symlink; refused"), "{err}");
        // Nor does removing a stale one reach through it.
        assert!(!remove_if_stale(&path));
        assert!(other_site.exists());
    }

    #[test]
    fn a_pid_file_that_is_a_symlink_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("omeroweb.pid");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        match PidFileLock::acquire(&path) {
            Err(PidFileError::Io { source, .. }) => {
                assert!(
                    source.to_string().contains("is a symlink; refused"),
                    "{source}"
                )
            }
            other => panic!("a link was followed: {:?}", other.map(|_| ())),
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn a_garbage_pid_file_is_judged_by_who_holds_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("omeroweb.pid");
        std::fs::write(&path, "garbage\n").unwrap();
        // This program holds it: the kernel names us, so it is a running master.
        let held =
            Flock::lock(File::open(&path).unwrap(), FlockArg::LockExclusiveNonblock).unwrap();
        assert_eq!(
            probe(&path).unwrap(),
            MasterState::Running {
                pid: std::process::id()
            }
        );
        drop(held);
        // Another program (util-linux flock) holds it: never taken for the master.
        let mut other = std::process::Command::new("flock")
            .arg(&path)
            .args(["sleep", "30"])
            .spawn()
            .expect("flock (util-linux) is installed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while super::super::flock_holder(&File::open(&path).unwrap()).is_none()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let holder = super::super::flock_holder(&File::open(&path).unwrap());
        let state = probe(&path);
        let _ = other.kill();
        let _ = other.wait();
        assert!(
            holder.is_some_and(|pid| pid != std::process::id()),
            "{holder:?}"
        );
        assert!(
            !matches!(state, Ok(MasterState::Running { .. })),
            "another program's lock was taken for the master: {state:?}"
        );
    }

    #[test]
    fn a_locked_pid_file_naming_another_program_is_not_a_running_master() {
        // The attack of issue 20: hold the lock, write another process's PID and start
        // time; `stop` would signal it. Only a process running this program counts.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("omeroweb.pid");
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = other.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{pid}/exe"))
            .map_or(true, |exe| !exe.to_string_lossy().contains("sleep"))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let start = process_start_time(pid).unwrap();
        std::fs::write(&path, format!("{pid}\n{start}\n")).unwrap();
        let held =
            Flock::lock(File::open(&path).unwrap(), FlockArg::LockExclusiveNonblock).unwrap();
        let state = probe(&path);
        drop(held);
        let _ = other.kill();
        let _ = other.wait();
        assert!(
            !matches!(state, Ok(MasterState::Running { .. })),
            "a sleep was taken for the master: {state:?}"
        );
        // Our own process (this test binary) with its real start time does count.
        let me = std::process::id();
        std::fs::write(
            &path,
            format!("{me}\n{}\n", process_start_time(me).unwrap()),
        )
        .unwrap();
        let _held =
            Flock::lock(File::open(&path).unwrap(), FlockArg::LockExclusiveNonblock).unwrap();
        assert_eq!(probe(&path).unwrap(), MasterState::Running { pid: me });
    }

    #[test]
    fn a_held_pid_file_is_never_removed_as_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("omeroweb.pid");
        let lock = PidFileLock::acquire(&path).unwrap();
        assert!(!remove_if_stale(&path));
        assert!(path.exists());
        // Someone replaced the file: our drop must not remove theirs.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "1\n1\n").unwrap();
        drop(lock);
        assert!(path.exists());
        assert!(remove_if_stale(&path));
        assert!(!path.exists());
    }

    #[test]
    fn omeros_one_line_pid_file_lives_and_dies_with_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("omeroweb.pid");
        let django = dir.path().join("django.pid");
        let lock = PidFileLock::acquire(&path).unwrap();
        // Exactly what `omero web start` leaves: the master's PID and a newline.
        assert_eq!(
            std::fs::read_to_string(&django).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(lock);
        assert!(!django.exists());

        // Left alone by a master that died: stale, and removed as such.
        // (A valid pid_t, above any kernel's pid_max: never a live process.)
        let dead = i32::MAX as u32;
        std::fs::write(&django, format!("{dead}\n")).unwrap();
        assert_eq!(
            probe(&path).unwrap(),
            MasterState::Stale { pid: Some(dead) }
        );
        assert!(remove_if_stale(&path));
        assert!(!django.exists());
        assert_eq!(probe(&path).unwrap(), MasterState::NotRunning);

        // Naming a live process without our lock file: not trusted either way.
        std::fs::write(&django, format!("{}\n", std::process::id())).unwrap();
        let err = probe(&path).unwrap_err().to_string();
        assert!(
            err.contains("names PID") && err.contains("is missing"),
            "{err}"
        );
        assert!(!remove_if_stale(&path), "a live PID's file is kept");
        assert!(django.exists());
    }

    #[test]
    fn one_line_pid_files_are_read_leniently_and_never_name_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("django.pid");
        let read = |text: &[u8]| {
            std::fs::write(&path, text).unwrap();
            read_pid(&path).unwrap()
        };
        // As Gunicorn, nginx and `omero web start` write it, and variations on it.
        assert_eq!(read(b"4242\n"), Some(4242));
        assert_eq!(read(b"4242"), Some(4242));
        assert_eq!(read(b"  4242 \r\n"), Some(4242));
        assert_eq!(
            read(b"4242\n1234567\n"),
            Some(4242),
            "our own two-line file"
        );
        assert_eq!(read(b"4242\n\xff\xfe"), Some(4242), "junk after the line");
        // Nothing a signal may be sent to: 0 and what does not fit a pid_t would make
        // kill(2) signal a process group.
        assert_eq!(read(b"0\n"), None);
        assert_eq!(read(b"2147483648\n"), None);
        assert_eq!(read(b"2147483647\n"), Some(2147483647));
        assert_eq!(read(b"-1\n"), None);
        assert_eq!(read(b""), None);
        assert_eq!(read(b"\n4242\n"), None);
        assert_eq!(read(b"pid 4242\n"), None);
        assert_eq!(read(b"\xff4242\n"), None);
        // A first line longer than any pid file's: not cut short into another PID.
        let mut long = vec![b' '; 62];
        long.extend_from_slice(b"4242\n");
        assert_eq!(read(&long), None);
        // Missing is an error (callers tell it from a file naming nothing).
        let missing = read_pid(&dir.path().join("none.pid")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn a_pid_file_swapped_for_a_fifo_fails_at_once_and_a_link_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("nginx.pid");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // With no writer, a blocking open of the FIFO would never return.
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = fifo.clone();
        std::thread::spawn(move || tx.send(read_pid(&reader).map_err(|e| e.kind())));
        let answer = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO pid file hung");
        assert_eq!(answer, Err(std::io::ErrorKind::InvalidInput));
        // A link to a pid file is read, as before: reading writes nothing.
        let real = dir.path().join("real.pid");
        std::fs::write(&real, "77\n").unwrap();
        let link = dir.path().join("link.pid");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(read_pid(&link).unwrap(), Some(77));
    }

    #[test]
    fn start_time_identifies_this_process() {
        let me = std::process::id();
        assert!(process_start_time(me).is_some());
        assert!(is_alive(me));
        assert!(!is_alive(u32::MAX - 1));
    }
}
