//! Live tailing of `OMEROweb.log` for the TUI's Log tab and diagnostics, and
//! [`tail_lines`] for showing why `start` failed.
//!
//! The follower keeps the file open and polls it. Rotation by rename is seen as the
//! path naming a different inode: the old handle is drained to its end first, then any
//! backups rotated out since (the writer may rotate several times between two polls),
//! then the new file from 0. Truncation in place (copytruncate, or rotation with 0
//! backups) is seen as the size shrinking below the read offset. Callers poll on their
//! own clock (the TUI at about 4 Hz), so no file-watch dependency is needed.

use std::collections::VecDeque;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::writer::backup_path;

/// Most bytes one `poll` reads, so a huge backlog cannot stall the caller.
pub const DEFAULT_MAX_READ: usize = 1 << 20;

/// Chunk size for scanning a file backwards.
const BACK_CHUNK: u64 = 8192;

/// Where a new follower starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only lines completed after `open` (a line being written at that moment counts).
    End,
    /// The last `n` complete lines, then everything new.
    LastLines(usize),
    /// From a byte offset remembered earlier (from 0 if the file is now shorter: it
    /// was rotated or truncated since).
    At(u64),
}

pub struct LogFollower {
    path: PathBuf,
    file: Option<File>,
    /// (device, inode) of `file`, to notice that the path now names another file.
    id: (u64, u64),
    offset: u64,
    /// Bytes after the last newline read so far: held back until the line completes.
    partial: Vec<u8>,
    max_read: usize,
    /// Files rotated out after the one we were reading and before the one the path
    /// names now (the writer rotated more than once between two polls), oldest first,
    /// held open so that further renames cannot take them away.
    rotated_between: VecDeque<File>,
    /// `file` is one of those, not the file at the path.
    reading_rotated: bool,
    /// The file the path named when the rotation was seen, to read after those.
    after_rotated: Option<File>,
}

