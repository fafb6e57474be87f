//! Log tab state: a bounded buffer of the followed file's lines with their levels,
//! follow/pause, a minimum-level filter, and search. Positions are counted from the
//! bottom of the filtered view, so lines arriving while paused or dropping off the top
//! of the buffer do not move what the reader is looking at.

use std::collections::VecDeque;
use std::path::PathBuf;

use crate::config::Settings;
use crate::logging::{Level, parse_level};
use crate::site::Site;
use crate::supervisor::LogFormat;

use super::input::LineInput;

/// Lines kept in memory; older ones are dropped.
pub const MAX_LINES: usize = 10_000;

/// The logs `L` cycles through: the site's own (from its supervisor: OMEROweb.log,
/// and Gunicorn's two on an OMERO.web site), then the private nginx's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    Omero,
    GunicornError,
    GunicornAccess,
    NginxError,
    NginxAccess,
}

impl LogSource {
    pub fn title(self) -> &'static str {
        match self {
            LogSource::Omero => "OMEROweb.log",
            LogSource::GunicornError => "Gunicorn error log",
            LogSource::GunicornAccess => "Gunicorn access log",
            LogSource::NginxError => "nginx error.log",
            LogSource::NginxAccess => "nginx access.log",
        }
    }

    fn of(format: LogFormat) -> LogSource {
        match format {
            LogFormat::Omero => LogSource::Omero,
            LogFormat::GunicornError => LogSource::GunicornError,
            LogFormat::GunicornAccess => LogSource::GunicornAccess,
        }
    }

    /// Every source of a site, in cycling order.
    pub fn all(site: &Site, settings: Option<&Settings>) -> Vec<(LogSource, PathBuf)> {
        let mut sources: Vec<(LogSource, PathBuf)> = crate::supervisor::for_site(site)
            .log_files_with(settings)
            .into_iter()
            .map(|f| (LogSource::of(f.format), f.path))
            .collect();
        sources.push((LogSource::NginxError, site.nginx_dir().join("error.log")));
        sources.push((LogSource::NginxAccess, site.nginx_dir().join("access.log")));
        sources
    }

    /// The source after this one on this site.
    pub fn next(self, site: &Site, settings: Option<&Settings>) -> LogSource {
        let all = LogSource::all(site, settings);
        let i = all.iter().position(|(s, _)| *s == self).unwrap_or(0);
        all[(i + 1) % all.len()].0
    }

    /// The file of this source on this site (OMEROweb.log if the site has no such log).
    pub fn path(self, site: &Site, settings: Option<&Settings>) -> PathBuf {
        let all = LogSource::all(site, settings);
        all.iter()
            .find(|(s, _)| *s == self)
            .unwrap_or(&all[0])
            .1
            .clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub text: String,
    /// Parsed from the line; continuation lines (tracebacks) take the level of the
    /// line they continue.
    pub level: Option<Level>,
}

/// The level of a line of `source`; `None` when the line does not say.
pub fn classify(source: LogSource, line: &str) -> Option<Level> {
    match source {
        LogSource::Omero => parse_level(line),
        LogSource::GunicornError => gunicorn_error_level(line),
        LogSource::NginxError => nginx_error_level(line),
        LogSource::NginxAccess | LogSource::GunicornAccess => access_level(line),
    }
}

/// `[2026-11-30 11:07:22 +0000] [6029] [INFO] Booting worker with pid: 6031`
fn gunicorn_error_level(line: &str) -> Option<Level> {
    let rest = line.strip_prefix('[')?;
    let rest = &rest[rest.find("] [")? + 3..];
    let rest = &rest[rest.find("] [")? + 3..];
    match &rest[..rest.find(']')?] {
        "DEBUG" => Some(Level::Debug),
        "INFO" => Some(Level::Info),
        "WARNING" => Some(Level::Warning),
        "ERROR" => Some(Level::Error),
        "CRITICAL" => Some(Level::Critical),
        _ => None,
    }
}

