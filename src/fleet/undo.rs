//! Undoing a whole rolling upgrade: the roll records, member by member, which members
//! it gave a new generation (`var/fleet/last-roll.json` of the control site);
//! `fleet rollback` returns each of them to its previous generation, the last changed
//! first, with the same drain → act → health → undrain steps as the roll. A roll that
//! stopped half-way is undone the same way: its record holds the members it finished.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Fleet;

/// What `rollback` on a member may take on top of the fleet's ssh timeout.
const ROLLBACK_EXTRA: Duration = Duration::from_secs(180);

/// The members the last generation-changing roll changed, in the order it changed them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RollRecord {
    /// The roll's verb ("upgrade").
    pub action: String,
    /// When the roll changed its first member (UTC, RFC 3339): a later roll that
    /// changed nothing leaves this record, so the undo says which roll it undoes.
    #[serde(default)]
    pub started: String,
    pub changed: Vec<String>,
}

impl Fleet {
    fn roll_record_file(&self) -> PathBuf {
        self.state_dir().join("last-roll.json")
    }

    /// Saves `changed` as the members the roll now running changed (rewritten after
    /// every member, so a roll cut short still knows what it did).
    pub(super) fn record_roll(&self, action: &str, changed: &[String]) -> anyhow::Result<()> {
        let started = match self.last_roll() {
            // The same roll saving its next member keeps its start.
            Ok(Some(previous))
                if changed.len() > 1 && previous.changed[..] == changed[..changed.len() - 1] =>
            {
                previous.started
            }
            _ => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let record = RollRecord {
            action: action.to_string(),
            started,
            changed: changed.to_vec(),
        };
        self.save_record(&record)
    }

    fn save_record(&self, record: &RollRecord) -> anyhow::Result<()> {
        let path = self.roll_record_file();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
        let text = serde_json::to_vec_pretty(record).expect("a roll record serialises");
        crate::fsutil::write_atomic(&path, &text, None)
            .map_err(|e| anyhow::anyhow!("cannot record the roll in {}: {e}", path.display()))
    }

    /// The last roll's record (None: no roll to undo).
    pub fn last_roll(&self) -> anyhow::Result<Option<RollRecord>> {
        let path = self.roll_record_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Returns every member the last roll changed to its previous generation, the last
    /// changed first: drain, `rollback` on the member, health check, undrain. Stops at
    /// the first failure (that member stays drained); the record then keeps the members
    /// not yet undone, so running it again goes on where it stopped. Returns the
    /// members undone, in order.
    pub fn undo_roll(&self, say: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<String>> {
        let Some(mut record) = self.last_roll()? else {
            anyhow::bail!("no rolling upgrade to undo (none changed a member since the last undo)");
        };
        say(&format!(
            "Undoing the rolling {} of {}: {}",
            record.action,
            record.started,
            record.changed.join(", ")
        ));
        let mut undone = Vec::new();
        while let Some(name) = record.changed.last().cloned() {
            let before = undone.clone();
            let stop = |what: String, left: &[String]| {
                let mut message = what;
                if !before.is_empty() {
                    message.push_str(&format!("; rolled back before it: {}", before.join(", ")));
                }
                let rest = &left[..left.len().saturating_sub(1)];
                if !rest.is_empty() {
                    message.push_str(&format!("; not rolled back: {}", rest.join(", ")));
                }
                anyhow::anyhow!("{message}")
            };
            let member = self
                .file
                .require(&name)
                .map_err(|e| stop(format!("{name}: {e:#}"), &record.changed))?
                .clone();
            let kept_out = self.drained().contains(&name);
            if !kept_out {
                self.drain(&name, say)
                    .map_err(|e| stop(format!("{name}: cannot drain: {e:#}"), &record.changed))?;
            }
            say(&format!("{name}: rollback…"));
            let answer = self.transport.run(&member, &["rollback"], ROLLBACK_EXTRA);
            if !answer.succeeded() {
                return Err(stop(
                    format!(
                        "{name}: rollback failed ({}); it stays drained",
                        answer.failure()
                    ),
                    &record.changed,
                ));
            }
            if let Err(e) = self.wait_healthy(&member) {
                return Err(stop(
                    format!("{name}: rolled back, {e:#}; it stays drained"),
                    &record.changed,
                ));
            }
            say(&format!("{name}: previous generation back, healthy"));
            record.changed.pop();
            self.save_record(&record)
                .map_err(|e| stop(format!("{name}: {e:#}"), &[]))?;
            undone.push(name.clone());
            if !kept_out {
                self.undrain(&name, say)
                    .map_err(|e| stop(format!("{name}: cannot undrain: {e:#}"), &record.changed))?;
            }
        }
        let path = self.roll_record_file();
        std::fs::remove_file(&path)
            .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", path.display()))?;
        Ok(undone)
    }
}
