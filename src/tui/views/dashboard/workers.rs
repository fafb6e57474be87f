//! The Dashboard's workers table: one row per worker (state, requests, CPU, memory,
//! what it serves), sorted as chosen, or why there are none.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};

use super::{Face, local_keys_cut};
use crate::status::WorkerState;
use crate::tui::dashboard::{SortColumn, WorkerRow};
use crate::tui::event::PoolObservation;
use crate::tui::views::{bytes, duration};

pub(super) fn workers_table(f: &Face, frame: &mut Frame, area: Rect) {
    let theme = &f.app.theme;
    let d = &f.dashboard;
    let arrow = if d.descending { "▼" } else { "▲" };
    let mut title = vec![
        vec![Span::styled(" Workers ", theme.title())],
        vec![Span::styled(
            format!("(sort: {} {arrow}) ", d.sort.title()),
            theme.dim(),
        )],
    ];
    // Unplanned worker deaths since the master started (recycling and reloads are not).
    if let Some(s) = d.status().filter(|s| s.restarts > 0) {
        title.push(vec![Span::styled(
            format!("· {} restarts since start ", s.restarts),
            theme.warn(),
        )]);
    }
    let title = crate::tui::views::whole_chunks(title, (area.width as usize).saturating_sub(2));
    let block = Block::bordered().title(title);
    let rows = d.sorted_workers();
    if rows.is_empty() {
        let why = match &d.pool {
            Some(PoolObservation::Running(_)) => "No workers yet (booting).".to_string(),
            Some(PoolObservation::Error(e)) => format!("Cannot ask the pool: {e}"),
            None => "Asking the pool…".to_string(),
            Some(PoolObservation::Stale { orphans, .. }) if !orphans.is_empty() => format!(
                "No master: {} orphaned workers (PIDs {}) still serve, unsupervised. s ends them and starts a new master; x ends them.",
                orphans.len(),
                crate::supervisor::pid_list(orphans)
            ),
            Some(PoolObservation::Halted(halt)) => format!(
                "The pool halted by itself: {}. Fix what the warnings below name, then press s to start it.",
                halt.reason.trim_end_matches('.')
            ),
            _ => "The pool is stopped. Press s to start it.".to_string(),
        };
        // A member's view is read-only: its keys would act on the local site.
        let why = if f.local {
            why
        } else {
            format!(
                "{} (read-only here: act on the member itself)",
                local_keys_cut(&why)
            )
        };
        frame.render_widget(
            Paragraph::new(Line::styled(why, theme.dim()))
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    }
    let wide = area.width >= 120;
    let mut columns: Vec<(SortColumn, &str, u16)> = vec![
        (SortColumn::Pid, "PID", 8),
        (SortColumn::Pid, "STATE", 9),
        (SortColumn::Age, "AGE", 7),
        (SortColumn::Requests, "REQS", 9),
        (SortColumn::Rate, "REQ/S", 7),
        (SortColumn::InFlight, "BUSY", 5),
        (SortColumn::Cpu, "CPU%", 6),
        (SortColumn::Rss, "RSS", 8),
        (SortColumn::Restarts, "RESTARTS", 8),
    ];
    if wide {
        // Not sortable (the arrow never lands on them): PID stands in.
        columns.extend([
            (SortColumn::Pid, "GEN", 4),
            (SortColumn::Pid, "4XX", 7),
            (SortColumn::Pid, "5XX", 7),
            (SortColumn::Pid, "P95", 8),
            (SortColumn::Pid, "BEAT", 6),
        ]);
    }
    // Columns that do not fit are left out, least useful first, rather than squeezed
    // (a squeezed "108.4M" reads "08.4M").
    let inner = area.width.saturating_sub(2);
    let needed = |cols: &[(SortColumn, &str, u16)]| {
        cols.iter().map(|c| c.2).sum::<u16>() + cols.len().saturating_sub(1) as u16
    };
    for name in ["RESTARTS", "AGE", "BUSY", "REQ/S", "CPU%", "RSS", "REQS"] {
        if needed(&columns) <= inner {
            break;
        }
        columns.retain(|c| c.1 != name);
    }
    let names: Vec<&str> = columns.iter().map(|c| c.1).collect();
    let header = Row::new(columns.iter().enumerate().map(|(i, (col, name, _))| {
        let sorted = *col == d.sort && (i == 0 || *col != SortColumn::Pid);
        let text = if sorted {
            format!("{name}{arrow}")
        } else {
            name.to_string()
        };
        let style = if sorted { theme.accent() } else { theme.bold() };
        // Numbers are right-aligned, and so are their headings.
        let line = Line::styled(text, style);
        Cell::from(if i == 1 { line } else { line.right_aligned() })
    }));
    let table_rows: Vec<Row> = rows
        .iter()
        .map(|r| worker_row(f, r, wide, &names))
        .collect();
    let selected = d
        .selected_pid
        .and_then(|pid| rows.iter().position(|r| r.status.pid == pid));
    let table = Table::new(table_rows, columns.iter().map(|c| Constraint::Length(c.2)))
        .header(header)
        .column_spacing(1)
        .row_highlight_style(theme.selected())
        .block(block);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

/// A worker's cells for the columns `names` (the table's, in its order).
fn worker_row(f: &Face, r: &WorkerRow, wide: bool, names: &[&str]) -> Row<'static> {
    let theme = &f.app.theme;
    let w = &r.status;
    let state_style = match w.state {
        WorkerState::Ready => theme.plain(),
        WorkerState::Booting => theme.warn(),
        WorkerState::Aborted => theme.error(),
        WorkerState::Retiring => theme.dim(),
    };
    let num = |s: String| Cell::from(Line::from(s).right_aligned());
    let mut cells = vec![
        ("PID", num(w.pid.to_string())),
        (
            "STATE",
            Cell::from(Span::styled(w.state.as_str(), state_style)),
        ),
        ("AGE", num(duration(w.age_secs as u64))),
        ("REQS", num(w.requests.to_string())),
        (
            "REQ/S",
            num(r
                .rate
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "—".into())),
        ),
        // Gunicorn does not say what a worker serves: unknown, not 0.
        (
            "BUSY",
            num(w.in_flight.map_or_else(|| "—".into(), |n| n.to_string())),
        ),
        (
            "CPU%",
            num(r
                .cpu
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "—".into())),
        ),
        ("RSS", num(r.rss.map(bytes).unwrap_or_else(|| "—".into()))),
        (
            "RESTARTS",
            Cell::from(
                Line::styled(
                    w.restarts.to_string(),
                    if w.restarts > 0 {
                        theme.warn()
                    } else {
                        theme.plain()
                    },
                )
                .right_aligned(),
            ),
        ),
    ];
    if wide {
        cells.extend([
            ("GEN", num(w.generation.to_string())),
            ("4XX", num(w.status_4xx.to_string())),
            ("5XX", num(w.status_5xx.to_string())),
            (
                "P95",
                num(w
                    .latency_p95
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "—".into())),
            ),
            ("BEAT", num(format!("{:.1}s", w.last_heartbeat_secs))),
        ]);
    }
    Row::new(
        cells
            .into_iter()
            .filter(|(name, _)| names.contains(name))
            .map(|(_, cell)| cell),
    )
}
