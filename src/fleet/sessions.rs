//! `fleet sessions`: where every member keeps its Django sessions, as each member's
//! own `diagnostics --json` reports it (the member PINGs the store itself: what
//! matters is whether *it* reaches Redis, not whether the control host does).

use std::time::Duration;

use super::{Answer, Fleet};
use crate::session_store::StoreCheck;
use crate::site::SiteKind;

pub struct StoreRow {
    pub member: String,
    /// What the member runs (None: it did not say).
    pub kind: Option<SiteKind>,
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
                kind: kind_of(&answer),
                check: store_of(&answer),
            })
            .collect()
    }

    /// Ends every gateway login of `user` on every embedded member (`sessions kill
    /// --user` there; OMERO.web members keep Django's sessions, which the gateway's
    /// users do not have). Members sharing one store end them once, the first asked;
    /// members with their own files each end their own. Returns how many ended; an
    /// embedded member that could not be asked makes it an error naming it, after
    /// the others were asked.
    pub fn end_user_sessions(&self, user: &str, say: &mut dyn FnMut(&str)) -> anyhow::Result<u64> {
        let rows = self.session_stores();
        let mut ended = 0;
        let mut failed = Vec::new();
        for (member, row) in self.file.members.iter().zip(&rows) {
            match row.kind {
                Some(SiteKind::Embedded) => {}
                Some(_) => continue,
                None => {
                    failed.push(format!(
                        "{}: {}",
                        member.name,
                        row.check
                            .as_ref()
                            .err()
                            .map_or("its kind is unknown", String::as_str)
                    ));
                    continue;
                }
            }
            let answer = self.transport.run(
                member,
                &["sessions", "kill", "--user", user, "--json"],
                Duration::from_secs(5),
            );
            let count = match &answer {
                Answer::Ran {
                    code: Some(0),
                    stdout,
                    ..
                } => serde_json::from_str::<serde_json::Value>(stdout)
                    .ok()
                    .and_then(|v| v["ended"].as_array().map(|a| a.len() as u64)),
                _ => None,
            };
            match count {
                Some(n) => {
                    say(&format!("{}: ended {n} session(s) of {user}", member.name));
                    ended += n;
                }
                None => failed.push(format!("{}: {}", member.name, answer.failure())),
            }
        }
        if !failed.is_empty() {
            anyhow::bail!(
                "{user}'s sessions may live on where these could not be asked: {}",
                failed.join("; ")
            );
        }
        Ok(ended)
    }
}

fn kind_of(answer: &Answer) -> Option<SiteKind> {
    let Answer::Ran { stdout, .. } = answer else {
        return None;
    };
    let value: serde_json::Value = serde_json::from_str(stdout).ok()?;
    serde_json::from_value(value["kind"].clone()).ok()
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
                let counts = match (c.counts, &c.count_problem) {
                    (Some(n), _) => format!(
                        " — {} gateway login(s), {} Django session(s)",
                        n.gateway, n.django
                    ),
                    (None, Some(why)) => format!(" — sessions not counted: {why}"),
                    (None, None) => String::new(),
                };
                format!("{}{reach}{counts}", c.location)
            }
        };
        out.push_str(&format!("{:<width$}  {text}\n", row.member));
    }
    out
}

/// Whether every member keeps its sessions in one store it reaches (and, when the fleet
/// names one, in that store): the line that says so, or the line that says why not.
pub fn verdict(rows: &[StoreRow], wanted: Option<&str>) -> Result<String, String> {
    let stores: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r.check.as_ref().ok().map(|c| c.location.as_str()))
        .collect();
    let all_reach = rows.iter().all(|r| {
        r.check
            .as_ref()
            .is_ok_and(|c| c.shared && c.problem.is_none())
    });
    if !all_reach || stores.len() != 1 {
        return Err("The members do NOT share one reachable session store: a user is logged out whenever another member answers.".into());
    }
    if let Some(wanted) = wanted {
        let shown = crate::session_store::RedisUrl::parse(wanted)
            .map(|u| format!("Redis {}", u.shown()))
            .unwrap_or_else(|_| wanted.to_string());
        if !stores.contains(shown.as_str()) {
            return Err(format!(
                "The members share a store, but not the fleet's {shown} (fleet sessions URL sets it)."
            ));
        }
    }
    Ok("Every member keeps its sessions in the same store.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(member: &str, location: &str, shared: bool, problem: Option<&str>) -> StoreRow {
        StoreRow {
            member: member.into(),
            kind: None,
            check: Ok(StoreCheck {
                engine: "e".into(),
                location: location.into(),
                shared,
                redis: None,
                ping_ms: None,
                problem: problem.map(str::to_string),
                counts: None,
                count_problem: None,
            }),
        }
    }

    #[test]
    fn one_reachable_store_named_by_the_fleet_or_not() {
        let r = "Redis redis://10.0.0.1:6379/0";
        let same = [row("a", r, true, None), row("b", r, true, None)];
        assert!(verdict(&same, None).is_ok());
        assert!(verdict(&same, Some("redis://10.0.0.1:6379/0")).is_ok());
        assert!(
            verdict(&same, Some("redis://10.0.0.9:6379/0"))
                .unwrap_err()
                .contains("not the fleet's")
        );
        let files = [
            row("a", "files", false, None),
            row("b", "files", false, None),
        ];
        assert!(verdict(&files, None).unwrap_err().contains("do NOT share"));
        let down = [
            row("a", r, true, Some("cannot connect")),
            row("b", r, true, None),
        ];
        assert!(verdict(&down, None).is_err());
        let apart = [
            row("a", r, true, None),
            row("b", "Redis redis://10.0.0.2:6379/0", true, None),
        ];
        assert!(verdict(&apart, None).is_err());
        let unanswered = [
            row("a", r, true, None),
            StoreRow {
                member: "b".into(),
                kind: None,
                check: Err("unreachable".into()),
            },
        ];
        assert!(verdict(&unanswered, None).is_err());
    }
}
