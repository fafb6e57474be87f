//! The one performance command: `cargo bench --bench perf` (`-- --smoke` for the
//! seconds-long check CI runs). It builds a throw-away site with demo images, starts
//! the pool and the private nginx, creates the peer's venv (Gunicorn, Pillow, numpy and
//! tifffile, cached in ~/.cache/omero-webctl/peer-venv) and runs every case against
//! both, then stops everything and prints one table, also written as Markdown and
//! JSON to target/perf/. Each figure is the median of several runs; ratios are taken
//! against baselines measured in the same run (nginx serving the same JPEG as a
//! static file, nginx in front of a trivial route), since these machines are shared.
//! `-- --only GROUP[,GROUP…]` runs some of the rows alone (for a profiler, or to repeat
//! them on a loaded machine): `fast` (the eight alternated nginx/pool rows, the hop's
//! ceiling among them: see `hop`), `render`,
//! `download`, `rss` (the worker's memory after whatever ran before it), `access`,
//! `classes` (each worker class: nginx → pool against nginx static, and slow downloads).

mod access;
mod common;
mod hop;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BenchSite, Memory, ab, free_port, have, memory_kib};

/// What one run measures: sizes and counts (full, or the smoke mode's).
struct Plan {
    smoke: bool,
    runs: usize,
    image_size: u32,
    images: u32,
    /// Requests per ab run of the fast cases (OMERO docs' test: 5000 at -c 100).
    fast_n: u32,
    cold_n: u32,
    workers: u32,
    /// The groups of rows to run (`--only`); all of them without it.
    only: Option<Vec<String>>,
}

/// The groups `--only` names.
const GROUPS: [&str; 6] = ["fast", "render", "download", "rss", "access", "classes"];

impl Plan {
    fn from_args() -> Plan {
        let args: Vec<String> = std::env::args().collect();
        let smoke = args.iter().any(|a| a == "--smoke");
        let only = args.iter().position(|a| a == "--only").map(|at| {
            let list = args.get(at + 1).map_or("", String::as_str);
            let groups: Vec<String> = list.split(',').map(str::to_string).collect();
            for g in &groups {
                assert!(
                    GROUPS.contains(&g.as_str()),
                    "--only {list}: unknown group {g:?}; the groups are {GROUPS:?}"
                );
            }
            groups
        });
        let plan = if smoke {
            Plan {
                smoke,
                runs: 1,
                image_size: 256,
                images: 2,
                fast_n: 500,
                cold_n: 40,
                workers: 2,
                only: None,
            }
        } else {
            Plan {
                smoke,
                runs: 3,
                image_size: 2048,
                images: 4,
                fast_n: 5000,
                cold_n: 600,
                workers: 2,
                only: None,
            }
        };
        Plan { only, ..plan }
    }

    fn wants(&self, group: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|g| g == group))
    }
}

/// One row of the report.
#[derive(serde::Serialize)]
struct Row {
    case: String,
    ours: Option<f64>,
    peer: Option<f64>,
    unit: &'static str,
    /// Against the row's baseline (named in `against`), or ours against the peer.
    ratio: Option<f64>,
    against: &'static str,
    limit: &'static str,
}

