//! The master's decisions, apart from the processes they act on: given what the
//! master knows of its workers (a table of [`Seen`] rows) and the clock, each function
//! says what to do — abort, kill, retire or spawn — and `master` carries it out. Kept
//! pure so that every rule (a silent worker is aborted after the timeout, an aborted
//! one is killed 2 s later, extra workers go oldest first, …) has a unit test that
//! fails when the rule changes. Gunicorn's arbiter makes the same decisions inline.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::http_app::blocking::Stuck;
use crate::logging::Level;
use crate::status::WorkerState;

/// How long an aborted (SIGABRT) worker may linger before SIGKILL, and between
/// further SIGKILLs while it still has not been reaped.
pub(super) const ABORT_GRACE: Duration = Duration::from_secs(2);
/// A quick stop's grace (SIGQUIT) before the remaining workers are killed.
pub(super) const QUICK_STOP_GRACE_SECS: u64 = 2;
/// How long killed workers may take to be reaped before the master gives up on them.
pub(super) const KILLED_REAP_WAIT: Duration = Duration::from_secs(5);
/// Longest a reload's answer waits for its old workers to confirm they stopped
/// accepting connections.
pub(super) const RETIRE_CONFIRM_WAIT: Duration = Duration::from_secs(5);

/// What the master knows of one worker, as the decisions need it.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub id: u64,
    pub pid: u32,
    pub slot: u64,
    pub state: WorkerState,
    pub spawned_at: Instant,
    pub last_heartbeat: Instant,
    /// When SIGABRT (or the last SIGKILL after it) was sent.
    pub aborted_at: Option<Instant>,
    pub stuck: Stuck,
    /// The worker said it closed its listener.
    pub stopped_accepting: bool,
}

/// The timeouts in force (omero.web.wsgi_timeout, omero.web.wsgi_boot_timeout), in
/// seconds; a timeout of 0 turns the heartbeat and stuck-thread checks off.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub timeout: u64,
    pub boot_timeout: u64,
}

/// What the master does to one worker.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Action {
    /// Mark it aborted and send SIGABRT; `message` is logged as critical.
    Abort { id: u64, message: String },
    /// SIGKILL an aborted worker that lingers (and note when).
    KillAgain { id: u64 },
    /// Retire it (SIGTERM) and count an unplanned replacement; `message` is an error.
    ReplaceStuck { id: u64, message: String },
    /// Retire it (SIGTERM): planned, not a restart.
    Retire { id: u64 },
    /// Start a worker in this slot.
    Spawn { slot: u64 },
}

/// The heartbeat check (`murder_workers`): booting workers past the boot timeout and
/// serving ones silent past the timeout are aborted; aborted ones that linger past
/// [`ABORT_GRACE`] are killed.
pub(super) fn murder(workers: &[Seen], limits: Timeouts, now: Instant) -> Vec<Action> {
    let timeout = Duration::from_secs(limits.timeout);
    let boot_timeout = Duration::from_secs(limits.boot_timeout);
    let mut actions = Vec::new();
    for worker in workers {
        if let Some(at) = worker.aborted_at {
            if now.duration_since(at) > ABORT_GRACE {
                actions.push(Action::KillAgain { id: worker.id });
            }
            continue;
        }
        let overdue = match worker.state {
            WorkerState::Booting => now.duration_since(worker.spawned_at) > boot_timeout,
            _ if limits.timeout == 0 => false,
            _ => now.duration_since(worker.last_heartbeat) > timeout,
        };
        if overdue {
            let message = if worker.state == WorkerState::Booting {
                format!(
                    "Worker (pid:{}) did not boot within {}s",
                    worker.pid, limits.boot_timeout
                )
            } else {
                format!("WORKER TIMEOUT (pid:{})", worker.pid)
            };
            actions.push(Action::Abort {
                id: worker.id,
                message,
            });
        }
    }
    actions
}

