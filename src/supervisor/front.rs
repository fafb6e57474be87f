//! The private nginx as the front a gapless switch moves: whether it runs, and
//! pointing its upstream at another generation.

use std::time::{Duration, Instant};

use crate::config::Settings;
use crate::site::Site;
use crate::supervisor::progress::{HealthFigures, Progress};

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
/// 5xx or missing answer, said in words. The figures go into `progress`, the record of
/// the switch this window belongs to: the panel's `U` screen keeps showing that
/// switch's steps and generations, with the window's figures as they come (a record
/// of its own used to replace them for the length of the window).
pub fn unhealthy_within(
    site: &Site,
    settings: &Settings,
    window: Duration,
    progress: &mut Progress,
) -> Option<String> {
    let port = crate::nginx::instance::remembered_port(site)?;
    let front = format!("127.0.0.1:{port}");
    let path = format!(
        "{}/webclient/login/",
        settings.prefix.as_deref().unwrap_or("")
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
        progress.set_health(site, figures);
        if failure.is_none() {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::{Site, SiteKind};
    use crate::supervisor::progress::{GenerationSeen, StepState};

    /// What the panel reads while a health window runs is the switch's own record:
    /// its action, steps and both generations, with the window's figures added.
    #[test]
    fn the_health_window_adds_its_figures_to_the_switch_record_and_keeps_its_steps() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        // A front that answers 200 to every request, as a healthy nginx does.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                // The whole request first: closing on unread bytes would reset it.
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        crate::nginx::instance::remember_port(&site, port).unwrap();
        let mut progress = Progress::begin(&site, "upgrade", &["start", "switch", "drain"]);
        progress.step(&site, 0, StepState::Done, "PID 20");
        progress.step(&site, 1, StepState::Done, "127.0.0.1:41234");
        let generation = |role: &str, master: u32| GenerationSeen {
            role: role.into(),
            master,
            port: 4080,
            runs: "venv".into(),
        };
        progress.set_generations(
            &site,
            vec![generation("serving", 10), generation("new", 20)],
        );
        let settings = crate::config::Config::load(&site).unwrap().settings();
        let seen_meanwhile = std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut seen = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(2);
                while Instant::now() < deadline {
                    if let Some(p) = crate::supervisor::progress::read(&site) {
                        seen.push(p);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                seen
            });
            assert_eq!(
                unhealthy_within(&site, &settings, Duration::from_secs(2), &mut progress),
                None
            );
            reader.join().unwrap()
        });
        assert!(seen_meanwhile.len() > 10, "{}", seen_meanwhile.len());
        for p in &seen_meanwhile {
            assert_eq!(p.action, "upgrade", "{p:?}");
            assert_eq!(p.steps.len(), 3, "{p:?}");
            assert_eq!(p.steps[1].state, StepState::Done, "{p:?}");
            assert_eq!(p.generations.len(), 2, "{p:?}");
        }
        let last = crate::supervisor::progress::read(&site).unwrap();
        let health = last.health.expect("the window's figures");
        assert!(health.probes >= 2, "{health:?}");
        assert_eq!((health.window_s, health.errors), (2, 0));
        assert_eq!(
            last.outcome, None,
            "the switch, not the window, ends the record"
        );
    }
}
