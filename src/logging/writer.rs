//! The master's log writer: appends formatted lines to `OMEROweb.log` and rotates it
//! by size. Only the master writes, so unlike OMERO's concurrent-log-handler no lock
//! file is needed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::format::format_line;
use super::record::Record;

/// The file name OMERO.web uses, kept so that existing habits and tools still work.
pub const LOG_FILE_NAME: &str = "OMEROweb.log";

pub struct LogWriter {
    path: PathBuf,
    file: BufWriter<File>,
    /// Bytes in the current file, tracked to decide rotation without a stat per line.
    size: u64,
    max_bytes: u64,
    backups: u32,
    tee_stderr: bool,
}

impl LogWriter {
    /// Creates `dir` if needed and opens `dir/OMEROweb.log` for appending.
    /// `max_bytes` 0 disables rotation; `backups` 0 truncates in place on rotation.
    pub fn open(dir: &Path, max_bytes: u64, backups: u32) -> io::Result<LogWriter> {
        fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE_NAME);
        let (file, size) = open_append(&path)?;
        Ok(LogWriter {
            path,
            file: BufWriter::new(file),
            size,
            max_bytes,
            backups,
            tee_stderr: false,
        })
    }

    /// Also copy every line to stderr (`start --foreground`).
    pub fn tee_stderr(&mut self, on: bool) {
        self.tee_stderr = on;
    }

    /// Path of the live log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of backup `n` (`OMEROweb.log.n`).
    pub fn backup_path(&self, n: u32) -> PathBuf {
        backup_path(&self.path, n)
    }

    /// Writes one record in OMERO's line format.
    pub fn write(&mut self, rec: &Record) -> io::Result<()> {
        self.write_raw_line(&format_line(rec))
    }

    /// Writes one already formatted line; a trailing newline is added if missing.
    /// A multi-line message stays together in one file.
    pub fn write_raw_line(&mut self, line: &str) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        if !line.ends_with('\n') {
            bytes.push(b'\n');
        }
        let len = bytes.len() as u64;
        // Rotate before the line so no line is split across files. A line larger than
        // max_bytes still goes into a file of its own rather than rotating forever.
        if self.max_bytes > 0 && self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&bytes)?;
        // Flushed per line: the TUI and `start` tail the file live.
        self.file.flush()?;
        self.size += len;
        if self.tee_stderr {
            // Best effort: a closed stderr must not stop the file log.
            let _ = io::stderr().write_all(&bytes);
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Reopens the file by name (SIGUSR1 / control command): after an external
    /// logrotate moved the file away, new lines go to a fresh file at the old path.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let (file, size) = open_append(&self.path)?;
        self.file = BufWriter::new(file);
        self.size = size;
        Ok(())
    }

    /// Shifts `.1`…`.{backups-1}` up by one (the oldest drops off), moves the live
    /// file to `.1` and starts a fresh one.
    fn rotate(&mut self) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        self.file.flush()?;
        if self.backups == 0 {
            let file = OpenOptions::new()
                .write(true)
                .truncate(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&self.path)?;
            drop(file);
        } else {
            for n in (1..self.backups).rev() {
                rename_if_exists(&backup_path(&self.path, n), &backup_path(&self.path, n + 1))?;
            }
            rename_if_exists(&self.path, &backup_path(&self.path, 1))?;
        }
        // Append mode on the same path: after truncation the old handle's O_APPEND
        // would also work, but reopening covers both cases the same way.
        let (file, size) = open_append(&self.path)?;
        self.file = BufWriter::new(file);
        self.size = size;
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.file.flush();
    }
}

/// Opens the log for appending, never through a symlink (the log lives in a directory
/// the site's owner can write: a planted link fails with ELOOP instead of steering us).
fn open_append(path: &Path) -> io::Result<(File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            let e = crate::fsutil::explain_refused_link(e);
            io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        })?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// `OMEROweb.log.N`: the name of the Nth backup of a rotated log (also Gunicorn's).
