//! The nginx tab: background checks of the current text, validated fields, writing
//! after asking, the private nginx as it runs.

use super::*;

#[test]
fn nginx_checks_run_in_the_background_for_the_current_text_only() {
    let mut app = fixtures::bare_app();
    let effects = press(&mut app, KeyCode::Char('3'));
    let check = effects
        .iter()
        .find_map(|e| match e {
            Effect::CheckNginx { text_hash, .. } => Some(*text_hash),
            _ => None,
        })
        .expect("entering the tab checks the preview");
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::ReadNginxTarget(_)))
    );
    // The kind changes while the check runs: no second check until it is back.
    let effects = press(&mut app, KeyCode::Char('t'));
    assert!(effects.is_empty());
    let effects = update(
        &mut app,
        Event::NginxChecked {
            text_hash: check,
            result: Err("nginx not found".into()),
        },
    );
    // The verdict was for the old text, so the new one is checked now.
    assert!(matches!(effects.as_slice(), [Effect::CheckNginx { .. }]));
    assert!(app.nginx.check_running());
    // A verdict that no longer matches is dropped.
    update(
        &mut app,
        Event::NginxChecked {
            text_hash: 12345,
            result: Err("stale".into()),
        },
    );
    assert!(app.nginx.check_running());
}

#[test]
fn nginx_options_are_validated_and_writing_asks() {
    let mut app = fixtures::app();
    app.tab = Tab::Nginx;
    press(&mut app, KeyCode::Char('p'));
    press(&mut app, KeyCode::Home);
    press(&mut app, KeyCode::Delete);
    press(&mut app, KeyCode::Delete);
    typed(&mut app, "x");
    assert!(app.nginx.edit.as_ref().unwrap().error.is_some());
    press(&mut app, KeyCode::Enter);
    assert!(app.nginx.edit.is_some(), "an invalid port was applied");
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('p'));
    app.nginx.edit.as_mut().unwrap().input.set("8081");
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(app.nginx.options.http_port, Some(8081));
    assert!(app.nginx.preview.as_ref().unwrap().contains("listen 8081;"));
    assert!(matches!(effects.as_slice(), [Effect::CheckNginx { .. }]));
    assert!(press(&mut app, KeyCode::Char('w')).is_empty());
    assert!(matches!(
        app.popup,
        Some(Popup::Confirm {
            on_yes: Confirmed::WriteNginx,
            ..
        })
    ));
    let effects = press(&mut app, KeyCode::Char('y'));
    match effects.as_slice() {
        [
            Effect::WriteNginx {
                path,
                text,
                private_port,
            },
        ] => {
            assert!(path.ends_with("var/nginx/omeroweb.conf"));
            assert!(text.contains("listen 8081;") && text.ends_with('\n'));
            assert_eq!(*private_port, None, "not the private nginx's own file");
        }
        other => panic!("{other:?}"),
    }
    // Written: the file is read back; reloading the running private nginx is offered.
    let path = app.nginx.output_path.clone();
    let effects = update(
        &mut app,
        Event::NginxWritten {
            path,
            result: Ok(()),
        },
    );
    assert!(matches!(effects.as_slice(), [Effect::ReadNginxTarget(_)]));
    assert!(matches!(
        &app.popup,
        Some(Popup::Confirm { on_yes: Confirmed::Jobs(jobs), .. }) if *jobs == [Job::NginxReload]
    ));
}

#[test]
fn nginx_check_state_survives_unrelated_events() {
    let mut app = fixtures::app();
    let before = app.nginx.check.clone();
    assert!(matches!(before, CheckState::Done { .. }));
    update(&mut app, Event::Resize(100, 30));
    assert_eq!(app.nginx.check, before);
}

#[test]
fn the_nginx_tab_shows_the_private_nginx_as_it_runs_and_writing_keeps_its_port() {
    let site = fixtures::site();
    let (mut app, _) = App::new(
        site.clone(),
        Ok(fixtures::config("")),
        crate::tui::theme::Theme::COLOR,
        None,
        Some(8099),
    );
    assert_eq!(app.nginx.kind, crate::nginx::NginxKind::NginxDevelopment);
    assert_eq!(
        app.nginx.output_path,
        crate::nginx::instance::config_path(&site)
    );
    assert!(app.nginx.file_text().unwrap().contains("listen 8099;"));
    app.tab = Tab::Nginx;
    app.nginx.target = crate::tui::nginx_tab::Target::Missing;
    let _ = press(&mut app, KeyCode::Char('w'));
    let effects = press(&mut app, KeyCode::Char('y'));
    match effects.as_slice() {
        [Effect::WriteNginx { private_port, .. }] => assert_eq!(*private_port, Some(8099)),
        other => panic!("{other:?}"),
    }
}