/// `2024/05/01 12:00:00 [error] 123#0: ...`
fn nginx_error_level(line: &str) -> Option<Level> {
    let start = line.find(" [")? + 2;
    let end = start + line[start..].find(']')?;
    match &line[start..end] {
        "debug" => Some(Level::Debug),
        "info" | "notice" => Some(Level::Info),
        "warn" => Some(Level::Warning),
        "error" => Some(Level::Error),
        "crit" | "alert" | "emerg" => Some(Level::Critical),
        _ => None,
    }
}

/// Combined log format: the status follows the quoted request line. 5xx is an error,
/// 4xx a warning.
fn access_level(line: &str) -> Option<Level> {
    let after_request = line.split('"').nth(2)?;
    let status: u16 = after_request.split_whitespace().next()?.parse().ok()?;
    Some(match status {
        500.. => Level::Error,
        400..=499 => Level::Warning,
        _ => Level::Info,
    })
}

/// The minimum levels `l` cycles through (`None` = everything, unparsed lines too).
pub const LEVEL_FILTERS: [Option<Level>; 4] = [
    None,
    Some(Level::Info),
    Some(Level::Warning),
    Some(Level::Error),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    pub source: LogSource,
    pub path: PathBuf,
    /// Tags the tailer's events; events of an older file are ignored.
    pub generation: u64,
    pub lines: VecDeque<LogLine>,
    /// Lines dropped from the front so far: `dropped + index` numbers a line for good.
    pub dropped: u64,
    pub follow: bool,
    /// Filtered lines between the bottom of the view and the newest line.
    pub offset: usize,
    pub min_level: Option<Level>,
    pub search: String,
    pub search_input: Option<LineInput>,
    /// The search before `/` was pressed, restored by Esc.
    pub search_before: String,
    /// The line (by number) the last jump landed on.
    pub mark: Option<u64>,
    /// Why the file cannot be read.
    pub error: Option<String>,
    /// Long lines wrap (else they are cut at the edge).
    pub wrap: bool,
    /// The file was deleted under its writer: lines still come from the open file.
    pub deleted: bool,
    /// ERROR (and worse) lines that arrived while another tab was shown.
    pub unseen_errors: u64,
}

impl LogView {
    pub fn new(source: LogSource, path: PathBuf) -> LogView {
        LogView {
            source,
            path,
            generation: 0,
            lines: VecDeque::new(),
            dropped: 0,
            follow: true,
            offset: 0,
            min_level: None,
            search: String::new(),
            search_input: None,
            search_before: String::new(),
            mark: None,
            error: None,
            wrap: true,
            deleted: false,
            unseen_errors: 0,
        }
    }

    /// Starts over with another file (or the same one reopened).
    pub fn switch(&mut self, source: LogSource, path: PathBuf) {
        self.source = source;
        self.path = path;
        self.generation += 1;
        self.lines.clear();
        self.dropped = 0;
        self.offset = 0;
        self.follow = true;
        self.mark = None;
        self.error = None;
        self.deleted = false;
        self.unseen_errors = 0;
    }

    fn shown(&self, line: &LogLine) -> bool {
        match self.min_level {
            None => true,
            Some(min) => line.level.is_some_and(|l| l >= min),
        }
    }

    /// Appends lines, dropping the oldest beyond [`MAX_LINES`]. While paused, the
    /// offset grows by the new visible lines so the view stays where it was.
    /// Adds new lines; returns how many are errors (ERROR or worse).
    pub fn push_lines(&mut self, lines: Vec<String>) -> u64 {
        let mut errors = 0;
        let mut last_level = self.lines.back().and_then(|l| l.level);
        for text in lines {
            let record = starts_record(self.source, &text);
            let level = match classify(self.source, &text) {
                Some(level) => Some(level),
                // A continuation line (a traceback under its record) has the record's
                // level, so the level filter keeps it with the record.
                None if !record => last_level,
                None => None,
            };
            last_level = level;
            // Continuation lines of a traceback count with the line they continue.
            if level.is_some_and(|l| l >= Level::Error) && record {
                errors += 1;
            }
            let line = LogLine { text, level };
            if !self.follow && self.shown(&line) {
                self.offset += 1;
            }
            self.lines.push_back(line);
        }
        while self.lines.len() > MAX_LINES {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.offset = self.offset.min(self.filtered().len().saturating_sub(1));
        errors
    }

    /// Indexes (into `lines`) of the lines the filter lets through, oldest first.
    pub fn filtered(&self) -> Vec<usize> {
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| self.shown(l))
            .map(|(i, _)| i)
            .collect()
    }

