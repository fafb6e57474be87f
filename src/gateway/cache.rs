//! Rendered thumbnails on disk, shared by every worker process.
//!
//! One file per image and variant: `<dir>/<id mod 256, 2 hex>/<id>-<variant>.thumb`
//! (sharded so no directory grows huge). Each file starts with a small header that
//! repeats the whole key — image ID, the source file's size and mtime, the variant —
//! and the payload length, then the JPEG. A lookup whose key does not match the header
//! exactly is a miss, so a changed source invalidates its thumbnails without any
//! bookkeeping, and the next `put` replaces the stale file in place.
//!
//! Writes go to a temp file in the same directory and are renamed over the target, so
//! a reader sees the old file or the new one, never half of one, and concurrent
//! writers of the same key simply race to a whole file. There is no fsync: this is a
//! cache, and a file cut short by a crash fails the payload-length check.
//!
//! Size bound: each `ThumbnailCache` counts the bytes it writes on top of the last
//! measured total; when that passes the bound, or the measurement is a minute old,
//! it measures the directory and deletes the oldest entries (by mtime, i.e. oldest
//! written) down to 90 % of the bound. Other processes' writes are only seen at the
//! next measurement, so the bound is approximate by design (no shared counter, no lock
//! on the hot path).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::repository::ImageEntry;

/// OMERO's default thumbnail size (the server's `thumb_default_size`).
pub const DEFAULT_THUMBNAIL_SIZE: u32 = 96;
/// The disk cache's variant for the default thumbnail under the image's saved
/// rendering settings (`saved`, "" for the imported defaults): saving new settings
/// makes a new thumbnail, as OMERO's thumbnail follows the saved definition.
pub fn default_thumbnail_variant(saved: &str) -> String {
    if saved.is_empty() {
        format!("{DEFAULT_THUMBNAIL_SIZE}")
    } else {
        format!("{DEFAULT_THUMBNAIL_SIZE}|{saved}")
    }
}

/// Default bound on the cache's total size.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

const MAGIC: &[u8; 8] = b"OWCTHMB1";
const HEADER_LEN: usize = 8 + 8 + 8 + 8 + 4 + 2 + 8;
const EXTENSION: &str = "thumb";
const TEMP_PREFIX: &str = ".tmp-";
/// Re-measure the directory at least this often while writing.
const REMEASURE: Duration = Duration::from_secs(60);
/// Temp files older than this are leftovers of a crash.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// Longer encoded variants are replaced by a hash in the file name.
const MAX_NAME_VARIANT: usize = 64;

/// What a cached thumbnail depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub id: u64,
    pub source_size: u64,
    pub source_modified: SystemTime,
    /// Which rendering: size, plane, settings… any string; the caller defines it.
    pub variant: String,
}

impl CacheKey {
    /// The key for a rendering of `entry` (use a fresh entry from `Repository::get`).
    pub fn new(entry: &ImageEntry, variant: impl Into<String>) -> CacheKey {
        CacheKey {
            id: entry.id,
            source_size: entry.size,
            source_modified: entry.modified,
            variant: variant.into(),
        }
    }
}

pub struct ThumbnailCache {
    dir: PathBuf,
    max_bytes: u64,
    usage: Mutex<Usage>,
}

struct Usage {
    bytes: u64,
    measured_at: Option<Instant>,
}

impl ThumbnailCache {
    /// A cache in `dir` (created on first write) bounded to `DEFAULT_MAX_BYTES`.
    /// Give it a directory of its own, e.g. `var/cache/thumbnails`.
    pub fn new(dir: &Path) -> ThumbnailCache {
        ThumbnailCache::with_max_bytes(dir, DEFAULT_MAX_BYTES)
    }

