//! A fleet member's Dashboard (Enter in the Fleet tab): the member's own
//! `status --json` (every second) and `diagnostics --json` (less often), read through
//! the fleet's transport on threads of their own and fed into the same Dashboard model
//! the local site uses. Read-only: the questions are all that is sent to the member.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::fleet::{Answer, Fleet};
use crate::site::{Site, SiteKind};
use crate::supervisor::PoolStatus;

use super::dashboard::Dashboard;
use super::event::{Event, NginxObservation, PoolObservation, Sample};

/// How often the member's status is asked.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How often its diagnostics are asked (they take longer: config check, host figures).
const DIAGNOSTICS_EVERY: Duration = Duration::from_secs(10);
/// Diagnostics may take this long beyond the fleet's ssh timeout.
const DIAGNOSTICS_EXTRA: Duration = Duration::from_secs(20);

/// What the panel holds about the member it shows (the App owns it).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    pub name: String,
    /// "ssh" or "local": how it is read, as the header says.
    pub transport: &'static str,
    /// Tells this opening's readings from a previous one's.
    pub generation: u64,
    pub dashboard: Dashboard,
    /// Wall-clock time (HH:MM:SS) of the latest status answer.
    pub as_of: Option<String>,
    /// Since when (HH:MM:SS) it has not answered, and why.
    pub unreachable: Option<(String, String)>,
}

/// One answer of the member, as its reading thread sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberReading {
    pub generation: u64,
    /// Seconds since the reading started (monotonic), for rates.
    pub at: f64,
    /// Wall-clock time of the answer, HH:MM:SS.
    pub clock: String,
    pub answer: MemberAnswer,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MemberAnswer {
    /// Its pool, what serves it, and its processes' figures by PID (CPU time, RSS: the
    /// member reads its own /proc); or why it did not answer.
    Status(Result<(PoolObservation, String, Procs), String>),
    Diagnostics {
        warnings: Vec<String>,
        host: Option<crate::host::HostFigures>,
        nginx: NginxObservation,
    },
}

impl MemberView {
    pub fn new(name: String, transport: &'static str, generation: u64) -> MemberView {
        MemberView {
            name,
            transport,
            generation,
            dashboard: Dashboard::default(),
            as_of: None,
            unreachable: None,
        }
    }

    /// Takes in one reading; returns whether anything shown changed.
    pub fn apply(&mut self, reading: MemberReading) -> bool {
        let before = self.clone();
        match reading.answer {
            MemberAnswer::Status(Ok((pool, backend, procs))) => {
                self.unreachable = None;
                self.as_of = Some(reading.clock);
                let nginx = self
                    .dashboard
                    .nginx
                    .clone()
                    .unwrap_or_else(|| NginxObservation::Error("not asked yet".into()));
                self.dashboard.apply_sample(&Sample {
                    at: reading.at,
                    pool,
                    procs,
                    nginx,
                    config_stamp: None,
                    backend,
                    nginx_errors: Default::default(),
                    // A member's sessions are its own; `status --json` does not carry them.
                    access: None,
                });
            }
            MemberAnswer::Status(Err(why)) => {
                let since = match self.unreachable.take() {
                    Some((since, _)) => since,
                    None => reading.clock,
                };
                self.unreachable = Some((since, why));
            }
            MemberAnswer::Diagnostics {
                warnings,
                host,
                nginx,
            } => {
                self.dashboard.diagnosed = true;
                self.dashboard.warnings = warnings;
                self.dashboard.host = host;
                self.dashboard.nginx = Some(nginx);
            }
        }
        *self != before
    }

    /// The line above the member's Dashboard.
    pub fn header(&self) -> String {
        let via = match self.transport {
            "ssh" => "read through ssh",
            _ => "read through its local omero-webctl",
        };
        let as_of = self.as_of.as_deref().unwrap_or("no answer yet");
        match &self.unreachable {
            None => format!("member {} ({via}), as of {as_of}", self.name),
            Some((since, why)) => format!(
                "member {} ({via}): unreachable since {since} ({why}); figures as of {as_of}",
                self.name
            ),
        }
    }
}

/// CPU time and RSS by PID.
pub type Procs = std::collections::HashMap<u32, super::event::ProcStat>;

