//! Benchmark: a real OMERO.web under Gunicorn, managed by omero-webctl, beside the
//! embedded pool, in the same run: time from `start` to the first 200 through the
//! private nginx, RSS per worker after serving, and `ab -n 2000 -c 20` on each site's
//! webclient page through nginx (OMERO.web's login page; the embedded gallery).
//!
//! Run: `cargo bench --bench omeroweb` (needs ab, nginx and the venv that
//! `scripts/omeroweb-venv` builds, found as the tests find it).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{BenchSite, ab, free_port, have, rss_kib};

const WORKERS: u32 = 2;
const RUNS: usize = 3;

fn venv() -> Option<PathBuf> {
    let venv = std::env::var_os("OMERO_WEBCTL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/omero-webctl/omeroweb-venv")
        });
    if venv.join("bin/gunicorn").is_file() {
        return Some(venv);
    }
    eprintln!(
        "skipped: no OMERO.web venv at {} (scripts/omeroweb-venv)",
        venv.display()
    );
    None
}

fn get_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 16];
    let n = s.read(&mut head).ok()?;
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Figures {
    boot_s: f64,
    rss_mib: f64,
    rps: f64,
}

/// Starts the site and nginx, times the first 200, loads it, reads RSS, stops it.
fn measure(site: &BenchSite, path: &str) -> Figures {
    let http = free_port();
    let started = Instant::now();
    site.ctl(&["start"]);
    site.ctl(&["nginx", "start", "--http", &http.to_string()]);
    while get_status(http, path) != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no 200 from {path}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let boot_s = started.elapsed().as_secs_f64();
    let rps = ab(http, path, 2000, 20);
    let rss: Vec<u64> = site.status_json()["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| rss_kib(w["pid"].as_u64()? as u32))
        .collect();
    site.ctl(&["nginx", "stop"]);
    site.ctl(&["stop"]);
    Figures {
        boot_s,
        rss_mib: rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64 / 1024.0,
        rps,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !have(&["ab", "nginx"]) {
        return;
    }
    let Some(venv) = venv() else {
        return;
    };
    let embedded = BenchSite::new(&format!("\"omero.web.wsgi_workers\" = {WORKERS}\n"));
    embedded.ctl(&["demo", "--images", "12"]);
    let omeroweb = BenchSite::new("");
    std::fs::remove_file(omeroweb.path().join("etc/omero-web.toml")).unwrap();
    for (key, value) in [
        ("omero.web.python", venv.to_string_lossy().into_owned()),
        (
            "omero.web.application_server.port",
            omeroweb.port.to_string(),
        ),
        ("omero.web.wsgi_workers", WORKERS.to_string()),
    ] {
        omeroweb.ctl(&["--backend", "omeroweb", "config", "set", key, &value]);
    }
    let mut rows: Vec<(&str, Vec<Figures>)> = vec![
        ("embedded pool, /webclient/ (gallery)", vec![]),
        ("OMERO.web under Gunicorn, /webclient/login/", vec![]),
    ];
    for _ in 0..RUNS {
        rows[0].1.push(measure(&embedded, "/webclient/"));
        rows[1].1.push(measure(&omeroweb, "/webclient/login/"));
    }
    let base = median(rows[0].1.iter().map(|f| f.rps).collect());
    println!(
        "| site ({WORKERS} sync workers, through the private nginx, medians of {RUNS}) | start to first 200 | RSS per worker after serving | req/s (ab -n 2000 -c 20) | ratio |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, figures) in rows {
        let rps = median(figures.iter().map(|f| f.rps).collect());
        println!(
            "| {name} | {:.2} s | {:.1} MiB | {rps:.0} | {:.3} |",
            median(figures.iter().map(|f| f.boot_s).collect()),
            median(figures.iter().map(|f| f.rss_mib).collect()),
            rps / base
        );
    }
}
