//! The binaries an embedded site runs, kept for `upgrade --binary` and `rollback`.
//!
//! Each is a copy under `var/generations/binaries/<when>/`, named as this program's
//! executable (a master is known by its executable's name, see `pidfile`), so that
//! replacing or deleting the file it came from changes nothing. `current.binary` and
//! `previous.binary` (one path each) name the copy the site runs and the one before;
//! `start` runs the current one, `rollback` switches to the previous one. Copies that
//! neither names are removed once a switch completed.

use std::path::{Path, PathBuf};

use crate::pool::worker_program;
use crate::site::Site;

fn generations(site: &Site) -> PathBuf {
    site.var_dir().join("generations")
}

fn binaries(site: &Site) -> PathBuf {
    generations(site).join("binaries")
}

fn record(site: &Site, which: &str) -> PathBuf {
    generations(site).join(format!("{which}.binary"))
}

/// The kept binary a record names, if it is still there.
fn named(site: &Site, which: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(record(site, which)).ok()?;
    let path = PathBuf::from(text.trim());
    path.is_file().then_some(path)
}

/// The binary the site was last switched to.
pub fn current(site: &Site) -> Option<PathBuf> {
    named(site, "current")
}

/// The binary the site ran before the last switch (what `rollback` returns to).
pub fn previous(site: &Site) -> Option<PathBuf> {
    named(site, "previous")
}

/// What `start` runs: the binary the site was switched to, else this program.
pub fn site_program(site: &Site) -> std::io::Result<PathBuf> {
    match current(site) {
        Some(kept) => Ok(kept),
        None => crate::proc::process::this_program(),
    }
}

/// Copies `from` (a path, or `/proc/PID/exe` of a running master) to a directory of
/// its own under `var/generations/binaries/`, executable; returns the copy. The worker
/// program that goes with `from` is copied beside the copy, where its master looks
/// first: for a path, one beside it (or in `../lib/omero-webctl/`) that only root or
/// `from`'s owner could have put there; for a running master, the one it holds open.
/// Without one (or when it is of another build, which the master checks) the copy's
/// workers run the copy itself.
pub fn keep(site: &Site, from: &Path) -> std::io::Result<PathBuf> {
    let name = std::env::current_exe()?
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_end_matches(" (deleted)")
                .to_string()
        })
        .unwrap_or_else(|| "omero-webctl".into());
    let stamp = chrono::Local::now().format("%Y%m%dT%H%M%S%.3f");
    let dir = binaries(site).join(format!("{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let to = dir.join(name);
    std::fs::copy(from, &to).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot copy {}: {e}", from.display()))
    })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))?;
    // A running master's (`/proc/PID/exe`): the worker program it holds open, the very
    // file its workers run, even if the one on disk was replaced since.
    let running_master = from
        .strip_prefix("/proc")
        .ok()
        .and_then(|rest| rest.iter().next()?.to_str()?.parse::<u32>().ok());
    let worker = match running_master {
        Some(pid) => worker_program::held_by(pid).and_then(|held| {
            let file = std::fs::File::open(held).ok()?;
            Some(std::os::fd::OwnedFd::from(file))
        }),
        None => worker_program::trusted_beside(from),
    };
    // Without it the copy's workers run the copy itself: the upgrade goes on.
    if let Some(worker) = worker {
        let copy = dir.join(worker_program::NAME);
        if std::fs::copy(worker_program::fd_path(&worker), &copy).is_err()
            || std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).is_err()
        {
            let _ = std::fs::remove_file(&copy);
        }
    }
    Ok(to)
}

