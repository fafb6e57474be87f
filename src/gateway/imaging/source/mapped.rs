//! Image files mapped into memory for reading rows (thumbnails' sampled rows, whole
//! planes' bands), kept mapped while the worker is busy, and safe when a file is cut
//! short under its mapping.
//!
//! Why: a 95-px thumbnail of a 2048² 3-channel plane reads 1,140 sampled rows. With
//! `pread` that is 1,140 system calls, each copying a 4 KiB row out of the page cache:
//! two thirds of a worker's time. From a kept mapping the rows are read where the page
//! cache holds them, with no call and no copy.
//!
//! The danger: touching a page of a mapping that lies past the end of a file that was
//! truncated after it was mapped raises SIGBUS, whose default action kills the worker
//! (and every request it serves). So a process-wide SIGBUS handler looks up the faulting
//! address among the mappings registered here; for one of ours it maps zeros over the
//! rest of that mapping from the faulting page, so the access completes, and marks the
//! mapping cut. The reader checks the mark after its read ([`MappedFile::is_cut`]) and
//! fails that request as a short `pread` would. A SIGBUS at any other address goes to the handler
//! that was there before (Rust's stack-overflow handler), or to the default action.
//!
//! Bytes between a cut file's new end and the next page boundary read as zeros without
//! a signal, so the reader also compares the file's length after its read
//! ([`MappedFile::still_whole`]).
//!
//! Mappings are keyed by the file's device, inode and length: a file replaced or resized
//! between two requests is mapped afresh, so only a cut during a read takes the handler's
//! path. They are bounded (a file up to [`MAX_MAPPED_FILE`], [`MAX_KEPT_BYTES`] of address
//! space kept): a sparse file of terabytes must not take the worker's address space.
//! The kept mappings are dropped when the worker goes idle ([`release_kept_mappings`]):
//! the file pages they touched count in the worker's RSS.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// How many mappings may be registered at once; more are read with `pread`.
const SLOTS: usize = 64;
/// How many mappings are kept between requests (the worker's source cache holds 16).
const KEPT: usize = 16;
/// The largest file mapped; larger ones are read with `pread`.
pub const MAX_MAPPED_FILE: u64 = 16 << 30;
/// The address space the kept mappings may take together.
const MAX_KEPT_BYTES: u64 = 64 << 30;

/// A registered address range, under a sequence lock: `seq` is odd while the range is
/// written, so the handler reads `start..end` only when `seq` is even and the same
/// before and after (never a start of one mapping with the end of another). `end == 0`
/// is no range. `owned` is taken by whoever registers in the slot.
struct Slot {
    owned: AtomicBool,
    seq: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    cut: AtomicBool,
}

impl Slot {
    /// Publishes `start..end` (or no range: 0..0), resetting the cut mark.
    fn publish(&self, start: usize, end: usize) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        self.cut.store(false, Ordering::Relaxed);
        self.start.store(start, Ordering::Relaxed);
        self.end.store(end, Ordering::Relaxed);
        self.seq.fetch_add(1, Ordering::Release);
    }

    /// The range, if one is published and was not being written while it was read.
    fn range(&self) -> Option<(usize, usize)> {
        let before = self.seq.load(Ordering::Acquire);
        if before % 2 == 1 {
            return None;
        }
        let start = self.start.load(Ordering::Relaxed);
        let end = self.end.load(Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == before && end != 0).then_some((start, end))
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    owned: AtomicBool::new(false),
    seq: AtomicUsize::new(0),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    cut: AtomicBool::new(false),
};
static REGISTERED: [Slot; SLOTS] = [FREE; SLOTS];
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// A read-only mapping of a whole file, registered with the SIGBUS handler.
pub(super) struct MappedFile {
    map: memmap2::Mmap,
    slot: usize,
    identity: (u64, u64, u64),
}

impl MappedFile {
    /// The file's bytes. Bytes of a page past the file's end (after a cut) read as zero:
    /// check [`MappedFile::is_cut`] after reading.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Whether the file was cut short under the mapping: some read of it touched a page
    /// past the file's new end and got zeros.
    pub(super) fn is_cut(&self) -> bool {
        REGISTERED[self.slot].cut.load(Ordering::Acquire)
    }

