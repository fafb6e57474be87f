//! `omero-webctl fleet …`: several hosts from this control site (see `crate::fleet`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::fleet::{self, Fleet, ops::Action, ops::Restore};
use crate::fsutil::write_atomic;
use crate::nginx::{self, NginxKind};
use crate::site::Site;

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The fleet file (default: etc/fleet.toml of the site).
    #[arg(long, value_name = "FILE")]
    pub fleet: Option<PathBuf>,
    #[command(subcommand)]
    pub action: FleetAction,
}

#[derive(Debug, Subcommand)]
pub enum FleetAction {
    /// Write a commented example fleet file (refuses to overwrite one).
    Init,
    /// One table: member, transport, what serves it, state, workers, req/s, 5xx/min,
    /// config drift against the first member. Exit 0 when every member runs.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The front's nginx config (upstream of the members), printed, checked, written;
    /// or run as this site's private nginx.
    Nginx(FleetNginxArgs),
    /// Take a member out of the front and wait until it has nothing in flight.
    Drain { name: String },
    /// Put a drained member back into the front.
    Undrain { name: String },
    /// Rolling reload: drain, reload, health check, undrain, member by member.
    Reload,
    /// Rolling restart: drain, restart, health check, undrain, member by member.
    Restart,
    /// Rolling upgrade: drain, `upgrade` on the member with the release of its kind,
    /// health check, undrain; a member that is not healthy after it gets its previous
    /// generation back and the roll stops. Members whose kind got no release are skipped.
    #[command(group(clap::ArgGroup::new("release").required(true).multiple(true).args(["venv", "binary"])))]
    Upgrade {
        /// For OMERO.web members: the venv with the new omero-web, at the same path on
        /// every member.
        #[arg(long, value_name = "DIR")]
        venv: Option<String>,
        /// For embedded members: the new omero-webctl binary, at the same path on every
        /// member.
        #[arg(long, value_name = "PATH")]
        binary: Option<String>,
        /// Seconds each member probes its readiness page after its switch.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        health_window: u64,
    },
    /// Undo the last rolling upgrade (finished or stopped): every member it changed
    /// gets its previous generation back, the last changed first, one at a time.
    Rollback,
    /// Sessions in Redis on every member (or on none): the cache session engine with
    /// omero.web.caches on django-redis, a rolling reload, then each member PINGs the
    /// store; without URL, where every member keeps its sessions now and how many
    /// sessions each store holds.
    Sessions {
        /// redis://HOST:PORT/DB (default: [sessions] redis of the fleet file).
        url: Option<String>,
        /// End every gateway login of this user on every embedded member first.
        #[arg(long, value_name = "NAME", conflicts_with = "url")]
        end_user: Option<String>,
        /// Only set it; the members apply it at their next reload.
        #[arg(long)]
        no_reload: bool,
    },
    /// Every member's figures in Prometheus' text format (label member=NAME) and the
    /// fleet's own: printed, or served on a loopback address at /metrics.
    Metrics {
        /// Serve GET /metrics on this loopback address instead of printing once.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Fleet-wide config (set on every member or on none).
    Config {
        #[command(subcommand)]
        action: FleetConfigAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum FleetConfigAction {
    /// Set KEY on every member or none, then reload them one by one.
    Set {
        key: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Only set it; the members apply it at their next reload.
        #[arg(long)]
        no_reload: bool,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FleetNginxArgs {
    /// A complete nginx.conf (what the private front runs) instead of an include for
    /// the system nginx.
    #[arg(long)]
    pub development: bool,
    /// Write the config to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Check it with the real `nginx -t`; nothing is written if nginx refuses it.
    #[arg(long)]
    pub check: bool,
    #[command(subcommand)]
    pub action: Option<FrontAction>,
}

#[derive(Debug, Subcommand)]
pub enum FrontAction {
    /// Start the front (this site's private nginx, on the fleet file's port).
    Start,
    /// Regenerate the front's config and reload it gracefully.
    Reload,
    /// Stop the front.
    Stop,
}

pub fn run(site: &Site, args: FleetArgs) -> anyhow::Result<ExitCode> {
    let path = args.fleet.unwrap_or_else(|| fleet::default_path(site));
    if let FleetAction::Init = args.action {
        return init(&path);
    }
    let fleet = Fleet::open(site.clone(), &path)?;
    let mut say = |line: &str| println!("{line}");
    match args.action {
        FleetAction::Init => unreachable!("handled above"),
        FleetAction::Status { json } => status(&fleet, json),
        FleetAction::Nginx(args) => front(&fleet, args),
        FleetAction::Drain { name } => {
            fleet.drain(&name, &mut say)?;
            Ok(ExitCode::SUCCESS)
        }
        FleetAction::Undrain { name } => {
            fleet.undrain(&name, &mut say)?;
            Ok(ExitCode::SUCCESS)
        }
        FleetAction::Metrics { listen } => {
            super::metrics_cmd::print_or_serve(listen.as_deref(), &|| {
                fleet::status::metrics(&fleet.status())
            })
        }
        FleetAction::Reload => roll(&fleet, Action::Reload),
        FleetAction::Restart => roll(&fleet, Action::Restart),
        FleetAction::Upgrade {
            venv,
            binary,
            health_window,
        } => {
            fleet.roll_restoring(
                Action::Upgrade {
                    venv,
                    binary,
                    health_window,
                },
                &Restore::Generation,
                &mut say,
            )?;
            println!("Every member upgraded.");
            Ok(ExitCode::SUCCESS)
        }
        FleetAction::Rollback => {
            let undone = fleet.undo_roll(&mut say)?;
            println!(
                "Rolled back: {} (each on its previous generation).",
                undone.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        FleetAction::Sessions {
            url,
            end_user,
            no_reload,
        } => {
            if let Some(user) = end_user {
                let ended = fleet.end_user_sessions(&user, &mut say)?;
                println!("Ended {ended} session(s) of {user} in the fleet.");
            }
            sessions(&fleet, url, no_reload)
        }
        FleetAction::Config {
            action:
                FleetConfigAction::Set {
                    key,
                    value,
                    no_reload,
                },
        } => {
            let previous = fleet.config_set(&key, &value, &mut say)?;
            if no_reload {
                println!("Set on every member; they apply it at their next reload.");
                return Ok(ExitCode::SUCCESS);
            }
            fleet.roll_restoring(Action::Reload, &Restore::Values(previous), &mut say)?;
            println!("Every member done.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    if path.exists() {
        anyhow::bail!(
            "{} exists; not overwritten (edit it, or remove it first)",
            path.display()
        );
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    write_atomic(path, fleet::file::EXAMPLE.as_bytes(), None)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    println!("Wrote an example fleet file to {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn status(fleet: &Fleet, json: bool) -> anyhow::Result<ExitCode> {
    let rows = fleet.status();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", fleet::status::render_table(&rows));
    }
    let all_running = rows.iter().all(|r| r.state == "running");
    Ok(if all_running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_NOT_RUNNING)
    })
}

/// `fleet sessions [URL]`: set (and apply) Redis sessions everywhere, then show where
/// each member keeps its sessions and whether it reaches the store.
fn sessions(fleet: &Fleet, url: Option<String>, no_reload: bool) -> anyhow::Result<ExitCode> {
    let mut say = |line: &str| println!("{line}");
    if let Some(text) = &url {
        let url = crate::session_store::RedisUrl::parse(text).map_err(anyhow::Error::msg)?;
        let caches = crate::session_store::caches_value(&url);
        let previous = fleet.config_set_all(
            &[
                (
                    crate::session_store::ENGINE_KEY,
                    crate::session_store::CACHE_ENGINE,
                ),
                (crate::session_store::CACHES_KEY, &caches),
            ],
            &mut say,
        )?;
        if no_reload {
            println!("Set on every member; they apply it at their next reload.");
        } else {
            fleet.roll_restoring(Action::Reload, &Restore::Values(previous), &mut say)?;
        }
    }
    let rows = fleet.session_stores();
    print!("{}", fleet::sessions::render_table(&rows));
    // The store asked for now, else the one the fleet file names.
    let wanted = url.or_else(|| fleet.file.redis.clone());
    match fleet::sessions::verdict(&rows, wanted.as_deref()) {
        Ok(line) => {
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Err(line) => {
            println!("{line}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn roll(fleet: &Fleet, action: Action) -> anyhow::Result<ExitCode> {
    let mut say = |line: &str| println!("{line}");
    fleet.roll(action, &mut say)?;
    println!("Every member done.");
    Ok(ExitCode::SUCCESS)
}

fn front(fleet: &Fleet, args: FleetNginxArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Some(FrontAction::Start) => {
            let running = fleet.start_front()?;
            println!(
                "Front started (PID {}) on port {}",
                running.pid, fleet.file.front_port
            );
            return Ok(ExitCode::SUCCESS);
        }
        Some(FrontAction::Reload) => {
            if !fleet.reload_front()? {
                anyhow::bail!("no front runs here (fleet nginx start)");
            }
            println!("Front reloaded");
            return Ok(ExitCode::SUCCESS);
        }
        Some(FrontAction::Stop) => {
            match fleet.stop_front()? {
                Some(pid) => println!("Front stopped (PID {pid})"),
                None => println!("No front was running"),
            }
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    let kind = if args.development {
        NginxKind::NginxDevelopment
    } else {
        NginxKind::Nginx
    };
    let text = fleet.render_front(kind, None)?;
    let mut passed = true;
    if args.check {
        if kind == NginxKind::NginxDevelopment {
            let settings = crate::config::Config::load(&fleet.control)?.settings();
            nginx::instance::prepare(&fleet.control, &settings)?;
        }
        let report = nginx::check(&text, kind)?;
        passed = report.ok;
        super::nginx_cmd::print_check(&report);
    }
    let output = format!("{text}\n");
    match &args.output {
        Some(path) if passed => {
            write_atomic(path, output.as_bytes(), None)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!("Wrote the front's config to {}", path.display());
        }
        Some(path) => eprintln!("Not written to {}: nginx -t failed", path.display()),
        None => print!("{output}"),
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
