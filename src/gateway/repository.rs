//! The images under the repository directory, each with a stable integer ID.
//!
//! IDs live in a small JSON index (`.omero-webctl-index.json` in the index directory)
//! that maps each image's path relative to the repository to its ID, plus `next_id`.
//! IDs start at 1 and only ever grow: a removed file leaves a gap that is never filled,
//! and a file that comes back at the same path gets a new ID, so a bookmarked URL or a
//! cached thumbnail of the old file can never silently show a different image.
//!
//! Where the index lives is the caller's choice; the site's `var/` directory is the
//! intended one: it survives `rm -rf var/cache` (which must not renumber images), it
//! works with a read-only repository, it writes nothing into the operator's image
//! store, and since keys are relative paths a repository moved elsewhere and pointed to
//! again keeps its IDs. Deleting the index renumbers everything; don't.
//!
//! Several worker processes share the index. Every change happens under an exclusive
//! `flock` on `.omero-webctl-index.lock`, after re-reading the index, and the new index
//! is written atomically, so two workers never hand out the same ID and a reader
//! without the lock always sees a whole file.
//!
//! What is an image: a regular file (or a symlink to one that stays inside the
//! repository) whose name ends in `.tif`, `.tiff`, `.png`, `.jpg` or `.jpeg` (any case;
//! `.ome.tif`/`.ome.tiff` included), not hidden, in a directory that is not hidden.
//! Symlinked directories are not followed (no loops, no way out), and names that are
//! not UTF-8 are skipped (the index is JSON). IDs are the only way in: nothing outside
//! the repository is ever returned.
//!
//! Picking up changes while running, cheaply:
//! * `get` of an unknown ID rescans, at most once per second; IDs below `next_id` that
//!   are not in the index are known gaps and never cause a rescan;
//! * `list` rescans when the repository directory's mtime changed (checked with one
//!   `stat`; at most once per second) or when the last scan is 5 s old (the mtime only
//!   sees changes directly in the top directory);
//! * `get` re-stats the file it returns, so `size` and `modified` are fresh, and a
//!   deleted file or a symlink re-pointed out of the repository is `None` at once.
//!
//! The calls block on the filesystem; async callers should use `spawn_blocking` for
//! `open`, `rescan` and `list`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// File name of the index inside the index directory (hidden, so never an image).
pub const INDEX_FILE: &str = ".omero-webctl-index.json";
/// File name of the lock file beside the index. It is never deleted: deleting a lock
/// file while someone waits on it lets two holders in at once.
pub const LOCK_FILE: &str = ".omero-webctl-index.lock";

const IMAGE_EXTENSIONS: [&str; 5] = ["tif", "tiff", "png", "jpg", "jpeg"];
const INDEX_VERSION: u32 = 1;

/// One image of the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEntry {
    pub id: u64,
    /// Absolute path under the (canonical) repository directory.
    pub path: PathBuf,
    /// The file name.
    pub name: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// IDs that appeared in or disappeared from this instance's view in one rescan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RescanReport {
    pub added: Vec<u64>,
    pub removed: Vec<u64>,
}

pub struct Repository {
    root: PathBuf,
    index_path: PathBuf,
    lock_path: PathBuf,
    miss_interval: Duration,
    list_interval: Duration,
    /// What `get` and `list` answer from; swapped whole after each rescan.
    view: RwLock<Arc<View>>,
    /// Serialises rescans within this process and holds their bookkeeping.
    scan: Mutex<ScanState>,
}

#[derive(Default)]
struct View {
    /// The canonical repository directory the entries were found in.
    canon: PathBuf,
    entries: BTreeMap<u64, ImageEntry>,
}

struct ScanState {
    index: Index,
    index_stamp: Option<Stamp>,
    scanned_at: Option<Instant>,
    root_mtime: Option<SystemTime>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Index {
    version: u32,
    next_id: u64,
    /// Relative path (with `/`) → ID.
    images: BTreeMap<String, u64>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            version: INDEX_VERSION,
            next_id: 1,
            images: BTreeMap::new(),
        }
    }
}

/// Identifies one version of the index file, to re-read it only when it changed.
/// The atomic rename gives every version a new inode; mtime and size guard against
/// inode reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

struct FileInfo {
    size: u64,
    modified: SystemTime,
}

/// The result of walking the repository.
#[derive(Default)]
struct Walk {
    files: BTreeMap<String, FileInfo>,
    /// Relative paths (directories or files) that could not be read. Index entries
    /// under them are kept: an unreadable directory must not renumber its images.
    unreadable: Vec<String>,
}

