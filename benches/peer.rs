//! Benchmark against the peer a user might otherwise deploy: Gunicorn (sync workers)
//! with a Pillow/numpy/tifffile thumbnail endpoint (`benches/peer/thumbnail_app.py`),
//! over the same OME-TIFF files, measured in the same run. Both are asked for a
//! thumbnail size that the gateway renders fresh every time (it caches only 96 px),
//! so this compares rendering, not caching.
//!
//! Run: `pip install gunicorn pillow numpy tifffile`, then `cargo bench --bench peer`
//! (needs `ab`).

use std::process::{Child, Command};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_omero-webctl");
const WORKERS: u32 = 2;

fn main() {
    let python_ok = Command::new("python3")
        .args(["-c", "import gunicorn, PIL, numpy, tifffile"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !python_ok || Command::new("ab").arg("-V").output().is_err() {
        eprintln!("skipped: needs ab and `pip install gunicorn pillow numpy tifffile`");
        return;
    }
    let site = tempfile::tempdir().unwrap();
    let ours = free_port();
    std::fs::create_dir_all(site.path().join("etc")).unwrap();
    std::fs::write(
        site.path().join("etc/omero-web.toml"),
        format!("\"omero.web.application_server.port\" = {ours}\n\"omero.web.wsgi_workers\" = {WORKERS}\n"),
    )
    .unwrap();
    let ctl = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--omerodir")
            .arg(site.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ctl(&[
        "demo",
        "--images",
        "1",
        "--size",
        "2048",
        "--channels",
        "3",
        "--z",
        "1",
    ]);
    ctl(&["start"]);
    let _stop = Cleanup(site.path().to_path_buf(), None);

    let peer_port = free_port();
    let repository = site.path().join("var/repository/demo");
    let peer = Command::new("python3")
        .args(["-m", "gunicorn", "--chdir"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer"))
        .args([
            "-w",
            &WORKERS.to_string(),
            "-b",
            &format!("127.0.0.1:{peer_port}"),
            "thumbnail_app:app",
        ])
        .env("REPOSITORY", &repository)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _peer = Cleanup(site.path().to_path_buf(), Some(peer));
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", peer_port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));

    let peer_thumb = ab(peer_port, "/thumb/demo-001.ome.tiff/95/", 100, 4);
    let our_thumb = ab(ours, "/webgateway/render_thumbnail/1/95/", 1000, 4);
    let peer_trivial = ab(peer_port, "/health", 5000, 100);
    let our_trivial = ab(ours, "/__webctl/health", 5000, 100);
    let peer_rss = rss_of_children(peer_port);

    println!(
        "| {WORKERS} workers each, ab, client on the same machine | Gunicorn + Pillow | omero-webctl | ratio |"
    );
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| thumbnail (95 px) rendered from a 2048² 3-channel 16-bit OME-TIFF, -c 4 | {peer_thumb:.1}/s | {our_thumb:.1}/s | {:.0}× |",
        our_thumb / peer_thumb
    );
    println!(
        "| trivial route, -n 5000 -c 100 | {peer_trivial:.0}/s | {our_trivial:.0}/s | {:.1}× |",
        our_trivial / peer_trivial
    );
    if let Some(rss) = peer_rss {
        println!(
            "| Gunicorn worker RSS after the run | {rss:.1} MiB | (see the pool benchmark) | |"
        );
    }
}

/// Stops the pool (and the peer, if given) even if a step panics.
struct Cleanup(std::path::PathBuf, Option<Child>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        match &mut self.1 {
            Some(child) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                let _ = child.wait();
            }
            None => {
                let _ = Command::new(BIN)
                    .arg("--omerodir")
                    .arg(&self.0)
                    .arg("stop")
                    .output();
            }
        }
    }
}

fn ab(port: u16, path: &str, n: u32, c: u32) -> f64 {
    let out = Command::new("ab")
        .args([
            "-q",
            "-n",
            &n.to_string(),
            "-c",
            &c.to_string(),
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let failed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Failed requests:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    assert_eq!(failed, 0, "ab reported failed requests for {path}:\n{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests per second:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no Requests per second in ab output:\n{text}"))
}

/// Average RSS of the Gunicorn workers (the processes whose command line names the port).
fn rss_of_children(port: u16) -> Option<f64> {
    let needle = format!("127.0.0.1:{port}");
    let mut sizes = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(&needle)
            && let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        {
            sizes.push(kib / 1024.0);
        }
    }
    // The master and the workers: report the largest (a worker that rendered).
    sizes.into_iter().reduce(f64::max)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
