//! Fixed fake data for the panel's tests: a site at a made-up path, a config, a pool
//! with four workers, a log. Nothing comes from the real system, so snapshots are the
//! same on every machine.

use std::collections::HashMap;

use crate::config::Config;
use crate::nginx::CheckReport;
use crate::site::Site;
use crate::status::activity::{FinishedRequest, InFlight, SlowPath, WorkerActivity};
use crate::status::fixtures as status_fixtures;
use crate::status::stats::LatencyBound;
use crate::status::{PoolStatus, WorkerStatus};

use super::app::{App, update};
use super::event::{Event, NginxObservation, PoolObservation, ProcStat, Sample};
use super::nginx_tab::CheckState;
use super::theme::Theme;

pub const SITE: &str = "/srv/omero-web";

pub const CONFIG: &str = r#"# OMERO.web on the imaging facility's server
"omero.web.application_server.port" = 4080
"omero.web.wsgi_workers" = 4
"omero.web.wsgi_worker_class" = "gthread"
"omero.web.wsgi_threads" = 4
"omero.web.prefix" = "/omero"
"omero.mail.password" = "hunter2"
"#;

pub fn site() -> Site {
    Site::new(SITE)
}

pub fn config(text: &str) -> Config {
    let site = site();
    Config::from_text(
        &site,
        site.config_file(),
        text.into(),
        Some(text.as_bytes().to_vec()),
    )
    .expect("fixture config is valid")
}

/// An OMERO.web site's config.xml (as `omero config set` writes it) naming one
/// OMERO.server.
pub const OMERO_CONFIG_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<icegrid>
  <properties id="__ACTIVE__">
    <property name="omero.config.profile" value="default"/>
  </properties>
  <properties id="default">
    <property name="omero.config.version" value="5.1.0"/>
    <property name="omero.web.server_list" value="[[&quot;omero.example.org&quot;, 4064, &quot;omero&quot;]]"/>
    <property name="omero.web.application_server.port" value="4080"/>
  </properties>
</icegrid>
"#;

/// An OMERO.web site's panel right after start-up, and the effects it asked for.
pub fn omeroweb_app() -> (App, Vec<super::event::Effect>) {
    let site = Site::with_kind(SITE, crate::site::SiteKind::OmeroWeb);
    let config = Config::from_text(
        &site,
        site.config_file(),
        OMERO_CONFIG_XML.into(),
        Some(OMERO_CONFIG_XML.as_bytes().to_vec()),
    )
    .expect("fixture config.xml is valid");
    App::new(site, Ok(config), Theme::COLOR, None, None)
}

/// A sample of a stopped pool at `at` (the panel's clock).
pub fn stopped_sample(at: f64) -> Sample {
    Sample {
        at,
        pool: PoolObservation::NotRunning,
        procs: HashMap::new(),
        nginx: NginxObservation::NotRunning,
        config_stamp: None,
        nginx_errors: Default::default(),
        access: None,
        backend: "OMERO.web 5.33.2 · Gunicorn 27.0.1".into(),
    }
}

/// The panel right after start-up with the fixture config, nothing sampled yet.
pub fn bare_app() -> App {
    let (app, _) = App::new(site(), Ok(config(CONFIG)), Theme::COLOR, None, None);
    app
}

/// The status fixture's worker with a mix of statuses, bytes and latencies, so every
/// column of the panel shows something.
fn worker(pid: u32, requests: u64, age: f64, in_flight: u64, restarts: u64) -> WorkerStatus {
    WorkerStatus {
        restarts,
        in_flight: Some(in_flight),
        status_2xx: requests * 9 / 10,
        status_3xx: requests / 20,
        status_4xx: requests / 25,
        status_5xx: requests / 100,
        bytes_sent: requests * 20_000,
        latency_p50: Some(LatencyBound::AtMost(5)),
        latency_p95: Some(LatencyBound::AtMost(50)),
        latency_p99: Some(LatencyBound::AtMost(250)),
        last_heartbeat_secs: 0.4,
        activity: activity(pid),
        ..status_fixtures::worker(pid, requests, age)
    }
}

