//! Snapshots of every screen at 80×24 (the SSH minimum) and 160×48, drawn with
//! ratatui's TestBackend from the fixed data in `fixtures`. Review changes with
//! `cargo insta review`.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use super::app::{App, Popup, Tab, perform, update};
use super::event::{Event, PoolObservation};
use super::fixtures;
use super::keymap::Action;
use super::theme::Theme;
use super::views;

fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| views::view(app, frame)).unwrap();
    terminal
}

fn at(mut app: App, tab: Tab, width: u16, height: u16) -> App {
    app.tab = tab;
    app.screen = (width, height);
    app
}

macro_rules! snapshot {
    ($name:literal, $app:expr, $w:expr, $h:expr) => {{
        let app = $app;
        insta::assert_snapshot!($name, draw(&app, $w, $h).backend());
    }};
}

#[test]
fn dashboard() {
    snapshot!(
        "dashboard_80x24",
        at(fixtures::app(), Tab::Dashboard, 80, 24),
        80,
        24
    );
    snapshot!(
        "dashboard_160x48",
        at(fixtures::app(), Tab::Dashboard, 160, 48),
        160,
        48
    );
}

#[test]
fn the_smallest_dashboard_still_shows_three_workers() {
    let app = at(fixtures::app(), Tab::Dashboard, 60, 16);
    let pids: Vec<u32> = app
        .dashboard
        .status()
        .unwrap()
        .workers
        .iter()
        .map(|w| w.pid)
        .collect();
    let screen = format!("{:?}", draw(&app, 60, 16).backend());
    let shown = pids
        .iter()
        .filter(|p| screen.contains(&p.to_string()))
        .count();
    assert!(shown >= 3, "{shown} of {pids:?} shown:\n{screen}");
    snapshot!("dashboard_60x16", app, 60, 16);
}

#[test]
fn worker_drill_down() {
    // A worker serving a slow render, and a Gunicorn worker (what it serves is unknown).
    let mut app = at(fixtures::app(), Tab::Dashboard, 100, 30);
    app.popup = Some(Popup::Worker { pid: 31004 });
    snapshot!("worker_drill_down_100x30", app, 100, 30);
    let mut app = at(fixtures::app(), Tab::Dashboard, 80, 24);
    if let Some(PoolObservation::Running(status)) = &mut app.dashboard.pool {
        status.workers[0].activity.serving = None;
    }
    app.popup = Some(Popup::Worker { pid: 31002 });
    snapshot!("worker_drill_down_unknown_80x24", app, 80, 24);
}

#[test]
fn dashboard_without_a_pool() {
    let mut app = fixtures::bare_app();
    snapshot!(
        "dashboard_checking_80x24",
        at(fixtures::bare_app(), Tab::Dashboard, 80, 24),
        80,
        24
    );
    app.dashboard.pool = Some(PoolObservation::NotRunning);
    app.dashboard.nginx = Some(super::event::NginxObservation::NotRunning);
    snapshot!(
        "dashboard_stopped_80x24",
        at(app, Tab::Dashboard, 80, 24),
        80,
        24
    );
    // The pool died under a running private nginx: users get 502, said first.
    let mut app = fixtures::bare_app();
    app.dashboard.pool = Some(PoolObservation::Stale {
        pid: Some(31000),
        orphans: vec![],
    });
    app.dashboard.nginx = Some(super::event::NginxObservation::Running {
        pid: 30500,
        port: Some(8080),
    });
    app.dashboard.warnings = vec![
        "stale pid file /srv/omero-web/var/omeroweb.pid (its master is gone; start takes it over)"
            .into(),
    ];
    app.dashboard.diagnosed = true;
    let screen = draw(&at(app, Tab::Dashboard, 80, 24), 80, 24);
    let text = format!("{:?}", screen.backend());
    let first_warning =
        text.find("! the private nginx (port 8080) is up but the pool is not: users get 502");
    let stale = text.find("! stale pid file");
    assert!(
        first_warning.is_some() && first_warning < stale,
        "the 502 problem comes first:\n{}",
        screen.backend()
    );
    let mut app = fixtures::bare_app();
    app.dashboard.pool = Some(PoolObservation::Error(
        "cannot use the control socket /srv/omero-web/var/omeroweb.sock: Permission denied (os error 13)".into(),
    ));
    snapshot!(
        "dashboard_unreachable_80x24",
        at(app, Tab::Dashboard, 80, 24),
        80,
        24
    );
}

