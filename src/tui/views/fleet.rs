//! The Fleet tab: one row per member (state, what serves it, workers, req/s, 5xx/min,
//! drift), the fleet's aggregate req/s as a sparkline, and each member's note.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table, TableState, Wrap};

use crate::fleet::status::MemberRow;
use crate::tui::app::App;

pub fn draw(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let Some(fleet) = &app.fleet else {
        return;
    };
    let members = fleet.members();
    let notes: Vec<Line> = members
        .iter()
        .filter_map(|m| Some(format!("{}: {}", m.name, m.note.as_deref()?)))
        .map(Line::raw)
        .collect();
    let notes_height = if notes.is_empty() {
        0
    } else {
        (2 * notes.len()).min(6) as u16 + 2
    };
    let [spark, table_area, notes_area] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Fill(1),
        Constraint::Length(notes_height),
    ])
    .areas(area);

    let total: f64 = members.iter().filter_map(|m| m.requests_per_sec).sum();
    let title = match &fleet.busy {
        Some(busy) => format!(" Fleet · {total:.1} req/s · {busy} "),
        None => format!(" Fleet · {total:.1} req/s "),
    };
    let width = spark.width.saturating_sub(2) as usize;
    let bars = &fleet.history[fleet.history.len().saturating_sub(width)..];
    frame.render_widget(
        Sparkline::default()
            .data(bars)
            .style(theme.accent())
            .block(Block::bordered().title(Span::styled(title, theme.title()))),
        spark,
    );

    let header = Row::new(
        [
            "MEMBER", "STATE", "SERVES", "WORKERS", "REQ/S", "5XX/MIN", "DRIFT",
        ]
        .map(|h| Cell::from(Span::styled(h, theme.bold()))),
    );
    let rows: Vec<Row> = members.iter().map(|m| member_row(app, m)).collect();
    let block = Block::bordered().title(Span::styled(
        format!(" Members ({}) ", fleet.file.display()),
        theme.title(),
    ));
    match &fleet.rows {
        None => frame.render_widget(
            Paragraph::new("Asking the members…").block(block),
            table_area,
        ),
        Some(Err(e)) => frame.render_widget(
            Paragraph::new(Line::styled(e.clone(), theme.error()))
                .wrap(Wrap { trim: true })
                .block(block),
            table_area,
        ),
        Some(Ok(_)) => {
            let widths = [
                Constraint::Length(12),
                Constraint::Length(22),
                Constraint::Fill(1),
                Constraint::Length(8),
                Constraint::Length(7),
                Constraint::Length(8),
                Constraint::Length(16),
            ];
            let table = Table::new(rows, widths)
                .header(header)
                .column_spacing(1)
                .row_highlight_style(theme.selected())
                .block(block);
            let mut state = TableState::default().with_selected(Some(fleet.selected));
            frame.render_stateful_widget(table, table_area, &mut state);
        }
    }
    if notes_height > 0 {
        frame.render_widget(
            Paragraph::new(notes)
                .wrap(Wrap { trim: true })
                .block(Block::bordered().title(" Notes ")),
            notes_area,
        );
    }
}

fn member_row(app: &App, m: &MemberRow) -> Row<'static> {
    let theme = &app.theme;
    let (state, style) = match m.state.as_str() {
        "running" if m.drained => ("running, drained".to_string(), theme.warn()),
        "running" => ("running".to_string(), theme.ok()),
        "unreachable" => ("UNREACHABLE".to_string(), theme.error()),
        other if m.drained => (format!("{other}, drained"), theme.error()),
        other => (other.to_string(), theme.error()),
    };
    let rate = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let num = |s: String| Cell::from(Line::from(s).right_aligned());
    let workers = if m.status.is_some() {
        format!("{}/{}", m.workers_ready, m.workers_target)
    } else {
        "-".into()
    };
    let serves = if m.version_skew {
        format!("{} (skew)", m.serves)
    } else {
        m.serves.clone()
    };
    let drift = match m.drift.len() {
        0 if m.status.is_some() => "none".to_string(),
        0 => "-".to_string(),
        n => format!("{n} key(s)"),
    };
    let errors = m.errors_5xx_per_min;
    let errors_style = if errors.is_some_and(|e| e > 0.0) {
        theme.error()
    } else {
        theme.plain()
    };
    Row::new(vec![
        Cell::from(m.name.clone()),
        Cell::from(Span::styled(state, style)),
        Cell::from(serves),
        num(workers),
        num(rate(m.requests_per_sec)),
        Cell::from(Line::styled(rate(errors), errors_style).right_aligned()),
        Cell::from(Span::styled(
            drift,
            if m.drift.is_empty() {
                theme.plain()
            } else {
                theme.warn()
            },
        )),
    ])
}
