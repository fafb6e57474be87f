//! Events in, effects out: `update` is the one place the runtime's events (keys,
//! samples, job results, file reads) change the panel's state. A key becomes an
//! [`Action`](crate::tui::keymap::Action) through the keymap and is carried out by
//! [`perform`](super::perform()).

use crossterm::event::{KeyEvent, KeyEventKind};

use super::perform::perform;
use super::text_input::edit_input;
use super::{App, Confirmed, Popup, Tab};
use crate::config::Need;
use crate::tui::event::{Effect, Event, Job, JobFailure};
use crate::tui::keymap::{self, Context};
use crate::tui::log_view::LogSource;
use crate::tui::nginx_tab::{CheckState, Target};

/// The one entry point: applies an event, returns the effects to perform.
pub fn update(app: &mut App, event: Event) -> Vec<Effect> {
    match event {
        Event::Key(key) => on_key(app, key),
        Event::Resize(w, h) => {
            app.screen = (w, h);
            app.dirty = true;
            Vec::new()
        }
        Event::Sample(sample) => {
            if app.dashboard.apply_sample(&sample) {
                app.dirty = true;
            }
            app.clock = sample.at;
            if app.message.as_ref().is_some_and(|m| m.expired(app.clock)) {
                app.message = None;
                app.dirty = true;
            }
            let mut effects = check_servers(app);
            if sample.config_stamp != app.config_stamp {
                app.config_stamp = sample.config_stamp;
                effects.push(Effect::LoadConfig);
            }
            effects
        }
        Event::ServersProbed { probed, results } => {
            if app.dashboard.servers.reported(&probed, results, app.clock) {
                app.dirty = true;
            }
            // A list that changed meanwhile is probed now.
            check_servers(app)
        }
        Event::Changes(changes) => {
            app.dashboard.changes = *changes;
            app.dirty = true;
            Vec::new()
        }
        Event::Host(host) => {
            if app.dashboard.host.as_ref() != Some(&host) {
                app.dashboard.host = Some(*host);
                app.dirty = true;
            }
            Vec::new()
        }
        Event::Diagnostics(warnings) => {
            if warnings != app.dashboard.warnings || !app.dashboard.diagnosed {
                app.dashboard.diagnosed = true;
                app.dashboard.warnings = warnings;
                app.dirty = true;
            }
            Vec::new()
        }
        Event::LogReset {
            generation,
            lines,
            error,
        } => {
            if generation == app.log.generation {
                app.log.lines.clear();
                app.log.dropped = 0;
                app.log.push_lines(lines);
                app.log.error = error;
                app.dirty = true;
            }
            Vec::new()
        }
        Event::LogLines { generation, lines } => {
            if generation == app.log.generation && !lines.is_empty() {
                let errors = app.log.push_lines(lines);
                if app.tab != Tab::Log {
                    app.log.unseen_errors += errors;
                }
                app.log.error = None;
                app.dirty = true;
            }
            Vec::new()
        }
        Event::LogDeleted {
            generation,
            deleted,
        } => {
            if generation == app.log.generation && app.log.deleted != deleted {
                app.log.deleted = deleted;
                app.dirty = true;
                let name = app.log.source.title();
                if deleted {
                    app.warn(format!(
                        "{name} was deleted; its writer still appends to the open file (reopen-logs recreates it)"
                    ));
                } else {
                    app.info(format!("{name} is back; following the new file."));
                }
            }
            Vec::new()
        }
        Event::LogError { generation, error } => {
            if generation == app.log.generation && app.log.error.as_ref() != Some(&error) {
                app.log.error = Some(error);
                app.dirty = true;
            }
            Vec::new()
        }
        Event::JobFinished { job, result } => {
            app.dirty = true;
            app.job = None;
            match result {
                Ok(text) => app.info(text),
                Err(JobFailure { message, details }) => {
                    app.error(message.clone());
                    if !details.is_empty() && app.popup.is_none() {
                        app.popup = Some(Popup::Message {
                            title: format!("{} failed", job_title(job)),
                            lines: std::iter::once(message).chain(details).collect(),
                        });
                    }
                    app.queued_jobs.clear();
                }
            }
            let mut effects = vec![Effect::SampleNow];
            // These rewrite the private nginx's config: the nginx tab compares anew.
            if matches!(
                job,
                Job::Start { .. } | Job::NginxStart { .. } | Job::NginxReload
            ) {
                effects.push(Effect::ReadNginxTarget(app.nginx.output_path.clone()));
            }
            if let Some(next) = app.queued_jobs.pop_front() {
                effects.extend(run_job(app, next));
            }
            effects
        }
        Event::ConfigSaved { config, key, needs } => {
            app.dirty = true;
            let value = config
                .get(&key)
                .map(|v| {
                    let secret = crate::config::registry::lookup(&key).is_some_and(|p| p.secret);
                    if secret {
                        "(hidden)".to_string()
                    } else {
                        v.to_raw()
                    }
                })
                .unwrap_or_else(|| "(default)".into());
            app.config = Ok(*config);
            if app.properties.edit.as_ref().is_some_and(|e| e.key == key) {
                app.properties.edit = None;
            }
            app.info(format!("Saved {key} = {value}"));
            let mut effects = config_changed(app);
            effects.extend(offer_to_apply(app, &key, needs));
            effects
        }
        Event::ConfigSaveFailed { error, reloaded } => {
            app.dirty = true;
            if let Some(edit) = &mut app.properties.edit {
                edit.saving = false;
            }
            match reloaded {
                Some(Ok(config)) => {
                    app.config = Ok(*config);
                    app.error(format!(
                        "Not saved: {error}. Reloaded the file; check the value and save again."
                    ));
                    config_changed(app)
                }
                Some(Err(load_error)) => {
                    app.config = Err(load_error);
                    app.error(format!("Not saved: {error}"));
                    config_changed(app)
                }
                None => {
                    app.error(format!("Not saved: {error}"));
                    Vec::new()
                }
            }
        }
        Event::ConfigLoaded(result) => {
            let same = match (&result, &app.config) {
                (Ok(new), Ok(old)) => new.original_bytes() == old.original_bytes(),
                (Err(new), Err(old)) => new == old,
                _ => false,
            };
            if same {
                return Vec::new();
            }
            app.dirty = true;
            match result {
                Ok(config) => {
                    app.config = Ok(*config);
                    app.info("The config file changed on disk; reloaded it.");
                }
                Err(e) => {
                    app.error(format!("The config file cannot be used: {e}"));
                    app.config = Err(e);
                }
            }
            config_changed(app)
        }
        Event::NginxChecked { text_hash, result } => {
            if app.nginx.check == (CheckState::Running { text_hash }) {
                app.nginx.check = CheckState::Done { text_hash, result };
                app.dirty = true;
            }
            app.maybe_check_nginx()
        }
        Event::NginxTargetRead { path, content } => {
            if path == app.nginx.output_path {
                app.nginx.target = match content {
                    Ok(Some(text)) => Target::Present(text),
                    Ok(None) => Target::Missing,
                    Err(e) => Target::Unreadable(e),
                };
                app.nginx.recompute_diff();
                app.dirty = true;
            }
            Vec::new()
        }
        Event::NginxWritten { path, result } => {
            app.nginx.writing = false;
            app.dirty = true;
            match result {
                Ok(()) => {
                    app.info(format!("Wrote {}", path.display()));
                    if app.nginx_running() {
                        app.confirm(
                            "Reload the private nginx now?",
                            vec![
                                "It runs the nginx-development config rendered from the same properties."
                                    .into(),
                            ],
                            Confirmed::Jobs(vec![Job::NginxReload]),
                        );
                    }
                }
                Err(e) => app.error(format!("Not written: {e}")),
            }
            vec![Effect::ReadNginxTarget(path)]
        }
        Event::Fleet(rows) => {
            if let Some(fleet) = &mut app.fleet {
                fleet.observe(rows);
                app.dirty |= app.tab == Tab::Fleet;
            }
            Vec::new()
        }
        Event::Member(reading) => {
            let open = matches!(app.popup, Some(Popup::Member));
            match &mut app.member {
                Some(view) if open && view.generation == reading.generation => {
                    app.dirty |= view.apply(*reading);
                    Vec::new()
                }
                // A reading for a view that is gone: its reader stops.
                Some(view) if view.generation > reading.generation => Vec::new(),
                _ => {
                    app.member = None;
                    vec![Effect::MemberClose]
                }
            }
        }
        Event::FleetProgress(line) => {
            if let Some(fleet) = &mut app.fleet {
                fleet.busy = Some(line.clone());
            }
            app.info(line);
            app.dirty = true;
            vec![Effect::FleetRefresh]
        }
        Event::FleetRolled(result) => {
            if let Some(fleet) = &mut app.fleet {
                fleet.busy = None;
            }
            match result {
                Ok(()) => {
                    app.info("Rolling reload done: every member reloaded and back in the front.")
                }
                Err(e) => app.error(format!("Rolling reload stopped: {e}")),
            }
            app.dirty = true;
            vec![Effect::FleetRefresh]
        }
        Event::FleetDrained {
            name,
            drain,
            result,
        } => {
            if let Some(fleet) = &mut app.fleet {
                fleet.busy = None;
            }
            let verb = if drain {
                "drained"
            } else {
                "back in the front"
            };
            match result {
                Ok(_) => app.info(format!("{name}: {verb}")),
                Err(e) => app.error(format!("{name}: {e}")),
            }
            app.dirty = true;
            vec![Effect::FleetRefresh]
        }
        Event::Terminate => {
            app.quit = true;
            Vec::new()
        }
    }
}

