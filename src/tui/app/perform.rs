//! Actions in, effects out: `perform` routes every [`Action`] (from the keymap, or
//! from tests directly) to what it does. Actions of one tab live in that tab's
//! `*_actions.rs`; the global ones (quit, overlays, tabs, moving, answering a
//! question) are here.

use super::text_input::{cancel_input, submit_input};
use super::update::run_jobs;
use super::{
    App, Confirmed, Popup, Tab, dashboard_actions, fleet_actions, log_actions, nginx_actions,
    properties_actions,
};
use crate::tui::event::{Effect, Job};
use crate::tui::keymap::Action;
use crate::tui::nginx_tab::NginxField;
use crate::tui::views;

/// Carries out an action (from a key, or directly in tests).
pub fn perform(app: &mut App, action: Action) -> Vec<Effect> {
    match action {
        Action::Quit => {
            if let Some(job) = app.job {
                app.confirm(
                    format!("Still {} Quit anyway?", job.progress()),
                    vec!["The job goes on without the panel; its result is not shown.".into()],
                    Confirmed::Quit,
                );
            } else {
                app.quit = true;
            }
            Vec::new()
        }
        Action::Help => {
            app.popup = Some(Popup::Help { scroll: 0 });
            Vec::new()
        }
        Action::Messages => {
            app.popup = Some(Popup::Messages { scroll: 0 });
            Vec::new()
        }
        Action::Upgrades => {
            app.popup = Some(Popup::Upgrades { scroll: 0 });
            Vec::new()
        }
        Action::Rollback => {
            let changes = &app.dashboard.changes;
            if changes.running {
                app.warn("A change is running; roll back once it is over.");
                return Vec::new();
            }
            let Some(target) = changes.rollback_target.clone() else {
                app.warn("Nothing to roll back to: no earlier generation was kept.");
                return Vec::new();
            };
            app.confirm(
                "Roll back to the previous generation?",
                vec![
                    format!("Returns to {target}."),
                    "A new generation starts beside the live one and takes over through the private nginx; the site stays up.".into(),
                ],
                Confirmed::Jobs(vec![Job::Rollback]),
            );
            Vec::new()
        }
        Action::NextTab => switch_tab(app, app.step_tab(1)),
        Action::PrevTab => switch_tab(app, app.step_tab(-1)),
        Action::GoTab(tab) if app.tabs().contains(&tab) => switch_tab(app, tab),
        Action::GoTab(_) => Vec::new(),
        Action::Drain | Action::Undrain => fleet_actions::ask_drain(app, action == Action::Drain),
        Action::FleetRefresh => vec![Effect::FleetRefresh],
        Action::MemberDashboard => fleet_actions::open_member(app),
        Action::FleetRoll => fleet_actions::roll(app),
        Action::Up => navigate(app, -1),
        Action::Down => navigate(app, 1),
        Action::PageUp => navigate(app, -(views::page_rows(app.screen) as isize)),
        Action::PageDown => navigate(app, views::page_rows(app.screen) as isize),
        Action::Top => navigate(app, isize::MIN),
        Action::Bottom => navigate(app, isize::MAX),
        Action::Start => dashboard_actions::start(app),
        Action::Stop => dashboard_actions::stop(app),
        Action::Restart => dashboard_actions::restart(app),
        Action::Reload => dashboard_actions::reload(app),
        Action::ScaleUp => dashboard_actions::scale_up(app),
        Action::ScaleDown => dashboard_actions::scale_down(app),
        Action::WorkerDetail => dashboard_actions::worker_detail(app),
        Action::KillWorker => dashboard_actions::kill_worker(app),
        Action::NextSort => dashboard_actions::next_sort(app),
        Action::ReverseSort => dashboard_actions::reverse_sort(app),
        Action::ToggleNginx => dashboard_actions::toggle_nginx(app),
        Action::Edit => properties_actions::edit(app),
        Action::Unset => properties_actions::unset(app),
        Action::Filter => properties_actions::filter(app),
        Action::NextKind => nginx_actions::next_kind(app),
        Action::EditHttpPort => nginx_actions::edit_field(app, NginxField::HttpPort),
        Action::EditServerName => nginx_actions::edit_field(app, NginxField::ServerName),
        Action::EditMaxBodySize => nginx_actions::edit_field(app, NginxField::MaxBodySize),
        Action::EditOutputPath => nginx_actions::edit_field(app, NginxField::OutputPath),
        Action::CheckNginx => nginx_actions::check(app),
        Action::ToggleDiff => nginx_actions::toggle_diff(app),
        Action::WriteNginx => nginx_actions::write(app),
        Action::ReloadNginx => nginx_actions::reload(app),
        Action::NextSource => log_actions::next_source(app),
        Action::ToggleFollow => log_actions::toggle_follow(app),
        Action::ToggleWrap => log_actions::toggle_wrap(app),
        Action::NextLevel => log_actions::next_level(app),
        Action::Search => log_actions::search(app),
        Action::NextMatch | Action::PrevMatch => {
            log_actions::jump_to_match(app, action == Action::NextMatch)
        }
        Action::NextError | Action::PrevError => {
            log_actions::jump_to_error(app, action == Action::NextError)
        }
        Action::Submit => submit_input(app),
        Action::Cancel => {
            cancel_input(app);
            Vec::new()
        }
        Action::Complete => properties_actions::complete(app),
        Action::Yes => match app.popup.take() {
            Some(Popup::Confirm { on_yes, .. }) => confirmed(app, on_yes),
            other => {
                app.popup = other;
                Vec::new()
            }
        },
        Action::No | Action::Close => {
            if app.popup.take() == Some(Popup::Member) {
                app.member = None;
                return vec![Effect::MemberClose];
            }
            Vec::new()
        }
    }
}