#[test]
fn dashboard_job_and_confirmation() {
    let mut app = at(fixtures::app(), Tab::Dashboard, 80, 24);
    perform(&mut app, Action::Stop);
    snapshot!("dashboard_confirm_stop_80x24", app, 80, 24);
    let mut app = at(fixtures::app(), Tab::Dashboard, 80, 24);
    perform(&mut app, Action::Reload);
    snapshot!("dashboard_reloading_80x24", app, 80, 24);
}

#[test]
fn properties() {
    let mut app = at(fixtures::app(), Tab::Properties, 80, 24);
    app.properties.selected = Some("omero.web.application_server.port");
    snapshot!("properties_80x24", app, 80, 24);
    let mut app = at(fixtures::app(), Tab::Properties, 160, 48);
    app.properties.selected = Some("omero.web.wsgi_workers");
    snapshot!("properties_160x48", app, 160, 48);
}

#[test]
fn properties_editing_and_filtering() {
    let mut app = at(fixtures::app(), Tab::Properties, 80, 24);
    app.properties.selected = Some("omero.web.application_server.port");
    perform(&mut app, Action::Edit);
    app.properties.edit.as_mut().unwrap().input.set("99999");
    app.properties.revalidate();
    snapshot!("properties_edit_invalid_80x24", app, 80, 24);

    let mut app = at(fixtures::app(), Tab::Properties, 80, 24);
    perform(&mut app, Action::Filter);
    for c in "nginx".chars() {
        update(&mut app, key(c));
    }
    snapshot!("properties_filter_80x24", app, 80, 24);
}

#[test]
fn nginx() {
    snapshot!(
        "nginx_80x24",
        at(fixtures::app(), Tab::Nginx, 80, 24),
        80,
        24
    );
    snapshot!(
        "nginx_160x48",
        at(fixtures::app(), Tab::Nginx, 160, 48),
        160,
        48
    );
    let mut app = at(fixtures::app(), Tab::Nginx, 80, 24);
    perform(&mut app, Action::ToggleDiff);
    snapshot!("nginx_diff_80x24", app, 80, 24);
    let mut app = at(fixtures::app(), Tab::Nginx, 80, 24);
    perform(&mut app, Action::EditHttpPort);
    app.nginx.edit.as_mut().unwrap().input.set("4080x");
    app.nginx.revalidate();
    snapshot!("nginx_edit_port_80x24", app, 80, 24);
}

#[test]
fn log() {
    snapshot!("log_80x24", at(fixtures::app(), Tab::Log, 80, 24), 80, 24);
    let mut app = at(fixtures::app(), Tab::Log, 160, 48);
    app.log.search = "worker".into();
    snapshot!("log_search_160x48", app, 160, 48);
    let mut app = at(fixtures::app(), Tab::Log, 80, 24);
    perform(&mut app, Action::NextLevel);
    perform(&mut app, Action::NextLevel);
    perform(&mut app, Action::ToggleWrap);
    snapshot!("log_warnings_unwrapped_80x24", app, 80, 24);
}

#[test]
fn help_and_messages() {
    let mut app = at(fixtures::app(), Tab::Dashboard, 80, 24);
    app.popup = Some(Popup::Help { scroll: 0 });
    snapshot!("help_80x24", app, 80, 24);
    let mut app = at(fixtures::app(), Tab::Log, 160, 48);
    app.popup = Some(Popup::Help { scroll: 0 });
    snapshot!("help_160x48", app, 160, 48);
    let mut app = at(fixtures::app(), Tab::Dashboard, 80, 24);
    update(
        &mut app,
        Event::JobFinished {
            job: super::event::Job::Start { nginx_port: None },
            result: Err(super::event::JobFailure {
                message: "OMERO.web did not start: port 4080 is in use".into(),
                details: vec![
                    "2024-05-01 09:00:00,123 ERROR [omeroweb.pool.master] cannot bind 127.0.0.1:4080: Address in use".into(),
                ],
            }),
        },
    );
    snapshot!("start_failed_80x24", app, 80, 24);
}