/// Serving workers whose blocking threads have been stuck for a whole timeout past
/// their own (`replace_stuck_workers`). Nothing while stopping or without a timeout.
pub(super) fn stuck(workers: &[Seen], timeout: u64, stopping: bool) -> Vec<Action> {
    if timeout == 0 || stopping {
        return Vec::new();
    }
    workers
        .iter()
        .filter(|w| w.state == WorkerState::Ready)
        .filter(|w| w.stuck.threads > 0 && w.stuck.secs >= timeout as f64)
        .map(|w| {
            let threads = w.stuck.threads;
            let s = if threads == 1 { "" } else { "s" };
            let what = w.stuck.oldest.as_deref().unwrap_or("blocking work");
            Action::ReplaceStuck {
                id: w.id,
                message: format!(
                    "Worker (pid:{}) replaced: {threads} blocking thread{s} stuck for {:.0}s past the {timeout}s timeout (oldest: {what})",
                    w.pid, w.stuck.secs
                ),
            }
        })
        .collect()
}

/// Keeping the count (`manage_workers`): spawn into the lowest free slots up to the
/// target, or retire the extra active workers, lowest id (oldest) first. Nothing
/// while stopping or reloading (a reload starts its own workers). The master stops
/// spawning early when the crash back-off says so.
pub(super) fn manage(
    workers: &[Seen],
    target: usize,
    stopping: bool,
    reloading: bool,
) -> Vec<Action> {
    if stopping || reloading {
        return Vec::new();
    }
    let mut active: Vec<&Seen> = workers.iter().filter(|w| w.state.is_active()).collect();
    active.sort_by_key(|w| w.id);
    if active.len() < target {
        let taken: Vec<u64> = active.iter().map(|w| w.slot).collect();
        (0..)
            .filter(|slot| !taken.contains(slot))
            .take(target - active.len())
            .map(|slot| Action::Spawn { slot })
            .collect()
    } else {
        active
            .iter()
            .take(active.len() - target)
            .map(|w| Action::Retire { id: w.id })
            .collect()
    }
}

/// The first start's progress (`check_boot`).
#[derive(Debug, PartialEq)]
pub(super) enum Boot {
    Ready(usize),
    /// Too few were ready within the boot timeout; the reason.
    Failed(String),
    Waiting {
        ready: usize,
    },
}

pub(super) fn boot_progress(
    workers: &[Seen],
    target: usize,
    since_start: Duration,
    boot_timeout: u64,
) -> Boot {
    let ready = workers
        .iter()
        .filter(|w| w.state == WorkerState::Ready)
        .count();
    if ready >= target {
        Boot::Ready(ready)
    } else if since_start > Duration::from_secs(boot_timeout) {
        Boot::Failed(format!(
            "only {ready} of {target} workers were ready after {boot_timeout}s (omero.web.wsgi_boot_timeout)"
        ))
    } else {
        Boot::Waiting { ready }
    }
}

/// The target a scale request (TTIN/TTOU or `scale`) sets: at least 1, at most
/// the registry's limit (past it, a signal does nothing more).
pub(super) fn scale_target(asked: i64) -> usize {
    asked.clamp(1, crate::config::registry::MAX_WORKERS as i64) as usize
}

/// How a worker's exit is told and counted (`reap_worker`).
#[derive(Debug, PartialEq)]
pub(super) struct ExitVerdict {
    /// The log line.
    pub message: String,
    pub level: Level,
    /// Retired or stopping: a planned replacement, not a restart.
    pub planned: bool,
    /// A crash of the current generation: it counts for the back-off.
    pub crash: bool,
}

/// What the master knows of a worker that exited.
pub(super) struct Exit {
    pub pid: u32,
    pub state: WorkerState,
    pub generation: u64,
    pub killed_by_master: bool,
    pub killed_on_request: bool,
    pub boot_failure: Option<String>,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// How the exit of `how` reads ("exited with code 3", "was sent SIGKILL! …").
pub(super) fn exit_how(exit: &Exit) -> String {
    match (exit.code, exit.signal) {
        (Some(0), _) => "exited normally".to_string(),
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(9)) if !exit.killed_by_master => {
            "was sent SIGKILL! Perhaps out of memory?".to_string()
        }
        (None, Some(sig)) => format!(
            "was killed by {}",
            Signal::try_from(sig)
                .map(|s| s.as_str())
                .unwrap_or("a signal")
        ),
        _ => "exited".to_string(),
    }
}

