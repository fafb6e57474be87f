//! Dashboard: pool state, request rate and status codes, latency, workers, warnings.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use crate::config::{Config, Settings};
use crate::tui::app::App;
use crate::tui::dashboard::Dashboard;
use crate::tui::event::{Job, NginxObservation, PoolObservation};
use crate::tui::theme::Theme;

mod pool_panel;
mod requests;
mod worker_detail;
mod workers;

use pool_panel::pool_panel;
use requests::requests_panel;
pub use worker_detail::worker_detail;
use workers::workers_table;

/// Dashboard heights (the body, without the tab, status and hint lines) below which
/// the layout is squeezed so that at least three workers stay visible.
const CRAMPED_BELOW: u16 = 18;

/// What the Dashboard view draws from: the local site's model, or a fleet member's
/// (read through the fleet transport; its config and jobs are not seen from here).
pub struct Face<'a> {
    pub app: &'a App,
    pub dashboard: &'a Dashboard,
    /// The job running on this site (a member's jobs are not seen from here).
    pub job: Option<Job>,
    /// Whether this is the local site: only then do its config and settings apply.
    pub local: bool,
}

impl<'a> Face<'a> {
    /// The local site as the App holds it.
    pub fn local(app: &'a App) -> Face<'a> {
        Face {
            app,
            dashboard: &app.dashboard,
            job: app.job,
            local: true,
        }
    }

    fn settings(&self) -> Option<Settings> {
        self.app.settings().filter(|_| self.local)
    }

    fn config(&self) -> Option<&'a Config> {
        self.app.config.as_ref().ok().filter(|_| self.local)
    }
}

pub fn draw(app: &App, frame: &mut Frame, area: Rect) {
    draw_face(&Face::local(app), frame, area);
}

pub fn draw_face(f: &Face, frame: &mut Frame, area: Rect) {
    let warnings = all_warnings(f);
    // Whole warnings only (see `warning_lines`): at 80×24 two two-row ones fit.
    let max_warning_rows = match area.height {
        36.. => 8,
        21.. => 4,
        _ => 3,
    };
    let text_width = area.width.saturating_sub(4);
    let needed: u16 = warnings
        .iter()
        .map(|w| super::wrap(w, text_width as usize).len() as u16)
        .sum();
    // Below this the workers table would show no rows: the warnings shrink to one
    // borderless line and the pool panel drops its Bind line.
    let cramped = area.height < CRAMPED_BELOW;
    let warnings_height = if cramped {
        1
    } else {
        needed.clamp(1, max_warning_rows) + 2
    };
    // On a tall terminal the rate chart gets more rows.
    let top_height = match area.height {
        36.. => 12,
        _ if cramped => 6,
        _ => 7,
    };
    let [top, workers, bottom] = Layout::vertical([
        Constraint::Length(top_height),
        Constraint::Fill(1),
        Constraint::Length(warnings_height),
    ])
    .areas(area);
    let [pool, requests] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    pool_panel(f, frame, pool);
    requests_panel(f, frame, requests);
    workers_table(f, frame, workers);
    warnings_panel(f, frame, bottom, &warnings);
}

/// The diagnostics warnings plus the pool's own (crash loops appear there first).
fn all_warnings(f: &Face) -> Vec<String> {
    let mut out = Vec::new();
    // While a change runs, both generations first (U shows its steps).
    let changes = &f.dashboard.changes;
    if let Some(progress) = changes.progress.as_ref().filter(|_| changes.running)
        && !changes.generations.is_empty()
    {
        let both: Vec<String> = changes
            .generations
            .iter()
            .map(|(g, workers)| {
                format!(
                    "{} master {} on :{} · {workers} workers",
                    g.role, g.master, g.port
                )
            })
            .collect();
        out.push(format!(
            "{} running: {} (U shows its steps)",
            progress.action,
            both.join("; ")
        ));
    }
    // From the latest sample, not the slower diagnostics: first, and within a second.
    if let (Some(NginxObservation::Running { port, .. }), Some(pool)) =
        (&f.dashboard.nginx, &f.dashboard.pool)
        && match pool {
            PoolObservation::NotRunning | PoolObservation::Halted(_) => true,
            // Workers a dead master left still answer behind nginx: no 502.
            PoolObservation::Stale { orphans, .. } => orphans.is_empty(),
            _ => false,
        }
    {
        out.push(crate::diagnostics::pool_down_behind_nginx(*port));
    }
    // An OMERO.server that does not answer: every login fails.
    out.extend(f.dashboard.servers.problems());
    // What users got from nginx lately, whatever the pool reports.
    let errors = f.dashboard.recent_nginx_errors();
    if errors.server_errors > 0 {
        let mut detail = Vec::new();
        if errors.bad_gateway > 0 {
            detail.push(format!(
                "{} × 502: the pool did not answer",
                errors.bad_gateway
            ));
        }
        if errors.gateway_timeout > 0 {
            detail.push(format!(
                "{} × 504: it answered too late",
                errors.gateway_timeout
            ));
        }
        out.push(format!(
            "nginx answered {} server error(s) in the last minute{}",
            errors.server_errors,
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", detail.join("; "))
            }
        ));
    }
    // A saved change the pool does not run yet, from the latest sample and the config
    // the panel holds (the CLI's `config set` included: the panel reloads the file).
    if let (Some(status), Some(config)) = (f.dashboard.status(), f.config())
        && let Some(note) =
            crate::supervisor::pending_note(&crate::supervisor::pending(config, status))
    {
        let key = if note.starts_with("saved, not applied (restart") {
            "R"
        } else {
            "r"
        };
        out.push(format!("{note} — {key} applies it"));
    }
    // After a halt there is no pool to compare with: what the halted one had not
    // applied is the likely cause, and must not vanish with it.
    if let Some(PoolObservation::Halted(halt)) = &f.dashboard.pool
        && let Some(note) = halt.pending_note()
    {
        out.push(note);
    }
    for w in &f.dashboard.warnings {
        // Diagnostics says the same in CLI words; the live line above is enough.
        if !out.contains(w) && !w.starts_with("saved, not applied") {
            out.push(w.clone());
        }
    }
    if let Some(status) = f.dashboard.status() {
        for w in &status.warnings {
            if !out.contains(w) {
                out.push(w.clone());
            }
        }
    }
    out
}

