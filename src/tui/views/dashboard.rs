//! Dashboard: pool state, request rate and status codes, latency, workers, warnings.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table, TableState, Wrap};

use super::{bytes, duration, state_style};
use crate::config::{Config, Settings};
use crate::status::WorkerState;
use crate::status::activity::{self, WorkerActivity};
use crate::status::stats::LatencyBound;
use crate::tui::app::App;
use crate::tui::dashboard::{Dashboard, SortColumn, WorkerRow};
use crate::tui::event::{Job, NginxObservation, PoolObservation};
use crate::tui::servers::Tone;
use crate::tui::theme::Theme;

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

fn pool_panel(f: &Face, frame: &mut Frame, area: Rect) {
    let theme = &f.app.theme;
    let state = f.dashboard.state(f.job);
    let mut lines: Vec<Chunks> = Vec::new();
    let state_chunk = vec![
        label("State"),
        Span::styled(state.label(), state_style(theme, state)),
    ];
    let bind_line: Chunks = match &f.dashboard.pool {
        Some(PoolObservation::Running(s)) => {
            lines.push(vec![
                state_chunk,
                vec![Span::raw(format!(
                    " · {}/{}",
                    s.workers.len(),
                    s.target_workers
                ))],
                vec![Span::raw(format!(" {}", s.worker_class))],
            ]);
            lines.push(vec![
                vec![label("Master"), Span::raw(format!("PID {}", s.master_pid))],
                vec![Span::raw(format!(" · up {}", duration(s.uptime_secs)))],
            ]);
            vec![vec![label("Bind"), Span::raw(s.bind.clone())]]
        }
        other => {
            lines.push(vec![state_chunk]);
            let mut master = vec![label("Master")];
            let mut more = Vec::new();
            let pid_text =
                |pid: &Option<u32>| pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
            match other {
                Some(PoolObservation::Stale { pid, orphans }) if !orphans.is_empty() => {
                    master.push(Span::raw(format!("gone (PID {})", pid_text(pid))));
                    more.push(vec![Span::raw(format!(
                        " · {} orphaned workers still serving",
                        orphans.len()
                    ))]);
                    more.push(vec![Span::raw(format!(
                        " (PIDs {})",
                        crate::supervisor::pid_list(orphans)
                    ))]);
                }
                Some(PoolObservation::Stale { pid, .. }) => {
                    master.push(Span::raw(format!("stale pid file (PID {})", pid_text(pid))));
                }
                Some(PoolObservation::Halted(halt)) => master.push(Span::raw(halt.describe())),
                Some(PoolObservation::Error(e)) => master.push(Span::raw(e.clone())),
                _ => master.push(Span::raw("—")),
            }
            let mut line = vec![master];
            line.extend(more);
            lines.push(line);
            match f.settings() {
                Some(s) => vec![
                    vec![label("Bind"), Span::styled(s.bind(), theme.dim())],
                    vec![Span::styled(" (configured)", theme.dim())],
                ],
                None => vec![vec![label("Bind"), Span::styled("—", theme.dim())]],
            }
        }
    };
    lines.push(match &f.dashboard.nginx {
        Some(NginxObservation::Running { pid, port }) => {
            let mut line = vec![
                vec![label("nginx"), Span::styled("RUNNING", theme.ok())],
                vec![Span::raw(format!(" PID {pid}"))],
            ];
            if let Some(p) = port {
                line.push(vec![Span::raw(format!(" :{p}"))]);
            }
            line
        }
        Some(NginxObservation::NotRunning) => vec![
            vec![label("nginx"), Span::styled("STOPPED", theme.bold())],
            vec![Span::styled(" (private instance)", theme.dim())],
        ],
        Some(NginxObservation::Error(e)) => vec![vec![
            label("nginx"),
            Span::styled(format!("UNKNOWN: {e}"), theme.error()),
        ]],
        None => vec![vec![label("nginx"), Span::raw("…")]],
    });
    // The Server line yields to "Open" when rows are short (an unreachable server is
    // among the problems too).
    let rows = (area.height as usize).saturating_sub(2);
    if let Some((summary, tone)) = f.dashboard.servers.summary()
        && lines.len() + 2 <= rows
    {
        let style = match tone {
            Tone::Good => theme.ok(),
            Tone::Bad => theme.error(),
            Tone::Unknown => theme.dim(),
        };
        let mut line = vec![vec![label("Server")]];
        for (i, part) in summary.split(" · ").enumerate() {
            let text = if i == 0 {
                part.to_string()
            } else {
                format!(" · {part}")
            };
            line.push(vec![Span::styled(text, style)]);
        }
        // The label goes with the verdict.
        let verdict = line.remove(1);
        line[0].extend(verdict);
        lines.push(line);
    }
    // Access control's counts (embedded sites with users), like the Server line.
    if let Some(access) = &f.dashboard.access
        && lines.len() + 2 <= rows
    {
        let line = match access {
            Ok(c) => {
                let failed_style = if c.failed_last_hour > 0 {
                    theme.warn()
                } else {
                    theme.dim()
                };
                // Half an 80-column screen holds only the short words.
                let (sessions, users, failed) = if area.width >= 72 {
                    (
                        "sessions",
                        "users logged in",
                        "failed logins in the last hour",
                    )
                } else {
                    ("sess", "users", "failed/h")
                };
                vec![
                    vec![
                        label("Access"),
                        Span::raw(format!("{} {sessions}", c.sessions)),
                    ],
                    vec![Span::raw(format!(" · {} {users}", c.users))],
                    vec![Span::styled(
                        format!(" · {} {failed}", c.failed_last_hour),
                        failed_style,
                    )],
                ]
            }
            Err(e) => vec![vec![
                label("Access"),
                Span::styled(e.clone(), theme.error()),
            ]],
        };
        lines.push(line);
    }
    // Rows left for the optional lines, after the "Open" line below.
    let room = (area.height as usize).saturating_sub(2 + lines.len() + 1);
    if room >= 1 {
        lines.insert(2, bind_line);
    }
    // On a tall terminal, the host under the pool (its low-space warnings are in the
    // problems whatever the size).
    if room >= 2
        && let Some(host) = &f.dashboard.host
    {
        let parts: Vec<String> = host.summary().split(" · ").map(str::to_string).collect();
        let mut line = vec![vec![label("Host")]];
        line.extend(super::plain_chunks(&parts, " · "));
        let first = line.remove(1);
        line[0].extend(first);
        lines.push(line);
    }
    let width = area.width.saturating_sub(2) as usize;
    let mut text: Vec<Line> = lines
        .into_iter()
        .map(|chunks| super::whole_chunks(chunks, width))
        .collect();
    text.push(open_line(f, width));
    // What serves the site, so the two kinds of site are told apart at a glance.
    let mut title = vec![vec![Span::styled(" Pool", theme.title())]];
    for part in f.dashboard.backend.split(" · ").filter(|p| !p.is_empty()) {
        title.push(vec![Span::styled(format!(" · {part}"), theme.title())]);
    }
    let title = titled(title, area.width, theme);
    frame.render_widget(
        Paragraph::new(text).block(Block::bordered().title(title)),
        area,
    );
}

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

