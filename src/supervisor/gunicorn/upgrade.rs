//! `upgrade --venv DIR`: another omero-web release (an existing venv) switched in as a
//! new generation, with a preflight before and a health window after it.
//!
//! The release is part of the config (`omero.web.python`, and `omero.web.static_root`
//! set to a directory of that release's own, `var/static-omero-web-VERSION`, so old and
//! new static files never mix and the nginx we render serves the live one). OMERO.web
//! reads its config from the file, so the new values are saved first; anything that
//! fails before the switch puts the file back byte for byte. After the switch the
//! readiness page is probed through the private nginx for the health window; a 5xx or
//! no answer rolls back to the previous generation by itself.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Gunicorn, python};
use crate::config::Config;
use crate::supervisor::ControlResponse;
use crate::supervisor::progress::{HealthFigures, Progress, StepState};

impl Gunicorn {
    pub fn upgrade_venv(&self, venv: &Path, health: Duration) -> anyhow::Result<ControlResponse> {
        let refused = |why: String| {
            Ok(ControlResponse::failed(format!(
                "upgrade refused: {why}; nothing changed, the running generation keeps serving"
            )))
        };
        if !self.front_is_ours() {
            return refused(
                "an upgrade switches generations behind the private nginx, and none runs (omero-webctl nginx start)".into(),
            );
        }
        self.running()?;
        let _niced = super::generation::NicedWhileChanging::new();
        // Preflight 1: the venv has omero-web and Gunicorn.
        let new_python = match python::inspect(Some(venv)) {
            Ok(p) => p,
            Err(e) => return refused(e.to_string()),
        };
        let version = new_python
            .versions
            .get("omero-web")
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let config_file = self.site.config_file();
        let before = std::fs::read(&config_file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", config_file.display()))?;
        let restore = || {
            crate::fsutil::write_atomic(&config_file, &before, None)
                .map_err(|e| anyhow::anyhow!("cannot restore {}: {e}", config_file.display()))
        };
        let static_dir = self
            .site
            .var_dir()
            .join(format!("static-omero-web-{version}"));
        let mut config = Config::load(&self.site)?;
        config.set("omero.web.python", &venv.display().to_string(), false)?;
        config.set(
            "omero.web.static_root",
            &static_dir.display().to_string(),
            false,
        )?;
        config.save()?;
        let settings = config.settings();
        // Preflight 2: the new release imports omeroweb.wsgi with this config.
        if let Err(check) = self.app_loads(&settings, &new_python) {
            restore()?;
            return refused(format!(
                "omero-web {version} in {} does not load with the current config ({})",
                venv.display(),
                check.describe()
            ));
        }
        let run_as = self.run_as(&new_python).map_err(|e| anyhow::anyhow!(e))?;
        if let Err(e) = self.create_dir(&static_dir, run_as.as_ref()) {
            restore()?;
            return refused(format!("cannot create {}: {e}", static_dir.display()));
        }
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
        let switched = match self.switch_generation("upgrade")? {
            Some(reply) if reply.ok => reply,
            Some(reply) => {
                restore()?;
                return Ok(ControlResponse::failed(format!(
                    "{} (omero-web {version}); the config file is as it was",
                    reply.message
                )));
            }
            None => {
                restore()?;
                return refused("the private nginx stopped meanwhile".into());
            }
        };
        // The health window, through the front users reach.
        if let Some(why) = self.unhealthy_within(&settings, health) {
            let back = self.rollback()?;
            return Ok(ControlResponse::failed(format!(
                "upgrade to omero-web {version} rolled back by itself: {why}. {}",
                back.message
            )));
        }
        Ok(ControlResponse::ok(format!(
            "Upgraded to omero-web {version} (static files in {}); healthy for {} s. {}",
            static_dir.display(),
            health.as_secs(),
            switched.message
        )))
    }

    /// Probes the readiness page through the private nginx for `window`; the first
    /// 5xx or missing answer, said in words.
    fn unhealthy_within(
        &self,
        settings: &crate::config::Settings,
        window: Duration,
    ) -> Option<String> {
        let port = crate::nginx::instance::remembered_port(&self.site)?;
        let mut front = settings.clone();
        front.host = "127.0.0.1".into();
        front.port = port;
        let path = format!(
            "{}/webclient/login/",
            settings.prefix.as_deref().unwrap_or("")
        );
        // The panel's `U` screen shows the window's figures as they come.
        let mut progress = Progress::begin(
            &self.site,
            "health window",
            &["probe the readiness page through nginx"],
        );
        let mut figures = HealthFigures {
            elapsed_s: 0,
            window_s: window.as_secs(),
            probes: 0,
            errors: 0,
        };
        let started = Instant::now();
        let end = started + window;
        let mut failure = None;
        while failure.is_none() && Instant::now() < end {
            figures.probes += 1;
            match super::http_status(&front, &path) {
                Ok(code) if code < 500 => {}
                Ok(code) => failure = Some(format!("GET {path} through nginx answered {code}")),
                Err(e) => failure = Some(format!("GET {path} through nginx: {e}")),
            }
            figures.errors += u64::from(failure.is_some());
            figures.elapsed_s = started.elapsed().as_secs();
            progress.health = Some(figures);
            progress.step(&self.site, 0, StepState::Running, &path);
            if failure.is_none() {
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        match &failure {
            Some(why) => {
                progress.step(&self.site, 0, StepState::Failed, why);
                progress.finish(&self.site, &format!("unhealthy: {why}; rolling back"));
            }
            None => progress.finish(&self.site, "ok"),
        }
        failure
    }
}
