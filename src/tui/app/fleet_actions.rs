//! What the Fleet tab's actions do: drain or undrain a member and roll a reload
//! (after asking), open a member's Dashboard.

use super::{App, Confirmed, Popup};
use crate::tui::event::Effect;

/// Asks before a rolling reload of every member.
pub(super) fn roll(app: &mut App) -> Vec<Effect> {
    if let Some(busy) = app.fleet.as_ref().and_then(|f| f.busy.clone()) {
        app.warn(format!("{busy} still runs"));
    } else if app.fleet.is_some() {
        app.confirm(
            "Reload every member, one at a time?",
            vec![
                "Each is drained from the front, reloaded, checked and put back;".into(),
                "the first failure stops the roll.".into(),
            ],
            Confirmed::FleetRoll,
        );
    }
    Vec::new()
}

/// Asks before draining (or undraining) the selected member; one at a time.
pub(super) fn ask_drain(app: &mut App, drain: bool) -> Vec<Effect> {
    let Some(fleet) = &app.fleet else {
        return Vec::new();
    };
    if let Some(busy) = &fleet.busy {
        let busy = format!("{busy} still runs");
        app.warn(busy);
        return Vec::new();
    }
    let Some(member) = fleet.selected_member() else {
        return Vec::new();
    };
    let name = member.name.clone();
    match (drain, member.drained) {
        (true, true) => app.warn(format!("{name} is drained already")),
        (false, false) => app.warn(format!("{name} is in the front already")),
        (true, false) => app.confirm(
            format!("Drain {name}?"),
            vec![
                "The front stops sending it requests (graceful nginx reload);".into(),
                "its requests in flight finish first.".into(),
            ],
            Confirmed::Fleet { name, drain },
        ),
        (false, true) => app.confirm(
            format!("Put {name} back into the front?"),
            Vec::new(),
            Confirmed::Fleet { name, drain },
        ),
    }
    Vec::new()
}

/// Enter in the Fleet tab: the selected member's Dashboard, read on threads of its own.
pub(super) fn open_member(app: &mut App) -> Vec<Effect> {
    let Some(member) = app.fleet.as_ref().and_then(|f| f.selected_member()) else {
        app.info("No member to open yet.");
        return Vec::new();
    };
    let (name, transport) = (member.name.clone(), member.transport);
    app.member_openings += 1;
    let generation = app.member_openings;
    app.member = Some(crate::tui::member_view::MemberView::new(
        name.clone(),
        transport,
        generation,
    ));
    app.popup = Some(Popup::Member);
    vec![Effect::MemberOpen { name, generation }]
}
