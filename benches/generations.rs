//! Benchmark (issue 21): changes that replace the workers, under `ab -r -c 8` through
//! the private nginx, against a baseline run as long as a change in the same run:
//! the embedded pool's `upgrade --binary` (a copy of this binary), `rollback` and
//! `restart`, OMERO.web's blue/green `reload`, its upgrade 5.32.0 → 5.33.2 and `app
//! add omero-iviewer` (2 workers each; the venvs prepared before the measured window).
//! The figure the issue asks for is the longest request of a change against the
//! baseline's p99.
//!
//! Run: `cargo bench --bench generations` (needs ab and nginx; the OMERO.web rows need
//! the venv `scripts/omeroweb-venv` builds, found as the tests find it).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, BenchSite, free_port, have};

const WORKERS: u32 = 2;

/// What ab said about one run.
struct Run {
    complete: u64,
    /// Connections refused or cut, exceptions (not "another length than the first").
    failed: u64,
    non_2xx: u64,
    p99_ms: u64,
    longest_ms: u64,
}

/// `ab -r -c 8` on `path` through `http` while `during` runs, with a second of plain
/// load before and after it; SIGINT ends ab, which then prints its report.
fn ab_during(http: u16, path: &str, during: impl FnOnce()) -> Run {
    let child = Command::new("ab")
        .args(["-r", "-n", "100000000", "-c", "8"])
        .arg(format!("http://127.0.0.1:{http}{path}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ab");
    std::thread::sleep(Duration::from_secs(1));
    during();
    std::thread::sleep(Duration::from_secs(1));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let kind = |name: &str| -> u64 {
        text.split(&format!("{name}: "))
            .nth(1)
            .and_then(|v| v.split([',', ')']).next()?.trim().parse().ok())
            .unwrap_or(0)
    };
    Run {
        complete: field("Complete requests:"),
        failed: kind("Connect") + kind("Receive") + kind("Exceptions"),
        non_2xx: field("Non-2xx responses:"),
        p99_ms: field("99%"),
        longest_ms: field("100%"),
    }
}

fn row(name: &str, run: &Run, baseline: &Run) {
    println!(
        "| {name} | {} | {} | {} | {} ms | {} ms | {:.1} |",
        run.complete,
        run.failed,
        run.non_2xx,
        run.p99_ms,
        run.longest_ms,
        run.longest_ms as f64 / baseline.p99_ms.max(1) as f64
    );
}

fn serve(site: &BenchSite, path: &str) -> u16 {
    site.ctl(&["start"]);
    let http = free_port();
    site.ctl(&["nginx", "start", "--http", &http.to_string()]);
    http_ok(http, path);
    http
}

fn http_ok(port: u16, path: &str) {
    use std::io::{Read, Write};
    for _ in 0..600 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes());
            let mut head = [0u8; 12];
            if s.read(&mut head)
                .is_ok_and(|n| n >= 12 && &head[9..12] == b"200")
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no 200 from {path} on {port}");
}

/// A venv with omero-web and Gunicorn: `$variable`, else `~/.cache/omero-webctl/NAME`.
fn venv_from(variable: &str, name: &str) -> Option<PathBuf> {
    let venv = std::env::var_os(variable)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/omero-webctl")
                .join(name)
        });
    venv.join("bin/gunicorn").is_file().then_some(venv)
}

/// A site of the real OMERO.web in `venv`, with WORKERS workers.
fn omeroweb_site(venv: &std::path::Path) -> BenchSite {
    let site = BenchSite::new("");
    std::fs::remove_file(site.path().join("etc/omero-web.toml")).unwrap();
    for (key, value) in [
        ("omero.web.python", venv.to_string_lossy().into_owned()),
        ("omero.web.application_server.port", site.port.to_string()),
        ("omero.web.wsgi_workers", WORKERS.to_string()),
    ] {
        site.ctl(&["--backend", "omeroweb", "config", "set", key, &value]);
    }
    site
}

fn main() {
    if !have(&["ab", "nginx"]) {
        return;
    }
    println!(
        "| run (ab -r -c 8 through the private nginx, {WORKERS} workers) | complete | failed | non-2xx | p99 | longest | longest / baseline p99 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");

    let embedded = BenchSite::new(&format!("\"omero.web.wsgi_workers\" = {WORKERS}\n"));
    let path = "/webclient/login/";
    let http = serve(&embedded, path);
    let baseline = ab_during(http, path, || std::thread::sleep(Duration::from_secs(3)));
    row("embedded: no change (baseline)", &baseline, &baseline);
    let release = embedded.path().join("release-omero-webctl");
    std::fs::copy(BIN, &release).unwrap();
    let release = release.display().to_string();
    let upgrade = ab_during(http, path, || {
        embedded.ctl(&["upgrade", "--binary", &release])
    });
    row("embedded: upgrade --binary", &upgrade, &baseline);
    let rollback = ab_during(http, path, || embedded.ctl(&["rollback"]));
    row("embedded: rollback", &rollback, &baseline);
    let restart = ab_during(http, path, || embedded.ctl(&["restart"]));
    row("embedded: restart", &restart, &baseline);
    drop(embedded);

    let Some(venv) = venv_from("OMERO_WEBCTL_VENV", "omeroweb-venv") else {
        eprintln!("OMERO.web rows skipped: no venv (scripts/omeroweb-venv)");
        return;
    };
    let omeroweb = omeroweb_site(&venv);
    let http = serve(&omeroweb, path);
    // As long as a switch takes here, so both runs meet the machine alike.
    let baseline = ab_during(http, path, || std::thread::sleep(Duration::from_secs(14)));
    row("OMERO.web: no change (baseline)", &baseline, &baseline);
    let reload = ab_during(http, path, || omeroweb.ctl(&["reload"]));
    row("OMERO.web: reload (new generation)", &reload, &baseline);
    drop(omeroweb);

    // A site on the older release: upgraded to 5.33.2, then omero-iviewer added. Each
    // venv generation is prepared (pip) before its measured window, as a sysadmin
    // would: the window holds the preflight import, collectstatic and the switch.
    let Some(old_venv) = venv_from("OMERO_WEBCTL_OLD_VENV", "omeroweb-venv-5.32.0") else {
        eprintln!("upgrade rows skipped: no omero-web 5.32.0 venv (OMERO_WEBCTL_OLD_VENV)");
        return;
    };
    let site = omeroweb_site(&old_venv);
    let http = serve(&site, path);
    site.ctl(&["upgrade", "--omero-web", "5.33.2", "--prepare"]);
    let baseline = ab_during(http, path, || std::thread::sleep(Duration::from_secs(14)));
    row(
        "OMERO.web 5.32.0: no change (baseline)",
        &baseline,
        &baseline,
    );
    let upgrade = ab_during(http, path, || {
        site.ctl(&["upgrade", "--omero-web", "5.33.2", "--health-window", "5"])
    });
    row(
        "OMERO.web: upgrade 5.32.0 → 5.33.2 (prepared)",
        &upgrade,
        &baseline,
    );
    // Prepared from the live venv (5.33.2's now), outside the measured window.
    site.ctl(&["app", "add", "omero-iviewer", "--prepare"]);
    let added = ab_during(http, path, || {
        site.ctl(&["app", "add", "omero-iviewer", "--health-window", "5"])
    });
    row(
        "OMERO.web: app add omero-iviewer (prepared)",
        &added,
        &baseline,
    );
}
