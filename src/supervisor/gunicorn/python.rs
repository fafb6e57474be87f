//! Finding the Python that runs an OMERO.web site and what it has installed:
//! `omero.web.python` (a venv directory or an interpreter), else `python3` on PATH.
//! Versions and the `omeroweb` package directory are read from site-packages, never
//! by running the interpreter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

    /// The argv prefix that runs Gunicorn: the venv's script itself, as `omero web
    /// start` runs it (its `#!` line picks the interpreter, so the master's command
    /// line is the one OMERO's gives), else `python -m gunicorn`.
    pub fn gunicorn_command(&self) -> Vec<std::ffi::OsString> {
        match &self.gunicorn_script {
            Some(script) => vec![script.clone().into()],
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

/// Distributions whose versions are reported, by their dist-info name.
const DISTRIBUTIONS: [(&str, &str); 4] = [
    ("omero_web", "omero-web"),
    ("gunicorn", "gunicorn"),
    ("omero_py", "omero-py"),
    ("django", "Django"),
];

/// What is installed for the interpreter, read from its site-packages without running
/// anything: status, diagnostics and the panel read a config file that another user
/// may write, and must never execute what it names (as root least of all).
pub fn inspect(configured: Option<&Path>) -> Result<PythonEnv, PythonError> {
    let python = interpreter(configured)?;
    let shown = python.display().to_string();
    let mut versions = BTreeMap::new();
    let mut omeroweb_dir = None;
    for dir in site_packages(&python) {
        if omeroweb_dir.is_none() && dir.join("omeroweb").join("manage.py").is_file() {
            omeroweb_dir = Some(dir.join("omeroweb"));
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_lowercase();
            let Some(stem) = name.strip_suffix(".dist-info") else {
                continue;
            };
            let Some((dist, version)) = stem.split_once('-') else {
                continue;
            };
            if let Some((_, shown_as)) = DISTRIBUTIONS.iter().find(|(d, _)| *d == dist) {
                versions
                    .entry(shown_as.to_string())
                    .or_insert_with(|| version.to_string());
            }
        }
    }
    if let Some(version) = venv_root(&python).and_then(|root| venv_python_version(&root)) {
        versions.insert("python".into(), version);
    }
    let missing: Vec<&str> = ["omero-web", "gunicorn"]
        .into_iter()
        .filter(|dist| !versions.contains_key(*dist))
        .collect();
    match omeroweb_dir {
        Some(dir) if missing.is_empty() => {
            let script = python.with_file_name("gunicorn");
            Ok(PythonEnv {
                gunicorn_script: script.is_file().then_some(script),
                python,
                omeroweb_dir: dir,
                versions,
            })
        }
        _ => Err(PythonError::Missing {
            python: shown,
            missing: if missing.is_empty() {
                "omeroweb package".into()
            } else {
                missing.join(" and ")
            },
        }),
    }
}

/// Every distribution installed for the interpreter, by its normalised name
/// (lower case, `-` and `.` as `_`, as dist-info directories spell it) → version,
/// read from site-packages without running anything.
pub fn installed(python: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for dir in site_packages(python) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_lowercase();
            if let Some((dist, version)) = name
                .strip_suffix(".dist-info")
                .and_then(|stem| stem.split_once('-'))
            {
                found
                    .entry(normalise(dist))
                    .or_insert_with(|| version.to_string());
            }
        }
    }
    found
}

/// A distribution name as dist-info directories spell it: `omero-iviewer` →
/// `omero_iviewer`.
pub fn normalise(dist: &str) -> String {
    dist.to_lowercase().replace(['-', '.'], "_")
}

/// The venv an interpreter belongs to (`bin/python` next to `pyvenv.cfg`).
pub fn venv_root(python: &Path) -> Option<PathBuf> {
    let root = python.parent()?.parent()?;
    root.join("pyvenv.cfg")
        .is_file()
        .then(|| root.to_path_buf())
}

fn venv_python_version(root: &Path) -> Option<String> {
    let cfg = std::fs::read_to_string(root.join("pyvenv.cfg")).ok()?;
    cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_string())
    })
}

/// Where the interpreter's packages are: a venv's `lib/python3.X/site-packages`, else
/// Debian's and /usr/local's places for that Python version.
fn site_packages(python: &Path) -> Vec<PathBuf> {
    if let Some(root) = venv_root(python) {
        return std::fs::read_dir(root.join("lib"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path().join("site-packages"))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
    }
    let resolved = std::fs::canonicalize(python).unwrap_or_else(|_| python.to_path_buf());
    let name = resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let version = name.strip_prefix("python").unwrap_or("3");
    let mut dirs = vec![
        PathBuf::from(format!("/usr/local/lib/python{version}/dist-packages")),
        PathBuf::from(format!("/usr/local/lib/python{version}/site-packages")),
        PathBuf::from("/usr/lib/python3/dist-packages"),
    ];
    if let Some(prefix) = resolved.parent().and_then(Path::parent) {
        dirs.push(prefix.join(format!("lib/python{version}/site-packages")));
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
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
    fn versions_and_the_package_come_from_site_packages() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path();
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/python"), "#!/bin/sh\ntouch ran\n").unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            "home = /usr/bin\nversion = 3.11.2\n",
        )
        .unwrap();
        let sp = venv.join("lib/python3.11/site-packages");
        std::fs::create_dir_all(sp.join("omeroweb")).unwrap();
        let err = inspect(Some(venv)).unwrap_err();
        assert!(
            err.to_string()
                .contains("has no omero-web and gunicorn installed"),
            "{err}"
        );
        std::fs::write(sp.join("omeroweb/manage.py"), "").unwrap();
        for d in [
            "omero_web-5.33.2.dist-info",
            "gunicorn-27.0.1.dist-info",
            "Django-5.2.19.dist-info",
        ] {
            std::fs::create_dir_all(sp.join(d)).unwrap();
        }
        let env = inspect(Some(venv)).unwrap();
        assert_eq!(env.omeroweb_dir, sp.join("omeroweb"));
        assert_eq!(env.versions["omero-web"], "5.33.2");
        assert_eq!(env.versions["gunicorn"], "27.0.1");
        assert_eq!(env.versions["Django"], "5.2.19");
        assert_eq!(env.versions["python"], "3.11.2");
        assert!(
            !venv.join("ran").exists() && !Path::new("ran").exists(),
            "nothing was run"
        );
    }
}
