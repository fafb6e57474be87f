//! nginx in front of the pool: OMERO.web's three nginx configs rendered from the typed
//! settings (`render`), the values that reach them validated so they cannot inject
//! directives (`validate`), the result checked with the real `nginx -t` (`check`),
//! and a private nginx run from the `nginx-development` config under `var/nginx/`
//! (`instance`).

mod check;
pub mod differential;
mod error;
pub mod instance;
mod render;
pub mod tokens;
mod validate;

pub use check::{CheckReport, check, find_nginx};
pub use error::NginxError;
pub use instance::{Running, Status};
pub use render::{RenderOptions, prefix_name, render};
pub use validate::{
    check_property, validate_extra_config, validate_max_body_size, validate_server_name,
};

/// Which of OMERO's three configs to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NginxKind {
    /// A server block (plus upstream) for a system nginx: a `conf.d` include.
    Nginx,
    /// Location blocks only, to include in an operator's own `server {}`.
    NginxLocation,
    /// A complete nginx.conf run without root: the private instance.
    NginxDevelopment,
}

impl NginxKind {
    /// The name used on the command line and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            NginxKind::Nginx => "nginx",
            NginxKind::NginxLocation => "nginx-location",
            NginxKind::NginxDevelopment => "nginx-development",
        }
    }

    /// `--http` when not given: OMERO's defaults.
    pub fn default_http_port(self) -> u16 {
        match self {
            NginxKind::Nginx | NginxKind::NginxLocation => 80,
            NginxKind::NginxDevelopment => 8080,
        }
    }
}

impl std::fmt::Display for NginxKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
