//! The tabs' text fields (a property's value, the property filter, an nginx field,
//! the log search): keys typed into them, Enter and Esc.

use crossterm::event::KeyEvent;

use super::{App, Tab, log_actions};
use crate::tui::event::Effect;

/// A key that is not bound in a text field edits the text.
pub(super) fn edit_input(app: &mut App, key: &KeyEvent) -> Vec<Effect> {
    match app.tab {
        Tab::Properties => {
            if let Some(edit) = &mut app.properties.edit {
                if !edit.saving && edit.input.handle(key) {
                    app.properties.revalidate();
                }
            } else if let Some(input) = &mut app.properties.filter_input
                && input.handle(key)
            {
                // The list filters as you type.
                app.properties.filter = input.value().to_string();
            }
        }
        Tab::Nginx => {
            if let Some(edit) = &mut app.nginx.edit
                && edit.input.handle(key)
            {
                app.nginx.revalidate();
            }
        }
        Tab::Log => {
            if let Some(input) = &mut app.log.search_input
                && input.handle(key)
            {
                // Matches are highlighted as you type.
                app.log.search = input.value().to_string();
            }
        }
        Tab::Dashboard | Tab::Fleet => {}
    }
    Vec::new()
}

pub(super) fn submit_input(app: &mut App) -> Vec<Effect> {
    match app.tab {
        Tab::Properties => {
            if app.properties.filter_input.take().is_some() {
                let shown = app.properties.visible().len();
                app.info(format!("{shown} properties match."));
                return Vec::new();
            }
            let Some(edit) = &mut app.properties.edit else {
                return Vec::new();
            };
            if edit.saving {
                return Vec::new();
            }
            if let Some(error) = &edit.error {
                let text = format!("Not saved: {error}");
                app.error(text);
                return Vec::new();
            }
            let Ok(config) = &app.config else {
                return Vec::new();
            };
            let key = edit.key;
            let raw = edit.input.value().to_string();
            let prop = crate::config::registry::lookup(key);
            let unchanged = match (prop.and_then(|p| p.parse(&raw).ok()), config.get(key)) {
                (Some(new), Some(old)) => new == *old,
                _ => false,
            };
            if unchanged {
                app.properties.edit = None;
                app.info(format!("{key} unchanged."));
                return Vec::new();
            }
            edit.saving = true;
            vec![Effect::SaveConfig {
                base: Box::new(config.clone()),
                key: key.to_string(),
                value: Some(raw),
            }]
        }
        Tab::Nginx => match app.nginx.apply_edit(app.site.root()) {
            Ok(path_changed) => {
                app.rerender_nginx();
                let mut effects = Vec::new();
                if path_changed {
                    effects.push(Effect::ReadNginxTarget(app.nginx.output_path.clone()));
                }
                effects.extend(app.maybe_check_nginx());
                effects
            }
            Err(e) => {
                app.error(e);
                Vec::new()
            }
        },
        Tab::Log => {
            if let Some(input) = app.log.search_input.take() {
                app.log.search = input.value().to_string();
                app.log.mark = None;
                if !app.log.search.is_empty() {
                    // The newest match first: the reader usually hunts something recent.
                    if !log_actions::jump(app, false, |v, l| v.matches(l)) {
                        let search = app.log.search.clone();
                        app.info(format!("No match for \"{search}\"."));
                    }
                }
            }
            Vec::new()
        }
        Tab::Dashboard | Tab::Fleet => Vec::new(),
    }
}

pub(super) fn cancel_input(app: &mut App) {
    match app.tab {
        Tab::Properties => {
            if app.properties.edit.take().is_none() && app.properties.filter_input.take().is_some()
            {
                app.properties.filter = app.properties.filter_before.clone();
            }
        }
        Tab::Nginx => app.nginx.edit = None,
        Tab::Log => {
            if app.log.search_input.take().is_some() {
                app.log.search = app.log.search_before.clone();
            }
        }
        Tab::Dashboard | Tab::Fleet => {}
    }
}
