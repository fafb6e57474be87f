//! `omero-webctl nginx ...`: print, check or write one of the three configs, or run
//! the private nginx (`start | reload | stop | status`), with OMERO's wording.
use std::io::Write;
use std::process::ExitCode;

use super::{EXIT_NOT_RUNNING, NginxAction, NginxArgs, NginxKindArg};
use crate::config::{Config, Settings};
use crate::fsutil::write_atomic;
use crate::nginx::{self, NginxError, NginxKind, RenderOptions, Running, Status, instance};
use crate::privilege::{self, Stance};
use crate::site::Site;

pub fn run(site: &Site, stance: &Stance, args: NginxArgs) -> anyhow::Result<ExitCode> {
    // Stopping and asking go by the pid file and the master's identity alone: a config
    // broken while nginx runs must never keep a sysadmin from either.
    match args.action {
        Some(NginxAction::Stop) => return stop(site),
        Some(NginxAction::Status) => return status(site),
        _ => {}
    }
    let config = match stance {
        // Root writes FILE; the site's config file is read by its owner, and root only
        // parses and validates the text it gets back (never opening the owner's files).
        Stance::Split(owner) => {
            let path = site.config_file();
            let bytes = privilege::as_owner(owner, || match std::fs::read(&path) {
                Ok(bytes) => Ok(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
            })?;
            let text = String::from_utf8(bytes.clone())
                .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))?;
            let original = (!bytes.is_empty()).then_some(bytes);
            Config::from_text(site, path, text, original)?
        }
        _ => match Config::load(site) {
            Ok(config) => config,
            // The running nginx is left as it is; say so rather than a bare error.
            Err(err) if matches!(args.action, Some(NginxAction::Reload)) => {
                progress("Reloading nginx... ");
                println!("[FAILED]");
                eprintln!("nginx reload refused: {err}; the running nginx keeps its config");
                return Ok(ExitCode::FAILURE);
            }
            Err(err) => return Err(err.into()),
        },
    };
    let settings = config.settings();
    match args.action {
        Some(action) => run_action(site, &settings, action),
        None => generate(site, stance, &settings, args),
    }
}

fn kind_of(arg: NginxKindArg) -> NginxKind {
    match arg {
        NginxKindArg::Nginx => NginxKind::Nginx,
        NginxKindArg::NginxLocation => NginxKind::NginxLocation,
        NginxKindArg::NginxDevelopment => NginxKind::NginxDevelopment,
    }
}

/// Renders the config; prints it (with OMERO's extra trailing newline) or writes it
/// atomically; with `--check` runs `nginx -t` first and writes nothing nginx refuses.
fn generate(
    site: &Site,
    stance: &Stance,
    settings: &Settings,
    args: NginxArgs,
) -> anyhow::Result<ExitCode> {
    let kind = kind_of(args.kind);
    let options = RenderOptions {
        http_port: args.http,
        server_name: args.servername,
        max_body_size: args.max_body_size,
        worker_user: match kind {
            NginxKind::NginxDevelopment => instance::worker_user(site),
            _ => None,
        },
        ..RenderOptions::default()
    };
    let text = nginx::render(settings, kind, &options)?;
    let output = format!("{text}\n");

    let mut passed = true;
    if args.check {
        if kind == NginxKind::NginxDevelopment {
            // That config names files under var/nginx/; nginx -t needs them to exist.
            // Root never makes them in a site another user owns: that user's process does.
            match stance {
                Stance::Split(owner) => {
                    privilege::as_owner(owner, || {
                        Ok(instance::prepare(site, settings).map(|()| Vec::new())?)
                    })?;
                }
                _ => instance::prepare(site, settings)?,
            }
        }
        let report = nginx::check(&text, kind)?;
        passed = report.ok;
        print_check(&report);
    }

    match &args.output {
        Some(path) if passed => {
            write_atomic(path, output.as_bytes(), None)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!("Wrote the {kind} config to {}", path.display());
        }
        Some(path) => eprintln!("Not written to {}: nginx -t failed", path.display()),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(output.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) fn print_check(report: &nginx::CheckReport) {
    for note in &report.notes {
        eprintln!("{note}");
    }
    if report.ok {
        for line in &report.nginx_lines {
            eprintln!("{line}");
        }
        eprintln!("nginx -t: ok");
    } else {
        eprintln!("nginx -t: failed");
        for line in &report.nginx_lines {
            eprintln!("{line}");
        }
    }
}

fn run_action(site: &Site, settings: &Settings, action: NginxAction) -> anyhow::Result<ExitCode> {
    match action {
        NginxAction::Start { http } => {
            progress("Starting nginx... ");
            match instance::start(site, settings, http) {
                Ok(running) => {
                    println!("[OK] {}", url(Some(settings), running));
                    Ok(ExitCode::SUCCESS)
                }
                Err(err) => failed(err),
            }
        }
        NginxAction::Reload => {
            progress("Reloading nginx... ");
            match instance::reload(site, settings) {
                Ok(running) => {
                    println!("[OK] {}", url(Some(settings), running));
                    Ok(ExitCode::SUCCESS)
                }
                Err(NginxError::NotRunning) => {
                    println!("[NOT STARTED]");
                    eprintln!("{}", NginxError::NotRunning);
                    Ok(ExitCode::FAILURE)
                }
                Err(err) => failed(err),
            }
        }
        NginxAction::Stop | NginxAction::Status => {
            unreachable!("stop and status run before the config is read")
        }
    }
}

fn stop(site: &Site) -> anyhow::Result<ExitCode> {
    if let Err(err) = Config::load(site) {
        super::warn_config_unusable(&err);
    }
    progress("Stopping nginx... ");
    match instance::stop(site) {
        Ok(Some(_)) => {
            println!("[OK]");
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => {
            println!("[NOT STARTED]");
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => failed(err),
    }
}

/// The URL's prefix comes from the config; a broken one costs only the prefix.
fn status(site: &Site) -> anyhow::Result<ExitCode> {
    let settings = match Config::load(site) {
        Ok(config) => Some(config.settings()),
        Err(err) => {
            super::warn_config_unusable(&err);
            None
        }
    };
    progress("nginx status... ");
    match instance::status(site)? {
        Status::Running(running) => {
            println!(
                "[RUNNING] (PID {}) {}",
                running.pid,
                url(settings.as_ref(), running)
            );
            Ok(ExitCode::SUCCESS)
        }
        Status::NotRunning => {
            println!("[NOT STARTED]");
            Ok(ExitCode::from(EXIT_NOT_RUNNING))
        }
    }
}

/// OMERO's style: the action on stdout without a newline, then the status word.
fn progress(message: &str) {
    print!("{message}");
    let _ = std::io::stdout().flush();
}

fn failed(err: NginxError) -> anyhow::Result<ExitCode> {
    println!("[FAILED]");
    eprintln!("{err}");
    for line in err.nginx_lines() {
        eprintln!("  {line}");
    }
    Ok(ExitCode::FAILURE)
}

/// Where the private nginx serves the site (without the prefix when the config that
/// names it cannot be read).
fn url(settings: Option<&Settings>, running: Running) -> String {
    let port = running.port.unwrap_or(instance::DEFAULT_PORT);
    let prefix = settings.and_then(|s| s.prefix.as_deref()).unwrap_or("");
    format!("http://127.0.0.1:{port}{prefix}/")
}
