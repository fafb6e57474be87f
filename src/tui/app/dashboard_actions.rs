//! What the Dashboard tab's actions do: start, stop, restart, reload and scale the
//! pool, look at or kill a worker, sort, start or stop the private nginx. The risky
//! ones ask first (a `Popup::Confirm`); the jobs run in the runtime.

use super::update::run_job;
use super::{App, Confirmed, Popup};
use crate::tui::event::{Effect, Job};

/// Starts the pool and the private nginx.
pub(super) fn start(app: &mut App) -> Vec<Effect> {
    run_job(
        app,
        Job::Start {
            nginx_port: app.nginx.chosen_port(),
        },
    )
}

/// Asks before stopping the pool and the private nginx.
pub(super) fn stop(app: &mut App) -> Vec<Effect> {
    let what = match app.dashboard.status() {
        Some(s) => format!(
            "Stop OMERO.web (master PID {}, {} workers) and the private nginx?",
            s.master_pid,
            s.workers.len()
        ),
        None => "Stop OMERO.web and the private nginx?".to_string(),
    };
    app.confirm(
        what,
        vec!["In-flight requests finish first; the site is down until started again.".into()],
        Confirmed::Jobs(vec![Job::Stop]),
    );
    Vec::new()
}

/// A stopped pool starts; a running one restarts after asking.
pub(super) fn restart(app: &mut App) -> Vec<Effect> {
    if !app.pool_running() {
        return run_job(
            app,
            Job::Start {
                nginx_port: app.nginx.chosen_port(),
            },
        );
    }
    // What `restart_without_gap` will do: switch behind a running private nginx.
    let how = if app.nginx_running() {
        "A new generation starts beside the running one; the private nginx switches to it once it answers, so the site stays up. If it does not come up, the running one serves on."
    } else {
        "The pool stops (in-flight requests finish), then starts again; the site is briefly down (no private nginx runs to switch without a gap). Reload (r) replaces workers without downtime."
    };
    app.confirm(
        "Restart OMERO.web?",
        vec![how.into()],
        Confirmed::Jobs(vec![Job::Restart]),
    );
    Vec::new()
}

/// Replaces the workers without downtime.
pub(super) fn reload(app: &mut App) -> Vec<Effect> {
    if !app.pool_running() {
        app.warn("The pool is not running; start it with s.");
        return Vec::new();
    }
    run_job(app, Job::Reload)
}

/// One worker more.
pub(super) fn scale_up(app: &mut App) -> Vec<Effect> {
    if !app.pool_running() {
        app.warn("The pool is not running; start it with s.");
        return Vec::new();
    }
    run_job(app, Job::Scale(1))
}

/// One worker fewer, after asking; never below one.
pub(super) fn scale_down(app: &mut App) -> Vec<Effect> {
    let Some(status) = app.dashboard.status() else {
        app.warn("The pool is not running; start it with s.");
        return Vec::new();
    };
    let target = status.target_workers;
    if target <= 1 {
        app.warn("One worker is the minimum; stop the pool instead.");
        return Vec::new();
    }
    app.confirm(
        format!("Scale down from {target} to {} workers?", target - 1),
        vec!["One worker retires after finishing its requests.".into()],
        Confirmed::Jobs(vec![Job::Scale(-1)]),
    );
    Vec::new()
}

/// The selected worker's detail.
pub(super) fn worker_detail(app: &mut App) -> Vec<Effect> {
    match app.dashboard.selected_pid {
        Some(pid) => app.popup = Some(Popup::Worker { pid }),
        None => app.info("Select a worker first (↑/↓)."),
    }
    Vec::new()
}

/// Asks before killing the selected worker.
pub(super) fn kill_worker(app: &mut App) -> Vec<Effect> {
    let Some(pid) = app.dashboard.selected_pid.filter(|_| app.pool_running()) else {
        app.warn("No worker selected.");
        return Vec::new();
    };
    app.confirm(
        format!("Kill worker {pid}?"),
        vec!["Its in-flight requests fail; the pool starts a replacement.".into()],
        Confirmed::Jobs(vec![Job::KillWorker(pid)]),
    );
    Vec::new()
}

/// Starts the private nginx, or asks before stopping it.
pub(super) fn toggle_nginx(app: &mut App) -> Vec<Effect> {
    if app.nginx_running() {
        app.confirm(
            "Stop the private nginx?",
            vec!["The pool keeps running on its own address.".into()],
            Confirmed::Jobs(vec![Job::NginxStop]),
        );
        Vec::new()
    } else {
        run_job(
            app,
            Job::NginxStart {
                port: app.nginx.chosen_port(),
            },
        )
    }
}

/// Sorts the workers by the next column.
pub(super) fn next_sort(app: &mut App) -> Vec<Effect> {
    app.dashboard.next_sort();
    Vec::new()
}

/// Reverses the workers' order.
pub(super) fn reverse_sort(app: &mut App) -> Vec<Effect> {
    app.dashboard.descending = !app.dashboard.descending;
    Vec::new()
}