    /// Whether the file is still at least as long as when it was mapped: a cut that
    /// ends inside a page zeroes that page's tail without a signal. One `fstat`.
    pub(super) fn still_whole(&self, file: &File) -> bool {
        file.metadata().is_ok_and(|m| m.len() >= self.identity.2)
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // Unregistered before `map` unmaps: the range may be reused by the next mmap.
        let slot = &REGISTERED[self.slot];
        slot.publish(0, 0);
        slot.owned.store(false, Ordering::Release);
    }
}

/// Mappings kept between requests, most recently used last.
#[derive(Default)]
struct KeptMappings {
    mappings: VecDeque<Arc<MappedFile>>,
}

impl KeptMappings {
    /// [`KeptMappings::mapping_of`], for the tests.
    #[cfg(test)]
    fn mapping(&mut self, file: &File) -> Option<Arc<MappedFile>> {
        let meta = file.metadata().ok()?;
        self.mapping_of(file, &meta).0
    }

    /// `file` (whose metadata is `meta`) mapped: the kept mapping of the same file
    /// (device, inode, length) unless it was found cut, else a new one, kept. `None`
    /// when it cannot be mapped (an empty or too large file, every slot taken, the
    /// handler not installed, mmap failing): the caller reads with `pread`. With the
    /// mappings it let go, for the caller to drop (unmap) once it no longer holds the
    /// lock.
    fn mapping_of(
        &mut self,
        file: &File,
        meta: &std::fs::Metadata,
    ) -> (Option<Arc<MappedFile>>, Vec<Arc<MappedFile>>) {
        let identity = (meta.dev(), meta.ino(), meta.len());
        let mut dropped = Vec::new();
        if let Some(at) = self.mappings.iter().position(|m| m.identity == identity) {
            let found = self.mappings.remove(at).expect("found");
            if !found.is_cut() {
                self.mappings.push_back(found.clone());
                return (Some(found), dropped);
            }
            dropped.push(found);
        }
        // Another mapping of this file (replaced or resized since) is of no more use.
        let (others, same_file): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.mappings)
            .into_iter()
            .partition(|m| (m.identity.0, m.identity.1) != (identity.0, identity.1));
        self.mappings = others;
        dropped.extend(same_file);
        if identity.2 > MAX_MAPPED_FILE {
            return (None, dropped);
        }
        while self.mappings.len() >= KEPT
            || self.mappings.iter().map(|m| m.identity.2).sum::<u64>() + identity.2 > MAX_KEPT_BYTES
        {
            match self.mappings.pop_front() {
                Some(oldest) => dropped.push(oldest),
                None => break,
            }
        }
        let mapped = map(file, identity).map(Arc::new);
        if let Some(mapped) = &mapped {
            self.mappings.push_back(mapped.clone());
        }
        (mapped, dropped)
    }

    fn forget(&mut self, mapped: &Arc<MappedFile>) {
        self.mappings.retain(|m| !Arc::ptr_eq(m, mapped));
    }
}

/// `file` mapped, from the worker's kept mappings ([`KeptMappings::mapping_of`]). The
/// `fstat` runs before, and the unmapping of what was let go after, the process-wide
/// lock is held: threads wait for each other only for the bookkeeping and a new
/// mapping's mmap.
pub(super) fn kept_mapping(file: &File) -> Option<Arc<MappedFile>> {
    let meta = file.metadata().ok()?;
    let (mapped, dropped) = kept().mapping_of(file, &meta);
    drop(dropped);
    mapped
}

/// Drops `mapped` from the kept mappings (it was found cut).
pub(super) fn forget(mapped: &Arc<MappedFile>) {
    kept().forget(mapped);
}

/// Unmaps every kept mapping (reads in flight keep theirs until they end): the worker
/// went idle, and the file pages the mappings touched count in its RSS.
pub fn release_kept_mappings() {
    let released = std::mem::take(&mut kept().mappings);
    drop(released);
}

