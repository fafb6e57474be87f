//! OMEROweb.log: records that workers send to the master, OMERO's line format, the
//! master's rotating writer, and the followers that tail the file live (TUI Log tab,
//! `start` failure reports, diagnostics).

pub mod counts;
pub mod follower;
pub mod format;
pub mod record;
pub mod writer;

pub use counts::{LevelCounts, count_levels};
pub use follower::{LogFollower, Start, tail_lines};
pub use format::{django_request_message, format_line, format_line_with_offset, parse_level};
pub use record::{Here, Level, Record};
pub use writer::{LOG_FILE_NAME, LogWriter};
