//! Sessions every worker shares: one small JSON file per session under
//! `var/sessions/`, named by the session ID (256 random bits, hex). No worker keeps
//! sessions in memory, so a login through one worker is valid through all, and
//! through a restarted pool.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How often a session's last-seen time is written back: idle expiry is this coarse,
/// and a busy page does not rewrite its session file on every thumbnail.
const TOUCH_EVERY_SECS: u64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub user: String,
    /// Unix seconds of the login (absolute expiry counts from here).
    pub created: u64,
    /// Unix seconds of the last request (idle expiry counts from here).
    pub seen: u64,
}

/// When sessions end: `absolute` seconds after login, `idle` seconds after the last
/// request (0 = never, for either).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    pub absolute: u64,
    pub idle: u64,
}

pub struct SessionStore {
    dir: PathBuf,
    expiry: Expiry,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh random token, hex: for session IDs and CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Only IDs of our own shape ever name a file.
fn valid_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl SessionStore {
    pub fn new(dir: &Path, expiry: Expiry) -> SessionStore {
        SessionStore {
            dir: dir.to_path_buf(),
            expiry,
        }
    }

    fn file(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// A new session for `user`; its ID.
    pub fn create(&self, user: &str) -> Result<String, String> {
        let id = random_token();
        let now = now_secs();
        self.write(
            &id,
            &Session {
                user: user.to_string(),
                created: now,
                seen: now,
            },
        )?;
        Ok(id)
    }

    fn write(&self, id: &str, session: &Session) -> Result<(), String> {
        let text = serde_json::to_vec(session).expect("a session serialises");
        crate::fsutil::write_atomic(&self.file(id), &text, Some(0o600))
            .map_err(|e| format!("writing session file in {}: {e}", self.dir.display()))
    }

    /// The session file's content, as it is.
    fn read(&self, id: &str) -> Option<Session> {
        if !valid_id(id) {
            return None;
        }
        let file = crate::fsutil::open_regular(&self.file(id)).ok()?;
        serde_json::from_reader(file).ok()
    }

    fn expired(&self, session: &Session, now: u64) -> bool {
        (self.expiry.absolute > 0 && now >= session.created.saturating_add(self.expiry.absolute))
            || (self.expiry.idle > 0 && now >= session.seen.saturating_add(self.expiry.idle))
    }

    /// The live session with this ID, touched; an expired one is removed.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut session = self.read(id)?;
        let now = now_secs();
        if self.expired(&session, now) {
            self.remove(id);
            return None;
        }
        if now >= session.seen + TOUCH_EVERY_SECS {
            session.seen = now;
            let _ = self.write(id, &session);
        }
        Some(session)
    }

    /// Removes the files of sessions past their expiry (Django's `clearsessions`):
    /// a session nobody comes back with would otherwise stay for ever. Run at each
    /// login, so the directory holds about as many files as live sessions.
    pub fn sweep_expired(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Read, never touched: sweeping must not keep idle sessions alive.
            let expired = self
                .read(&name)
                .is_some_and(|session| self.expired(&session, now_secs()));
            if expired && std::fs::remove_file(self.file(&name)).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    pub fn remove(&self, id: &str) {
        if valid_id(id) {
            let _ = std::fs::remove_file(self.file(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_live_in_files_and_end_at_their_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::new(
            dir.path(),
            Expiry {
                absolute: 100,
                idle: 10,
            },
        );
        let id = store.create("alice").unwrap();
        assert_eq!(store.get(&id).unwrap().user, "alice");
        // Another worker's store over the same directory sees it.
        let other = SessionStore::new(dir.path(), store.expiry);
        assert!(other.get(&id).is_some());
        // Idle too long: gone, and its file with it.
        let mut old = other.get(&id).unwrap();
        old.seen -= 11;
        store.write(&id, &old).unwrap();
        assert!(store.get(&id).is_none());
        assert!(!dir.path().join(&id).exists());
        // Past the absolute age even though seen just now.
        let id = store.create("alice").unwrap();
        let mut old = store.get(&id).unwrap();
        old.created -= 100;
        store.write(&id, &old).unwrap();
        assert!(store.get(&id).is_none());
        assert!(store.get("../../etc/passwd").is_none());
    }

    #[test]
    fn the_sweep_removes_only_expired_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::new(
            dir.path(),
            Expiry {
                absolute: 100,
                idle: 0,
            },
        );
        let live = store.create("alice").unwrap();
        let old = store.create("bob").unwrap();
        let mut session = store.get(&old).unwrap();
        session.created -= 200;
        store.write(&old, &session).unwrap();
        // A session idle for a while is not touched by the sweep.
        let mut idle = store.get(&live).unwrap();
        idle.seen -= 50;
        store.write(&live, &idle).unwrap();
        assert_eq!(store.sweep_expired(), 1);
        assert!(dir.path().join(&live).exists() && !dir.path().join(&old).exists());
        assert_eq!(store.read(&live).unwrap().seen, idle.seen);
    }
}
