//! A real OMERO.web (omero-web under Gunicorn, from the venv `scripts/omeroweb-venv`
//! builds) managed by the real binary, through the real nginx: the same commands as
//! the embedded pool, checked against what /proc, the pid file and HTTP say.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{
    TestSite, django_pid, free_port, http_get, nginx_available, omeroweb_venv, stderr, stdout,
    wait_until,
};

mod damage;
mod environment;
mod lifecycle;
mod panel;
mod worker_class;

const LONG: Duration = Duration::from_secs(60);

/// `status --json`, failing loudly (with what the CLI said) if it printed no JSON.
fn status_of(site: &TestSite) -> serde_json::Value {
    let out = site.run(&["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json printed no JSON ({e}; exit {}):\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        )
    })
}

fn worker_pids(site: &TestSite) -> Vec<u32> {
    let status = status_of(site);
    let mut pids: Vec<u32> = status["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .map(|w| w["pid"].as_u64().unwrap() as u32)
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// Children of `pid` as /proc shows them: the workers Gunicorn really runs.
fn children(pid: u32) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                let rest = &stat[stat.rfind(')').unwrap() + 2..];
                rest.split_whitespace().nth(1) == Some(&pid.to_string())
            })
        })
        .collect();
    out.sort_unstable();
    out
}

fn requests(site: &TestSite) -> u64 {
    site.status_json()["totals"]["requests"]
        .as_u64()
        .unwrap_or(0)
}

/// Runs `ab` against `url` on a thread; returns its output when joined.
fn ab(url: String, requests: u32) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let out = Command::new("ab")
            .args(["-q", "-n", &requests.to_string(), "-c", "8", &url])
            .output()
            .expect("ab (apache2-utils) is installed");
        stdout(&out)
    })
}

/// Login answers OMERO.web gives without an OMERO.server: the login page again, saying
/// so (never a server error).
fn assert_login_reaches_the_server_connection(port: u16, who: &str) {
    let (code, body) = support::omeroweb_login(port, "root", "omero");
    assert!(code < 500, "{who}: the login POST answered {code}:\n{body}");
    assert!(
        body.contains("not responding"),
        "{who}: OMERO's 'server is not responding' answer expected ({code}):\n{body}"
    );
}