/// Removes a copy [`keep`] made that no switch used.
pub fn discard(program: &Path) {
    if let Some(dir) = program.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Records `program` as what the site runs; the current one becomes the previous one,
/// and copies neither names any more are removed.
pub fn make_current(site: &Site, program: &Path) -> std::io::Result<()> {
    let before = current(site);
    if let Some(before) = &before
        && before != program
    {
        crate::fsutil::write_atomic(
            &record(site, "previous"),
            before.display().to_string().as_bytes(),
            Some(0o644),
        )?;
    }
    crate::fsutil::write_atomic(
        &record(site, "current"),
        program.display().to_string().as_bytes(),
        Some(0o644),
    )?;
    let keep: Vec<PathBuf> = [current(site), previous(site)]
        .into_iter()
        .flatten()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    if let Ok(entries) = std::fs::read_dir(binaries(site)) {
        for entry in entries.flatten() {
            if !keep.contains(&entry.path()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::SiteKind;

    #[test]
    fn a_switch_keeps_the_binary_before_it_and_forgets_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::Embedded);
        assert_eq!(
            site_program(&site).unwrap(),
            crate::proc::process::this_program().unwrap()
        );
        let source = dir.path().join("release");
        let release = |n: u32| {
            std::fs::write(&source, format!("binary {n}")).unwrap();
            // Distinct directories even within one millisecond.
            std::thread::sleep(std::time::Duration::from_millis(5));
            keep(&site, &source).unwrap()
        };
        let first = release(1);
        make_current(&site, &first).unwrap();
        assert_eq!(previous(&site), None);
        let second = release(2);
        make_current(&site, &second).unwrap();
        assert_eq!(previous(&site).as_deref(), Some(first.as_path()));
        // A copy no switch used (a refused upgrade), then another switch.
        let refused = release(3);
        let fourth = release(4);
        make_current(&site, &fourth).unwrap();
        assert!(!refused.exists(), "a copy no switch used is removed");
        assert!(!first.exists(), "only one step back is kept");
        // A rollback: the two swap.
        make_current(&site, &second).unwrap();
        assert_eq!(current(&site).as_deref(), Some(second.as_path()));
        assert_eq!(previous(&site).as_deref(), Some(fourth.as_path()));
        assert_eq!(site_program(&site).unwrap(), second);
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "binary 2");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&second).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    /// `upgrade --binary PATH` keeps the worker program beside PATH with the copy, but
    /// only one that nobody but root or PATH's owner could have put there.
    /// Held by the two tests that open a file named as the worker program: the second
    /// looks for one among this process's descriptors.
    static WORKER_FILES: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_release_keeps_its_worker_program_only_if_nobody_else_could_have_put_it_there() {
        use std::os::unix::fs::PermissionsExt;
        let _one_at_a_time = WORKER_FILES.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path().join("site"), SiteKind::Embedded);
        let release = dir.path().join("release");
        std::fs::create_dir_all(&release).unwrap();
        std::fs::set_permissions(&release, std::fs::Permissions::from_mode(0o755)).unwrap();
        let binary = release.join("omero-webctl");
        std::fs::write(&binary, "binary").unwrap();
        let worker = release.join(worker_program::NAME);
        std::fs::write(&worker, "worker").unwrap();
        std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).unwrap();
        let kept_worker = |kept: PathBuf| kept.with_file_name(worker_program::NAME);
        let kept = keep(&site, &binary).unwrap();
        assert_eq!(
            std::fs::read_to_string(kept_worker(kept)).unwrap(),
            "worker"
        );
        // A directory others may write to: the binary is kept, the worker program not.
        std::fs::set_permissions(&release, std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let kept = keep(&site, &binary).unwrap();
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "binary");
        assert!(!kept_worker(kept).exists());
        std::fs::set_permissions(&release, std::fs::Permissions::from_mode(0o755)).unwrap();
        if nix::unistd::geteuid().is_root() {
            // Another user's file beside root's binary.
            std::os::unix::fs::chown(&worker, Some(65534), None).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
            let kept = keep(&site, &binary).unwrap();
            assert!(!kept_worker(kept).exists());
        }
    }

    /// A running master's worker program is the file it holds open, whatever is on
    /// disk by that name now.
    #[test]
    fn a_running_masters_worker_program_is_the_file_it_holds_open() {
        let _one_at_a_time = WORKER_FILES.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(worker_program::NAME);
        std::fs::write(&path, "the one it runs").unwrap();
        let held = std::fs::File::open(&path).unwrap();
        // Replaced on disk (an upgrade).
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "the new one").unwrap();
        let found = worker_program::held_by(std::process::id()).expect("held");
        assert_eq!(std::fs::read_to_string(found).unwrap(), "the one it runs");
        drop(held);
        assert_eq!(worker_program::held_by(std::process::id()), None);
    }
}
