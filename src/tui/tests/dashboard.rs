//! The Dashboard tab: jobs (one at a time, what they need, how they fail), workers,
//! the private nginx's start and errors, the `U` screen and rollback.

use super::*;

#[test]
fn harmless_actions_run_at_once_and_one_job_at_a_time() {
    let mut app = fixtures::app();
    assert_eq!(jobs(&press(&mut app, KeyCode::Char('r'))), [Job::Reload]);
    // Busy: a second job is refused with a message.
    assert!(press(&mut app, KeyCode::Char('+')).is_empty());
    assert_eq!(app.message.as_ref().unwrap().severity, Severity::Warning);
    let effects = update(
        &mut app,
        Event::JobFinished {
            job: Job::Reload,
            result: Ok("Reloaded: 4 workers replaced".into()),
        },
    );
    assert!(matches!(effects[0], Effect::SampleNow));
    assert_eq!(app.job, None);
    assert_eq!(
        app.message.as_ref().unwrap().text,
        "Reloaded: 4 workers replaced"
    );
    assert_eq!(jobs(&press(&mut app, KeyCode::Char('+'))), [Job::Scale(1)]);
}

#[test]
fn actions_that_need_a_pool_say_so_when_there_is_none() {
    let mut app = fixtures::bare_app();
    assert!(press(&mut app, KeyCode::Char('r')).is_empty());
    assert!(press(&mut app, KeyCode::Char('K')).is_empty());
    assert_eq!(app.popup, None);
    assert_eq!(
        jobs(&press(&mut app, KeyCode::Char('s'))),
        [Job::Start { nginx_port: None }]
    );
}

#[test]
fn failed_jobs_explain_themselves() {
    let mut app = fixtures::app();
    press(&mut app, KeyCode::Char('s'));
    update(
        &mut app,
        Event::JobFinished {
            job: Job::Start { nginx_port: None },
            result: Err(JobFailure {
                message: "OMERO.web did not start: port in use".into(),
                details: vec!["log line".into()],
            }),
        },
    );
    assert_eq!(app.message.as_ref().unwrap().severity, Severity::Error);
    match &app.popup {
        Some(Popup::Message { lines, .. }) => assert_eq!(lines.len(), 2),
        other => panic!("{other:?}"),
    }
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.popup, None);
}

#[test]
fn quitting_during_a_job_asks() {
    let mut app = fixtures::app();
    press(&mut app, KeyCode::Char('s'));
    press(&mut app, KeyCode::Char('q'));
    assert!(!app.quit);
    assert!(matches!(
        app.popup,
        Some(Popup::Confirm {
            on_yes: Confirmed::Quit,
            ..
        })
    ));
    press(&mut app, KeyCode::Char('y'));
    assert!(app.quit);
}

#[test]
fn nginx_server_errors_of_the_last_minute_are_a_problem_on_the_dashboard() {
    let lines: Vec<String> = [
        r#"127.0.0.1 - - [30/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 502 157 "-" "ab""#,
        r#"127.0.0.1 - - [30/Nov/2026:12:00:00 +0000] "GET /x HTTP/1.1" 504 157 "-" "ab""#,
        r#"127.0.0.1 - - [30/Nov/2026:12:00:00 +0000] "GET /y HTTP/1.1" 500 9 "-" "ab""#,
        r#"127.0.0.1 - - [30/Nov/2026:12:00:00 +0000] "GET /z HTTP/1.1" 200 9 "-" "ab""#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let counted = crate::tui::event::NginxErrors::count(&lines);
    assert_eq!(
        (
            counted.server_errors,
            counted.bad_gateway,
            counted.gateway_timeout
        ),
        (3, 1, 1)
    );
    let mut app = fixtures::bare_app();
    let at = |app: &mut App, secs: f64, errors: crate::tui::event::NginxErrors| {
        let mut s = fixtures::stopped_sample(100.0);
        s.at = secs;
        s.nginx_errors = errors;
        update(app, Event::Sample(Box::new(s)));
    };
    at(&mut app, 10.0, counted);
    at(&mut app, 40.0, counted);
    assert_eq!(app.dashboard.recent_nginx_errors().server_errors, 6);
    at(&mut app, 75.0, Default::default());
    assert_eq!(
        app.dashboard.recent_nginx_errors().bad_gateway,
        1,
        "the first is a minute old"
    );
    at(&mut app, 101.0, Default::default());
    assert_eq!(app.dashboard.recent_nginx_errors().server_errors, 0);
}

#[test]
fn worker_history_keeps_the_live_ones_and_enter_needs_a_selection() {
    let mut app = fixtures::app();
    app.tab = Tab::Dashboard;
    app.dashboard.selected_pid = None;
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.popup, None);
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("Select a worker")
    );
    let live: Vec<u32> = app
        .dashboard
        .status()
        .unwrap()
        .workers
        .iter()
        .map(|w| w.pid)
        .collect();
    assert!(live.iter().all(|p| app.dashboard.history.contains_key(p)));
    assert!(
        app.dashboard
            .history
            .values()
            .all(|h| h.len() <= crate::tui::dashboard::WORKER_HISTORY)
    );
    // The pool stopped: no worker, no history.
    update(
        &mut app,
        Event::Sample(Box::new(fixtures::stopped_sample(100.0))),
    );
    assert!(app.dashboard.history.is_empty());
}