fn kept() -> std::sync::MutexGuard<'static, KeptMappings> {
    static KEPT_MAPPINGS: OnceLock<Mutex<KeptMappings>> = OnceLock::new();
    KEPT_MAPPINGS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn map(file: &File, identity: (u64, u64, u64)) -> Option<MappedFile> {
    if identity.2 == 0 || !handler_installed() {
        return None;
    }
    let slot = (0..SLOTS).find(|&i| {
        REGISTERED[i]
            .owned
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })?;
    let registered = &REGISTERED[slot];
    // SAFETY: the mapping is read-only; a file changed under it changes what is read
    // (as with `pread`, the next request sees a new fingerprint), and a file cut under
    // it raises SIGBUS, which `on_sigbus` turns into zeros and the cut mark.
    let map = match unsafe { memmap2::MmapOptions::new().map(file) } {
        Ok(map) if map.len() as u64 == identity.2 => map,
        _ => {
            registered.owned.store(false, Ordering::Release);
            return None;
        }
    };
    let start = map.as_ptr() as usize;
    registered.publish(start, start + map.len());
    Some(MappedFile {
        map,
        slot,
        identity,
    })
}

/// The handler that was installed before ours, called for faults that are not ours.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Installs the SIGBUS handler once per process; false when it could not be.
fn handler_installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        // SAFETY: sysconf is called outside the handler; sigaction with a zeroed
        // struct, an empty mask and our handler is the documented way to install one.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page <= 0 {
                return false;
            }
            PAGE_SIZE.store(page as usize, Ordering::Relaxed);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &action, &mut previous) != 0 {
                return false;
            }
            let _ = PREVIOUS.set(previous);
            true
        }
    })
}

