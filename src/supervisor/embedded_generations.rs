//! The embedded kind's gapless switch to another binary (`upgrade --binary`,
//! `rollback`) or to a fresh master of the same one (`restart`): nginx's binary
//! upgrade on the fly, done with the private nginx's upstream instead of signals.
//!
//! 1. the binary is copied under `var/generations/binaries/` (`pool::binaries`), so
//!    that what runs never changes under it and `rollback` has the previous one;
//! 2. an *interim* master of that binary starts on a free port, with its pid file and
//!    control socket in `var/generations/interim-pool/`, and reports ready only once
//!    every worker is (as `start` waits for);
//! 3. the private nginx's upstream is switched to it (re-rendered, `nginx -t`, HUP;
//!    nginx's old workers finish their requests);
//! 4. the old master stops gracefully (its workers finish what they serve);
//! 5. the same again back to the configured port with the usual pid file and control
//!    socket, then the interim master stops.
//!
//! A new binary that does not come up (a master that exits, a worker that does not
//! report ready) is stopped before any switch: the serving master never noticed.
//! After the switch to a new binary, `upgrade` probes the readiness page through nginx
//! for its health window (`front::unhealthy_within`) before step 4, while the old
//! master still runs: a 5xx or no answer switches nginx straight back to it and stops
//! the new one (the failed binary's copy is discarded).
//! The Gunicorn kind does the same with Gunicorn masters (`gunicorn::generation`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::gunicorn::history;
use super::progress::{GenerationSeen, Progress, StepState};
use super::{ControlResponse, StartOutcome, front};
use crate::config::Config;
use crate::pool::{binaries, client};
use crate::proc::pidfile;
use crate::site::Site;

const STEPS: [&str; 7] = [
    "keep the binary",
    "start the new master beside the live one",
    "switch nginx to it",
    "drain the old master",
    "start it on the configured port",
    "switch nginx back to that port",
    "stop the interim master",
];

/// `upgrade --binary PATH`, watched through nginx for `health` after the switch.
pub fn upgrade(
    site: &Site,
    new_binary: &Path,
    health: Duration,
) -> anyhow::Result<ControlResponse> {
    if !new_binary.is_file() {
        return Ok(ControlResponse::failed(format!(
            "upgrade refused: {} is not a file; nothing changed",
            new_binary.display()
        )));
    }
    switch_with(site, "upgrade", Source::Copy(new_binary), Some(health))
}

/// `rollback` of an embedded site: the binary it ran before the last switch.
pub fn rollback(site: &Site) -> anyhow::Result<ControlResponse> {
    match binaries::previous(site) {
        Some(previous) => switch_with(site, "rollback", Source::Kept(previous), None),
        None => Ok(ControlResponse::failed(
            "nothing to roll back to: no earlier binary was kept (upgrade --binary keeps one)",
        )),
    }
}

/// `restart` of an embedded site behind the private nginx: a fresh master of the
/// binary it runs, switched in the same way. `None`: the pool does not run, or no
/// private nginx does (the caller stops and starts).
pub fn restart(site: &Site) -> anyhow::Result<Option<ControlResponse>> {
    // Nothing serves (a stopped pool is simply started) or no front to switch.
    let running = matches!(
        pidfile::probe(&site.pid_file()),
        Ok(pidfile::MasterState::Running { .. })
    );
    if !running || !front::is_ours(site) {
        return Ok(None);
    }
    let program = binaries::site_program(site)?;
    switch_with(site, "restart", Source::Kept(program), None).map(Some)
}

enum Source<'a> {
    /// A binary from outside, copied first.
    Copy(&'a Path),
    /// One already kept (or this program).
    Kept(PathBuf),
}

