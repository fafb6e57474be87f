//! The panel's Fleet tab in a real terminal (tmux): two local members answering
//! through the same `Fleet::status` as `fleet status`, drain, undrain and a rolling
//! reload asked and done through the real front, and a member that stops shown within
//! seconds.

use crate::support;

use std::time::Duration;

use support::fleet::*;
use support::tmux::Tmux;
use support::{BIN, TestSite, free_port, wait_until};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn the_fleet_tab_shows_the_members_drains_undrains_and_rolls_with_a_question_and_sees_one_stop() {
    if !support::nginx_available("the fleet tab") {
        return;
    }
    let members = [TestSite::new(1), TestSite::new(1)];
    for m in &members {
        m.ok(&["start"]);
    }
    let control = TestSite::new(1);
    let entries = local_entries(&members, &["alpha", "beta"]);
    std::fs::write(
        control.root().join("etc/fleet.toml"),
        fleet_toml(free_port(), None, 10, &entries),
    )
    .unwrap();
    fleet_ok(&control, &["nginx", "start"]);
    let Some(tmux) = Tmux::start(
        &format!("{BIN} --omerodir {}", control.root().display()),
        120,
        36,
    ) else {
        return;
    };
    tmux.wait_for(LONG, "the panel", |s| s.contains("Dashboard"));
    // The Fleet tab comes after the others (Shift-Tab from the first tab reaches it).
    tmux.keys(&["BTab"]);
    let row = |s: &str, name: &str| -> String {
        s.lines()
            .find(|l| l.contains(&format!("│{name} ")) || l.contains(&format!(" {name} ")))
            .unwrap_or("")
            .to_string()
    };
    tmux.wait_for(LONG, "both members running", |s| {
        s.contains("Members (")
            && ["alpha", "beta"].iter().all(|n| {
                let r = row(s, n);
                r.contains("running") && r.contains("embedded") && r.contains("1/1")
            })
    });

    // d asks first; n leaves everything as it was.
    tmux.keys(&["d"]);
    tmux.wait_for(LONG, "the drain question", |s| s.contains("Drain alpha?"));
    tmux.keys(&["n"]);
    tmux.wait_for(LONG, "the question gone", |s| !s.contains("Drain alpha?"));
    assert!(!fleet_ok(&control, &["status"]).contains("drained"));
    tmux.keys(&["d"]);
    tmux.wait_for(LONG, "the drain question", |s| s.contains("Drain alpha?"));
    tmux.keys(&["y"]);
    tmux.wait_for(LONG, "alpha drained", |s| {
        row(s, "alpha").contains("running, drained")
    });
    let front =
        std::fs::read_to_string(control.root().join("var/nginx/nginx.conf")).unwrap_or_default();
    let alpha_upstream = format!("127.0.0.1:{}", members[0].port);
    assert!(
        front
            .lines()
            .any(|l| l.contains(&alpha_upstream) && l.contains("down")),
        "the front's upstream does not mark alpha down:\n{front}"
    );
    assert!(fleet_ok(&control, &["status"]).contains("running (drained)"));

    tmux.keys(&["u"]);
    tmux.wait_for(LONG, "the undrain question", |s| {
        s.contains("Put alpha back into the front?")
    });
    tmux.keys(&["y"]);
    tmux.wait_for(LONG, "alpha back", |s| {
        let r = row(s, "alpha");
        r.contains("running") && !r.contains("drained")
    });

    // R asks, then reloads member after member through the front, step by step.
    let generations: Vec<u64> = members
        .iter()
        .map(|m| m.status_json()["generation"].as_u64().unwrap())
        .collect();
    tmux.keys(&["R"]);
    tmux.wait_for(LONG, "the rolling reload question", |s| {
        s.contains("Reload every member, one at a time?")
    });
    tmux.keys(&["y"]);
    tmux.wait_for(Duration::from_secs(120), "the rolling reload done", |s| {
        s.contains("Rolling reload done")
    });
    for (m, before) in members.iter().zip(generations) {
        assert!(m.status_json()["generation"].as_u64().unwrap() > before);
    }
    assert!(!fleet_ok(&control, &["status"]).contains("drained"));

    // A member that stops is shown so within seconds.
    members[1].ok(&["stop"]);
    let took = tmux.wait_for(LONG, "beta not running", |s| {
        row(s, "beta").contains("not running")
    });
    eprintln!("beta shown stopped {took:?} after its stop returned");
    assert!(took < Duration::from_secs(5), "{took:?}");
    tmux.keys(&["q"]);
    assert!(wait_until(LONG, || tmux
        .screen()
        .contains("PANEL-EXITED 0")));
}

