//! The Fleet tab: a member's Dashboard opened with Enter and closed with Esc.

use super::*;

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

fn member_reading(generation: u64, answer: crate::tui::member_view::MemberAnswer) -> Event {
    Event::Member(Box::new(crate::tui::member_view::MemberReading {
        generation,
        at: 1.0,
        clock: "12:00:00".into(),
        answer,
    }))
}

#[test]
fn enter_in_the_fleet_tab_opens_the_members_dashboard_and_esc_stops_reading_it() {
    use crate::tui::event::PoolObservation;
    use crate::tui::member_view::MemberAnswer;
    let mut app = fixtures::app();
    let mut fleet = crate::tui::fleet_tab::FleetTab::new("fleet.toml".into());
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