impl Walk {
    fn is_unreadable(&self, rel: &str) -> bool {
        self.unreadable.iter().any(|u| {
            rel == u
                || (rel.len() > u.len()
                    && rel.starts_with(u.as_str())
                    && rel.as_bytes()[u.len()] == b'/')
        })
    }
}

impl Repository {
    /// Opens the repository at `dir` with its index in `index_dir`, and scans it.
    /// A repository directory that does not exist (yet) gives an empty repository
    /// that picks images up once it appears; an unreadable or corrupt index is an error.
    pub fn open(dir: &Path, index_dir: &Path) -> io::Result<Repository> {
        let root = std::path::absolute(dir)?;
        let index_dir = std::path::absolute(index_dir)?;
        let repo = Repository {
            root,
            index_path: index_dir.join(INDEX_FILE),
            lock_path: index_dir.join(LOCK_FILE),
            miss_interval: Duration::from_secs(1),
            list_interval: Duration::from_secs(5),
            view: RwLock::new(Arc::new(View::default())),
            scan: Mutex::new(ScanState {
                index: Index::default(),
                index_stamp: None,
                scanned_at: None,
                root_mtime: None,
            }),
        };
        {
            let mut st = repo.lock_scan();
            repo.reload_index(&mut st)?;
            match repo.rescan_locked(&mut st) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && !repo.root.exists() => {}
                other => {
                    other?;
                }
            }
        }
        Ok(repo)
    }

    /// Changes how often `get` (unknown ID) and `list` may rescan; 1 s and 5 s by default.
    pub fn set_rescan_intervals(&mut self, unknown_id: Duration, list: Duration) {
        self.miss_interval = unknown_id;
        self.list_interval = list;
    }

    /// The repository directory as given (made absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The repository directory as the last scan resolved it (every entry's path is
    /// beneath it; empty before the first scan).
    pub fn canonical_root(&self) -> PathBuf {
        self.view().canon.clone()
    }

    /// The index file.
    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    /// Walks the repository now, gives new files IDs and drops vanished ones.
    /// A repository that cannot be read (missing, permissions) is an error and
    /// changes nothing.
    pub fn rescan(&self) -> io::Result<RescanReport> {
        let mut st = self.lock_scan();
        self.rescan_locked(&mut st)
    }

    /// The image with this ID, with size and mtime fresh from the filesystem.
    pub fn get(&self, id: u64) -> Option<ImageEntry> {
        if let Some(entry) = self.view().fresh(id) {
            return Some(entry);
        }
        let mut st = self.lock_scan();
        // Another thread may have rescanned while this one waited for the lock.
        if let Some(entry) = self.view().fresh(id) {
            return Some(entry);
        }
        let known_gap =
            id == 0 || (id < st.index.next_id && !st.index.images.values().any(|&v| v == id));
        let recent = st
            .scanned_at
            .is_some_and(|t| t.elapsed() < self.miss_interval);
        if known_gap || recent {
            return None;
        }
        // A failed rescan keeps the previous view; the caller just sees "not found".
        let _ = self.rescan_locked(&mut st);
        drop(st);
        self.view().fresh(id)
    }

    /// Every image, by ID.
    pub fn list(&self) -> Vec<ImageEntry> {
        {
            let mut st = self.lock_scan();
            let since = st.scanned_at.map(|t| t.elapsed());
            let due = match since {
                None => true,
                Some(since) if since >= self.list_interval => true,
                Some(since) if since >= self.miss_interval => {
                    let mtime = fs::metadata(&self.root).and_then(|m| m.modified()).ok();
                    mtime != st.root_mtime
                }
                Some(_) => false,
            };
            if due {
                let _ = self.rescan_locked(&mut st);
            }
        }
        self.view().entries.values().cloned().collect()
    }

    fn view(&self) -> Arc<View> {
        Arc::clone(&self.view.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn lock_scan(&self) -> std::sync::MutexGuard<'_, ScanState> {
        self.scan.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rescan_locked(&self, st: &mut ScanState) -> io::Result<RescanReport> {
        st.scanned_at = Some(Instant::now());
        let root_meta = fs::metadata(&self.root).map_err(|e| with_path(e, &self.root))?;
        if !root_meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", self.root.display()),
            ));
        }
        let canon = fs::canonicalize(&self.root).map_err(|e| with_path(e, &self.root))?;
        // Walk without the index lock: the walk is the slow part, and the few paths
        // whose state matters are checked again under the lock.
        let walk = walk(&canon)?;
        self.reload_index(st)?;
        let index = &st.index.images;
        let differs = walk.files.keys().any(|p| !index.contains_key(p))
            || index
                .keys()
                .any(|p| !walk.files.contains_key(p) && !walk.is_unreadable(p));
        if differs {
            self.update_index(st, &canon, &walk)?;
        }

        let mut entries = BTreeMap::new();
        for (rel, &id) in &st.index.images {
            if let Some(info) = walk.files.get(rel) {
                let name = rel.rsplit('/').next().unwrap_or(rel).to_string();
                entries.insert(
                    id,
                    ImageEntry {
                        id,
                        path: canon.join(rel),
                        name,
                        size: info.size,
                        modified: info.modified,
                    },
                );
            }
        }
        let old = self.view();
        let report = RescanReport {
            added: entries
                .keys()
                .filter(|id| !old.entries.contains_key(id))
                .copied()
                .collect(),
            removed: old
                .entries
                .keys()
                .filter(|id| !entries.contains_key(id))
                .copied()
                .collect(),
        };
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(View { canon, entries });
        st.root_mtime = root_meta.modified().ok();
        Ok(report)
    }

    /// Re-reads the index if another process replaced it since we last read it.
    fn reload_index(&self, st: &mut ScanState) -> io::Result<()> {
        // Stat before reading: if the file is replaced in between, we read the newer
        // content under the older stamp and merely read it once more next time.
        let stamp = stamp(&self.index_path);
        if stamp.is_some() && stamp == st.index_stamp {
            return Ok(());
        }
        st.index = read_index(&self.index_path)?;
        st.index_stamp = stamp;
        Ok(())
    }

    /// Brings the index in line with the walk, under the inter-process lock.
    fn update_index(&self, st: &mut ScanState, canon: &Path, walk: &Walk) -> io::Result<()> {
        if let Some(dir) = self.index_path.parent() {
            fs::create_dir_all(dir).map_err(|e| with_path(e, dir))?;
        }
        let _lock = lock_exclusive(&self.lock_path)?;
        // Re-read under the lock: another worker may have written a moment ago.
        let mut index = read_index(&self.index_path)?;
        let mut changed = false;
        for rel in walk.files.keys() {
            // Still there? (The walk ran without the lock.)
            if !index.images.contains_key(rel) && is_present(canon, rel) {
                index.images.insert(rel.clone(), index.next_id);
                index.next_id += 1;
                changed = true;
            }
        }
        let gone: Vec<String> = index
            .images
            .keys()
            .filter(|rel| !walk.files.contains_key(*rel) && !walk.is_unreadable(rel))
            // A file another worker indexed after our walk began is not gone.
            .filter(|rel| !is_present(canon, rel))
            .cloned()
            .collect();
        for rel in gone {
            index.images.remove(&rel);
            changed = true;
        }
        if changed {
            let json = serde_json::to_vec_pretty(&index).map_err(io::Error::other)?;
            crate::fsutil::write_atomic(&self.index_path, &json, None)
                .map_err(|e| with_path(e, &self.index_path))?;
        }
        st.index_stamp = stamp(&self.index_path);
        st.index = index;
        Ok(())
    }
}