pub(crate) fn backup_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    #[test]
    fn creates_dir_and_appends() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("var/log");
        let mut w = LogWriter::open(&dir, 0, 3).unwrap();
        w.write_raw_line("one").unwrap();
        drop(w);
        let mut w = LogWriter::open(&dir, 0, 3).unwrap();
        w.write_raw_line("two\n").unwrap();
        assert_eq!(read(&dir.join(LOG_FILE_NAME)), "one\ntwo\n");
    }

    #[test]
    fn a_log_that_is_a_symlink_is_refused_and_its_target_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let dir = tmp.path().join("var/log");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(LOG_FILE_NAME)).unwrap();
        let err = LogWriter::open(&dir, 0, 3)
            .err()
            .expect("a link is refused");
        assert!(
            err.to_string()
                .contains("OMEROweb.log: is a symlink; refused"),
            "{err}"
        );
        assert_eq!(read(&victim), "keep");
    }

    #[test]
    fn writes_formatted_records() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(tmp.path(), 0, 0).unwrap();
        let rec = Record::now(super::super::Level::Error, "omeroweb", "f():1", "boom");
        w.write(&rec).unwrap();
        let text = read(w.path());
        assert!(text.ends_with(" f():1 boom\n"), "{text:?}");
        assert_eq!(
            super::super::parse_level(text.trim_end()),
            Some(super::super::Level::Error)
        );
    }

    #[test]
    fn rotation_keeps_exactly_n_backups_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        // Each line is 10 bytes; 35 bytes hold 3 lines.
        let mut w = LogWriter::open(tmp.path(), 35, 3).unwrap();
        for i in 0..40 {
            w.write_raw_line(&format!("line {i:04}")).unwrap();
        }
        assert!(w.backup_path(3).exists());
        assert!(!w.backup_path(4).exists());
        // Oldest to newest: .3, .2, .1, live; together a contiguous run ending at 39.
        let mut all = Vec::new();
        for path in [w.backup_path(3), w.backup_path(2), w.backup_path(1)]
            .into_iter()
            .chain([w.path().to_path_buf()])
        {
            let text = read(&path);
            assert!(text.len() <= 35, "{path:?} is {} bytes", text.len());
            assert!(text.ends_with('\n'), "{path:?} ends mid-line");
            all.extend(text.lines().map(str::to_string));
        }
        let expected: Vec<String> = (30..40).map(|i| format!("line {i:04}")).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn zero_backups_truncates_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(tmp.path(), 25, 0).unwrap();
        for i in 0..5 {
            w.write_raw_line(&format!("line {i:04}")).unwrap();
        }
        assert_eq!(read(w.path()), "line 0004\n");
        assert!(!w.backup_path(1).exists());
    }

    #[test]
    fn oversized_line_gets_a_file_of_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(tmp.path(), 10, 2).unwrap();
        w.write_raw_line("short").unwrap();
        let long = "x".repeat(30);
        w.write_raw_line(&long).unwrap();
        w.write_raw_line("after").unwrap();
        assert_eq!(read(&w.backup_path(2)), "short\n");
        assert_eq!(read(&w.backup_path(1)), format!("{long}\n"));
        assert_eq!(read(w.path()), "after\n");
    }

    #[test]
    fn multi_line_message_is_not_split() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(tmp.path(), 15, 1).unwrap();
        w.write_raw_line("first").unwrap();
        w.write_raw_line("trace\n  frame\n").unwrap();
        assert_eq!(read(&w.backup_path(1)), "first\n");
        assert_eq!(read(w.path()), "trace\n  frame\n");
    }

    #[test]
    fn reopen_after_external_rename_writes_a_new_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(tmp.path(), 0, 0).unwrap();
        w.write_raw_line("before").unwrap();
        let moved = tmp.path().join("OMEROweb.log-20240501");
        fs::rename(w.path(), &moved).unwrap();
        // Without a reopen the line follows the moved file, as with any open handle.
        w.write_raw_line("late").unwrap();
        w.reopen().unwrap();
        w.write_raw_line("after").unwrap();
        assert_eq!(read(&moved), "before\nlate\n");
        assert_eq!(read(w.path()), "after\n");
    }

    #[test]
    fn reopen_recounts_size_for_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(tmp.path(), 15, 1).unwrap();
        w.write_raw_line("123456789").unwrap();
        // Someone else (copytruncate) empties the file.
        File::create(w.path()).unwrap();
        w.reopen().unwrap();
        w.write_raw_line("abcdefghi").unwrap();
        assert!(!w.backup_path(1).exists());
        assert_eq!(read(w.path()), "abcdefghi\n");
    }
}
