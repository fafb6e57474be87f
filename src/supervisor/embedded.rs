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
    /// The binary `upgrade --binary` kept, switched back in (`embedded_generations`).
    fn rollback(&self) -> anyhow::Result<ControlResponse> {
        super::embedded_generations::rollback(&self.site)
    }
    fn rollback_target(&self) -> Option<String> {
        crate::pool::binaries::previous(&self.site)
            .map(|binary| format!("the binary before: {}", binary.display()))
    }
    /// The pool takes every value the registry accepts: nothing more to check here.
    fn vet_setting(
        &self,
        _config: &crate::config::Config,
        _key: &str,
    ) -> Result<Option<String>, String> {
        Ok(None)
    }
    /// Gunicorn flags in `wsgi_args` the pool ignores; sync workers tied up by
    /// downloads (our gateway streams them from the worker; OMERO.web's advice differs).
    fn settings_warnings(&self, settings: &crate::config::Settings) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(args) = &settings.wsgi_args {
            match crate::config::wsgi_args::parse(args) {
                Ok(flags) => warnings.extend(flags.no_effect_note()),
                Err(e) => warnings.push(e.to_string()),
            }
        }
        warnings.extend(crate::pool::spec::sync_downloads_warning(settings));
        warnings
    }
    /// OMEROweb.log, in `omero.web.logdir`.
    fn log_files_with(&self, settings: Option<&crate::config::Settings>) -> Vec<LogFile> {
        vec![LogFile {
            label: "OMEROweb.log",
            path: settings
                .map_or_else(|| self.site.default_log_dir(), |s| s.log_dir.clone())
                .join(crate::logging::LOG_FILE_NAME),
            format: super::LogFormat::Omero,
        }]
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
