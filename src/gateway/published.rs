//! Default thumbnails published on disk for nginx to serve without calling the pool
//! (`omero.web.nginx.published_thumbnails`), as the Image Data Resource serves OMERO's
//! rendered images from in front of it. nginx answers
//! `render_thumbnail/<id>/` with `<dir>/t/<id>.jpg` when it exists (see the nginx
//! templates), and passes everything else to the pool.
//!
//! What keeps a published file from going stale: its mtime is set to the source's,
//! and it is only ever trusted while the two are equal.
//! * Publishing renames a complete file into place, then re-reads the source: if it
//!   changed meanwhile, the file is removed again.
//! * The [`Publisher`] (a thread of the master) removes every file whose source is
//!   gone or has another mtime: within milliseconds of a change through file-system
//!   events (`notify`), and at the latest at its next scan (every [`SCAN_EVERY`]) if
//!   an event was lost. It also renders the default thumbnail of every image that has
//!   none, so a new image's thumbnail is ready before anyone asks (as OMERO renders
//!   thumbnails at import).
//!
//! Versioned URLs (`render_thumbnail/<id>/?v=<version>`, `thumbnail_version`) are
//! published too: `<dir>/v/<id>?v=<version>.jpg`, a hard link of `t/<id>.jpg` named
//! after the URL's query, so nginx finds it from the id and the query alone and sends it
//! with the long lifetime the gateway sends for a current version. A link is trusted
//! only while it is the same file as `t/<id>.jpg`: the sweep removes the others.
//! (Every name in `v/` starts with the id's digits and `v/` holds no directories, so no
//! query makes nginx's lookup leave `v/`.)
//!
//! Conditional requests keep working: nginx derives ETag and Last-Modified from the
//! file, and answers If-None-Match / If-Modified-Since with 304 itself.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use super::GatewayConfig;
use super::cache::{CacheKey, DEFAULT_THUMBNAIL_SIZE, ThumbnailCache, default_thumbnail_variant};
use super::imaging::{render, source};
use super::rdefs::RdefStore;
use super::repository::{ImageEntry, Repository};
use crate::gateway::query::render_query::render_query_to_jpeg;

/// The fallback scan's period, for changes whose events were lost.
pub const SCAN_EVERY: Duration = Duration::from_secs(2);
/// Events within this time of each other are handled together.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// The directory of published thumbnails: `<dir>/t/<id>.jpg`.
#[derive(Debug, Clone)]
pub struct Published {
    root: PathBuf,
}

impl Published {
    /// Under the gateway's cache directory.
    pub fn new(cache_dir: &Path) -> Published {
        Published {
            root: cache_dir.join("published"),
        }
    }

