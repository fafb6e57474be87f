//! The session store across a change of omero-web release: whether the sessions
//! stored by the running Django can be read by the new one.
//!
//! OMERO's upgrade docs (and omero-web PRs 435, 492, 645) tell sysadmins to clear the
//! session store when Django's major version changes: sessions written by one major
//! may not load in the next (`binascii.Error: Incorrect padding`, `JSONDecodeError`),
//! and `clearsessions` itself loads every session, so it fails too. The preflight
//! decides before anything is changed and says so; when the answer is not "keep",
//! the operator chooses with `--sessions keep|convert|clear`. Convert re-encodes each
//! session: the old venv's Django reads it, the new one writes it back (file and
//! database stores; a cache store cannot list its sessions, so it cannot be converted).

use std::time::Duration;

use super::python::PythonEnv;
use super::{Gunicorn, RunAs, last_lines, process};
use crate::config::Settings;

/// What to do with the stored sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAction {
    /// Leave them: the new Django reads them.
    Keep,
    /// Delete every stored session: users log in again.
    Clear,
    /// Re-encode every stored session: the old venv's Django reads each one, the new
    /// venv's Django writes it back under the same key and expiry, so users stay
    /// logged in. Not for the cache engine (see `convertible`).
    Convert,
}

impl std::str::FromStr for SessionAction {
    type Err = String;
    fn from_str(s: &str) -> Result<SessionAction, String> {
        match s {
            "keep" => Ok(SessionAction::Keep),
            "clear" => Ok(SessionAction::Clear),
            "convert" => Ok(SessionAction::Convert),
            other => Err(format!(
                "{other}: the session store can be kept (keep), converted (convert) or cleared (clear)"
            )),
        }
    }
}

impl SessionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionAction::Keep => "keep",
            SessionAction::Clear => "clear",
            SessionAction::Convert => "convert",
        }
    }
}

/// The preflight's answer: what is advised, and why, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAdvice {
    pub action: SessionAction,
    pub why: String,
}

