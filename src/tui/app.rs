//! The panel's state and its one update function. `update` is pure: it changes `App`
//! and returns the effects (I/O) it wants; the runtime performs them and reports back
//! with events. Tests drive it with events and look at the state and the effects.

use std::collections::VecDeque;

use crossterm::event::{KeyEvent, KeyEventKind};

use crate::config::{Config, Need, Settings};
use crate::logging::Level;
use crate::site::Site;

use super::dashboard::Dashboard;
use super::event::{Effect, Event, Job, JobFailure, NginxObservation, PoolObservation};
use super::input::LineInput;
use super::keymap::{self, Action, Context};
use super::log_view::{LogLine, LogSource, LogView};
use super::nginx_tab::{CheckState, NginxField, NginxTab, Target};
use super::properties::Properties;
use super::theme::Theme;
use super::views;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Dashboard,
    Properties,
    Nginx,
    Log,
    /// Only with a fleet file (after the others: their numbers stay).
    Fleet,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Dashboard, Tab::Properties, Tab::Nginx, Tab::Log];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Dashboard => "Dashboard",
            Tab::Properties => "Properties",
            Tab::Nginx => "nginx",
            Tab::Log => "Log",
            Tab::Fleet => "Fleet",
        }
    }

    /// The title where the full ones do not fit (a 60-column terminal).
    pub fn short_title(self) -> &'static str {
        match self {
            Tab::Dashboard => "Dash",
            Tab::Properties => "Props",
            Tab::Nginx => "nginx",
            Tab::Log => "Log",
            Tab::Fleet => "Fleet",
        }
    }

    fn context(self) -> Context {
        match self {
            Tab::Dashboard => Context::Dashboard,
            Tab::Properties => Context::Properties,
            Tab::Nginx => Context::Nginx,
            Tab::Log => Context::Log,
            Tab::Fleet => Context::Fleet,
        }
    }
}