impl LogFollower {
    /// Opens `path` for following. A missing file is not an error: it is read from its
    /// start once it appears.
    pub fn open(path: impl Into<PathBuf>, start: Start) -> io::Result<LogFollower> {
        let mut follower = LogFollower {
            path: path.into(),
            file: None,
            id: (0, 0),
            offset: 0,
            partial: Vec::new(),
            max_read: DEFAULT_MAX_READ,
            rotated_between: VecDeque::new(),
            reading_rotated: false,
            after_rotated: None,
        };
        match File::open(&follower.path) {
            Ok(file) => {
                let meta = file.metadata()?;
                let end = after_last_newline(&file, meta.len())?;
                follower.offset = match start {
                    Start::End => end,
                    Start::LastLines(n) => lines_start(&file, end, n)?,
                    Start::At(offset) if offset <= meta.len() => offset,
                    Start::At(_) => 0,
                };
                follower.id = identity(&meta);
                follower.file = Some(file);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(follower)
    }

    /// Changes the per-poll read bound (at least 1 byte).
    pub fn with_max_read(mut self, bytes: usize) -> LogFollower {
        self.max_read = bytes.max(1);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// New complete lines since the last call (without their newline), oldest first.
    /// Reads at most the configured bound; call again to get the rest.
    pub fn poll(&mut self) -> io::Result<Vec<String>> {
        let mut lines = Vec::new();
        let mut budget = self.max_read;
        if self.file.is_none() && !self.open_current()? {
            return Ok(lines);
        }
        loop {
            let len = self.file_len()?;
            if len < self.offset {
                // Truncated in place: what was held back belongs to content now gone.
                self.offset = 0;
                self.partial.clear();
            }
            self.read_to(len, &mut budget, &mut lines)?;
            if self.offset < len {
                return Ok(lines);
            }
            if !self.reading_rotated {
                if !self.path_moved()? {
                    return Ok(lines);
                }
                // The path names a new file. The writer may have appended to the old
                // one between our read and its rename, so drain it again first.
                if self.file_len()? > self.offset {
                    continue;
                }
                let (between, current) = self.files_after_rotation()?;
                self.rotated_between = between;
                self.after_rotated = current;
            }
            if !self.partial.is_empty() {
                // The old file ended without a newline; nothing will complete it.
                lines.push(to_line(std::mem::take(&mut self.partial)));
            }
            self.file = None;
            if let Some(next) = self.rotated_between.pop_front() {
                self.id = identity(&next.metadata()?);
                self.file = Some(next);
                self.offset = 0;
                self.reading_rotated = true;
            } else {
                self.reading_rotated = false;
                match self.after_rotated.take() {
                    Some(current) => {
                        self.id = identity(&current.metadata()?);
                        self.file = Some(current);
                        self.offset = 0;
                    }
                    None if !self.open_current()? => return Ok(lines),
                    None => {}
                }
            }
            if budget == 0 {
                return Ok(lines);
            }
        }
    }

    /// After a rotation, the files to read next: the numbered backups
    /// (`OMEROweb.log.N`) newer than the one we were reading, which were written and
    /// rotated out while we were not looking (oldest first), and the file the path
    /// names now. All are opened, so later renames cannot take them away. No backups
    /// are queued when ours is no longer among them (deleted as the oldest, or moved by
    /// another tool).
    ///
    /// The backups are scanned from the newest (`.1`) up to ours. A rotation during the
    /// scan moves every file one place up, away from the positions already scanned, so
    /// an upward scan never skips a file; it can only meet one twice, which is kept
    /// once (by identity). The view is taken again if the path changed meanwhile, and
    /// a writer that never stops rotating gets the last scan, which still misses nothing.
    fn files_after_rotation(&self) -> io::Result<(VecDeque<File>, Option<File>)> {
        const MOST_BACKUPS: u32 = 1000;
        let id_of = |path: &Path| fs::metadata(path).ok().map(|m| identity(&m));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = match File::open(&self.path) {
                Ok(file) => Some(file),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            let current_id = match &current {
                Some(file) => Some(identity(&file.metadata()?)),
                None => None,
            };
            let mut newer: Vec<((u64, u64), File)> = Vec::new();
            let mut found_ours = false;
            for n in 1..=MOST_BACKUPS {
                let file = match File::open(backup_path(&self.path, n)) {
                    Ok(file) => file,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) => return Err(e),
                };
                let id = identity(&file.metadata()?);
                if id == self.id {
                    found_ours = true;
                    break;
                }
                if Some(id) != current_id && newer.iter().all(|(seen, _)| *seen != id) {
                    newer.push((id, file));
                }
            }
            let between = if found_ours {
                newer.into_iter().rev().map(|(_, file)| file).collect()
            } else {
                VecDeque::new()
            };
            if id_of(&self.path) == current_id || attempt == 100 {
                return Ok((between, current));
            }
        }
    }

    /// Opens whatever the path names now and reads it from 0. `false` if it is missing.
    fn open_current(&mut self) -> io::Result<bool> {
        match File::open(&self.path) {
            Ok(file) => {
                self.id = identity(&file.metadata()?);
                self.file = Some(file);
                self.offset = 0;
                self.partial.clear();
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the path names no file now while a handle is still read: the log was
    /// deleted (or moved away) and not recreated, so what is shown comes from a file
    /// nobody can open any more, until the writer reopens its logs.
    pub fn reading_deleted_file(&self) -> bool {
        self.file.is_some()
            && matches!(fs::metadata(&self.path), Err(e) if e.kind() == io::ErrorKind::NotFound)
    }

    fn file_len(&self) -> io::Result<u64> {
        match &self.file {
            Some(file) => Ok(file.metadata()?.len()),
            None => Ok(0),
        }
    }

    fn path_moved(&self) -> io::Result<bool> {
        match fs::metadata(&self.path) {
            Ok(meta) => Ok(identity(&meta) != self.id),
            // Renamed away and not yet recreated: keep the old handle for now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads from the offset towards `len`, within `budget`, splitting complete lines.
    fn read_to(&mut self, len: u64, budget: &mut usize, lines: &mut Vec<String>) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let want = (len.saturating_sub(self.offset)).min(*budget as u64) as usize;
        if want == 0 {
            return Ok(());
        }
        let mut buf = vec![0; want];
        let got = read_at_most(file, &mut buf, self.offset)?;
        buf.truncate(got);
        self.offset += got as u64;
        *budget -= got;
        let mut rest = buf.as_slice();
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..nl]);
            lines.push(to_line(line));
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > self.max_read {
            // Bounded memory: a runaway line without newlines is shown in pieces.
            lines.push(to_line(std::mem::take(&mut self.partial)));
        }
        Ok(())
    }
}

/// The last `n` lines of `path` (an unterminated last line counts), oldest first.
/// Reads backwards from the end, so the cost does not depend on the file's size.
pub fn tail_lines(path: impl AsRef<Path>, n: usize) -> io::Result<Vec<String>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = lines_start(&file, len, n)?;
    let mut buf = vec![0; (len - start) as usize];
    let got = read_at_most(&file, &mut buf, start)?;
    buf.truncate(got);
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    Ok(buf
        .split(|&b| b == b'\n')
        .map(|l| to_line(l.to_vec()))
        .collect())
}

fn identity(meta: &Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

fn to_line(mut bytes: Vec<u8>) -> String {
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns the count.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Calls `visit(absolute_offset, byte)` for bytes before `end`, last first, until it
/// returns `Some`.
fn scan_back<T>(
    file: &File,
    end: u64,
    mut visit: impl FnMut(u64, u8) -> Option<T>,
) -> io::Result<Option<T>> {
    let mut hi = end;
    let mut buf = vec![0; BACK_CHUNK as usize];
    while hi > 0 {
        let lo = hi.saturating_sub(BACK_CHUNK);
        let chunk = &mut buf[..(hi - lo) as usize];
        let got = read_at_most(file, chunk, lo)?;
        for i in (0..got).rev() {
            if let Some(found) = visit(lo + i as u64, chunk[i]) {
                return Ok(Some(found));
            }
        }
        hi = lo;
    }
    Ok(None)
}

/// Offset just after the last newline before `len` (0 if there is none).
fn after_last_newline(file: &File, len: u64) -> io::Result<u64> {
    Ok(scan_back(file, len, |at, b| (b == b'\n').then_some(at + 1))?.unwrap_or(0))
}

/// Offset where the last `n` lines before `end` begin. A newline right at `end - 1`
/// terminates the last line rather than separating it from a following one.
fn lines_start(file: &File, end: u64, n: usize) -> io::Result<u64> {
    if n == 0 {
        return Ok(end);
    }
    let mut seen = 0;
    let found = scan_back(file, end, |at, b| {
        if b != b'\n' || at + 1 == end {
            return None;
        }
        seen += 1;
        (seen == n).then_some(at + 1)
    })?;
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::writer::{LOG_FILE_NAME, LogWriter};
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn holds_back_partial_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        append(&path, "");
        let mut f = LogFollower::open(&path, Start::End).unwrap();
        assert!(f.poll().unwrap().is_empty());
        append(&path, "a\nb");
        assert_eq!(f.poll().unwrap(), strings(&["a"]));
        assert!(f.poll().unwrap().is_empty());
        append(&path, "c\r\nd\n");
        assert_eq!(f.poll().unwrap(), strings(&["bc", "d"]));
    }

    #[test]
    fn a_deleted_file_is_told_and_a_recreated_one_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        append(&path, "one\n");
        let mut f = LogFollower::open(&path, Start::LastLines(10)).unwrap();
        assert_eq!(f.poll().unwrap(), strings(&["one"]));
        assert!(!f.reading_deleted_file());
        // The writer keeps its handle after the unlink; so do we, and say so.
        let mut writer = fs::OpenOptions::new().append(true).open(&path).unwrap();
        fs::remove_file(&path).unwrap();
        writer.write_all(b"into the void\n").unwrap();
        assert_eq!(f.poll().unwrap(), strings(&["into the void"]));
        assert!(f.reading_deleted_file());
        append(&path, "fresh\n");
        assert_eq!(f.poll().unwrap(), strings(&["fresh"]));
        assert!(!f.reading_deleted_file());
    }

    #[test]
    fn starts_at_a_remembered_offset_or_from_zero_after_a_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        append(&path, "old\nnew\n");
        let mut at = LogFollower::open(&path, Start::At(4)).unwrap();
        assert_eq!(at.poll().unwrap(), strings(&["new"]));
        let mut past_end = LogFollower::open(&path, Start::At(999)).unwrap();
        assert_eq!(past_end.poll().unwrap(), strings(&["old", "new"]));
    }

    #[test]
    fn starts_at_end_or_last_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        append(&path, "1\n2\n3\n4\npart");
        let mut end = LogFollower::open(&path, Start::End).unwrap();
        let mut last = LogFollower::open(&path, Start::LastLines(2)).unwrap();
        let mut many = LogFollower::open(&path, Start::LastLines(99)).unwrap();
        assert!(end.poll().unwrap().is_empty());
        assert_eq!(last.poll().unwrap(), strings(&["3", "4"]));
        assert_eq!(many.poll().unwrap(), strings(&["1", "2", "3", "4"]));
        append(&path, "ial\n");
        // The line being written when the follower opened is delivered whole.
        assert_eq!(end.poll().unwrap(), strings(&["partial"]));
        assert_eq!(last.poll().unwrap(), strings(&["partial"]));
    }

    #[test]
    fn waits_for_a_missing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        let mut f = LogFollower::open(&path, Start::LastLines(10)).unwrap();
        assert!(f.poll().unwrap().is_empty());
        append(&path, "first\n");
        assert_eq!(f.poll().unwrap(), strings(&["first"]));
    }