#[test]
fn too_small() {
    snapshot!("too_small_50x12", fixtures::app(), 50, 12);
}

fn key(c: char) -> Event {
    Event::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char(c),
        crossterm::event::KeyModifiers::NONE,
    ))
}

/// Every screen variant the tests know, for the checks below.
fn all_screens(theme: Theme) -> Vec<App> {
    let mut out = Vec::new();
    for tab in Tab::ALL {
        let mut app = fixtures::app();
        app.theme = theme;
        app.tab = tab;
        out.push(app);
    }
    let mut app = fixtures::app();
    app.theme = theme;
    app.log.search = "worker".into();
    app.tab = Tab::Log;
    out.push(app);
    let mut app = fixtures::app();
    app.theme = theme;
    perform(&mut app, Action::Stop);
    out.push(app);
    let mut app = fixtures::app();
    app.theme = theme;
    app.tab = Tab::Nginx;
    perform(&mut app, Action::ToggleDiff);
    out.push(app);
    out
}

#[test]
fn no_colour_at_all_with_no_color() {
    for app in all_screens(Theme::MONOCHROME) {
        let terminal = draw(&app, 120, 40);
        for cell in terminal.backend().buffer().content() {
            assert_eq!(cell.fg, Color::Reset, "{:?} on {:?}", cell, app.tab);
            assert_eq!(cell.bg, Color::Reset, "{:?} on {:?}", cell, app.tab);
        }
    }
}

#[test]
fn text_keeps_the_terminals_own_colours() {
    // Readable on light and dark backgrounds: no hard-coded white, grey or black text
    // and no background colour, except black on yellow for search matches.
    for app in all_screens(Theme::COLOR) {
        let terminal = draw(&app, 120, 40);
        for cell in terminal.backend().buffer().content() {
            let highlight = cell.bg == Color::Yellow && cell.fg == Color::Black;
            if highlight {
                continue;
            }
            assert_eq!(cell.bg, Color::Reset, "{cell:?}");
            assert!(
                !matches!(
                    cell.fg,
                    Color::White | Color::Gray | Color::DarkGray | Color::Black
                ),
                "{cell:?}"
            );
        }
    }
}

#[test]
fn any_size_draws_without_panicking() {
    let sizes = [
        (1, 1),
        (20, 5),
        (59, 24),
        (60, 16),
        (61, 17),
        (80, 24),
        (100, 30),
        (250, 80),
    ];
    for app in all_screens(Theme::COLOR) {
        for (w, h) in sizes {
            draw(&app, w, h);
        }
    }
    let mut app = fixtures::app();
    app.popup = Some(Popup::Help { scroll: 500 });
    for (w, h) in sizes {
        draw(&app, w, h);
    }
}

#[test]
fn an_old_status_line_says_how_old_it_is() {
    let mut app = fixtures::bare_app();
    app.message = Some(super::app::Message {
        severity: super::app::Severity::Error,
        text: "reload failed".into(),
        at: 0.0,
    });
    app.clock = 65.0;
    let screen = format!("{:?}", draw(&app, 80, 24).backend());
    assert!(
        screen.contains("error: reload failed (1m05s ago)"),
        "{screen}"
    );
    app.clock = 2.0;
    let screen = format!("{:?}", draw(&app, 80, 24).backend());
    assert!(!screen.contains("ago)"), "news carries no age");
}

#[test]
fn a_tall_dashboard_shows_the_host() {
    let mut app = fixtures::app();
    update(
        &mut app,
        Event::Host(Box::new(crate::host::HostFigures {
            load1: 0.42,
            cpus: 2,
            memory_used: 3 << 30,
            memory_total: 24 << 30,
            swap_used: 0,
            swap_total: 0,
            disks: vec![],
        })),
    );
    app.tab = Tab::Dashboard;
    let tall = format!("{:?}", draw(&app, 160, 48).backend());
    assert!(
        tall.contains("Host    load 0.42/2 · mem 3.0/24.0 GiB · swap 0.0/0.0 GiB"),
        "{tall}"
    );
    let small = format!("{:?}", draw(&app, 80, 24).backend());
    assert!(!small.contains("Host    load"), "no room at 80x24");
}

