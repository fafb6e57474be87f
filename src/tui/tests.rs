//! The update logic without a terminal: keys through the keymap, confirmations, the
//! property editor, jobs, the config's life cycle, the log and nginx tabs.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{App, Confirmed, Popup, Severity, Tab, update};
use super::event::{Effect, Event, Job, JobFailure, NginxObservation};
use super::fixtures;
use super::nginx_tab::CheckState;

fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    update(app, Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn jobs(effects: &[Effect]) -> Vec<Job> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::RunJob(job) => Some(*job),
            _ => None,
        })
        .collect()
}

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
fn an_invalid_value_cannot_be_saved() {
    let mut app = fixtures::app();
    app.tab = Tab::Properties;
    app.properties.selected = Some("omero.web.application_server.port");
    press(&mut app, KeyCode::Enter);
    let edit = app.properties.edit.as_ref().unwrap();
    assert_eq!(edit.input.value(), "4080");
    // Typing goes to the field, not to the keymap (q, 1 and s are letters here).
    typed(&mut app, "1q");
    assert!(!app.quit);
    assert_eq!(app.tab, Tab::Properties);
    assert!(app.properties.edit.as_ref().unwrap().error.is_some());
    assert!(
        press(&mut app, KeyCode::Enter).is_empty(),
        "saved an invalid value"
    );
    assert_eq!(app.message.as_ref().unwrap().severity, Severity::Error);
    assert!(app.properties.edit.is_some());
    // Fix it: valid, then Enter saves through the config store.
    for _ in 0..3 {
        press(&mut app, KeyCode::Backspace);
    }
    typed(&mut app, "5");
    assert_eq!(app.properties.edit.as_ref().unwrap().input.value(), "4085");
    assert_eq!(app.properties.edit.as_ref().unwrap().error, None);
    let effects = press(&mut app, KeyCode::Enter);
    match effects.as_slice() {
        [Effect::SaveConfig { key, value, .. }] => {
            assert_eq!(key, "omero.web.application_server.port");
            assert_eq!(value.as_deref(), Some("4085"));
        }
        other => panic!("{other:?}"),
    }
    assert!(app.properties.edit.as_ref().unwrap().saving);
}

#[test]
fn esc_cancels_an_edit_and_unchanged_values_are_not_written() {
    let mut app = fixtures::app();
    app.tab = Tab::Properties;
    app.properties.selected = Some("omero.web.wsgi_workers");
    press(&mut app, KeyCode::Enter);
    typed(&mut app, "0");
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.properties.edit, None);
    assert_eq!(app.tab, Tab::Properties);
    press(&mut app, KeyCode::Enter);
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert!(app.message.as_ref().unwrap().text.contains("unchanged"));
}

#[test]
fn a_save_offers_what_the_change_needs() {
    let mut app = fixtures::app();
    app.tab = Tab::Properties;
    let mut config = fixtures::config(fixtures::CONFIG);
    config
        .set("omero.web.application_server.port", "4085", false)
        .unwrap();
    let effects = update(
        &mut app,
        Event::ConfigSaved {
            config: Box::new(config),
            key: "omero.web.application_server.port".into(),
            needs: crate::config::registry::lookup("omero.web.application_server.port")
                .unwrap()
                .needs,
        },
    );
    assert!(jobs(&effects).is_empty(), "applied without asking");
    assert!(
        app.nginx
            .preview
            .as_ref()
            .unwrap()
            .contains("127.0.0.1:4085")
    );
    let Some(Popup::Confirm { on_yes, .. }) = &app.popup else {
        panic!("no offer: {:?}", app.popup);
    };
    // The pool runs and so does the private nginx: restart, then reload nginx.
    assert_eq!(
        *on_yes,
        Confirmed::Jobs(vec![Job::Restart, Job::NginxReload])
    );
    let effects = press(&mut app, KeyCode::Char('y'));
    assert_eq!(jobs(&effects), [Job::Restart]);
    let effects = update(
        &mut app,
        Event::JobFinished {
            job: Job::Restart,
            result: Ok("restarted".into()),
        },
    );
    assert_eq!(jobs(&effects), [Job::NginxReload]);
}

#[test]
fn a_save_with_nothing_running_just_says_when_it_applies() {
    let mut app = fixtures::bare_app();
    let mut config = fixtures::config(fixtures::CONFIG);
    config.set("omero.web.wsgi_workers", "6", false).unwrap();
    update(
        &mut app,
        Event::ConfigSaved {
            config: Box::new(config),
            key: "omero.web.wsgi_workers".into(),
            needs: &[crate::config::Need::PoolReload],
        },
    );
    assert_eq!(app.popup, None);
    assert!(app.message.as_ref().unwrap().text.contains("next start"));
}

