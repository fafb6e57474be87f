//! Keys and the panel's frame: quitting, tabs, questions, help, redrawing, signals,
//! the status line.

use super::*;

#[test]
fn q_quits_but_esc_does_not() {
    let mut app = fixtures::app();
    press(&mut app, KeyCode::Esc);
    assert!(!app.quit);
    press(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
    let mut app = fixtures::app();
    update(
        &mut app,
        Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert!(app.quit);
}

#[test]
fn key_releases_are_ignored() {
    let mut app = fixtures::app();
    let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    update(&mut app, Event::Key(release));
    assert!(!app.quit);
}

#[test]
fn tabs_switch_by_number_and_tab_key() {
    let mut app = fixtures::app();
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.tab, Tab::Nginx);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.tab, Tab::Log);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.tab, Tab::Dashboard);
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.tab, Tab::Log);
}

#[test]
fn destructive_actions_ask_first() {
    for (key, job) in [
        ('x', Job::Stop),
        ('R', Job::Restart),
        ('-', Job::Scale(-1)),
        ('K', Job::KillWorker(31002)),
    ] {
        let mut app = fixtures::app();
        let effects = press(&mut app, KeyCode::Char(key));
        assert!(effects.is_empty(), "{key} acted without asking");
        assert!(
            matches!(app.popup, Some(Popup::Confirm { .. })),
            "{key} did not ask"
        );
        // n declines; nothing runs.
        assert!(press(&mut app, KeyCode::Char('n')).is_empty());
        assert_eq!(app.popup, None);
        // y confirms.
        press(&mut app, KeyCode::Char(key));
        let effects = press(&mut app, KeyCode::Char('y'));
        assert_eq!(jobs(&effects), [job], "{key}");
        assert_eq!(app.job, Some(job));
    }
}

#[test]
fn esc_declines_and_other_keys_do_nothing_in_a_question() {
    let mut app = fixtures::app();
    press(&mut app, KeyCode::Char('x'));
    assert!(press(&mut app, KeyCode::Char('s')).is_empty());
    assert!(press(&mut app, KeyCode::Char('q')).is_empty());
    assert!(!app.quit);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.popup, None);
    assert_eq!(app.job, None);
}

#[test]
fn idle_events_do_not_redraw() {
    let mut app = fixtures::bare_app();
    update(
        &mut app,
        Event::Sample(Box::new(fixtures::stopped_sample(100.0))),
    );
    update(&mut app, Event::Diagnostics(vec![]));
    app.dirty = false;
    let mut later = fixtures::stopped_sample(100.0);
    later.at += 1.0;
    update(&mut app, Event::Sample(Box::new(later)));
    let generation = app.log.generation;
    update(
        &mut app,
        Event::LogLines {
            generation,
            lines: vec![],
        },
    );
    update(&mut app, Event::Diagnostics(vec![]));
    assert!(!app.dirty);
    press(&mut app, KeyCode::Char('?'));
    assert!(app.dirty);
}

#[test]
fn signals_end_the_panel() {
    let mut app = fixtures::app();
    update(&mut app, Event::Terminate);
    assert!(app.quit);
}

#[test]
fn help_opens_and_closes_with_question_mark() {
    let mut app = fixtures::app();
    press(&mut app, KeyCode::Char('?'));
    assert_eq!(app.popup, Some(Popup::Help { scroll: 0 }));
    press(&mut app, KeyCode::Down);
    assert_eq!(app.popup, Some(Popup::Help { scroll: 1 }));
    press(&mut app, KeyCode::Char('?'));
    assert_eq!(app.popup, None);
}

#[test]
fn status_lines_carry_their_age_and_expire() {
    let mut app = fixtures::bare_app();
    let at = |app: &mut App, secs: f64| {
        let mut s = fixtures::stopped_sample(100.0);
        s.at = secs;
        update(app, Event::Sample(Box::new(s)));
    };
    at(&mut app, 10.0);
    // 'r' with no pool says so (a warning, at 10 s on the panel's clock).
    press(&mut app, KeyCode::Char('r'));
    let said = app.message.clone().unwrap();
    assert_eq!(said.at, 10.0);
    at(&mut app, 100.0);
    assert!(app.message.is_some(), "a warning stays two minutes");
    at(&mut app, 131.0);
    assert_eq!(app.message, None, "and then goes");
    // An error stays until something replaces it.
    app.message = Some(crate::tui::app::Message {
        severity: crate::tui::app::Severity::Error,
        text: "boom".into(),
        at: 131.0,
    });
    at(&mut app, 10_000.0);
    assert!(app.message.is_some());
}