/// Where to point a browser: the private nginx if it runs, else the pool itself.
pub fn url(f: &Face) -> Option<String> {
    let prefix = f.settings().and_then(|s| s.prefix).unwrap_or_default();
    // A member's private nginx listens on its own host: its loopback is not ours.
    if let Some(NginxObservation::Running { port, .. }) = &f.dashboard.nginx
        && f.local
    {
        let port = port.unwrap_or(crate::nginx::instance::DEFAULT_PORT);
        return Some(format!("http://127.0.0.1:{port}{prefix}/"));
    }
    let status = f.dashboard.status()?;
    // A wildcard bind is reachable on loopback.
    let bind = status
        .bind
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:");
    Some(format!("http://{bind}{prefix}/"))
}

fn label(text: &str) -> Span<'static> {
    Span::raw(format!("{text:<7} "))
}

/// One line of a panel as chunks that are shown whole or not at all (see
/// [`super::whole_chunks`]): the label, then what it says, piece by piece.
type Chunks = Vec<Vec<Span<'static>>>;

/// A local-site message without its key advice (the sentences that name a key).
fn local_keys_cut(why: &str) -> String {
    let kept: Vec<&str> = why
        .split_inclusive(". ")
        .filter(|sentence| {
            !sentence.contains("press s")
                && !sentence.contains("Press s")
                && !sentence.starts_with("s ends")
        })
        .collect();
    kept.concat().trim_end().to_string()
}

/// A block title from whole chunks, with the closing space, within the borders.
fn titled(chunks: Chunks, width: u16, theme: &Theme) -> Line<'static> {
    let mut line = super::whole_chunks(chunks, (width as usize).saturating_sub(3));
    line.spans.push(Span::styled(" ", theme.title()));
    line
}

fn warnings_panel(f: &Face, frame: &mut Frame, area: Rect, warnings: &[String]) {
    let theme = &f.app.theme;
    if area.height == 1 {
        // Squeezed: the count and the first problem on one line.
        let line = match warnings.first() {
            _ if !f.dashboard.diagnosed => Line::styled("Checking…", theme.dim()),
            None => Line::styled("No problems found.", theme.ok()),
            Some(first) => Line::from(vec![
                Span::styled(format!("! {} problem(s): ", warnings.len()), theme.warn()),
                Span::raw(first.clone()),
            ]),
        };
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    let title = if warnings.is_empty() {
        " Diagnostics ".to_string()
    } else {
        format!(" Diagnostics: {} warning(s) ", warnings.len())
    };
    let lines: Vec<Line> = if !f.dashboard.diagnosed {
        vec![Line::styled("Checking…", theme.dim())]
    } else if warnings.is_empty() {
        vec![Line::styled("No problems found.", theme.ok())]
    } else {
        warning_lines(
            f,
            warnings,
            area.width.saturating_sub(4) as usize,
            area.height.saturating_sub(2) as usize,
        )
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(Span::styled(title, theme.title()))),
        area,
    );
}

/// The warnings that fit in `rows` rows of `width` columns (after the "! " mark),
/// each whole, and "+N more" for those that do not: the count in the title is then
/// never more than what can be read.
fn warning_lines(f: &Face, warnings: &[String], width: usize, rows: usize) -> Vec<Line<'static>> {
    let theme = &f.app.theme;
    let mut lines = Vec::new();
    let mut shown = 0;
    for (i, warning) in warnings.iter().enumerate() {
        let wrapped = super::wrap(warning, width);
        let more_after = usize::from(i + 1 < warnings.len());
        let fits = lines.len() + wrapped.len() + more_after <= rows;
        // The first is shown as far as it goes even when it alone is too long.
        if !fits && shown > 0 {
            break;
        }
        let room = rows.saturating_sub(lines.len() + more_after).max(1);
        for (j, row) in wrapped.into_iter().take(room).enumerate() {
            let mark = if j == 0 {
                Span::styled("! ", theme.warn())
            } else {
                Span::raw("  ")
            };
            lines.push(Line::from(vec![mark, Span::raw(row)]));
        }
        shown += 1;
    }
    if shown < warnings.len() {
        lines.push(Line::styled(
            format!(
                "+{} more (the whole list: omero-webctl diagnostics)",
                warnings.len() - shown
            ),
            theme.dim(),
        ));
    }
    lines
}