    pub fn with_max_bytes(dir: &Path, max_bytes: u64) -> ThumbnailCache {
        ThumbnailCache {
            dir: dir.to_path_buf(),
            max_bytes,
            usage: Mutex::new(Usage {
                bytes: 0,
                measured_at: None,
            }),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cached JPEG for exactly this key, if any.
    pub fn get(&self, key: &CacheKey) -> Option<Bytes> {
        let data = fs::read(self.path_for(key)).ok()?;
        let start = parse_header(&data, key)?;
        Some(Bytes::from(data).slice(start..))
    }

    /// Stores `jpeg` under `key`, atomically replacing what was there.
    pub fn put(&self, key: &CacheKey, jpeg: &[u8]) -> io::Result<()> {
        let header = header(key, jpeg.len() as u64)?;
        let path = self.path_for(key);
        let shard = path.parent().expect("cache paths have a shard directory");
        fs::create_dir_all(shard)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(shard)?;
        tmp.write_all(&header)?;
        tmp.write_all(jpeg)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        self.account((header.len() + jpeg.len()) as u64);
        Ok(())
    }

    /// Measures the cache and, if it is over the bound, deletes the oldest entries
    /// down to 90 % of it. Returns the bytes in use afterwards.
    pub fn evict(&self) -> io::Result<u64> {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        self.evict_locked(&mut usage)
    }

    fn account(&self, written: u64) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        usage.bytes += written;
        let stale = usage.measured_at.is_none_or(|t| t.elapsed() >= REMEASURE);
        if usage.bytes > self.max_bytes || stale {
            // The entry is written; a failed clean-up is retried on a later put.
            let _ = self.evict_locked(&mut usage);
        }
    }

    fn evict_locked(&self, usage: &mut Usage) -> io::Result<u64> {
        let mut files = Vec::new();
        let mut total = 0u64;
        let shards = match fs::read_dir(&self.dir) {
            Ok(shards) => shards,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                usage.bytes = 0;
                usage.measured_at = Some(Instant::now());
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        for shard in shards.flatten() {
            let name = shard.file_name();
            let is_shard = name.len() == 2
                && name
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
            if !is_shard {
                continue;
            }
            let Ok(entries) = fs::read_dir(shard.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let modified = meta.modified().unwrap_or(UNIX_EPOCH);
                if name.starts_with(TEMP_PREFIX) {
                    let old = modified.elapsed().is_ok_and(|age| age >= STALE_TEMP);
                    if old {
                        let _ = fs::remove_file(entry.path());
                    }
                } else if meta.is_file() && name.ends_with(EXTENSION) {
                    total += meta.len();
                    files.push((modified, meta.len(), entry.path()));
                }
            }
        }
        if total > self.max_bytes {
            let target = self.max_bytes / 10 * 9;
            files.sort();
            for (_, len, path) in files {
                if total <= target {
                    break;
                }
                match fs::remove_file(&path) {
                    Ok(()) => total -= len,
                    // Another worker evicted it first.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => total -= len,
                    Err(_) => {}
                }
            }
        }
        usage.bytes = total;
        usage.measured_at = Some(Instant::now());
        Ok(total)
    }

    fn path_for(&self, key: &CacheKey) -> PathBuf {
        self.dir
            .join(format!("{:02x}", key.id & 0xff))
            .join(format!(
                "{}-{}.{EXTENSION}",
                key.id,
                file_name_variant(&key.variant)
            ))
    }
}

/// An `ETag` value (quoted) for a rendering: it changes with the source file, the
/// variant and the program version (a new renderer may draw different pixels).
pub fn etag(key: &CacheKey) -> String {
    format!("\"{:x}-{}\"", key.id, version(key))
}

/// The hash behind [`etag`] alone (16 hex digits): what a rendering depends on, for
/// URLs that must change when it does (`thumbnail_version`).
pub fn version(key: &CacheKey) -> String {
    let (secs, nanos) = epoch_parts(key.source_modified);
    let mut h = Fnv64::new();
    h.write(&key.source_size.to_le_bytes());
    h.write(&secs.to_le_bytes());
    h.write(&nanos.to_le_bytes());
    h.write(key.variant.as_bytes());
    h.write(&[0]);
    h.write(env!("CARGO_PKG_VERSION").as_bytes());
    format!("{:016x}", h.finish())
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison, as
/// RFC 9110 prescribes for `If-None-Match`; `*` matches anything).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let etag = bare(etag);
    if_none_match
        .split(',')
        .any(|candidate| candidate.trim() == "*" || bare(candidate) == etag)
}

fn header(key: &CacheKey, payload_len: u64) -> io::Result<Vec<u8>> {
    let variant = key.variant.as_bytes();
    let variant_len = u16::try_from(variant.len()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "thumbnail variant is too long")
    })?;
    let (secs, nanos) = epoch_parts(key.source_modified);
    let mut out = Vec::with_capacity(HEADER_LEN + variant.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.id.to_le_bytes());
    out.extend_from_slice(&key.source_size.to_le_bytes());
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&nanos.to_le_bytes());
    out.extend_from_slice(&variant_len.to_le_bytes());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(variant);
    Ok(out)
}