/// The SIGBUS handler: only async-signal-safe work (atomics, mmap, sigaction).
extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo_t for an SA_SIGINFO handler.
    let (code, address) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    // BUS_ADRERR: an access past the end of a mapped file (not a signal sent by a
    // process, whose address means nothing).
    for slot in REGISTERED.iter().filter(|_| code == libc::BUS_ADRERR) {
        let Some((start, end)) = slot.range() else {
            continue;
        };
        if !(start..end).contains(&address) {
            continue;
        }
        // Zeros from the faulting page to the mapping's end, in one call: the read fails
        // anyway, and one anonymous range splits the mapping once, not once per page.
        let from = address & !(page - 1);
        // SAFETY: replaces the rest of our own read-only mapping (inside start..end)
        // with private zeros; the faulting load is retried and reads zero.
        let zeros = unsafe {
            libc::mmap(
                from as *mut libc::c_void,
                end - from,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if zeros != libc::MAP_FAILED {
            slot.cut.store(true, Ordering::Release);
            return;
        }
        break;
    }
    // Not ours (or no page of zeros): what would have happened without us.
    // SAFETY: calls the previous handler as the kernel would have, or restores the
    // default action, under which the retried access kills the process as before.
    unsafe {
        match PREVIOUS.get() {
            Some(previous)
                if previous.sa_flags & libc::SA_SIGINFO != 0
                    && previous.sa_sigaction != libc::SIG_DFL
                    && previous.sa_sigaction != libc::SIG_IGN =>
            {
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(previous.sa_sigaction);
                handler(signal, info, context);
            }
            Some(previous)
                if previous.sa_sigaction != libc::SIG_DFL
                    && previous.sa_sigaction != libc::SIG_IGN =>
            {
                let handler: extern "C" fn(libc::c_int) =
                    std::mem::transmute(previous.sa_sigaction);
                handler(signal);
            }
            _ => {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(len: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tif");
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        (dir, path)
    }

    /// A file cut to a tenth while mapped: reading past the new end neither kills the
    /// process (without the handler this test dies of SIGBUS) nor returns the old
    /// bytes: zeros, and the mapping says it was cut.
    #[test]
    fn a_file_cut_under_its_mapping_reads_zeros_and_is_marked_cut() {
        let (_dir, path) = file_of(64 * 4096);
        let file = File::open(&path).unwrap();
        let mapped = kept_mapping(&file).expect("mapped");
        assert_eq!(mapped.bytes()[5 * 4096], (5 * 4096 % 251) as u8 + 1);
        assert!(!mapped.is_cut());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(6 * 4096)
            .unwrap();
        assert!(
            !mapped.still_whole(&file),
            "shorter than when it was mapped"
        );
        // Inside the new length: still the file's bytes.
        assert_eq!(mapped.bytes()[4096], (4096 % 251) as u8 + 1);
        assert!(!mapped.is_cut());
        // Past it: zeros and the mark, every page of it.
        let past: u64 = (10..64).map(|p| mapped.bytes()[p * 4096 + 7] as u64).sum();
        assert_eq!(past, 0);
        assert!(mapped.is_cut());
        // The next mapping of the file is of its new length, and not cut.
        forget(&mapped);
        let again = kept_mapping(&file).expect("mapped again");
        assert_eq!(again.bytes().len(), 6 * 4096);
        assert!(!again.is_cut());
    }

    /// The same file is mapped once while it is unchanged; a file of another length
    /// gets a mapping of its own; a mapping found cut is never handed out again; the
    /// idle release unmaps them all. (A list of the test's own: the worker's is shared
    /// with the tests that run beside it.)
    #[test]
    fn mappings_are_kept_per_file_never_reused_once_cut_and_released_when_idle() {
        let (_dir, path) = file_of(3 * 4096);
        let file = File::open(&path).unwrap();
        let mut kept = KeptMappings::default();
        let first = kept.mapping(&file).unwrap();
        let second = kept.mapping(&File::open(&path).unwrap()).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "one mapping for one file");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"more")
            .unwrap();
        let grown = kept.mapping(&file).unwrap();
        assert!(!Arc::ptr_eq(&first, &grown));
        assert_eq!(grown.bytes().len(), 3 * 4096 + 4);
        assert_eq!(
            kept.mappings.len(),
            1,
            "the old length's mapping is dropped"
        );
        REGISTERED[grown.slot].cut.store(true, Ordering::Release);
        let after_cut = kept.mapping(&file).unwrap();
        assert!(
            !Arc::ptr_eq(&grown, &after_cut),
            "a cut mapping is mapped anew"
        );
        assert!(!after_cut.is_cut());
        kept.mappings.clear();
        assert!(!Arc::ptr_eq(&after_cut, &kept.mapping(&file).unwrap()));
    }

    /// Past the caps, files are read with `pread` (no mapping), and the kept ones stay
    /// within the address space allowed.
    #[test]
    fn files_past_the_caps_are_not_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let huge = dir.path().join("sparse.tif");
        let file = File::create(&huge).unwrap();
        file.set_len(MAX_MAPPED_FILE + 1).unwrap();
        let mut kept = KeptMappings::default();
        assert!(kept.mapping(&File::open(&huge).unwrap()).is_none());
        let mut held = Vec::new();
        for i in 0..5 {
            let path = dir.path().join(format!("{i}.tif"));
            File::create(&path)
                .unwrap()
                .set_len(MAX_MAPPED_FILE)
                .unwrap();
            held.push(kept.mapping(&File::open(&path).unwrap()).unwrap());
            let kept_bytes: u64 = kept.mappings.iter().map(|m| m.identity.2).sum();
            assert!(kept_bytes <= MAX_KEPT_BYTES, "{kept_bytes}");
        }
        assert_eq!(
            kept.mappings.len(),
            (MAX_KEPT_BYTES / MAX_MAPPED_FILE) as usize
        );
    }

    /// A SIGBUS that is not at one of our mappings kills the process as it would
    /// without our handler (run in a child: this test's own binary, for this test).
    #[test]
    fn a_sigbus_elsewhere_still_kills_the_process() {
        use std::os::unix::process::ExitStatusExt;
        const CHILD: &str = "OMERO_WEBCTL_TEST_FOREIGN_SIGBUS";
        if std::env::var_os(CHILD).is_some() {
            let (_dir, path) = file_of(16 * 4096);
            let file = File::open(&path).unwrap();
            let ours = kept_mapping(&file).expect("the handler is installed");
            // SAFETY: a mapping of our own that the handler does not know of.
            let foreign = unsafe { memmap2::Mmap::map(&file).unwrap() };
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(4096)
                .unwrap();
            let touched = std::hint::black_box(foreign[8 * 4096]);
            drop(ours);
            eprintln!("survived a foreign SIGBUS, read {touched}");
            std::process::exit(0);
        }
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        // SAFETY: setrlimit is async-signal-safe; no core file from the expected death.
        unsafe {
            child.pre_exec(|| {
                let none = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &none);
                Ok(())
            });
        }
        let status = child
            .args([
                "gateway::imaging::source::mapped::tests::a_sigbus_elsewhere_still_kills_the_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert_eq!(
            status.status.signal(),
            Some(libc::SIGBUS),
            "{status:?}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }

    #[test]
    fn an_empty_file_is_not_mapped() {
        let (_dir, path) = file_of(0);
        assert!(kept_mapping(&File::open(&path).unwrap()).is_none());
    }
}
