//! Log: the followed file with level colours, search highlights and the jump mark.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use crate::tui::app::App;
use crate::tui::log_view::{LogLine, display_text, match_ranges};

pub fn draw(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let log = &app.log;
    let mut title = vec![
        Span::styled(format!(" {} ", log.source.title()), theme.title()),
        if log.follow {
            Span::styled("following ", theme.ok())
        } else {
            Span::styled("PAUSED ", theme.warn())
        },
    ];
    if log.deleted {
        title.push(Span::styled(
            "FILE DELETED (reading the writer's open file) ",
            theme.error(),
        ));
    }
    if let Some(level) = log.min_level {
        title.push(Span::styled(
            format!("≥{} ", level.as_str()),
            theme.accent(),
        ));
    }
    if !log.search.is_empty() && log.search_input.is_none() {
        // Counted over the lines shown, as n/N search them; matches the level filter
        // hides are said apart.
        let shown = log.filtered();
        let count = shown
            .iter()
            .filter(|&&i| log.matches(&log.lines[i]))
            .count();
        let all = log.lines.iter().filter(|l| log.matches(l)).count();
        let hidden = if all > count {
            format!(", {} hidden by the level filter", all - count)
        } else {
            String::new()
        };
        title.push(Span::styled(
            format!("\"{}\" {count} match(es){hidden} ", log.search),
            theme.accent(),
        ));
    }
    let block = Block::bordered()
        .title(Line::from(title))
        .title_bottom(Span::styled(
            format!(" {} ", log.path.display()),
            theme.dim(),
        ));
    let inner = block.inner(area);
    let height = inner.height as usize;

    if log.lines.is_empty() {
        let text = match &log.error {
            Some(e) => Line::styled(format!("Cannot read the file: {e}"), theme.error()),
            None => Line::styled(
                "No lines yet. The file is followed: new lines appear here as they are written.",
                theme.dim(),
            ),
        };
        frame.render_widget(
            Paragraph::new(text).wrap(Wrap { trim: true }).block(block),
            area,
        );
    } else {
        let width = log.wrap.then_some(inner.width as usize);
        let lines: Vec<Line> = log
            .window_wrapped(height, width)
            .into_iter()
            .map(|i| {
                let marked = log.mark == Some(log.dropped + i as u64);
                styled_line(app, &log.lines[i], marked)
            })
            .collect();
        let mut paragraph = Paragraph::new(lines).block(block);
        if log.wrap {
            paragraph = paragraph.wrap(Wrap { trim: false });
        }
        frame.render_widget(paragraph, area);
    }

    if let Some(input) = &log.search_input {
        // The search field replaces the bottom border while typing.
        let label = " search: ";
        let width = inner.width.saturating_sub(label.len() as u16 + 2) as usize;
        let (shown, cursor) = input.visible(width);
        let y = area.y + area.height.saturating_sub(1);
        let r = Rect::new(area.x + 1, y, area.width.saturating_sub(2), 1);
        frame.render_widget(ratatui::widgets::Clear, r);
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(label, theme.key()),
                Span::styled(format!("{shown:<width$}"), theme.selected()),
            ])),
            r,
        );
        frame.set_cursor_position(Position::new(r.x + label.len() as u16 + cursor as u16, y));
    }
}

fn styled_line(app: &App, line: &LogLine, marked: bool) -> Line<'static> {
    let theme = &app.theme;
    let base = theme.level(line.level);
    let base = if marked {
        base.patch(theme.selected())
    } else {
        base
    };
    let text = display_text(&line.text);
    let ranges = match_ranges(&text, &app.log.search);
    if ranges.is_empty() {
        return Line::styled(text.into_owned(), base);
    }
    let mut spans = Vec::new();
    let mut at = 0;
    let highlight: Style = theme.highlight();
    for (start, end) in ranges {
        if start > at {
            spans.push(Span::styled(text[at..start].to_string(), base));
        }
        spans.push(Span::styled(text[start..end].to_string(), highlight));
        at = end;
    }
    if at < text.len() {
        spans.push(Span::styled(text[at..].to_string(), base));
    }
    Line::from(spans)
}
