//! Finding the Python that runs an OMERO.web site and what it has installed:
//! `omero.web.python` (a venv directory or an interpreter), else `python3` on PATH.
//! One short probe answers versions and where the `omeroweb` package lives; it is
//! remembered per interpreter for the life of the process (the panel asks often).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

/// What a probe of an interpreter found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonEnv {
    /// The interpreter as given (a venv's `bin/python` stays the venv's, so its
    /// site-packages apply).
    pub python: PathBuf,
    /// The `gunicorn` script next to the interpreter, if there is one.
    pub gunicorn_script: Option<PathBuf>,
    /// The installed `omeroweb` package directory (holds `manage.py`; OMERO runs
    /// Gunicorn and manage.py from there).
    pub omeroweb_dir: PathBuf,
    /// "python", "omero-web", "gunicorn", "omero-py", "Django" → version.
    pub versions: BTreeMap<String, String>,
}

impl PythonEnv {
    /// The venv's `bin` directory (OMERO puts it first on PATH).
    pub fn bin_dir(&self) -> Option<&Path> {
        self.python.parent()
    }

    /// The argv prefix that runs Gunicorn: the venv's script, else `python -m gunicorn`.
    pub fn gunicorn_command(&self) -> Vec<std::ffi::OsString> {
        match &self.gunicorn_script {
            Some(script) => vec![self.python.clone().into(), script.clone().into()],
            None => vec![self.python.clone().into(), "-m".into(), "gunicorn".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PythonError {
    #[error(
        "no Python found for this OMERO.web site: {what}; set omero.web.python to its venv (scripts/omeroweb-venv builds one)"
    )]
    NotFound { what: String },
    #[error("{python} cannot be run: {reason}")]
    Broken { python: String, reason: String },
    #[error(
        "{python} has no {missing} installed (pip install omero-web gunicorn into that venv, or set omero.web.python to another one)"
    )]
    Missing { python: String, missing: String },
}

/// Resolves the interpreter: a venv directory means its `bin/python`.
pub fn interpreter(configured: Option<&Path>) -> Result<PathBuf, PythonError> {
    match configured {
        Some(path) if path.is_dir() => {
            let python = path.join("bin").join("python");
            if python.exists() {
                Ok(python)
            } else {
                Err(PythonError::NotFound {
                    what: format!(
                        "omero.web.python = {} is a directory without bin/python",
                        path.display()
                    ),
                })
            }
        }
        Some(path) if path.exists() => Ok(path.to_path_buf()),
        Some(path) => Err(PythonError::NotFound {
            what: format!("omero.web.python = {} does not exist", path.display()),
        }),
        None => find_on_path("python3").ok_or_else(|| PythonError::NotFound {
            what: "omero.web.python is unset and there is no python3 on PATH".into(),
        }),
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The probe runs without importing omeroweb (that would load Django's settings).
const PROBE: &str = r#"
import json, sys, importlib.util, importlib.metadata as md
out = {"python": sys.version.split()[0]}
for dist in ("omero-web", "gunicorn", "omero-py", "Django"):
    try:
        out[dist] = md.version(dist)
    except Exception:
        pass
spec = importlib.util.find_spec("omeroweb")
out["omeroweb_dir"] = list(spec.submodule_search_locations)[0] if spec else None
print(json.dumps(out))
"#;

#[derive(Debug, Deserialize)]
struct ProbeOutput {
    omeroweb_dir: Option<PathBuf>,
    #[serde(flatten)]
    versions: BTreeMap<String, serde_json::Value>,
}

static PROBES: Mutex<Option<HashMap<PathBuf, PythonEnv>>> = Mutex::new(None);

/// Probes the interpreter of `omero.web.python` (remembered per interpreter).
pub fn probe(configured: Option<&Path>) -> Result<PythonEnv, PythonError> {
    let python = interpreter(configured)?;
    if let Some(env) = PROBES
        .lock()
        .expect("probe cache")
        .as_ref()
        .and_then(|m| m.get(&python))
    {
        return Ok(env.clone());
    }
    let env = run_probe(&python)?;
    PROBES
        .lock()
        .expect("probe cache")
        .get_or_insert_with(HashMap::new)
        .insert(python, env.clone());
    Ok(env)
}

fn run_probe(python: &Path) -> Result<PythonEnv, PythonError> {
    let shown = python.display().to_string();
    let broken = |reason: String| PythonError::Broken {
        python: shown.clone(),
        reason,
    };
    let output = crate::supervisor::gunicorn::process::output_with_timeout(
        std::process::Command::new(python).args(["-c", PROBE]),
        Duration::from_secs(30),
    )
    .map_err(|e| broken(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(broken(
            stderr
                .lines()
                .last()
                .unwrap_or("exited with an error")
                .into(),
        ));
    }
    let parsed: ProbeOutput = serde_json::from_slice(&output.stdout)
        .map_err(|e| broken(format!("unexpected probe output: {e}")))?;
    let versions: BTreeMap<String, String> = parsed
        .versions
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
        .collect();
    let missing: Vec<&str> = [("omero-web", "omero-web"), ("gunicorn", "gunicorn")]
        .iter()
        .filter(|(dist, _)| !versions.contains_key(*dist))
        .map(|(_, name)| *name)
        .collect();
    let omeroweb_dir = match parsed.omeroweb_dir {
        Some(dir) if missing.is_empty() => dir,
        _ => {
            return Err(PythonError::Missing {
                python: shown,
                missing: if missing.is_empty() {
                    "omeroweb package".into()
                } else {
                    missing.join(" and ")
                },
            });
        }
    };
    let script = python.with_file_name("gunicorn");
    Ok(PythonEnv {
        python: python.to_path_buf(),
        gunicorn_script: script.is_file().then_some(script),
        omeroweb_dir,
        versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_venv_directory_means_its_interpreter_and_missing_paths_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = interpreter(Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("without bin/python"), "{err}");
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/python"), "").unwrap();
        assert_eq!(
            interpreter(Some(dir.path())).unwrap(),
            dir.path().join("bin/python")
        );
        let err = interpreter(Some(&dir.path().join("nope"))).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(err.to_string().contains("scripts/omeroweb-venv"), "{err}");
    }

    #[test]
    fn a_python_without_omero_web_is_named_as_such() {
        // Debian's python3 has neither omero-web nor gunicorn installed.
        let Some(python) = find_on_path("python3") else {
            eprintln!("skipped: no python3 on PATH");
            return;
        };
        match run_probe(&python) {
            Err(PythonError::Missing { missing, .. }) => {
                assert!(missing.contains("omero-web"), "{missing}")
            }
            Ok(env) => assert!(env.versions.contains_key("omero-web")),
            Err(other) => panic!("unexpected probe failure: {other}"),
        }
    }
}