fn job_title(job: Job) -> &'static str {
    match job {
        Job::Start { .. } => "Start",
        Job::Stop => "Stop",
        Job::Restart => "Restart",
        Job::Reload => "Reload",
        Job::Rollback => "Rollback",
        Job::Scale(_) => "Scale",
        Job::KillWorker(_) => "Kill worker",
        Job::NginxStart { .. } => "nginx start",
        Job::NginxStop => "nginx stop",
        Job::NginxReload => "nginx reload",
    }
}

/// After the config changed (saved, reloaded or broken): the nginx preview, and the
/// log file if `omero.web.logdir` moved.
/// Probes the OMERO.servers when due (see [`crate::tui::servers`]). Only OMERO.web logs
/// in to them: an embedded site serves its own images.
pub(super) fn check_servers(app: &mut App) -> Vec<Effect> {
    if app.site.kind() != crate::site::SiteKind::OmeroWeb {
        return Vec::new();
    }
    let entries = match &app.config {
        Ok(config) => crate::reachability::configured_servers(config),
        Err(_) => Ok(Vec::new()),
    };
    let before = app.dashboard.servers.clone();
    let due = app.dashboard.servers.due(entries, app.clock);
    if app.dashboard.servers != before {
        app.dirty = true;
    }
    due.map(|entries| vec![Effect::ProbeServers(entries)])
        .unwrap_or_default()
}

