//! `app add|remove|list`: OMERO.web apps from PyPI, each added or removed in a new venv
//! generation (never pip-installed into the live venv), with its settings set only in
//! that generation's config, validated (the app imports with the new config; its URL
//! answers on the new generation's own bind) and switched in blue/green.
//!
//! The apps omero-webctl knows, with the settings their READMEs document, are the
//! table [`KNOWN_APPS`]; any other PyPI name is installed with only `omero.web.apps`
//! set (its module named after the distribution), and says so.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::upgrade::VenvChange;
use super::{Gunicorn, python, venvs};
use crate::config::Config;
use crate::supervisor::ControlResponse;

/// A list-valued setting an app's README tells to `omero config append`.
pub struct AppendSetting {
    pub key: &'static str,
    /// The JSON value appended (and removed again by `app remove`).
    pub value: &'static str,
}

/// An OMERO.web app and its documented settings.
pub struct KnownApp {
    /// The PyPI distribution.
    pub dist: &'static str,
    /// The Django app appended to `omero.web.apps`.
    pub module: &'static str,
    /// Its URL (OMERO.web mounts an app at `/<its AppConfig label>/`).
    pub url: &'static str,
    pub settings: &'static [AppendSetting],
}

/// From each app's README (PyPI page), "Installing from PyPI".
pub const KNOWN_APPS: &[KnownApp] = &[
    KnownApp {
        dist: "omero-iviewer",
        module: "omero_iviewer",
        url: "/iviewer/",
        settings: &[AppendSetting {
            key: "omero.web.open_with",
            value: r#"["omero_iviewer", "omero_iviewer_index", {"supported_objects": ["images", "dataset", "well"], "script_url": "omero_iviewer/openwith.js", "label": "OMERO.iviewer"}]"#,
        }],
    },
    KnownApp {
        dist: "omero-figure",
        module: "omero_figure",
        url: "/figure/",
        settings: &[
            AppendSetting {
                key: "omero.web.ui.top_links",
                value: r#"["Figure", "figure_index", {"title": "Open Figure in new tab", "target": "_blank"}]"#,
            },
            AppendSetting {
                key: "omero.web.open_with",
                value: r#"["omero_figure", "new_figure", {"supported_objects": ["images"], "target": "_blank", "label": "OMERO.figure"}]"#,
            },
        ],
    },
];

/// What `app add|remove` is about: a known app, or another distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRequest {
    pub dist: String,
    pub version: Option<String>,
    pub module: String,
    pub known: bool,
    /// The app's URL, requested on the new generation before the switch: a known
    /// app's, or the one given (`--url`); an unknown app without one is only imported.
    pub url: Option<String>,
}

impl AppRequest {
    /// `NAME[==VERSION]`, a PyPI name or a known app's module name.
    pub fn parse(text: &str) -> Result<AppRequest, String> {
        let (name, version) = match text.split_once("==") {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (text.trim(), None),
        };
        let name_ok = !name.is_empty()
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(format!(
                "{text:?}: an app is a PyPI name, optionally with ==VERSION (omero-iviewer, omero-figure==7.2.0)"
            ));
        }
        if let Some(v) = version {
            venvs::check_version(v)
                .map_err(|_| format!("{text:?}: {v:?} is not a release number (NAME==1.2.3)"))?;
        }
        let wanted = python::normalise(name);
        let known = KNOWN_APPS
            .iter()
            .find(|app| python::normalise(app.dist) == wanted || app.module == wanted);
        Ok(AppRequest {
            dist: known.map_or_else(|| name.to_string(), |k| k.dist.to_string()),
            version: version.map(str::to_string),
            module: known.map_or(wanted, |k| k.module.to_string()),
            known: known.is_some(),
            url: known.map(|k| k.url.to_string()),
        })
    }

    /// The URL to check instead of (or, for an unknown app, as) the table's.
    pub fn with_url(mut self, url: Option<&str>) -> Result<AppRequest, String> {
        if let Some(url) = url {
            let ok = url.starts_with('/')
                && url.len() < 200
                && url
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '<' | '>'));
            if !ok {
                return Err(format!(
                    "--url {url:?}: a path on the site, such as /gallery/"
                ));
            }
            self.url = Some(url.to_string());
        }
        Ok(self)
    }

    fn known(&self) -> Option<&'static KnownApp> {
        KNOWN_APPS
            .iter()
            .find(|app| app.dist == self.dist && self.known)
    }

    fn requirement(&self) -> String {
        match &self.version {
            Some(v) => format!("{}=={v}", self.dist),
            None => self.dist.clone(),
        }
    }
}

