//! Errors of the nginx layer. Each displays as one line; where nginx itself explained
//! the problem, its lines are kept separately (`nginx_lines`) for the caller to show.

use std::path::{Path, PathBuf};

use super::NginxKind;

#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    /// OMERO's pre-check: only wsgi-tcp sits behind nginx.
    #[error(
        "configuration mismatch. omero.web.application_server={server} cannot be used with 'omero-webctl nginx {kind}'."
    )]
    ServerMismatch {
        server: &'static str,
        kind: NginxKind,
    },
    /// OMERO's pre-check, e.g. `Port conflict: HTTP(4080) and wsgi(4080).`
    #[error("Port conflict: {first} and {second}.")]
    PortConflict { first: String, second: String },
    /// A value that would reach the nginx config is not safe or not valid there.
    #[error("{what} {value:?}: {reason}; allowed: {allowed}")]
    InvalidValue {
        what: String,
        value: String,
        reason: String,
        allowed: String,
    },
    /// A value nginx needs is in the site's file, but unusable: rendering its default
    /// would describe another site.
    #[error(
        "{warning}; the nginx config cannot be written with it: fix it first (omero-webctl config set {key} VALUE)"
    )]
    SetAside { warning: String, key: String },
    #[error(
        "nginx not found on PATH or at /usr/sbin/nginx; install nginx (e.g. apt-get install nginx) to check or run the config"
    )]
    NginxNotFound,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    /// A bug in a template (they are embedded, so this is ours, not the user's).
    #[error("internal template error: {0}")]
    Template(String),
    #[error("nginx already running (PID {pid}); use 'omero-webctl nginx stop' first")]
    AlreadyRunning { pid: i32 },
    #[error("nginx is not running; start it with 'omero-webctl nginx start'")]
    NotRunning,
    /// `nginx -t` refused the config (reload keeps the running one).
    #[error("nginx -t refused the new config; the running nginx keeps the old one")]
    CheckFailed { nginx_lines: Vec<String> },
    #[error("nginx did not start: {reason}")]
    StartFailed {
        reason: String,
        nginx_lines: Vec<String>,
    },
    #[error("nginx (PID {pid}) did not stop: {reason}")]
    StopFailed { pid: i32, reason: String },
}

impl NginxError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> NginxError {
        NginxError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(
        what: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
        allowed: impl Into<String>,
    ) -> NginxError {
        NginxError::InvalidValue {
            what: what.into(),
            value: value.into(),
            reason: reason.into(),
            allowed: allowed.into(),
        }
    }

    /// What nginx itself printed about the failure, if anything.
    pub fn nginx_lines(&self) -> &[String] {
        match self {
            NginxError::CheckFailed { nginx_lines }
            | NginxError::StartFailed { nginx_lines, .. } => nginx_lines,
            _ => &[],
        }
    }
}