/// Checks a cache file against `key`; returns where the JPEG starts.
fn parse_header(data: &[u8], key: &CacheKey) -> Option<usize> {
    let len_at = HEADER_LEN - 8;
    let payload_len = u64::from_le_bytes(data.get(len_at..HEADER_LEN)?.try_into().ok()?);
    // Everything must match the key byte for byte, and the payload must be whole.
    let expected = header(key, payload_len).ok()?;
    let start = expected.len();
    let whole =
        data.get(..start) == Some(&expected[..]) && (data.len() - start) as u64 == payload_len;
    whole.then_some(start)
}

/// Seconds and nanoseconds relative to the epoch (negative seconds before it).
fn epoch_parts(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            match d.subsec_nanos() {
                0 => (-(d.as_secs() as i64), 0),
                n => (-(d.as_secs() as i64) - 1, 1_000_000_000 - n),
            }
        }
    }
}

/// The variant as it appears in a file name: safe characters kept, others `%XX`,
/// and a hash when long (the header still holds the full variant).
fn file_name_variant(variant: &str) -> String {
    let mut out = String::new();
    for b in variant.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_NAME_VARIANT {
        let mut h = Fnv64::new();
        h.write(variant.as_bytes());
        out = format!("h{:016x}", h.finish());
    }
    out
}

