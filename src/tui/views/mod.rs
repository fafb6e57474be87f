//! Drawing. `view` only reads the state; everything it shows comes from `App`, so the
//! same state always draws the same screen (which the snapshot tests rely on).

mod dashboard;
mod fleet;
mod help;
mod log;
pub mod messages;
mod nginx;
mod properties;
mod scrolled;
pub mod upgrades;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::app::{App, Popup, Severity, Tab, pool_problem};
use super::dashboard::PoolState;
use super::keymap::{self, Context};
use super::theme::Theme;

/// Below this the panel shows a notice instead of a cramped screen.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

/// Rows of the tab body: everything but the tab bar, status line and hint bar.
fn body_rows(screen: (u16, u16)) -> usize {
    screen.1.saturating_sub(3) as usize
}

/// Lines of log text visible in the Log tab.
pub fn log_rows(screen: (u16, u16)) -> usize {
    body_rows(screen).saturating_sub(2).max(1)
}

/// Columns of log text (inside the borders).
pub fn log_columns(screen: (u16, u16)) -> usize {
    (screen.0 as usize).saturating_sub(2).max(1)
}

/// Lines of config visible in the nginx tab.
pub fn nginx_rows(screen: (u16, u16)) -> usize {
    body_rows(screen).saturating_sub(4).max(1)
}

/// How far the help overlay can scroll on a screen of this size.
pub fn help_max_scroll(screen: (u16, u16), tab: Tab) -> usize {
    help::max_scroll(screen, tab)
}

/// How far PgUp/PgDn move.
pub fn page_rows(screen: (u16, u16)) -> usize {
    body_rows(screen).saturating_sub(4).max(1)
}

pub fn view(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area, &app.theme);
        return;
    }
    let [tabs, body, status, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    tab_bar(app, frame, tabs);
    match app.tab {
        Tab::Dashboard => dashboard::draw(app, frame, body),
        Tab::Properties => properties::draw(app, frame, body),
        Tab::Nginx => nginx::draw(app, frame, body),
        Tab::Log => log::draw(app, frame, body),
        Tab::Fleet => fleet::draw(app, frame, body),
    }
    status_line(app, frame, status);
    hint_bar(app, frame, hints);
    match &app.popup {
        Some(Popup::Help { scroll }) => help::draw(app, frame, area, *scroll),
        Some(Popup::Messages { scroll }) => messages::draw(app, frame, area, *scroll),
        Some(Popup::Worker { pid }) => dashboard::worker_detail(app, frame, area, *pid),
        Some(Popup::Upgrades { scroll }) => upgrades::draw(app, frame, area, *scroll),
        Some(Popup::Member) => member(app, frame, body),
        Some(Popup::Confirm {
            question, detail, ..
        }) => confirm(app, frame, area, question, detail),
        Some(Popup::Message { title, lines }) => message(app, frame, area, title, lines),
        None => {}
    }
}

/// A fleet member's Dashboard over the body: its header line, then the same Dashboard
/// view as the local site's, drawn from the member's model.
fn member(app: &App, frame: &mut Frame, area: Rect) {
    let Some(view) = &app.member else {
        return;
    };
    frame.render_widget(ratatui::widgets::Clear, area);
    let [header, body] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    let style = if view.unreachable.is_some() {
        app.theme.error()
    } else {
        app.theme.title()
    };
    frame.render_widget(
        Paragraph::new(Line::styled(view.header(), style)).wrap(Wrap { trim: true }),
        header,
    );
    let face = dashboard::Face {
        app,
        dashboard: &view.dashboard,
        job: None,
        local: false,
    };
    dashboard::draw_face(&face, frame, body);
}

fn too_small(frame: &mut Frame, area: Rect, theme: &Theme) {
    let text = vec![
        Line::styled("terminal too small", theme.warn()),
        Line::from(format!("min {MIN_WIDTH}x{MIN_HEIGHT}")),
        Line::from(format!("now {}x{}", area.width, area.height)),
        Line::from("q quits"),
    ];
    let top = area.height.saturating_sub(text.len() as u16) / 2;
    let centred = Rect {
        y: area.y + top,
        height: area.height.saturating_sub(top),
        ..area
    };
    frame.render_widget(
        Paragraph::new(text).centered().wrap(Wrap { trim: true }),
        centred,
    );
}

