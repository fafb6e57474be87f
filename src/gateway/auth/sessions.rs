//! Sessions every worker shares, never in a worker's memory, so a login through one
//! worker is valid through all, and through a restarted pool. Two places, chosen by
//! the properties OMERO.web uses (see [`SessionPlace::from_properties`]):
//! - files (the default): one small JSON file per session under `var/sessions/`,
//!   named by the session ID (256 random bits, hex);
//! - Redis (`omero.web.session_engine` = Django's cache engine and `omero.web.caches`
//!   naming a Redis LOCATION): one key per session, `omero-webctl:session:<ID>`, the
//!   same JSON, its TTL the session's next expiry. Pools and hosts naming the same
//!   Redis share their sessions.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::FileStamp;

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
    /// The client address of the login, for `sessions list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// When sessions end: `absolute` seconds after login, `idle` seconds after the last
/// request (0 = never, for either).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    pub absolute: u64,
    pub idle: u64,
}

/// Where the sessions live, as the site's properties say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionPlace {
    Files(PathBuf),
    /// A Redis URL as django-redis takes it.
    Redis(String),
}

impl SessionPlace {
    /// Read leniently as OMERO.web does: the cache engine (or `cached_db`) with a
    /// default cache on a django-redis backend means Redis; any other engine means our
    /// files. A Redis setting we cannot use (no LOCATION, a URL that does not parse)
    /// keeps the files too, and the second value says why. The caller logs
    /// [`SessionPlace::describe`] so the site sees what was understood.
    pub fn from_properties(
        engine: Option<&str>,
        caches: Option<&str>,
        files: &Path,
    ) -> (SessionPlace, Option<String>) {
        let files = SessionPlace::Files(files.to_path_buf());
        match crate::session_store::redis_location(engine, caches) {
            Ok(Some(url)) => (SessionPlace::Redis(url.text), None),
            Ok(None) => (files, None),
            Err(why) => (files, Some(why)),
        }
    }

    /// One line for the log: where this gateway keeps its sessions.
    pub fn describe(&self, problem: Option<&str>) -> String {
        let place = match self {
            SessionPlace::Files(dir) => format!("in files under {}", dir.display()),
            SessionPlace::Redis(url) => match crate::session_store::RedisUrl::parse(url) {
                Ok(parsed) => format!("in Redis {}", parsed.shown()),
                Err(_) => "in Redis".to_string(),
            },
        };
        match problem {
            Some(why) => format!("Sessions are kept {place} ({why})"),
            None => format!("Sessions are kept {place}"),
        }
    }
}

use crate::session_store::GATEWAY_SESSION_PREFIX as REDIS_PREFIX;
/// How long a Redis call may take before the store counts as down.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);

struct RedisBackend {
    client: redis::Client,
    /// The URL without its password, for errors.
    shown: String,
    /// One connection a worker reuses; dropped after an error, remade next call.
    connection: Mutex<Option<redis::Connection>>,
}

enum Backend {
    Files(PathBuf),
    Redis(Box<RedisBackend>),
    /// A store that could not be opened: every call fails with this.
    Unusable(String),
}

pub struct SessionStore {
    backend: Backend,
    expiry: Expiry,
    /// Session files this process has read, by ID, with what told the file then
    /// (see [`FileStamp`]): a request whose session file is unchanged costs one
    /// `lstat`, not an open, read and parse. Logout and `sessions kill` remove the
    /// file, and a touch replaces it (a new inode), so a stale entry is never used.
    read_files: Mutex<std::collections::HashMap<String, (FileStamp, Session)>>,
}