/// A worker busy with a slow render, with its last requests and slowest paths.
fn activity(pid: u32) -> WorkerActivity {
    let finished = |at: u64, method: &str, path: &str, status: u16, ms: u64| FinishedRequest {
        at,
        method: method.into(),
        path: path.into(),
        status,
        ms,
    };
    let slow = |path: &str, count: u64, max_ms: u64, mean_ms: u64| SlowPath {
        path: path.into(),
        count,
        max_ms,
        mean_ms,
    };
    WorkerActivity {
        serving: Some(if pid == 31004 {
            vec![InFlight {
                method: "GET".into(),
                path: "/webgateway/render_image/7/0/0/?c=1|0:255$FF0000".into(),
                secs: 2.4,
            }]
        } else {
            vec![]
        }),
        recent: vec![
            finished(0, "GET", "/webgateway/render_thumbnail/3/", 200, 12),
            finished(0, "GET", "/webclient/", 200, 48),
            finished(0, "POST", "/webclient/login/", 403, 3),
        ],
        slowest: vec![
            slow("/webgateway/render_image/7/0/0/", 14, 2300, 640),
            slow("/webclient/", 120, 310, 44),
        ],
    }
}

/// The status fixture's pool of these workers: its totals carry a latency histogram
/// (the buckets of `status::stats`).
fn pool_status(workers: Vec<WorkerStatus>, uptime: u64) -> PoolStatus {
    let mut totals = status_fixtures::totals(&workers);
    // 1,2,5,10,25,50,100,250,500,1000,2500,10000 ms and overflow.
    totals.latency_buckets = vec![10, 200, 400, 250, 80, 40, 10, 6, 3, 1, 0, 0, 0];
    PoolStatus {
        master_pid: 31000,
        uptime_secs: uptime,
        target_workers: 4,
        log_file: format!("{SITE}/var/log/OMEROweb.log"),
        totals,
        restarts: workers.iter().map(|w| w.restarts).sum(),
        ..status_fixtures::pool_status(workers)
    }
}

fn sample(at: f64, step: u64) -> Sample {
    let workers = vec![
        worker(31002, 1200 + step * 12, 3600.0 + at, 1, 0),
        worker(31003, 980 + step * 9, 3600.0 + at, 0, 0),
        worker(31004, 1430 + step * 15, 3600.0 + at, 2, 1),
        worker(31011, 310 + step * 4, 900.0 + at, 0, 3),
    ];
    let mut procs = HashMap::new();
    let cpu = [
        (31000, 0.1),
        (31002, 0.45),
        (31003, 0.3),
        (31004, 0.6),
        (31011, 0.12),
    ];
    for (i, (pid, per_step)) in cpu.iter().enumerate() {
        procs.insert(
            *pid,
            ProcStat {
                cpu_secs: 100.0 + per_step * step as f64,
                rss_bytes: (40 + i as u64 * 7) * 1024 * 1024,
            },
        );
    }
    Sample {
        at,
        pool: PoolObservation::Running(Box::new(pool_status(workers, 7384 + step))),
        procs,
        nginx: NginxObservation::Running {
            pid: 30500,
            port: Some(8080),
        },
        config_stamp: Some((1, CONFIG.len() as u64)),
        backend: "embedded pool 0.1.0".into(),
        nginx_errors: Default::default(),
        access: None,
    }
}

pub fn log_lines() -> Vec<String> {
    let line = |time: &str, level: &str, logger: &str, msg: &str| {
        format!("2024-05-01 {time},123 {level:>5.5} [{logger:>40}] (proc.31000) master:42 {msg}")
    };
    vec![
        line(
            "09:00:00",
            "INFO",
            "omeroweb.pool.master",
            "Starting OMERO.web 4 gthread workers on 127.0.0.1:4080",
        ),
        line(
            "09:00:01",
            "INFO",
            "omeroweb.pool.master",
            "Booted worker 31002",
        ),
        line(
            "09:00:01",
            "INFO",
            "omeroweb.pool.master",
            "Booted worker 31003",
        ),
        line(
            "09:00:02",
            "DEBUG",
            "omeroweb.gateway",
            "Scanned the repository: 24 images",
        ),
        line(
            "09:05:13",
            "INFO",
            "omeroweb.access",
            "HTTP 200 GET /omero/webgateway/render_thumbnail/12/",
        ),
        line(
            "09:05:14",
            "WARNING",
            "omeroweb.gateway",
            "Image 99 not found in the repository",
        ),
        line(
            "09:07:40",
            "ERROR",
            "omeroweb.gateway",
            "Cannot decode plane 3 of image 7",
        ),
        "Traceback (most recent call last):".into(),
        "  File \"render.rs\", line 88, in decode".into(),
        "ValueError: truncated TIFF strip".into(),
        line(
            "09:10:00",
            "INFO",
            "omeroweb.access",
            "HTTP 200 GET /omero/webgateway/imgData/7/",
        ),
        line(
            "09:12:31",
            "CRITICAL",
            "omeroweb.pool.master",
            "Worker 31011 missed its heartbeat; aborted",
        ),
        line(
            "09:12:32",
            "INFO",
            "omeroweb.pool.master",
            "Booted worker 31011",
        ),
    ]
}