fn confirmed(app: &mut App, what: Confirmed) -> Vec<Effect> {
    match what {
        Confirmed::Jobs(jobs) => run_jobs(app, jobs),
        Confirmed::Quit => {
            app.quit = true;
            Vec::new()
        }
        Confirmed::Unset(key) => match &app.config {
            Ok(config) => vec![Effect::SaveConfig {
                base: Box::new(config.clone()),
                key: key.to_string(),
                value: None,
            }],
            Err(_) => Vec::new(),
        },
        Confirmed::Fleet { name, drain } => {
            let doing = if drain { "draining" } else { "undraining" };
            if let Some(fleet) = &mut app.fleet {
                fleet.busy = Some(format!("{doing} {name}…"));
            }
            app.info(format!("{doing} {name}…"));
            vec![Effect::FleetDrain { name, drain }]
        }
        Confirmed::FleetRoll => {
            if let Some(fleet) = &mut app.fleet {
                fleet.busy = Some("rolling reload…".into());
            }
            app.info("rolling reload…");
            vec![Effect::FleetRoll]
        }
        Confirmed::WriteNginx => match app.nginx.file_text() {
            Some(text) => {
                app.nginx.writing = true;
                let private = app.nginx.output_path
                    == crate::nginx::instance::config_path(&app.site)
                    && app.nginx.kind == crate::nginx::NginxKind::NginxDevelopment;
                vec![Effect::WriteNginx {
                    path: app.nginx.output_path.clone(),
                    text,
                    private_port: private.then(|| app.nginx.http_port()),
                }]
            }
            None => Vec::new(),
        },
    }
}

fn switch_tab(app: &mut App, tab: Tab) -> Vec<Effect> {
    app.tab = tab;
    if tab == Tab::Log {
        app.log.unseen_errors = 0;
    }
    match tab {
        Tab::Nginx => {
            let mut effects = vec![Effect::ReadNginxTarget(app.nginx.output_path.clone())];
            effects.extend(app.maybe_check_nginx());
            effects
        }
        _ => Vec::new(),
    }
}

/// Up/down/page/top/bottom in the current tab or the help overlay. `isize::MIN` and
/// `isize::MAX` mean top and bottom.
fn navigate(app: &mut App, delta: isize) -> Vec<Effect> {
    let max = match &app.popup {
        Some(Popup::Help { .. }) => Some(views::help_max_scroll(app.screen, app.tab)),
        Some(Popup::Messages { .. }) => Some(views::messages::max_scroll(app, app.screen)),
        Some(Popup::Upgrades { .. }) => Some(views::upgrades::max_scroll(app, app.screen)),
        _ => None,
    };
    if let (
        Some(max),
        Some(Popup::Help { scroll } | Popup::Messages { scroll } | Popup::Upgrades { scroll }),
    ) = (max, &mut app.popup)
    {
        let max = max as isize;
        *scroll = match delta {
            isize::MIN => 0,
            d => (*scroll as isize + d.clamp(-max - 1, max + 1)).clamp(0, max) as usize,
        };
        return Vec::new();
    }
    // A member's Dashboard: its workers, not the Fleet tab beneath.
    if let (Some(Popup::Member), Some(view)) = (&app.popup, &mut app.member) {
        view.dashboard.move_selection(delta);
        return Vec::new();
    }
    match app.tab {
        Tab::Dashboard => app.dashboard.move_selection(delta),
        Tab::Properties => app.properties.move_selection(delta),
        Tab::Nginx => {
            let max = app
                .nginx
                .line_count()
                .saturating_sub(views::nginx_rows(app.screen));
            app.nginx.scroll = match delta {
                isize::MIN => 0,
                isize::MAX => max,
                d => (app.nginx.scroll as isize + d).clamp(0, max as isize) as usize,
            };
        }
        Tab::Fleet => {
            if let Some(fleet) = &mut app.fleet {
                fleet.move_selection(delta.clamp(-1000, 1000));
            }
        }
        Tab::Log => {
            let height = views::log_rows(app.screen);
            match delta {
                isize::MIN => app.log.to_top(height),
                isize::MAX => app.log.to_bottom(),
                d => app.log.scroll(d, height),
            }
        }
    }
    Vec::new()
}