fn switch_with(
    site: &Site,
    action: &str,
    source: Source,
    health: Option<Duration>,
) -> anyhow::Result<ControlResponse> {
    if !front::is_ours(site) {
        return Ok(ControlResponse::failed(format!(
            "{action} switches generations behind the private nginx, and none runs (omero-webctl nginx start)"
        )));
    }
    let old = match pidfile::probe(&site.pid_file())? {
        pidfile::MasterState::Running { pid } => pid,
        _ => anyhow::bail!("the pool is not running (omero-webctl start)"),
    };
    let mut progress = Progress::begin(site, action, &STEPS);
    let mut change = history::change(action, vec![]);
    change.from_master = Some(old);
    // What runs now is kept too, so that a rollback can return to it.
    let before = match binaries::current(site) {
        Some(kept) => Some(kept),
        None => binaries::keep(site, Path::new(&format!("/proc/{old}/exe")))
            .ok()
            .inspect(|kept| {
                let _ = binaries::make_current(site, kept);
            }),
    };
    progress.step(site, 0, StepState::Running, "");
    let program = match source {
        Source::Copy(from) => match binaries::keep(site, from) {
            Ok(kept) => kept,
            Err(e) => {
                let why = format!("{action} refused: {e}; nothing changed");
                progress.step(site, 0, StepState::Failed, &e.to_string());
                return Ok(finish(
                    site,
                    &mut progress,
                    change,
                    ControlResponse::failed(why),
                ));
            }
        },
        Source::Kept(program) => program,
    };
    progress.step(site, 0, StepState::Done, &program.display().to_string());
    let shown = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or_else(|| "(unknown)".to_string(), |p| p.display().to_string())
    };
    if before.as_ref() != Some(&program) {
        change.applied = vec![format!("binary {} → {}", shown(&before), program.display())];
    }
    let reply = switch_to(site, action, old, &program, health, &mut progress);
    match &reply {
        Ok(reply) if reply.ok => {
            if let Err(e) = binaries::make_current(site, &program) {
                change.outcome = format!("ok, but the binary could not be recorded: {e}");
            }
        }
        _ if Some(&program) != before.as_ref() && action == "upgrade" => {
            binaries::discard(&program);
        }
        _ => {}
    }
    // Whatever serves now, also after a refusal or a rollback by the health window
    // (the master from before, which never stopped).
    change.to_master = pidfile::probe(&site.pid_file()).ok().and_then(|s| match s {
        pidfile::MasterState::Running { pid } => Some(pid),
        _ => None,
    });
    let reply = reply?;
    Ok(finish(site, &mut progress, change, reply))
}

fn finish(
    site: &Site,
    progress: &mut Progress,
    mut change: history::Change,
    reply: ControlResponse,
) -> ControlResponse {
    if change.outcome.is_empty() {
        change.outcome = if reply.ok {
            "ok".into()
        } else {
            reply.message.clone()
        };
    }
    change.rollback_available = binaries::previous(site).is_some();
    change.generations = progress.involved.clone();
    progress.finish(site, &change.outcome);
    history::record(site, &change);
    reply
}

