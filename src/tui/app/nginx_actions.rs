//! What the nginx tab's actions do: the kind of config, its fields, `nginx -t`, the
//! difference from the file, writing it (after asking) and reloading the private nginx.

use super::update::run_job;
use super::{App, Confirmed};
use crate::tui::event::{Effect, Job};
use crate::tui::nginx_tab::{NginxField, Target};

/// Opens one of the tab's fields (port, server name, body size, file) for editing.
pub(super) fn edit_field(app: &mut App, field: NginxField) -> Vec<Effect> {
    app.nginx.begin_edit(field);
    Vec::new()
}

/// The next kind of config (development, production, …).
pub(super) fn next_kind(app: &mut App) -> Vec<Effect> {
    app.nginx.next_kind();
    app.rerender_nginx();
    app.maybe_check_nginx()
}

/// `nginx -t` on the preview, unless one runs.
pub(super) fn check(app: &mut App) -> Vec<Effect> {
    if app.nginx.check_running() {
        app.info("nginx -t is already running.");
        return Vec::new();
    }
    app.check_nginx_now()
}

/// The preview, or its difference from the file.
pub(super) fn toggle_diff(app: &mut App) -> Vec<Effect> {
    app.nginx.show_diff = !app.nginx.show_diff;
    app.nginx.scroll = 0;
    if app.nginx.show_diff {
        // The file may have changed since it was read.
        return vec![Effect::ReadNginxTarget(app.nginx.output_path.clone())];
    }
    Vec::new()
}

/// Asks before writing the preview to its file.
pub(super) fn write(app: &mut App) -> Vec<Effect> {
    if app.nginx.preview.is_err() {
        app.error("Nothing to write: the config cannot be rendered.");
        return Vec::new();
    }
    if app.nginx.writing {
        return Vec::new();
    }
    let (added, removed) = crate::tui::diff::summary(&app.nginx.diff);
    let detail = match &app.nginx.target {
        Target::Present(_) if app.nginx.up_to_date() => {
            app.info("The file already holds this config.");
            return Vec::new();
        }
        Target::Present(_) => format!("It replaces the file: +{added} -{removed} lines."),
        Target::Missing => "The file does not exist yet.".to_string(),
        Target::NotRead | Target::Unreadable(_) => {
            "The file could not be read; it will be replaced.".to_string()
        }
    };
    app.confirm(
        format!(
            "Write the {} config to {}?",
            app.nginx.kind,
            app.nginx.output_path.display()
        ),
        vec![detail],
        Confirmed::WriteNginx,
    );
    Vec::new()
}

/// Reloads the private nginx.
pub(super) fn reload(app: &mut App) -> Vec<Effect> {
    if !app.nginx_running() {
        app.warn("The private nginx is not running (Dashboard: n starts it).");
        return Vec::new();
    }
    run_job(app, Job::NginxReload)
}