/// More remembered session files than this and the memory starts over: it bounds
/// a worker that sees very many sessions (only existing files are remembered).
const READ_FILES_MAX: usize = 10_000;

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
    /// A store of session files in `dir`.
    pub fn new(dir: &Path, expiry: Expiry) -> SessionStore {
        SessionStore {
            backend: Backend::Files(dir.to_path_buf()),
            expiry,
            read_files: Mutex::default(),
        }
    }

    /// A store at `place`. A Redis URL the client refuses is an error here (the
    /// caller has parsed it already, so this is rare).
    pub fn open(place: &SessionPlace, expiry: Expiry) -> Result<SessionStore, String> {
        let backend = match place {
            SessionPlace::Files(dir) => Backend::Files(dir.clone()),
            SessionPlace::Redis(url) => {
                let shown = crate::session_store::RedisUrl::parse(url)
                    .map(|u| u.shown())
                    .unwrap_or_else(|_| "Redis".into());
                Backend::Redis(Box::new(RedisBackend {
                    client: redis::Client::open(url.as_str())
                        .map_err(|e| format!("session store Redis {shown}: {e}"))?,
                    shown,
                    connection: Mutex::new(None),
                }))
            }
        };
        Ok(SessionStore {
            backend,
            expiry,
            read_files: Mutex::default(),
        })
    }

    /// A store whose every call fails with `why` (see `Access::new`).
    pub fn unusable(why: String, expiry: Expiry) -> SessionStore {
        SessionStore {
            backend: Backend::Unusable(why),
            expiry,
            read_files: Mutex::default(),
        }
    }

    /// A new session for `user`, logged in from `address`; its ID.
    pub fn create(&self, user: &str, address: Option<String>) -> Result<String, String> {
        let id = random_token();
        let now = now_secs();
        self.write(
            &id,
            &Session {
                user: user.to_string(),
                created: now,
                seen: now,
                address,
            },
        )?;
        Ok(id)
    }

    /// When `session` ends if nobody comes back with it (None: never).
    fn deadline(&self, session: &Session) -> Option<u64> {
        let absolute = (self.expiry.absolute > 0)
            .then(|| session.created.saturating_add(self.expiry.absolute));
        let idle = (self.expiry.idle > 0).then(|| session.seen.saturating_add(self.expiry.idle));
        absolute.into_iter().chain(idle).min()
    }

    fn write(&self, id: &str, session: &Session) -> Result<(), String> {
        let text = serde_json::to_vec(session).expect("a session serialises");
        match &self.backend {
            Backend::Files(dir) => crate::fsutil::write_atomic(&dir.join(id), &text, Some(0o600))
                .map_err(|e| format!("writing session file in {}: {e}", dir.display())),
            Backend::Unusable(why) => Err(why.clone()),
            Backend::Redis(_) => {
                let mut set = redis::cmd("SET");
                set.arg(format!("{REDIS_PREFIX}{id}")).arg(text);
                if let Some(deadline) = self.deadline(session) {
                    // The key goes with the session: Redis forgets what nobody can use.
                    set.arg("EXAT").arg(deadline);
                }
                self.redis(|c| set.query::<()>(c))
            }
        }
    }

    /// Runs `call` on this worker's Redis connection, connecting first when needed;
    /// a failed call drops the connection and is tried once more on a new one.
    fn redis<T>(
        &self,
        call: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, String> {
        let Backend::Redis(redis) = &self.backend else {
            unreachable!("only the Redis backend calls Redis")
        };
        let RedisBackend {
            client,
            shown,
            connection,
        } = redis.as_ref();
        let mut held = connection.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = String::new();
        for _ in 0..2 {
            if held.is_none() {
                match client.get_connection_with_timeout(REDIS_TIMEOUT) {
                    Ok(c) => {
                        let _ = c.set_read_timeout(Some(REDIS_TIMEOUT));
                        let _ = c.set_write_timeout(Some(REDIS_TIMEOUT));
                        *held = Some(c);
                    }
                    Err(e) => {
                        last = format!("cannot connect: {e}");
                        continue;
                    }
                }
            }
            let c = held.as_mut().expect("connected above");
            match call(c) {
                Ok(value) => return Ok(value),
                Err(e) => {
                    last = e.to_string();
                    *held = None;
                }
            }
        }
        Err(format!("session store Redis {shown}: {last}"))
    }

    /// The session's content, as it is (no expiry check, no touch).
    fn read(&self, id: &str) -> Result<Option<Session>, String> {
        if !valid_id(id) {
            return Ok(None);
        }
        match &self.backend {
            Backend::Files(dir) => Ok(self.read_file(&dir.join(id), id)),
            Backend::Unusable(why) => Err(why.clone()),
            Backend::Redis(_) => {
                let key = format!("{REDIS_PREFIX}{id}");
                let text: Option<Vec<u8>> = self.redis(|c| redis::cmd("GET").arg(&key).query(c))?;
                Ok(text.and_then(|t| serde_json::from_slice(&t).ok()))
            }
        }
    }

    /// The session in file `path`: the one remembered while the file is unchanged,
    /// else read (whole, then parsed) and remembered.
    fn read_file(&self, path: &Path, id: &str) -> Option<Session> {
        let mut remembered = self.read_files.lock().unwrap_or_else(|p| p.into_inner());
        let Some(stamp) = FileStamp::of(path) else {
            remembered.remove(id);
            return None;
        };
        if let Some((seen, session)) = remembered.get(id)
            && *seen == stamp
        {
            return Some(session.clone());
        }
        let mut bytes = Vec::new();
        let mut file = crate::fsutil::open_regular(path).ok()?;
        std::io::Read::read_to_end(&mut file, &mut bytes).ok()?;
        let session: Session = serde_json::from_slice(&bytes).ok()?;
        // The stamp of the file actually read: one replaced in between is read again
        // next time.
        let read_stamp = file
            .metadata()
            .ok()
            .map(|meta| FileStamp::of_metadata(&meta));
        if let Some(read_stamp) = read_stamp {
            if remembered.len() >= READ_FILES_MAX {
                remembered.clear();
            }
            remembered.insert(id.to_string(), (read_stamp, session.clone()));
        }
        Some(session)
    }

    fn expired(&self, session: &Session, now: u64) -> bool {
        self.deadline(session).is_some_and(|end| now >= end)
    }

    /// The live session with this ID, touched; an expired one is removed. An error
    /// only when the store cannot be asked (Redis down): the caller answers 503.
    pub fn get(&self, id: &str) -> Result<Option<Session>, String> {
        let Some(mut session) = self.read(id)? else {
            return Ok(None);
        };
        let now = now_secs();
        if self.expired(&session, now) {
            self.remove(id)?;
            return Ok(None);
        }
        if now >= session.seen + TOUCH_EVERY_SECS {
            session.seen = now;
            let _ = self.write(id, &session);
        }
        Ok(Some(session))
    }

    /// Every stored session with its ID, expired ones included (the listing marks
    /// them), oldest login first.
    pub fn list(&self) -> Result<Vec<(String, Session)>, String> {
        let ids: Vec<String> = match &self.backend {
            Backend::Files(dir) => match std::fs::read_dir(dir) {
                Ok(entries) => entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(format!("reading {}: {e}", dir.display())),
            },
            Backend::Unusable(why) => return Err(why.clone()),
            Backend::Redis(_) => {
                let pattern = format!("{REDIS_PREFIX}*");
                let keys: Vec<String> =
                    self.redis(|c| crate::session_store::scan_keys(c, &pattern))?;
                keys.iter()
                    .filter_map(|k| k.strip_prefix(REDIS_PREFIX).map(str::to_string))
                    .collect()
            }
        };
        let mut sessions = Vec::new();
        for id in ids {
            if let Some(session) = self.read(&id)? {
                sessions.push((id, session));
            }
        }
        sessions.sort_by_key(|(_, s)| s.created);
        Ok(sessions)
    }

    /// Whether `session` is past its expiry now.
    pub fn is_expired(&self, session: &Session) -> bool {
        self.expired(session, now_secs())
    }

    /// When `session` ends if nobody comes back with it (None: never).
    pub fn expires(&self, session: &Session) -> Option<u64> {
        self.deadline(session)
    }

    /// Removes the files of sessions past their expiry (Django's `clearsessions`):
    /// a session nobody comes back with would otherwise stay for ever. Run at each
    /// login, so the directory holds about as many files as live sessions. Redis
    /// expires its keys itself.
    pub fn sweep_expired(&self) -> usize {
        let Backend::Files(dir) = &self.backend else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Read, never touched: sweeping must not keep idle sessions alive.
            let expired = self
                .read(&name)
                .ok()
                .flatten()
                .is_some_and(|session| self.expired(&session, now_secs()));
            if expired && std::fs::remove_file(dir.join(&name)).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Ends the session `id` (nothing when there is none).
    pub fn remove(&self, id: &str) -> Result<(), String> {
        if !valid_id(id) {
            return Ok(());
        }
        self.read_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        match &self.backend {
            Backend::Files(dir) => match std::fs::remove_file(dir.join(id)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("removing session file in {}: {e}", dir.display()))
                }
                _ => Ok(()),
            },
            Backend::Unusable(why) => Err(why.clone()),
            Backend::Redis(_) => {
                let key = format!("{REDIS_PREFIX}{id}");
                self.redis(|c| redis::cmd("DEL").arg(&key).query::<()>(c))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_session_file_still_ends_at_once_when_another_worker_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let expiry = Expiry {
            absolute: 0,
            idle: 0,
        };
        let (worker, other) = (
            SessionStore::new(dir.path(), expiry),
            SessionStore::new(dir.path(), expiry),
        );
        let id = worker.create("alice", None).unwrap();
        for _ in 0..3 {
            assert_eq!(worker.get(&id).unwrap().unwrap().user, "alice");
        }
        // Rewritten by another worker (a touch, here with another user to tell):
        // read again.
        let mut changed = other.get(&id).unwrap().unwrap();
        changed.user = "bob".into();
        other.write(&id, &changed).unwrap();
        assert_eq!(worker.get(&id).unwrap().unwrap().user, "bob");
        // Logged out (or killed) through another worker: gone here at once.
        other.remove(&id).unwrap();
        assert!(worker.get(&id).unwrap().is_none());
        // A link in a session's place is never read as one.
        let id2 = worker.create("carol", None).unwrap();
        assert!(worker.get(&id2).unwrap().is_some());
        std::fs::remove_file(dir.path().join(&id2)).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join(&id2)).unwrap();
        std::fs::copy(
            dir.path().join(worker.create("carol", None).unwrap()),
            dir.path().join("elsewhere"),
        )
        .unwrap();
        assert!(worker.get(&id2).unwrap().is_none());
    }

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
        let id = store.create("alice", None).unwrap();
        assert_eq!(store.get(&id).unwrap().unwrap().user, "alice");
        // Another worker's store over the same directory sees it.
        let other = SessionStore::new(dir.path(), store.expiry);
        assert!(other.get(&id).unwrap().is_some());
        // Idle too long: gone, and its file with it.
        let mut old = other.get(&id).unwrap().unwrap();
        old.seen -= 11;
        store.write(&id, &old).unwrap();
        assert!(store.get(&id).unwrap().is_none());
        assert!(!dir.path().join(&id).exists());
        // Past the absolute age even though seen just now.
        let id = store.create("alice", None).unwrap();
        let mut old = store.get(&id).unwrap().unwrap();
        old.created -= 100;
        store.write(&id, &old).unwrap();
        assert!(store.get(&id).unwrap().is_none());
        assert!(store.get("../../etc/passwd").unwrap().is_none());
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
        let live = store.create("alice", None).unwrap();
        let old = store.create("bob", None).unwrap();
        let mut session = store.get(&old).unwrap().unwrap();
        session.created -= 200;
        store.write(&old, &session).unwrap();
        // A session idle for a while is not touched by the sweep.
        let mut idle = store.get(&live).unwrap().unwrap();
        idle.seen -= 50;
        store.write(&live, &idle).unwrap();
        assert_eq!(store.sweep_expired(), 1);
        assert!(dir.path().join(&live).exists() && !dir.path().join(&old).exists());
        assert_eq!(store.read(&live).unwrap().unwrap().seen, idle.seen);
    }

    #[test]
    fn the_place_follows_omeros_properties_and_says_what_it_understood() {
        let files = Path::new("/site/var/sessions");
        let redis = r#"{"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://:pw@10.0.0.1:6380/2"}}"#;
        let engine = Some("django.contrib.sessions.backends.cache");
        let (place, problem) = SessionPlace::from_properties(engine, Some(redis), files);
        assert_eq!(
            place,
            SessionPlace::Redis("redis://:pw@10.0.0.1:6380/2".into())
        );
        assert_eq!(
            place.describe(problem.as_deref()),
            "Sessions are kept in Redis redis://:***@10.0.0.1:6380/2"
        );
        let (place, problem) = SessionPlace::from_properties(None, Some(redis), files);
        assert_eq!(
            place.describe(problem.as_deref()),
            "Sessions are kept in files under /site/var/sessions"
        );
        // Redis named without a LOCATION: files, and the reason in the same line.
        let nowhere = r#"{"default": {"BACKEND": "django_redis.cache.RedisCache"}}"#;
        let (place, problem) = SessionPlace::from_properties(engine, Some(nowhere), files);
        assert_eq!(place, SessionPlace::Files(files.into()));
        assert_eq!(
            place.describe(problem.as_deref()),
            "Sessions are kept in files under /site/var/sessions (omero.web.caches names Redis but no LOCATION)"
        );
    }

    #[test]
    fn a_store_that_cannot_be_reached_is_an_error_never_no_session() {
        // A port nothing listens on: the store answers an error, which the guard
        // turns into 503, not "not logged in" and not "everyone".
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = SessionStore::open(
            &SessionPlace::Redis(format!("redis://127.0.0.1:{port}/0")),
            Expiry {
                absolute: 100,
                idle: 10,
            },
        )
        .unwrap();
        let id = random_token();
        let error = store.get(&id).unwrap_err();
        assert!(
            error.contains(&format!("session store Redis redis://127.0.0.1:{port}/0")),
            "{error}"
        );
        assert!(store.create("alice", None).is_err());
        assert!(store.list().is_err() && store.remove(&id).is_err());
        // The client is built without TLS: a rediss:// store cannot even be opened
        // (Access::new then makes every session call fail, i.e. 503).
        let tls = SessionStore::open(
            &SessionPlace::Redis("rediss://127.0.0.1:6379/0".into()),
            store.expiry,
        );
        assert!(tls.is_err());
        let unusable = SessionStore::unusable("broken".into(), store.expiry);
        assert_eq!(unusable.get(&id), Err("broken".to_string()));
    }
}