fn main() {
    let plan = Plan::from_args();
    if !have(&["ab", "nginx", "curl"]) {
        return;
    }
    let mut rows = Vec::new();
    let site = BenchSite::new(&format!(
        "\"omero.web.wsgi_workers\" = {}\n\"omero.web.wsgi_worker_class\" = \"sync\"\n",
        plan.workers
    ));
    let (port, http) = (site.port, free_port());
    site.ctl(&[
        "demo",
        "--images",
        &plan.images.to_string(),
        "--size",
        &plan.image_size.to_string(),
        "--channels",
        "3",
        "--z",
        "1",
    ]);
    site.ctl(&["start"]);
    site.ctl(&["nginx", "start", "--http", &http.to_string()]);
    // Every image's thumbnail published, so the publisher is idle while we measure.
    let published_dir = site.path().join("var/cache/published/t");
    wait_for("the published thumbnails", || {
        (1..=plan.images).all(|id| published_dir.join(format!("{id}.jpg")).is_file())
    });
    let published = published_dir.join("1.jpg");

    // Baselines: nginx serving the same JPEG as a static file; nginx in front of a
    // trivial route of the pool.
    let jpeg = std::fs::read(&published).unwrap();
    std::fs::write(site.path().join("var/static/thumb.jpg"), &jpeg).unwrap();
    let median = |run: &dyn Fn() -> f64| median_of(plan.runs, run);
    let n = plan.fast_n;
    // The pool directly, for the peer's "cached thumbnail" row.
    let mut direct = None;
    if plan.wants("fast") {
        // The fast cases, OMERO docs' test among them (render_thumbnail through nginx,
        // ab -n 5000 -c 100), take turns with the static baseline, so that a busy
        // moment of the shared machine falls on all of them alike.
        let thumb = "/webgateway/render_thumbnail/1/";
        // The same cached thumbnail from the pool: a URL form nginx does not publish.
        let from_pool = "/webclient/render_thumbnail/1/1/";
        // The hop's ceiling: the same nginx config in front of a `return 200` of the
        // trivial route's body, with and without upstream keep-alive.
        let nginx_dir = site.path().join("var/nginx");
        let ceiling = |name: &str, keep_alive| {
            hop::CeilingNginx::start(
                &nginx_dir,
                site.path().join("var").join(name),
                free_port(),
                free_port(),
                keep_alive,
            )
        };
        let (ceiling_closed, ceiling_kept) = (
            ceiling("ceiling-closed", false),
            ceiling("ceiling-kept", true),
        );
        let trivial = "/__webctl/health";
        let fast = alternated(
            plan.runs.max(5),
            &[
                (http, "/static/thumb.jpg"),
                (http, trivial),
                (http, thumb),
                (http, from_pool),
                (port, thumb),
                (ceiling_closed.port, trivial),
                (ceiling_kept.port, trivial),
                (port, trivial),
            ],
            n,
        );
        drop((ceiling_closed, ceiling_kept));
        let [
            nginx_static,
            nginx_trivial,
            published_rps,
            pool_cached,
            pool_direct,
            ceiling_closed_rps,
            ceiling_kept_rps,
            trivial_direct,
        ] = fast[..]
        else {
            unreachable!("eight cases")
        };
        direct = Some(pool_direct);
        for (case, value, limit) in [
            (
                "nginx: the thumbnail JPEG as a static file (baseline)",
                nginx_static,
                "client-bound: ab spends its core on TCP set-up",
            ),
            (
                "nginx → pool, trivial route",
                nginx_trivial,
                "the upstream hop",
            ),
            (
                "render_thumbnail through nginx (published, OMERO docs' test)",
                published_rps,
                "served by nginx from disk, as a static file",
            ),
            (
                "render_thumbnail through nginx → pool (its disk cache)",
                pool_cached,
                "the upstream hop",
            ),
            (
                "render_thumbnail, pool directly",
                pool_direct,
                "client-bound",
            ),
            (
                "ceiling of the hop: nginx → nginx `return 200`, a new upstream connection per request (as sync workers get)",
                ceiling_closed_rps,
                "nginx's own work: two TCP connections per request",
            ),
            (
                "ceiling of the hop: nginx → nginx `return 200`, upstream keep-alive (as gthread and gevent get)",
                ceiling_kept_rps,
                "nginx's own work: the client connection and proxying",
            ),
            (
                "sync workers: trivial route, pool directly",
                trivial_direct,
                "client-bound: one connection per request",
            ),
        ] {
            rows.push(row(
                case,
                Some(value),
                None,
                "req/s",
                Some(value / nginx_static),
                "nginx static",
                limit,
            ));
        }
    }

    // The peer on the same files, with the same nginx and worker count.
    let peer = if plan.smoke || !(plan.wants("render") || plan.wants("rss")) {
        None
    } else {
        Peer::start(&site, plan.workers)
    };
    if plan.wants("render") {
        render_rows(&plan, &site, peer.as_ref(), direct, &mut rows);
    }

    if plan.wants("download") {
        // A large download through nginx.
        let download = median(&|| curl_mb_per_s(http, "/webgateway/archived_files/download/1/"));
        rows.push(row(
            "original-file download through nginx, one stream",
            Some(download),
            None,
            "MB/s",
            None,
            "",
            "memory copies; nginx does not buffer it",
        ));
    }

    if plan.wants("rss") {
        // Memory per worker after the run, once idle (a worker gives back what
        // rendering took after 2 s without a request).
        std::thread::sleep(Duration::from_secs(3));
        let ours = worker_memory(&site);
        let theirs = peer.as_ref().and_then(|p| p.worker_memory());
        let mib = |kib: u64| kib as f64 / 1024.0;
        for (case, of, limit) in [
            (
                "RSS per worker after the run",
                (|m: Memory| m.rss) as fn(Memory) -> u64,
                "counts the shared pages of the executable and its libraries in full",
            ),
            (
                "PSS per worker after the run (shared pages divided among processes)",
                |m: Memory| m.pss,
                "the executable's code, shared with the master and other workers",
            ),
            (
                "private memory per worker after the run (what one more worker adds)",
                |m: Memory| m.private,
                "buffers kept while busy, given back when idle",
            ),
        ] {
            let ours = mib(of(ours));
            let peer = theirs.map(|m| mib(of(m)));
            rows.push(row(
                case,
                Some(ours),
                peer,
                "MiB",
                peer.map(|p| ours / p),
                "peer",
                limit,
            ));
        }
    }
    drop(peer);

    if plan.wants("access") {
        // What access control costs, against this site in the same run.
        let (access_site, access_http, member) = access::site_with_access(&plan);
        rows.extend(access::rows(
            &plan,
            (port, http),
            (access_site.port, access_http),
            &member,
        ));
        drop(access_site);
    }

    if plan.wants("classes") {
        class_rows(&plan, &site, (port, http), &mut rows);
    }
    site.ctl(&["nginx", "stop"]);
    site.ctl(&["stop"]);

    report(&plan, &rows);
}

