//! The steps of the change running now (or the last one), for the panel's `U` screen:
//! `var/generations/progress.json`, written by the command making the change (the
//! only writer), read by the panel. Losing a progress write never fails the change.

use serde::{Deserialize, Serialize};

use crate::site::Site;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
    /// Not needed any more (an earlier step failed).
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub state: StepState,
    /// What it did or why it failed, in words.
    pub detail: String,
}

/// One generation of the site while a change runs (the live one and the new one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationSeen {
    /// `serving`, `new`, `draining`.
    pub role: String,
    pub master: u32,
    pub port: u16,
    /// What it runs (a binary, a venv).
    pub runs: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub action: String,
    /// RFC 3339, local time.
    pub started: String,
    /// The command's PID: a change whose command is gone is over, finished or not.
    pub pid: u32,
    /// Its start time (clock ticks since boot), so that another process given the same
    /// PID later is not taken for it.
    #[serde(default)]
    pub pid_start: Option<u64>,
    pub steps: Vec<Step>,
    pub generations: Vec<GenerationSeen>,
    /// Every generation the change started or ran beside, each once (by master) with
    /// the last role it had: kept after the end, for the history.
    #[serde(default)]
    pub involved: Vec<GenerationSeen>,
    /// `None` while it runs; then `ok` or why it failed.
    pub outcome: Option<String>,
    /// Seconds and 5xx seen so far in the health window, while it runs.
    pub health: Option<HealthFigures>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthFigures {
    pub elapsed_s: u64,
    pub window_s: u64,
    pub probes: u64,
    pub errors: u64,
}

fn path(site: &Site) -> std::path::PathBuf {
    site.var_dir().join("generations").join("progress.json")
}

impl Progress {
    /// A change starting now with these steps, all pending; written at once.
    pub fn begin(site: &Site, action: &str, steps: &[&str]) -> Progress {
        let progress = Progress {
            action: action.to_string(),
            started: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            pid: std::process::id(),
            pid_start: crate::proc::process_start_time(std::process::id()),
            steps: steps
                .iter()
                .map(|name| Step {
                    name: name.to_string(),
                    state: StepState::Pending,
                    detail: String::new(),
                })
                .collect(),
            generations: Vec::new(),
            involved: Vec::new(),
            outcome: None,
            health: None,
        };
        progress.write(site);
        progress
    }

    /// Whether the change still runs (not finished, and its command is alive).
    pub fn running(&self) -> bool {
        self.outcome.is_none()
            && crate::proc::is_alive(self.pid)
            && crate::proc::process_start_time(self.pid) == self.pid_start
    }

    pub fn step(&mut self, site: &Site, index: usize, state: StepState, detail: &str) {
        if let Some(step) = self.steps.get_mut(index) {
            step.state = state;
            step.detail = detail.to_string();
        }
        self.write(site);
    }

    pub fn set_generations(&mut self, site: &Site, generations: Vec<GenerationSeen>) {
        for g in &generations {
            match self
                .involved
                .iter_mut()
                .find(|seen| seen.master == g.master)
            {
                Some(seen) => *seen = g.clone(),
                None => self.involved.push(g.clone()),
            }
        }
        self.generations = generations;
        self.write(site);
    }

    /// The health window's figures so far.
    pub fn set_health(&mut self, site: &Site, figures: HealthFigures) {
        self.health = Some(figures);
        self.write(site);
    }

    /// The change is over: steps still pending are skipped.
    pub fn finish(&mut self, site: &Site, outcome: &str) {
        for step in &mut self.steps {
            if matches!(step.state, StepState::Pending | StepState::Running) {
                step.state = StepState::Skipped;
            }
        }
        self.generations.clear();
        self.outcome = Some(outcome.to_string());
        self.write(site);
    }

    fn write(&self, site: &Site) {
        let file = path(site);
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(json) = serde_json::to_vec_pretty(self) {
            let _ = crate::fsutil::write_atomic(&file, &json, Some(0o644));
        }
    }
}

/// The change running now or the last one, if any was recorded.
pub fn read(site: &Site) -> Option<Progress> {
    serde_json::from_slice(&std::fs::read(path(site)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::SiteKind;

    #[test]
    fn the_steps_are_read_back_as_written_and_pending_ones_are_skipped_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::Embedded);
        assert_eq!(read(&site), None);
        let mut progress = Progress::begin(&site, "upgrade", &["start", "switch", "drain"]);
        assert!(read(&site).unwrap().running());
        // Another process with this PID (a reused one) is not this change's command.
        let mut reused = read(&site).unwrap();
        reused.pid_start = reused.pid_start.map(|t| t + 1);
        assert!(!reused.running());
        progress.step(&site, 0, StepState::Done, "PID 12");
        let seen = read(&site).unwrap();
        assert_eq!(seen.steps[0].state, StepState::Done);
        assert_eq!(seen.steps[0].detail, "PID 12");
        assert_eq!(seen.steps[1].state, StepState::Pending);
        let seen = |role: &str, master: u32| GenerationSeen {
            role: role.into(),
            master,
            port: 4080,
            runs: "venv".into(),
        };
        progress.set_generations(&site, vec![seen("serving", 10), seen("new", 20)]);
        progress.set_generations(&site, vec![seen("draining", 10), seen("serving", 20)]);
        progress.step(&site, 1, StepState::Failed, "nginx -t failed");
        progress.finish(&site, "refused");
        let seen_at_end = read(&site).unwrap();
        assert!(seen_at_end.generations.is_empty(), "none coexist any more");
        assert_eq!(
            seen_at_end.involved,
            vec![seen("draining", 10), seen("serving", 20)],
            "each generation once, with its last role, kept for the history"
        );
        let seen = read(&site).unwrap();
        assert!(!seen.running());
        assert_eq!(seen.outcome.as_deref(), Some("refused"));
        assert_eq!(seen.steps[2].state, StepState::Skipped);
    }
}