pub(crate) fn state_style(theme: &Theme, state: PoolState) -> ratatui::style::Style {
    match state {
        PoolState::Running => theme.ok(),
        PoolState::Degraded | PoolState::Unknown | PoolState::Halted | PoolState::MasterGone => {
            theme.error()
        }
        PoolState::Starting
        | PoolState::Reloading
        | PoolState::Restarting
        | PoolState::Stopping => theme.warn(),
        PoolState::Stopped | PoolState::Checking => theme.bold(),
    }
}

fn tab_bar(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let state = app.dashboard.state(app.job);
    let badge = Line::from(vec![
        Span::styled(
            format!(" {} ", state.label()),
            theme.badge(state_style(theme, state)),
        ),
        Span::raw(" "),
    ])
    .right_aligned();
    let tabs = |short: bool| {
        let mut spans = Vec::new();
        for (i, tab) in app.tabs().iter().enumerate() {
            let title = if short {
                tab.short_title()
            } else {
                tab.title()
            };
            let style = if *tab == app.tab {
                theme
                    .selected()
                    .add_modifier(ratatui::style::Modifier::BOLD)
            } else {
                theme.plain()
            };
            spans.push(Span::styled(format!(" {} {title} ", i + 1), style));
            // New errors in the log since the Log tab was last looked at.
            if *tab == Tab::Log && app.log.unseen_errors > 0 {
                spans.push(Span::styled(
                    format!("{}! ", app.log.unseen_errors),
                    theme.error(),
                ));
            }
        }
        spans
    };
    // Every tab stays on the bar (the current one above all): shorter titles, then
    // no program name, before anything is pushed off.
    let room = (area.width as usize).saturating_sub(badge.width());
    let name = Span::styled(" omero-webctl ", theme.title());
    let fits = |spans: &[Span]| spans.iter().map(Span::width).sum::<usize>() <= room;
    let mut spans = vec![name.clone()];
    spans.extend(tabs(false));
    if !fits(&spans) {
        spans = vec![name];
        spans.extend(tabs(true));
    }
    if !fits(&spans) {
        spans = tabs(true);
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    frame.render_widget(Paragraph::new(badge), area);
}

fn status_line(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let mut left: Vec<Span> = Vec::new();
    if let Some(m) = &app.message {
        let (prefix, style) = match m.severity {
            Severity::Info => ("", theme.plain()),
            Severity::Warning => ("warning: ", theme.warn()),
            Severity::Error => ("error: ", theme.error()),
        };
        // Its age, once it is not news, so an old line is not read as current.
        let age = (app.clock - m.at).max(0.0) as u64;
        let age = (age >= 5).then(|| format!(" ({} ago)", duration(age)));
        let right_width = app.job.map_or(0, |job| job.progress().chars().count() + 3);
        let room = (area.width as usize)
            .saturating_sub(right_width + age.as_ref().map_or(0, |a| a.chars().count()));
        // Cut between words (m shows it whole), so no number is shown in part.
        let text = format!(
            " {}",
            cut_at_word(&format!("{prefix}{}", m.text), room.saturating_sub(1))
        );
        left.push(Span::styled(text, style));
        if let Some(age) = age {
            left.push(Span::styled(age, theme.dim()));
        }
    } else if let Some(problem) = pool_problem(app) {
        left.push(Span::styled(format!(" {problem}"), theme.error()));
    } else if let Err(e) = &app.config {
        left.push(Span::styled(format!(" config: {e}"), theme.error()));
    }
    let right = app
        .job
        .map(|job| format!("⟳ {} ", job.progress()))
        .unwrap_or_default();
    let right_width = right.chars().count() as u16;
    let [msg, job] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(right_width)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(left)), msg);
    frame.render_widget(Paragraph::new(Span::styled(right, theme.warn())), job);
}

