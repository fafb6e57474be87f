//! The message history overlay (`m`): the last status messages, newest first, each
//! whole and wrapped, so nothing is lost to the status line's width or to expiry.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{centred, duration, scrolled, wrap};
use crate::tui::app::{App, Severity};

/// The overlay's rectangle on a screen of `area`.
fn popup(area: Rect) -> Rect {
    centred(area, 100, area.height.saturating_sub(1))
}

/// Columns before the text: the tag (5) and " {age:>6} ago " (12).
const PREFIX: usize = 17;

/// Every message as rows of at most the overlay's width, newest first.
fn rows(app: &App, width: usize) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let text_width = width.saturating_sub(PREFIX).max(10);
    let mut out = Vec::new();
    for message in app.messages.iter().rev() {
        let (tag, style) = match message.severity {
            Severity::Error => ("error", theme.error()),
            Severity::Warning => ("warn ", theme.warn()),
            Severity::Info => ("info ", theme.dim()),
        };
        let age = duration((app.clock - message.at).max(0.0) as u64);
        for (i, chunk) in wrap(&message.text, text_width).into_iter().enumerate() {
            let prefix = if i == 0 {
                vec![
                    Span::styled(tag, style),
                    Span::styled(format!(" {age:>6} ago "), theme.dim()),
                ]
            } else {
                vec![Span::raw(" ".repeat(PREFIX))]
            };
            let mut spans = prefix;
            spans.push(Span::raw(chunk));
            out.push(Line::from(spans));
        }
    }
    out
}

/// How far the overlay can scroll on a screen of `screen` (for the update step).
pub fn max_scroll(app: &App, screen: (u16, u16)) -> usize {
    scrolled::max_scroll_on(screen, popup, |width| rows(app, width).len())
}

pub fn draw(app: &App, frame: &mut Frame, area: Rect, scroll: usize) {
    let theme = &app.theme;
    let lines = |width| {
        let mut lines = rows(app, width);
        if lines.is_empty() {
            lines.push(Line::styled("No messages yet.", theme.dim()));
        }
        lines
    };
    let title = format!(
        " Messages: the last {}, newest first (Esc closes) ",
        app.messages.len()
    );
    scrolled::draw(
        frame,
        theme,
        (area, popup),
        lines,
        scroll,
        Span::styled(title, theme.title()),
    );
}
