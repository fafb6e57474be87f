//! The bordered, scrollable text overlay the `?`, `m` and `U` screens share: how far
//! it can scroll (the update step clamps with it) and how it is drawn (cleared, the
//! scroll clamped again for a screen that shrank, "↓ more" while rows are hidden
//! below), written once so the three cannot drift apart.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::tui::theme::Theme;

/// Columns of text inside the overlay's borders.
fn text_width(popup: Rect) -> usize {
    popup.width.saturating_sub(2) as usize
}

/// Rows of text inside the overlay's borders.
fn visible_rows(popup: Rect) -> usize {
    popup.height.saturating_sub(2) as usize
}

/// How far an overlay at `popup` holding `rows` rows can scroll.
fn max_scroll(popup: Rect, rows: usize) -> usize {
    rows.saturating_sub(visible_rows(popup))
}

/// How far an overlay placed by `place` on a screen of `screen` can scroll (for the
/// update step), `rows(width)` being the rows it holds at a text width of `width`.
pub fn max_scroll_on(
    screen: (u16, u16),
    place: fn(Rect) -> Rect,
    rows: impl FnOnce(usize) -> usize,
) -> usize {
    let popup = place(Rect::new(0, 0, screen.0, screen.1));
    max_scroll(popup, rows(text_width(popup)))
}

/// Draws the overlay placed by `place` in `area`, holding `rows(width)` (its rows at
/// its text width), scrolled down by `scroll` rows (clamped), with `title` on top.
pub fn draw<'a>(
    frame: &mut Frame,
    theme: &Theme,
    (area, place): (Rect, fn(Rect) -> Rect),
    rows: impl FnOnce(usize) -> Vec<Line<'a>>,
    scroll: usize,
    title: Span<'a>,
) {
    let popup = place(area);
    let lines = rows(text_width(popup));
    let visible = visible_rows(popup);
    let scroll = scroll.min(max_scroll(popup, lines.len()));
    let more = if lines.len() > visible + scroll {
        " ↓ more "
    } else {
        ""
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).scroll((scroll as u16, 0)).block(
            Block::bordered()
                .title(title)
                .title_bottom(Span::styled(more, theme.dim())),
        ),
        popup,
    );
}