/// The Django major version ("5" of "5.2.20").
fn major(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

/// Decides from the Django versions of the old and the new venv and the configured
/// `omero.web.session_engine`.
pub fn advise(old_django: Option<&str>, new_django: Option<&str>, engine: &str) -> SessionAdvice {
    let (old_major, new_major) = (old_django.and_then(major), new_django.and_then(major));
    let shown = |v: Option<&str>| v.unwrap_or("unknown").to_string();
    let versions = format!("Django {} → {}", shown(old_django), shown(new_django));
    match (old_major, new_major) {
        (Some(a), Some(b)) if a == b => SessionAdvice {
            action: SessionAction::Keep,
            why: format!(
                "{versions}: the same major version reads the sessions in {engine} as they are"
            ),
        },
        (Some(_), Some(_)) => SessionAdvice {
            action: SessionAction::Clear,
            why: format!(
                "{versions}: sessions in {engine} written by one Django major may not load in another (OMERO's upgrade docs: clear the session store)"
            ),
        },
        _ => SessionAdvice {
            action: SessionAction::Clear,
            why: format!(
                "{versions}: the Django version of a venv is unknown, so whether it reads the sessions in {engine} is too"
            ),
        },
    }
}

/// Deletes every session of the configured store, in Django's terms, run in the new
/// venv with the site's config (the file engine: `<cookie name>*` files in
/// `SESSION_FILE_PATH` or the temp directory, as OMERO's docs do by hand).
const CLEAR_SESSIONS: &str = r#"
import os, tempfile
import omeroweb.wsgi
from django.conf import settings
from django.core.cache import caches
engine = settings.SESSION_ENGINE
cleared = 0
if engine.endswith(".file") or engine == "omeroweb.filesessionstore":
    path = getattr(settings, "SESSION_FILE_PATH", None) or tempfile.gettempdir()
    for name in os.listdir(path):
        if name.startswith(settings.SESSION_COOKIE_NAME):
            try:
                os.remove(os.path.join(path, name))
                cleared += 1
            except FileNotFoundError:
                pass
elif engine.endswith(".cache"):
    caches[settings.SESSION_CACHE_ALIAS].clear()
    cleared = -1
else:
    from django.contrib.sessions.models import Session
    cleared = Session.objects.all().delete()[0]
    if engine.endswith(".cached_db"):
        caches[settings.SESSION_CACHE_ALIAS].clear()
print(cleared)
"#;

/// Whether `convert` can be done for `engine`: the file and the database engines can
/// list their sessions, the cache engine cannot (Django's cache API has no way to list
/// keys, and a shared cache holds more than sessions), so it is refused before acting.
pub fn convertible(engine: &str) -> Result<(), String> {
    if engine.ends_with(".cache") {
        return Err(format!(
            "sessions in {engine} cannot be converted: Django's cache API cannot list the stored sessions; choose --sessions keep or --sessions clear"
        ));
    }
    Ok(())
}

/// The first half of `convert`, run in the OLD venv: every unexpired session of the
/// configured store, decoded by the Django that wrote it, pickled into the file named
/// by argv[1] as (key, data or None when it does not decode, expiry as epoch seconds).
/// The file backend's own `load()` is not used: it creates a fresh session for an
/// expired or broken one.
const READ_SESSIONS: &str = r#"
import os, sys, pickle, tempfile, datetime
import omeroweb.wsgi
from importlib import import_module
from django.conf import settings
from django.utils import timezone
os.umask(0o077)
engine = settings.SESSION_ENGINE
store = import_module(engine).SessionStore
found = []
if engine.endswith(".file") or engine == "omeroweb.filesessionstore":
    path = getattr(settings, "SESSION_FILE_PATH", None) or tempfile.gettempdir()
    prefix = settings.SESSION_COOKIE_NAME
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if not name.startswith(prefix) or not os.path.isfile(full):
            continue
        try:
            mtime = os.stat(full).st_mtime
            with open(full, encoding="ascii") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            continue
        data = store().decode(text) if text else {}
        modified = datetime.datetime.fromtimestamp(mtime, tz=datetime.timezone.utc)
        if data and store().get_expiry_age(modification=modified, expiry=data.get("_session_expiry")) <= 0:
            continue
        found.append((name[len(prefix):], data or None, mtime))
else:
    from django.contrib.sessions.models import Session
    for row in Session.objects.filter(expire_date__gt=timezone.now()):
        data = store().decode(row.session_data)
        found.append((row.session_key, data or None, row.expire_date.timestamp()))
with open(sys.argv[1], "wb") as out:
    pickle.dump(found, out, protocol=2)
print(len(found))
"#;

/// The second half of `convert`, run in the NEW venv: each session read by the first
/// half is saved again by this Django under the same key, and its expiry put back (the
/// file's mtime, the row's expire_date). One that did not decode, or that this Django
/// cannot store (data its serializer cannot encode), is deleted: it would not load
/// anyway. Prints "converted dropped"; a dropped one is named by its key's first 6
/// characters only (a key is a credential).
const WRITE_SESSIONS: &str = r#"
import os, sys, pickle, tempfile, datetime
import omeroweb.wsgi
from importlib import import_module
from django.conf import settings
engine = settings.SESSION_ENGINE
store = import_module(engine).SessionStore
is_file = engine.endswith(".file") or engine == "omeroweb.filesessionstore"
with open(sys.argv[1], "rb") as f:
    found = pickle.load(f)
converted = dropped = 0
for key, data, expiry in found:
    session = store(session_key=key)
    why = None
    if data is None:
        why = "it does not decode with the old Django"
    elif session.session_key != key:
        why = "its key is not one this Django accepts"
    else:
        session._session_cache = dict(data)
        session.modified = True
        try:
            session.save()
        except Exception as e:
            why = "this Django cannot store it: %s" % e
    if why is None:
        if is_file:
            os.utime(session._key_to_file(key), (expiry, expiry))
        else:
            from django.contrib.sessions.models import Session
            when = datetime.datetime.fromtimestamp(expiry, datetime.timezone.utc)
            Session.objects.filter(session_key=key).update(expire_date=when)
        converted += 1
        continue
    print("session %s...: dropped, %s" % (key[:6], why), file=sys.stderr)
    try:
        store().delete(key)
    except Exception:
        if is_file:
            path = getattr(settings, "SESSION_FILE_PATH", None) or tempfile.gettempdir()
            try:
                os.remove(os.path.join(path, settings.SESSION_COOKIE_NAME + key))
            except OSError:
                pass
    dropped += 1
print(converted, dropped)
"#;

/// What `convert` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Converted {
    pub converted: u64,
    pub dropped: u64,
}

