//! The Properties tab and the config's life cycle: editing, validation, saving and
//! what a save needs, the file changing on disk, unset, the filter.

use super::*;

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
    let mut sample = fixtures::stopped_sample(100.0);
    sample.config_stamp = Some((99, 1));
    let effects = update(&mut app, Event::Sample(Box::new(sample.clone())));
    assert!(matches!(effects.as_slice(), [Effect::LoadConfig]));
    assert!(update(&mut app, Event::Sample(Box::new(sample))).is_empty());
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
