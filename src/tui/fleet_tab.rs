//! The Fleet tab: every member of the fleet file as `fleet status` sees it (the same
//! `Fleet::status`, asked on a thread of its own every few seconds, so an unreachable
//! member costs its ssh timeout there, never a frozen panel), and drain/undrain.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::fleet::Fleet;
use crate::fleet::status::MemberRow;
use crate::site::Site;

use super::event::Event;

/// How often the members are asked when nothing asks sooner.
const REFRESH: Duration = Duration::from_secs(2);

pub struct FleetTab {
    pub file: PathBuf,
    /// The latest answer (None: none yet).
    pub rows: Option<Result<Vec<MemberRow>, String>>,
    /// Aggregate req/s of the members, oldest first (for the sparkline).
    pub history: Vec<u64>,
    pub selected: usize,
    /// A drain or undrain in progress, as the status line says it.
    pub busy: Option<String>,
}

/// Points kept for the sparkline.
const HISTORY: usize = 120;

impl FleetTab {
    pub fn new(file: PathBuf) -> FleetTab {
        FleetTab {
            file,
            rows: None,
            history: Vec::new(),
            selected: 0,
            busy: None,
        }
    }

    pub fn members(&self) -> &[MemberRow] {
        match &self.rows {
            Some(Ok(rows)) => rows,
            _ => &[],
        }
    }

    pub fn observe(&mut self, rows: Result<Vec<MemberRow>, String>) {
        if let Ok(rows) = &rows {
            let total: f64 = rows.iter().filter_map(|r| r.requests_per_sec).sum();
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(total.round() as u64);
        }
        self.rows = Some(rows);
        self.selected = self.selected.min(self.members().len().saturating_sub(1));
    }

    pub fn move_selection(&mut self, delta: isize) {
        let last = self.members().len().saturating_sub(1) as isize;
        self.selected = (self.selected as isize + delta).clamp(0, last.max(0)) as usize;
    }

    pub fn selected_member(&self) -> Option<&MemberRow> {
        self.members().get(self.selected)
    }
}

/// Asks `Fleet::status` every [`REFRESH`] (or at once when `now` receives) and sends
/// the rows as `Event::Fleet`; ends when the panel's event channel closes.
pub fn spawn_sampler(control: Site, file: PathBuf, events: UnboundedSender<Event>) -> Sender<()> {
    let (now_tx, now_rx): (Sender<()>, Receiver<()>) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        loop {
            let rows = Fleet::open(control.clone(), &file)
                .map(|fleet| fleet.status())
                .map_err(|e| format!("{e:#}"));
            if events.send(Event::Fleet(rows)).is_err() {
                return;
            }
            match now_rx.recv_timeout(REFRESH) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    });
    now_tx
}

/// `fleet reload` from the panel: every step goes to `say`.
pub fn rolling_reload(
    control: &Site,
    file: &std::path::Path,
    say: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let fleet = Fleet::open(control.clone(), file).map_err(|e| format!("{e:#}"))?;
    fleet
        .roll(crate::fleet::ops::Action::Reload, say)
        .map_err(|e| format!("{e:#}"))
}

/// Drains (or undrains) `name` through the fleet's own operation; the lines it said.
pub fn drain(
    control: &Site,
    file: &std::path::Path,
    name: &str,
    drain: bool,
) -> Result<String, String> {
    let fleet = Fleet::open(control.clone(), file).map_err(|e| format!("{e:#}"))?;
    let mut said = Vec::new();
    let mut say = |line: &str| said.push(line.to_string());
    let result = if drain {
        fleet.drain(name, &mut say)
    } else {
        fleet.undrain(name, &mut say)
    };
    result.map_err(|e| format!("{e:#}"))?;
    Ok(said.join("; "))
}
