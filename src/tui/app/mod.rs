//! The panel's state and its one update function. `update` is pure: it changes `App`
//! and returns the effects (I/O) it wants; the runtime performs them and reports back
//! with events. Tests drive it with events and look at the state and the effects.
//!
//! Here: the state's owner (`App`, its tabs, popups and messages). Beside it:
//! `update.rs` (events → state and effects), `perform.rs` (the keymap's actions,
//! routed), one `*_actions.rs` per tab, and `text_input.rs` (the text fields).

use std::collections::VecDeque;

use crate::config::{Config, Settings};
use crate::site::Site;

use super::dashboard::Dashboard;
use super::event::{Effect, Job, NginxObservation, PoolObservation};
use super::keymap::Context;
use super::log_view::{LogSource, LogView};
use super::nginx_tab::{CheckState, NginxTab};
use super::properties::Properties;
use super::theme::Theme;

mod dashboard_actions;
mod fleet_actions;
mod log_actions;
mod nginx_actions;
mod perform;
mod properties_actions;
mod text_input;
mod update;

pub use perform::perform;
use update::check_servers;
pub use update::update;

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
