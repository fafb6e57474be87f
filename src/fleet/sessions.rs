//! `fleet sessions`: where every member keeps its Django sessions, as each member's
//! own `diagnostics --json` reports it (the member PINGs the store itself: what
//! matters is whether *it* reaches Redis, not whether the control host does).

use std::time::Duration;

use super::{Answer, Fleet};
use crate::session_store::StoreCheck;

pub struct StoreRow {
    pub member: String,
    /// The member's answer, or why there is none.
    pub check: Result<StoreCheck, String>,
}

impl Fleet {
    /// Every member's session store, asked at once.
    pub fn session_stores(&self) -> Vec<StoreRow> {
        let members = &self.file.members;
        let answers =
            self.transport
                .run_all(members, &["diagnostics", "--json"], Duration::from_secs(5));
        members
            .iter()
            .zip(answers)
            .map(|(member, answer)| StoreRow {
                member: member.name.clone(),
                check: store_of(&answer),
            })
            .collect()
    }
}

fn store_of(answer: &Answer) -> Result<StoreCheck, String> {
    let Answer::Ran { stdout, .. } = answer else {
        return Err(answer.failure());
    };
    let value: serde_json::Value = serde_json::from_str(stdout)
        .map_err(|_| format!("diagnostics --json: {}", answer.failure()))?;
    let sessions = &value["sessions"];
    if sessions.is_null() {
        // An older omero-webctl, or a config it cannot read.
        return Err("its diagnostics say nothing about sessions".into());
    }
    serde_json::from_value(sessions.clone()).map_err(|e| format!("its diagnostics' sessions: {e}"))
}

/// MEMBER  SESSIONS  REACHES: one line per member.
pub fn render_table(rows: &[StoreRow]) -> String {
    let width = rows
        .iter()
        .map(|r| r.member.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!("{:<width$}  SESSIONS / STORE\n", "MEMBER");
    for row in rows {
        let text = match &row.check {
            Err(why) => format!("? ({why})"),
            Ok(c) => {
                let reach = match (&c.problem, c.ping_ms) {
                    (Some(problem), _) => format!(" — {problem}"),
                    (None, Some(ms)) => format!(" — PING {ms:.1} ms"),
                    (None, None) if !c.shared => " — this host only".into(),
                    (None, None) => String::new(),
                };
                format!("{}{reach}", c.location)
            }
        };
        out.push_str(&format!("{:<width$}  {text}\n", row.member));
    }
    out
}