#[test]
fn a_file_changed_on_disk_is_reloaded_and_nothing_stale_is_kept() {
    let mut app = fixtures::app();
    app.tab = Tab::Properties;
    app.properties.selected = Some("omero.web.wsgi_workers");
    press(&mut app, KeyCode::Enter);
    typed(&mut app, "0");
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(effects.len(), 1);
    // Someone else set the port meanwhile; the save is refused and the file reloaded.
    let theirs = format!("{}\"omero.web.page_size\" = 50\n", fixtures::CONFIG);
    update(
        &mut app,
        Event::ConfigSaveFailed {
            error: "changed on disk since it was read".into(),
            reloaded: Some(Ok(Box::new(fixtures::config(&theirs)))),
        },
    );
    let config = app.config.as_ref().unwrap();
    assert_eq!(
        config.get("omero.web.page_size").map(|v| v.to_raw()),
        Some("50".into())
    );
    assert_eq!(app.message.as_ref().unwrap().severity, Severity::Error);
    assert!(app.message.as_ref().unwrap().text.contains("Reloaded"));
    // The edit stays open (not saving) so it can be submitted again.
    let edit = app.properties.edit.as_ref().unwrap();
    assert!(!edit.saving);
    assert_eq!(edit.input.value(), "40");
}

#[test]
fn config_changes_on_disk_are_picked_up() {
    let mut app = fixtures::app();
    // Same bytes: nothing happens, nothing redraws.
    app.dirty = false;
    update(
        &mut app,
        Event::ConfigLoaded(Ok(Box::new(fixtures::config(fixtures::CONFIG)))),
    );
    assert!(!app.dirty);
    assert_eq!(app.message, None);
    let changed = fixtures::CONFIG.replace("4080", "4090");
    update(
        &mut app,
        Event::ConfigLoaded(Ok(Box::new(fixtures::config(&changed)))),
    );
    assert!(app.nginx.preview.as_ref().unwrap().contains("4090"));
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("changed on disk")
    );
    // A broken file: nothing is editable, the preview says why.
    update(
        &mut app,
        Event::ConfigLoaded(Err("line 3: not valid TOML".into())),
    );
    assert!(app.config.is_err());
    assert!(app.nginx.preview.is_err());
    app.tab = Tab::Properties;
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.properties.edit, None);
}

#[test]
fn a_new_config_stamp_asks_for_a_reload() {
    let mut app = fixtures::app();
    let mut sample = crate::tui::tests::stopped_sample();
    sample.config_stamp = Some((99, 1));
    let effects = update(&mut app, Event::Sample(Box::new(sample.clone())));
    assert!(matches!(effects.as_slice(), [Effect::LoadConfig]));
    assert!(update(&mut app, Event::Sample(Box::new(sample))).is_empty());
}

pub(crate) fn stopped_sample() -> super::event::Sample {
    super::event::Sample {
        at: 100.0,
        pool: super::event::PoolObservation::NotRunning,
        procs: Default::default(),
        nginx: NginxObservation::NotRunning,
        config_stamp: None,
        backend: "embedded pool 0.1.0".into(),
        nginx_errors: Default::default(),
        access: None,
    }
}

