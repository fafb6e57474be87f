//! Atomic file writes: a temp file in the same directory, fsync, rename, fsync the
//! directory. A reader never sees a half-written file, and a crash leaves either the
//! old or the new content. Beside them, opens that refuse links or non-regular files,
//! and locks on files that others delete.

use std::io::{self, Write};
use std::path::Path;

/// Writes `contents` to `path` atomically, creating the parent directory if needed.
/// The new file gets `mode` if given, else the mode of the file it replaces (or the
/// default for new files).
pub fn write_atomic(path: &Path, contents: &[u8], mode: Option<u32>) -> io::Result<()> {
    write_atomic_if(path, contents, mode, || true).map(|_| ())
}

/// [`write_atomic`], asking `still_ok` once the new content is on disk, just before
/// the rename: `false` leaves `path` untouched (the temp file goes) and returns
/// `Ok(false)`. Checks made there leave the least time for another writer to slip in.
pub fn write_atomic_if(
    path: &Path,
    contents: &[u8],
    mode: Option<u32>,
    still_ok: impl FnOnce() -> bool,
) -> io::Result<bool> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // A symlinked file (a config kept elsewhere) is replaced where it really lives,
    // and the link stays a link.
    let resolved;
    let path = if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        resolved = std::fs::canonicalize(path)?;
        resolved.as_path()
    } else {
        path
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    let mode = mode.or_else(|| {
        std::fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    });
    // tempfile creates 0600; without a mode of its own the file gets the usual 0644.
    let mode = mode.unwrap_or(0o644);
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    // Run as root on a file someone else owns (`sudo omero-webctl config set`): keep
    // its owner, or the service that reads it may no longer be able to.
    if let Ok(old) = std::fs::metadata(path)
        && nix::unistd::geteuid().is_root()
        && (old.uid() != 0 || old.gid() != 0)
    {
        std::os::unix::fs::fchown(tmp.as_file(), Some(old.uid()), Some(old.gid()))?;
    }
    tmp.as_file().sync_all()?;
    if !still_ok() {
        return Ok(false);
    }
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(true)
}

/// Replaces `path` atomically without ever writing through a symlink: a link at
/// `path` is itself replaced. For files root writes into directories other users
/// own (a link planted there must not make root overwrite its target).
pub fn replace_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".replace.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    // rename(2) replaces the directory entry, a symlink included, not its target.
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The error of an `O_NOFOLLOW` open that met a symlink (`ELOOP`), said plainly: the
/// link is refused on purpose, not a loop. Other errors are returned as they are.
pub fn explain_refused_link(err: io::Error) -> io::Error {
    if err.raw_os_error() == Some(libc::ELOOP) {
        io::Error::new(
            err.kind(),
            "is a symlink; refused (it must be a regular file, never a link)",
        )
    } else {
        err
    }
}

/// Opens a file to read only if it is a regular file, judged on the opened descriptor:
/// the open does not block (`O_NONBLOCK`, so a FIFO swapped in by whoever can write the
/// directory cannot hang the opener), `fstat` must say regular file, and only then is
/// `O_NONBLOCK` cleared for ordinary reads. For repository images, which their owner
/// may replace at any moment.
pub fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    open_regular_with(path, 0)
}

/// [`open_regular`] that also refuses a symlink at `path` (`O_NOFOLLOW`, the error
/// said plainly): for files whose lock or contents decide what we signal, where a
/// link the site's owner planted must not point us at someone else's file.
pub fn open_regular_no_follow(path: &Path) -> io::Result<std::fs::File> {
    open_regular_with(path, libc::O_NOFOLLOW).map_err(explain_refused_link)
}

fn open_regular_with(path: &Path, extra_flags: i32) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | extra_flags)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(file)
}

/// [`open_regular`] for a file that must lie beneath `root` (a canonical directory):
/// whatever links the path went through, the descriptor's own path
/// (`/proc/self/fd/N`) must be beneath `root`, so a link swapped in between a check
/// of the path and the open is refused rather than read.
pub fn open_regular_beneath(path: &Path, root: &Path) -> io::Result<std::fs::File> {
    let file = open_regular(path)?;
    check_beneath(&file, root)?;
    Ok(file)
}

/// Whether the file open as `file` lies beneath `root` (canonical), judged on the
/// descriptor rather than on any path.
pub fn check_beneath(file: &std::fs::File, root: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    if root.as_os_str().is_empty() || !real.starts_with(root) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "resolves outside the repository; refused",
        ));
    }
    Ok(())
}

