//! Benchmark: the default `render_thumbnail` through the private nginx, with
//! `ab -n 5000 -c 100` as in OMERO's docs (which show 27.93 requests/s), against nginx
//! serving the same JPEG as a static file in the same run. Also the pool directly,
//! and the first (uncached) thumbnails.
//!
//! Run: `cargo bench --bench gateway` (needs `ab` and `nginx`).

mod common;

use std::time::{Duration, Instant};

use common::{BenchSite, ab, free_port, have};

const RUNS: usize = 3;

fn main() {
    if !have(&["ab", "nginx"]) {
        return;
    }
    let site = BenchSite::new(
        "\"omero.web.wsgi_workers\" = 2\n\"omero.web.wsgi_worker_class\" = \"gevent\"\n",
    );
    let (port, http) = (site.port, free_port());
    let ctl = |args: &[&str]| site.ctl(args);
    ctl(&[
        "demo",
        "--images",
        "20",
        "--size",
        "2048",
        "--channels",
        "3",
        "--z",
        "1",
    ]);
    ctl(&["start"]);
    ctl(&["nginx", "start", "--http", &http.to_string()]);

    // Cold: the first default thumbnail of each image (decode 2048² × 3 channels,
    // resize in 16 bit, LUT, JPEG), one at a time.
    let started = Instant::now();
    for id in 1..=20 {
        let (status, _) = get(port, &format!("/webgateway/render_thumbnail/{id}/"));
        assert_eq!(status, 200);
    }
    let cold = 20.0 / started.elapsed().as_secs_f64();

    // The same JPEG as a static file for nginx.
    let (_, jpeg) = get(port, "/webgateway/render_thumbnail/1/");
    std::fs::write(site.path().join("var/static/thumb.jpg"), &jpeg).unwrap();

    let static_rps = median(|| ab(http, "/static/thumb.jpg", 5000, 100));
    let nginx_rps = median(|| ab(http, "/webgateway/render_thumbnail/1/", 5000, 100));
    let direct_rps = median(|| ab(port, "/webgateway/render_thumbnail/1/", 5000, 100));
    ctl(&["nginx", "stop"]);
    ctl(&["stop"]);

    println!("| ab -n 5000 -c 100 (median of {RUNS}) | requests/s | ratio to nginx static |");
    println!("| --- | ---: | ---: |");
    println!("| nginx, the thumbnail JPEG as a static file | {static_rps:.0} | 1.00 |");
    println!(
        "| render_thumbnail through nginx → pool (2 gevent workers) | {nginx_rps:.0} | {:.2} |",
        nginx_rps / static_rps
    );
    println!(
        "| render_thumbnail, pool directly | {direct_rps:.0} | {:.2} |",
        direct_rps / static_rps
    );
    println!("| OMERO.web's published figure (docs) | 27.93 | — |");
    println!();
    println!(
        "Cold default thumbnails from 2048² 3-channel 16-bit OME-TIFFs, one client: {cold:.0}/s"
    );
}

fn median(mut run: impl FnMut() -> f64) -> f64 {
    let mut values: Vec<f64> = (0..RUNS).map(|_| run()).collect();
    values.sort_by(|a, b| a.total_cmp(b));
    values[RUNS / 2]
}

fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&raw[9..12]).parse().unwrap();
    (status, raw[split + 4..].to_vec())
}
