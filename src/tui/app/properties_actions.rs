//! What the Properties tab's actions do: edit, unset (after asking), filter and
//! complete. Saving is an effect; the runtime writes the file.

use super::{App, Confirmed, Tab};
use crate::tui::event::Effect;
use crate::tui::input::LineInput;

/// Edits the selected property.
pub(super) fn edit(app: &mut App) -> Vec<Effect> {
    let config = match &app.config {
        Ok(c) => c,
        Err(e) => {
            let e = format!("Nothing can be edited while the config is unusable: {e}");
            app.error(e);
            return Vec::new();
        }
    };
    if app.properties.begin_edit(config).is_none() {
        app.warn("No property matches the filter.");
    }
    Vec::new()
}

/// Asks before unsetting the selected property (its default applies).
pub(super) fn unset(app: &mut App) -> Vec<Effect> {
    let Some(prop) = app.properties.selected_property() else {
        return Vec::new();
    };
    let Ok(config) = &app.config else {
        app.error("Nothing can be changed while the config is unusable.");
        return Vec::new();
    };
    let Some(value) = config.get(prop.key) else {
        app.info(format!("{} is not set; its default applies.", prop.key));
        return Vec::new();
    };
    let shown = if prop.secret {
        "(hidden)".to_string()
    } else {
        value.to_raw()
    };
    let default = config
        .default_of(prop)
        .map(|v| v.to_raw())
        .unwrap_or_else(|| "unset".into());
    app.confirm(
        format!("Unset {}?", prop.key),
        vec![
            format!("Now: {shown}"),
            format!("Then: {default} (the default)"),
        ],
        Confirmed::Unset(prop.key),
    );
    Vec::new()
}

/// Filters the list as you type.
pub(super) fn filter(app: &mut App) -> Vec<Effect> {
    app.properties.filter_before = app.properties.filter.clone();
    app.properties.filter_input = Some(LineInput::new(app.properties.filter.clone()));
    Vec::new()
}

/// Completes the text being typed (a value, or the filter) from what it can be.
pub(super) fn complete(app: &mut App) -> Vec<Effect> {
    if app.tab == Tab::Properties {
        app.properties.complete();
    }
    Vec::new()
}
