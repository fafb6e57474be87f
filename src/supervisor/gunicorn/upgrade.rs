//! A change of the site's venv switched in as a new generation, with a preflight
//! before and a health window after it: `upgrade --venv DIR` (another omero-web
//! release; `--omero-web VERSION` builds one first, see `venvs`) and `app add|remove`
//! (a new venv with or without the app, see `apps`) share it.
//!
//! The release is part of the config (`omero.web.python`, and `omero.web.static_root`
//! set to a directory of that release's own, `var/static-omero-web-VERSION`, so old and
//! new static files never mix and the nginx we render serves the live one). OMERO.web
//! reads its config from the file, so the new values are saved first; anything that
//! fails before the switch puts the file back byte for byte. After the switch the
//! readiness page is probed through the private nginx for the health window, while the
//! previous generation still runs; a 5xx or no answer switches nginx straight back to
//! it (the config file put back first) and ends the new one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::sessions::{self, SessionAction};
use super::{Gunicorn, python};
use crate::config::Config;
use crate::supervisor::ControlResponse;

/// One change of the site's venv, switched in as a new generation: an upgrade to
/// another release, or an app added to or removed from a new venv.
pub(super) struct VenvChange<'a> {
    /// How the change is named in the history and in a refusal (`upgrade`,
    /// `app add omero-iviewer`).
    pub action: String,
    /// What was done, for the success and rollback lines (`upgrade to omero-web 5.33.2`).
    pub subject: String,
    /// The first words of the success line (`Upgraded to omero-web 5.33.2`).
    pub done: String,
    pub venv: &'a Path,
    /// Where collectstatic puts this generation's static files.
    pub static_dir: PathBuf,
    /// Further config changes of this generation (an app's settings).
    pub edit: &'a dyn Fn(&mut Config) -> anyhow::Result<()>,
    /// A path requested on the new generation's own bind before the switch (an app's
    /// URL): anything but a 2xx or 3xx (OMERO's login redirect) refuses the change.
    pub probe: Option<String>,
    /// The operator's choice for the session store, when it is not "keep".
    pub sessions: Option<SessionAction>,
    pub health: Duration,
}

impl Gunicorn {
    /// Whether a venv change could be switched in now: checked before a release or an
    /// app's venv is built, so that nothing is built only to be refused.
    pub fn can_switch_generations(&self) -> Result<(), String> {
        if !self.front_is_ours() {
            return Err(
                "it switches generations behind the private nginx, and none runs (omero-webctl nginx start)".into(),
            );
        }
        self.running().map(|_| ()).map_err(|e| format!("{e:#}"))
    }

    pub fn upgrade_venv(
        &self,
        venv: &Path,
        health: Duration,
        sessions: Option<SessionAction>,
        progress: &dyn Fn(&str),
    ) -> anyhow::Result<ControlResponse> {
        let version = python::inspect(Some(venv))
            .ok()
            .and_then(|p| p.versions.get("omero-web").cloned())
            .unwrap_or_else(|| "unknown".into());
        let change = VenvChange {
            action: "upgrade".into(),
            subject: format!("upgrade to omero-web {version}"),
            done: format!("Upgraded to omero-web {version}"),
            venv,
            static_dir: self
                .site
                .var_dir()
                .join(format!("static-omero-web-{version}")),
            edit: &|_| Ok(()),
            probe: None,
            sessions,
            health,
        };
        self.change_venv(&change, progress)
    }

