//! The Log tab: filter, search and jumps, another source, new errors counted on
//! the tab until looked at.

use super::*;

#[test]
fn the_log_tab_filters_searches_and_jumps() {
    let mut app = fixtures::app();
    app.tab = Tab::Log;
    assert!(app.log.follow);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "booted");
    assert_eq!(app.log.search, "booted", "highlights as you type");
    press(&mut app, KeyCode::Enter);
    // The newest match first.
    let marked = app.log.mark.unwrap() as usize;
    assert!(app.log.lines[marked].text.contains("Booted worker 31011"));
    assert!(!app.log.follow);
    press(&mut app, KeyCode::Char('N'));
    let earlier = app.log.mark.unwrap() as usize;
    assert!(app.log.lines[earlier].text.contains("Booted worker 31003"));
    press(&mut app, KeyCode::Char('n'));
    assert_eq!(app.log.mark.unwrap() as usize, marked);
    // Next error from the top.
    press(&mut app, KeyCode::Home);
    press(&mut app, KeyCode::Char('e'));
    let error = app.log.mark.unwrap() as usize;
    assert!(app.log.lines[error].text.contains("Cannot decode"));
    press(&mut app, KeyCode::Char('e'));
    let next = app.log.mark.unwrap() as usize;
    assert!(
        app.log.lines[next].text.contains("Traceback"),
        "tracebacks are errors too"
    );
    // Level filter and follow.
    press(&mut app, KeyCode::Char('l'));
    assert_eq!(app.log.min_level, Some(crate::logging::Level::Info));
    press(&mut app, KeyCode::End);
    assert!(app.log.follow);
    press(&mut app, KeyCode::Char('f'));
    assert!(!app.log.follow);
}

#[test]
fn switching_the_log_source_follows_another_file() {
    let mut app = fixtures::app();
    app.tab = Tab::Log;
    let generation = app.log.generation;
    let effects = press(&mut app, KeyCode::Char('s'));
    match effects.as_slice() {
        [
            Effect::FollowLog {
                path,
                generation: g,
                ..
            },
        ] => {
            assert!(path.ends_with("var/nginx/error.log"));
            assert_eq!(*g, generation + 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(app.log.lines.is_empty());
    // Lines still in flight from the old file are dropped.
    update(
        &mut app,
        Event::LogLines {
            generation,
            lines: vec!["old".into()],
        },
    );
    assert!(app.log.lines.is_empty());
    update(
        &mut app,
        Event::LogLines {
            generation: generation + 1,
            lines: vec!["2024/05/01 09:00:00 [error] 12#0: upstream timed out".into()],
        },
    );
    assert_eq!(app.log.lines[0].level, Some(crate::logging::Level::Error));
}

#[test]
fn new_errors_in_the_log_show_on_its_tab_until_it_is_looked_at() {
    let mut app = fixtures::bare_app();
    let generation = app.log.generation;
    let lines = vec![
        "2026-11-30 12:00:00,000 ERROR [omeroweb.x] (proc.1) f():1 boom".to_string(),
        "Traceback (most recent call last):".to_string(),
        "2026-11-30 12:00:01,000  INFO [omeroweb.x] (proc.1) f():2 fine".to_string(),
    ];
    update(
        &mut app,
        Event::LogLines {
            generation,
            lines: lines.clone(),
        },
    );
    assert_eq!(
        app.log.unseen_errors, 1,
        "the traceback counts with its line"
    );
    update(&mut app, Event::LogLines { generation, lines });
    assert_eq!(app.log.unseen_errors, 2);
    press(&mut app, KeyCode::Char('4'));
    assert_eq!(app.log.unseen_errors, 0);
    let generation = app.log.generation;
    update(
        &mut app,
        Event::LogLines {
            generation,
            lines: vec!["2026-11-30 12:00:02,000 ERROR [x] (proc.1) f():3 seen".into()],
        },
    );
    assert_eq!(
        app.log.unseen_errors, 0,
        "seen as it arrives on the Log tab"
    );
}