#[test]
fn the_search_count_is_over_the_lines_shown() {
    let mut app = fixtures::bare_app();
    app.tab = Tab::Log;
    app.log.push_lines(vec![
        "2026-11-30 12:00:00,000  INFO [x] (proc.1) f():1 boom quietly".into(),
        "2026-11-30 12:00:01,000 ERROR [x] (proc.1) f():2 boom loudly".into(),
    ]);
    app.log.min_level = Some(crate::logging::Level::Warning);
    app.log.search = "boom".into();
    let screen = format!("{:?}", draw(&app, 100, 24).backend());
    assert!(
        screen.contains("\"boom\" 1 match(es), 1 hidden by the level filter"),
        "{screen}"
    );
}

#[test]
fn the_properties_tab_shows_what_the_pool_runs_beside_what_is_saved() {
    let mut app = fixtures::app();
    // The pool reports it runs 3 workers; the fixtures' config says 4.
    if let Some(PoolObservation::Running(status)) = &mut app.dashboard.pool {
        let config = app.config.as_ref().unwrap();
        status.applied = config.applied_values();
        status
            .applied
            .insert("omero.web.wsgi_workers".into(), "3".into());
    }
    app.tab = Tab::Properties;
    app.properties.selected = Some("omero.web.wsgi_workers");
    let screen = format!("{:?}", draw(&app, 160, 48).backend());
    assert!(screen.contains("pending"), "{screen}");
    assert!(
        screen.contains("the pool runs 3: saved, not applied (reload applies it)"),
        "{screen}"
    );
}

#[test]
fn nginx_server_errors_are_said_in_the_problems() {
    let mut app = fixtures::app();
    let errors = super::event::NginxErrors {
        server_errors: 3,
        bad_gateway: 2,
        gateway_timeout: 0,
    };
    app.dashboard.nginx_errors.push_back((29.0, errors));
    let screen = format!(
        "{:?}",
        draw(&at(app, Tab::Dashboard, 160, 48), 160, 48).backend()
    );
    assert!(
        screen.contains(
            "nginx answered 3 server error(s) in the last minute (2 × 502: the pool did not answer)"
        ),
        "{screen}"
    );
}

#[test]
fn enter_on_a_worker_shows_it_in_detail_with_its_history() {
    let mut app = fixtures::app();
    app.tab = Tab::Dashboard;
    let pid = app.dashboard.status().unwrap().workers[0].pid;
    assert!(
        app.dashboard.history[&pid].len() >= 2,
        "the fixture's samples built a history"
    );
    app.dashboard.selected_pid = Some(pid);
    update(
        &mut app,
        Event::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Enter,
            crossterm::event::KeyModifiers::NONE,
        )),
    );
    assert_eq!(app.popup, Some(Popup::Worker { pid }));
    let screen = format!("{:?}", draw(&app, 100, 30).backend());
    assert!(screen.contains(&format!(" Worker {pid} ")), "{screen}");
    for part in [
        "Served",
        "2xx",
        "Latency",
        "p95",
        "CPU % (last minute)",
        " RSS ",
        " req/s ",
    ] {
        assert!(screen.contains(part), "{part} missing:\n{screen}");
    }
    // A worker that has gone meanwhile is said to be gone.
    app.popup = Some(Popup::Worker { pid: 1 });
    let screen = format!("{:?}", draw(&app, 100, 30).backend());
    assert!(screen.contains("This worker is gone"), "{screen}");
}