#[test]
fn enter_opens_an_ssh_members_dashboard_with_its_own_workers_and_sees_it_stop_and_vanish() {
    let test =
        "enter_opens_an_ssh_members_dashboard_with_its_own_workers_and_sees_it_stop_and_vanish";
    if !support::netns::available(test) {
        return;
    }
    let keys = support::netns::Keys::new();
    let (ns, site) = ns_member(&keys, 2);
    let control = TestSite::new(1);
    let entries = [Entry {
        name: "m1",
        ssh: format!("root@{}", ns.address),
        site: site.root(),
        upstream: format!("{}:4080", ns.address),
    }];
    // A short ssh timeout: a member off the network is told within seconds.
    std::fs::write(
        control.root().join("etc/fleet.toml"),
        fleet_toml(free_port(), Some(&keys), 2, &entries),
    )
    .unwrap();
    let status = site.status_json();
    let master = status["master_pid"].as_u64().unwrap();
    let workers: Vec<u64> = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(workers.len(), 2, "{status}");
    let Some(tmux) = Tmux::start(
        &format!("{BIN} --omerodir {}", control.root().display()),
        120,
        36,
    ) else {
        return;
    };
    tmux.wait_for(LONG, "the panel", |s| s.contains("Dashboard"));
    tmux.keys(&["BTab"]);
    tmux.wait_for(LONG, "m1 running in the Fleet tab", |s| {
        s.contains("Members (") && s.lines().any(|l| l.contains("m1") && l.contains("2/2"))
    });

    // Enter: the member's own Dashboard, its master and workers as its status says.
    tmux.keys(&["Enter"]);
    let screen_of_member = |s: &str| {
        s.contains("member m1 (read through ssh), as of ")
            && s.contains(&format!("PID {master}"))
            && workers.iter().all(|pid| s.contains(&pid.to_string()))
            && s.contains("State   RUNNING")
    };
    tmux.wait_for(
        LONG,
        "m1's Dashboard with its master and workers",
        screen_of_member,
    );
    // Each worker's CPU % and RSS, as the member read them from its own /proc (not
    // unknown, "—", once two answers gave an interval): the table's 7th and 8th cells.
    let rss = regex::Regex::new(r"^\d+(\.\d)?M$").unwrap();
    tmux.wait_for(LONG, "m1's workers with CPU % and RSS", |s| {
        workers.iter().all(|pid| {
            s.lines().any(|l| {
                let cells: Vec<&str> = l.trim_matches(['│', ' ']).split_whitespace().collect();
                cells.len() > 7
                    && cells[0] == pid.to_string()
                    && cells[6].parse::<f64>().is_ok()
                    && rss.is_match(cells[7])
            })
        })
    });
    eprintln!("{}", tmux.screen());
    // Not the control site's own pool, which runs nothing.
    assert!(
        !tmux
            .screen()
            .contains(&format!("PID {}", std::process::id()))
    );

    // The member stops: its Dashboard says so within seconds.
    site.ok(&["stop"]);
    let took = tmux.wait_for(LONG, "m1 shown stopped", |s| {
        // The pool panel's state (the tab bar's is the control site's own).
        s.contains("member m1 (read through ssh), as of ")
            && s.contains("State   STOPPED")
            && s.contains("The pool is stopped. (read-only here")
    });
    eprintln!("m1 shown stopped {took:?} after its stop returned");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // Off the network: unreachable, since when, within the ssh timeout and a little.
    ns.set_link(false);
    let took = tmux.wait_for(LONG, "m1 unreachable", |s| {
        s.contains("member m1 (read through ssh): unreachable since ")
    });
    eprintln!("m1 shown unreachable {took:?} after its link went down");
    assert!(took < Duration::from_secs(8), "{took:?}");

    // Esc: back to the Fleet tab.
    tmux.keys(&["Escape"]);
    tmux.wait_for(LONG, "the Fleet tab again", |s| {
        s.contains("Members (") && !s.contains("member m1 (read through ssh)")
    });
    tmux.keys(&["q"]);
    assert!(wait_until(LONG, || tmux
        .screen()
        .contains("PANEL-EXITED 0")));
}