/// A JSON list setting as it applies now (its default when unset, so that appending
/// keeps OMERO's own entries, such as the default image viewer in `open_with`).
fn json_list(config: &Config, key: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let raw = config
        .effective(key)
        .map(|v| v.to_raw())
        .unwrap_or_else(|| "[]".into());
    match crate::config::lenient::python_json(&raw) {
        Ok(serde_json::Value::Array(items)) => Ok(items),
        Ok(_) => anyhow::bail!("{key} is not a JSON list: {raw}"),
        Err(e) => anyhow::bail!("{key} does not parse as JSON ({e}): {raw}"),
    }
}

fn set_json_list(
    config: &mut Config,
    key: &str,
    items: &[serde_json::Value],
) -> anyhow::Result<()> {
    config.set(key, &serde_json::to_string(items)?, false)?;
    Ok(())
}

/// The app's settings in `config`: its module in `omero.web.apps` and its documented
/// entries, each once.
pub fn configure(config: &mut Config, app: &AppRequest) -> anyhow::Result<()> {
    let module = serde_json::Value::String(app.module.clone());
    let mut apps = json_list(config, "omero.web.apps")?;
    if !apps.contains(&module) {
        apps.push(module);
        set_json_list(config, "omero.web.apps", &apps)?;
    }
    for setting in app.known().map_or(&[][..], |k| k.settings) {
        let value: serde_json::Value = serde_json::from_str(setting.value)?;
        let mut items = json_list(config, setting.key)?;
        if !items.contains(&value) {
            items.push(value);
            set_json_list(config, setting.key, &items)?;
        }
    }
    Ok(())
}

/// The reverse of [`configure`]: exactly the entries it adds, nothing else.
pub fn unconfigure(config: &mut Config, app: &AppRequest) -> anyhow::Result<()> {
    let module = serde_json::Value::String(app.module.clone());
    let apps = json_list(config, "omero.web.apps")?;
    if apps.contains(&module) {
        let kept: Vec<_> = apps.into_iter().filter(|a| *a != module).collect();
        set_json_list(config, "omero.web.apps", &kept)?;
    }
    for setting in app.known().map_or(&[][..], |k| k.settings) {
        let value: serde_json::Value = serde_json::from_str(setting.value)?;
        let items = json_list(config, setting.key)?;
        if items.contains(&value) {
            let kept: Vec<_> = items.into_iter().filter(|i| *i != value).collect();
            set_json_list(config, setting.key, &kept)?;
        }
    }
    Ok(())
}

/// One line of `app list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedApp {
    /// The PyPI distribution (the module's name when it is not installed).
    pub name: String,
    pub module: String,
    /// Installed in the live venv: its version.
    pub version: Option<String>,
    /// Named in `omero.web.apps`.
    pub configured: bool,
}

/// Apps of the live generation: every known app installed in its venv, and every
/// module in `omero.web.apps`, installed or not.
pub fn list(config: &Config) -> anyhow::Result<Vec<ListedApp>> {
    let settings = config.settings();
    let installed = python::interpreter(settings.python.as_deref())
        .map(|p| python::installed(&p))
        .unwrap_or_default();
    let configured: Vec<String> = json_list(config, "omero.web.apps")?
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut listed = Vec::new();
    for app in KNOWN_APPS {
        let version = installed.get(&python::normalise(app.dist)).cloned();
        let is_configured = configured.iter().any(|m| m == app.module);
        if version.is_some() || is_configured {
            listed.push(ListedApp {
                name: app.dist.to_string(),
                module: app.module.to_string(),
                version,
                configured: is_configured,
            });
        }
    }
    for module in &configured {
        if KNOWN_APPS.iter().any(|k| k.module == module) {
            continue;
        }
        // A module named after its distribution (omero_gallery ← omero-gallery).
        let version = installed.get(&python::normalise(module)).cloned();
        listed.push(ListedApp {
            name: module.replace('_', "-"),
            module: module.clone(),
            version,
            configured: true,
        });
    }
    Ok(listed)
}

/// A fresh name for a venv generation made by `app add|remove`.
fn apps_venv(site: &crate::site::Site) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let base = venvs::dir(site).join(format!("apps-{stamp}"));
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = PathBuf::from(format!("{}-{n}", base.display()));
    }
    candidate
}

