//! Checks that run the site's Python as `start` runs it (same user, environment and
//! directory), each bounded by a timeout: whether OMERO.web loads with the saved config
//! (a problem before any worker needs it: the next one to boot would fail, and Gunicorn
//! then halts the site), and whether the venv has the module a worker class needs.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::python::{self, PythonEnv};
use super::{Gunicorn, last_lines, process};
use crate::config::{Config, Settings, WorkerClass};
use crate::supervisor::ConfigCheck;

/// What `omero web start` says to `gthread`, and how to get back to what it runs.
pub fn gthread_note() -> String {
    "omero.web.wsgi_worker_class = gthread: omero-webctl runs it, but OMERO's own `omero web start` refuses it (\"[ERROR] Invalid omero.web.wsgi_worker_class gthread\"); to go back: `config set omero.web.wsgi_worker_class sync` and `config set omero.web.wsgi_threads N` (sync workers with N > 1 threads are Gunicorn's gthread workers)".into()
}

/// The import a worker class needs beyond Gunicorn (OMERO's settings import it too).
fn module_for(class: WorkerClass) -> Option<&'static str> {
    match class {
        WorkerClass::Gevent => Some("gevent"),
        WorkerClass::Sync | WorkerClass::Gthread => None,
    }
}

/// One run of the saved-config check: for which file state, and its result once done.
pub(super) struct LoadCheck {
    stamp: Stamp,
    result: Arc<Mutex<Option<ConfigCheck>>>,
}

/// The config file's modification time and length, and the interpreter.
type Stamp = (Option<SystemTime>, u64, PathBuf);

impl Gunicorn {
    /// `python -c CODE` in the site's Python, as `start` would run it.
    fn python_check(
        &self,
        settings: &Settings,
        python: &PythonEnv,
        code: &str,
    ) -> Result<Command, String> {
        let run_as = self.run_as(python)?;
        Ok(self.python_command(
            settings,
            python,
            run_as.as_ref(),
            &[python.python.clone().into(), "-c".into(), code.into()],
        ))
    }

    /// Whether OMERO.web loads with the saved config (`import omeroweb.wsgi`, what a
    /// booting worker does first): `Err` has the last line it wrote (the exception).
    pub(super) fn app_loads(
        &self,
        settings: &Settings,
        python: &PythonEnv,
    ) -> Result<(), ConfigCheck> {
        let mut cmd = self
            .python_check(settings, python, "import omeroweb.wsgi")
            .map_err(ConfigCheck::NotChecked)?;
        outcome(process::output_with_deadline(
            &mut cmd,
            load_timeout(settings),
        ))
    }