/// Fresh thumbnails, a region, the whole plane and its encode-alone ceiling, and the
/// cached thumbnail (`direct`, measured by the fast rows) against the peer.
fn render_rows(
    plan: &Plan,
    site: &BenchSite,
    peer: Option<&Peer>,
    direct: Option<f64>,
    rows: &mut Vec<Row>,
) {
    let median = |run: &dyn Fn() -> f64| median_of(plan.runs, run);
    let port = site.port;
    let file = "demo-001.ome.tiff";
    let peer_rps = |path: &str, n: u32, c: u32| -> Option<f64> {
        let p = peer?;
        Some(median(&|| ab(p.port, path, n, c)))
    };

    // Cold thumbnails: a size never cached (95 px), rendered on every request.
    let cold_path = "/webgateway/render_thumbnail/1/95/";
    let cold = median(&|| ab(port, cold_path, plan.cold_n, 4));
    let peer_cold = peer_rps(&format!("/thumb/{file}/95/"), 60, 4);
    rows.push(row(
        &format!(
            "fresh 95-px thumbnails of a {0}² 3-channel 16-bit image, -c 4",
            plan.image_size
        ),
        Some(cold),
        peer_cold,
        "req/s",
        peer_cold.map(|p| cold / p),
        "peer",
        "decode + resize + JPEG per request",
    ));
    let region = median(&|| {
        ab(
            port,
            "/webgateway/render_image_region/1/0/0/?region=0,0,512,512",
            plan.cold_n,
            4,
        )
    });
    rows.push(row(
        "render_image 512² region, -c 4",
        Some(region),
        None,
        "req/s",
        None,
        "",
        "render + JPEG encode",
    ));
    // The whole plane and its ceiling take turns, so that both see the same phase of a
    // shared machine (a ceiling measured once, minutes apart, read 0.49–0.62 here).
    let full_n = plan.cold_n / 4;
    let encoder = PlaneEncoder::new(&site.path().join("var/repository/demo").join(file));
    let (mut full, mut ceiling) = (Vec::new(), Vec::new());
    for _ in 0..plan.runs.max(3) {
        full.push(ab(port, "/webgateway/render_image/1/", full_n, 4));
        ceiling.push(encoder.per_second_on(plan.workers));
    }
    let (full, ceiling) = (crate::median(full), crate::median(ceiling));
    let peer_full = peer_rps(&format!("/render/{file}/"), 20, 4);
    rows.push(row(
        &format!("render_image, the whole {0}² plane, -c 4", plan.image_size),
        Some(full),
        peer_full,
        "req/s",
        peer_full.map(|p| full / p),
        "peer",
        "JPEG encode of the whole plane",
    ));
    // The ceiling of any whole-plane render: if a request cost only libjpeg-turbo's
    // encode of the rendered plane, this many per second would fit on the workers,
    // measured with one encoding thread per worker at once (as the workers run).
    rows.push(row(
        "ceiling for the whole plane: its JPEG encode alone, on every worker at once",
        Some(ceiling),
        None,
        "req/s",
        Some(full / ceiling),
        "whole plane ÷ this",
        "libjpeg-turbo's encode of the rendered plane (target 0.6)",
    ));
    // One core's encode times the workers: what the ceiling would be if the workers
    // did not share the memory bus and caches (reported, not the ratio's base).
    let one_core = plan.workers as f64 * encoder.per_second_on(1);
    rows.push(row(
        "one core's encode of the whole plane × workers",
        Some(one_core),
        None,
        "req/s",
        Some(full / one_core),
        "whole plane ÷ this",
        "no sharing between workers",
    ));
    if let Some(direct) = direct {
        let peer_cached = peer_rps(&format!("/cached/{file}/"), plan.fast_n, 100);
        rows.push(row(
            "cached thumbnail from disk, app directly, -c 100",
            Some(direct),
            peer_cached,
            "req/s",
            peer_cached.map(|p| direct / p),
            "peer",
            "the application server",
        ));
    }
}

