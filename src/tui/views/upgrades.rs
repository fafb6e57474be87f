//! The `U` screen: the generations while a change runs, the steps of the running or
//! last change with their progress, the health window's figures, and the history with
//! what `rollback` returns to. Everything comes from what the CLI wrote under
//! `var/generations/` (the sampler reads it); the panel only starts a rollback.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{scrolled, wrap};
use crate::supervisor::progress::StepState;
use crate::tui::app::App;
use crate::tui::event::ChangesSeen;
use crate::tui::keymap::{self, Action, Context};

/// The screen's rectangle on a screen of `area`: between the tab bar and the status
/// line, so that the hint bar shows what its keys do.
fn popup(area: Rect) -> Rect {
    Rect {
        x: area.x,
        y: area.y + 1,
        width: area.width,
        height: area.height.saturating_sub(3),
    }
}

/// One generation in a line: role, master, port, workers, what it runs.
pub fn generation_line(g: &crate::supervisor::progress::GenerationSeen, workers: usize) -> String {
    format!(
        "{:<8} master {} on :{} · {} worker{} · {}",
        g.role,
        g.master,
        g.port,
        workers,
        if workers == 1 { "" } else { "s" },
        g.runs
    )
}

fn rows(app: &App, width: usize) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let changes: &ChangesSeen = &app.dashboard.changes;
    let mut out = Vec::new();
    let mut text = |line: String, style: ratatui::style::Style, indent: usize| {
        for (i, chunk) in wrap(&line, width.saturating_sub(indent + 2).max(10))
            .into_iter()
            .enumerate()
        {
            let pad = if i == 0 { indent } else { indent + 2 };
            out.push(Line::styled(format!("{}{chunk}", " ".repeat(pad)), style));
        }
    };
    text("Generations".into(), theme.title(), 0);
    if changes.generations.is_empty() {
        text(
            "one generation serves (no change running)".into(),
            theme.dim(),
            2,
        );
    }
    for (g, workers) in &changes.generations {
        text(generation_line(g, *workers), theme.bold(), 2);
    }
    text(String::new(), theme.dim(), 0);
    match &changes.progress {
        None => text("No change recorded yet.".into(), theme.dim(), 0),
        Some(p) => {
            let state = match (&p.outcome, changes.running) {
                (Some(outcome), _) => outcome.clone(),
                (None, true) => "running".into(),
                (None, false) => "ended without an outcome (its command is gone)".into(),
            };
            let style = match &p.outcome {
                Some(o) if o == "ok" || o.starts_with("ok,") => theme.ok(),
                Some(_) => theme.error(),
                None => theme.warn(),
            };
            text(
                format!("{}, started {}: {state}", p.action, p.started),
                style,
                0,
            );
            for step in &p.steps {
                let (mark, style) = match step.state {
                    StepState::Done => ("✓", theme.ok()),
                    StepState::Running => ("▶", theme.warn()),
                    StepState::Failed => ("✗", theme.error()),
                    StepState::Pending => ("·", theme.dim()),
                    StepState::Skipped => ("-", theme.dim()),
                };
                let detail = if step.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", step.detail)
                };
                text(format!("{mark} {}{detail}", step.name), style, 2);
            }
            if let Some(h) = &p.health {
                text(
                    format!(
                        "health window: {} s of {} s · {} probes · {} errors",
                        h.elapsed_s, h.window_s, h.probes, h.errors
                    ),
                    if h.errors > 0 {
                        theme.error()
                    } else {
                        theme.ok()
                    },
                    2,
                );
            }
        }
    }
    text(String::new(), theme.dim(), 0);
    let rollback_keys = keymap::keys_of(Context::Upgrades, Action::Rollback);
    match &changes.rollback_target {
        Some(target) => text(
            format!("Rollback target: {target} ({rollback_keys} rolls back)"),
            theme.bold(),
            0,
        ),
        None => text("Rollback target: none kept".into(), theme.dim(), 0),
    }
    text(String::new(), theme.dim(), 0);
    text("History, newest first".into(), theme.title(), 0);
    if changes.history.is_empty() {
        text("no changes recorded yet".into(), theme.dim(), 2);
    }
    let pid = |p: Option<u32>| p.map_or_else(|| "-".to_string(), |p| p.to_string());
    for c in &changes.history {
        let style = if c.outcome == "ok" || c.outcome.starts_with("ok,") {
            theme.ok()
        } else {
            theme.error()
        };
        text(
            format!(
                "{}  {:<8} master {} → {}  {}{}",
                c.at,
                c.action,
                pid(c.from_master),
                pid(c.to_master),
                c.outcome,
                if c.rollback_available {
                    "  (rollback available)"
                } else {
                    ""
                }
            ),
            style,
            2,
        );
        if let Some(generations) = crate::supervisor::history::generations_line(c) {
            text(format!("generations: {generations}"), theme.dim(), 6);
        }
        for applied in &c.applied {
            text(applied.clone(), theme.dim(), 6);
        }
    }
    out
}

/// How far the screen can scroll on a screen of `screen` (for the update step).
pub fn max_scroll(app: &App, screen: (u16, u16)) -> usize {
    scrolled::max_scroll_on(screen, popup, |width| rows(app, width).len())
}

pub fn draw(app: &App, frame: &mut Frame, area: Rect, scroll: usize) {
    let theme = &app.theme;
    scrolled::draw(
        frame,
        theme,
        (area, popup),
        |width| rows(app, width),
        scroll,
        Span::styled(
            " Upgrades: generations, changes, history (Esc closes) ",
            theme.title(),
        ),
    );
}