    /// The saved-config check for the config as it is now, run at most once per change
    /// of the file (the panel asks every 30 s): started in the background, waited for
    /// up to `wait`; `Pending` when it is still running.
    pub(super) fn check_saved_config(&self, wait: Duration) -> ConfigCheck {
        let Ok(settings) = self.settings() else {
            return ConfigCheck::NotChecked("the config cannot be read".into());
        };
        let python = match python::inspect(settings.python.as_deref()) {
            Ok(python) => python,
            Err(e) => return ConfigCheck::NotChecked(e.to_string()),
        };
        let file = self.site.config_file();
        let meta = std::fs::metadata(&file).ok();
        // Importing the app writes into the site (logs, the secret key): as another user
        // it would fail for that reason alone, which says nothing of the config.
        let me = nix::unistd::geteuid();
        if let Some(owner) = meta.as_ref().map(std::os::unix::fs::MetadataExt::uid)
            && !me.is_root()
            && me.as_raw() != owner
        {
            return ConfigCheck::NotChecked(format!(
                "only the owner of {} (uid {owner}) or root can check it",
                file.display()
            ));
        }
        let stamp: Stamp = (
            meta.as_ref().and_then(|m| m.modified().ok()),
            meta.map_or(0, |m| m.len()),
            python.python.clone(),
        );
        let result = {
            let mut guard = self.load_check.lock().expect("load check");
            match guard.as_ref() {
                Some(check) if check.stamp == stamp => check.result.clone(),
                _ => {
                    let result = Arc::new(Mutex::new(None));
                    match self.python_check(&settings, &python, "import omeroweb.wsgi") {
                        Ok(mut cmd) => {
                            let slot = result.clone();
                            let limit = load_timeout(&settings);
                            std::thread::spawn(move || {
                                let checked =
                                    match outcome(process::output_with_deadline(&mut cmd, limit)) {
                                        Ok(()) => ConfigCheck::Loads,
                                        Err(failure) => failure,
                                    };
                                *slot.lock().expect("load check result") = Some(checked);
                            });
                        }
                        Err(why) => {
                            *result.lock().expect("load check result") =
                                Some(ConfigCheck::NotChecked(why))
                        }
                    }
                    *guard = Some(LoadCheck {
                        stamp,
                        result: result.clone(),
                    });
                    result
                }
            }
        };
        let deadline = Instant::now() + wait;
        loop {
            if let Some(done) = result.lock().expect("load check result").clone() {
                return done;
            }
            if Instant::now() >= deadline {
                return ConfigCheck::Pending;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Refuses, before it is saved, a worker class whose module the site's venv lacks
    /// (Gunicorn could not start it, and OMERO's settings refuse to load at all, so
    /// every `omero web` command fails); warns about gthread, which OMERO refuses.
    pub(super) fn vet_worker_class(&self, config: &Config) -> Result<Option<String>, String> {
        let settings = config.settings();
        if settings.worker_class == WorkerClass::Gthread {
            return Ok(Some(gthread_note()));
        }
        let Some(module) = module_for(settings.worker_class) else {
            return Ok(None);
        };
        let python = match python::inspect(settings.python.as_deref()) {
            Ok(python) => python,
            // No venv to ask: the start will say so, in its own words.
            Err(e) => return Ok(Some(format!("{module} could not be looked for: {e}"))),
        };
        let class = settings.worker_class.as_str();
        let mut cmd = match self.python_check(&settings, &python, &format!("import {module}")) {
            Ok(cmd) => cmd,
            Err(why) => return Ok(Some(format!("{module} could not be looked for: {why}"))),
        };
        match outcome(process::output_with_deadline(
            &mut cmd,
            Duration::from_secs(30),
        )) {
            Ok(()) => Ok(None),
            Err(ConfigCheck::Fails(line)) => Err(format!(
                "omero.web.wsgi_worker_class = {class} needs the {module} module, which {} cannot import ({line}); OMERO.web would not start. Install it into that venv (pip install {module}) first",
                python.python.display()
            )),
            Err(other) => Ok(Some(format!(
                "whether {} has {module} is unknown: {}",
                python.python.display(),
                other.describe()
            ))),
        }
    }
}

/// How long the app's import may take: a worker's boot, with room.
fn load_timeout(settings: &Settings) -> Duration {
    Duration::from_secs(settings.boot_timeout.max(30) + 30)
}

fn outcome(result: std::io::Result<Output>) -> Result<(), ConfigCheck> {
    match result {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(ConfigCheck::Fails(
            last_lines(&out.stderr, 1)
                .pop()
                .unwrap_or_else(|| format!("Python exited with {}", out.status)),
        )),
        Err(e) => Err(ConfigCheck::NotChecked(format!(
            "the check did not finish: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::{Site, SiteKind};

    /// A venv whose `python` only records that it ran and fails as a bad config does.
    fn fake_venv(dir: &std::path::Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let venv = dir.join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        let python = venv.join("bin/python");
        std::fs::write(
            &python,
            format!(
                "#!/bin/sh\necho ran >> {}\necho \"ModuleNotFoundError: No module named 'no_such_app'\" >&2\nexit 1\n",
                dir.join("runs").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "version = 3.11.2\n").unwrap();
        let sp = venv.join("lib/python3.11/site-packages");
        std::fs::create_dir_all(sp.join("omeroweb")).unwrap();
        std::fs::write(sp.join("omeroweb/manage.py"), "").unwrap();
        for d in ["omero_web-5.33.2.dist-info", "gunicorn-27.0.1.dist-info"] {
            std::fs::create_dir_all(sp.join(d)).unwrap();
        }
        venv
    }

    #[test]
    fn the_saved_config_is_checked_once_per_change_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path().join("site"), SiteKind::OmeroWeb);
        let venv = fake_venv(dir.path());
        let mut config = Config::load(&site).unwrap();
        config
            .set("omero.web.python", &venv.to_string_lossy(), false)
            .unwrap();
        config.save().unwrap();
        let runs = || {
            std::fs::read_to_string(dir.path().join("runs"))
                .unwrap_or_default()
                .lines()
                .count()
        };
        let g = Gunicorn::new(site.clone());
        let long = Duration::from_secs(60);
        let first = g.check_saved_config(long);
        assert_eq!(
            first,
            ConfigCheck::Fails("ModuleNotFoundError: No module named 'no_such_app'".into())
        );
        assert_eq!(g.check_saved_config(long), first);
        assert_eq!(runs(), 1, "asked twice, Python ran once");
        // The file changes: checked again.
        let mut config = Config::load(&site).unwrap();
        config.set("omero.web.wsgi_workers", "3", false).unwrap();
        config.save().unwrap();
        assert_eq!(g.check_saved_config(long), first);
        assert_eq!(runs(), 2);
    }

    #[test]
    fn only_gevent_needs_a_module_of_its_own() {
        assert_eq!(module_for(WorkerClass::Gevent), Some("gevent"));
        assert_eq!(module_for(WorkerClass::Sync), None);
        assert_eq!(module_for(WorkerClass::Gthread), None);
        assert!(gthread_note().contains("config set omero.web.wsgi_worker_class sync"));
    }
}