impl View {
    /// The entry with size and mtime re-read; `None` if the file is gone, or if it is
    /// now a symlink that leads out of the repository (re-pointed since the scan).
    fn fresh(&self, id: u64) -> Option<ImageEntry> {
        let entry = self.entries.get(&id)?;
        // A directory on the way may have been swapped for a symlink since the scan:
        // the resolved path must still be inside the repository.
        if !fs::canonicalize(&entry.path).ok()?.starts_with(&self.canon) {
            return None;
        }
        let link = fs::symlink_metadata(&entry.path).ok()?;
        let meta = if link.file_type().is_symlink() {
            symlink_target_inside(&self.canon, &entry.path)?
        } else {
            Some(link).filter(|m| m.is_file())?
        };
        Some(ImageEntry {
            size: meta.len(),
            modified: meta.modified().ok()?,
            ..entry.clone()
        })
    }
}

fn lock_exclusive(path: &Path) -> io::Result<Flock<File>> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| with_path(e, path))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(lock) => return Ok(lock),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, errno)) => return Err(with_path(errno.into(), path)),
        }
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        len: m.len(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

fn read_index(path: &Path) -> io::Result<Index> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::default()),
        Err(e) => return Err(with_path(e, path)),
    };
    let bad = |msg: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("image index {}: {msg}", path.display()),
        )
    };
    let mut index: Index = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if index.version != INDEX_VERSION {
        return Err(bad(format!("unsupported version {}", index.version)));
    }
    let mut seen = BTreeSet::new();
    for (rel, &id) in &index.images {
        if id == 0 || !seen.insert(id) {
            return Err(bad(format!("invalid or duplicate id {id} ({rel})")));
        }
    }
    // A hand-edited next_id must never lead to an ID being handed out twice.
    if let Some(&max) = seen.last() {
        index.next_id = index.next_id.max(max + 1);
    }
    index.next_id = index.next_id.max(1);
    Ok(index)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Whether a file name is one of ours to serve (extension, not hidden).