/// Where to point a browser, as much of it as fits: with its label, else alone,
/// else without the scheme; never a cut address.
fn open_line(f: &Face, width: usize) -> Line<'static> {
    let theme = &f.app.theme;
    let Some(url) = url(f) else {
        return super::whole_chunks(
            vec![vec![
                label("Open"),
                Span::styled(
                    if f.local {
                        "not serving (s starts)"
                    } else {
                        "not serving"
                    },
                    theme.dim(),
                ),
            ]],
            width,
        );
    };
    let bare = url.trim_start_matches("http://").to_string();
    let candidates = [
        vec![label("Open"), Span::styled(url.clone(), theme.accent())],
        vec![Span::styled(url, theme.accent())],
        vec![Span::styled(bare, theme.accent())],
    ];
    candidates
        .into_iter()
        .find(|c| c.iter().map(Span::width).sum::<usize>() <= width)
        .map(Line::from)
        .unwrap_or_default()
}

fn requests_panel(f: &Face, frame: &mut Frame, area: Rect) {
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
        Some(r) => super::whole_chunks(
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
                super::whole_chunks(
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
                super::whole_chunks(
                    super::plain_chunks(
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

fn workers_table(f: &Face, frame: &mut Frame, area: Rect) {
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
    let title = super::whole_chunks(title, (area.width as usize).saturating_sub(2));
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

/// One worker in detail, like htop's or k9s's "describe": its figures, what it serves
/// now, its last requests and slowest paths, and its CPU, memory and request rate over
/// the last minute (Enter on the workers table).
pub fn worker_detail(app: &App, frame: &mut Frame, area: Rect, pid: u32) {
    use ratatui::widgets::Clear;
    let theme = &app.theme;
    let popup = super::centred(
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
        let mut chunks = super::plain_chunks(&parts, " · ");
        if let Some(first) = chunks.first_mut() {
            first.insert(0, label(name));
        }
        super::whole_chunks(chunks, width)
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