/// FNV-1a, 64 bit: std's hasher is not guaranteed stable across Rust releases, and
/// ETags and file names must not change with the compiler.
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Fnv64 {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(id: u64, size: u64, secs: u64, variant: &str) -> CacheKey {
        CacheKey {
            id,
            source_size: size,
            source_modified: UNIX_EPOCH + Duration::new(secs, 123),
            variant: variant.to_string(),
        }
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for shard in fs::read_dir(dir).unwrap() {
            for f in fs::read_dir(shard.unwrap().path()).unwrap() {
                out.push(f.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }

    #[test]
    fn hit_miss_and_invalidation() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ThumbnailCache::new(&tmp.path().join("thumbs"));
        let k = key(7, 1000, 50, "96");
        assert_eq!(cache.get(&k), None);
        cache.put(&k, b"jpeg-one").unwrap();
        assert_eq!(cache.get(&k).unwrap(), &b"jpeg-one"[..]);
        // Another variant, a changed size, a changed mtime: misses.
        assert_eq!(cache.get(&key(7, 1000, 50, "64")), None);
        assert_eq!(cache.get(&key(7, 1001, 50, "96")), None);
        assert_eq!(cache.get(&key(7, 1000, 51, "96")), None);
        let mut nanos = k.clone();
        nanos.source_modified += Duration::from_nanos(1);
        assert_eq!(cache.get(&nanos), None);
        assert_eq!(cache.get(&key(8, 1000, 50, "96")), None);
        // The new version replaces the old one in the same file.
        let k2 = key(7, 1001, 51, "96");
        cache.put(&k2, b"jpeg-two").unwrap();
        assert_eq!(cache.get(&k2).unwrap(), &b"jpeg-two"[..]);
        assert_eq!(cache.get(&k), None);
        assert_eq!(files_in(cache.dir()), vec!["7-96.thumb"]);
        // Odd and long variants are safe in file names and still exact.
        let odd = key(7, 1, 1, "../../x y/z?");
        let long = key(7, 1, 1, &"w".repeat(500));
        cache.put(&odd, b"odd").unwrap();
        cache.put(&long, b"long").unwrap();
        assert_eq!(cache.get(&odd).unwrap(), &b"odd"[..]);
        assert_eq!(cache.get(&long).unwrap(), &b"long"[..]);
        assert_eq!(files_in(cache.dir()).len(), 3);
        assert!(fs::read_dir(tmp.path().join("thumbs")).unwrap().count() == 1);
    }

    #[test]
    fn truncated_or_foreign_files_are_misses() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ThumbnailCache::new(tmp.path());
        let k = key(3, 10, 10, "96");
        cache.put(&k, b"0123456789").unwrap();
        let path = cache.path_for(&k);
        let data = fs::read(&path).unwrap();
        fs::write(&path, &data[..data.len() - 1]).unwrap();
        assert_eq!(cache.get(&k), None);
        fs::write(&path, b"not a thumbnail").unwrap();
        assert_eq!(cache.get(&k), None);
    }

    #[test]
    fn concurrent_puts_are_atomic() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Arc::new(ThumbnailCache::new(tmp.path()));
        let k = key(1, 5, 5, "96");
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let (cache, k) = (Arc::clone(&cache), k.clone());
                std::thread::spawn(move || {
                    // Each writer's payload is one repeated byte of its own length,
                    // so a mix of two writes is detectable.
                    let payload = vec![t; 10_000 + usize::from(t) * 1000];
                    for _ in 0..30 {
                        cache.put(&k, &payload).unwrap();
                        let got = cache.get(&k).expect("a whole file is always there");
                        let first = got[0];
                        assert_eq!(got.len(), 10_000 + usize::from(first) * 1000);
                        assert!(got.iter().all(|&b| b == first));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // No temp files left behind.
        assert_eq!(files_in(tmp.path()), vec!["1-96.thumb"]);
    }

    #[test]
    fn eviction_removes_the_oldest() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ThumbnailCache::with_max_bytes(tmp.path(), 10_000);
        let payload = vec![0u8; 1000];
        for id in 1..=30u64 {
            cache.put(&key(id, 1, 1, "96"), &payload).unwrap();
            // Distinct mtimes (file timestamps tick at the kernel's clock granularity).
            std::thread::sleep(Duration::from_millis(15));
        }
        let used = cache.evict().unwrap();
        assert!(used <= 10_000, "{used}");
        let kept: Vec<u64> = (1..=30)
            .filter(|&id| cache.get(&key(id, 1, 1, "96")).is_some())
            .collect();
        assert!(kept.len() >= 5, "{kept:?}");
        // What is kept is the newest entries, contiguous up to the last one.
        let first = kept[0];
        assert_eq!(kept, (first..=30).collect::<Vec<_>>());
        // A directory that is not ours is left alone.
        let foreign = tmp.path().join("other");
        fs::create_dir(&foreign).unwrap();
        fs::write(foreign.join("keep.thumb"), vec![0u8; 50_000]).unwrap();
        cache.evict().unwrap();
        assert!(foreign.join("keep.thumb").exists());
    }

    #[test]
    fn etags() {
        let k = key(42, 100, 7, "96");
        let tag = etag(&k);
        assert!(tag.starts_with("\"2a-") && tag.ends_with('"'), "{tag}");
        assert_eq!(tag, etag(&k.clone()));
        assert_ne!(tag, etag(&key(42, 101, 7, "96")));
        assert_ne!(tag, etag(&key(42, 100, 8, "96")));
        assert_ne!(tag, etag(&key(42, 100, 7, "64")));
        assert!(etag_matches(&tag, &tag));
        assert!(etag_matches(&format!("\"x\", W/{tag}"), &tag));
        assert!(etag_matches("*", &tag));
        assert!(!etag_matches("\"x\"", &tag));
    }

    #[test]
    fn epoch_parts_before_the_epoch() {
        assert_eq!(
            epoch_parts(UNIX_EPOCH - Duration::new(1, 250)),
            (-2, 999_999_750)
        );
        assert_eq!(epoch_parts(UNIX_EPOCH - Duration::from_secs(3)), (-3, 0));
    }
}
