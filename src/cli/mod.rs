//! The command line: clap definitions and dispatch. Each subcommand is a thin layer
//! over the library (config store, nginx renderer, ...) that prints results with
//! OMERO's wording and maps errors to exit codes.

mod access_cmd;
mod config_cmd;
mod demo_cmd;
mod fleet_cmd;
pub mod generate;
mod metrics_cmd;
mod nginx_cmd;
mod omero_words;
mod pool_cmd;
mod sessions_cmd;
mod systemd_cmd;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::site::{Site, SiteKind, SiteOrigin, resolve_site};

#[derive(Debug, Parser)]
#[command(
    name = "omero-webctl",
    version,
    about = "OMERO.web's deployment (config, nginx, worker pool, log) behind one control panel",
    long_about = None,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    /// Site directory (default: $OMERODIR, else ./OMERO.web).
    #[arg(long, global = true, value_name = "DIR")]
    pub omerodir: Option<PathBuf>,

    /// What serves the site (default: omeroweb when etc/grid/config.xml exists, else
    /// embedded).
    #[arg(long, global = true, value_enum, value_name = "KIND")]
    pub backend: Option<BackendArg>,

    /// Print as OMERO's own CLI does (`omero web start|stop|restart|status`, `omero
    /// config get`): its words, output streams and exit codes, for scripts written
    /// against `omero web`. Without it, omero-webctl's own (more precise) output.
    #[arg(long, global = true, env = "OMERO_WEBCTL_OMERO_COMPAT")]
    pub omero_compat: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The end of `--help`, and sections of the man page (`generate::man_pages` turns each
/// block into one): what no flag says. Blocks are a "Heading:" line, then entries
/// indented by two spaces with the term and its meaning two or more spaces apart.
pub const AFTER_LONG_HELP: &str = "\
Environment:
  OMERODIR        the site directory (else ./OMERO.web); --omerodir wins
  OMERO_WEBCTL_OMERO_COMPAT  true: OMERO's CLI output, as --omero-compat
  NOTIFY_SOCKET   set by systemd: `start --foreground` reports readiness, reloads and stops on it
  WATCHDOG_USEC   set by systemd's WatchdogSec: the master pings at half that interval

Files (under the site directory):
  etc/omero-web.toml     properties of an embedded site
  etc/grid/config.xml    properties of an OMERO.web site (OMERO's own file)
  var/django.pid         the master's PID
  var/omeroweb.sock      the pool's control socket
  var/log/OMEROweb.log   the log

Exit status:
  0   success
  1   failure
  2   wrong usage
  3   not running (status commands)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// omero-webctl's own pool and image gateway (properties in etc/omero-web.toml).
    Embedded,
    /// The Python OMERO.web under Gunicorn (properties in OMERO's etc/grid/config.xml).
    Omeroweb,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The terminal control panel (also what runs without a command).
    Tui,
    /// Read and change the omero.web.* properties.
    Config(ConfigArgs),
    /// Generate, check and write the nginx config; run a private nginx.
    Nginx(NginxArgs),
    /// Start the worker pool; [OK] only once every worker serves.
    Start {
        /// Run the master in this terminal, logging to stderr too (systemd, containers).
        #[arg(long)]
        foreground: bool,
    },
    /// Stop the pool gracefully and wait until it has exited.
    Stop {
        /// Quick stop: do not wait for in-flight requests.
        #[arg(long)]
        quick: bool,
    },
    /// Stop (and wait), then start; an OMERO.web site behind the private nginx instead
    /// gets a new Gunicorn generation switched in with no gap.
    Restart,
    /// Re-read the config and replace the workers one by one; keeps the old ones if
    /// the new ones cannot boot.
    Reload,
    /// Return to the config the previous generation ran with, switching generations
    /// with no gap (OMERO.web behind the private nginx).
    Rollback,
    /// Switch an OMERO.web site to the omero-web release in another venv with no gap:
    /// preflight import, collectstatic into a directory of its own, new generation,
    /// health window; rolls back by itself if the window sees a 5xx. An embedded site
    /// switches to another omero-webctl binary (--binary) the same way.
    #[command(group(clap::ArgGroup::new("release").required(true).args(["venv", "omero_web", "binary"])))]
    Upgrade {
        /// An existing venv with omero-web and Gunicorn.
        #[arg(long, value_name = "DIR")]
        venv: Option<PathBuf>,
        /// An omero-web release from PyPI, built with scripts/omeroweb-venv into the
        /// site's var/venvs/omero-web-VERSION first.
        #[arg(long, value_name = "VERSION")]
        omero_web: Option<String>,
        /// What to do with the stored sessions when the preflight advises against
        /// keeping them (another Django major): keep, convert (the new Django re-encodes
        /// each session; not for the cache engine) or clear.
        #[arg(long, value_name = "keep|convert|clear")]
        sessions: Option<crate::supervisor::gunicorn::sessions::SessionAction>,
        /// The embedded kind: another omero-webctl binary, switched in with no gap
        /// (a copy is kept under var/generations/binaries/ for rollback).
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// With --omero-web: only build the release into var/venvs/ now; a later
        /// `upgrade --omero-web VERSION` switches to it without building it again.
        #[arg(long)]
        prepare: bool,
        /// Seconds the readiness page is probed through nginx after the switch.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        health_window: u64,
    },
    /// OMERO.web apps (omero-iviewer, omero-figure, ...): add or remove one in a new
    /// venv generation switched in with no gap, or list them.
    App {
        #[command(subcommand)]
        action: AppAction,
    },
    /// List the changes of the running site: when, who, what, generations, outcome.
    History {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Set the number of workers: N, +N or -N.
    #[command(allow_negative_numbers = true)]
    Scale {
        #[arg(value_name = "N|+N|-N")]
        count: String,
        /// Also save the new count to omero.web.wsgi_workers (else the next reload or
        /// restart returns to the saved count).
        #[arg(long)]
        persist: bool,
    },
    /// Stop one worker (the pool replaces it).
    KillWorker {
        #[arg(value_name = "PID")]
        pid: u32,
    },
    /// Reopen the log files (after logrotate moved them), as USR1 does.
    ReopenLogs,
    /// Is the pool running? Exit 0 running, 3 not running, 1 error.
    Status {
        /// Machine-readable status with per-worker statistics.
        #[arg(long)]
        json: bool,
    },
    /// Version, paths, pool and nginx state, log size and error counts, config problems.
    Diagnostics {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Write synthetic multi-channel 16-bit OME-TIFF images into the repository.
    Demo {
        /// How many images.
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=1000))]
        images: u16,
        /// Width and height in pixels.
        #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(16..=8192))]
        size: u32,
        /// Channels per image.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=8))]
        channels: u32,
        /// Z planes per image.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        z: u32,
    },
    /// The pool's figures in Prometheus' text format: printed, or served on a
    /// loopback address at /metrics.
    Metrics {
        /// Serve GET /metrics on this loopback address (e.g. 127.0.0.1:9180) instead
        /// of printing once.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Several hosts from this site: status, the front nginx, drains, rolling
    /// reload/restart and config (members and front in etc/fleet.toml).
    Fleet(fleet_cmd::FleetArgs),
    /// systemd units for this site (the pool and its private nginx): printed, or
    /// written into DIR.
    Systemd(SystemdArgs),
    /// Local users of the embedded gateway's access control (etc/access.json): add,
    /// passwd, del, list. The first user or group turns access control on.
    User(access_cmd::UserArgs),
    /// Groups of local users; a group's data is the repository's top-level directory
    /// of its name (`public` is the public user's).
    Group(access_cmd::GroupArgs),
    /// Login sessions of the embedded gateway (files under var/sessions/, or the
    /// Redis omero.web.session_engine/omero.web.caches name): list, kill.
    Sessions(sessions_cmd::SessionsArgs),
    /// Print the shell completion script (property names included).
    Completions {
        #[arg(value_enum)]
        shell: generate::Shell,
    },
    /// Print the manual page (roff), or write one page per command into DIR.
    Man {
        /// Write omero-webctl.1 and a page per command into DIR instead of printing.
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
    /// Put this binary, the shell completions, the man pages and the systemd unit
    /// template under PREFIX.
    Install {
        /// Where to install: PREFIX/bin, PREFIX/share/..., PREFIX/lib/systemd/system.
        #[arg(long, value_name = "PREFIX", default_value = "/usr/local")]
        prefix: PathBuf,
    },
    /// The pool's master process (started by `start`).
    #[command(hide = true)]
    Master {
        /// An interim master beside the live one (a gapless switch): this port instead
        /// of the configured one, its pid file and control socket apart.
        #[arg(long, value_name = "PORT")]
        interim_port: Option<u16>,
    },
    /// A worker process (started by the master).
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print one property's value; several as key=value lines; no key: every set
    /// property as key=value (secrets masked, as `omero config get` masks them).
    /// With --omero-compat, exactly `omero config get`: only what the file sets,
    /// sorted, nothing (and exit 0) for unset or unknown keys.
    Get {
        #[arg(value_parser = property_key(), hide_possible_values = true)]
        keys: Vec<String>,
        /// Show the values of secrets (keys, passwords) in the key=value listing.
        #[arg(long)]
        show_password: bool,
    },
    /// Set a property (validated before anything is written).
    Set {
        #[arg(value_parser = property_key(), hide_possible_values = true)]
        key: String,
        /// The value; may start with '-' (e.g. wsgi_args flags).
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Store a key the registry does not know, unvalidated.
        #[arg(long)]
        force: bool,
    },
    /// Remove a property so its default applies.
    Unset {
        #[arg(value_parser = property_key(), hide_possible_values = true)]
        key: String,
    },
    /// Table of properties: key, default or set, current value (set ones first).
    List {
        /// Include internal and deprecated properties.
        #[arg(long)]
        all: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Edit the config file in $EDITOR; applied only if valid.
    Edit,
    /// Import an OMERO etc/grid/config.xml or key=value lines.
    Import {
        file: PathBuf,
        /// Import unknown omero.web.* keys too, unvalidated.
        #[arg(long)]
        force: bool,
    },
    /// Print every set property as key=value lines (for `omero config load`); secrets
    /// are masked unless --show-password.
    Export {
        /// Include the values of secrets (keys, passwords).
        #[arg(long)]
        show_password: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NginxKindArg {
    /// A server block for the system nginx (conf.d include).
    Nginx,
    /// Location blocks only, to include in your own server block.
    NginxLocation,
    /// A complete nginx.conf that a non-root user can run (the private instance).
    NginxDevelopment,
}

#[derive(Debug, Subcommand)]
pub enum AppAction {
    /// Install NAME[==VERSION] from PyPI into a new venv (a copy of the live one), set
    /// omero.web.apps and its documented settings, check it, switch.
    Add {
        #[arg(value_name = "NAME[==VERSION]")]
        app: String,
        /// Also look for the app's wheel in this directory (pip --find-links).
        #[arg(long, value_name = "DIR")]
        find_links: Vec<PathBuf>,
        /// The app's URL, requested on the new generation before the switch (the
        /// known apps' URLs are in omero-webctl's table; another app is only imported
        /// without it).
        #[arg(long, value_name = "PATH")]
        url: Option<String>,
        /// Only build the new venv now (pip, outside any switch); a later `app add
        /// NAME` switches to it without building it again.
        #[arg(long)]
        prepare: bool,
        /// Seconds the readiness page is probed through nginx after the switch.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        health_window: u64,
    },
    /// The reverse: a new venv without the app, its settings taken out, switched in.
    Remove {
        #[arg(value_name = "NAME")]
        app: String,
        /// Only build the new venv now; a later `app remove NAME` switches to it.
        #[arg(long)]
        prepare: bool,
        /// Seconds the readiness page is probed through nginx after the switch.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        health_window: u64,
    },
    /// Installed apps with their versions, and whether omero.web.apps names them.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct NginxArgs {
    /// Which config to generate.
    #[arg(value_enum, default_value = "nginx")]
    pub kind: NginxKindArg,
    /// Port nginx listens on (default 80; 8080 for nginx-development).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub http: Option<u16>,
    /// server_name: host names, wildcards, _ or $hostname (default $hostname).
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,
    /// client_max_body_size, e.g. 0 (unlimited), 512k, 2m.
    #[arg(long, value_name = "SIZE")]
    pub max_body_size: Option<String>,
    /// Write the config to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Check the result with the real `nginx -t`.
    #[arg(long)]
    pub check: bool,
    #[command(subcommand)]
    pub action: Option<NginxAction>,
}

#[derive(Debug, Subcommand)]
pub enum NginxAction {
    /// Start the private nginx (config and files under var/nginx/).
    Start {
        /// Port to listen on (default 8080).
        #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
        http: Option<u16>,
    },
    /// Regenerate the private nginx's config and reload it.
    Reload,
    /// Stop the private nginx.
    Stop,
    /// Is the private nginx running? (exit 0 running, 3 not running)
    Status,
}

/// Accepts any key (unknown ones get "did you mean" from the store, and `set --force`
/// stores them) but offers the registry's keys to the shell completions.
fn property_key() -> generate::PropertyKeyParser {
    generate::PropertyKeyParser
}

#[derive(Debug, Args)]
pub struct SystemdArgs {
    /// Write the unit files into DIR (atomically) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The user the services run as (default: the owner of the site directory).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The units' name: NAME.service and NAME-nginx.service.
    #[arg(long, value_name = "NAME", default_value = "omero-web")]
    pub name: String,
    /// The instantiable template (NAME@.service, the site given as the instance,
    /// e.g. omero-web@srv-OMERO.web.service) rather than units for this site.
    #[arg(long)]
    pub template: bool,
    /// The program the units run (default: this one), e.g. /usr/bin/omero-webctl when
    /// packaging.
    #[arg(long, value_name = "PATH")]
    pub exe: Option<PathBuf>,
}

/// Exit code for "not running" (LSB init-script convention), used by status commands.
pub const EXIT_NOT_RUNNING: u8 = 3;

/// The exit status a shell reports for a command killed by SIGPIPE (128 + 13).
pub const EXIT_CLOSED_PIPE: u8 = 141;

pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(site_dir) = worker_command_line(&args) {
        return exit_code(run_worker(site_dir));
    }
    let cli = Cli::parse_from(args);
    if !matches!(
        cli.command,
        None | Some(Command::Tui | Command::Master { .. } | Command::Worker)
    ) {
        quiet_when_stdout_is_closed();
    }
    exit_code(run(cli))
}

/// The site directory if `args` are exactly what the master starts a worker with
/// (`omero-webctl --omerodir DIR worker`, `pool::master::workers`). Such a worker is
/// dispatched before clap builds the whole command tree (every command's arguments and
/// help): it then touches fewer of the executable's pages, which every worker counts
/// in its RSS (docs/performance.md). Any other command line, `worker` with anything
/// else on it included, goes through clap as before, with its errors.
fn worker_command_line(args: &[OsString]) -> Option<PathBuf> {
    match args {
        [_, flag, dir, command]
            if flag == "--omerodir"
                && command == "worker"
                && !dir.is_empty()
                && !dir.as_encoded_bytes().starts_with(b"-") =>
        {
            Some(PathBuf::from(dir))
        }
        _ => None,
    }
}

/// `omero-webctl-worker`'s whole command line: the worker its master starts
/// (`--omerodir DIR worker`, as for this program), or the build check the master makes
/// before it uses the program (`--build-id`). Nothing else: it is not a command for
/// people, and saying so costs no code from the rest of the CLI.
pub fn worker_program_main() -> ExitCode {
    use crate::pool::worker_program::{BUILD_ID, BUILD_ID_ARG, NAME};
    let args: Vec<OsString> = std::env::args_os().collect();
    if let [_, arg] = &args[..]
        && arg == BUILD_ID_ARG
    {
        println!("{BUILD_ID}");
        return ExitCode::SUCCESS;
    }
    match worker_command_line(&args) {
        Some(site_dir) => {
            // Started through /proc/self/fd/N, the process would be named "N" in ps
            // and top; it takes its program's name (cut to the kernel's 15 bytes).
            let _ = nix::sys::prctl::set_name(c"omero-webctl-worker");
            exit_code(run_worker(site_dir))
        }
        None => {
            eprintln!(
                "{NAME} runs the workers of omero-webctl's pool; their master starts it. Use omero-webctl."
            );
            ExitCode::from(2)
        }
    }
}

/// A worker on the site in `site_dir`: what `run` does for `--omerodir DIR worker`.
fn run_worker(site_dir: PathBuf) -> anyhow::Result<ExitCode> {
    let (site, origin) = resolve_site(Some(&site_dir), None, None);
    enter_site(&site, origin, crate::privilege::Keep::default())?;
    Ok(worker())
}

/// A worker of the pool: its spec (the app's config, the worker class) comes from the
/// master in the environment, not from the site's files.
fn worker() -> ExitCode {
    crate::pool::worker::run(pool_cmd::served_app())
}

/// The process's exit status for what a command returned; its error on stderr.
fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(_) if stdout_reader_gone() => ExitCode::from(EXIT_CLOSED_PIPE),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `omero-webctl … | head`: once the reader has closed the pipe, end quietly as Unix
/// tools do (they die of SIGPIPE; the shell sees 141) instead of panicking in
/// `println!` or printing "Broken pipe". SIGPIPE itself stays ignored (std's
/// default): a control socket or an HTTP probe whose peer went away must be an error
/// we report, not a silent death.
fn quiet_when_stdout_is_closed() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && stdout_reader_gone() {
            std::process::exit(EXIT_CLOSED_PIPE.into());
        }
        previous(info)
    }));
}

