//! Benchmark: requests/s of the pool on a trivial route, per worker class, against a
//! bare hyper server measured in the same run, plus RSS per idle worker.
//!
//! Run: `cargo bench --bench pool` (needs `wrk`). Figures are ratios against the
//! baseline of the same run, since the machine is shared and noisy.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{BenchSite, free_port, have, rss_kib};

const WORKERS: u32 = 2;
const SECONDS: u32 = 5;
const CONNECTIONS: u32 = 50;

fn main() {
    if !have(&["wrk"]) {
        return;
    }
    let baseline_port = free_port();
    std::thread::spawn(move || bare_hyper(baseline_port));
    wait_for(baseline_port);
    let baseline = wrk(baseline_port, "/__webctl/health");
    println!("| server | requests/s | ratio to bare hyper | idle RSS per worker |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| bare hyper (2 runtime threads, 1 process) | {baseline:.0} | 1.00 | — |");
    for class in ["sync", "gthread", "gevent"] {
        let mut config = format!(
            "\"omero.web.wsgi_workers\" = {WORKERS}\n\"omero.web.wsgi_worker_class\" = \"{}\"\n",
            if class == "gthread" { "sync" } else { class }
        );
        if class == "gthread" {
            config.push_str("\"omero.web.wsgi_threads\" = 4\n");
        }
        let site = BenchSite::new(&config);
        site.ctl(&["start"]);
        std::thread::sleep(Duration::from_secs(1));
        let status = site.status_json();
        let rss: Vec<u64> = status["workers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| rss_kib(w["pid"].as_u64()? as u32))
            .collect();
        let rss_mib = rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64 / 1024.0;
        let rps = wrk(site.port, "/__webctl/health");
        drop(site);
        println!(
            "| pool, {WORKERS} {class} workers | {rps:.0} | {:.2} | {rss_mib:.1} MiB |",
            rps / baseline
        );
    }
}

/// The baseline: the same hyper stack answering the same route, no pool around it.
fn bare_hyper(port: u16) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("Content-Type", "text/plain; charset=utf-8")
                            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                b"ok\n",
                            )))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn wrk(port: u16, path: &str) -> f64 {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{SECONDS}s"),
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"))
}

fn wait_for(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the baseline server did not come up");
}
