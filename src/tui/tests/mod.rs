//! The update logic without a terminal: keys through the keymap, confirmations, the
//! property editor, jobs, the config's life cycle, the log and nginx tabs. One module
//! per tab (the keys every tab shares in `keys`); the helpers they share are here.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{App, Confirmed, Popup, Severity, Tab, update};
use super::event::{Effect, Event, Job, JobFailure};
use super::fixtures;
use super::nginx_tab::CheckState;

mod dashboard;
mod fleet;
mod keys;
mod log;
mod nginx;
mod properties;

fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    update(app, Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn jobs(effects: &[Effect]) -> Vec<Job> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::RunJob(job) => Some(*job),
            _ => None,
        })
        .collect()
}