    /// Preflight (the venv has omero-web and Gunicorn; the session store; the app
    /// loads with the new config), collectstatic into `static_dir`, the blue/green
    /// switch, the health window. Nothing changes before the switch unless it can be
    /// put back: the config file is restored byte for byte on every refusal.
    pub(super) fn change_venv(
        &self,
        change: &VenvChange,
        progress: &dyn Fn(&str),
    ) -> anyhow::Result<ControlResponse> {
        let action = &change.action;
        let venv = change.venv;
        let refused = |why: String| {
            Ok(ControlResponse::failed(format!(
                "{action} refused: {why}; nothing changed, the running generation keeps serving"
            )))
        };
        if let Err(why) = self.can_switch_generations() {
            return refused(why);
        }
        let _niced = super::generation::NicedWhileChanging::new();
        // Preflight 1: the venv has omero-web and Gunicorn.
        progress(&format!("preflight: the venv {}", venv.display()));
        let new_python = match python::inspect(Some(venv)) {
            Ok(p) => p,
            Err(e) => return refused(e.to_string()),
        };
        let mut config = Config::load(&self.site)?;
        // Preflight 2: the session store, decided before anything is done.
        let old_settings = config.settings();
        // The running venv: its Django decides, and reads the sessions for a convert.
        let old_python = python::inspect(old_settings.python.as_deref());
        let old_django = old_python
            .as_ref()
            .ok()
            .and_then(|p| p.versions.get("Django").cloned());
        let engine = config
            .effective("omero.web.session_engine")
            .map(|v| v.to_raw())
            .unwrap_or_default();
        let advice = sessions::advise(
            old_django.as_deref(),
            new_python.versions.get("Django").map(String::as_str),
            &engine,
        );
        let session_action = match (advice.action, change.sessions) {
            (SessionAction::Keep, chosen) => chosen.unwrap_or(SessionAction::Keep),
            (_, Some(chosen)) => chosen,
            (advised, None) => {
                return refused(format!(
                    "session store: {advised} advised ({}); choose --sessions convert (the new Django re-encodes them), --sessions clear (users log in again) or --sessions keep",
                    advice.why,
                    advised = advised.as_str()
                ));
            }
        };
        if session_action == SessionAction::Convert
            && let Err(why) = sessions::convertible(&engine)
        {
            return refused(format!("session store: {why}"));
        }
        progress(&format!(
            "preflight: session store: {} ({}{})",
            session_action.as_str(),
            if session_action == advice.action {
                String::new()
            } else {
                format!("as chosen; {} was advised: ", advice.action.as_str())
            },
            advice.why
        ));
        let config_file = self.site.config_file();
        let before = std::fs::read(&config_file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", config_file.display()))?;
        let restore = || {
            crate::fsutil::write_atomic(&config_file, &before, None)
                .map_err(|e| anyhow::anyhow!("cannot restore {}: {e}", config_file.display()))
        };
        let static_dir = &change.static_dir;
        config.set("omero.web.python", &venv.display().to_string(), false)?;
        config.set(
            "omero.web.static_root",
            &static_dir.display().to_string(),
            false,
        )?;
        if let Err(e) = (change.edit)(&mut config) {
            return refused(format!("{e:#}"));
        }
        config.save()?;
        let settings = config.settings();
        // Preflight 3: the new venv imports omeroweb.wsgi (and so every app) with this config.
        progress("preflight: import omeroweb.wsgi with the new config");
        if let Err(check) = self.app_loads(&settings, &new_python) {
            restore()?;
            let version = new_python
                .versions
                .get("omero-web")
                .map_or("unknown", String::as_str);
            return refused(format!(
                "omero-web {version} in {} does not load with the new config ({}); the config file is as it was",
                venv.display(),
                check.describe()
            ));
        }
        let run_as = self.run_as(&new_python).map_err(|e| anyhow::anyhow!(e))?;
        if let Err(e) = self.create_dir(static_dir, run_as.as_ref()) {
            restore()?;
            return refused(format!("cannot create {}: {e}", static_dir.display()));
        }
        progress(&format!("collectstatic into {}", static_dir.display()));
        let boot = Duration::from_secs(settings.boot_timeout.max(30) + 60);
        if let Err((reason, _)) = self.manage(
            &settings,
            &new_python,
            run_as.as_ref(),
            &["collectstatic", "--noinput"],
            boot,
        ) {
            restore()?;
            return refused(reason);
        }
        let clear = |when: &str| -> Result<(), String> {
            if session_action == SessionAction::Convert && when == "before the switch" {
                // Once: after the switch the new Django writes sessions the old one
                // may not read. One the old generation writes in the moment before
                // the switch stays as it was written.
                let old_python = old_python
                    .as_ref()
                    .map_err(|e| format!("the running venv, to read the sessions: {e}"))?;
                let old_run_as = self.run_as(old_python)?;
                let done = self.convert_sessions(
                    &settings,
                    (old_python, old_run_as.as_ref()),
                    (&new_python, run_as.as_ref()),
                )?;
                progress(&format!(
                    "session store converted {when}: {} sessions re-encoded by Django {}, {} dropped (unreadable or not storable)",
                    done.converted,
                    new_python
                        .versions
                        .get("Django")
                        .map_or("unknown", String::as_str),
                    done.dropped
                ));
            }
            if session_action == SessionAction::Clear {
                let cleared = self.clear_sessions(&settings, &new_python, run_as.as_ref())?;
                progress(&format!(
                    "session store cleared {when} ({} sessions)",
                    cleared.map_or_else(|| "a cache: not counted".to_string(), |n| n.to_string())
                ));
            }
            Ok(())
        };
        // The last checks, once the new generation serves on its own bind: nothing
        // before this point touched what users have (the sessions least of all).
        let before_switch = |bind: &crate::config::Settings| -> Result<(), String> {
            if let Some(path) = &change.probe {
                match super::http_status(bind, path) {
                    Ok(code) if code < 400 => {}
                    Ok(code) => {
                        return Err(format!("GET {path} on the new generation answered {code}"));
                    }
                    Err(e) => return Err(format!("GET {path} on the new generation: {e}")),
                }
                progress(&format!("checked: GET {path} on the new generation"));
            }
            clear("before the switch")
        };
        // The health window, through the front users reach, while the old generation
        // still runs: a failure puts the old config back and the front goes straight
        // back to it (see `switch_generation_watched`).
        let unhealthy = std::cell::Cell::new(false);
        let watch = |_: &crate::config::Settings,
                     progress_record: &mut crate::supervisor::progress::Progress|
         -> Result<(), String> {
            // Sessions the old generation wrote between the clear and the switch.
            if let Err(e) = clear("after the switch") {
                progress(&format!("warning: {e}"));
            }
            progress(&format!(
                "health window: {} s of the readiness page through nginx",
                change.health.as_secs()
            ));
            let Some(why) = crate::supervisor::front::unhealthy_within(
                &self.site,
                &settings,
                change.health,
                progress_record,
            ) else {
                return Ok(());
            };
            unhealthy.set(true);
            restore().map_err(|e| format!("{why}, and {e:#}"))?;
            Err(why)
        };
        progress("blue/green switch: new generation beside the running one");
        let switched = match self.switch_generation_watched(action, &before_switch, &watch)? {
            Some(reply) if reply.ok => reply,
            Some(reply) if unhealthy.get() => {
                return Ok(ControlResponse::failed(format!(
                    "{} rolled back by itself: {}; the config file is as it was",
                    change.subject, reply.message
                )));
            }
            Some(reply) => {
                restore()?;
                return Ok(ControlResponse::failed(format!(
                    "{} ({}); the config file is as it was",
                    reply.message, change.subject
                )));
            }
            None => {
                restore()?;
                return refused("the private nginx stopped meanwhile".into());
            }
        };
        Ok(ControlResponse::ok(format!(
            "{} (static files in {}); healthy for {} s. {}",
            change.done,
            static_dir.display(),
            change.health.as_secs(),
            switched.message
        )))
    }
}
