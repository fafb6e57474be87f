//! The private nginx as the front a gapless switch moves: whether it runs, and
//! pointing its upstream at another generation.

use std::time::{Duration, Instant};

use crate::config::Settings;
use crate::site::Site;
use crate::supervisor::progress::{HealthFigures, Progress, StepState};

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
            crate::proc::children(running.pid as u32)
        }
        _ => return Err("the private nginx is not running".into()),
    };
    crate::nginx::instance::reload(site, settings).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + SWITCH_LIMIT;
    while before.iter().any(|&w| crate::proc::is_alive(w)) {
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

/// Probes the readiness page through the private nginx for `window`; the first
/// 5xx or missing answer, said in words.
pub fn unhealthy_within(site: &Site, settings: &Settings, window: Duration) -> Option<String> {
    let port = crate::nginx::instance::remembered_port(site)?;
    let front = format!("127.0.0.1:{port}");
    let path = format!(
        "{}/webclient/login/",
        settings.prefix.as_deref().unwrap_or("")
    );
    // The panel's `U` screen shows the window's figures as they come.
    let mut progress = Progress::begin(
        site,
        "health window",
        &["probe the readiness page through nginx"],
    );
    let mut figures = HealthFigures {
        elapsed_s: 0,
        window_s: window.as_secs(),
        probes: 0,
        errors: 0,
    };
    let started = Instant::now();
    let end = started + window;
    let mut failure = None;
    while failure.is_none() && Instant::now() < end {
        figures.probes += 1;
        match super::http_status(&front, &path) {
            Ok(code) if code < 500 => {}
            Ok(code) => failure = Some(format!("GET {path} through nginx answered {code}")),
            Err(e) => failure = Some(format!("GET {path} through nginx: {e}")),
        }
        figures.errors += u64::from(failure.is_some());
        figures.elapsed_s = started.elapsed().as_secs();
        progress.health = Some(figures);
        progress.step(site, 0, StepState::Running, &path);
        if failure.is_none() {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    match &failure {
        Some(why) => {
            progress.step(site, 0, StepState::Failed, why);
            progress.finish(site, &format!("unhealthy: {why}; rolling back"));
        }
        None => progress.finish(site, "ok"),
    }
    failure
}