fn config_changed(app: &mut App) -> Vec<Effect> {
    app.rerender_nginx();
    // Diagnostics now, not in up to 30 s: a running nginx may have become stale.
    let mut effects = vec![Effect::SampleNow];
    effects.extend(app.maybe_check_nginx());
    effects.extend(check_servers(app));
    if let Some(settings) = app.settings() {
        let path = app.log.source.path(&app.site, Some(&settings));
        if path != app.log.path {
            let source = app.log.source;
            effects.extend(follow_log(app, source));
        }
    }
    effects
}

/// After a save: what the change needs, offered as one question.
fn offer_to_apply(app: &mut App, key: &str, needs: &[Need]) -> Vec<Effect> {
    let mut jobs = Vec::new();
    let mut reasons = Vec::new();
    if app.pool_running() {
        if needs.contains(&Need::PoolRestart) {
            jobs.push(Job::Restart);
            reasons.push("restart the pool (the listener changes)");
        } else if needs.contains(&Need::PoolReload) {
            jobs.push(Job::Reload);
            reasons.push("reload the workers (rolling, no downtime)");
        }
    }
    if needs.contains(&Need::Nginx) {
        if app.nginx_running() {
            jobs.push(Job::NginxReload);
            reasons.push("reload the private nginx");
        }
        if app.nginx.target != Target::Missing && !app.nginx.up_to_date() {
            reasons.push("(a system nginx: write the new config from the nginx tab)");
        }
    }
    if jobs.is_empty() {
        let idle = !app.pool_running() && !app.nginx_running();
        if let Some(m) = &mut app.message
            && idle
        {
            m.text.push_str(" (takes effect at the next start)");
        }
        return Vec::new();
    }
    app.confirm(
        format!("{key} changed. Apply it now?"),
        reasons.into_iter().map(|r| format!("• {r}")).collect(),
        Confirmed::Jobs(jobs),
    );
    Vec::new()
}

pub(super) fn run_job(app: &mut App, job: Job) -> Vec<Effect> {
    if let Some(running) = app.job {
        app.warn(format!("Busy: {}", running.progress()));
        return Vec::new();
    }
    app.job = Some(job);
    app.message = None;
    vec![Effect::RunJob(job)]
}

pub(super) fn run_jobs(app: &mut App, mut jobs: Vec<Job>) -> Vec<Effect> {
    if jobs.is_empty() {
        return Vec::new();
    }
    if let Some(running) = app.job {
        app.warn(format!("Busy: {}", running.progress()));
        return Vec::new();
    }
    let first = jobs.remove(0);
    app.queued_jobs = jobs.into();
    run_job(app, first)
}

pub(super) fn follow_log(app: &mut App, source: LogSource) -> Vec<Effect> {
    let path = source.path(&app.site, app.settings().as_ref());
    app.log.switch(source, path.clone());
    vec![Effect::FollowLog {
        source,
        path,
        generation: app.log.generation,
    }]
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    // Some terminals report releases and repeats too; act on presses only.
    if key.kind != KeyEventKind::Press {
        return Vec::new();
    }
    app.dirty = true;
    let contexts = app.contexts();
    match keymap::action_for(&contexts, &key) {
        Some(action) => perform(app, action),
        None if contexts.contains(&Context::Input) => edit_input(app, &key),
        None => Vec::new(),
    }
}
