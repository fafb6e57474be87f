//! The other half of the seam: how the pool gets its application without knowing
//! which. The CLI hands the pool an [`AppFactory`] (the gateway's); the master asks it
//! for the application's configuration and its start-up and background jobs, and each
//! worker asks it to boot the application from that configuration, which travels in
//! the worker's spec as opaque JSON.

use std::sync::Arc;

use super::App;
use crate::config::Settings;
use crate::logging::Level;
use crate::site::Site;

/// The application's own configuration for one generation: decided by the master from
/// the settings, carried to the workers in their spec, read only by the application.
pub type AppConfig = serde_json::Value;

/// A line the application asks its host to write to the site's log (it has no log of
/// its own); the host stamps it with its own time, pid and place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppNote {
    pub level: Level,
    /// `None`: under the host's own logger (the master's, for background work).
    pub logger: Option<&'static str>,
    pub message: String,
}

/// Where the master sends what the application's background work reports.
pub type NoteSink = Box<dyn Fn(AppNote) + Send + 'static>;

/// What the pool asks of the application it hosts.
pub trait AppFactory: Send + Sync + 'static {
    /// The configuration the workers of a generation boot with.
    fn config(&self, settings: &Settings) -> AppConfig;

    /// The master's start-up jobs, run before it takes the pid file (OMERO's
    /// collectstatic, say). `Err` refuses the start, with the reason; `Ok` holds lines
    /// for the log once the master runs.
    fn on_master_start(&self, site: &Site, settings: &Settings) -> Result<Vec<String>, String>;

    /// Work the master keeps running beside the workers for its whole life, reporting
    /// through `notes`. `Err` is a warning to log: the pool serves without it.
    fn start_background(&self, settings: &Settings, notes: NoteSink) -> Result<(), String>;

    /// Builds the application in a worker; an error is a boot failure.
    fn boot(&self, config: &AppConfig) -> Result<Arc<dyn App>, String>;

    /// Lines a worker logs once the application booted.
    fn boot_notes(&self, config: &AppConfig) -> Vec<AppNote>;

    /// The worker has been idle for a while after serving: a moment to give memory
    /// back.
    fn on_idle(&self);
}