pub(super) fn exit_verdict(exit: &Exit, stopping: bool, generation: u64) -> ExitVerdict {
    // Retired, stopping, or killed on an operator's request: not a crash, so no
    // back-off and no "degraded".
    let expected = exit.state == WorkerState::Retiring || stopping || exit.killed_on_request;
    let pid = exit.pid;
    let (message, level) = if expected && exit.code == Some(0) {
        (format!("Worker (pid:{pid}) exited normally"), Level::Info)
    } else {
        let level = if exit.killed_by_master || expected {
            Level::Warning
        } else {
            Level::Error
        };
        let mut message = format!("Worker (pid:{pid}) {}", exit_how(exit));
        if let Some(reason) = &exit.boot_failure {
            message.push_str(&format!(" — failed to boot: {reason}"));
        }
        (message, level)
    };
    ExitVerdict {
        message,
        level,
        // A worker killed on an operator's request is a restart, as a killed
        // container is.
        planned: exit.state == WorkerState::Retiring || stopping,
        crash: exit.generation == generation && !expected,
    }
}

/// Beginning a stop: the grace (seconds) and the signal, and which workers get it
/// (active ones on a graceful stop, every one on a quick stop).
pub(super) fn stop_plan(
    workers: &[Seen],
    quick: bool,
    graceful_timeout: u64,
) -> (u64, Signal, Vec<u64>) {
    let grace = if quick {
        QUICK_STOP_GRACE_SECS
    } else {
        graceful_timeout.max(1)
    };
    let signal = if quick {
        Signal::SIGQUIT
    } else {
        Signal::SIGTERM
    };
    let ids = workers
        .iter()
        .filter(|w| w.state.is_active() || quick)
        .map(|w| w.id)
        .collect();
    (grace, signal, ids)
}

/// A stop in progress, one tick on.
#[derive(Debug, PartialEq)]
pub(super) enum StopStep {
    Done,
    /// The grace passed: SIGKILL the remaining workers, wait [`KILLED_REAP_WAIT`].
    KillRemaining,
    Wait,
}

pub(super) fn stop_step(
    workers_left: usize,
    now: Instant,
    deadline: Instant,
    killed: bool,
) -> StopStep {
    if workers_left == 0 {
        StopStep::Done
    } else if now > deadline && !killed {
        StopStep::KillRemaining
    } else if killed && now > deadline {
        StopStep::Done // Unreapable workers; nothing more we can do.
    } else {
        StopStep::Wait
    }
}

/// Where a rolling restart stands, as its next step needs it.
pub(super) struct ReloadView<'a> {
    pub started: usize,
    pub pending: Option<u64>,
    pub pending_failure: Option<&'a str>,
    pub retired: &'a [u64],
    pub retired_at: Option<Instant>,
}

/// The next step of a rolling restart (`advance_reload`).
#[derive(Debug, PartialEq)]
pub(super) enum ReloadStep {
    Wait,
    /// The old workers no longer accept connections (or the wait ran out).
    Complete,
    /// A new worker failed before it was ready: go back to the old generation.
    Abort(String),
    /// The pending worker (if any) is ready: start the next one in this slot.
    SpawnNext {
        slot: u64,
    },
    /// Every new worker is ready: retire the old ones.
    RetireOld,
}

pub(super) fn reload_step(
    reload: &ReloadView,
    workers: &[Seen],
    target: usize,
    now: Instant,
) -> ReloadStep {
    let find = |id: u64| workers.iter().find(|w| w.id == id);
    if let Some(since) = reload.retired_at {
        let still_accepting = reload
            .retired
            .iter()
            .any(|&id| find(id).is_some_and(|w| !w.stopped_accepting));
        // A stuck old worker (stopped, say) must not hold the answer for long; it is
        // killed at its timeout anyway.
        if still_accepting && now.duration_since(since) < RETIRE_CONFIRM_WAIT {
            return ReloadStep::Wait;
        }
        return ReloadStep::Complete;
    }
    if let Some(id) = reload.pending {
        match find(id).map(|w| w.state) {
            Some(WorkerState::Ready) => {}
            Some(WorkerState::Booting) => return ReloadStep::Wait,
            _ => {
                return ReloadStep::Abort(
                    reload
                        .pending_failure
                        .unwrap_or("a new worker failed to boot")
                        .to_string(),
                );
            }
        }
    }
    if reload.started < target {
        ReloadStep::SpawnNext {
            slot: reload.started as u64,
        }
    } else {
        ReloadStep::RetireOld
    }
}

#[cfg(test)]
mod tests;
