//! Level counts over a log file, for `diagnostics` ("12 errors, 40 warnings in
//! OMEROweb.log").

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use super::format::parse_level;
use super::record::Level;

/// Lines per level. Lines not in OMERO's shape (traceback continuations, foreign
/// text) are counted in `other`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LevelCounts {
    pub debug: u64,
    pub info: u64,
    pub warning: u64,
    pub error: u64,
    pub critical: u64,
    pub other: u64,
}

impl LevelCounts {
    /// ERROR and CRITICAL lines.
    pub fn errors(&self) -> u64 {
        self.error + self.critical
    }

    /// WARNING lines.
    pub fn warnings(&self) -> u64 {
        self.warning
    }

    pub fn add(&mut self, level: Option<Level>) {
        match level {
            Some(Level::Debug) => self.debug += 1,
            Some(Level::Info) => self.info += 1,
            Some(Level::Warning) => self.warning += 1,
            Some(Level::Error) => self.error += 1,
            Some(Level::Critical) => self.critical += 1,
            None => self.other += 1,
        }
    }
}

/// Counts the lines of `path` by level, streaming (the log may be hundreds of MB).
pub fn count_levels(path: impl AsRef<Path>) -> io::Result<LevelCounts> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut counts = LevelCounts::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(counts);
        }
        // The level sits in the ASCII prefix, so invalid UTF-8 later on is harmless.
        counts.add(parse_level(&String::from_utf8_lossy(&line)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::format::format_line;
    use crate::logging::record::Record;

    #[test]
    fn counts_each_level() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("OMEROweb.log");
        let mut text = String::new();
        for level in [
            Level::Info,
            Level::Warning,
            Level::Error,
            Level::Critical,
            Level::Warning,
            Level::Debug,
        ] {
            text.push_str(&format_line(&Record::now(level, "x", "f():1", "m")));
            text.push('\n');
        }
        text.push_str("Traceback (most recent call last):\n  File \"x\"\n");
        std::fs::write(&path, text).unwrap();
        let counts = count_levels(&path).unwrap();
        assert_eq!(counts.errors(), 2);
        assert_eq!(counts.warnings(), 2);
        assert_eq!(
            counts,
            LevelCounts {
                debug: 1,
                info: 1,
                warning: 2,
                error: 1,
                critical: 1,
                other: 2,
            }
        );
    }
}
