//! `omero-webctl metrics` (and `fleet metrics`): the Prometheus text, printed once or
//! served on a loopback address.

use std::process::ExitCode;

use crate::metrics::{self, Source};
use crate::site::Site;
use crate::supervisor::{self, StatusOutcome};

/// This site's metrics: its pool's status as the exposition text.
pub fn site_text(site: &Site) -> String {
    let status = match supervisor::for_site(site).status() {
        Ok(StatusOutcome::Running(status)) => Some(status),
        _ => None,
    };
    metrics::render(&[Source {
        member: None,
        status: status.as_deref(),
    }])
}

/// Prints `text()` once, or serves it on `listen` (loopback only) until killed.
pub fn print_or_serve(
    listen: Option<&str>,
    text: &(dyn Fn() -> String + Sync),
) -> anyhow::Result<ExitCode> {
    let Some(listen) = listen else {
        print!("{}", text());
        return Ok(ExitCode::SUCCESS);
    };
    let addr = metrics::loopback_address(listen)?;
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    eprintln!("Serving /metrics on http://{addr}/metrics");
    metrics::serve(listener, text)?;
    Ok(ExitCode::SUCCESS)
}
