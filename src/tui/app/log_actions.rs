//! What the Log tab's actions do: the file followed, following, wrapping, the level
//! filter, searching and jumping between matches and errors.

use super::App;
use super::update::follow_log;
use crate::logging::Level;
use crate::tui::event::Effect;
use crate::tui::input::LineInput;
use crate::tui::log_view::{LogLine, LogView};
use crate::tui::views;

/// Follows the next log file.
pub(super) fn next_source(app: &mut App) -> Vec<Effect> {
    let next = app.log.source.next(&app.site, app.settings().as_ref());
    follow_log(app, next)
}

/// Searches as you type.
pub(super) fn search(app: &mut App) -> Vec<Effect> {
    app.log.search_before = app.log.search.clone();
    app.log.search_input = Some(LineInput::new(app.log.search.clone()));
    Vec::new()
}

/// The next (`forward`) or previous match of the search.
pub(super) fn jump_to_match(app: &mut App, forward: bool) -> Vec<Effect> {
    if app.log.search.is_empty() {
        app.info("No search yet: press / to search.");
        return Vec::new();
    }
    if !jump(app, forward, |v, l| v.matches(l)) {
        let search = app.log.search.clone();
        app.info(format!(
            "No {} match for \"{search}\".",
            if forward { "later" } else { "earlier" }
        ));
    }
    Vec::new()
}

/// The next (`forward`) or previous error line.
pub(super) fn jump_to_error(app: &mut App, forward: bool) -> Vec<Effect> {
    let is_error = |_: &LogView, l: &LogLine| l.level.is_some_and(|l| l >= Level::Error);
    if !jump(app, forward, is_error) {
        app.info(if forward {
            "No later error."
        } else {
            "No earlier error."
        });
    }
    Vec::new()
}

/// Moves the view to the next (`forward`) or previous line that is `wanted`, as the
/// Log tab shows on this screen (its height, and its width when lines wrap); false
/// when there is none.
pub(super) fn jump(
    app: &mut App,
    forward: bool,
    wanted: impl Fn(&LogView, &LogLine) -> bool,
) -> bool {
    let height = views::log_rows(app.screen);
    let columns = app.log.wrap.then(|| views::log_columns(app.screen));
    app.log.jump(forward, height, columns, wanted)
}

/// Follows the end of the file, or stops following.
pub(super) fn toggle_follow(app: &mut App) -> Vec<Effect> {
    app.log.toggle_follow();
    Vec::new()
}

/// Wraps long lines, or cuts them.
pub(super) fn toggle_wrap(app: &mut App) -> Vec<Effect> {
    app.log.wrap = !app.log.wrap;
    Vec::new()
}

/// Shows only lines of the next level and above.
pub(super) fn next_level(app: &mut App) -> Vec<Effect> {
    app.log.next_level_filter();
    Vec::new()
}