    /// What nginx's `root` is for the thumbnail location.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, id: u64) -> PathBuf {
        self.root.join("t").join(format!("{id}.jpg"))
    }

    /// Where the same thumbnail is published for `render_thumbnail/<id>/?v=<version>`.
    pub fn versioned_path(&self, id: u64, version: &str) -> PathBuf {
        self.root.join("v").join(format!(
            "{id}?{}={version}.jpg",
            super::thumbnail_version::PARAM
        ))
    }

    /// Whether image `id`'s thumbnail is published for this very source.
    pub fn is_current(&self, entry: &ImageEntry) -> bool {
        std::fs::metadata(self.path(entry.id))
            .and_then(|m| m.modified())
            .is_ok_and(|published| published == entry.modified)
    }

    /// Publishes the default thumbnail `jpeg` rendered from `entry`, under its plain
    /// URL and under `version` (its versioned URL's). `fresh` re-reads the source after
    /// the rename: if it changed meanwhile, the file is removed and `Ok(false)`
    /// returned.
    pub fn publish(
        &self,
        entry: &ImageEntry,
        jpeg: &[u8],
        version: &str,
        fresh: impl FnOnce() -> Option<ImageEntry>,
    ) -> io::Result<bool> {
        let target = self.path(entry.id);
        let dir = target.parent().expect("a published path has a directory");
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
        tmp.write_all(jpeg)?;
        // nginx runs as another user: the file must be readable by all.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )?;
        tmp.as_file().set_modified(entry.modified)?;
        tmp.persist(&target).map_err(|e| e.error)?;
        let unchanged =
            fresh().is_some_and(|now| now.modified == entry.modified && now.size == entry.size);
        if !unchanged {
            let _ = std::fs::remove_file(&target);
            return Ok(false);
        }
        self.link_version(&target, entry.id, version)?;
        Ok(true)
    }

    /// Links `v/<id>?v=<version>.jpg` to the published `target`, replacing a link
    /// left from an earlier publication (a new link is made beside it and renamed over
    /// it, so nginx never finds the name missing).
    fn link_version(&self, target: &Path, id: u64, version: &str) -> io::Result<()> {
        let versioned = self.versioned_path(id, version);
        let dir = versioned
            .parent()
            .expect("a versioned path has a directory");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".tmp-{id}-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::fs::hard_link(target, &tmp)?;
        std::fs::rename(&tmp, &versioned)
    }

    /// Removes the published thumbnails whose source is gone or changed; returns how
    /// many. `lookup` gives an image's entry as the filesystem has it now.
    pub fn sweep(&self, lookup: impl Fn(u64) -> Option<ImageEntry>) -> usize {
        let Ok(files) = std::fs::read_dir(self.root.join("t")) else {
            return 0;
        };
        let mut removed = 0;
        for file in files.flatten() {
            let name = file.file_name();
            let name = name.to_string_lossy();
            let id = name
                .strip_suffix(".jpg")
                .and_then(|id| id.parse::<u64>().ok());
            let stale = match id {
                // Leftover temp files of a publisher that died.
                None => name.starts_with(".tmp-"),
                Some(id) => {
                    let published = file.metadata().and_then(|m| m.modified()).ok();
                    lookup(id).is_none_or(|entry| Some(entry.modified) != published)
                }
            };
            if stale && std::fs::remove_file(file.path()).is_ok() {
                removed += 1;
            }
        }
        removed + self.sweep_versions()
    }

    /// Removes the versioned links that are no longer the image's published file
    /// (another version, or the source changed or went); returns how many.
    fn sweep_versions(&self) -> usize {
        use std::os::unix::fs::MetadataExt;
        let Ok(files) = std::fs::read_dir(self.root.join("v")) else {
            return 0;
        };
        let mut removed = 0;
        for file in files.flatten() {
            let name = file.file_name();
            let name = name.to_string_lossy();
            let id = name
                .split_once('?')
                .and_then(|(id, _)| id.parse::<u64>().ok());
            let current = id.is_some_and(|id| {
                let (Ok(link), Ok(published)) = (file.metadata(), std::fs::metadata(self.path(id)))
                else {
                    return false;
                };
                (link.dev(), link.ino()) == (published.dev(), published.ino())
            });
            // Leftover temp links of a publisher that died go too.
            if !current && std::fs::remove_file(file.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// Renders the default thumbnail of `entry` exactly as `render_thumbnail/<id>/`
/// does.
pub fn render_default_thumbnail(
    config: &GatewayConfig,
    entry: &ImageEntry,
    saved: &str,
) -> Result<Vec<u8>, String> {
    let source = source::open(&entry.path, &config.source_limits()).map_err(|e| e.to_string())?;
    let size = render::OutputSize::Fit {
        max_w: DEFAULT_THUMBNAIL_SIZE,
        max_h: DEFAULT_THUMBNAIL_SIZE,
    };
    render_query_to_jpeg(
        source.as_ref(),
        saved,
        None,
        None,
        false,
        size,
        &config.render_limits(),
    )
    .map_err(|e| format!("{e:?}"))
}

/// A failed image is tried again only once it changes; it is reported once, then at
/// most this often while it stays broken.
pub const REPORT_FAILURE_EVERY: Duration = Duration::from_secs(3600);

/// The master's thread that keeps the published thumbnails true to the repository
/// and renders the missing ones.
pub struct Publisher {
    config: GatewayConfig,
    repository: Repository,
    cache: ThumbnailCache,
    published: Published,
    rdefs: RdefStore,
    /// Decides which thumbnails nginx may serve without a login.
    access: super::auth::Access,
    /// Images that failed to render, as they were then (the negative cache): without
    /// it every pass (20 a second while events keep coming) would decode them again
    /// and log a warning each time, rotating real history out of the log.
    failures: std::collections::HashMap<u64, Failure>,
    /// Images whose published file is known to have its versioned link, with the
    /// source's mtime then: checked once, not on every pass.
    linked: std::collections::HashMap<u64, std::time::SystemTime>,
}

/// An image that failed to render: its size and mtime then, and when it was reported.
#[derive(Debug, Clone, Copy)]
struct Failure {
    size: u64,
    modified: std::time::SystemTime,
    reported: std::time::Instant,
}

/// What one pass did, for the master's log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub removed: usize,
    pub rendered: usize,
    pub failed: usize,
}

impl Publisher {
    pub fn open(config: GatewayConfig) -> io::Result<Publisher> {
        std::fs::create_dir_all(&config.repository)?;
        let repository = Repository::open(&config.repository, &config.index_dir)?;
        Ok(Publisher {
            cache: ThumbnailCache::new(&config.cache_dir.join("thumbnails")),
            published: Published::new(&config.cache_dir),
            rdefs: RdefStore::new(&config.index_dir),
            access: super::auth::Access::new(config.access.clone()),
            repository,
            config,
            failures: std::collections::HashMap::new(),
            linked: std::collections::HashMap::new(),
        })
    }

    fn publishable(&self, entry: &ImageEntry) -> bool {
        super::auth::publishable_entry(
            &self.access,
            self.repository.root(),
            &self.config.prefix,
            entry,
        )
    }

    /// Removes what is stale, then renders and publishes what is missing. An image
    /// that failed before and has not changed since is skipped, and counted as failed
    /// only once every [`REPORT_FAILURE_EVERY`].
    pub fn pass(&mut self) -> Pass {
        let mut pass = Pass {
            // With access control on, only public images stay published.
            removed: self.published.sweep(|id| {
                self.repository
                    .get(id)
                    .filter(|entry| self.publishable(entry))
            }),
            ..Pass::default()
        };
        let _ = self.repository.rescan();
        for entry in self.repository.list() {
            if !self.publishable(&entry) {
                continue;
            }
            // Current, and its versioned link there (checked once per source mtime):
            // nothing to do. A file published without the link (before versioned
            // URLs were, or by another program version) is published again below,
            // so that the link always names the settings its picture was drawn with.
            if self.published.is_current(&entry) {
                if self.linked.get(&entry.id) == Some(&entry.modified) {
                    continue;
                }
                let version = super::thumbnail_version::of(&entry, &self.rdefs.query(entry.id));
                if self.published.versioned_path(entry.id, &version).exists() {
                    self.linked.insert(entry.id, entry.modified);
                    continue;
                }
            }
            if let Some(failure) = self.failures.get_mut(&entry.id)
                && failure.size == entry.size
                && failure.modified == entry.modified
            {
                if failure.reported.elapsed() >= REPORT_FAILURE_EVERY {
                    failure.reported = std::time::Instant::now();
                    pass.failed += 1;
                }
                continue;
            }
            let saved = self.rdefs.query(entry.id);
            let key = CacheKey::new(&entry, default_thumbnail_variant(&saved));
            let jpeg = match self.cache.get(&key) {
                Some(jpeg) => jpeg.to_vec(),
                // A bad image must not stop the others (nor, panicking, the master).
                None => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    render_default_thumbnail(&self.config, &entry, &saved)
                })) {
                    Ok(Ok(jpeg)) => {
                        let _ = self.cache.put(&key, &jpeg);
                        self.failures.remove(&entry.id);
                        jpeg
                    }
                    _ => {
                        self.failures.insert(
                            entry.id,
                            Failure {
                                size: entry.size,
                                modified: entry.modified,
                                reported: std::time::Instant::now(),
                            },
                        );
                        pass.failed += 1;
                        continue;
                    }
                },
            };
            let version = super::thumbnail_version::of(&entry, &saved);
            if let Ok(true) = self.published.publish(&entry, &jpeg, &version, || {
                // Settings saved meanwhile: this thumbnail is stale already.
                self.repository
                    .get(entry.id)
                    .filter(|_| self.rdefs.query(entry.id) == saved)
            }) {
                pass.rendered += 1;
            }
        }
        pass
    }

    /// Runs passes for ever: at start, after file-system events in the repository,
    /// and every [`SCAN_EVERY`]. `report` hears of passes that changed something.
    pub fn run(mut self, report: impl Fn(Pass)) {
        use notify::Watcher;
        let (tx, rx) = mpsc::channel();
        // Without events (no inotify, a network filesystem) the scans still run.
        let _watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })
        .and_then(|mut w| {
            w.watch(&self.config.repository, notify::RecursiveMode::Recursive)
                .map(|()| w)
        })
        .ok();
        loop {
            let pass = self.pass();
            if pass != Pass::default() {
                report(pass);
            }
            match rx.recv_timeout(SCAN_EVERY) {
                Ok(_) => {
                    // A copy in progress sends many events: take them together.
                    std::thread::sleep(DEBOUNCE);
                    while rx.try_recv().is_ok() {}
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(SCAN_EVERY),
            }
        }
    }
}