/// Sets the mode of the file at `path` itself, never of what a link there points at:
/// the path is opened with `O_PATH|O_NOFOLLOW` (a link is refused), and the mode is set
/// through `/proc/self/fd`, on the very inode that was opened. For files such as a
/// freshly bound unix socket, which cannot be opened for reading or writing.
pub fn chmod_no_follow(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)?;
    if file.metadata()?.file_type().is_symlink() {
        return Err(io::Error::other(format!(
            "{} is a symlink; its mode is not set",
            path.display()
        )));
    }
    let pinned = format!("/proc/self/fd/{}", file.as_raw_fd());
    std::fs::set_permissions(pinned, std::fs::Permissions::from_mode(mode))
}

/// Creates `base/rel` and every missing directory on the way, never following a
/// symlink below `base`: each component is opened with `openat(O_NOFOLLOW|O_DIRECTORY)`
/// from the one above, so a link planted anywhere in `rel` (say `var/nginx/tmp/proxy`
/// pointing at `/etc/cron.d`) refuses the whole path instead of steering the caller.
/// Returns the last directory, open. `rel` must be relative and plain (no `..`).
pub fn ensure_dir_beneath(base: &Path, rel: &Path) -> io::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, mkdirat};
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let mut dir: std::os::fd::OwnedFd = std::fs::File::open(base)?.into();
    let mut walked = base.to_path_buf();
    for component in rel.components() {
        let std::path::Component::Normal(name) = component else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is not a plain path below {}",
                    rel.display(),
                    base.display()
                ),
            ));
        };
        walked.push(name);
        let refused = |errno: nix::errno::Errno| match errno {
            nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => io::Error::other(format!(
                "{} is a symlink or not a directory; refused (it must be a real directory)",
                walked.display()
            )),
            other => io::Error::other(format!("{}: {other}", walked.display())),
        };
        dir = match openat(&dir, name, flags, Mode::empty()) {
            Ok(next) => next,
            Err(nix::errno::Errno::ENOENT) => {
                match mkdirat(&dir, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(errno) => return Err(refused(errno)),
                }
                openat(&dir, name, flags, Mode::empty()).map_err(refused)?
            }
            Err(errno) => return Err(refused(errno)),
        };
    }
    Ok(dir)
}

/// Whether `path` names, right now, the file open as `file` (same device and inode).
pub fn is_same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(ours), Ok(on_disk)) => ours.dev() == on_disk.dev() && ours.ino() == on_disk.ino(),
        _ => false,
    }
}

/// What a lock attempt on the file a path names came to; either way on the file the
/// path still named once the attempt was over.
#[derive(Debug)]
pub enum PathLock {
    Locked(nix::fcntl::Flock<std::fs::File>),
    /// A non-blocking attempt found the lock held by someone else; the file, so that
    /// its contents (or its holder) can be read.
    Held(std::fs::File),
}

/// Takes an `flock` (`arg`) on the file at `path`, opened by `open`, and checks that
/// the path still names the locked file, starting over on the file now there if not:
/// a lock file its holder deletes on release (OMERO's `config.xml.lock`, a stale pid
/// file) may be unlinked between our open and our lock, and a lock on an unlinked
/// inode guards nothing. `Ok(None)`: a non-blocking `arg` found the lock held.
pub fn lock_path(
    path: &Path,
    arg: nix::fcntl::FlockArg,
    open: impl Fn(&Path) -> io::Result<std::fs::File>,
) -> io::Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    Ok(match try_lock_path(path, arg, open)? {
        PathLock::Locked(lock) => Some(lock),
        PathLock::Held(_) => None,
    })
}

/// [`lock_path`], keeping the file when the lock is held. A lock found held on a file
/// the path no longer names says nothing of the file there now (its holder removed it
/// on release, a new one may be free or held by another): that attempt starts over too.
pub fn try_lock_path(
    path: &Path,
    arg: nix::fcntl::FlockArg,
    open: impl Fn(&Path) -> io::Result<std::fs::File>,
) -> io::Result<PathLock> {
    use nix::fcntl::Flock;
    // A file replaced between every open and its lock is someone swapping it on
    // purpose (the site's owner, while root runs us): give up rather than spin.
    for _ in 0..LOCK_ATTEMPTS {
        match Flock::lock(open(path)?, arg) {
            Ok(lock) if is_same_file(&lock, path) => return Ok(PathLock::Locked(lock)),
            // Unlinked or replaced meanwhile: dropping it unlocks and closes.
            Ok(_guards_nothing) => {}
            Err((file, nix::errno::Errno::EWOULDBLOCK)) if is_same_file(&file, path) => {
                return Ok(PathLock::Held(file));
            }
            Err((_gone, nix::errno::Errno::EWOULDBLOCK)) => {}
            Err((_, errno)) => return Err(errno.into()),
        }
    }
    Err(io::Error::other(format!(
        "{}: replaced under every one of {LOCK_ATTEMPTS} attempts to lock it",
        path.display()
    )))
}