#[test]
fn s_and_n_start_the_private_nginx_on_the_port_the_nginx_tab_shows() {
    let mut app = fixtures::bare_app();
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('p'));
    update(
        &mut app,
        Event::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    typed(&mut app, "18081");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.nginx.http_port(), 18081);
    press(&mut app, KeyCode::Char('1'));
    assert_eq!(
        jobs(&press(&mut app, KeyCode::Char('n'))),
        [Job::NginxStart { port: Some(18081) }]
    );
    app.job = None;
    app.queued_jobs.clear();
    assert_eq!(
        jobs(&press(&mut app, KeyCode::Char('s'))),
        [Job::Start {
            nginx_port: Some(18081)
        }]
    );
}

#[test]
fn a_remembered_port_is_not_passed_to_a_start_as_if_chosen() {
    // var/nginx/port belongs to the site's owner; the start applies its own rules to
    // it (root does not bind a privileged port from it), so the panel must not pass
    // it as a port someone typed.
    let (mut app, _) = App::new(
        fixtures::site(),
        Ok(fixtures::config(fixtures::CONFIG)),
        crate::tui::theme::Theme::COLOR,
        None,
        Some(80),
    );
    assert_eq!(app.nginx.http_port(), 80);
    assert_eq!(
        jobs(&press(&mut app, KeyCode::Char('s'))),
        [Job::Start { nginx_port: None }]
    );
}

#[test]
fn u_opens_the_upgrades_screen_and_b_rolls_back_after_asking() {
    let mut app = fixtures::app();
    press(&mut app, KeyCode::Char('U'));
    assert_eq!(app.popup, Some(Popup::Upgrades { scroll: 0 }));
    // The hint bar comes from the keymap: the screen's own key is in it.
    let hints = crate::tui::keymap::hints(&app.contexts());
    assert!(
        hints.iter().any(|h| h.key == "b" && h.label == "roll back"),
        "{hints:?}"
    );

    // Nothing kept: nothing to confirm.
    assert!(press(&mut app, KeyCode::Char('b')).is_empty());
    assert_eq!(app.popup, Some(Popup::Upgrades { scroll: 0 }));
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("Nothing to roll back to")
    );

    // While a change runs: not now.
    app.dashboard.changes = fixtures::changes_midway();
    assert!(press(&mut app, KeyCode::Char('b')).is_empty());
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("A change is running")
    );

    // After it: asks, names the target, then rolls back.
    app.dashboard.changes.running = false;
    assert!(press(&mut app, KeyCode::Char('b')).is_empty());
    let Some(Popup::Confirm { detail, on_yes, .. }) = &app.popup else {
        panic!("no question: {:?}", app.popup);
    };
    assert!(detail[0].contains("the binary before"), "{detail:?}");
    assert_eq!(*on_yes, Confirmed::Jobs(vec![Job::Rollback]));
    let effects = press(&mut app, KeyCode::Char('y'));
    assert_eq!(jobs(&effects), [Job::Rollback]);
}