/// Starts the publisher on a thread of its own, at a lower CPU priority than the
/// workers (pre-rendering must never slow down requests).
pub fn spawn(config: GatewayConfig, report: impl Fn(Pass) + Send + 'static) -> io::Result<()> {
    let publisher = Publisher::open(config)?;
    std::thread::Builder::new()
        .name("thumbnail-publisher".into())
        .spawn(move || {
            // SAFETY: setpriority on this very thread (Linux: a thread's own nice).
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
            }
            publisher.run(report);
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn entry(path: &Path, id: u64) -> ImageEntry {
        let m = std::fs::metadata(path).unwrap();
        ImageEntry {
            id,
            path: path.to_path_buf(),
            name: "x.tif".into(),
            size: m.len(),
            modified: m.modified().unwrap(),
        }
    }

    #[test]
    fn an_image_that_fails_to_render_is_retried_and_reported_only_once_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let repository = dir.path().join("repository");
        std::fs::create_dir_all(&repository).unwrap();
        let bad = repository.join("bad.tif");
        std::fs::write(&bad, b"II*\0garbage that is no TIFF").unwrap();
        let site = crate::site::Site::new(dir.path());
        let mut settings =
            crate::config::Config::from_text(&site, site.config_file(), String::new(), None)
                .unwrap()
                .settings();
        settings.repository = repository.clone();
        let mut publisher = Publisher::open(GatewayConfig::from_settings(&settings)).unwrap();
        assert_eq!(publisher.pass().failed, 1, "reported the first time");
        for _ in 0..20 {
            assert_eq!(publisher.pass().failed, 0, "not again while unchanged");
        }
        // Changed (another size and mtime): tried, and reported, again.
        std::fs::write(&bad, b"II*\0other garbage, longer than before").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&bad)
            .unwrap()
            .set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(publisher.pass().failed, 1);
        assert_eq!(publisher.pass().failed, 0);
    }

    #[test]
    fn a_file_published_without_its_versioned_link_is_published_again_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let repository = dir.path().join("repository");
        let options = crate::gateway::demo::DemoOptions {
            images: 1,
            size: 32,
            channels: 1,
            ..Default::default()
        };
        crate::gateway::demo::write_demo_images(&repository, &options, &mut |_, _| {}).unwrap();
        let site = crate::site::Site::new(dir.path());
        let mut settings =
            crate::config::Config::from_text(&site, site.config_file(), String::new(), None)
                .unwrap()
                .settings();
        settings.repository = repository.clone();
        let mut publisher = Publisher::open(GatewayConfig::from_settings(&settings)).unwrap();
        assert_eq!(publisher.pass().rendered, 1);
        let entry = publisher.repository.list().pop().unwrap();
        let version = crate::gateway::thumbnail_version::of(&entry, "");
        let link = publisher.published.versioned_path(entry.id, &version);
        assert!(link.is_file());
        assert_eq!(
            publisher.pass().rendered,
            0,
            "nothing to do while both are there"
        );
        // A file published by an older program: current, but without the link.
        std::fs::remove_file(&link).unwrap();
        let mut fresh = Publisher::open(GatewayConfig::from_settings(&settings)).unwrap();
        assert_eq!(fresh.pass().rendered, 1);
        assert!(link.is_file());
        assert_eq!(fresh.pass().rendered, 0);
    }

    #[test]
    fn a_published_file_lives_only_as_long_as_its_source_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("x.tif");
        std::fs::write(&source, b"one").unwrap();
        let published = Published::new(&dir.path().join("cache"));
        let first = entry(&source, 7);
        assert!(!published.is_current(&first));
        assert!(
            published
                .publish(&first, b"jpeg", "aa01", || Some(entry(&source, 7)))
                .unwrap()
        );
        assert_eq!(std::fs::read(published.path(7)).unwrap(), b"jpeg");
        assert!(published.is_current(&first));
        assert_eq!(published.sweep(|_| Some(entry(&source, 7))), 0);
        // The versioned URL's file, named after the URL's query.
        let versioned = published.versioned_path(7, "aa01");
        assert!(versioned.ends_with("v/7?v=aa01.jpg"), "{versioned:?}");
        assert_eq!(std::fs::read(&versioned).unwrap(), b"jpeg");

        // The source changes: the sweep removes the file and its versioned link.
        std::fs::write(&source, b"two, longer").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&source)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(published.sweep(|_| Some(entry(&source, 7))), 2);
        assert!(!published.path(7).exists());
        assert!(!versioned.exists());

        // A source that changes while its thumbnail is being published: not left.
        let old = entry(&source, 7);
        let changed = ImageEntry {
            modified: later + Duration::from_secs(1),
            ..old.clone()
        };
        assert!(
            !published
                .publish(&old, b"jpeg", "bb02", || Some(changed))
                .unwrap()
        );
        assert!(!published.path(7).exists());
        assert!(!published.versioned_path(7, "bb02").exists());

        // Published again under a new version: the old version's link goes at the
        // next sweep, the new one stays.
        published
            .publish(&old, b"jpeg", "cc03", || Some(entry(&source, 7)))
            .unwrap();
        published
            .publish(&old, b"jpeg2", "dd04", || Some(entry(&source, 7)))
            .unwrap();
        assert_eq!(published.sweep(|_| Some(entry(&source, 7))), 1);
        assert!(!published.versioned_path(7, "cc03").exists());
        assert_eq!(
            std::fs::read(published.versioned_path(7, "dd04")).unwrap(),
            b"jpeg2"
        );

        // A removed source: its files go too.
        assert!(published.path(7).exists());
        assert_eq!(published.sweep(|_| None), 2);
        assert!(!published.path(7).exists());
        assert!(!published.versioned_path(7, "dd04").exists());
    }
}
