//! One test per decision of the arbiter: each fails if its rule changes.

use super::*;

const LIMITS: Timeouts = Timeouts {
    timeout: 30,
    boot_timeout: 60,
};

fn worker(id: u64, state: WorkerState, t0: Instant) -> Seen {
    Seen {
        id,
        pid: 1000 + id as u32,
        slot: id,
        state,
        spawned_at: t0,
        last_heartbeat: t0,
        aborted_at: None,
        stuck: Stuck::default(),
        stopped_accepting: false,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn a_silent_serving_worker_is_aborted_only_past_the_timeout() {
    let t0 = Instant::now();
    let table = [worker(1, WorkerState::Ready, t0)];
    assert!(murder(&table, LIMITS, t0 + secs(30)).is_empty());
    assert_eq!(
        murder(&table, LIMITS, t0 + secs(31)),
        vec![Action::Abort {
            id: 1,
            message: "WORKER TIMEOUT (pid:1001)".into()
        }]
    );
}

#[test]
fn a_heartbeat_keeps_a_worker_alive() {
    let t0 = Instant::now();
    let mut w = worker(1, WorkerState::Ready, t0);
    w.last_heartbeat = t0 + secs(20);
    assert!(murder(&[w], LIMITS, t0 + secs(45)).is_empty());
}

#[test]
fn timeout_zero_never_aborts_a_serving_worker_but_still_bounds_the_boot() {
    let t0 = Instant::now();
    let limits = Timeouts {
        timeout: 0,
        boot_timeout: 60,
    };
    let table = [
        worker(1, WorkerState::Ready, t0),
        worker(2, WorkerState::Booting, t0),
    ];
    assert_eq!(
        murder(&table, limits, t0 + secs(3600)),
        vec![Action::Abort {
            id: 2,
            message: "Worker (pid:1002) did not boot within 60s".into()
        }]
    );
}

#[test]
fn a_booting_worker_has_the_boot_timeout_not_the_timeout() {
    let t0 = Instant::now();
    let table = [worker(1, WorkerState::Booting, t0)];
    assert!(murder(&table, LIMITS, t0 + secs(60)).is_empty());
    assert!(matches!(
        murder(&table, LIMITS, t0 + secs(61)).as_slice(),
        [Action::Abort { id: 1, .. }]
    ));
}

#[test]
fn an_aborted_worker_is_killed_after_two_seconds_and_again_after_each_two() {
    let t0 = Instant::now();
    let mut w = worker(1, WorkerState::Aborted, t0);
    w.aborted_at = Some(t0);
    let table = [w];
    assert!(murder(&table, LIMITS, t0 + secs(2)).is_empty());
    assert_eq!(
        murder(&table, LIMITS, t0 + Duration::from_millis(2001)),
        vec![Action::KillAgain { id: 1 }]
    );
}

#[test]
fn a_worker_stuck_a_whole_timeout_is_replaced_with_a_reason() {
    let t0 = Instant::now();
    let mut w = worker(1, WorkerState::Ready, t0);
    w.stuck = Stuck {
        threads: 2,
        secs: 30.0,
        oldest: Some("image 7 (open)".into()),
    };
    let mut below = w.clone();
    below.stuck.secs = 29.9;
    below.id = 2;
    assert_eq!(
        stuck(&[w.clone(), below], 30, false),
        vec![Action::ReplaceStuck {
            id: 1,
            message: "Worker (pid:1001) replaced: 2 blocking threads stuck for 30s past the 30s timeout (oldest: image 7 (open))".into()
        }]
    );
    assert!(
        stuck(std::slice::from_ref(&w), 30, true).is_empty(),
        "not while stopping"
    );
    assert!(
        stuck(std::slice::from_ref(&w), 0, false).is_empty(),
        "not without a timeout"
    );
    w.state = WorkerState::Retiring;
    assert!(stuck(&[w], 30, false).is_empty(), "only serving workers");
}

#[test]
fn missing_workers_are_spawned_into_the_lowest_free_slots() {
    let t0 = Instant::now();
    let mut retiring = worker(0, WorkerState::Retiring, t0);
    retiring.slot = 0;
    let mut serving = worker(1, WorkerState::Ready, t0);
    serving.slot = 1;
    assert_eq!(
        manage(&[retiring, serving], 3, false, false),
        vec![Action::Spawn { slot: 0 }, Action::Spawn { slot: 2 }]
    );
}

#[test]
fn extra_workers_are_retired_oldest_first_and_retiring_ones_do_not_count() {
    let t0 = Instant::now();
    let table = [
        worker(5, WorkerState::Ready, t0),
        worker(3, WorkerState::Booting, t0),
        worker(4, WorkerState::Ready, t0),
        worker(1, WorkerState::Retiring, t0),
        worker(2, WorkerState::Aborted, t0),
    ];
    assert_eq!(
        manage(&table, 1, false, false),
        vec![Action::Retire { id: 3 }, Action::Retire { id: 4 }]
    );
    assert!(manage(&table, 3, false, false).is_empty());
}

#[test]
fn the_count_is_left_alone_while_stopping_or_reloading() {
    assert!(manage(&[], 2, true, false).is_empty());
    assert!(manage(&[], 2, false, true).is_empty());
    assert_eq!(
        manage(&[], 1, false, false),
        vec![Action::Spawn { slot: 0 }]
    );
}

#[test]
fn the_first_start_is_ready_with_the_target_and_fails_past_the_boot_timeout() {
    let t0 = Instant::now();
    let table = [
        worker(1, WorkerState::Ready, t0),
        worker(2, WorkerState::Booting, t0),
    ];
    assert_eq!(boot_progress(&table, 1, secs(1), 60), Boot::Ready(1));
    assert_eq!(
        boot_progress(&table, 2, secs(60), 60),
        Boot::Waiting { ready: 1 }
    );
    assert_eq!(
        boot_progress(&table, 2, secs(61), 60),
        Boot::Failed(
            "only 1 of 2 workers were ready after 60s (omero.web.wsgi_boot_timeout)".into()
        )
    );
}

#[test]
fn scaling_stays_between_one_and_the_limit() {
    let max = crate::config::registry::MAX_WORKERS as usize;
    assert_eq!(scale_target(0), 1);
    assert_eq!(scale_target(3), 3);
    assert_eq!(scale_target(max as i64 + 1), max);
}

fn exit(state: WorkerState, code: Option<i32>, signal: Option<i32>) -> Exit {
    Exit {
        pid: 42,
        state,
        generation: 1,
        killed_by_master: false,
        killed_on_request: false,
        boot_failure: None,
        code,
        signal,
    }
}

#[test]
fn an_unexplained_sigkill_reads_as_out_of_memory_and_is_a_crash() {
    let verdict = exit_verdict(&exit(WorkerState::Ready, None, Some(9)), false, 1);
    assert_eq!(
        verdict,
        ExitVerdict {
            message: "Worker (pid:42) was sent SIGKILL! Perhaps out of memory?".into(),
            level: Level::Error,
            planned: false,
            crash: true,
        }
    );
}

#[test]
fn a_kill_by_the_master_is_a_warning_named_by_its_signal() {
    let mut e = exit(WorkerState::Aborted, None, Some(9));
    e.killed_by_master = true;
    let verdict = exit_verdict(&e, false, 1);
    assert_eq!(verdict.message, "Worker (pid:42) was killed by SIGKILL");
    assert_eq!(verdict.level, Level::Warning);
    assert!(!verdict.planned && verdict.crash);
}

#[test]
fn a_kill_on_request_is_a_restart_but_not_a_crash() {
    let mut e = exit(WorkerState::Ready, None, Some(9));
    e.killed_by_master = true;
    e.killed_on_request = true;
    let verdict = exit_verdict(&e, false, 1);
    assert!(!verdict.planned, "counted as a restart");
    assert!(!verdict.crash, "no back-off");
}

#[test]
fn a_retired_worker_exiting_cleanly_is_planned_and_quiet() {
    let verdict = exit_verdict(&exit(WorkerState::Retiring, Some(0), None), false, 1);
    assert_eq!(
        verdict,
        ExitVerdict {
            message: "Worker (pid:42) exited normally".into(),
            level: Level::Info,
            planned: true,
            crash: false,
        }
    );
    let stopping = exit_verdict(&exit(WorkerState::Ready, Some(3), None), true, 1);
    assert_eq!(stopping.level, Level::Warning);
    assert!(stopping.planned && !stopping.crash);
}

#[test]
fn a_boot_failure_is_told_and_an_old_generation_crash_has_no_back_off() {
    let mut e = exit(WorkerState::Booting, Some(3), None);
    e.boot_failure = Some("no module named omeroweb".into());
    let verdict = exit_verdict(&e, false, 2);
    assert_eq!(
        verdict.message,
        "Worker (pid:42) exited with code 3 — failed to boot: no module named omeroweb"
    );
    assert!(!verdict.crash, "generation 1 is not the current one");
    assert!(exit_verdict(&e, false, 1).crash);
}

#[test]
fn a_graceful_stop_terms_active_workers_and_a_quick_one_quits_all() {
    let t0 = Instant::now();
    let table = [
        worker(1, WorkerState::Ready, t0),
        worker(2, WorkerState::Retiring, t0),
    ];
    assert_eq!(stop_plan(&table, false, 30), (30, Signal::SIGTERM, vec![1]));
    assert_eq!(stop_plan(&table, false, 0).0, 1, "at least 1 s of grace");
    assert_eq!(
        stop_plan(&table, true, 30),
        (2, Signal::SIGQUIT, vec![1, 2])
    );
}

#[test]
fn a_stop_kills_the_remaining_workers_after_the_grace_then_gives_up() {
    let t0 = Instant::now();
    let deadline = t0 + secs(10);
    assert_eq!(stop_step(0, t0, deadline, false), StopStep::Done);
    assert_eq!(stop_step(2, t0 + secs(10), deadline, false), StopStep::Wait);
    assert_eq!(
        stop_step(2, t0 + secs(11), deadline, false),
        StopStep::KillRemaining
    );
    assert_eq!(stop_step(2, t0 + secs(11), deadline, true), StopStep::Done);
    assert_eq!(stop_step(2, t0 + secs(9), deadline, true), StopStep::Wait);
}

fn view(started: usize, pending: Option<u64>) -> ReloadView<'static> {
    ReloadView {
        started,
        pending,
        pending_failure: None,
        retired: &[],
        retired_at: None,
    }
}

#[test]
fn a_reload_starts_new_workers_one_at_a_time() {
    let t0 = Instant::now();
    let booting = [worker(7, WorkerState::Booting, t0)];
    assert_eq!(
        reload_step(&view(0, None), &[], 2, t0),
        ReloadStep::SpawnNext { slot: 0 }
    );
    assert_eq!(
        reload_step(&view(1, Some(7)), &booting, 2, t0),
        ReloadStep::Wait
    );
    let ready = [worker(7, WorkerState::Ready, t0)];
    assert_eq!(
        reload_step(&view(1, Some(7)), &ready, 2, t0),
        ReloadStep::SpawnNext { slot: 1 }
    );
    assert_eq!(
        reload_step(&view(2, Some(7)), &ready, 2, t0),
        ReloadStep::RetireOld
    );
}

#[test]
fn a_reload_aborts_when_its_pending_worker_dies_before_ready() {
    let t0 = Instant::now();
    assert_eq!(
        reload_step(&view(1, Some(7)), &[], 2, t0),
        ReloadStep::Abort("a new worker failed to boot".into())
    );
    let mut told = view(1, Some(7));
    told.pending_failure = Some("new worker failed to boot: bad config");
    let aborted = [worker(7, WorkerState::Aborted, t0)];
    assert_eq!(
        reload_step(&told, &aborted, 2, t0),
        ReloadStep::Abort("new worker failed to boot: bad config".into())
    );
}

#[test]
fn a_reload_is_answered_once_old_workers_stop_accepting_or_the_wait_ends() {
    let t0 = Instant::now();
    let mut old = worker(1, WorkerState::Retiring, t0);
    let mut step = view(2, None);
    step.retired = &[1];
    step.retired_at = Some(t0);
    assert_eq!(
        reload_step(&step, std::slice::from_ref(&old), 2, t0 + secs(4)),
        ReloadStep::Wait
    );
    assert_eq!(
        reload_step(&step, std::slice::from_ref(&old), 2, t0 + secs(5)),
        ReloadStep::Complete
    );
    old.stopped_accepting = true;
    assert_eq!(reload_step(&step, &[old], 2, t0), ReloadStep::Complete);
    assert_eq!(
        reload_step(&step, &[], 2, t0),
        ReloadStep::Complete,
        "gone counts as stopped"
    );
}
