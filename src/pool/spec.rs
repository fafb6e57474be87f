//! What a worker needs to know, decided by the master for each generation and passed
//! in the environment. Workers never read the config file themselves, so a config
//! edit cannot reach half the pool before a reload.

use serde::{Deserialize, Serialize};

use crate::config::{Settings, WorkerClass};
use crate::http_app::AppConfig;
use crate::logging::Level;

/// Sync workers with one thread each and downloads allowed: our gateway streams a
/// download from the worker, so each one holds that worker for its whole length (the
/// master's status and the diagnostics both say it).
pub fn sync_downloads_warning(settings: &Settings) -> Option<String> {
    (settings.worker_class == WorkerClass::Sync
        && settings.threads <= 1
        && settings.downloads_allowed())
    .then(|| {
        "downloads are allowed and workers are sync: each download holds a worker for its whole length (use gevent or gthread)".to_string()
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub generation: u64,
    pub worker_class: WorkerClass,
    /// Concurrent requests (gthread; sync with threads > 1 becomes gthread).
    pub threads: u32,
    pub worker_connections: u32,
    pub keepalive_secs: u64,
    /// This worker's own limit, jitter included; 0 = never recycle.
    pub max_requests: u64,
    pub graceful_timeout_secs: u64,
    /// `omero.web.wsgi_timeout`: the longest a request may wait for its blocking work
    /// (0 = no limit, as in Gunicorn).
    #[serde(default)]
    pub timeout_secs: u64,
    pub limit_request_line: u32,
    pub limit_request_fields: u32,
    pub limit_request_field_size: u32,
    pub log_level: Level,
    pub log_requests: bool,
    pub prefix: Option<String>,
    pub site_root: std::path::PathBuf,
    /// The application's own configuration, opaque to the pool (`AppFactory::config`).
    pub app: AppConfig,
    /// `--forwarded-allow-ips` (Gunicorn's default when not given).
    pub forwarded_allow_ips: String,
}

impl WorkerSpec {
    pub fn from_settings(
        settings: &Settings,
        app: AppConfig,
        generation: u64,
        log_level: Level,
        log_requests: bool,
    ) -> WorkerSpec {
        let worker_class = settings.effective_worker_class();
        WorkerSpec {
            generation,
            worker_class,
            threads: settings.threads.max(1),
            worker_connections: settings.worker_connections.max(1),
            keepalive_secs: settings.keepalive,
            max_requests: 0,
            graceful_timeout_secs: settings.graceful_timeout,
            timeout_secs: settings.timeout,
            limit_request_line: match settings.limit_request_line {
                0 => 8190,
                n => n,
            },
            limit_request_fields: settings.limit_request_fields,
            limit_request_field_size: match settings.limit_request_field_size {
                0 => 65536,
                n => n,
            },
            log_level,
            log_requests,
            prefix: settings.prefix.clone(),
            site_root: settings.site_root.clone(),
            app,
            forwarded_allow_ips: super::forwarded::DEFAULT.into(),
        }
    }

    pub fn with_forwarded_allow_ips(mut self, list: Option<&str>) -> WorkerSpec {
        if let Some(list) = list {
            self.forwarded_allow_ips = list.to_string();
        }
        self
    }

    /// Per-worker `max_requests` with Gunicorn's jitter: limit + random(0..=jitter).
    pub fn with_max_requests(mut self, max_requests: u64, jitter: u64) -> WorkerSpec {
        self.max_requests = if max_requests == 0 {
            0
        } else {
            max_requests + fastrand::u64(0..=jitter)
        };
        self
    }

    /// Concurrent requests one worker serves.
    pub fn request_slots(&self) -> usize {
        match self.worker_class {
            WorkerClass::Sync => 1,
            WorkerClass::Gthread => self.threads as usize,
            WorkerClass::Gevent => self.worker_connections as usize,
        }
    }
}
