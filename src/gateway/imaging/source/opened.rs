//! A TIFF source's file kept open across requests, with the strip tables parsed from
//! it, so that a request for a thumbnail reads just its rows: no open, no directory
//! walk, no strip-table parse per request.
//!
//! Kept safely: the file is opened by the same rules as every other image open
//! (`open_file`: a regular file, judged on the descriptor, beneath the repository), and
//! each request first `stat`s the path and compares device, inode, size, mtime and
//! ctime with what the descriptor had when it was opened. A file replaced (a new inode),
//! rewritten or cut short (size or times) is opened and parsed again at once; a file
//! cut short after the check fails only the request reading it (`pread` past the end is
//! "truncated", never a signal). The gateway's cache of sources (a small LRU) bounds how
//! many files a worker keeps open.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, MutexGuard};

use super::strips::StripTable;
use super::tiff::TiffSource;
use super::{SourceError, io_error, open_file};

/// Strip tables kept per open file. A table is a few words per strip; a stack of
/// thousands of pages would otherwise keep all of them: past this many the tables are
/// dropped and parsed again as pages are asked for.
const MAX_TABLES: usize = 64;

/// Which file, in which state: equal only for the same inode, unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The open file and what was parsed from it.
pub(super) struct OpenedFile {
    /// Read with `pread` only (any number of threads at once); its file offset is
    /// used only while `tables` is locked, to parse a directory.
    pub(super) file: File,
    identity: Identity,
    /// Page (IFD) → its strip table, `None` for a page that is not read row by row.
    tables: Mutex<HashMap<u32, Option<Arc<StripTable>>>>,
}

/// The slot a `TiffSource` keeps its open file in.
#[derive(Default)]
pub(super) struct OpenedSlot(Mutex<Option<Arc<OpenedFile>>>);

impl OpenedSlot {
    fn lock(&self) -> MutexGuard<'_, Option<Arc<OpenedFile>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the file kept open (it closes once no read is using it).
    pub(super) fn clear(&self) {
        *self.lock() = None;
    }
}

impl TiffSource {
    /// The file as it is now at the source's path: the one kept open if the path still
    /// names it unchanged (one `stat`), else opened again.
    pub(super) fn opened(&self) -> Result<Arc<OpenedFile>, SourceError> {
        let kept = self.kept_file.lock().clone();
        if let Some(kept) = kept {
            let now = std::fs::metadata(&self.path).map_err(|e| io_error(&self.path, e))?;
            if Identity::of(&now) == kept.identity {
                return Ok(kept);
            }
        }
        let file = open_file(&self.path, &self.limits)?;
        let meta = file.metadata().map_err(|e| io_error(&self.path, e))?;
        let fresh = Arc::new(OpenedFile {
            file,
            identity: Identity::of(&meta),
            tables: Mutex::new(HashMap::new()),
        });
        *self.kept_file.lock() = Some(fresh.clone());
        Ok(fresh)
    }

    /// Page `ifd`'s strip table (see [`TiffSource::strip_table`]), parsed once per
    /// opened file.
    pub(super) fn kept_strip_table(
        &self,
        opened: &OpenedFile,
        ifd: u32,
    ) -> Result<Option<Arc<StripTable>>, SourceError> {
        let mut tables = opened.tables.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(table) = tables.get(&ifd) {
            return Ok(table.clone());
        }
        // The decoder reads through a duplicate of the descriptor, which shares its
        // offset: the lock held keeps any other parse off it meanwhile.
        let mut dup = opened
            .file
            .try_clone()
            .map_err(|e| io_error(&self.path, e))?;
        dup.seek(SeekFrom::Start(0))
            .map_err(|e| io_error(&self.path, e))?;
        let mut decoder = self.decoder_over(BufReader::new(dup))?;
        let table = self.strip_table(&mut decoder, ifd)?.map(Arc::new);
        if tables.len() >= MAX_TABLES {
            tables.clear();
        }
        tables.insert(ifd, table.clone());
        Ok(table)
    }
}
