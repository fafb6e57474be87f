//! One worker in detail (Enter on the workers table).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};

use super::label;
use crate::status::activity::{self, WorkerActivity};
use crate::status::stats::LatencyBound;
use crate::tui::app::App;
use crate::tui::theme::Theme;
use crate::tui::views::{bytes, duration};

/// One worker in detail, like htop's or k9s's "describe": its figures, what it serves
/// now, its last requests and slowest paths, and its CPU, memory and request rate over
/// the last minute (Enter on the workers table).
pub fn worker_detail(app: &App, frame: &mut Frame, area: Rect, pid: u32) {
    use ratatui::widgets::Clear;
    let theme = &app.theme;
    let popup = crate::tui::views::centred(
        area,
        100.min(area.width.saturating_sub(2)),
        // Borders, five facts, the two lists, the charts and the hint.
        (2 + 5 + activity::RECENT as u16 + 2 + 3 + 1).min(area.height),
    );
    frame.render_widget(Clear, popup);
    let block = Block::bordered().title(Span::styled(format!(" Worker {pid} "), theme.title()));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let worker = app
        .dashboard
        .status()
        .and_then(|s| s.workers.iter().find(|w| w.pid == pid));
    let Some(w) = worker else {
        frame.render_widget(
            Paragraph::new(vec![
                Line::styled(
                    "This worker is gone (it exited or was replaced).",
                    theme.warn(),
                ),
                Line::raw(""),
                Line::from(vec![Span::styled("Esc", theme.key()), Span::raw(" close")]),
            ]),
            inner,
        );
        return;
    };
    let ms = |v: Option<LatencyBound>| v.map(|v| v.to_string()).unwrap_or_else(|| "—".into());
    let history = app.dashboard.history.get(&pid);
    let last = history.and_then(|h| h.back()).copied();
    let width = inner.width as usize;
    // Each figure whole or not at all (see `whole_chunks`).
    let fact = |name: &str, parts: Vec<String>| {
        let mut chunks = crate::tui::views::plain_chunks(&parts, " · ");
        if let Some(first) = chunks.first_mut() {
            first.insert(0, label(name));
        }
        crate::tui::views::whole_chunks(chunks, width)
    };
    let facts = vec![
        fact(
            "State",
            vec![
                w.state.to_string(),
                format!("age {}", duration(w.age_secs as u64)),
                format!("generation {}", w.generation),
                format!("restarts {}", w.restarts),
                format!("heartbeat {:.1} s ago", w.last_heartbeat_secs),
            ],
        ),
        fact(
            "Served",
            vec![
                format!(
                    "{} requests ({})",
                    w.requests,
                    w.in_flight.map_or_else(
                        || "in flight not known".into(),
                        |n| format!("{n} in flight")
                    )
                ),
                format!(
                    "2xx {} 3xx {} 4xx {} 5xx {}",
                    w.status_2xx, w.status_3xx, w.status_4xx, w.status_5xx
                ),
                bytes(w.bytes_sent),
            ],
        ),
        fact(
            "Latency",
            vec![
                format!("p50 {}", ms(w.latency_p50)),
                format!("p95 {}", ms(w.latency_p95)),
                format!("p99 {}", ms(w.latency_p99)),
            ],
        ),
        fact(
            "Now",
            match last {
                Some(p) => vec![
                    format!("CPU {:.1} %", p.cpu),
                    format!("RSS {}", bytes(p.rss)),
                    format!("{:.1} req/s", p.rate),
                ],
                None => vec!["—".into()],
            },
        ),
        Line::from(vec![label("Serving"), serving(&w.activity, theme)]),
    ];
    let [text, lists, charts, hint] = Layout::vertical([
        Constraint::Length(facts.len() as u16),
        Constraint::Fill(1),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(facts), text);
    let [recent_area, slowest_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(lists);
    let recent: Vec<Line> = w
        .activity
        .recent
        .iter()
        .rev()
        .map(|r| {
            let status = Span::styled(
                format!("{} ", r.status),
                match r.status {
                    500.. => theme.error(),
                    400.. => theme.warn(),
                    _ => theme.dim(),
                },
            );
            Line::from(vec![
                Span::styled(format!("{} ", clock(r.at, &chrono::Local)), theme.dim()),
                status,
                Span::raw(format!("{:>5} ms {} {}", r.ms, r.method, r.path)),
            ])
        })
        .collect();
    let slowest: Vec<Line> = w
        .activity
        .slowest
        .iter()
        .map(|p| {
            // Narrow: the longest time and the count, then as much of the path as fits.
            Line::from(vec![
                Span::raw(format!("{:>5} ms ", p.max_ms)),
                Span::styled(format!("×{:<4}", p.count), theme.dim()),
                Span::raw(p.path.clone()),
            ])
        })
        .collect();
    for (area, title, lines) in [
        (recent_area, " Last requests ", recent),
        (slowest_area, " Slowest paths (max) ", slowest),
    ] {
        let lines = if lines.is_empty() {
            vec![Line::styled("none yet", theme.dim())]
        } else {
            lines
        };
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(Span::styled(title, theme.dim()))),
            area,
        );
    }
    let [cpu_row, rss_row, rate_row] = Layout::horizontal([
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
    ])
    .areas(charts);
    let series = |f: fn(&crate::tui::dashboard::WorkerPoint) -> u64| -> Vec<u64> {
        history
            .map(|h| h.iter().map(f).collect())
            .unwrap_or_default()
    };
    for (row, title, data) in [
        (
            cpu_row,
            " CPU % (last minute) ",
            series(|p| (p.cpu * 10.0) as u64),
        ),
        (rss_row, " RSS ", series(|p| p.rss)),
        (rate_row, " req/s ", series(|p| (p.rate * 10.0) as u64)),
    ] {
        frame.render_widget(
            Sparkline::default()
                .data(&data)
                .style(theme.accent())
                .block(Block::bordered().title(Span::styled(title, theme.dim()))),
            row,
        );
    }
    frame.render_widget(
        Line::from(vec![Span::styled("Esc", theme.key()), Span::raw(" close")]),
        hint,
    );
}

/// What a worker serves now, the longest-running request first.
fn serving(activity: &WorkerActivity, theme: &Theme) -> Span<'static> {
    match &activity.serving {
        None => Span::styled(
            "not known (Gunicorn does not say; its last requests are below)",
            theme.dim(),
        ),
        Some(now) if now.is_empty() => Span::styled("idle", theme.dim()),
        Some(now) => {
            let first = &now[0];
            let more = match now.len() - 1 {
                0 => String::new(),
                n => format!(" (+{n} more)"),
            };
            let text = format!(
                "{} {} for {:.1} s{more}",
                first.method, first.path, first.secs
            );
            if first.secs >= 1.0 {
                Span::styled(text, theme.warn())
            } else {
                Span::raw(text)
            }
        }
    }
}

/// `HH:MM:SS` of a Unix time in `zone` (`--:--:--` for 0: not known).
fn clock<Z: chrono::TimeZone>(unix: u64, zone: &Z) -> String
where
    Z::Offset: std::fmt::Display,
{
    i64::try_from(unix)
        .ok()
        .filter(|&t| t > 0)
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.with_timezone(zone).format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".into())
}