#[test]
fn dashboard_of_an_omeroweb_site_shows_its_omero_server() {
    use crate::reachability::{Reach, ServerReach};
    let (mut app, _) = fixtures::omeroweb_app();
    update(
        &mut app,
        Event::Sample(Box::new(fixtures::stopped_sample(1.0))),
    );
    update(&mut app, Event::Diagnostics(vec![]));
    let app = at(app, Tab::Dashboard, 80, 24);
    snapshot!("dashboard_omeroweb_server_checking_80x24", &app, 80, 24);
    let mut app = app;
    let probed = app.dashboard.servers.entries.clone().unwrap();
    update(
        &mut app,
        Event::ServersProbed {
            results: vec![ServerReach::new(probed[0].clone(), Reach::Refused)],
            probed,
        },
    );
    snapshot!("dashboard_omeroweb_server_refused_80x24", &app, 80, 24);
}

#[test]
fn busy_is_unknown_on_gunicorn_not_zero() {
    // Gunicorn does not say what its workers serve: BUSY is "—", never a false 0.
    let mut app = at(fixtures::app(), Tab::Dashboard, 80, 24);
    if let Some(PoolObservation::Running(status)) = &mut app.dashboard.pool {
        for w in &mut status.workers {
            w.in_flight = None;
            w.activity.serving = None;
        }
    }
    let screen = format!("{:?}", draw(&app, 80, 24).backend());
    let pids: Vec<u32> = app
        .dashboard
        .status()
        .unwrap()
        .workers
        .iter()
        .map(|w| w.pid)
        .collect();
    for pid in pids {
        let row = screen
            .lines()
            .find(|l| l.contains(&format!(" {pid} ")))
            .unwrap_or_else(|| panic!("no row for {pid}:\n{screen}"));
        let cells: Vec<&str> = row
            .trim()
            .trim_matches(['"', '│', ','])
            .split_whitespace()
            .collect();
        // PID STATE AGE REQS REQ/S BUSY
        assert_eq!(cells[5], "—", "{row}");
    }
}

#[test]
fn m_shows_every_recent_message_whole_after_it_left_the_status_line() {
    let mut app = at(fixtures::app(), Tab::Dashboard, 80, 24);
    let long = "Saved omero.web.wsgi_timeout = 120; restart to apply: --timeout 120 \
                (Gunicorn reads the worker timeout at start only; r reloads the workers \
                but keeps the old timeout)";
    update(
        &mut app,
        Event::ConfigSaveFailed {
            error: long.into(),
            reloaded: None,
        },
    );
    for n in 0..60 {
        update(
            &mut app,
            Event::JobFinished {
                job: super::event::Job::Reload,
                result: Ok(format!("reload {n} done")),
            },
        );
    }
    // The status line shows the latest only; the long one is gone from it.
    assert_eq!(app.message.as_ref().unwrap().text, "reload 59 done");
    assert_eq!(app.messages.len(), super::app::MESSAGE_HISTORY);
    assert_eq!(app.messages.front().unwrap().text, "reload 10 done");
    let mut app = at(fixtures::app(), Tab::Dashboard, 80, 24);
    update(
        &mut app,
        Event::ConfigSaveFailed {
            error: long.into(),
            reloaded: None,
        },
    );
    update(
        &mut app,
        Event::JobFinished {
            job: super::event::Job::Reload,
            result: Ok("Reloaded: 4 new workers".into()),
        },
    );
    update(
        &mut app,
        Event::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char('m'),
            crossterm::event::KeyModifiers::NONE,
        )),
    );
    assert_eq!(app.popup, Some(Popup::Messages { scroll: 0 }));
    snapshot!("messages_80x24", &app, 80, 24);
    // Every word of the long message is on screen, in order.
    let screen = format!("{:?}", draw(&app, 80, 24).backend());
    let shown: Vec<&str> = screen
        .lines()
        .map(|l| l.trim().trim_matches(['"', ',']).trim_matches('│').trim())
        .collect::<Vec<_>>();
    let text = shown.join(" ");
    let full = format!("Not saved: {long}");
    let mut from = 0;
    for word in full.split_whitespace() {
        let at = text[from..]
            .find(word)
            .unwrap_or_else(|| panic!("{word:?} missing after {from}:\n{screen}"));
        from += at + word.len();
    }
}