/// The hint bar: the current context's keys first; quit and help always fit at the
/// end, since they are how to learn the rest.
fn hint_bar(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let contexts = app.contexts();
    let (general, specific): (Vec<_>, Vec<_>) = keymap::hints(&contexts)
        .into_iter()
        .partition(|h| matches!(h.context, Context::Global | Context::Always));
    let width_of = |h: &keymap::Hint| h.key.chars().count() + h.label.chars().count() + 3;
    let reserved: usize = general.iter().map(width_of).sum();
    let mut shown = Vec::new();
    let mut used = 1 + reserved;
    for hint in specific {
        if used + width_of(&hint) > area.width as usize {
            break;
        }
        used += width_of(&hint);
        shown.push(hint);
    }
    shown.extend(general);
    let mut spans = vec![Span::raw(" ")];
    for hint in shown {
        spans.push(Span::styled(hint.key, theme.key()));
        spans.push(Span::raw(format!(" {}  ", hint.label)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A rectangle of at most `width`×`height` centred in `area` (clamped to it).
pub(crate) fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// Rows `text` takes when wrapped at `width` (a close estimate by characters).
fn wrapped_rows(text: &str, width: u16) -> u16 {
    let width = width.max(1) as usize;
    text.lines()
        .map(|l| l.chars().count().div_ceil(width).max(1))
        .sum::<usize>() as u16
}

fn confirm(app: &App, frame: &mut Frame, area: Rect, question: &str, detail: &[String]) {
    let theme = &app.theme;
    let (width, inner) = text_popup_width(area, 64);
    let mut lines = vec![
        Line::styled(question.to_string(), theme.bold()),
        Line::raw(""),
    ];
    let mut rows = wrapped_rows(question, inner) + 1;
    for d in detail {
        rows += wrapped_rows(d, inner);
        lines.push(Line::raw(d.clone()));
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("y", theme.key()),
        Span::raw(" yes    "),
        Span::styled("n", theme.key()),
        Span::raw("/"),
        Span::styled("Esc", theme.key()),
        Span::raw(" no"),
    ]));
    rows += 2;
    text_popup(
        frame,
        area,
        (width, rows),
        lines,
        Span::styled(" Confirm ", theme.title()),
    );
}

fn message(app: &App, frame: &mut Frame, area: Rect, title: &str, lines: &[String]) {
    let theme = &app.theme;
    let (width, inner) = text_popup_width(area, 100);
    let rows: u16 = lines.iter().map(|l| wrapped_rows(l, inner)).sum::<u16>() + 2;
    let mut text: Vec<Line> = lines.iter().map(|l| Line::raw(l.clone())).collect();
    if let Some(first) = text.first_mut() {
        *first = first.clone().style(theme.error());
    }
    text.push(Line::raw(""));
    text.push(Line::from(vec![
        Span::styled("Esc", theme.key()),
        Span::raw(" close"),
    ]));
    let title = Span::styled(format!(" {title} "), theme.title());
    text_popup(frame, area, (width, rows), text, title);
}

/// The width of a popup sized to its text (at most `max`, inside `area` with a margin)
/// and the columns its text wraps at (inside the borders and padding).
fn text_popup_width(area: Rect, max: u16) -> (u16, u16) {
    let width = max.min(area.width.saturating_sub(4));
    (width, width.saturating_sub(4))
}

/// A popup sized to its text, centred in `area`: `size` is its width and the rows its
/// text takes wrapped (see [`text_popup_width`]); bordered, padded by a column.
fn text_popup(frame: &mut Frame, area: Rect, size: (u16, u16), lines: Vec<Line>, title: Span) {
    let (width, rows) = size;
    let popup = centred(area, width, rows + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(title)
                .padding(ratatui::widgets::Padding::horizontal(1)),
        ),
        popup,
    );
}

/// As many whole `chunks` as fit in `width` columns, in order, stopping at the first
/// that does not: a figure that does not fit is left out, never cut (a clipped
/// "≤100ms" would read "≤10", ":18081" would read ":1").
/// The first chunk, too long alone, is cut between words instead (its label and
/// the start of its text stay; a word, so a number, is never split).
pub(crate) fn whole_chunks(chunks: Vec<Vec<Span<'static>>>, width: usize) -> Line<'static> {
    let mut spans = Vec::new();
    let mut used = 0;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let w: usize = chunk.iter().map(Span::width).sum();
        if used + w > width && i == 0 {
            for span in chunk {
                let left = width - used;
                if span.width() <= left {
                    used += span.width();
                    spans.push(span);
                } else {
                    let cut = cut_at_word(&span.content, left);
                    if cut.chars().count() > 1 {
                        spans.push(Span::styled(cut, span.style));
                    }
                    break;
                }
            }
            break;
        }
        if used + w > width {
            break;
        }
        used += w;
        spans.extend(chunk);
    }
    Line::from(spans)
}

/// Plain-text chunks for [`whole_chunks`]: the first as it is, the rest after `sep`.
pub(crate) fn plain_chunks(parts: &[String], sep: &str) -> Vec<Vec<Span<'static>>> {
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let text = if i == 0 {
                p.clone()
            } else {
                format!("{sep}{p}")
            };
            vec![Span::raw(text)]
        })
        .collect()
}

