//! The `?` overlay: every binding of the keymap, by context, the one for the current
//! tab first.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{centred, scrolled};
use crate::tui::app::{App, Tab};
use crate::tui::keymap::{Context, help_entries};

/// Contexts in the order shown: the current tab's first, then all tabs, the rest.
fn order(tab: Tab) -> Vec<Context> {
    let current = match tab {
        Tab::Dashboard => Context::Dashboard,
        Tab::Properties => Context::Properties,
        Tab::Nginx => Context::Nginx,
        Tab::Log => Context::Log,
        Tab::Fleet => Context::Fleet,
    };
    let mut order = vec![current, Context::Global];
    for context in Context::HELP_ORDER {
        if !order.contains(&context) {
            order.push(context);
        }
    }
    order
}

/// The overlay's rectangle on a screen of `area`.
fn popup(area: Rect) -> Rect {
    centred(area, 96, area.height.saturating_sub(1))
}

/// Lines the overlay has for `tab` (for scrolling limits).
fn lines(tab: Tab) -> usize {
    let contexts = order(tab);
    let entries: usize = contexts.iter().map(|&c| help_entries(c).len() + 1).sum();
    // A blank line between contexts, and the closing note with its blank line.
    entries + contexts.len() - 1 + 2
}

/// How far the overlay can scroll on a screen of `screen` (for the update step).
pub fn max_scroll(screen: (u16, u16), tab: Tab) -> usize {
    // The keys are not wrapped: the width does not matter.
    scrolled::max_scroll_on(screen, popup, |_| lines(tab))
}

pub fn draw(app: &App, frame: &mut Frame, area: Rect, scroll: usize) {
    let theme = &app.theme;
    let order = order(app.tab);
    let key_width = 12;
    let mut lines = Vec::new();
    for context in order {
        if !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::styled(context.title(), theme.accent()));
        for (keys, help) in help_entries(context) {
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<key_width$}"), theme.key()),
                Span::raw(help),
            ]));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Text fields also take ←/→, Home/End, Backspace/Del and C-u (clear to the start).",
        theme.dim(),
    ));
    scrolled::draw(
        frame,
        theme,
        (area, popup),
        |_| lines,
        scroll,
        Span::styled(" Keys (Esc closes) ", theme.title()),
    );
}