fn switch_to(
    site: &Site,
    action: &str,
    old: u32,
    program: &Path,
    health: Option<Duration>,
    progress: &mut Progress,
) -> anyhow::Result<ControlResponse> {
    let started = Instant::now();
    let settings = Config::load(site)?.settings();
    let interim = site.interim();
    let mut interim_settings = settings.clone();
    interim_settings.port = front::free_port(&settings.host)?;
    let dir = interim.pid_file();
    let dir = dir.parent().expect("in a directory");
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let runs = program.display().to_string();
    // The old master runs the binary before (an upgrade): its own executable says.
    let old_runs = std::fs::read_link(format!("/proc/{old}/exe"))
        .map_or_else(|_| runs.clone(), |exe| exe.display().to_string());
    let seen = |role: &str, master: u32, port: u16| GenerationSeen {
        role: role.into(),
        master,
        port,
        runs: if master == old {
            old_runs.clone()
        } else {
            runs.clone()
        },
    };

    progress.step(site, 1, StepState::Running, &interim_settings.bind());
    let interim_master = match client::start_program(&interim, program, Some(interim_settings.port))
    {
        StartOutcome::Started { pid, .. } => pid,
        StartOutcome::AlreadyRunning { pid } => {
            let why = format!("an interim master (PID {pid}) from an earlier change still runs");
            progress.step(site, 1, StepState::Failed, &why);
            return Ok(ControlResponse::failed(format!(
                "{action} refused: {why}; stop it first (kill {pid}); the running one (PID {old}) keeps serving"
            )));
        }
        StartOutcome::Failed { reason, .. } => {
            progress.step(site, 1, StepState::Failed, &reason);
            // Whatever it left: nothing of it may stay.
            let _ = client::stop(&interim, true);
            return Ok(ControlResponse::failed(format!(
                "{action} refused: the new binary did not come up ({reason}); the running one (PID {old}) keeps serving, nothing was switched"
            )));
        }
    };
    progress.step(site, 1, StepState::Done, &format!("PID {interim_master}"));
    progress.set_generations(
        site,
        vec![
            seen("serving", old, settings.port),
            seen("new", interim_master, interim_settings.port),
        ],
    );

    progress.step(site, 2, StepState::Running, "");
    if let Err(reason) = front::switch(site, &interim_settings) {
        progress.step(site, 2, StepState::Failed, &reason);
        let _ = client::stop(&interim, false);
        return Ok(ControlResponse::failed(format!(
            "{action} refused: nginx did not switch to the new binary ({reason}); the running one (PID {old}) keeps serving"
        )));
    }
    let switched_at = Instant::now();
    progress.step(site, 2, StepState::Done, &interim_settings.bind());
    // The old master still runs: a failed window moves nginx straight back to it.
    if let Some(why) =
        health.and_then(|window| front::unhealthy_within(site, &settings, window, progress))
    {
        progress.step(site, 3, StepState::Failed, &why);
        if let Err(reason) = front::switch(site, &settings) {
            return Ok(ControlResponse::failed(format!(
                "{action}: {why}; nginx did not switch back to the previous master (PID {old}) ({reason}): the new one (PID {interim_master}, {}) still serves",
                interim_settings.bind()
            )));
        }
        let back_after = switched_at.elapsed();
        let _ = client::stop(&interim, false);
        return Ok(ControlResponse::failed(format!(
            "{action} to {} rolled back by itself: {why}; nginx switched back to the previous master (PID {old}, which never stopped) {:.1} s after the switch",
            program.display(),
            back_after.as_secs_f64()
        )));
    }

    progress.step(site, 3, StepState::Running, &format!("PID {old}"));
    progress.set_generations(
        site,
        vec![
            seen("draining", old, settings.port),
            seen("serving", interim_master, interim_settings.port),
        ],
    );
    let stopped = match client::stop(site, false)? {
        super::StopOutcome::Stopped { pid } => format!("PID {pid} stopped"),
        super::StopOutcome::Killed { pid } => {
            format!("PID {pid} killed after the graceful timeout")
        }
        super::StopOutcome::NotRunning
        | super::StopOutcome::Stale { .. }
        | super::StopOutcome::Orphans { .. } => "it had already exited".into(),
    };
    progress.step(site, 3, StepState::Done, &stopped);

    progress.step(site, 4, StepState::Running, &settings.bind());
    let new_master = match client::start_program(site, program, None) {
        StartOutcome::Started { pid, .. } => pid,
        StartOutcome::AlreadyRunning { pid } => pid,
        StartOutcome::Failed { reason, .. } => {
            progress.step(site, 4, StepState::Failed, &reason);
            return Ok(ControlResponse::failed(format!(
                "the old master was replaced, but its successor on {} did not come up ({reason}); the interim master (PID {interim_master}, {}) serves through nginx: fix the cause, then restart",
                settings.bind(),
                interim_settings.bind()
            )));
        }
    };
    progress.step(site, 4, StepState::Done, &format!("PID {new_master}"));
    progress.set_generations(
        site,
        vec![
            seen("new", new_master, settings.port),
            seen("serving", interim_master, interim_settings.port),
        ],
    );

    progress.step(site, 5, StepState::Running, "");
    if let Err(reason) = front::switch(site, &settings) {
        progress.step(site, 5, StepState::Failed, &reason);
        return Ok(ControlResponse::failed(format!(
            "nginx did not switch back to {} ({reason}); the interim master (PID {interim_master}) still serves",
            settings.bind()
        )));
    }
    progress.step(site, 5, StepState::Done, &settings.bind());
    progress.step(
        site,
        6,
        StepState::Running,
        &format!("PID {interim_master}"),
    );
    progress.set_generations(
        site,
        vec![
            seen("serving", new_master, settings.port),
            seen("draining", interim_master, interim_settings.port),
        ],
    );
    let _ = client::stop(&interim, false);
    progress.step(site, 6, StepState::Done, "");
    Ok(ControlResponse::ok(format!(
        "Switched without a gap: {} (master PID {new_master}) serves on {} through the private nginx; the old master (PID {old}) was drained and stopped ({:.1} s).",
        program.display(),
        settings.bind(),
        started.elapsed().as_secs_f64()
    )))
}