    /// The lines to draw in a view of `height` rows: indexes into `lines`.
    pub fn window(&self, height: usize) -> Vec<usize> {
        self.window_wrapped(height, None)
    }

    /// The lines that fit in `height` rows of `width` columns when long lines wrap
    /// (`None`: one row each). The bottom line is always whole; a top line that would
    /// only partly fit is left out.
    /// Screen rows line `index` takes at `width` (`None`: cut, one row).
    fn rows_of(&self, index: usize, width: Option<usize>) -> usize {
        match width {
            Some(w) => display_text(&self.lines[index].text)
                .chars()
                .count()
                .div_ceil(w.max(1))
                .max(1),
            None => 1,
        }
    }

    pub fn window_wrapped(&self, height: usize, width: Option<usize>) -> Vec<usize> {
        let filtered = self.filtered();
        let offset = if self.follow { 0 } else { self.offset };
        let end = filtered.len().saturating_sub(offset);
        let mut rows = 0;
        let mut start = end;
        while start > 0 {
            let needed = self.rows_of(filtered[start - 1], width);
            if rows + needed > height && rows > 0 {
                break;
            }
            rows += needed;
            start -= 1;
            if rows >= height {
                break;
            }
        }
        filtered[start..end].to_vec()
    }

    pub fn toggle_follow(&mut self) {
        self.follow = !self.follow;
        if self.follow {
            self.offset = 0;
        }
    }

    /// Scrolls by `delta` lines (negative: towards older lines). Scrolling up pauses.
    pub fn scroll(&mut self, delta: isize, height: usize) {
        // After moving by hand, n/e continue from the view, not from an old jump.
        self.mark = None;
        let max = self.filtered().len().saturating_sub(height.max(1));
        if delta < 0 {
            self.follow = false;
            self.offset = (self.offset + delta.unsigned_abs()).min(max);
        } else {
            self.offset = self.offset.saturating_sub(delta as usize);
        }
    }

    pub fn to_top(&mut self, height: usize) {
        self.follow = false;
        self.mark = None;
        self.offset = self.filtered().len().saturating_sub(height.max(1));
    }

    pub fn to_bottom(&mut self) {
        self.follow = true;
        self.offset = 0;
        self.mark = None;
    }

    pub fn next_level_filter(&mut self) {
        let i = LEVEL_FILTERS
            .iter()
            .position(|&f| f == self.min_level)
            .unwrap_or(0);
        self.min_level = LEVEL_FILTERS[(i + 1) % LEVEL_FILTERS.len()];
        self.offset = self.offset.min(self.filtered().len().saturating_sub(1));
    }

    /// Whether a line matches the search (case-insensitive substring).
    pub fn matches(&self, line: &LogLine) -> bool {
        !self.search.is_empty() && contains_ignore_case(&line.text, &self.search)
    }

    /// Moves to the next (`forward`) or previous line satisfying `wanted`, starting from
    /// the marked line or the bottom of the view. Returns whether one was found.
    pub fn jump(
        &mut self,
        forward: bool,
        height: usize,
        width: Option<usize>,
        wanted: impl Fn(&LogView, &LogLine) -> bool,
    ) -> bool {
        let filtered = self.filtered();
        if filtered.is_empty() {
            return false;
        }
        let bottom = filtered.len() - 1 - if self.follow { 0 } else { self.offset };
        let top = bottom.saturating_sub(height.saturating_sub(1));
        let marked = self
            .mark
            .and_then(|m| filtered.iter().position(|&i| self.dropped + i as u64 == m));
        let found = if forward {
            // Without a mark, "next" starts at the top of the view, inclusive.
            let first = marked.map(|k| k + 1).unwrap_or(top);
            (first..filtered.len()).find(|&k| wanted(self, &self.lines[filtered[k]]))
        } else {
            let end = marked.unwrap_or(bottom + 1);
            (0..end)
                .rev()
                .find(|&k| wanted(self, &self.lines[filtered[k]]))
        };
        let Some(k) = found else {
            return false;
        };
        self.mark = Some(self.dropped + filtered[k] as u64);
        // Put the line in the middle of the view when the buffer allows it, counting
        // screen rows (wrapped lines take several), so it always lands on screen.
        let mut rows = self.rows_of(filtered[k], width);
        let mut below = 0;
        while k + below + 1 < filtered.len() {
            let next = self.rows_of(filtered[k + below + 1], width);
            if rows + next > height / 2 {
                break;
            }
            rows += next;
            below += 1;
        }
        self.follow = false;
        self.offset = filtered.len() - 1 - (k + below);
        true
    }
}

