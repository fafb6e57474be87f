//! Benchmark: the panel's idle CPU and memory with a running pool, and how well the
//! log follower keeps up while a load test makes the pool write its log.
//!
//! Run: `cargo bench --bench tui` (needs `tmux` and `wrk`; takes about a minute).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, BenchSite, have, rss_kib};
use omero_webctl::logging::follower::{LogFollower, Start};

const IDLE_SECONDS: u64 = 30;
const LOAD_SECONDS: u64 = 10;

fn main() {
    if !have(&["tmux", "wrk"]) {
        return;
    }
    let site = BenchSite::new(
        "\"omero.web.wsgi_workers\" = 2\n\"omero.web.wsgi_worker_class\" = \"gevent\"\n",
    );
    let port = site.port;
    site.ctl(&["start"]);
    let socket = format!("omero-webctl-bench-{}", std::process::id());
    // Kills the tmux server even if a step below panics (the site stops the pool).
    let _tmux_server = TmuxServer(socket.clone());

    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .status()
            .unwrap()
    };
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "b",
        "-x",
        "100",
        "-y",
        "30",
        BIN,
        "--omerodir",
        site.path().to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let panel = panel_pid(site.path().to_str().unwrap()).expect("the panel process");

    // Idle: the pool runs, nobody types, no traffic.
    let (cpu0, t0) = (cpu_ticks(panel), Instant::now());
    std::thread::sleep(Duration::from_secs(IDLE_SECONDS));
    let idle_cpu = cpu_percent(cpu_ticks(panel) - cpu0, t0.elapsed());
    let rss = rss_mib(panel);

    // Under load: wrk hits a missing page, so every request writes a WARNING line;
    // the panel shows the Log tab, and a follower in this process tails the file too.
    tmux(&["send-keys", "-t", "b", "4"]);
    let log = site.path().join("var/log/OMEROweb.log");
    let lines_before = count_lines(&log);
    let mut follower = LogFollower::open(&log, Start::End).unwrap();
    let (cpu0, t0) = (cpu_ticks(panel), Instant::now());
    let mut wrk = Command::new("wrk")
        .args([
            "-t1",
            "-c10",
            &format!("-d{LOAD_SECONDS}s"),
            &format!("http://127.0.0.1:{port}/bench-missing"),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut followed = 0usize;
    while wrk.try_wait().unwrap().is_none() {
        followed += follower.poll().unwrap().len();
        std::thread::sleep(Duration::from_millis(250));
    }
    let load_elapsed = t0.elapsed();
    // Drain what is left: the follower reads a bounded amount per poll.
    let drain = Instant::now();
    loop {
        let batch = follower.poll().unwrap().len();
        followed += batch;
        if batch == 0 {
            std::thread::sleep(Duration::from_millis(300));
            if follower.poll().unwrap().is_empty() {
                break;
            }
        }
    }
    let lag = drain.elapsed();
    let load_cpu = cpu_percent(cpu_ticks(panel) - cpu0, load_elapsed);
    let written = count_lines(&log) - lines_before;

    println!("| panel (release build, 100×30, pool of 2 running) | value | target |");
    println!("| --- | ---: | ---: |");
    println!("| idle CPU over {IDLE_SECONDS} s | {idle_cpu:.2} % of a core | < 1 % |");
    println!("| RSS | {rss:.1} MiB | < 50 MiB |");
    println!("| CPU while following the log under load | {load_cpu:.1} % of a core | — |");
    println!(
        "| log lines written by the pool during the load | {written} ({:.0}/s) | — |",
        written as f64 / load_elapsed.as_secs_f64()
    );
    println!(
        "| lines the follower delivered | {followed} (ratio {:.3} to written) | 1.000 |",
        followed as f64 / written.max(1) as f64
    );
    println!(
        "| follower throughput (lines delivered / load time) | {:.0}/s, caught up {:.1} s after the load | — |",
        followed as f64 / load_elapsed.as_secs_f64(),
        lag.as_secs_f64()
    );
}

struct TmuxServer(String);

impl Drop for TmuxServer {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .status();
    }
}

fn panel_pid(site: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .collect();
        (args.first() == Some(&BIN.as_bytes()) && args.len() == 3 && args[2] == site.as_bytes())
            .then_some(pid)
    })
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn cpu_percent(ticks: u64, elapsed: Duration) -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz / elapsed.as_secs_f64() * 100.0
}

fn rss_mib(pid: u32) -> f64 {
    rss_kib(pid).expect("the panel's memory") as f64 / 1024.0
}

fn count_lines(path: &std::path::Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}
