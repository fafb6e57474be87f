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
//! Steps 2–5 are the switch both kinds make (`supervisor::switch`); this file is the
//! embedded kind's part of it. The Gunicorn kind's is `gunicorn::generation`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::history;
use super::progress::{Progress, StepState};
use super::switch::{self, Generations, NotUp};
use super::{ControlResponse, StartOutcome, StopOutcome, front};
use crate::config::{Config, Settings};
use crate::pool::{binaries, client};
use crate::proc::pidfile;
use crate::site::Site;

/// The embedded kind's own first step, before the switch's.
const KEEP_STEP: &str = "keep the binary";

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
    let switch_steps = switch::steps("master");
    let steps: Vec<&str> = std::iter::once(KEEP_STEP)
        .chain(switch_steps.iter().map(String::as_str))
        .collect();
    let mut progress = Progress::begin(site, action, &steps);
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
    progress.step(site, 0, StepState::Done, &described(&program));
    let shown = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or_else(|| "(unknown)".to_string(), |p| described(p))
    };
    if before.as_ref() != Some(&program) {
        change.applied = vec![format!(
            "binary {} → {}",
            shown(&before),
            described(&program)
        )];
    }
    let masters = Masters {
        site,
        interim: site.interim(),
        action,
        program: &program,
        health,
    };
    let reply = switch::run(site, &masters, action, old, &mut progress, 1);
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
    match reply {
        Ok(reply) => Ok(finish(site, &mut progress, change, reply)),
        // An internal error (a config that cannot be read, no free port) still ends the
        // progress record and the history entry: the U screen must not show a switch
        // running that has stopped.
        Err(e) => {
            change.outcome = format!("{e:#}");
            change.rollback_available = binaries::previous(site).is_some();
            switch::finish(site, &mut progress, change);
            Err(e)
        }
    }
}

/// A binary as the history and the `U` screen name it: this program (which `start`
/// and `restart` run when no binary was kept, through `/proc/self/exe` so that a file
/// replaced on disk cannot change what starts) by the path it was started from.
fn described(program: &Path) -> String {
    if program == Path::new("/proc/self/exe")
        && let Some(path) = crate::proc::process::this_program_name()
    {
        return format!("{path} (this program)");
    }
    program.display().to_string()
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
    switch::finish(site, progress, change);
    reply
}

/// The embedded kind's part of a switch: masters of `program` (this binary or a kept
/// one), started through the pool's client.
struct Masters<'a> {
    site: &'a Site,
    interim: Site,
    action: &'a str,
    program: &'a Path,
    health: Option<Duration>,
}

impl Generations for Masters<'_> {
    fn noun(&self) -> &'static str {
        "master"
    }

    fn new_one(&self) -> &'static str {
        "binary"
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        Ok(Config::load(self.site)?.settings())
    }

    fn prepare_interim(&self) -> anyhow::Result<()> {
        let dir = self.interim.pid_file();
        let dir = dir.parent().expect("in a directory");
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))
    }

    fn start_interim(&self, interim: &Settings) -> Result<u32, NotUp> {
        match client::start_program(&self.interim, self.program, Some(interim.port)) {
            StartOutcome::Started { pid, .. } => Ok(pid),
            StartOutcome::AlreadyRunning { pid } => Err(NotUp::EarlierInterim(pid)),
            StartOutcome::Failed { reason, .. } => {
                // Whatever it left: nothing of it may stay.
                let _ = client::stop(&self.interim, true);
                Err(NotUp::Failed(reason))
            }
        }
    }

    fn watch(&self, _interim: &Settings, progress: &mut Progress) -> Result<(), String> {
        let Some(window) = self.health else {
            return Ok(());
        };
        let settings = self.settings().map_err(|e| format!("{e:#}"))?;
        match front::unhealthy_within(self.site, &settings, window, progress) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn rolled_back(&self, why: &str) -> String {
        format!(
            "{} to {} rolled back by itself: {why}",
            self.action,
            described(self.program)
        )
    }

    fn drain_live(&self) -> anyhow::Result<String> {
        Ok(match client::stop(self.site, false)? {
            StopOutcome::Stopped { pid } => format!("PID {pid} stopped"),
            StopOutcome::Killed { pid } => format!("PID {pid} killed after the graceful timeout"),
            StopOutcome::NotRunning | StopOutcome::Stale { .. } | StopOutcome::Orphans { .. } => {
                "it had already exited".into()
            }
        })
    }

    fn start_live(&self, _settings: &Settings) -> Result<u32, String> {
        match client::start_program(self.site, self.program, None) {
            StartOutcome::Started { pid, .. } | StartOutcome::AlreadyRunning { pid } => Ok(pid),
            StartOutcome::Failed { reason, .. } => Err(reason),
        }
    }

    fn end_interim(&self, _master: u32) {
        let _ = client::stop(&self.interim, false);
    }

    fn runs(&self) -> String {
        described(self.program)
    }

    fn ran_by(&self, old: u32) -> Option<String> {
        // The old master runs the binary before (an upgrade): its own executable says.
        std::fs::read_link(format!("/proc/{old}/exe"))
            .ok()
            .map(|exe| exe.display().to_string())
    }

    fn switched(&self, new_master: u32, settings: &Settings, old: u32, took: Duration) -> String {
        format!(
            "Switched without a gap: {} (master PID {new_master}) serves on {} through the private nginx; the old master (PID {old}) was drained and stopped ({:.1} s).",
            described(self.program),
            settings.bind(),
            took.as_secs_f64()
        )
    }
}