/// The panel with a running pool (two samples, so rates and CPU exist), the private
/// nginx running, diagnostics warnings, a log and a checked nginx preview.
pub fn app() -> App {
    let mut app = bare_app();
    let mut served = 0;
    for second in 0..30 {
        // A varying load, so the sparkline has a shape.
        served += second % 7 + 1;
        let s = sample(second as f64, served);
        update(&mut app, Event::Sample(Box::new(s)));
    }
    update(
        &mut app,
        Event::Diagnostics(vec![
            "3 error lines in /srv/omero-web/var/log/OMEROweb.log (see the Log tab or `grep ERROR`)"
                .into(),
        ]),
    );
    let generation = app.log.generation;
    update(
        &mut app,
        Event::LogReset {
            generation,
            lines: log_lines(),
            error: None,
        },
    );
    app.nginx.check = CheckState::Done {
        text_hash: app.nginx.preview_hash,
        result: Ok(CheckReport {
            ok: true,
            nginx_lines: vec![],
            notes: vec![],
        }),
    };
    // The file on disk is the preview with an older body size.
    let old = app
        .nginx
        .file_text()
        .unwrap()
        .replace("client_max_body_size 0;", "client_max_body_size 10m;");
    let path = app.nginx.output_path.clone();
    update(
        &mut app,
        Event::NginxTargetRead {
            path,
            content: Ok(Some(old)),
        },
    );
    app.message = None;
    app
}

/// A binary upgrade halfway: both generations serve, the new one just took over; the
/// history has the start and an earlier upgrade that was refused.
pub fn changes_midway() -> super::event::ChangesSeen {
    use crate::supervisor::history::Change;
    use crate::supervisor::progress::{GenerationSeen, Progress, Step, StepState};
    let step = |name: &str, state: StepState, detail: &str| Step {
        name: name.into(),
        state,
        detail: detail.into(),
    };
    let generation = |role: &str, master: u32, port: u16, runs: &str| GenerationSeen {
        role: role.into(),
        master,
        port,
        runs: runs.into(),
    };
    let change = |at: &str, action: &str, from: u32, to: Option<u32>, outcome: &str| Change {
        at: at.into(),
        uid: 0,
        action: action.into(),
        applied: vec![],
        from_master: Some(from),
        to_master: to,
        generations: vec![],
        outcome: outcome.into(),
        rollback_available: true,
    };
    let new = "/srv/omero-web/var/generations/binaries/20240501T091500.000-77/omero-webctl";
    super::event::ChangesSeen {
        progress: Some(Progress {
            action: "upgrade".into(),
            started: "2024-05-01T09:15:00+00:00".into(),
            pid: 77,
            pid_start: None,
            steps: vec![
                step("keep the binary", StepState::Done, new),
                step("start the new master beside the live one", StepState::Done, "PID 5100"),
                step("switch nginx to it", StepState::Done, "127.0.0.1:41234"),
                step("drain the old master", StepState::Running, "PID 4100"),
                step("start it on the configured port", StepState::Pending, ""),
            ],
            generations: vec![
                generation("draining", 4100, 4080, "/usr/local/bin/omero-webctl"),
                generation("serving", 5100, 41234, new),
            ],
            involved: vec![
                generation("draining", 4100, 4080, "/usr/local/bin/omero-webctl"),
                generation("serving", 5100, 41234, new),
            ],
            outcome: None,
            // The window's figures beside the switch's steps (one record for both).
            health: Some(crate::supervisor::progress::HealthFigures {
                elapsed_s: 5,
                window_s: 5,
                probes: 19,
                errors: 0,
            }),
        }),
        running: true,
        generations: vec![
            (generation("draining", 4100, 4080, "/usr/local/bin/omero-webctl"), 3),
            (generation("serving", 5100, 41234, new), 3),
        ],
        history: vec![
            change(
                "2024-05-01T09:10:00+00:00",
                "upgrade",
                4100,
                Some(4100),
                "upgrade refused: the new binary did not come up (the master exited before it was ready (exit status: 3)); the running one (PID 4100) keeps serving, nothing was switched",
            ),
            change("2024-05-01T09:00:00+00:00", "start", 4100, Some(4100), "ok"),
        ],
        rollback_target: Some("the binary before: /srv/omero-web/var/generations/binaries/20240501T090000.000-12/omero-webctl".into()),
    }
}
