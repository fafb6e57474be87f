//! Drawing. `view` only reads the state; everything it shows comes from `App`, so the
//! same state always draws the same screen (which the snapshot tests rely on).

mod dashboard;
mod help;
mod log;
pub mod messages;
mod nginx;
mod properties;

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
    let visible = screen.1.saturating_sub(3) as usize;
    help::lines(tab).saturating_sub(visible)
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
    }
    status_line(app, frame, status);
    hint_bar(app, frame, hints);
    match &app.popup {
        Some(Popup::Help { scroll }) => help::draw(app, frame, area, *scroll),
        Some(Popup::Messages { scroll }) => messages::draw(app, frame, area, *scroll),
        Some(Popup::Worker { pid }) => dashboard::worker_detail(app, frame, area, *pid),
        Some(Popup::Confirm {
            question, detail, ..
        }) => confirm(app, frame, area, question, detail),
        Some(Popup::Message { title, lines }) => message(app, frame, area, title, lines),
        None => {}
    }
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
        PoolState::Degraded | PoolState::Unknown => theme.error(),
        PoolState::Starting | PoolState::Reloading | PoolState::Stopping => theme.warn(),
        PoolState::Stopped | PoolState::Checking => theme.bold(),
    }
}

fn tab_bar(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let mut spans = vec![Span::styled(" omero-webctl ", theme.title())];
    for (i, tab) in Tab::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, tab.title());
        let style = if *tab == app.tab {
            theme
                .selected()
                .add_modifier(ratatui::style::Modifier::BOLD)
        } else {
            theme.plain()
        };
        spans.push(Span::styled(label, style));
        // New errors in the log since the Log tab was last looked at.
        if *tab == Tab::Log && app.log.unseen_errors > 0 {
            spans.push(Span::styled(
                format!("{}! ", app.log.unseen_errors),
                theme.error(),
            ));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    let state = app.dashboard.state(app.job);
    let badge = Line::from(vec![
        Span::styled(
            format!(" {} ", state.label()),
            theme.badge(state_style(theme, state)),
        ),
        Span::raw(" "),
    ])
    .right_aligned();
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
        left.push(Span::styled(format!(" {prefix}{}", m.text), style));
        // Its age, once it is not news, so an old line is not read as current.
        let age = (app.clock - m.at).max(0.0) as u64;
        if age >= 5 {
            left.push(Span::styled(
                format!(" ({} ago)", duration(age)),
                theme.dim(),
            ));
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
    let width = 64.min(area.width.saturating_sub(4));
    let inner = width.saturating_sub(4);
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
    let popup = centred(area, width, rows + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(Span::styled(" Confirm ", theme.title()))
                .padding(ratatui::widgets::Padding::horizontal(1)),
        ),
        popup,
    );
}

fn message(app: &App, frame: &mut Frame, area: Rect, title: &str, lines: &[String]) {
    let theme = &app.theme;
    let width = 100.min(area.width.saturating_sub(4));
    let inner = width.saturating_sub(4);
    let rows: u16 = lines.iter().map(|l| wrapped_rows(l, inner)).sum::<u16>() + 2;
    let popup = centred(area, width, rows + 2);
    let mut text: Vec<Line> = lines.iter().map(|l| Line::raw(l.clone())).collect();
    if let Some(first) = text.first_mut() {
        *first = first.clone().style(theme.error());
    }
    text.push(Line::raw(""));
    text.push(Line::from(vec![
        Span::styled("Esc", theme.key()),
        Span::raw(" close"),
    ]));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(Span::styled(format!(" {title} "), theme.title()))
                .padding(ratatui::widgets::Padding::horizontal(1)),
        ),
        popup,
    );
}

/// As many whole `parts` as fit in `width` columns, joined by `sep`: a figure that
/// does not fit is left out, never cut (a clipped "≤100ms" would read "≤10").
pub(crate) fn whole_parts(parts: &[String], sep: &str, width: usize) -> String {
    let w = |s: &str| Span::raw(s).width();
    let mut out = String::new();
    for part in parts {
        let extra = if out.is_empty() { 0 } else { w(sep) };
        if w(&out) + extra + w(part) > width {
            break;
        }
        if !out.is_empty() {
            out.push_str(sep);
        }
        out.push_str(part);
    }
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
        assert_eq!(
            whole_parts(&parts, "  ", 40),
            "p50 ≤5ms  p95 ≤50ms  p99 ≤100ms"
        );
        assert_eq!(whole_parts(&parts, "  ", 28), "p50 ≤5ms  p95 ≤50ms");
        assert_eq!(whole_parts(&parts, "  ", 5), "");
    }

    #[test]
    fn centred_popups_stay_inside_tiny_areas() {
        let area = Rect::new(0, 0, 10, 3);
        let r = centred(area, 64, 12);
        assert!(r.width <= 10 && r.height <= 3);
    }
}
