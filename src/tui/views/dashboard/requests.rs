//! The Dashboard's requests panel: the rate over the last minute, status codes and
//! latency, since the master started.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};

use super::{Chunks, Face, titled};
use crate::status::stats::LatencyBound;
use crate::tui::views::duration;

pub(super) fn requests_panel(f: &Face, frame: &mut Frame, area: Rect) {
    let theme = &f.app.theme;
    // The total is the master's since it started, exited workers included: it never
    // goes backwards, and after a load test it is the load generator's count.
    let mut title = vec![vec![Span::styled(" Requests", theme.title())]];
    if let Some(s) = f.dashboard.status() {
        title.push(vec![Span::styled(
            format!(" · {}", s.totals.requests),
            theme.title(),
        )]);
        if let Some(hm) = since(s.started_at, &chrono::Local) {
            title.push(vec![Span::styled(format!(" since {hm}"), theme.title())]);
        }
    }
    let block = Block::bordered().title(titled(title, area.width, theme));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [rate_row, spark_row, codes_row, latency_row] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    let d = &f.dashboard;
    let shown = (inner.width as usize).min(d.rates.len());
    let recent: Vec<f64> = d
        .rates
        .iter()
        .skip(d.rates.len() - shown)
        .copied()
        .collect();
    let peak = recent.iter().copied().fold(0.0, f64::max);
    let rate = match d.current_rate() {
        Some(r) => crate::tui::views::whole_chunks(
            vec![
                vec![Span::styled(format!("{r:.1} req/s"), theme.bold())],
                vec![Span::styled(
                    format!(" · peak {peak:.1} over {}", duration(shown as u64)),
                    theme.dim(),
                )],
            ],
            rate_row.width as usize,
        ),
        None => Line::styled("no traffic data (pool not running)", theme.dim()),
    };
    frame.render_widget(Paragraph::new(rate), rate_row);
    // Tenths, so that rates below one request a second still show.
    let bars: Vec<u64> = recent.iter().map(|r| (r * 10.0).round() as u64).collect();
    frame.render_widget(
        Sparkline::default().data(&bars).style(theme.accent()),
        spark_row,
    );
    let (codes, latency) = match d.status() {
        Some(s) => {
            let t = &s.totals;
            let ms =
                |v: Option<LatencyBound>| v.map(|v| v.to_string()).unwrap_or_else(|| "—".into());
            (
                crate::tui::views::whole_chunks(
                    codes_that_fit(
                        vec![
                            vec![Span::raw(format!("2xx {}", t.status_2xx))],
                            vec![Span::raw(format!("  3xx {}", t.status_3xx))],
                            vec![
                                Span::raw("  "),
                                Span::styled(format!("4xx {}", t.status_4xx), theme.warn()),
                            ],
                            vec![
                                Span::raw("  "),
                                Span::styled(format!("5xx {}", t.status_5xx), theme.error()),
                            ],
                        ],
                        codes_row.width as usize,
                    ),
                    codes_row.width as usize,
                ),
                crate::tui::views::whole_chunks(
                    crate::tui::views::plain_chunks(
                        &[
                            format!("p50 {}", ms(t.percentile(50.0))),
                            format!("p95 {}", ms(t.percentile(95.0))),
                            format!("p99 {}", ms(t.percentile(99.0))),
                        ],
                        "  ",
                    ),
                    latency_row.width as usize,
                ),
            )
        }
        None => (Line::raw(""), Line::raw("")),
    };
    frame.render_widget(Paragraph::new(codes), codes_row);
    frame.render_widget(Paragraph::new(latency), latency_row);
}

/// The 2xx/3xx/4xx/5xx chunks, without 3xx when all four do not fit: the errors
/// matter more than the redirects.
fn codes_that_fit(mut chunks: Chunks, width: usize) -> Chunks {
    let total: usize = chunks.iter().flatten().map(Span::width).sum();
    if total > width {
        chunks.remove(1);
    }
    chunks
}

/// `HH:MM` of a Unix time in `zone` (`None` for 0: not known).
pub fn since<Z: chrono::TimeZone>(unix: u64, zone: &Z) -> Option<String>
where
    Z::Offset: std::fmt::Display,
{
    let utc = chrono::DateTime::from_timestamp(i64::try_from(unix).ok()?, 0)?;
    (unix > 0).then(|| utc.with_timezone(zone).format("%H:%M").to_string())
}

#[cfg(test)]
mod tests {
    use super::since;

    #[test]
    fn since_is_the_local_hour_and_minute_when_known() {
        let paris = chrono::FixedOffset::east_opt(3600).unwrap();
        // 2025-11-30 10:13:20 UTC
        assert_eq!(since(1_764_497_600, &paris).as_deref(), Some("11:13"));
        assert_eq!(since(0, &paris), None);
    }
}