#[test]
fn unset_asks_and_only_when_something_is_set() {
    let mut app = fixtures::app();
    app.tab = Tab::Properties;
    app.properties.selected = Some("omero.web.page_size");
    assert!(press(&mut app, KeyCode::Char('u')).is_empty());
    assert_eq!(app.popup, None);
    app.properties.selected = Some("omero.web.wsgi_workers");
    press(&mut app, KeyCode::Char('u'));
    assert!(matches!(app.popup, Some(Popup::Confirm { .. })));
    let effects = press(&mut app, KeyCode::Char('y'));
    match effects.as_slice() {
        [Effect::SaveConfig { key, value, .. }] => {
            assert_eq!(key, "omero.web.wsgi_workers");
            assert_eq!(*value, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_filter_narrows_as_you_type_and_esc_restores_it() {
    let mut app = fixtures::app();
    app.tab = Tab::Properties;
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "smtp");
    let keys: Vec<&str> = app.properties.visible().iter().map(|p| p.key).collect();
    assert!(keys.contains(&"omero.mail.host"), "{keys:?}");
    assert!(!keys.contains(&"omero.web.wsgi_workers"), "{keys:?}");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.properties.filter, "smtp");
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "xyz");
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.properties.filter, "smtp");
}

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
fn idle_events_do_not_redraw() {
    let mut app = fixtures::bare_app();
    update(&mut app, Event::Sample(Box::new(stopped_sample())));
    update(&mut app, Event::Diagnostics(vec![]));
    app.dirty = false;
    let mut later = stopped_sample();
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

#[test]
fn status_lines_carry_their_age_and_expire() {
    let mut app = fixtures::bare_app();
    let at = |app: &mut App, secs: f64| {
        let mut s = stopped_sample();
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
    app.message = Some(super::app::Message {
        severity: super::app::Severity::Error,
        text: "boom".into(),
        at: 131.0,
    });
    at(&mut app, 10_000.0);
    assert!(app.message.is_some());
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
    let counted = super::event::NginxErrors::count(&lines);
    assert_eq!(
        (
            counted.server_errors,
            counted.bad_gateway,
            counted.gateway_timeout
        ),
        (3, 1, 1)
    );
    let mut app = fixtures::bare_app();
    let at = |app: &mut App, secs: f64, errors: super::event::NginxErrors| {
        let mut s = stopped_sample();
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
            .all(|h| h.len() <= super::dashboard::WORKER_HISTORY)
    );
    // The pool stopped: no worker, no history.
    update(&mut app, Event::Sample(Box::new(stopped_sample())));
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
fn an_omeroweb_site_lists_no_property_only_the_embedded_gateway_reads() {
    let embedded = fixtures::bare_app();
    let keys: Vec<&str> = embedded
        .properties
        .visible()
        .iter()
        .map(|p| p.key)
        .collect();
    assert!(keys.contains(&"omero.web.repository"));
    assert!(keys.contains(&"omero.web.render.max_image_pixels"));
    let (omeroweb, _) = fixtures::omeroweb_app();
    let visible = omeroweb.properties.visible();
    assert!(!visible.is_empty());
    for hidden in [
        "omero.web.repository",
        "omero.web.render.max_output_pixels",
        "omero.web.render.max_image_pixels",
        "omero.policy.binary_access",
        "omero.web.nginx.published_thumbnails",
    ] {
        assert!(
            !visible.iter().any(|p| p.key == hidden),
            "{hidden} is listed"
        );
    }
    // What OMERO.web reads is still there.
    assert!(visible.iter().any(|p| p.key == "omero.web.server_list"));
    assert!(visible.iter().any(|p| p.key == "omero.web.chunk_size"));
}

#[test]
fn a_remembered_port_is_not_passed_to_a_start_as_if_chosen() {
    // var/nginx/port belongs to the site's owner; the start applies its own rules to
    // it (root does not bind a privileged port from it), so the panel must not pass
    // it as a port someone typed.
    let (mut app, _) = App::new(
        fixtures::site(),
        Ok(fixtures::config(fixtures::CONFIG)),
        super::theme::Theme::COLOR,
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
    let hints = super::keymap::hints(&app.contexts());
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

fn member_row(name: &str) -> crate::fleet::status::MemberRow {
    crate::fleet::status::MemberRow {
        name: name.into(),
        transport: "ssh",
        serves: "embedded pool".into(),
        state: "running".into(),
        workers_ready: 1,
        workers_target: 1,
        in_flight: 0,
        requests: 0,
        requests_per_sec: None,
        errors_5xx_per_min: None,
        drift: Vec::new(),
        version_skew: false,
        drained: false,
        note: None,
        status: None,
    }
}

fn member_reading(generation: u64, answer: super::member_view::MemberAnswer) -> Event {
    Event::Member(Box::new(super::member_view::MemberReading {
        generation,
        at: 1.0,
        clock: "12:00:00".into(),
        answer,
    }))
}

#[test]
fn enter_in_the_fleet_tab_opens_the_members_dashboard_and_esc_stops_reading_it() {
    use super::event::PoolObservation;
    use super::member_view::MemberAnswer;
    let mut app = fixtures::app();
    let mut fleet = super::fleet_tab::FleetTab::new("fleet.toml".into());
    fleet.observe(Ok(vec![member_row("alpha"), member_row("beta")]));
    app.fleet = Some(fleet);
    app.tab = Tab::Fleet;
    press(&mut app, KeyCode::Down);
    let effects = press(&mut app, KeyCode::Enter);
    assert!(
        matches!(&effects[..], [Effect::MemberOpen { name, generation: 1 }] if name == "beta"),
        "{effects:?}"
    );
    assert_eq!(app.popup, Some(Popup::Member));
    assert_eq!(app.member.as_ref().unwrap().name, "beta");
    let local = app.dashboard.clone();
    // Its reading goes into the member's model, not the local Dashboard.
    update(
        &mut app,
        member_reading(
            1,
            MemberAnswer::Status(Ok((
                PoolObservation::NotRunning,
                "embedded".into(),
                Default::default(),
            ))),
        ),
    );
    let view = app.member.as_ref().unwrap();
    assert_eq!(view.dashboard.pool, Some(PoolObservation::NotRunning));
    assert_eq!(view.as_of.as_deref(), Some("12:00:00"));
    assert_eq!(app.dashboard, local);
    // Actions of the local Dashboard are not sent from the member's view.
    assert!(jobs(&press(&mut app, KeyCode::Char('s'))).is_empty());
    assert!(jobs(&press(&mut app, KeyCode::Char('x'))).is_empty());
    let effects = press(&mut app, KeyCode::Esc);
    assert!(matches!(&effects[..], [Effect::MemberClose]), "{effects:?}");
    assert_eq!(app.popup, None);
    assert!(app.member.is_none());
    assert_eq!(app.tab, Tab::Fleet);
    // A late reading of the closed view stops its reader again and changes nothing.
    let effects = update(
        &mut app,
        member_reading(1, MemberAnswer::Status(Err("gone".into()))),
    );
    assert!(matches!(&effects[..], [Effect::MemberClose]), "{effects:?}");
    assert!(app.member.is_none());
}