/// `text` cut at a word boundary to `width` columns, with "…" when cut: a number is
/// a word, so none is shown partly.
pub(crate) fn cut_at_word(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    for word in text.split(' ') {
        let extra = usize::from(!out.is_empty());
        if out.chars().count() + extra + word.chars().count() + 1 > width {
            break;
        }
        if extra == 1 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.push('…');
    out
}

/// Greedy word wrap by characters; a word longer than the width is split.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        loop {
            let used = line.chars().count();
            let need = word.chars().count() + usize::from(used > 0);
            if used + need <= width {
                if used > 0 {
                    line.push(' ');
                }
                line.push_str(&word);
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than a whole row.
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// `1h02m`, `5m07s`, `42s`, `3d04h`.
pub(crate) fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// `812K`, `118.2M`, `1.5G`.
pub(crate) fn bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    if f < K * K {
        format!("{:.0}K", f / K)
    } else if f < K * K * K {
        format!("{:.1}M", f / (K * K))
    } else {
        format!("{:.1}G", f / (K * K * K))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(307), "5m07s");
        assert_eq!(duration(3725), "1h02m");
        assert_eq!(duration(273_600), "3d04h");
        assert_eq!(bytes(812 * 1024), "812K");
        assert_eq!(bytes(124_000_000), "118.3M");
        assert_eq!(bytes(1_610_612_736), "1.5G");
    }

    #[test]
    fn wrapping_keeps_every_word() {
        let text = "restart to apply: --timeout 120 (the workers' timeout changed)";
        let lines = wrap(text, 20);
        assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
        assert_eq!(lines.join(" "), text);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn only_whole_figures_are_shown() {
        let parts = [
            "p50 ≤5ms".to_string(),
            "p95 ≤50ms".into(),
            "p99 ≤100ms".into(),
        ];
        let fit = |w| whole_chunks(plain_chunks(&parts, "  "), w).to_string();
        assert_eq!(fit(40), "p50 ≤5ms  p95 ≤50ms  p99 ≤100ms");
        assert_eq!(fit(28), "p50 ≤5ms  p95 ≤50ms");
        assert_eq!(fit(5), "p50…");
        assert_eq!(
            cut_at_word("restart to apply: --timeout 120", 29),
            "restart to apply: --timeout…"
        );
        assert_eq!(cut_at_word("short", 29), "short");
    }

    #[test]
    fn centred_popups_stay_inside_tiny_areas() {
        let area = Rect::new(0, 0, 10, 3);
        let r = centred(area, 64, 12);
        assert!(r.width <= 10 && r.height <= 3);
    }
}
