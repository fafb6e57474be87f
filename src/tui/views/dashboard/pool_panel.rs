//! The Dashboard's pool panel: state, master and bind, the private nginx, the
//! OMERO.servers, the host, and where to point a browser.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::{Chunks, Face, label, titled, url};
use crate::tui::event::{NginxObservation, PoolObservation};
use crate::tui::servers::Tone;
use crate::tui::views::{duration, state_style};

pub(super) fn pool_panel(f: &Face, frame: &mut Frame, area: Rect) {
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
        line.extend(crate::tui::views::plain_chunks(&parts, " · "));
        let first = line.remove(1);
        line[0].extend(first);
        lines.push(line);
    }
    let width = area.width.saturating_sub(2) as usize;
    let mut text: Vec<Line> = lines
        .into_iter()
        .map(|chunks| crate::tui::views::whole_chunks(chunks, width))
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

/// Where to point a browser, as much of it as fits: with its label, else alone,
/// else without the scheme; never a cut address.
fn open_line(f: &Face, width: usize) -> Line<'static> {
    let theme = &f.app.theme;
    let Some(url) = url(f) else {
        return crate::tui::views::whole_chunks(
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
