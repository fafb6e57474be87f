//! `fleet status`: every member's `status --json`, asked at once, in one table.
//! Rates (req/s, 5xx/min) come from the difference to the previous sample kept under
//! the control site (`var/fleet/samples.json`); without a recent one they are the
//! average since the member's pool started.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::file::{FleetFile, Member};
use super::transport::{Answer, Transport};
use crate::site::SiteKind;
use crate::status::WorkerState;
use crate::supervisor::PoolStatus;

/// A previous sample older than this is not used for rates.
const SAMPLE_MAX_AGE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize)]
pub struct MemberRow {
    pub name: String,
    /// "local" or "ssh".
    pub transport: &'static str,
    /// What serves it: "embedded pool 0.1.0", "OMERO.web 5.33.2 · Gunicorn 27.0.1".
    pub serves: String,
    /// "running", "not running", "unreachable", ...
    pub state: String,
    pub workers_ready: usize,
    pub workers_target: u32,
    pub in_flight: u64,
    pub requests: u64,
    pub requests_per_sec: Option<f64>,
    pub errors_5xx_per_min: Option<f64>,
    /// Keys whose applied value differs from the reference member's (the first).
    pub drift: Vec<String>,
    /// Another version of the same kind than the reference member's.
    pub version_skew: bool,
    pub drained: bool,
    /// Why it is unreachable or what it warns about.
    pub note: Option<String>,
    #[serde(skip)]
    pub status: Option<PoolStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Sample {
    at_ms: u128,
    requests: u64,
    errors_5xx: u64,
    started_at: u64,
}

/// Asks every member for its status (at once; each within the transport's timeout).
pub fn collect(
    fleet: &FleetFile,
    transport: &Transport,
    drained: &[String],
    samples_file: &Path,
) -> Vec<MemberRow> {
    let answers = transport.run_all(&fleet.members, &["status", "--json"], Duration::ZERO);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let previous: BTreeMap<String, Sample> = std::fs::read(samples_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut rows: Vec<MemberRow> = fleet
        .members
        .iter()
        .zip(answers)
        .map(|(member, answer)| row(member, answer, drained))
        .collect();
    let mut samples = previous.clone();
    for row in &mut rows {
        let Some(status) = &row.status else { continue };
        let sample = Sample {
            at_ms: now_ms,
            requests: status.totals.requests,
            errors_5xx: status.totals.status_5xx,
            started_at: status.started_at,
        };
        let recent = previous.get(&row.name).filter(|p| {
            p.started_at == sample.started_at
                && now_ms > p.at_ms
                && now_ms - p.at_ms <= SAMPLE_MAX_AGE.as_millis()
                && sample.requests >= p.requests
        });
        let (secs, requests, errors) = match recent {
            Some(p) => (
                (now_ms - p.at_ms) as f64 / 1000.0,
                sample.requests - p.requests,
                sample.errors_5xx.saturating_sub(p.errors_5xx),
            ),
            None => (
                status.uptime_secs.max(1) as f64,
                sample.requests,
                sample.errors_5xx,
            ),
        };
        row.requests_per_sec = Some(requests as f64 / secs);
        row.errors_5xx_per_min = Some(errors as f64 * 60.0 / secs);
        samples.insert(row.name.clone(), sample);
    }
    mark_drift_and_skew(&mut rows, &fleet.members);
    if let Ok(text) = serde_json::to_vec(&samples) {
        let _ = crate::fsutil::write_atomic(samples_file, &text, None);
    }
    rows
}

fn row(member: &Member, answer: Answer, drained: &[String]) -> MemberRow {
    let mut row = MemberRow {
        name: member.name.clone(),
        transport: member.destination.kind(),
        serves: "?".into(),
        state: "unreachable".into(),
        workers_ready: 0,
        workers_target: 0,
        in_flight: 0,
        requests: 0,
        requests_per_sec: None,
        errors_5xx_per_min: None,
        drift: Vec::new(),
        version_skew: false,
        drained: drained.contains(&member.name),
        note: None,
        status: None,
    };
    let stdout = match &answer {
        Answer::Unreachable(why) => {
            row.note = Some(why.clone());
            return row;
        }
        Answer::Ran { stdout, .. } => stdout,
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(stdout) else {
        // It answered, but not with a status: its own error says why.
        row.state = "no answer".into();
        row.note = Some(format!("status --json: {}", answer.failure()));
        return row;
    };
    let kind: SiteKind =
        serde_json::from_value(value["kind"].clone()).unwrap_or(SiteKind::Embedded);
    let versions: BTreeMap<String, String> =
        serde_json::from_value(value["versions"].clone()).unwrap_or_default();
    row.serves = crate::supervisor::describe(kind, &versions);
    row.state = value["state"].as_str().unwrap_or("?").to_string();
    row.note = value["warnings"]
        .as_array()
        .and_then(|w| w.first())
        .and_then(|w| w.as_str())
        .or_else(|| value["problem"].as_str())
        .map(str::to_string);
    if let Ok(status) = serde_json::from_value::<PoolStatus>(value) {
        row.workers_ready = status
            .workers
            .iter()
            .filter(|w| w.state == WorkerState::Ready)
            .count();
        row.workers_target = status.target_workers;
        row.in_flight = status.totals.in_flight;
        row.requests = status.totals.requests;
        row.status = Some(status);
    }
    row
}

/// The first member that answered is the reference: others whose applied config
/// differs show the differing keys; another version of the same kind is skew. Paths
/// under a member's own site directory (the default log dir, static root, …) are
/// compared relative to it.
fn mark_drift_and_skew(rows: &mut [MemberRow], members: &[Member]) {
    let relative = |status: &PoolStatus, name: &str| -> BTreeMap<String, String> {
        let site = members
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.site.display().to_string())
            .unwrap_or_default();
        status
            .applied
            .iter()
            .map(|(k, v)| {
                let v = match v.strip_prefix(site.as_str()) {
                    Some(rest) if !site.is_empty() => format!("$OMERODIR{rest}"),
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect()
    };
    let Some((reference, reference_applied)) = rows
        .iter()
        .find_map(|r| Some((r.status.clone()?, relative(r.status.as_ref()?, &r.name))))
    else {
        return;
    };
    let reference_serves = crate::supervisor::describe(reference.kind, &reference.versions);
    for row in rows.iter_mut() {
        let Some(status) = &row.status else { continue };
        if status.kind == reference.kind && row.serves != reference_serves {
            row.version_skew = true;
        }
        if status.applied.is_empty() || reference_applied.is_empty() {
            continue;
        }
        let applied = relative(status, &row.name);
        let keys: std::collections::BTreeSet<&String> =
            applied.keys().chain(reference_applied.keys()).collect();
        row.drift = keys
            .into_iter()
            .filter(|k| applied.get(*k) != reference_applied.get(*k))
            .filter(|k| !MEMBER_OWN_KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
    }
}

/// Properties that differ between members by design (each binds its own address).
const MEMBER_OWN_KEYS: [&str; 2] = [
    "omero.web.application_server.host",
    "omero.web.application_server.port",
];

/// The table `fleet status` prints.
pub fn render_table(rows: &[MemberRow]) -> String {
    let header = [
        "MEMBER", "VIA", "SERVES", "STATE", "WORKERS", "REQ/S", "5XX/MIN", "DRIFT",
    ];
    let lines: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let state = if r.drained {
                format!("{} (drained)", r.state)
            } else {
                r.state.clone()
            };
            let serves = if r.version_skew {
                format!("{} (skew)", r.serves)
            } else {
                r.serves.clone()
            };
            let rate = |v: Option<f64>, digits: usize| {
                v.map_or("-".to_string(), |v| format!("{v:.digits$}"))
            };
            let workers = if r.status.is_some() {
                format!("{}/{}", r.workers_ready, r.workers_target)
            } else {
                "-".into()
            };
            let drift = match r.drift.len() {
                0 if r.status.is_some() => "none".into(),
                0 => "-".into(),
                _ => r
                    .drift
                    .iter()
                    .map(|k| k.trim_start_matches("omero.web."))
                    .collect::<Vec<_>>()
                    .join(","),
            };
            [
                r.name.clone(),
                r.transport.to_string(),
                serves,
                state,
                workers,
                rate(r.requests_per_sec, 1),
                rate(r.errors_5xx_per_min, 1),
                drift,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: &[String]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    push(&header.map(str::to_string));
    for line in &lines {
        push(line);
    }
    for r in rows.iter().filter(|r| r.note.is_some()) {
        out.push_str(&format!(
            "{}: {}\n",
            r.name,
            r.note.as_deref().unwrap_or("")
        ));
    }
    out
}

/// The members' series (label `member`) and the fleet's own: members by state.
pub fn metrics(rows: &[MemberRow]) -> String {
    let sources: Vec<crate::metrics::Source> = rows
        .iter()
        .map(|r| crate::metrics::Source {
            member: Some(&r.name),
            status: r.status.as_ref(),
        })
        .collect();
    let mut text = crate::metrics::render(&sources);
    let count = |f: &dyn Fn(&MemberRow) -> bool| rows.iter().filter(|r| f(r)).count();
    text.push_str("# HELP omero_web_fleet_members Members of the fleet by state\n");
    text.push_str("# TYPE omero_web_fleet_members gauge\n");
    for (state, n) in [
        ("running", count(&|r| r.state == "running" && !r.drained)),
        ("drained", count(&|r| r.drained)),
        ("unreachable", count(&|r| r.state == "unreachable")),
        (
            "other",
            count(&|r| r.state != "running" && r.state != "unreachable" && !r.drained),
        ),
    ] {
        text.push_str(&format!(
            "omero_web_fleet_members{{state=\"{state}\"}} {n}\n"
        ));
    }
    text
}
