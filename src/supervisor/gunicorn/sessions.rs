//! The session store across a change of omero-web release: whether the sessions
//! stored by the running Django can be read by the new one.
//!
//! OMERO's upgrade docs (and omero-web PRs 435, 492, 645) tell sysadmins to clear the
//! session store when Django's major version changes: sessions written by one major
//! may not load in the next (`binascii.Error: Incorrect padding`, `JSONDecodeError`),
//! and `clearsessions` itself loads every session, so it fails too. The preflight
//! decides before anything is changed and says so; when the answer is not "keep",
//! the operator chooses with `--sessions keep|clear`.

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
}

impl std::str::FromStr for SessionAction {
    type Err = String;
    fn from_str(s: &str) -> Result<SessionAction, String> {
        match s {
            "keep" => Ok(SessionAction::Keep),
            "clear" => Ok(SessionAction::Clear),
            other => Err(format!(
                "{other}: the session store can be kept (keep) or cleared (clear)"
            )),
        }
    }
}

impl SessionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionAction::Keep => "keep",
            SessionAction::Clear => "clear",
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

impl Gunicorn {
    /// Clears the session store with `python` (the new venv); how many sessions were
    /// deleted (`None` for a cache, which cannot count them).
    pub(super) fn clear_sessions(
        &self,
        settings: &Settings,
        python: &PythonEnv,
        run_as: Option<&RunAs>,
    ) -> Result<Option<u64>, String> {
        let mut cmd = self.python_command(
            settings,
            python,
            run_as,
            &[
                python.python.clone().into(),
                "-c".into(),
                CLEAR_SESSIONS.into(),
            ],
        );
        let limit = Duration::from_secs(settings.boot_timeout.max(30) + 60);
        match process::output_with_timeout(&mut cmd, limit) {
            Ok(out) if out.status.success() => {
                let count: i64 = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .lines()
                    .last()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(-1);
                Ok(u64::try_from(count).ok())
            }
            Ok(out) => Err(format!(
                "clearing the session store failed: {}",
                last_lines(&out.stderr, 1)
                    .pop()
                    .unwrap_or_else(|| format!("Python exited with {}", out.status))
            )),
            Err(e) => Err(format!("clearing the session store did not finish: {e}")),
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