/// A line as shown: runs of spaces after the first non-blank character become one
/// (OMERO pads the logger name to 40 columns, which hides the message on 80-column
/// terminals); indentation, as in tracebacks, is kept.
pub fn display_text(line: &str) -> std::borrow::Cow<'_, str> {
    let body = line.trim_start();
    if !body.contains("  ") {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    out.push_str(&line[..line.len() - body.len()]);
    let mut previous_space = false;
    for c in body.chars() {
        if c == ' ' && previous_space {
            continue;
        }
        previous_space = c == ' ';
        out.push(c);
    }
    // `[ logger]` reads better as `[logger]`.
    std::borrow::Cow::Owned(out.replace("[ ", "["))
}

/// OMERO's lines start with `YYYY-MM-DD`.
/// Whether `line` begins a record of `source` (else it continues the one above: the
/// lines of a traceback, a multi-line message). Access logs have one line a record.
fn starts_record(source: LogSource, line: &str) -> bool {
    match source {
        LogSource::Omero => looks_dated(line),
        // `[2026-11-30 11:07:22 +0000] [6029] [ERROR] …`
        LogSource::GunicornError => {
            line.starts_with("[") && line.as_bytes().get(1).is_some_and(u8::is_ascii_digit)
        }
        // `2024/05/01 12:00:00 [error] …`
        LogSource::NginxError => {
            let b = line.as_bytes();
            b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'/' && b[7] == b'/'
        }
        LogSource::NginxAccess | LogSource::GunicornAccess => true,
    }
}

fn looks_dated(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-'
}