impl Gunicorn {
    /// A new venv: a copy of `live` with (`adding`) or without the app; `Err` says why
    /// not, and leaves nothing behind.
    fn build_app_venv(
        &self,
        app: &AppRequest,
        adding: bool,
        live: &std::path::Path,
        find_links: &[PathBuf],
        progress: &dyn Fn(&str),
    ) -> Result<PathBuf, String> {
        let venv = apps_venv(&self.site);
        let (add, without) = if adding {
            (vec![app.requirement()], vec![])
        } else {
            (vec![], vec![app.dist.clone()])
        };
        venvs::clone_with(live, &venv, &add, &without, find_links, progress)
            .map_err(|e| format!("{e:#}"))?;
        let installed = python::installed(&venv.join("bin/python"));
        if adding && !installed.contains_key(&python::normalise(&app.dist)) {
            let _ = std::fs::remove_dir_all(&venv);
            return Err(format!(
                "pip installed no {} into {}",
                app.dist,
                venv.display()
            ));
        }
        Ok(venv)
    }

    /// `app add` (`adding`) or `app remove`: a new venv generation with or without the
    /// app, its settings in that generation's config only, switched in blue/green.
    /// With `prepare`, only the new venv is built (and marked, see
    /// `venvs::mark_prepared`): the pip work is done before a sysadmin's chosen moment,
    /// and the switch later takes that venv.
    pub fn change_app(
        &self,
        app: &AppRequest,
        adding: bool,
        prepare: bool,
        find_links: &[PathBuf],
        health: Duration,
        progress: &dyn Fn(&str),
    ) -> anyhow::Result<ControlResponse> {
        let verb = if adding { "add" } else { "remove" };
        let action = format!("app {verb} {}", app.dist);
        let refused = |why: String| {
            Ok(ControlResponse::failed(format!(
                "{action} refused: {why}; nothing changed, the running generation keeps serving"
            )))
        };
        if let Err(why) = self.can_switch_generations() {
            return refused(why);
        }
        let config = Config::load(&self.site)?;
        let settings = config.settings();
        let live = match python::inspect(settings.python.as_deref()) {
            Ok(p) => p,
            Err(e) => return refused(e.to_string()),
        };
        let installed = python::installed(&live.python);
        let has = installed.get(&python::normalise(&app.dist)).cloned();
        if !adding && has.is_none() && !list(&config)?.iter().any(|l| l.module == app.module) {
            return refused(format!(
                "{} is neither installed in {} nor in omero.web.apps",
                app.dist,
                live.python.display()
            ));
        }
        let prepared_for = format!("{verb} {}", app.requirement());
        let venv = match venvs::find_prepared(&self.site, &prepared_for, &live.python) {
            Some(venv) => {
                progress(&format!(
                    "the venv prepared for it: {} (not built again)",
                    venv.display()
                ));
                venv
            }
            None => match self.build_app_venv(app, adding, &live.python, find_links, progress) {
                Ok(venv) => venv,
                Err(why) => return refused(why),
            },
        };
        if prepare {
            if let Err(e) = venvs::mark_prepared(&venv, &prepared_for, &live.python) {
                let _ = std::fs::remove_dir_all(&venv);
                return refused(format!("cannot mark {} as prepared: {e}", venv.display()));
            }
            return Ok(ControlResponse::ok(format!(
                "Prepared {} for app {verb} {}; nothing switched. `app {verb} {}` switches to it without building again (while {} stays the live venv).",
                venv.display(),
                app.dist,
                app.dist,
                live.python.display()
            )));
        }
        venvs::unmark_prepared(&venv);
        let version = python::installed(&venv.join("bin/python"))
            .get(&python::normalise(&app.dist))
            .cloned();
        let shown = format!(
            "{}{}",
            app.dist,
            version
                .as_deref()
                .or(has.as_deref())
                .map(|v| format!(" {v}"))
                .unwrap_or_default()
        );
        if !app.known {
            progress(&format!(
                "{} is not among the apps omero-webctl knows: only omero.web.apps is set (add its other settings with config set){}",
                app.dist,
                if adding && app.url.is_none() {
                    "; it is imported, and no URL of it is requested (--url /its-path/ would be)"
                } else {
                    ""
                }
            ));
        }
        let edit = |config: &mut Config| {
            if adding {
                configure(config, app)
            } else {
                unconfigure(config, app)
            }
        };
        let static_dir = self.site.var_dir().join(format!(
            "static-{}",
            venv.file_name()
                .expect("a named directory")
                .to_string_lossy()
        ));
        let change = VenvChange {
            action,
            subject: format!("app {verb} {shown}"),
            done: if adding {
                format!("Added {shown} (omero.web.apps: {})", app.module)
            } else {
                format!("Removed {shown}")
            },
            venv: &venv,
            static_dir,
            edit: &edit,
            probe: if adding { app.url.clone() } else { None },
            sessions: None,
            health,
        };
        let reply = self.change_venv(&change, progress)?;
        if !reply.ok {
            // Refused before the switch: the venv made for it serves nothing.
            let live_now = Config::load(&self.site)
                .ok()
                .and_then(|c| c.settings().python)
                .is_some_and(|p| p == venv);
            if !live_now {
                let _ = std::fs::remove_dir_all(&venv);
            }
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::{Site, SiteKind};

    fn config() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        let config = Config::load(&site).unwrap();
        (dir, config)
    }

    #[test]
    fn names_are_read_as_pypi_names_or_module_names() {
        let iv = AppRequest::parse("omero-iviewer==0.19.1").unwrap();
        assert_eq!(iv.dist, "omero-iviewer");
        assert_eq!(iv.module, "omero_iviewer");
        assert_eq!(iv.version.as_deref(), Some("0.19.1"));
        assert!(iv.known);
        assert_eq!(iv.requirement(), "omero-iviewer==0.19.1");
        assert_eq!(iv.url.as_deref(), Some("/iviewer/"));
        let given = iv.clone().with_url(Some("/iviewer/?x=1")).unwrap();
        assert_eq!(given.url.as_deref(), Some("/iviewer/?x=1"));
        for bad in ["iviewer/", "/a b/", "/\"x\"/"] {
            assert!(iv.clone().with_url(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            AppRequest::parse("omero_figure").unwrap().dist,
            "omero-figure"
        );
        let other = AppRequest::parse("omero-gallery").unwrap();
        assert!(!other.known);
        assert_eq!(other.module, "omero_gallery");
        assert_eq!(other.url, None, "an unknown app's URL is not guessed");
        for bad in ["", "x y", "--index-url=http://evil", "a==../1", "a==latest"] {
            assert!(AppRequest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn adding_appends_the_documented_settings_once_and_keeps_the_defaults() {
        let (_dir, mut config) = config();
        let default_open_with = json_list(&config, "omero.web.open_with").unwrap();
        assert!(!default_open_with.is_empty(), "OMERO's own viewer entry");
        let iv = AppRequest::parse("omero-iviewer").unwrap();
        configure(&mut config, &iv).unwrap();
        configure(&mut config, &iv).unwrap();
        assert_eq!(
            json_list(&config, "omero.web.apps").unwrap(),
            vec![serde_json::json!("omero_iviewer")]
        );
        let open_with = json_list(&config, "omero.web.open_with").unwrap();
        assert_eq!(open_with.len(), default_open_with.len() + 1);
        assert_eq!(open_with[..default_open_with.len()], default_open_with[..]);
        assert_eq!(open_with.last().unwrap()[0], "omero_iviewer");

        // Removing takes out exactly what adding put in.
        unconfigure(&mut config, &iv).unwrap();
        assert!(json_list(&config, "omero.web.apps").unwrap().is_empty());
        assert_eq!(
            json_list(&config, "omero.web.open_with").unwrap(),
            default_open_with
        );
    }

    #[test]
    fn an_unknown_app_sets_only_omero_web_apps_beside_the_others() {
        let (_dir, mut config) = config();
        config
            .set("omero.web.apps", r#"["omero_figure"]"#, false)
            .unwrap();
        let top_links = config.effective("omero.web.ui.top_links");
        configure(&mut config, &AppRequest::parse("my-app").unwrap()).unwrap();
        assert_eq!(
            json_list(&config, "omero.web.apps").unwrap(),
            vec![
                serde_json::json!("omero_figure"),
                serde_json::json!("my_app")
            ]
        );
        assert_eq!(config.effective("omero.web.ui.top_links"), top_links);
        let listed = list(&config).unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|l| (l.module.as_str(), l.configured, l.version.is_some()))
                .collect::<Vec<_>>(),
            vec![("omero_figure", true, false), ("my_app", true, false)]
        );
    }
}