/// How many times [`try_lock_path`] starts over on a file replaced under it.
const LOCK_ATTEMPTS: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_taken_only_on_the_file_the_path_still_names() {
        use nix::fcntl::FlockArg;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.xml.lock");
        let create = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
        };
        let held = lock_path(&path, FlockArg::LockExclusiveNonblock, create)
            .unwrap()
            .expect("free");
        assert!(is_same_file(&held, &path));
        // Held: a non-blocking attempt says so.
        assert!(
            lock_path(&path, FlockArg::LockExclusiveNonblock, create)
                .unwrap()
                .is_none()
        );
        // The holder deletes the file and a new one is made (OMERO's release): the
        // next lock is on the new file, not on the old inode its open may have met.
        std::fs::remove_file(&path).unwrap();
        assert!(!is_same_file(&held, &path));
        std::fs::write(&path, "").unwrap();
        // An open that returns the old, unlinked file first (as a race would): the
        // lock on it is dropped and the file now at the path is locked instead.
        let old = std::cell::RefCell::new(Some(held.try_clone().unwrap()));
        drop(held);
        let racing_open = |p: &Path| match old.borrow_mut().take() {
            Some(stale) => Ok(stale),
            None => create(p),
        };
        let lock = lock_path(&path, FlockArg::LockExclusiveNonblock, racing_open)
            .unwrap()
            .expect("the new file is free");
        assert!(old.borrow().is_none(), "the unlinked file was tried first");
        assert!(is_same_file(&lock, &path));
        // Open errors come back as they are.
        let err = lock_path(&dir.path().join("none"), FlockArg::LockShared, |p| {
            std::fs::File::open(p)
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_file_replaced_under_every_lock_attempt_is_given_up_on_with_its_name() {
        use nix::fcntl::FlockArg;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("omeroweb.pid");
        let attempts = std::cell::Cell::new(0);
        // Every open hands back a file that is then replaced at the path.
        let swapping_open = |p: &Path| {
            attempts.set(attempts.get() + 1);
            std::fs::write(p, "1").unwrap();
            let file = std::fs::File::open(p)?;
            std::fs::remove_file(p).unwrap();
            std::fs::write(p, "2").unwrap();
            Ok(file)
        };
        let err = try_lock_path(&path, FlockArg::LockExclusiveNonblock, swapping_open).unwrap_err();
        assert_eq!(attempts.get(), LOCK_ATTEMPTS);
        let said = err.to_string();
        assert!(
            said.contains("omeroweb.pid") && said.contains("replaced"),
            "{said}"
        );
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_write_declined_before_the_rename_leaves_the_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.xml");
        std::fs::write(&path, "old").unwrap();
        assert!(!write_atomic_if(&path, b"new", None, || false).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write_atomic_if(&path, b"new", None, || true).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn writes_replaces_and_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.txt");
        write_atomic(&path, b"one", None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&path, b"two", None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temp files are left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_symlinked_file_is_replaced_at_its_target_and_keeps_its_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("elsewhere/real.toml");
        write_atomic(&real, b"one", None).unwrap();
        let link = dir.path().join("etc/omero-web.toml");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"two", None).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&real).unwrap(), b"two");
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&real, Some(65534), Some(65534)).unwrap();
            write_atomic(&real, b"three", None).unwrap();
            let meta = std::fs::metadata(&real).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        }
    }

    #[test]
    fn replacing_never_writes_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        let link = dir.path().join("state.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        replace_atomic(&link, b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        assert!(
            !std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "{}");
    }

    #[test]
    fn directories_beneath_a_base_are_made_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        ensure_dir_beneath(dir.path(), Path::new("var/nginx/tmp/proxy")).unwrap();
        assert!(dir.path().join("var/nginx/tmp/proxy").is_dir());
        // Again: existing directories are fine.
        ensure_dir_beneath(dir.path(), Path::new("var/nginx/tmp/proxy")).unwrap();
        // A link in the last component or in the middle refuses the path.
        std::os::unix::fs::symlink(&victim, dir.path().join("var/nginx/tmp/scgi")).unwrap();
        let err = ensure_dir_beneath(dir.path(), Path::new("var/nginx/tmp/scgi")).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        std::os::unix::fs::symlink(&victim, dir.path().join("var/linked")).unwrap();
        let err = ensure_dir_beneath(dir.path(), Path::new("var/linked/tmp")).unwrap_err();
        assert!(err.to_string().contains("var/linked is a symlink"), "{err}");
        assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
        assert!(ensure_dir_beneath(dir.path(), Path::new("../x")).is_err());
    }

    #[test]
    fn only_regular_files_open_and_a_fifo_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("image.tif");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(open_regular(&path).map(drop)));
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("opening a FIFO must not block");
        let err = result.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(open_regular(dir.path()).is_err(), "a directory is refused");
        let file = dir.path().join("real.tif");
        std::fs::write(&file, b"II*\0").unwrap();
        let opened = open_regular(&file).unwrap();
        let flags = nix::fcntl::fcntl(&opened, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_eq!(flags & libc::O_NONBLOCK, 0, "reads block as usual again");
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut &opened, &mut text).unwrap();
        assert_eq!(text, b"II*\0");
    }

    #[test]
    fn a_descriptor_outside_the_repository_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let (repo, outside) = (base.join("repo"), base.join("outside"));
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(repo.join("a.tif"), b"inside").unwrap();
        std::fs::write(outside.join("secret.tif"), b"outside").unwrap();
        // Judged on the descriptor, whatever path opened it.
        let inside = open_regular(&repo.join("a.tif")).unwrap();
        check_beneath(&inside, &repo).unwrap();
        let elsewhere = open_regular(&outside.join("secret.tif")).unwrap();
        let err = check_beneath(&elsewhere, &repo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        // A sibling whose name merely starts like the repository's is outside.
        let lookalike = base.join("repo-old");
        std::fs::create_dir_all(&lookalike).unwrap();
        std::fs::write(lookalike.join("b.tif"), b"x").unwrap();
        let file = open_regular(&lookalike.join("b.tif")).unwrap();
        assert!(check_beneath(&file, &repo).is_err());
        // Links inside the repository: followed only to a file that stays inside.
        std::os::unix::fs::symlink(repo.join("a.tif"), repo.join("in.tif")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.tif"), repo.join("out.tif")).unwrap();
        std::os::unix::fs::symlink(&outside, repo.join("dir")).unwrap();
        assert!(open_regular_beneath(&repo.join("in.tif"), &repo).is_ok());
        assert!(open_regular_beneath(&repo.join("out.tif"), &repo).is_err());
        assert!(open_regular_beneath(&repo.join("dir/secret.tif"), &repo).is_err());
        // No root known (no scan yet): nothing is beneath it.
        assert!(check_beneath(&inside, Path::new("")).is_err());
    }

    /// The check-then-open race of issue 20 (2 of 721 tries read a root-only file):
    /// a thread flips a link between a file inside and one outside while opens run;
    /// no byte of the outside file is ever read.
    #[test]
    fn a_link_flipped_during_opens_never_serves_the_outside_file() {
        use std::io::Read;
        use std::sync::atomic::{AtomicBool, Ordering};
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let (repo, outside) = (base.join("repo"), base.join("outside"));
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(repo.join("real.tif"), b"INSIDE").unwrap();
        std::fs::write(outside.join("secret.tif"), b"SECRET").unwrap();
        let link = repo.join("image.tif");
        std::os::unix::fs::symlink(repo.join("real.tif"), &link).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flips = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let flipper = {
            let (stop, flips, link) = (stop.clone(), flips.clone(), link.clone());
            let targets = [repo.join("real.tif"), outside.join("secret.tif")];
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let next = link.with_extension("tmp");
                    let _ = std::fs::remove_file(&next);
                    let flip = flips.load(Ordering::Relaxed);
                    std::os::unix::fs::symlink(&targets[(flip % 2) as usize], &next).unwrap();
                    std::fs::rename(&next, &link).unwrap();
                    flips.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        // A few hundred opens while the link really moves (on a loaded machine the
        // flipper may get little time: the deadline is generous).
        let (mut opens, mut served, mut refused) = (0u64, 0u64, 0u64);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while (opens < 400 || flips.load(Ordering::Relaxed) < 200 || served == 0 || refused == 0)
            && std::time::Instant::now() < deadline
        {
            opens += 1;
            match open_regular_beneath(&link, &repo) {
                Ok(mut file) => {
                    let mut bytes = Vec::new();
                    file.read_to_end(&mut bytes).unwrap();
                    assert_eq!(bytes, b"INSIDE", "served a file outside the repository");
                    served += 1;
                }
                Err(_) => refused += 1,
            }
            if opens % 16 == 0 {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().unwrap();
        let flipped = flips.load(Ordering::Relaxed);
        assert!(
            flipped >= 200 && served > 0 && refused > 0,
            "{opens} opens: served {served}, refused {refused}, {flipped} flips"
        );
    }

    #[test]
    fn modes_are_set_on_the_file_itself_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("omeroweb.sock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(chmod_no_follow(&link, 0o600).is_err());
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "the link's target keeps its mode");
        let socket = dir.path().join("real.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        chmod_no_follow(&socket, 0o600).unwrap();
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