/// What a confirmed question does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    Jobs(Vec<Job>),
    Unset(&'static str),
    WriteNginx,
    /// Drain (or undrain) a fleet member.
    Fleet {
        name: String,
        drain: bool,
    },
    /// A rolling reload of the fleet.
    FleetRoll,
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popup {
    Confirm {
        question: String,
        detail: Vec<String>,
        on_yes: Confirmed,
    },
    Message {
        title: String,
        lines: Vec<String>,
    },
    Help {
        scroll: usize,
    },
    /// The message history, newest first.
    Messages {
        scroll: usize,
    },
    /// One worker in detail (drill-down from the workers table).
    Worker {
        pid: u32,
    },
    /// The `U` screen: generations, the steps of the running or last change, the
    /// health window, the history with rollback targets.
    Upgrades {
        scroll: usize,
    },
    /// A fleet member's Dashboard (`App::member`), over the Fleet tab.
    Member,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub severity: Severity,
    pub text: String,
    /// When it was said, on the panel's clock ([`App::clock`]).
    pub at: f64,
}

/// How long a status line stays: information briefly, warnings longer, errors until
/// something replaces them (seconds on the panel's clock).
const INFO_LIFETIME: f64 = 30.0;
const WARNING_LIFETIME: f64 = 120.0;
/// Messages the history overlay keeps.
pub const MESSAGE_HISTORY: usize = 50;

impl Message {
    /// Whether it has outlived its lifetime at `now`.
    pub fn expired(&self, now: f64) -> bool {
        match self.severity {
            Severity::Info => now - self.at >= INFO_LIFETIME,
            Severity::Warning => now - self.at >= WARNING_LIFETIME,
            Severity::Error => false,
        }
    }
}

pub struct App {
    pub site: Site,
    pub theme: Theme,
    /// Terminal size, for paging and for centring jumps.
    pub screen: (u16, u16),
    pub tab: Tab,
    pub popup: Option<Popup>,
    pub message: Option<Message>,
    /// The last [`MESSAGE_HISTORY`] messages, oldest first (the `m` overlay).
    pub messages: VecDeque<Message>,
    /// The background job running now, and those queued behind it.
    pub job: Option<Job>,
    pub queued_jobs: VecDeque<Job>,
    /// The loaded config, or why it cannot be loaded (then nothing is editable).
    pub config: Result<Config, String>,
    config_stamp: Option<(i128, u64)>,
    pub dashboard: Dashboard,
    pub properties: Properties,
    pub nginx: NginxTab,
    pub log: LogView,
    /// The Fleet tab, when the site has a fleet file.
    pub fleet: Option<super::fleet_tab::FleetTab>,
    /// The fleet member whose Dashboard is open (Enter in the Fleet tab).
    pub member: Option<super::member_view::MemberView>,
    /// Openings of member Dashboards so far (tells stale readings apart).
    member_openings: u64,
    pub quit: bool,
    /// Something shown changed since the last draw.
    pub dirty: bool,
    /// Seconds since the panel started, as of the latest sample (the panel's clock:
    /// `update` reads no real clock).
    pub clock: f64,
}

impl App {
    /// The initial state and the effects that start the log tail and read the nginx
    /// output file. `worker_user` is `nginx::instance::worker_user(site)`, passed in so
    /// that `update` stays free of system calls.
    pub fn new(
        site: Site,
        config: Result<Config, String>,
        theme: Theme,
        worker_user: Option<String>,
        remembered_port: Option<u16>,
    ) -> (App, Vec<Effect>) {
        let settings = config.as_ref().ok().map(|c| c.settings());
        let omeroweb = site.kind() == crate::site::SiteKind::OmeroWeb;
        let log_path = LogSource::Omero.path(&site, settings.as_ref());
        // The private nginx's own file once it has run, so a write keeps it in step.
        let output = match remembered_port {
            Some(_) => crate::nginx::instance::config_path(&site),
            None => site.nginx_dir().join("omeroweb.conf"),
        };
        let mut app = App {
            nginx: NginxTab::new(output.clone(), worker_user, remembered_port),
            log: LogView::new(LogSource::Omero, log_path.clone()),
            site,
            theme,
            screen: (80, 24),
            tab: Tab::Dashboard,
            popup: None,
            message: None,
            messages: VecDeque::new(),
            job: None,
            queued_jobs: VecDeque::new(),
            config,
            config_stamp: None,
            dashboard: Dashboard::default(),
            properties: Properties {
                hide_embedded_only: omeroweb,
                ..Properties::default()
            },
            fleet: None,
            member: None,
            member_openings: 0,
            quit: false,
            dirty: true,
            clock: 0.0,
        };
        app.rerender_nginx();
        let mut effects = vec![
            Effect::FollowLog {
                source: LogSource::Omero,
                path: log_path,
                generation: app.log.generation,
            },
            Effect::ReadNginxTarget(output),
        ];
        effects.extend(check_servers(&mut app));
        (app, effects)
    }

    pub fn settings(&self) -> Option<Settings> {
        self.config.as_ref().ok().map(|c| c.settings())
    }

    /// The keymap contexts that apply now, most specific first.
    pub fn contexts(&self) -> Vec<Context> {
        match &self.popup {
            Some(Popup::Confirm { .. }) => return vec![Context::Confirm, Context::Always],
            Some(Popup::Upgrades { .. }) => {
                return vec![Context::Upgrades, Context::Overlay, Context::Always];
            }
            Some(_) => return vec![Context::Overlay, Context::Always],
            None => {}
        }
        if self.input_active() {
            return vec![Context::Input, Context::Always];
        }
        vec![self.tab.context(), Context::Global, Context::Always]
    }

    /// The tabs on the bar: the Fleet tab only with a fleet file.
    pub fn tabs(&self) -> Vec<Tab> {
        let mut tabs = Tab::ALL.to_vec();
        if self.fleet.is_some() {
            tabs.push(Tab::Fleet);
        }
        tabs
    }

    fn step_tab(&self, by: isize) -> Tab {
        let tabs = self.tabs();
        let i = tabs.iter().position(|&t| t == self.tab).unwrap_or(0) as isize;
        tabs[(i + by).rem_euclid(tabs.len() as isize) as usize]
    }

    fn input_active(&self) -> bool {
        match self.tab {
            Tab::Properties => {
                self.properties.edit.is_some() || self.properties.filter_input.is_some()
            }
            Tab::Nginx => self.nginx.edit.is_some(),
            Tab::Log => self.log.search_input.is_some(),
            Tab::Dashboard | Tab::Fleet => false,
        }
    }

    fn say(&mut self, severity: Severity, text: String) {
        let message = Message {
            severity,
            text,
            at: self.clock,
        };
        if self.messages.len() == MESSAGE_HISTORY {
            self.messages.pop_front();
        }
        self.messages.push_back(message.clone());
        self.message = Some(message);
    }
    fn info(&mut self, text: impl Into<String>) {
        self.say(Severity::Info, text.into());
    }
    fn warn(&mut self, text: impl Into<String>) {
        self.say(Severity::Warning, text.into());
    }
    fn error(&mut self, text: impl Into<String>) {
        self.say(Severity::Error, text.into());
    }

    fn confirm(&mut self, question: impl Into<String>, detail: Vec<String>, on_yes: Confirmed) {
        self.popup = Some(Popup::Confirm {
            question: question.into(),
            detail,
            on_yes,
        });
    }

    fn pool_running(&self) -> bool {
        self.dashboard.status().is_some()
    }

    fn nginx_running(&self) -> bool {
        matches!(self.dashboard.nginx, Some(NginxObservation::Running { .. }))
    }

    fn rerender_nginx(&mut self) {
        let settings = self.settings();
        let settings = match (&settings, &self.config) {
            (Some(s), _) => Ok(s),
            (None, Err(e)) => Err(e.as_str()),
            (None, Ok(_)) => Err("no settings"),
        };
        self.nginx.rerender(settings);
    }

    /// Starts a `nginx -t` of the preview when the tab is visible and the verdict is
    /// for another text. One check at a time; a newer text is checked when the running
    /// one finishes.
    fn maybe_check_nginx(&mut self) -> Vec<Effect> {
        if self.tab != Tab::Nginx || !self.nginx.check_is_stale() || self.nginx.check_running() {
            return Vec::new();
        }
        self.check_nginx_now()
    }

    fn check_nginx_now(&mut self) -> Vec<Effect> {
        let Ok(text) = &self.nginx.preview else {
            return Vec::new();
        };
        if self.nginx.check_running() {
            return Vec::new();
        }
        let text_hash = self.nginx.preview_hash;
        self.nginx.check = CheckState::Running { text_hash };
        vec![Effect::CheckNginx {
            text: text.clone(),
            kind: self.nginx.kind,
            text_hash,
        }]
    }
}

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
/// Probes the OMERO.servers when due (see [`super::servers`]). Only OMERO.web logs
/// in to them: an embedded site serves its own images.
fn check_servers(app: &mut App) -> Vec<Effect> {
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

fn run_job(app: &mut App, job: Job) -> Vec<Effect> {
    if let Some(running) = app.job {
        app.warn(format!("Busy: {}", running.progress()));
        return Vec::new();
    }
    app.job = Some(job);
    app.message = None;
    vec![Effect::RunJob(job)]
}

fn run_jobs(app: &mut App, mut jobs: Vec<Job>) -> Vec<Effect> {
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

fn follow_log(app: &mut App, source: LogSource) -> Vec<Effect> {
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

/// Carries out an action (from a key, or directly in tests).
pub fn perform(app: &mut App, action: Action) -> Vec<Effect> {
    match action {
        Action::Quit => {
            if let Some(job) = app.job {
                app.confirm(
                    format!("Still {} Quit anyway?", job.progress()),
                    vec!["The job goes on without the panel; its result is not shown.".into()],
                    Confirmed::Quit,
                );
            } else {
                app.quit = true;
            }
            Vec::new()
        }
        Action::Help => {
            app.popup = Some(Popup::Help { scroll: 0 });
            Vec::new()
        }
        Action::Messages => {
            app.popup = Some(Popup::Messages { scroll: 0 });
            Vec::new()
        }
        Action::Upgrades => {
            app.popup = Some(Popup::Upgrades { scroll: 0 });
            Vec::new()
        }
        Action::Rollback => {
            let changes = &app.dashboard.changes;
            if changes.running {
                app.warn("A change is running; roll back once it is over.");
                return Vec::new();
            }
            let Some(target) = changes.rollback_target.clone() else {
                app.warn("Nothing to roll back to: no earlier generation was kept.");
                return Vec::new();
            };
            app.confirm(
                "Roll back to the previous generation?",
                vec![
                    format!("Returns to {target}."),
                    "A new generation starts beside the live one and takes over through the private nginx; the site stays up.".into(),
                ],
                Confirmed::Jobs(vec![Job::Rollback]),
            );
            Vec::new()
        }
        Action::NextTab => switch_tab(app, app.step_tab(1)),
        Action::PrevTab => switch_tab(app, app.step_tab(-1)),
        Action::GoTab(tab) if app.tabs().contains(&tab) => switch_tab(app, tab),
        Action::GoTab(_) => Vec::new(),
        Action::Drain | Action::Undrain => ask_fleet_drain(app, action == Action::Drain),
        Action::FleetRefresh => vec![Effect::FleetRefresh],
        Action::MemberDashboard => open_member(app),
        Action::FleetRoll => {
            if let Some(busy) = app.fleet.as_ref().and_then(|f| f.busy.clone()) {
                app.warn(format!("{busy} still runs"));
            } else if app.fleet.is_some() {
                app.confirm(
                    "Reload every member, one at a time?",
                    vec![
                        "Each is drained from the front, reloaded, checked and put back;".into(),
                        "the first failure stops the roll.".into(),
                    ],
                    Confirmed::FleetRoll,
                );
            }
            Vec::new()
        }
        Action::Up => navigate(app, -1),
        Action::Down => navigate(app, 1),
        Action::PageUp => navigate(app, -(views::page_rows(app.screen) as isize)),
        Action::PageDown => navigate(app, views::page_rows(app.screen) as isize),
        Action::Top => navigate(app, isize::MIN),
        Action::Bottom => navigate(app, isize::MAX),
        Action::Start => run_job(
            app,
            Job::Start {
                nginx_port: app.nginx.chosen_port(),
            },
        ),
        Action::Stop => {
            let what = match app.dashboard.status() {
                Some(s) => format!(
                    "Stop OMERO.web (master PID {}, {} workers) and the private nginx?",
                    s.master_pid,
                    s.workers.len()
                ),
                None => "Stop OMERO.web and the private nginx?".to_string(),
            };
            app.confirm(
                what,
                vec![
                    "In-flight requests finish first; the site is down until started again.".into(),
                ],
                Confirmed::Jobs(vec![Job::Stop]),
            );
            Vec::new()
        }
        Action::Restart => {
            if !app.pool_running() {
                return run_job(
                    app,
                    Job::Start {
                        nginx_port: app.nginx.chosen_port(),
                    },
                );
            }
            app.confirm(
                "Restart OMERO.web?",
                vec!["The pool stops (in-flight requests finish), then starts again; the site is briefly down. Reload (r) replaces workers without downtime.".into()],
                Confirmed::Jobs(vec![Job::Restart]),
            );
            Vec::new()
        }
        Action::Reload => {
            if !app.pool_running() {
                app.warn("The pool is not running; start it with s.");
                return Vec::new();
            }
            run_job(app, Job::Reload)
        }
        Action::ScaleUp => {
            if !app.pool_running() {
                app.warn("The pool is not running; start it with s.");
                return Vec::new();
            }
            run_job(app, Job::Scale(1))
        }
        Action::ScaleDown => {
            let Some(status) = app.dashboard.status() else {
                app.warn("The pool is not running; start it with s.");
                return Vec::new();
            };
            let target = status.target_workers;
            if target <= 1 {
                app.warn("One worker is the minimum; stop the pool instead.");
                return Vec::new();
            }
            app.confirm(
                format!("Scale down from {target} to {} workers?", target - 1),
                vec!["One worker retires after finishing its requests.".into()],
                Confirmed::Jobs(vec![Job::Scale(-1)]),
            );
            Vec::new()
        }
        Action::WorkerDetail => {
            match app.dashboard.selected_pid {
                Some(pid) => app.popup = Some(Popup::Worker { pid }),
                None => app.info("Select a worker first (↑/↓)."),
            }
            Vec::new()
        }
        Action::KillWorker => {
            let Some(pid) = app.dashboard.selected_pid.filter(|_| app.pool_running()) else {
                app.warn("No worker selected.");
                return Vec::new();
            };
            app.confirm(
                format!("Kill worker {pid}?"),
                vec!["Its in-flight requests fail; the pool starts a replacement.".into()],
                Confirmed::Jobs(vec![Job::KillWorker(pid)]),
            );
            Vec::new()
        }
        Action::NextSort => {
            app.dashboard.next_sort();
            Vec::new()
        }
        Action::ReverseSort => {
            app.dashboard.descending = !app.dashboard.descending;
            Vec::new()
        }
        Action::ToggleNginx => {
            if app.nginx_running() {
                app.confirm(
                    "Stop the private nginx?",
                    vec!["The pool keeps running on its own address.".into()],
                    Confirmed::Jobs(vec![Job::NginxStop]),
                );
                Vec::new()
            } else {
                run_job(
                    app,
                    Job::NginxStart {
                        port: app.nginx.chosen_port(),
                    },
                )
            }
        }
        Action::Edit => {
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
        Action::Unset => {
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
        Action::Filter => {
            app.properties.filter_before = app.properties.filter.clone();
            app.properties.filter_input = Some(LineInput::new(app.properties.filter.clone()));
            Vec::new()
        }
        Action::NextKind => {
            app.nginx.next_kind();
            app.rerender_nginx();
            app.maybe_check_nginx()
        }
        Action::EditHttpPort => edit_nginx_field(app, NginxField::HttpPort),
        Action::EditServerName => edit_nginx_field(app, NginxField::ServerName),
        Action::EditMaxBodySize => edit_nginx_field(app, NginxField::MaxBodySize),
        Action::EditOutputPath => edit_nginx_field(app, NginxField::OutputPath),
        Action::CheckNginx => {
            if app.nginx.check_running() {
                app.info("nginx -t is already running.");
                return Vec::new();
            }
            app.check_nginx_now()
        }
        Action::ToggleDiff => {
            app.nginx.show_diff = !app.nginx.show_diff;
            app.nginx.scroll = 0;
            if app.nginx.show_diff {
                // The file may have changed since it was read.
                return vec![Effect::ReadNginxTarget(app.nginx.output_path.clone())];
            }
            Vec::new()
        }
        Action::WriteNginx => {
            if app.nginx.preview.is_err() {
                app.error("Nothing to write: the config cannot be rendered.");
                return Vec::new();
            }
            if app.nginx.writing {
                return Vec::new();
            }
            let (added, removed) = super::diff::summary(&app.nginx.diff);
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
        Action::ReloadNginx => {
            if !app.nginx_running() {
                app.warn("The private nginx is not running (Dashboard: n starts it).");
                return Vec::new();
            }
            run_job(app, Job::NginxReload)
        }
        Action::NextSource => {
            let next = app.log.source.next(&app.site, app.settings().as_ref());
            follow_log(app, next)
        }
        Action::ToggleFollow => {
            app.log.toggle_follow();
            Vec::new()
        }
        Action::ToggleWrap => {
            app.log.wrap = !app.log.wrap;
            Vec::new()
        }
        Action::NextLevel => {
            app.log.next_level_filter();
            Vec::new()
        }
        Action::Search => {
            app.log.search_before = app.log.search.clone();
            app.log.search_input = Some(LineInput::new(app.log.search.clone()));
            Vec::new()
        }
        Action::NextMatch | Action::PrevMatch => {
            if app.log.search.is_empty() {
                app.info("No search yet: press / to search.");
                return Vec::new();
            }
            let height = views::log_rows(app.screen);
            let forward = action == Action::NextMatch;
            if !app.log.jump(
                forward,
                height,
                app.log.wrap.then(|| views::log_columns(app.screen)),
                |v, l| v.matches(l),
            ) {
                let search = app.log.search.clone();
                app.info(format!(
                    "No {} match for \"{search}\".",
                    if forward { "later" } else { "earlier" }
                ));
            }
            Vec::new()
        }
        Action::NextError | Action::PrevError => {
            let height = views::log_rows(app.screen);
            let forward = action == Action::NextError;
            let is_error = |_: &LogView, l: &LogLine| l.level.is_some_and(|l| l >= Level::Error);
            if !app.log.jump(
                forward,
                height,
                app.log.wrap.then(|| views::log_columns(app.screen)),
                is_error,
            ) {
                app.info(if forward {
                    "No later error."
                } else {
                    "No earlier error."
                });
            }
            Vec::new()
        }
        Action::Submit => submit_input(app),
        Action::Cancel => {
            cancel_input(app);
            Vec::new()
        }
        Action::Complete => {
            if app.tab == Tab::Properties {
                app.properties.complete();
            }
            Vec::new()
        }
        Action::Yes => match app.popup.take() {
            Some(Popup::Confirm { on_yes, .. }) => confirmed(app, on_yes),
            other => {
                app.popup = other;
                Vec::new()
            }
        },
        Action::No | Action::Close => {
            if app.popup.take() == Some(Popup::Member) {
                app.member = None;
                return vec![Effect::MemberClose];
            }
            Vec::new()
        }
    }
}

/// Enter in the Fleet tab: the selected member's Dashboard, read on threads of its own.
fn open_member(app: &mut App) -> Vec<Effect> {
    let Some(member) = app.fleet.as_ref().and_then(|f| f.selected_member()) else {
        app.info("No member to open yet.");
        return Vec::new();
    };
    let (name, transport) = (member.name.clone(), member.transport);
    app.member_openings += 1;
    let generation = app.member_openings;
    app.member = Some(super::member_view::MemberView::new(
        name.clone(),
        transport,
        generation,
    ));
    app.popup = Some(Popup::Member);
    vec![Effect::MemberOpen { name, generation }]
}

fn confirmed(app: &mut App, what: Confirmed) -> Vec<Effect> {
    match what {
        Confirmed::Jobs(jobs) => run_jobs(app, jobs),
        Confirmed::Quit => {
            app.quit = true;
            Vec::new()
        }
        Confirmed::Unset(key) => match &app.config {
            Ok(config) => vec![Effect::SaveConfig {
                base: Box::new(config.clone()),
                key: key.to_string(),
                value: None,
            }],
            Err(_) => Vec::new(),
        },
        Confirmed::Fleet { name, drain } => {
            let doing = if drain { "draining" } else { "undraining" };
            if let Some(fleet) = &mut app.fleet {
                fleet.busy = Some(format!("{doing} {name}…"));
            }
            app.info(format!("{doing} {name}…"));
            vec![Effect::FleetDrain { name, drain }]
        }
        Confirmed::FleetRoll => {
            if let Some(fleet) = &mut app.fleet {
                fleet.busy = Some("rolling reload…".into());
            }
            app.info("rolling reload…");
            vec![Effect::FleetRoll]
        }
        Confirmed::WriteNginx => match app.nginx.file_text() {
            Some(text) => {
                app.nginx.writing = true;
                let private = app.nginx.output_path
                    == crate::nginx::instance::config_path(&app.site)
                    && app.nginx.kind == crate::nginx::NginxKind::NginxDevelopment;
                vec![Effect::WriteNginx {
                    path: app.nginx.output_path.clone(),
                    text,
                    private_port: private.then(|| app.nginx.http_port()),
                }]
            }
            None => Vec::new(),
        },
    }
}

/// Asks before draining (or undraining) the selected member; one at a time.
fn ask_fleet_drain(app: &mut App, drain: bool) -> Vec<Effect> {
    let Some(fleet) = &app.fleet else {
        return Vec::new();
    };
    if let Some(busy) = &fleet.busy {
        let busy = format!("{busy} still runs");
        app.warn(busy);
        return Vec::new();
    }
    let Some(member) = fleet.selected_member() else {
        return Vec::new();
    };
    let name = member.name.clone();
    match (drain, member.drained) {
        (true, true) => app.warn(format!("{name} is drained already")),
        (false, false) => app.warn(format!("{name} is in the front already")),
        (true, false) => app.confirm(
            format!("Drain {name}?"),
            vec![
                "The front stops sending it requests (graceful nginx reload);".into(),
                "its requests in flight finish first.".into(),
            ],
            Confirmed::Fleet { name, drain },
        ),
        (false, true) => app.confirm(
            format!("Put {name} back into the front?"),
            Vec::new(),
            Confirmed::Fleet { name, drain },
        ),
    }
    Vec::new()
}

fn switch_tab(app: &mut App, tab: Tab) -> Vec<Effect> {
    app.tab = tab;
    if tab == Tab::Log {
        app.log.unseen_errors = 0;
    }
    match tab {
        Tab::Nginx => {
            let mut effects = vec![Effect::ReadNginxTarget(app.nginx.output_path.clone())];
            effects.extend(app.maybe_check_nginx());
            effects
        }
        _ => Vec::new(),
    }
}

/// Up/down/page/top/bottom in the current tab or the help overlay. `isize::MIN` and
/// `isize::MAX` mean top and bottom.
fn navigate(app: &mut App, delta: isize) -> Vec<Effect> {
    let max = match &app.popup {
        Some(Popup::Help { .. }) => Some(views::help_max_scroll(app.screen, app.tab)),
        Some(Popup::Messages { .. }) => Some(views::messages::max_scroll(app, app.screen)),
        Some(Popup::Upgrades { .. }) => Some(views::upgrades::max_scroll(app, app.screen)),
        _ => None,
    };
    if let (
        Some(max),
        Some(Popup::Help { scroll } | Popup::Messages { scroll } | Popup::Upgrades { scroll }),
    ) = (max, &mut app.popup)
    {
        let max = max as isize;
        *scroll = match delta {
            isize::MIN => 0,
            d => (*scroll as isize + d.clamp(-max - 1, max + 1)).clamp(0, max) as usize,
        };
        return Vec::new();
    }
    // A member's Dashboard: its workers, not the Fleet tab beneath.
    if let (Some(Popup::Member), Some(view)) = (&app.popup, &mut app.member) {
        view.dashboard.move_selection(delta);
        return Vec::new();
    }
    match app.tab {
        Tab::Dashboard => app.dashboard.move_selection(delta),
        Tab::Properties => app.properties.move_selection(delta),
        Tab::Nginx => {
            let max = app
                .nginx
                .line_count()
                .saturating_sub(views::nginx_rows(app.screen));
            app.nginx.scroll = match delta {
                isize::MIN => 0,
                isize::MAX => max,
                d => (app.nginx.scroll as isize + d).clamp(0, max as isize) as usize,
            };
        }
        Tab::Fleet => {
            if let Some(fleet) = &mut app.fleet {
                fleet.move_selection(delta.clamp(-1000, 1000));
            }
        }
        Tab::Log => {
            let height = views::log_rows(app.screen);
            match delta {
                isize::MIN => app.log.to_top(height),
                isize::MAX => app.log.to_bottom(),
                d => app.log.scroll(d, height),
            }
        }
    }
    Vec::new()
}

fn edit_nginx_field(app: &mut App, field: NginxField) -> Vec<Effect> {
    app.nginx.begin_edit(field);
    Vec::new()
}

/// A key that is not bound in a text field edits the text.
fn edit_input(app: &mut App, key: &KeyEvent) -> Vec<Effect> {
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

fn submit_input(app: &mut App) -> Vec<Effect> {
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
                    let height = views::log_rows(app.screen);
                    // The newest match first: the reader usually hunts something recent.
                    if !app.log.jump(
                        false,
                        height,
                        app.log.wrap.then(|| views::log_columns(app.screen)),
                        |v, l| v.matches(l),
                    ) {
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

fn cancel_input(app: &mut App) {
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

/// The pool observation for the status line, when it is a problem.
pub fn pool_problem(app: &App) -> Option<String> {
    match &app.dashboard.pool {
        Some(PoolObservation::Error(e)) => Some(format!("cannot ask the pool: {e}")),
        Some(PoolObservation::Halted(halt)) => Some(format!("OMERO.web {}", halt.describe())),
        Some(PoolObservation::Stale { pid, orphans }) => Some(format!(
            "stale pid file (PID {} is gone){}",
            pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
            if orphans.is_empty() {
                String::new()
            } else {
                format!("; {}", crate::supervisor::orphans_note(orphans))
            }
        )),
        _ => None,
    }
}