impl Gunicorn {
    /// Runs one of this module's scripts with `python` and the site's config; its last
    /// line of output, or why it failed (`what` names the step).
    fn session_script(
        &self,
        settings: &Settings,
        python: &PythonEnv,
        run_as: Option<&RunAs>,
        script: &str,
        args: &[std::ffi::OsString],
        what: &str,
    ) -> Result<String, String> {
        let mut argv: Vec<std::ffi::OsString> =
            vec![python.python.clone().into(), "-c".into(), script.into()];
        argv.extend_from_slice(args);
        let mut cmd = self.python_command(settings, python, run_as, &argv);
        let limit = Duration::from_secs(settings.boot_timeout.max(30) + 60);
        match process::output_with_deadline(&mut cmd, limit) {
            Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
                .trim()
                .lines()
                .last()
                .unwrap_or_default()
                .to_string()),
            Ok(out) => Err(format!(
                "{what} failed: {}",
                last_lines(&out.stderr, 1)
                    .pop()
                    .unwrap_or_else(|| format!("Python exited with {}", out.status))
            )),
            Err(e) => Err(format!("{what} did not finish: {e}")),
        }
    }

    /// Clears the session store with `python` (the new venv); how many sessions were
    /// deleted (`None` for a cache, which cannot count them).
    pub(super) fn clear_sessions(
        &self,
        settings: &Settings,
        python: &PythonEnv,
        run_as: Option<&RunAs>,
    ) -> Result<Option<u64>, String> {
        let last = self.session_script(
            settings,
            python,
            run_as,
            CLEAR_SESSIONS,
            &[],
            "clearing the session store",
        )?;
        Ok(u64::try_from(last.parse::<i64>().unwrap_or(-1)).ok())
    }

    /// Converts the session store: `old` (the running venv) reads every session, `new`
    /// writes it back (see READ_SESSIONS and WRITE_SESSIONS). The sessions cross in a
    /// file of the site's `var/session-convert/`, owned by the user Python runs as and
    /// removed afterwards whatever happened.
    pub(super) fn convert_sessions(
        &self,
        settings: &Settings,
        old: (&PythonEnv, Option<&RunAs>),
        new: (&PythonEnv, Option<&RunAs>),
    ) -> Result<Converted, String> {
        let dir = self.site.var_dir().join("session-convert");
        self.create_dir(&dir, new.1)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let file = dir.join("sessions.pickle");
        let arg = [file.clone().into_os_string()];
        let result = self
            .session_script(
                settings,
                old.0,
                old.1,
                READ_SESSIONS,
                &arg,
                "reading the sessions with the old venv",
            )
            .and_then(|_| {
                self.session_script(
                    settings,
                    new.0,
                    new.1,
                    WRITE_SESSIONS,
                    &arg,
                    "writing the sessions with the new venv",
                )
            });
        let _ = std::fs::remove_file(&file);
        let last = result?;
        let mut counts = last.split_whitespace().map(str::parse::<u64>);
        match (counts.next(), counts.next()) {
            (Some(Ok(converted)), Some(Ok(dropped))) => Ok(Converted { converted, dropped }),
            _ => Err(format!(
                "writing the sessions with the new venv printed {last:?}, not its counts"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "django.contrib.sessions.backends.file";

    #[test]
    fn the_same_django_major_keeps_the_sessions() {
        let advice = advise(Some("5.2.20"), Some("5.2.9"), FILE);
        assert_eq!(advice.action, SessionAction::Keep);
        assert!(
            advice.why.contains("Django 5.2.20 → 5.2.9"),
            "{}",
            advice.why
        );
        assert!(advice.why.contains(FILE), "{}", advice.why);
    }

    #[test]
    fn another_django_major_asks_to_clear_either_way() {
        let up = advise(
            Some("4.2.16"),
            Some("5.2.20"),
            "django.contrib.sessions.backends.cache",
        );
        assert_eq!(up.action, SessionAction::Clear);
        assert!(up.why.contains("Django 4.2.16 → 5.2.20"), "{}", up.why);
        assert!(up.why.contains("clear the session store"), "{}", up.why);
        // Back down (a rollback's direction) is no safer.
        assert_eq!(
            advise(Some("5.2.20"), Some("4.2.16"), FILE).action,
            SessionAction::Clear
        );
    }

    #[test]
    fn convert_is_refused_for_a_cache_store_only() {
        let why = convertible("django.contrib.sessions.backends.cache").unwrap_err();
        assert!(why.contains("cannot list"), "{why}");
        assert!(why.contains("--sessions keep or --sessions clear"), "{why}");
        for listed in [
            FILE,
            "django.contrib.sessions.backends.db",
            "django.contrib.sessions.backends.cached_db",
            "omeroweb.filesessionstore",
        ] {
            assert_eq!(convertible(listed), Ok(()), "{listed}");
        }
        assert_eq!("convert".parse(), Ok(SessionAction::Convert));
    }

    #[test]
    fn an_unknown_django_version_is_not_taken_for_the_same() {
        let advice = advise(None, Some("5.2.20"), FILE);
        assert_eq!(advice.action, SessionAction::Clear);
        assert!(
            advice.why.contains("Django unknown → 5.2.20"),
            "{}",
            advice.why
        );
        assert_eq!(
            advise(Some("5.2"), Some("x"), FILE).action,
            SessionAction::Clear
        );
    }
}
