//! The private nginx as the front a gapless switch moves: whether it runs, and
//! pointing its upstream at another generation.

use std::time::{Duration, Instant};

use crate::config::Settings;
use crate::site::Site;

/// How long nginx's old workers may take to finish their requests after a switch
/// before the old generation is drained anyway (its graceful stop serves them on).
const SWITCH_LIMIT: Duration = Duration::from_secs(30);

/// Whether a change can go blue/green: a private nginx runs in front of the site.
/// (A system nginx points at `application_server.port` through a file its admin
/// installed; we do not rewrite it.)
pub fn is_ours(site: &Site) -> bool {
    matches!(
        crate::nginx::instance::status(site),
        Ok(crate::nginx::instance::Status::Running(_))
    )
}

/// Points the private nginx's upstream at `settings.bind()` (config re-rendered,
/// `nginx -t`, HUP) and waits until nginx's old workers, which still talk to the
/// previous generation, have finished.
pub fn switch(site: &Site, settings: &Settings) -> Result<(), String> {
    let before = match crate::nginx::instance::status(site) {
        Ok(crate::nginx::instance::Status::Running(running)) => {
            super::gunicorn::process::children(running.pid as u32)
        }
        _ => return Err("the private nginx is not running".into()),
    };
    crate::nginx::instance::reload(site, settings).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + SWITCH_LIMIT;
    while before.iter().any(|&w| crate::pool::pidfile::is_alive(w)) {
        if Instant::now() >= deadline {
            // They still finish requests against the old generation, which its
            // graceful stop serves to the end.
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A port nobody listens on, on the application server's host, from the OS.
pub fn free_port(host: &str) -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind((host, 0))
        .map_err(|e| anyhow::anyhow!("cannot find a free port on {host}: {e}"))?;
    Ok(listener.local_addr()?.port())
}