pub fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// Byte ranges of case-insensitive matches of `needle` in `text`, for highlighting.
pub fn match_ranges(text: &str, needle: &str) -> Vec<(usize, usize)> {
    if needle.is_empty() {
        return Vec::new();
    }
    let needle: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let mut k = 0;
        let mut j = i;
        while k < needle.len() && j < chars.len() {
            let lower: Vec<char> = chars[j].1.to_lowercase().collect();
            if needle[k..].starts_with(&lower) {
                k += lower.len();
                j += 1;
            } else {
                break;
            }
        }
        if k == needle.len() {
            let end = chars.get(j).map(|c| c.0).unwrap_or(text.len());
            out.push((chars[i].0, end));
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn omero(level: &str, msg: &str) -> String {
        format!(
            "2024-05-01 12:00:00,123 {level:>5.5} [    omeroweb.pool] (proc.01234) main:1 {msg}"
        )
    }

    fn view_with(lines: Vec<String>) -> LogView {
        let mut v = LogView::new(LogSource::Omero, "/x".into());
        v.push_lines(lines);
        v
    }

    #[test]
    fn levels_of_every_source() {
        assert_eq!(
            classify(LogSource::Omero, &omero("ERROR", "x")),
            Some(Level::Error)
        );
        assert_eq!(
            classify(
                LogSource::NginxError,
                "2024/05/01 12:00:00 [warn] 12#0: conflicting server name"
            ),
            Some(Level::Warning)
        );
        assert_eq!(
            classify(
                LogSource::NginxError,
                "2024/05/01 12:00:00 [emerg] 12#0: bind() failed"
            ),
            Some(Level::Critical)
        );
        let access = |status: u16| {
            format!(
                "127.0.0.1 - - [01/May/2024:12:00:00 +0000] \"GET /webclient/ HTTP/1.1\" {status} 512 \"-\" \"curl\""
            )
        };
        assert_eq!(
            classify(LogSource::NginxAccess, &access(200)),
            Some(Level::Info)
        );
        assert_eq!(
            classify(LogSource::NginxAccess, &access(404)),
            Some(Level::Warning)
        );
        assert_eq!(
            classify(LogSource::NginxAccess, &access(502)),
            Some(Level::Error)
        );
        assert_eq!(classify(LogSource::NginxAccess, "garbage"), None);
    }

    #[test]
    fn tracebacks_take_the_level_of_their_line() {
        let v = view_with(vec![
            omero("INFO", "ok"),
            omero("ERROR", "boom"),
            "Traceback (most recent call last):".into(),
            "  File \"x.py\", line 1".into(),
            omero("INFO", "fine"),
        ]);
        let levels: Vec<_> = v.lines.iter().map(|l| l.level).collect();
        assert_eq!(
            levels,
            [
                Some(Level::Info),
                Some(Level::Error),
                Some(Level::Error),
                Some(Level::Error),
                Some(Level::Info)
            ]
        );
    }

    #[test]
    fn the_level_filter_keeps_a_gunicorn_traceback_with_its_error_record() {
        let mut v = LogView::new(LogSource::GunicornError, "/x".into());
        v.push_lines(vec![
            "[2026-11-30 11:07:22 +0000] [6029] [INFO] Booting worker with pid: 6031".into(),
            "[2026-11-30 11:07:23 +0000] [6031] [ERROR] Exception in worker process".into(),
            "Traceback (most recent call last):".into(),
            "  File \"/venv/lib/python3.12/site-packages/gunicorn/arbiter.py\", line 608".into(),
            "ModuleNotFoundError: No module named 'omero_figure'".into(),
            "[2026-11-30 11:07:23 +0000] [6031] [INFO] Worker exiting (pid: 6031)".into(),
        ]);
        // ERROR and up: the record and the three lines that say why.
        v.min_level = Some(Level::Error);
        assert_eq!(v.filtered(), [1, 2, 3, 4]);
        // One error, not four.
        assert_eq!(
            v.lines
                .iter()
                .filter(|l| l.level == Some(Level::Error))
                .count(),
            4
        );
        let mut fresh = LogView::new(LogSource::GunicornError, "/x".into());
        let errors = fresh.push_lines(v.lines.iter().map(|l| l.text.clone()).collect());
        assert_eq!(errors, 1);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut v = LogView::new(LogSource::Omero, "/x".into());
        for chunk in 0..3 {
            v.push_lines((0..5000).map(|i| format!("{chunk}-{i}")).collect());
        }
        assert_eq!(v.lines.len(), MAX_LINES);
        assert_eq!(v.dropped, 5000);
        assert_eq!(v.lines.front().unwrap().text, "1-0");
    }

    #[test]
    fn the_level_filter_hides_lower_levels() {
        let mut v = view_with(vec![
            omero("DEBUG", "a"),
            omero("INFO", "b"),
            omero("WARNING", "c"),
            omero("ERROR", "d"),
            "not a log line".into(),
        ]);
        // The last line is undated, so it continues the ERROR.
        assert_eq!(v.filtered().len(), 5);
        v.next_level_filter();
        assert_eq!(v.min_level, Some(Level::Info));
        assert_eq!(v.filtered().len(), 4);
        v.next_level_filter();
        assert_eq!(v.filtered(), [2, 3, 4]);
        v.next_level_filter();
        assert_eq!(v.filtered(), [3, 4]);
        v.next_level_filter();
        assert_eq!(v.min_level, None);
    }

    #[test]
    fn paused_view_stays_put_while_lines_arrive() {
        let mut v = view_with((0..100).map(|i| format!("line {i}")).collect());
        assert_eq!(v.window(3), [97, 98, 99]);
        v.scroll(-10, 3);
        assert!(!v.follow);
        assert_eq!(v.window(3), [87, 88, 89]);
        v.push_lines(vec!["new 1".into(), "new 2".into()]);
        assert_eq!(v.window(3), [87, 88, 89]);
        v.to_bottom();
        assert_eq!(v.window(3), [99, 100, 101]);
        // Pausing with f freezes the view as well.
        v.toggle_follow();
        v.push_lines(vec!["new 3".into()]);
        assert_eq!(v.window(3), [99, 100, 101]);
        v.toggle_follow();
        assert_eq!(v.window(3), [100, 101, 102]);
        v.to_top(3);
        assert_eq!(v.window(3), [0, 1, 2]);
        v.scroll(-5, 3);
        assert_eq!(v.window(3), [0, 1, 2]);
    }

    #[test]
    fn search_jumps_forward_and_back() {
        let mut lines: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
        lines[10] = "GET /webgateway/render_thumbnail/1".into();
        lines[30] = "get /WEBGATEWAY/imgData/2".into();
        let mut v = view_with(lines);
        v.search = "webgateway".into();
        // From the bottom (following), "previous" finds the newest match first.
        assert!(v.jump(false, 10, None, |v, l| v.matches(l)));
        assert_eq!(v.mark, Some(30));
        assert!(v.window(10).contains(&30));
        assert!(v.jump(false, 10, None, |v, l| v.matches(l)));
        assert_eq!(v.mark, Some(10));
        assert!(!v.jump(false, 10, None, |v, l| v.matches(l)));
        assert!(v.jump(true, 10, None, |v, l| v.matches(l)));
        assert_eq!(v.mark, Some(30));
        assert!(!v.jump(true, 10, None, |v, l| v.matches(l)));
    }

    #[test]
    fn a_jump_lands_on_screen_when_lines_wrap() {
        // Every line takes three rows at 20 columns; the view has 9 rows.
        let long = "x".repeat(50);
        let mut lines: Vec<String> = (0..40).map(|i| format!("{long} {i:02}")).collect();
        lines[12] = format!("{long} needle");
        let mut v = view_with(lines);
        v.search = "needle".into();
        assert!(v.jump(false, 9, Some(20), |v, l| v.matches(l)));
        assert_eq!(v.mark, Some(12));
        let shown = v.window_wrapped(9, Some(20));
        assert!(shown.contains(&12), "the match is on screen: {shown:?}");
        // Counted in lines it would have been pushed off: 12 lines below it fill 36 rows.
        assert!(shown.len() <= 3, "{shown:?}");
    }

    #[test]
    fn next_error_skips_other_levels() {
        let mut v = view_with(vec![
            omero("INFO", "a"),
            omero("ERROR", "b"),
            omero("INFO", "c"),
            omero("CRITICAL", "d"),
        ]);
        v.to_top(1);
        let is_error = |_: &LogView, l: &LogLine| l.level.is_some_and(|l| l >= Level::Error);
        assert!(v.jump(true, 1, None, is_error));
        assert_eq!(v.mark, Some(1));
        assert!(v.jump(true, 1, None, is_error));
        assert_eq!(v.mark, Some(3));
        assert!(!v.jump(true, 1, None, is_error));
    }

    #[test]
    fn padding_is_collapsed_for_display_but_indentation_kept() {
        let line = omero("INFO", "Booting  worker");
        assert_eq!(
            display_text(&line),
            "2024-05-01 12:00:00,123 INFO [omeroweb.pool] (proc.01234) main:1 Booting worker"
        );
        assert_eq!(
            display_text("    raise ValueError(x)"),
            "    raise ValueError(x)"
        );
    }

    #[test]
    fn wrapped_windows_fit_the_rows() {
        let v = view_with(vec!["a".repeat(25), "b".repeat(5), "c".repeat(15)]);
        // Width 10: rows 3, 1, 2.
        assert_eq!(v.window_wrapped(3, Some(10)), [1, 2]);
        assert_eq!(v.window_wrapped(6, Some(10)), [0, 1, 2]);
        assert_eq!(v.window_wrapped(5, Some(10)), [1, 2]);
        // A single line taller than the view is still shown.
        assert_eq!(v.window_wrapped(1, Some(10)), [2]);
        assert_eq!(v.window_wrapped(2, None), [1, 2]);
    }

    #[test]
    fn match_ranges_ignore_case() {
        assert_eq!(
            match_ranges("Error: ERROR error", "error"),
            [(0, 5), (7, 12), (13, 18)]
        );
        assert_eq!(match_ranges("Zürich zÜRICH", "züRich"), [(0, 7), (8, 15)]);
        assert!(match_ranges("abc", "").is_empty());
        assert!(contains_ignore_case("Traceback", "TRACE"));
    }
}