/// The pool as a member's `status --json` describes it, what serves it, and its
/// processes' figures (none from a member that does not send them).
pub fn observation(stdout: &str) -> Result<(PoolObservation, String, Procs), String> {
    let value: serde_json::Value = serde_json::from_str(stdout)
        .map_err(|e| format!("status --json did not answer with JSON: {e}"))?;
    let kind: SiteKind =
        serde_json::from_value(value["kind"].clone()).unwrap_or(SiteKind::Embedded);
    let versions = serde_json::from_value(value["versions"].clone()).unwrap_or_default();
    let backend = crate::supervisor::describe(kind, &versions);
    let procs = serde_json::from_value(value["procs"].clone()).unwrap_or_default();
    let pool = match value["state"].as_str() {
        Some("not running") => match value.get("stale_pid") {
            Some(pid) => PoolObservation::Stale {
                pid: pid.as_u64().map(|p| p as u32),
                orphans: Vec::new(),
            },
            None => PoolObservation::NotRunning,
        },
        _ => match serde_json::from_value::<PoolStatus>(value) {
            Ok(status) => PoolObservation::Running(Box::new(status)),
            Err(e) => PoolObservation::Error(format!("status --json: {e}")),
        },
    };
    Ok((pool, backend, procs))
}

/// The member's nginx, warnings and host from its `diagnostics --json`.
fn diagnostics(stdout: &str) -> Option<MemberAnswer> {
    let value: serde_json::Value = serde_json::from_str(stdout).ok()?;
    let warnings = serde_json::from_value(value["warnings"].clone()).unwrap_or_default();
    let host = serde_json::from_value(value["host"].clone()).ok();
    let nginx = match value["nginx"]["state"].as_str() {
        Some("running") => NginxObservation::Running {
            pid: value["nginx"]["pid"].as_i64().unwrap_or(0) as i32,
            port: value["nginx"]["port"].as_u64().map(|p| p as u16),
        },
        Some("not_running") => NginxObservation::NotRunning,
        _ => NginxObservation::Error(
            value["nginx"]["message"]
                .as_str()
                .unwrap_or("unknown")
                .to_string(),
        ),
    };
    Some(MemberAnswer::Diagnostics {
        warnings,
        host,
        nginx,
    })
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// Reads member `name` until the returned sender is dropped (or the panel's event
/// channel closes): status every [`STATUS_EVERY`], diagnostics every
/// [`DIAGNOSTICS_EVERY`], each on its own thread so a slow one never holds up the other.
pub fn spawn_reader(
    control: Site,
    file: std::path::PathBuf,
    name: String,
    generation: u64,
    events: UnboundedSender<Event>,
) -> Sender<()> {
    let (stop_tx, stop_rx): (Sender<()>, Receiver<()>) = std::sync::mpsc::channel();
    let (diag_stop_tx, diag_stop_rx): (Sender<()>, Receiver<()>) = std::sync::mpsc::channel();
    let started = Instant::now();
    let send = move |events: &UnboundedSender<Event>, answer: MemberAnswer| {
        events
            .send(Event::Member(Box::new(MemberReading {
                generation,
                at: started.elapsed().as_secs_f64(),
                clock: clock(),
                answer,
            })))
            .is_ok()
    };
    let ask = move |args: &'static [&'static str], extra: Duration| -> Answer {
        let fleet = match Fleet::open(control.clone(), &file) {
            Ok(fleet) => fleet,
            Err(e) => return Answer::Unreachable(format!("{e:#}")),
        };
        match fleet.file.members.iter().find(|m| m.name == name) {
            Some(member) => fleet.transport.run(member, args, extra),
            None => Answer::Unreachable(format!("no member {name} in the fleet file any more")),
        }
    };
    let ask_diagnostics = ask.clone();
    let diag_events = events.clone();
    std::thread::spawn(move || {
        // Ends with the status thread, which holds the other end.
        loop {
            let answer = ask_diagnostics(&["diagnostics", "--json"], DIAGNOSTICS_EXTRA);
            if let Answer::Ran { stdout, .. } = &answer
                && let Some(answer) = diagnostics(stdout)
                && !send(&diag_events, answer)
            {
                return;
            }
            match diag_stop_rx.recv_timeout(DIAGNOSTICS_EVERY) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    });
    std::thread::spawn(move || {
        let _diagnostics = diag_stop_tx;
        loop {
            let answer = match ask(&["status", "--json"], Duration::ZERO) {
                Answer::Ran { stdout, .. } if !stdout.trim().is_empty() => observation(&stdout),
                other => Err(other.failure()),
            };
            if !send(&events, MemberAnswer::Status(answer)) {
                return;
            }
            match stop_rx.recv_timeout(STATUS_EVERY) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    });
    stop_tx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(clock: &str, answer: MemberAnswer) -> MemberReading {
        MemberReading {
            generation: 1,
            at: 1.0,
            clock: clock.into(),
            answer,
        }
    }

    #[test]
    fn not_running_and_stale_answers_are_observations_and_garbage_is_an_error() {
        let (pool, backend, _) =
            observation(r#"{"state":"not running","kind":"embedded","versions":{}}"#).unwrap();
        assert_eq!(pool, PoolObservation::NotRunning);
        assert!(backend.contains("embedded"), "{backend}");
        let (pool, _, _) = observation(
            r#"{"state":"not running","kind":"embedded","versions":{},"stale_pid":42}"#,
        )
        .unwrap();
        assert_eq!(
            pool,
            PoolObservation::Stale {
                pid: Some(42),
                orphans: vec![]
            }
        );
        assert!(observation("Error: no such site").is_err());
    }

    /// The member's `status --json` with `procs` (what the member read from its own
    /// /proc): two answers a second apart give each worker its CPU % and RSS.
    #[test]
    fn a_members_procs_give_its_workers_cpu_and_rss() {
        let app = super::super::fixtures::app();
        let status = app.dashboard.status().unwrap().clone();
        let worker = status.workers[0].pid;
        let answer = |cpu_secs: f64| {
            let mut value = serde_json::to_value(&status).unwrap();
            value["procs"] = serde_json::json!({
                worker.to_string(): {"cpu_secs": cpu_secs, "rss_bytes": 48u64 << 20}
            });
            observation(&value.to_string()).unwrap()
        };
        let (_, _, procs) = answer(10.0);
        assert_eq!(procs[&worker].rss_bytes, 48 << 20);
        let mut view = MemberView::new("beta".into(), "ssh", 1);
        for (at, cpu_secs) in [(1.0, 10.0), (2.0, 10.25)] {
            view.apply(MemberReading {
                generation: 1,
                at,
                clock: "10:00:00".into(),
                answer: MemberAnswer::Status(Ok(answer(cpu_secs))),
            });
        }
        assert_eq!(view.dashboard.rss.get(&worker), Some(&(48 << 20)));
        let cpu = view.dashboard.cpu[&worker];
        assert!((cpu - 25.0).abs() < 1e-6, "{cpu}");
        // Drawn in the member's workers table.
        let row = view
            .dashboard
            .sorted_workers()
            .into_iter()
            .find(|r| r.status.pid == worker)
            .unwrap();
        assert_eq!(
            (row.rss, row.cpu.map(|c| c.round())),
            (Some(48 << 20), Some(25.0))
        );
    }

    #[test]
    fn unreachable_keeps_its_first_time_and_an_answer_clears_it() {
        let mut view = MemberView::new("beta".into(), "ssh", 1);
        assert!(
            view.header()
                .contains("member beta (read through ssh), as of no answer yet")
        );
        view.apply(reading(
            "10:00:00",
            MemberAnswer::Status(Ok((
                PoolObservation::NotRunning,
                "embedded".into(),
                Default::default(),
            ))),
        ));
        assert_eq!(
            view.header(),
            "member beta (read through ssh), as of 10:00:00"
        );
        view.apply(reading(
            "10:00:01",
            MemberAnswer::Status(Err("timeout".into())),
        ));
        view.apply(reading(
            "10:00:03",
            MemberAnswer::Status(Err("timeout 2".into())),
        ));
        assert_eq!(
            view.header(),
            "member beta (read through ssh): unreachable since 10:00:01 (timeout 2); figures as of 10:00:00"
        );
        view.apply(reading(
            "10:00:05",
            MemberAnswer::Status(Ok((
                PoolObservation::NotRunning,
                "embedded".into(),
                Default::default(),
            ))),
        ));
        assert_eq!(
            view.header(),
            "member beta (read through ssh), as of 10:00:05"
        );
    }
}