    #[test]
    fn survives_rotation_by_rename() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        append(&path, "a\n");
        let mut f = LogFollower::open(&path, Start::LastLines(5)).unwrap();
        assert_eq!(f.poll().unwrap(), strings(&["a"]));
        // Written after our last read, then rotated away before the next poll.
        append(&path, "b\nc\n");
        fs::rename(&path, tmp.path().join("log.1")).unwrap();
        assert_eq!(f.poll().unwrap(), strings(&["b", "c"]));
        append(&path, "d\n");
        assert_eq!(f.poll().unwrap(), strings(&["d"]));
        append(&path, "e\n");
        assert_eq!(f.poll().unwrap(), strings(&["e"]));
    }

    #[test]
    fn old_file_remainder_comes_before_new_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        append(&path, "");
        let mut f = LogFollower::open(&path, Start::End).unwrap();
        append(&path, "old1\nold2\nunterminated");
        fs::rename(&path, tmp.path().join("log.1")).unwrap();
        append(&path, "new1\n");
        assert_eq!(
            f.poll().unwrap(),
            strings(&["old1", "old2", "unterminated", "new1"])
        );
    }

    #[test]
    fn restarts_after_truncation() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        append(&path, "");
        let mut f = LogFollower::open(&path, Start::End).unwrap();
        append(&path, "one line\nanother line\n");
        assert_eq!(f.poll().unwrap().len(), 2);
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, "x\n");
        assert_eq!(f.poll().unwrap(), strings(&["x"]));
        append(&path, "y\n");
        assert_eq!(f.poll().unwrap(), strings(&["y"]));
    }

    #[test]
    fn reads_are_bounded_per_poll() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        append(&path, "");
        let mut f = LogFollower::open(&path, Start::End)
            .unwrap()
            .with_max_read(10);
        for i in 0..5 {
            append(&path, &format!("line {i:03}\n"));
        }
        let mut got = Vec::new();
        let mut polls = 0;
        while got.len() < 5 {
            got.extend(f.poll().unwrap());
            polls += 1;
            assert!(polls < 20, "{got:?}");
        }
        assert!(polls >= 5, "{polls}");
        assert_eq!(
            got,
            (0..5).map(|i| format!("line {i:03}")).collect::<Vec<_>>()
        );
    }

    #[test]
    fn no_loss_or_duplicates_across_writer_rotations() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(tmp.path(), 300, 3).unwrap();
        let path = tmp.path().join(LOG_FILE_NAME);
        let mut f = LogFollower::open(&path, Start::End)
            .unwrap()
            .with_max_read(100);
        let mut got = Vec::new();
        for i in 0..1000 {
            w.write_raw_line(&format!("line number {i:04}")).unwrap();
            if i % 7 == 6 {
                // Drain completely, across as many bounded polls as it takes.
                loop {
                    let batch = f.poll().unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    got.extend(batch);
                }
            }
        }
        got.extend(f.poll().unwrap());
        got.extend(f.poll().unwrap());
        let expected: Vec<String> = (0..1000).map(|i| format!("line number {i:04}")).collect();
        assert!(w.backup_path(3).exists());
        assert_eq!(got.len(), expected.len());
        assert_eq!(got, expected);
    }

    #[test]
    fn every_line_exactly_once_while_a_writer_rotates_at_full_speed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(LOG_FILE_NAME);
        // Rotation every ~40 lines, with backups enough that none is deleted: the
        // follower, polling on its own clock, often misses several rotations.
        let mut writer = LogWriter::open(tmp.path(), 1000, 900).unwrap();
        let mut follower = LogFollower::open(&path, Start::End).unwrap();
        const LINES: usize = 20_000;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done_writing = done.clone();
        let writing = std::thread::spawn(move || {
            for i in 0..LINES {
                writer.write_raw_line(&format!("line {i:05}")).unwrap();
            }
            done_writing.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut got = Vec::new();
        let mut polls = 0;
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst);
            got.extend(follower.poll().unwrap());
            polls += 1;
            if finished {
                got.extend(follower.poll().unwrap());
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
        writing.join().unwrap();
        let expected: Vec<String> = (0..LINES).map(|i| format!("line {i:05}")).collect();
        assert!(polls > 1);
        assert_eq!(got.len(), expected.len(), "lines lost or doubled");
        assert_eq!(got, expected);
    }

    #[test]
    fn tail_lines_reads_from_the_end() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        // Enough to span several backward chunks.
        let text: String = (0..3000).map(|i| format!("line {i:05}\n")).collect();
        append(&path, &text);
        assert_eq!(
            tail_lines(&path, 3).unwrap(),
            strings(&["line 02997", "line 02998", "line 02999"])
        );
        assert_eq!(tail_lines(&path, 5000).unwrap().len(), 3000);
        assert!(tail_lines(&path, 0).unwrap().is_empty());
        append(&path, "no newline");
        assert_eq!(
            tail_lines(&path, 2).unwrap(),
            strings(&["line 02999", "no newline"])
        );
        let empty = tmp.path().join("empty");
        append(&empty, "");
        assert!(tail_lines(&empty, 3).unwrap().is_empty());
        let missing = tail_lines(tmp.path().join("missing"), 3).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
