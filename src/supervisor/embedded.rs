//! The embedded pool as a [`Supervisor`]: our master and workers, reached through
//! `pool::client` (pid file, control socket).

use std::path::PathBuf;
use std::time::Duration;

use super::{
    Backend, ControlResponse, LogFile, Scale, StartOutcome, StatusOutcome, StopOutcome, Supervisor,
};
use crate::pool::client;
use crate::pool::protocol::ControlRequest;
use crate::site::{Site, SiteKind};

pub struct EmbeddedPool {
    site: Site,
}

impl EmbeddedPool {
    pub fn new(site: Site) -> EmbeddedPool {
        EmbeddedPool { site }
    }

    fn control(&self, request: ControlRequest) -> anyhow::Result<ControlResponse> {
        Ok(client::request(
            &self.site,
            &request,
            Duration::from_secs(10),
        )?)
    }
}

impl Supervisor for EmbeddedPool {
    fn site(&self) -> &Site {
        &self.site
    }
    fn backend(&self) -> Backend {
        Backend {
            kind: SiteKind::Embedded,
            versions: [(
                "omero-webctl".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )]
            .into(),
            problem: None,
        }
    }
    fn start(&self) -> StartOutcome {
        client::start(&self.site)
    }
    fn stop(&self, quick: bool) -> anyhow::Result<StopOutcome> {
        client::stop(&self.site, quick)
    }
    fn status(&self) -> anyhow::Result<StatusOutcome> {
        client::status(&self.site)
    }
    fn reload(&self) -> anyhow::Result<ControlResponse> {
        client::reload(&self.site)
    }
    fn scale(&self, change: Scale) -> anyhow::Result<ControlResponse> {
        let (to, by) = match change {
            Scale::To(n) => (Some(n), None),
            Scale::By(n) => (None, Some(n)),
        };
        self.control(ControlRequest::Scale { to, by })
    }
    fn kill_worker(&self, pid: u32) -> anyhow::Result<ControlResponse> {
        self.control(ControlRequest::KillWorker { pid })
    }
    fn reopen_logs(&self) -> anyhow::Result<ControlResponse> {
        self.control(ControlRequest::Reopen)
    }
    fn log_files(&self) -> Vec<LogFile> {
        let settings = crate::config::Config::load(&self.site).map(|c| c.settings());
        super::log_files_for(&self.site, settings.as_ref().ok())
    }
    fn pid_file(&self) -> PathBuf {
        self.site.pid_file()
    }
    /// Behind the private nginx: a fresh master beside the live one, switched in
    /// (`embedded_generations`).
    fn restart_without_gap(&self) -> anyhow::Result<Option<ControlResponse>> {
        super::embedded_generations::restart(&self.site)
    }
}
