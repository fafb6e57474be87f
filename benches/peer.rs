//! Benchmark against the peer a user might otherwise deploy: Gunicorn (sync workers)
//! with a Pillow/numpy/tifffile thumbnail endpoint (`benches/peer/thumbnail_app.py`),
//! over the same OME-TIFF files, measured in the same run. Both are asked for a
//! thumbnail size that the gateway renders fresh every time (it caches only 96 px),
//! so this compares rendering, not caching.
//!
//! Run: `pip install gunicorn pillow numpy tifffile`, then `cargo bench --bench peer`
//! (needs `ab`).

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::{BenchSite, ab, free_port, have, rss_kib};

const WORKERS: u32 = 2;

fn main() {
    let python_ok = Command::new("python3")
        .args(["-c", "import gunicorn, PIL, numpy, tifffile"])
        .status()
        .is_ok_and(|s| s.success());
    if !python_ok {
        eprintln!("skipped: needs `pip install gunicorn pillow numpy tifffile`");
        return;
    }
    if !have(&["ab"]) {
        return;
    }
    let site = BenchSite::new(&format!("\"omero.web.wsgi_workers\" = {WORKERS}\n"));
    let ours = site.port;
    let ctl = |args: &[&str]| site.ctl(args);
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
    let _peer = StopPeer(peer);
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

/// Stops the Gunicorn peer even if a step panics.
struct StopPeer(Child);

impl Drop for StopPeer {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
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
            && let Some(kib) = rss_kib(pid)
        {
            sizes.push(kib as f64 / 1024.0);
        }
    }
    // The master and the workers: report the largest (a worker that rendered).
    sizes.into_iter().reduce(f64::max)
}