pub fn is_image_name(name: &str) -> bool {
    if name.starts_with('.') {
        return false;
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => IMAGE_EXTENSIONS
            .iter()
            .any(|known| ext.eq_ignore_ascii_case(known)),
        _ => false,
    }
}

/// Whether `rel` (already known to be an image name) is still a servable file.
fn is_present(canon: &Path, rel: &str) -> bool {
    let path = canon.join(rel);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_file() => true,
        Ok(m) if m.file_type().is_symlink() => symlink_target_inside(canon, &path).is_some(),
        _ => false,
    }
}

/// The metadata of a symlink's target if the target is a file inside the repository.
fn symlink_target_inside(canon: &Path, link: &Path) -> Option<fs::Metadata> {
    let target = fs::canonicalize(link).ok()?;
    if !target.starts_with(canon) {
        return None;
    }
    fs::metadata(&target).ok().filter(|m| m.is_file())
}

/// Walks the repository (canonical path). Only a failure to read the top directory is
/// an error; deeper failures are recorded as unreadable.
fn walk(canon: &Path) -> io::Result<Walk> {
    let mut out = Walk::default();
    let mut dirs: Vec<(PathBuf, String)> = vec![(canon.to_path_buf(), String::new())];
    while let Some((dir, rel_dir)) = dirs.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if rel_dir.is_empty() => return Err(with_path(e, &dir)),
            // Vanished since its parent was listed: its files are gone.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => {
                out.unreadable.push(rel_dir);
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(_) => {
                    out.unreadable.push(rel_dir.clone());
                    break;
                }
            };
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let rel = if rel_dir.is_empty() {
                name.clone()
            } else {
                format!("{rel_dir}/{name}")
            };
            let Ok(file_type) = entry.file_type() else {
                out.unreadable.push(rel);
                continue;
            };
            if file_type.is_dir() {
                dirs.push((entry.path(), rel));
                continue;
            }
            if !is_image_name(&name) {
                continue;
            }
            let meta = if file_type.is_symlink() {
                match symlink_target_inside(canon, &entry.path()) {
                    Some(meta) => meta,
                    None => continue,
                }
            } else if file_type.is_file() {
                match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(_) => {
                        out.unreadable.push(rel);
                        continue;
                    }
                }
            } else {
                continue;
            };
            let Ok(modified) = meta.modified() else {
                continue;
            };
            out.files.insert(
                rel,
                FileInfo {
                    size: meta.len(),
                    modified,
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn touch(dir: &Path, rel: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, rel.as_bytes()).unwrap();
    }

    fn ids(repo: &Repository) -> Vec<(u64, String)> {
        repo.list()
            .into_iter()
            .map(|e| {
                let rel = e
                    .path
                    .strip_prefix(repo.root.canonicalize().unwrap())
                    .unwrap();
                (e.id, rel.to_string_lossy().into_owned())
            })
            .collect()
    }

    fn pairs(list: &[(u64, &str)]) -> Vec<(u64, String)> {
        list.iter().map(|(id, s)| (*id, s.to_string())).collect()
    }

    #[test]
    fn image_names() {
        for yes in [
            "a.tif",
            "a.TIFF",
            "b.ome.tif",
            "c.ome.tiff",
            "d.png",
            "e.JPG",
            "f.jpeg",
        ] {
            assert!(is_image_name(yes), "{yes}");
        }
        for no in [
            ".a.tif",
            "tif",
            ".tif",
            "a.txt",
            "a.tif.bak",
            "a",
            INDEX_FILE,
            LOCK_FILE,
        ] {
            assert!(!is_image_name(no), "{no}");
        }
    }

    #[test]
    fn ids_are_stable_across_rescans_and_restarts() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, var) = (tmp.path().join("repo"), tmp.path().join("var"));
        for rel in ["a.tif", "b.png", "sub/c.JPG", "sub/deeper/d.ome.tiff"] {
            touch(&root, rel);
        }
        for skipped in [".hidden.tif", ".dir/e.tif", "notes.txt", "sub/f.tif.part"] {
            touch(&root, skipped);
        }
        let mut repo = Repository::open(&root, &var).unwrap();
        repo.set_rescan_intervals(Duration::ZERO, Duration::ZERO);
        let first = pairs(&[
            (1, "a.tif"),
            (2, "b.png"),
            (3, "sub/c.JPG"),
            (4, "sub/deeper/d.ome.tiff"),
        ]);
        assert_eq!(ids(&repo), first);
        let e = repo.get(3).unwrap();
        assert_eq!(e.name, "c.JPG");
        assert_eq!(e.size, "sub/c.JPG".len() as u64);
        assert!(e.path.is_absolute());

        // Remove one, add two: the gap stays, new files get new IDs.
        fs::remove_file(root.join("b.png")).unwrap();
        touch(&root, "z.tif");
        touch(&root, "sub/y.png");
        let report = repo.rescan().unwrap();
        assert_eq!(report.added, vec![5, 6]);
        assert_eq!(report.removed, vec![2]);
        assert_eq!(repo.get(2), None);
        assert_eq!(repo.get(6).unwrap().name, "z.tif");
        assert_eq!(repo.rescan().unwrap(), RescanReport::default());

        // Re-added at the same path: a new ID, never 2 again.
        touch(&root, "b.png");
        repo.rescan().unwrap();
        let after = pairs(&[
            (1, "a.tif"),
            (3, "sub/c.JPG"),
            (4, "sub/deeper/d.ome.tiff"),
            (5, "sub/y.png"),
            (6, "z.tif"),
            (7, "b.png"),
        ]);
        assert_eq!(ids(&repo), after);
        drop(repo);

        // A restart reads the same index.
        let repo = Repository::open(&root, &var).unwrap();
        assert_eq!(ids(&repo), after);
        touch(&root, "new.tif");
        let repo = Repository::open(&root, &var).unwrap();
        assert_eq!(repo.get(8).unwrap().name, "new.tif");
        // The index is not in the repository and nothing hidden was written there.
        assert!(var.join(INDEX_FILE).is_file());
        assert!(!root.join(INDEX_FILE).exists());
    }

    #[test]
    fn index_inside_the_repository_is_not_an_image() {
        let tmp = tempfile::tempdir().unwrap();
        touch(tmp.path(), "a.png");
        let repo = Repository::open(tmp.path(), tmp.path()).unwrap();
        assert_eq!(ids(&repo), pairs(&[(1, "a.png")]));
        assert!(tmp.path().join(INDEX_FILE).is_file());
    }

    #[test]
    fn unknown_ids_trigger_a_rescan_and_gaps_do_not() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        touch(&root, "a.tif");
        touch(&root, "b.tif");
        let mut repo = Repository::open(&root, tmp.path()).unwrap();
        repo.set_rescan_intervals(Duration::ZERO, Duration::from_secs(3600));
        fs::remove_file(root.join("b.tif")).unwrap();
        repo.rescan().unwrap();
        touch(&root, "c.tif");
        // 2 is a known gap: no rescan, so c.tif is not picked up by it.
        assert_eq!(repo.get(2), None);
        assert_eq!(repo.view().entries.len(), 1);
        // 3 is beyond next_id: rescan, found.
        assert_eq!(repo.get(3).unwrap().name, "c.tif");
        // A deleted file is gone at once, even before a rescan.
        fs::remove_file(root.join("a.tif")).unwrap();
        assert_eq!(repo.get(1), None);
    }

    #[test]
    fn missing_repository_is_empty_until_it_appears() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("later");
        let mut repo = Repository::open(&root, tmp.path()).unwrap();
        repo.set_rescan_intervals(Duration::ZERO, Duration::ZERO);
        assert!(repo.list().is_empty());
        assert!(repo.rescan().is_err());
        touch(&root, "a.tif");
        assert_eq!(repo.list().len(), 1);
    }

    #[test]
    fn corrupt_index_is_an_error_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        touch(&tmp.path().join("repo"), "a.tif");
        fs::write(tmp.path().join(INDEX_FILE), b"{not json").unwrap();
        let err = Repository::open(&tmp.path().join("repo"), tmp.path())
            .err()
            .unwrap();
        assert!(err.to_string().contains(INDEX_FILE), "{err}");
        assert_eq!(fs::read(tmp.path().join(INDEX_FILE)).unwrap(), b"{not json");
    }

    #[test]
    fn unreadable_directory_keeps_its_ids() {
        use std::os::unix::fs::PermissionsExt;
        if nix::unistd::geteuid().is_root() {
            // root reads everything; the permission cannot make the directory unreadable.
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        touch(&root, "locked/a.tif");
        touch(&root, "b.tif");
        let repo = Repository::open(&root, tmp.path()).unwrap();
        let locked = root.join("locked");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let report = repo.rescan();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(report.unwrap().removed, vec![1]);
        repo.rescan().unwrap();
        assert_eq!(ids(&repo), pairs(&[(1, "locked/a.tif"), (2, "b.tif")]));
    }

    #[test]
    fn symlinks_never_lead_outside() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        let outside = tmp.path().join("outside");
        touch(&outside, "secret.tif");
        touch(&outside, "dir/secret2.tif");
        touch(&root, "real/a.tif");
        symlink(outside.join("secret.tif"), root.join("escape.tif")).unwrap();
        symlink(
            root.join("real/../../outside/secret.tif"),
            root.join("dots.tif"),
        )
        .unwrap();
        symlink(&outside, root.join("outdir")).unwrap();
        symlink(root.join("real"), root.join("loop")).unwrap();
        symlink(root.join("real/a.tif"), root.join("inside.tif")).unwrap();
        symlink(root.join("missing.tif"), root.join("dangling.tif")).unwrap();
        let repo = Repository::open(&root, tmp.path()).unwrap();
        let listed = ids(&repo);
        assert_eq!(listed, pairs(&[(1, "inside.tif"), (2, "real/a.tif")]));
        for entry in repo.list() {
            let target = entry.path.canonicalize().unwrap();
            assert!(target.starts_with(root.canonicalize().unwrap()));
        }
        // An inside link re-pointed outside is refused at once, and dropped by the
        // next rescan.
        assert!(repo.get(1).is_some());
        fs::remove_file(root.join("inside.tif")).unwrap();
        symlink(outside.join("secret.tif"), root.join("inside.tif")).unwrap();
        assert_eq!(repo.get(1), None);
        assert_eq!(repo.rescan().unwrap().removed, vec![1]);
        // A scanned directory swapped for a symlink to the outside after the scan.
        touch(&outside, "real/a.tif");
        assert!(repo.get(2).is_some());
        fs::rename(root.join("real"), tmp.path().join("moved-away")).unwrap();
        symlink(outside.join("real"), root.join("real")).unwrap();
        assert_eq!(repo.get(2), None, "served a file outside the repository");
    }

    #[test]
    fn concurrent_workers_never_share_an_id() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        let var = tmp.path().join("var");
        fs::create_dir_all(&root).unwrap();
        let workers = 6;
        let rounds = 15;
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (root, var) = (root.clone(), var.clone());
                std::thread::spawn(move || {
                    // Each thread is its own "worker": its own Repository, its own
                    // lock file descriptor, exactly as separate processes would be.
                    let repo = Repository::open(&root, &var).unwrap();
                    for r in 0..rounds {
                        touch(&root, &format!("w{w}/r{r}.tif"));
                        if r % 5 == 4 {
                            fs::remove_file(root.join(format!("w{w}/r{}.tif", r - 2))).unwrap();
                        }
                        repo.rescan().unwrap();
                    }
                    repo
                })
            })
            .collect();
        let repos: Vec<Repository> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for repo in &repos {
            repo.rescan().unwrap();
        }
        let reference = ids(&repos[0]);
        assert_eq!(reference.len(), workers * (rounds - rounds / 5));
        let mut by_id = HashMap::new();
        for (id, path) in &reference {
            assert!(by_id.insert(*id, path.clone()).is_none(), "id {id} twice");
        }
        for repo in &repos[1..] {
            assert_eq!(ids(repo), reference);
        }
        let index = read_index(&var.join(INDEX_FILE)).unwrap();
        assert_eq!(index.images.len(), reference.len());
        // Every file ever created got exactly one ID, none was handed out twice.
        assert_eq!(index.next_id as usize, workers * rounds + 1);
    }
}
