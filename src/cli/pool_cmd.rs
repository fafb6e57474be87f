//! `start`, `stop`, `restart`, `reload`, `scale`, `status`, and the hidden `master`
//! and `worker` entry points, with OMERO's wording and meaningful exit codes.

use std::io::Write;
use std::process::ExitCode;

use super::EXIT_NOT_RUNNING;
use crate::pool::client::{READY_FAILED, READY_OK};
use crate::site::{Site, SiteKind};
use crate::supervisor::{self, Scale, StartOutcome, StatusOutcome, StopOutcome, Supervisor};

fn say(prefix: &str) {
    print!("{prefix}");
    let _ = std::io::stdout().flush();
}

pub fn start(site: &Site, foreground: bool, omero_compat: bool) -> anyhow::Result<ExitCode> {
    if omero_compat && !foreground {
        return super::omero_words::start(site);
    }
    if foreground {
        if site.kind() == SiteKind::OmeroWeb {
            anyhow::bail!(
                "start --foreground runs the embedded pool; an OMERO.web site runs under Gunicorn, which `start` daemonizes (as `omero web start` does)"
            );
        }
        return Ok(run_foreground(site));
    }
    let supervisor = supervisor::for_site(site);
    say("Starting OMERO.web... ");
    match supervisor.start() {
        StartOutcome::Started {
            pid,
            detail,
            stale_pid,
        } => {
            println!("[OK]");
            println!("{detail} (master PID {pid})");
            if let Some(old) = stale_pid {
                eprintln!(
                    "WARNING: took over the stale pid file {} (PID {old} was not running)",
                    supervisor.pid_file().display()
                );
            }
            warn_about_downloads(supervisor.as_ref());
            Ok(ExitCode::SUCCESS)
        }
        StartOutcome::AlreadyRunning { pid } => {
            println!("[FAILED]");
            eprintln!(
                "OMERO.web already started (PID {pid}). Use 'omero-webctl stop' or 'omero-webctl restart' first."
            );
            Ok(ExitCode::FAILURE)
        }
        StartOutcome::Failed { reason, log_tail } => {
            println!("[FAILED]");
            eprintln!("{reason}");
            if !log_tail.is_empty() {
                eprintln!("Last lines of the log:");
                for line in log_tail {
                    eprintln!("    {line}");
                }
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The application the pool serves: the gateway. The one place the two meet; the
/// master and every worker get it from here.
pub fn served_app() -> std::sync::Arc<dyn crate::http_app::AppFactory> {
    std::sync::Arc::new(crate::gateway::app_factory::GatewayFactory)
}

/// systemd and containers: the master runs in this process and logs to stderr too.
fn run_foreground(site: &Site) -> ExitCode {
    say("Starting OMERO.web... ");
    let report: crate::pool::master::ReadyReport = Box::new(|result| match result {
        Ok(detail) => {
            println!("[OK]");
            println!("{detail} (master PID {}, foreground)", std::process::id());
        }
        Err(reason) => {
            println!("[FAILED]");
            eprintln!("{reason}");
        }
    });
    ExitCode::from(crate::pool::master::run(
        site.clone(),
        true,
        report,
        None,
        served_app(),
    ))
}

/// The detached master: report readiness on stdout (read by `start`), then let go of
/// it so nothing is written to a closed pipe later.
pub fn master(site: &Site, interim_port: Option<u16>) -> ExitCode {
    let report: crate::pool::master::ReadyReport = Box::new(|result| {
        let line = match result {
            Ok(detail) => format!("{READY_OK}{detail}\n"),
            Err(reason) => format!("{READY_FAILED}{}\n", reason.replace('\n', " ")),
        };
        let mut out = std::io::stdout();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            use std::os::fd::AsRawFd;
            // SAFETY: replaces fd 1 with /dev/null; both descriptors are valid.
            unsafe {
                libc::dup2(null.as_raw_fd(), 1);
            }
        }
    });
    let site = match interim_port {
        Some(_) => site.interim(),
        None => site.clone(),
    };
    ExitCode::from(crate::pool::master::run(
        site,
        false,
        report,
        interim_port,
        served_app(),
    ))
}

fn warn_about_downloads(supervisor: &dyn Supervisor) {
    if let Ok(StatusOutcome::Running(status)) = supervisor.status() {
        for warning in &status.warnings {
            eprintln!("WARNING: {warning}");
        }
    }
}

pub fn stop(site: &Site, quick: bool, omero_compat: bool) -> anyhow::Result<ExitCode> {
    if omero_compat {
        return super::omero_words::stop(site, quick);
    }
    if let Err(err) = crate::config::Config::load(site) {
        super::warn_config_unusable(&err);
    }
    let supervisor = supervisor::for_site(site);
    say("Stopping OMERO.web... ");
    match supervisor.stop(quick)? {
        StopOutcome::Stopped { pid } => {
            println!("[OK]");
            println!("OMERO.web workers (PID {pid}) stopped.");
        }
        StopOutcome::Killed { pid } => {
            println!("[OK]");
            eprintln!(
                "OMERO.web (PID {pid}) did not stop within the graceful timeout and was killed."
            );
        }
        StopOutcome::NotRunning => println!("[NOT STARTED]"),
        StopOutcome::Orphans { pids } => {
            println!("[OK]");
            println!(
                "Ended {} worker(s) a dead master had left (PIDs {}).",
                pids.len(),
                supervisor::pid_list(&pids)
            );
        }
        StopOutcome::Stale { pid } => {
            println!("[NOT STARTED]");
            eprintln!(
                "Removed stale {} (PID {} was not running)",
                supervisor.pid_file().display(),
                pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `[FAILED]` and why, when the config cannot be used for a restart or reload.
fn refuse_on_unusable_config(site: &Site, doing: &str, verb: &str) -> Option<ExitCode> {
    let refused = supervisor::refuse_unusable_config(site, verb)?;
    say(&format!("{doing} OMERO.web... "));
    println!("[FAILED]");
    eprintln!("{refused}");
    Some(ExitCode::FAILURE)
}

pub fn restart(site: &Site, omero_compat: bool) -> anyhow::Result<ExitCode> {
    if let Some(refused) = refuse_on_unusable_config(site, "Restarting", "Restart") {
        return Ok(refused);
    }
    if omero_compat {
        return super::omero_words::restart(site);
    }
    let supervisor = supervisor::for_site(site);
    if let Some(reply) = supervisor.restart_without_gap()? {
        say("Restarting OMERO.web... ");
        return Ok(report(&reply));
    }
    // stop waits for the master to exit, so the port is free for the new one.
    stop(site, false, false)?;
    start(site, false, false)
}

pub fn status(site: &Site, json: bool, omero_compat: bool) -> anyhow::Result<ExitCode> {
    if omero_compat && !json {
        return super::omero_words::status(site);
    }
    let supervisor = supervisor::for_site(site);
    let outcome = supervisor.status()?;
    let config = crate::config::Config::load(site);
    let pending = match (&outcome, &config) {
        (StatusOutcome::Running(status), Ok(config)) => supervisor::pending(config, status),
        _ => Vec::new(),
    };
    // Odd values in the config, by key (issue 19): every other value is in use.
    let config_values: Vec<crate::config::ValueWarning> = match &config {
        Ok(config) => config.value_warnings().into_iter().cloned().collect(),
        Err(_) => Vec::new(),
    };
    if json {
        let value = match &outcome {
            StatusOutcome::Running(status) => {
                let mut value = serde_json::to_value(status)?;
                value["pending"] = serde_json::to_value(&pending)?;
                // CPU time and RSS of the master and each worker, by PID: a panel on
                // another host (a fleet's member view) cannot read this host's /proc.
                let mut pids = vec![status.master_pid];
                pids.extend(status.workers.iter().map(|w| w.pid));
                let procs = crate::tui::sampler::ProcessFigures::default().read(&pids);
                value["procs"] = serde_json::to_value(&procs)?;
                value
            }
            StatusOutcome::NotRunning => not_running_json(supervisor.as_ref(), None),
            StatusOutcome::Stale { pid, orphans } => {
                let mut value = not_running_json(supervisor.as_ref(), Some(*pid));
                value["orphans"] = serde_json::json!(orphans);
                if !orphans.is_empty() {
                    value["state"] = "master gone".into();
                    value["warnings"] = serde_json::json!([supervisor::orphans_note(orphans)]);
                }
                value
            }
            StatusOutcome::Halted(halt) => {
                let mut value = not_running_json(supervisor.as_ref(), None);
                value["state"] = "halted".into();
                value["halt"] = serde_json::to_value(halt)?;
                value["pending"] = serde_json::to_value(&halt.pending)?;
                value
            }
        };
        let mut value = value;
        value["config_values"] = serde_json::to_value(&config_values)?;
        if let Err(err) = &config {
            value["config_problem"] = err.to_string().into();
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        if let Err(err) = &config {
            super::warn_config_unusable(err);
        }
        for w in &config_values {
            eprintln!("WARNING: {}", crate::diagnostics::value_warning_line(w));
        }
        say("OMERO.web status... ");
        match &outcome {
            StatusOutcome::Running(s) => {
                println!("[RUNNING] (PID {})", s.master_pid);
                println!("{}", supervisor::describe(s.kind, &s.versions));
                println!(
                    "{} · {} {} workers (target {}) on {} · up {}s · {} requests · {} restarts",
                    s.state,
                    s.workers.len(),
                    s.worker_class,
                    s.target_workers,
                    s.bind,
                    s.uptime_secs,
                    s.totals.requests,
                    s.restarts
                );
                if s.stuck_replaced > 0 {
                    println!(
                        "{} of the restarts replaced workers whose blocking threads stayed stuck",
                        s.stuck_replaced
                    );
                }
                for w in &s.workers {
                    println!(
                        "  worker {:>7}  {:8}  age {:>6.0}s  requests {:>8}  in flight {:>3}  restarts {}",
                        w.pid,
                        w.state,
                        w.age_secs,
                        w.requests,
                        w.in_flight
                            .map_or_else(|| "—".to_string(), |n| n.to_string()),
                        w.restarts
                    );
                    // The longest-running request, as `ps` would not tell.
                    if let Some(now) = w.activity.serving.as_ref().and_then(|v| v.first()) {
                        println!(
                            "    serving {} {} for {:.1}s",
                            now.method, now.path, now.secs
                        );
                    }
                }
                if let Some(note) = supervisor::pending_note(&pending) {
                    println!("{}", super::capitalise(&note));
                }
                for warning in &s.warnings {
                    eprintln!("WARNING: {warning}");
                }
            }
            StatusOutcome::NotRunning => println!("[NOT STARTED]"),
            StatusOutcome::Stale { pid, orphans } => {
                match pid {
                    _ if !orphans.is_empty() => println!(
                        "[MASTER GONE] {} orphaned worker(s) still serving",
                        orphans.len()
                    ),
                    Some(pid) => println!("[NOT STARTED] (stale pid file of PID {pid})"),
                    None => println!("[NOT STARTED] (unreadable pid file)"),
                }
                if !orphans.is_empty() {
                    eprintln!("WARNING: {}", supervisor::orphans_note(orphans));
                }
            }
            StatusOutcome::Halted(halt) => {
                println!("[HALTED] {}", halt.describe());
                if let Some(note) = halt.pending_note() {
                    println!("{}", super::capitalise(&note));
                }
            }
        }
    }
    Ok(match outcome {
        StatusOutcome::Running(_) => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_NOT_RUNNING),
    })
}

/// `status --json` when nothing runs: the state, and what would serve the site.
fn not_running_json(supervisor: &dyn Supervisor, stale: Option<Option<u32>>) -> serde_json::Value {
    let backend = supervisor.backend();
    let mut value = serde_json::json!({
        "state": "not running",
        "kind": backend.kind,
        "versions": backend.versions,
    });
    if let Some(pid) = stale {
        value["stale_pid"] = serde_json::json!(pid);
    }
    if let Some(problem) = backend.problem {
        value["problem"] = serde_json::json!(problem);
    }
    value
}

pub fn reload(site: &Site) -> anyhow::Result<ExitCode> {
    if let Some(refused) = refuse_on_unusable_config(site, "Reloading", "Reload") {
        return Ok(refused);
    }
    let supervisor = supervisor::for_site(site);
    say("Reloading OMERO.web... ");
    if !matches!(supervisor.status()?, StatusOutcome::Running(_)) {
        println!("[NOT STARTED]");
        return Ok(ExitCode::from(EXIT_NOT_RUNNING));
    }
    let reply = supervisor.reload()?;
    Ok(report(&reply))
}

/// `rollback`: the previous generation's config, switched in with no gap.
pub fn rollback(site: &Site) -> anyhow::Result<ExitCode> {
    say("Rolling back OMERO.web... ");
    Ok(report(&supervisor::for_site(site).rollback()?))
}

/// Step lines of a long change, as they happen.
fn progress(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// `upgrade --venv DIR | --omero-web VERSION`: another omero-web release, switched in
/// with no gap. A VERSION is built first (scripts/omeroweb-venv, embedded), then the
/// same path as `--venv` runs.
pub fn upgrade(
    site: &Site,
    venv: Option<&std::path::Path>,
    omero_web: Option<&str>,
    sessions: Option<supervisor::gunicorn::sessions::SessionAction>,
    prepare: bool,
    health_secs: u64,
) -> anyhow::Result<ExitCode> {
    if site.kind() != SiteKind::OmeroWeb {
        anyhow::bail!(
            "upgrade --venv/--omero-web: only an OMERO.web site runs from a venv; the embedded pool is upgraded with --binary"
        );
    }
    let gunicorn = supervisor::gunicorn::Gunicorn::new(site.clone());
    println!("Upgrading OMERO.web:");
    let built;
    let venv = match (venv, omero_web) {
        (Some(venv), _) => venv,
        (None, Some(version)) => {
            if let Err(why) = gunicorn.can_switch_generations() {
                println!("[FAILED]");
                eprintln!("upgrade refused: {why}; nothing was built or changed");
                return Ok(ExitCode::FAILURE);
            }
            progress(&format!(
                "build: omero-web {version} into {} (scripts/omeroweb-venv)",
                supervisor::gunicorn::venvs::release_dir(site, version).display()
            ));
            built = match supervisor::gunicorn::venvs::build_release(site, version, &progress) {
                Ok(dir) => dir,
                Err(e) => {
                    println!("[FAILED]");
                    eprintln!(
                        "upgrade refused: building omero-web {version} failed: {e:#}; nothing changed, the running generation keeps serving"
                    );
                    return Ok(ExitCode::FAILURE);
                }
            };
            if prepare {
                println!("[OK]");
                println!(
                    "Prepared omero-web {version} in {}; nothing switched. `upgrade --omero-web {version}` switches to it without building it again.",
                    built.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            &built
        }
        (None, None) => anyhow::bail!("upgrade needs --venv DIR or --omero-web VERSION"),
    };
    let reply = gunicorn.upgrade_venv(
        venv,
        std::time::Duration::from_secs(health_secs),
        sessions,
        &progress,
    )?;
    Ok(report(&reply))
}

/// `app add|remove|list`.
pub fn app(site: &Site, action: super::AppAction) -> anyhow::Result<ExitCode> {
    use supervisor::gunicorn::apps;
    if site.kind() != SiteKind::OmeroWeb {
        anyhow::bail!("app: OMERO.web apps run on an OMERO.web site; the embedded pool has none");
    }
    let gunicorn = supervisor::gunicorn::Gunicorn::new(site.clone());
    let (app, adding, prepare, find_links, url, health) = match action {
        super::AppAction::List { json } => {
            let listed = apps::list(&crate::config::Config::load(site)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else if listed.is_empty() {
                println!(
                    "No OMERO.web apps installed or configured (app add omero-iviewer adds one)."
                );
            } else {
                for l in &listed {
                    println!(
                        "{:20} {:10} {}",
                        l.name,
                        l.version.as_deref().unwrap_or("-"),
                        match (l.version.is_some(), l.configured) {
                            (true, true) => "configured (omero.web.apps)".to_string(),
                            (true, false) => "installed, not in omero.web.apps".to_string(),
                            _ => format!("in omero.web.apps, but {} is not installed", l.module),
                        }
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        super::AppAction::Add {
            app,
            find_links,
            url,
            prepare,
            health_window,
        } => (app, true, prepare, find_links, url, health_window),
        super::AppAction::Remove {
            app,
            prepare,
            health_window,
        } => (app, false, prepare, vec![], None, health_window),
    };
    let app = apps::AppRequest::parse(&app)
        .and_then(|a| a.with_url(url.as_deref()))
        .map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "{} {}:",
        match (adding, prepare) {
            (true, false) => "Adding",
            (false, false) => "Removing",
            (true, true) => "Preparing a venv to add",
            (false, true) => "Preparing a venv to remove",
        },
        app.dist
    );
    let reply = gunicorn.change_app(
        &app,
        adding,
        prepare,
        &find_links,
        std::time::Duration::from_secs(health),
        &progress,
    )?;
    Ok(report(&reply))
}

/// `upgrade --binary PATH`: the embedded pool switched to another binary, no gap.
pub fn upgrade_binary(
    site: &Site,
    binary: &std::path::Path,
    health_window: u64,
) -> anyhow::Result<ExitCode> {
    if site.kind() != SiteKind::Embedded {
        anyhow::bail!(
            "upgrade --binary: only the embedded pool runs omero-webctl's own workers; an OMERO.web site is upgraded with --venv"
        );
    }
    say("Upgrading OMERO.web... ");
    Ok(report(&supervisor::embedded_generations::upgrade(
        site,
        binary,
        std::time::Duration::from_secs(health_window),
    )?))
}

/// `history`: every recorded change, oldest first.
pub fn history(site: &Site, json: bool) -> anyhow::Result<ExitCode> {
    let changes = supervisor::for_site(site).history();
    if json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(ExitCode::SUCCESS);
    }
    if changes.is_empty() {
        println!("No changes recorded yet (start, reload, restart and rollback record them).");
    }
    let pid = |p: Option<u32>| p.map_or_else(|| "-".to_string(), |p| p.to_string());
    for c in &changes {
        println!(
            "{}  uid {}  {:8}  master {} → {}  {}{}",
            c.at,
            c.uid,
            c.action,
            pid(c.from_master),
            pid(c.to_master),
            c.outcome,
            if c.rollback_available {
                "  (rollback available)"
            } else {
                ""
            }
        );
        if let Some(generations) = supervisor::history::generations_line(c) {
            println!("    generations: {generations}");
        }
        for applied in &c.applied {
            println!("    {applied}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `scale N`, `scale +N`, `scale -N`; `--persist` also saves the count to
/// `omero.web.wsgi_workers`, otherwise the next reload or restart goes back to it.
pub fn scale(site: &Site, count: &str, persist: bool) -> anyhow::Result<ExitCode> {
    let change = match count.as_bytes().first() {
        Some(b'+') | Some(b'-') => Scale::By(count.parse::<i32>().map_err(|_| bad_count(count))?),
        _ => Scale::To(count.parse::<u32>().map_err(|_| bad_count(count))?),
    };
    let supervisor = supervisor::for_site(site);
    say("Scaling OMERO.web... ");
    let StatusOutcome::Running(status) = supervisor.status()? else {
        println!("[NOT STARTED]");
        return Ok(ExitCode::from(EXIT_NOT_RUNNING));
    };
    let reply = supervisor.scale(change)?;
    let code = report(&reply);
    if reply.ok {
        let target = change.target(status.target_workers);
        match supervisor::after_scale(site, target, persist) {
            Ok(Some(note)) => println!("{note}"),
            Ok(None) => {}
            Err(e) => eprintln!("WARNING: {e:#}"),
        }
    }
    Ok(code)
}

pub fn kill_worker(site: &Site, pid: u32) -> anyhow::Result<ExitCode> {
    let supervisor = supervisor::for_site(site);
    say(&format!("Killing worker {pid}... "));
    if !matches!(supervisor.status()?, StatusOutcome::Running(_)) {
        println!("[NOT STARTED]");
        return Ok(ExitCode::from(EXIT_NOT_RUNNING));
    }
    Ok(report(&supervisor.kill_worker(pid)?))
}

pub fn reopen_logs(site: &Site) -> anyhow::Result<ExitCode> {
    let supervisor = supervisor::for_site(site);
    say("Reopening logs... ");
    if !matches!(supervisor.status()?, StatusOutcome::Running(_)) {
        println!("[NOT STARTED]");
        return Ok(ExitCode::from(EXIT_NOT_RUNNING));
    }
    Ok(report(&supervisor.reopen_logs()?))
}

/// `[OK]` and the master's message on stdout, or `[FAILED]` and the reason on stderr.
fn report(reply: &supervisor::ControlResponse) -> ExitCode {
    if reply.ok {
        println!("[OK]");
        println!("{}", reply.message);
        ExitCode::SUCCESS
    } else {
        println!("[FAILED]");
        eprintln!("{}", reply.message);
        ExitCode::FAILURE
    }
}

fn bad_count(count: &str) -> anyhow::Error {
    anyhow::anyhow!("scale: {count:?} is not a worker count; allowed: N, +N or -N (e.g. 4, +1, -2)")
}
