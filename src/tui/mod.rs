//! The terminal control panel. One [`App`](app::App) owns the state; producers (the
//! keyboard, the pool sampler, the log tailer, background jobs, signals) send events
//! into one loop; [`update`](app::update) turns each event into state changes and
//! effects, which the [`Executor`](effects::Executor) carries out off the UI thread;
//! [`view`](views::view) draws the state, and only when something changed.
//!
//! The panel is a client of the pool like the CLI: closing it never stops the web.

pub mod app;
pub mod dashboard;
pub mod diff;
pub mod effects;
pub mod event;
pub mod fleet_tab;
pub mod input;
pub mod keymap;
pub mod log_view;
pub mod member_view;
pub mod nginx_tab;
pub mod properties;
pub mod sampler;
pub mod servers;
pub mod terminal;
pub mod theme;
pub mod views;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod screens;
#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream};
use futures_util::StreamExt;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::site::Site;

use app::{App, update};
use effects::Executor;
use event::Event;
use theme::Theme;

/// Events handled before one redraw at most, so a burst costs a single frame.
const BATCH: usize = 256;

/// Runs the panel until the user quits or a signal arrives.
pub fn run(site: Site) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the control panel needs a terminal, and this is not one (stdin or stdout is redirected). \
             Use the CLI instead: omero-webctl status | start | stop | reload | scale | config | nginx | diagnostics \
             (omero-webctl --help lists them)"
        );
    }
    let config = Config::load(&site).map_err(|e| e.to_string());
    let worker_user = crate::nginx::instance::worker_user(&site);
    let theme = Theme::from_env();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run_loop(site, config, theme, worker_user));
    // Jobs still running (a start, say) go on in their own processes; don't wait.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn run_loop(
    site: Site,
    config: Result<Config, String>,
    theme: Theme,
    worker_user: Option<String>,
) -> anyhow::Result<()> {
    let mut terminal = terminal::enter()?;
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    // The Fleet tab is there when the site has a fleet file.
    let fleet_file = crate::fleet::default_path(&site);
    let fleet = fleet_file.is_file().then(|| {
        let now = fleet_tab::spawn_sampler(site.clone(), fleet_file.clone(), events_tx.clone());
        (fleet_file.clone(), now)
    });
    let executor = Executor {
        site: site.clone(),
        sampler: {
            sampler::spawn_changes_watcher(site.clone(), events_tx.clone());
            sampler::spawn_sampler(site.clone(), events_tx.clone())
        },
        tailer: sampler::spawn_tailer(events_tx.clone()),
        events: events_tx,
        fleet,
        member_reader: Default::default(),
    };
    let remembered_port = crate::nginx::instance::remembered_port(&site);
    let (mut app, effects) = App::new(site, config, theme, worker_user, remembered_port);
    if executor.fleet.is_some() {
        app.fleet = Some(fleet_tab::FleetTab::new(fleet_file));
    }
    let size = terminal.size()?;
    app.screen = (size.width, size.height);
    for effect in effects {
        executor.run(effect);
    }
    let mut keys = EventStream::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if app.dirty {
            app.dirty = false;
            draw(&mut terminal, &app)?;
        }
        if app.quit {
            return Ok(());
        }
        let first = tokio::select! {
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(key))) => Event::Key(key),
                Some(Ok(TermEvent::Resize(w, h))) => Event::Resize(w, h),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            Some(event) = events.recv() => event,
            _ = sigterm.recv() => Event::Terminate,
            _ = sighup.recv() => Event::Terminate,
            _ = sigint.recv() => Event::Terminate,
        };
        batch.push(first);
        while batch.len() < BATCH {
            match events.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        for event in batch.drain(..) {
            for effect in update(&mut app, event) {
                executor.run(effect);
            }
        }
    }
}

/// One frame, bracketed as a synchronized update so terminals that support it show
/// it at once (no tearing); others ignore the brackets.
fn draw(terminal: &mut terminal::TerminalGuard, app: &App) -> std::io::Result<()> {
    use crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
    crossterm::execute!(terminal.backend_mut(), BeginSynchronizedUpdate)?;
    let drawn = terminal.draw(|frame| views::view(app, frame)).map(|_| ());
    crossterm::execute!(terminal.backend_mut(), EndSynchronizedUpdate)?;
    drawn
}