#[test]
fn the_warnings_count_matches_what_is_shown_or_says_how_many_more() {
    let mut app = at(fixtures::app(), Tab::Dashboard, 80, 24);
    let warnings: Vec<String> = (1..=3)
        .map(|n| {
            format!(
                "problem number {n}: a long explanation of what is wrong and what to do \
                 about it, long enough to take two rows at eighty columns"
            )
        })
        .collect();
    update(&mut app, Event::Diagnostics(warnings));
    let screen = format!("{:?}", draw(&app, 80, 24).backend());
    let marks = screen.matches("│! problem number").count();
    let title = screen
        .lines()
        .find(|l| l.contains("Diagnostics:"))
        .unwrap_or_else(|| panic!("{screen}"));
    let counted: usize = title
        .split("Diagnostics: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let more: usize = screen
        .split('+')
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(marks >= 1, "{screen}");
    assert_eq!(marks + more, counted, "{screen}");
    assert!(more > 0, "the fixture should not fit: {screen}");
    snapshot!("dashboard_more_warnings_80x24", &app, 80, 24);
}

/// The fixture with figures as wide as real ones get: 7-digit PIDs and request
/// counts, RSS over 100M, a 5-digit nginx port, a long OMERO.web backend line.
fn realistic_widths() -> App {
    let mut app = fixtures::app();
    if let Some(PoolObservation::Running(status)) = &mut app.dashboard.pool {
        for (i, w) in status.workers.iter_mut().enumerate() {
            let pid = 4_194_000 + i as u32;
            app.dashboard
                .rss
                .insert(pid, 113_664_000 + i as u64 * 1_048_576);
            app.dashboard.cpu.insert(pid, 101.5);
            app.dashboard.worker_rates.insert(pid, 1234.5);
            w.pid = pid;
            w.requests = 12_345_678 + i as u64;
        }
        status.master_pid = 4_193_999;
        status.totals.requests = 98_765_432;
    }
    app.dashboard.nginx = Some(super::event::NginxObservation::Running {
        pid: 4_193_000,
        port: Some(18081),
    });
    app.dashboard.backend = "OMERO.web 5.33.2 · Gunicorn 27.0.1 · Python 3.12.11".into();
    app.nginx.options.http_port = Some(18081);
    app
}

/// The tokens of a screen that hold a digit, without the punctuation around them.
fn figures(screen: &str) -> std::collections::BTreeSet<String> {
    screen
        .lines()
        .flat_map(|l| {
            l.split(|c: char| c.is_whitespace() || "│┌┐└┘─\"(),;·".contains(c))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
        // A narrow panel shows an address without its scheme.
        .map(|t| t.trim_start_matches("http://").to_string())
        .collect()
}

#[test]
fn at_60x16_no_tab_shows_a_cut_number() {
    // Every figure on the smallest screen must appear whole on a large one: a cut
    // "108.4M" (as "08.4M") or ":18081" (as ":1") would not.
    for tab in [Tab::Dashboard, Tab::Properties, Tab::Nginx, Tab::Log] {
        let small = format!(
            "{:?}",
            draw(&at(realistic_widths(), tab, 60, 16), 60, 16).backend()
        );
        let mut whole = figures(&format!(
            "{:?}",
            draw(&at(realistic_widths(), tab, 200, 60), 200, 60).backend()
        ));
        whole.extend(figures(&format!(
            "{:?}",
            draw(&at(realistic_widths(), tab, 100, 30), 100, 30).backend()
        )));
        let screen: String = small
            .lines()
            .take_while(|l| !l.contains("styles:"))
            .collect::<Vec<_>>()
            .join("\n");
        for figure in figures(&screen) {
            assert!(
                whole.contains(&figure),
                "{tab:?} at 60x16 shows {figure:?}, which is no whole figure:\n{screen}"
            );
        }
        // The current tab is on the tab bar.
        let bar = screen.lines().nth(3).unwrap_or_default();
        assert!(
            bar.contains(&format!(
                "{} {}",
                Tab::ALL.iter().position(|&t| t == tab).unwrap() + 1,
                tab.short_title()
            )),
            "{tab:?} is not on the tab bar: {bar}"
        );
    }
    // The worker's drill-down too.
    let mut app = at(realistic_widths(), Tab::Dashboard, 60, 16);
    let pid = app.dashboard.status().unwrap().workers[0].pid;
    app.popup = Some(Popup::Worker { pid });
    let small = format!("{:?}", draw(&app, 60, 16).backend());
    app.screen = (200, 60);
    let whole = figures(&format!("{:?}", draw(&app, 200, 60).backend()));
    let screen: String = small
        .lines()
        .take_while(|l| !l.contains("styles:"))
        .collect::<Vec<_>>()
        .join("\n");
    for figure in figures(&screen) {
        assert!(
            whole.contains(&figure),
            "drill-down shows {figure:?}:\n{screen}"
        );
    }
}

#[test]
fn at_60x16_the_server_line_yields_to_the_open_line() {
    use crate::reachability::{Reach, ServerReach};
    let (mut app, _) = fixtures::omeroweb_app();
    update(
        &mut app,
        Event::Sample(Box::new(fixtures::stopped_sample(1.0))),
    );
    update(&mut app, Event::Diagnostics(vec![]));
    let probed = app.dashboard.servers.entries.clone().unwrap();
    update(
        &mut app,
        Event::ServersProbed {
            results: vec![ServerReach::new(probed[0].clone(), Reach::Refused)],
            probed,
        },
    );
    let small = format!(
        "{:?}",
        draw(&at(app, Tab::Dashboard, 60, 16), 60, 16).backend()
    );
    assert!(small.contains("Open    not serving"), "{small}");
    // The refusal is still said, among the problems.
    assert!(small.contains("OMERO.server omero"), "{small}");
}

#[test]
fn upgrades_screen_and_both_generations_on_the_dashboard() {
    let mut app = at(fixtures::app(), Tab::Dashboard, 100, 30);
    app.dashboard.changes = fixtures::changes_midway();
    // The Dashboard names both generations while they coexist.
    let dashboard = format!("{:?}", draw(&app, 100, 30).backend());
    for expected in [
        "draining master 4100 on :4080",
        "serving master 5100 on :41234",
    ] {
        assert!(dashboard.contains(expected), "{expected}:\n{dashboard}");
    }
    app.popup = Some(Popup::Upgrades { scroll: 0 });
    snapshot!("upgrades_100x30", app, 100, 30);
}

#[test]
fn dashboard_shows_access_controls_counts() {
    use crate::gateway::auth::AccessCounts;
    // A sample brings the counts (and a change of them alone redraws).
    let mut app = fixtures::app();
    let mut sample = fixtures::stopped_sample(1.0);
    sample.access = Some(Ok(AccessCounts {
        sessions: 3,
        users: 2,
        failed_last_hour: 4,
    }));
    update(&mut app, Event::Sample(Box::new(sample.clone())));
    let before = app.dashboard.clone();
    sample.at = 2.0;
    sample.access = Some(Ok(AccessCounts {
        sessions: 4,
        users: 2,
        failed_last_hour: 4,
    }));
    let mut dashboard = before;
    assert!(dashboard.apply_sample(&sample), "new counts need a redraw");
    let app = at(app, Tab::Dashboard, 80, 24);
    let screen = format!("{:?}", draw(&app, 80, 24).backend());
    assert!(
        screen.contains("Access  3 sess · 2 users · 4 failed/h"),
        "{screen}"
    );
    snapshot!("dashboard_access_counts_80x24", &app, 80, 24);
    let app = at(app, Tab::Dashboard, 160, 48);
    let screen = format!("{:?}", draw(&app, 160, 48).backend());
    assert!(
        screen
            .contains("Access  3 sessions · 2 users logged in · 4 failed logins in the last hour"),
        "{screen}"
    );
    snapshot!("dashboard_access_counts_160x48", &app, 160, 48);
    // A session store that cannot be read says so on the same line.
    let mut app = app;
    app.dashboard.access = Some(Err(
        "session store Redis redis://10.0.0.9:6379/0: cannot connect".into(),
    ));
    let screen = format!("{:?}", draw(&app, 160, 48).backend());
    assert!(screen.contains("Access  session store Redis"), "{screen}");
}