/// Whether standard output is a pipe nobody reads any more: its write end then polls
/// as an error (POLLERR).
fn stdout_reader_gone() -> bool {
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let mut fds = [nix::poll::PollFd::new(
        stdout.as_fd(),
        nix::poll::PollFlags::POLLOUT,
    )];
    matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLERR))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // These need no site: run them before one is resolved (and perhaps created).
    match &cli.command {
        Some(Command::Completions { shell }) => {
            std::io::stdout().write_all(&generate::completion_script(*shell))?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Man { output }) => return generate::man_command(output.as_deref()),
        Some(Command::Install { prefix }) => return generate::install_command(prefix),
        Some(Command::Systemd(args)) if args.template => return systemd_cmd::run(None, args),
        _ => {}
    }
    let env = std::env::var_os("OMERODIR").map(PathBuf::from);
    let kind = cli.backend.map(|b| match b {
        BackendArg::Embedded => SiteKind::Embedded,
        BackendArg::Omeroweb => SiteKind::OmeroWeb,
    });
    let (site, origin) = resolve_site(cli.omerodir.as_deref(), env.as_deref(), kind);
    let stance = enter_site(&site, origin, keep_for(&cli.command))?;
    match cli.command {
        Some(Command::Config(args)) => config_cmd::run(&site, args.action, cli.omero_compat),
        Some(Command::Nginx(args)) => nginx_cmd::run(&site, &stance, args),
        Some(Command::Start { foreground }) => pool_cmd::start(&site, foreground, cli.omero_compat),
        Some(Command::Stop { quick }) => pool_cmd::stop(&site, quick, cli.omero_compat),
        Some(Command::Restart) => pool_cmd::restart(&site, cli.omero_compat),
        Some(Command::Reload) => pool_cmd::reload(&site),
        Some(Command::Rollback) => pool_cmd::rollback(&site),
        Some(Command::Upgrade {
            prepare: true,
            omero_web: None,
            ..
        }) => anyhow::bail!(
            "upgrade --prepare builds a release ahead of its switch: it goes with --omero-web VERSION (a --venv DIR or a --binary PATH is already built)"
        ),
        Some(Command::Upgrade {
            binary: Some(binary),
            health_window,
            ..
        }) => pool_cmd::upgrade_binary(&site, &binary, health_window),
        Some(Command::Upgrade {
            venv,
            omero_web,
            sessions,
            prepare,
            health_window,
            ..
        }) => pool_cmd::upgrade(
            &site,
            venv.as_deref(),
            omero_web.as_deref(),
            sessions,
            prepare,
            health_window,
        ),
        Some(Command::App { action }) => pool_cmd::app(&site, action),
        Some(Command::History { json }) => pool_cmd::history(&site, json),
        Some(Command::Scale { count, persist }) => pool_cmd::scale(&site, &count, persist),
        Some(Command::KillWorker { pid }) => pool_cmd::kill_worker(&site, pid),
        Some(Command::ReopenLogs) => pool_cmd::reopen_logs(&site),
        Some(Command::Status { json }) => pool_cmd::status(&site, json, cli.omero_compat),
        Some(Command::Diagnostics { json }) => {
            let report = crate::diagnostics::collect(&site);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Demo {
            images,
            size,
            channels,
            z,
        }) => demo_cmd::run(
            &site,
            &demo_cmd::DemoArgs {
                images: images as usize,
                size,
                channels,
                z,
            },
        ),
        Some(Command::Systemd(args)) => systemd_cmd::run_for_site(&site, &stance, &args),
        Some(Command::Fleet(args)) => fleet_cmd::run(&site, args),
        Some(Command::User(args)) => access_cmd::user(&site, args.action),
        Some(Command::Group(args)) => access_cmd::group(&site, args.action),
        Some(Command::Sessions(args)) => sessions_cmd::run(&site, args.action),
        Some(Command::Metrics { listen }) => {
            metrics_cmd::print_or_serve(listen.as_deref(), &|| metrics_cmd::site_text(&site))
        }
        Some(Command::Completions { .. } | Command::Man { .. } | Command::Install { .. }) => {
            unreachable!("handled before the site is resolved")
        }
        Some(Command::Master { interim_port }) => Ok(pool_cmd::master(&site, interim_port)),
        Some(Command::Worker) => Ok(worker()),
        Some(Command::Tui) | None => {
            if origin == SiteOrigin::Default {
                demo_cmd::seed_demo_site(&site)?;
            }
            crate::tui::run(site)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Before any command touches the site: the one privilege rule (src/privilege.rs: as
/// root on a site another user owns, drop to that user), then the site directory.
fn enter_site(
    site: &Site,
    origin: SiteOrigin,
    keep: crate::privilege::Keep,
) -> anyhow::Result<crate::privilege::Stance> {
    let stance = crate::privilege::enforce(site, keep)?;
    prepare_site(site, origin)?;
    Ok(stance)
}

/// What root keeps before dropping to a site's owner: only what root's own command line
/// asks for (a privileged port for the private nginx, a file or directory to write).
fn keep_for(command: &Option<Command>) -> crate::privilege::Keep {
    match command {
        Some(Command::Nginx(NginxArgs {
            action: Some(NginxAction::Start { http }),
            ..
        })) => crate::privilege::Keep {
            privileged_port: *http,
            ..Default::default()
        },
        Some(Command::Systemd(args)) => crate::privilege::Keep {
            root_output: args.output.is_some(),
            ..Default::default()
        },
        // `nginx --output /etc/nginx/conf.d/…`: the system nginx's config, written by
        // root from values the owner's process read and root validated.
        Some(Command::Nginx(NginxArgs {
            action: None,
            output: Some(_),
            ..
        })) => crate::privilege::Keep {
            root_output: true,
            ..Default::default()
        },
        _ => crate::privilege::Keep::default(),
    }
}

/// Creates the default site directory with a notice; an explicit one must exist.
fn prepare_site(site: &Site, origin: SiteOrigin) -> anyhow::Result<()> {
    if site.root().is_dir() {
        return Ok(());
    }
    match origin {
        SiteOrigin::Default => {
            std::fs::create_dir_all(site.root())?;
            eprintln!(
                "notice: created site directory {} (set OMERODIR or --omerodir to use another)",
                site.root().display()
            );
            Ok(())
        }
        SiteOrigin::Flag | SiteOrigin::Env => {
            std::fs::create_dir_all(site.root()).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create site directory {}: {e}",
                    site.root().display()
                )
            })?;
            Ok(())
        }
    }
}

/// A command that does not need the config (stop, status) still says it is broken, on
/// stderr, in the words `diagnostics` lists it with.
fn warn_config_unusable(err: &dyn std::fmt::Display) {
    eprintln!("WARNING: the config cannot be used: {err}");
}

/// The text with its first letter in upper case (notes printed as sentences).
fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_the_masters_worker_command_line_skips_clap() {
        assert_eq!(
            worker_command_line(&args(&["omero-webctl", "--omerodir", "/srv/web", "worker"])),
            Some(PathBuf::from("/srv/web"))
        );
        for other in [
            &["omero-webctl", "worker"][..],
            &["omero-webctl", "worker", "--omerodir", "/srv/web"],
            &[
                "omero-webctl",
                "--omerodir",
                "/srv/web",
                "worker",
                "--bogus",
            ],
            &["omero-webctl", "--omerodir=/srv/web", "worker"],
            &["omero-webctl", "--omerodir", "", "worker"],
            &["omero-webctl", "--omerodir", "--help", "worker"],
            &["omero-webctl", "--backend", "embedded", "worker"],
            &["omero-webctl", "--omerodir", "/srv/web", "master"],
        ] {
            assert_eq!(worker_command_line(&args(other)), None, "{other:?}");
        }
    }
}