/// Each worker class: nginx → pool on a trivial route taking turns with nginx static
/// (the hop; gthread and gevent keep upstream connections alive, sync closes each),
/// then the trivial route alone and while 20 slow downloads hold connections (sync
/// workers have one each).
fn class_rows(plan: &Plan, site: &BenchSite, (port, http): (u16, u16), rows: &mut Vec<Row>) {
    let median = |run: &dyn Fn() -> f64| median_of(plan.runs, run);
    let n = plan.fast_n;
    for class in ["sync", "gthread", "gevent"] {
        site.ctl(&["config", "set", "omero.web.wsgi_worker_class", class]);
        if class == "gthread" {
            site.ctl(&["config", "set", "omero.web.wsgi_threads", "4"]);
        }
        site.ctl(&["restart"]);
        // The upstream's keep-alive follows the worker class.
        site.ctl(&["nginx", "reload"]);
        let [nginx_static, hop] = alternated(
            plan.runs.max(5),
            &[(http, "/static/thumb.jpg"), (http, "/__webctl/health")],
            n,
        )[..] else {
            unreachable!("two cases")
        };
        let alone = median(&|| ab(port, "/__webctl/health", n, 100));
        let slow = SlowDownloads::start(port, 20);
        let busy = ab_tolerant(port, "/__webctl/health", plan.fast_n / 10, 10);
        drop(slow);
        rows.push(row(
            &format!("{class} workers: nginx → pool, trivial route"),
            Some(hop),
            None,
            "req/s",
            Some(hop / nginx_static),
            "nginx static",
            if class == "sync" {
                "the upstream hop: a new connection per request"
            } else {
                "the upstream hop, connections kept alive"
            },
        ));
        rows.push(row(
            &format!("{class} workers: trivial route, alone"),
            Some(alone),
            None,
            "req/s",
            None,
            "",
            "HTTP per request",
        ));
        rows.push(row(
            &format!("{class} workers: trivial route while 20 slow downloads run"),
            Some(busy),
            None,
            "req/s",
            Some(busy / alone),
            "alone",
            if class == "sync" {
                "a sync worker serves one connection at a time"
            } else {
                "concurrency of the worker class"
            },
        ));
    }
}

/// The first plane of an image rendered whole, as `render_image` encodes it.
struct PlaneEncoder {
    rendered: omero_webctl::gateway::imaging::render::Rendered,
    quality: f32,
}

impl PlaneEncoder {
    fn new(image: &Path) -> PlaneEncoder {
        use omero_webctl::gateway::imaging::render::{
            OutputSize, RenderLimits, RenderRequest, render_rgb,
        };
        let source =
            omero_webctl::gateway::imaging::source::open(image, &Default::default()).unwrap();
        let request = RenderRequest::defaults(source.meta());
        let rendered = render_rgb(
            source.as_ref(),
            &request,
            OutputSize::Native,
            &RenderLimits::default(),
        )
        .unwrap();
        PlaneEncoder {
            rendered,
            quality: request.settings.quality,
        }
    }

    /// JPEG encodes per second with `threads` threads encoding at once, over about a
    /// second: the median of each thread's encodes per second, summed.
    fn per_second_on(&self, threads: u32) -> f64 {
        use omero_webctl::gateway::imaging::encode::encode_jpeg;
        let encode_for_a_second = || {
            let started = Instant::now();
            let mut times = Vec::new();
            while started.elapsed() < Duration::from_secs(1) || times.len() < 5 {
                let one = Instant::now();
                std::hint::black_box(encode_jpeg(&self.rendered, self.quality).unwrap());
                times.push(one.elapsed().as_secs_f64());
            }
            1.0 / median(times)
        };
        std::thread::scope(|scope| {
            let encoders: Vec<_> = (0..threads)
                .map(|_| scope.spawn(encode_for_a_second))
                .collect();
            encoders.into_iter().map(|e| e.join().unwrap()).sum()
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    case: &str,
    ours: Option<f64>,
    peer: Option<f64>,
    unit: &'static str,
    ratio: Option<f64>,
    against: &'static str,
    limit: &'static str,
) -> Row {
    Row {
        case: case.to_string(),
        ours,
        peer,
        unit,
        ratio,
        against,
        limit,
    }
}

/// Medians of `ab -n n -c 100` on each (port, path), the cases taking turns.
fn alternated(runs: usize, cases: &[(u16, &str)], n: u32) -> Vec<f64> {
    let mut samples = vec![Vec::new(); cases.len()];
    for _ in 0..runs {
        for (i, &(port, path)) in cases.iter().enumerate() {
            samples[i].push(ab(port, path, n, 100));
        }
    }
    samples
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

fn median_of(runs: usize, run: &dyn Fn() -> f64) -> f64 {
    median((0..runs.max(1)).map(|_| run()).collect())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ab` that tolerates failures (starved workers): answered requests per second.
fn ab_tolerant(port: u16, path: &str, n: u32, c: u32) -> f64 {
    let out = Command::new("ab")
        // At most 5 s, each request at most 2 s: starved workers cannot stall it.
        .args([
            "-q",
            "-r",
            "-s",
            "2",
            "-t",
            "5",
            "-n",
            &n.to_string(),
            "-c",
            &c.to_string(),
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    match (
        field("Complete requests:"),
        field("Failed requests:"),
        field("Time taken for tests:"),
    ) {
        (Some(done), Some(failed), Some(secs)) if secs > 0.0 => (done - failed) / secs,
        _ => 0.0,
    }
}

fn curl_mb_per_s(port: u16, path: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{speed_download}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .unwrap_or(0.0)
        / 1e6
}

/// The memory of the pool's worker with the largest RSS.
fn worker_memory(site: &BenchSite) -> Memory {
    site.status_json()["workers"]
        .as_array()
        .and_then(|w| {
            w.iter()
                .filter_map(|w| memory_kib(w["pid"].as_u64()? as u32))
                .max_by_key(|m| m.rss)
        })
        .unwrap_or_default()
}

/// Slow clients holding connections: rate-limited downloads until dropped.
struct SlowDownloads(Vec<Child>);

impl SlowDownloads {
    fn start(port: u16, count: usize) -> SlowDownloads {
        let children = (0..count)
            .map(|_| {
                Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "--limit-rate", "20k"])
                    .arg(format!(
                        "http://127.0.0.1:{port}/webgateway/archived_files/download/1/"
                    ))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Let them connect and take their workers.
        std::thread::sleep(Duration::from_millis(500));
        SlowDownloads(children)
    }
}

impl Drop for SlowDownloads {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Gunicorn (sync workers) + Pillow/numpy/tifffile over the same files, behind nothing.
struct Peer {
    child: Child,
    port: u16,
    _cache: tempfile::TempDir,
}

impl Peer {
    /// Creates (once) the peer's venv and starts it; `None` with the reason printed if
    /// it cannot be had (no network for pip, no python3-venv).
    fn start(site: &BenchSite, workers: u32) -> Option<Peer> {
        let venv = match peer_venv() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("peer skipped: {e}");
                return None;
            }
        };
        let port = free_port();
        let cache = tempfile::tempdir().unwrap();
        let child = Command::new(venv.join("bin/gunicorn"))
            .arg("--chdir")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer"))
            .args([
                "-w",
                &workers.to_string(),
                "-b",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("thumbnail_app:app")
            .env("REPOSITORY", site.path().join("var/repository/demo"))
            .env("CACHE", cache.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let peer = Peer {
            child,
            port,
            _cache: cache,
        };
        wait_for("the peer", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(peer)
    }

    /// The memory of the worker with the largest RSS.
    fn worker_memory(&self) -> Option<Memory> {
        let children = std::fs::read_to_string(format!(
            "/proc/{}/task/{}/children",
            self.child.id(),
            self.child.id()
        ))
        .ok()?;
        children
            .split_whitespace()
            .filter_map(|pid| memory_kib(pid.parse().ok()?))
            .max_by_key(|m| m.rss)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// `~/.cache/omero-webctl/peer-venv` with the peer's packages, made on first use.
fn peer_venv() -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME").ok_or("no HOME")?;
    let venv = Path::new(&home).join(".cache/omero-webctl/peer-venv");
    let stamp = venv.join(".omero-webctl-peer");
    if stamp.is_file() {
        return Ok(venv);
    }
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .to_string())
        }
    };
    eprintln!("creating the peer's venv in {} (once)…", venv.display());
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        "gunicorn==27.0.1",
        "pillow",
        "numpy",
        "tifffile",
    ]))?;
    std::fs::write(&stamp, "gunicorn pillow numpy tifffile\n").map_err(|e| e.to_string())?;
    Ok(venv)
}

/// The machine, the table on stdout, and Markdown + JSON under target/perf/.
fn report(plan: &Plan, rows: &[Row]) {
    let machine = machine();
    let mut md = format!(
        "Machine: {machine}. `ab` on the same machine; medians of {} run(s), of {} alternated runs for the first eight rows{}.\n\n",
        plan.runs,
        plan.runs.max(5),
        if plan.smoke {
            " (smoke mode: small images, few requests)"
        } else {
            ""
        }
    );
    md.push_str(
        "| case | omero-webctl | peer (Gunicorn + Pillow) | ratio | against | what limits it |\n",
    );
    md.push_str("| --- | ---: | ---: | ---: | --- | --- |\n");
    let figure = |v: Option<f64>, unit: &str| match v {
        Some(v) if v >= 100.0 => format!("{v:.0} {unit}"),
        Some(v) => format!("{v:.1} {unit}"),
        None => "—".into(),
    };
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.case,
            figure(r.ours, r.unit),
            figure(r.peer, r.unit),
            r.ratio.map_or("—".into(), |x| format!("{x:.2}")),
            r.against,
            r.limit
        ));
    }
    md.push_str("| OMERO.web 5.x, render_thumbnail (OMERO's docs, historical) | — | 27.93 req/s | — | | |\n");
    println!("{md}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/perf");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("report.md"), &md);
    let json = serde_json::json!({ "machine": machine, "smoke": plan.smoke, "runs": plan.runs, "rows": rows });
    let _ = std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    );
    eprintln!("written: {0}/report.md, {0}/report.json", dir.display());
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024 / 1024);
    format!("{cores} cores ({model}), {mem} GiB RAM")
}
