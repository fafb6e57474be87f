//! systemd units for a site, rendered from the templates in `assets/systemd`: the pool
//! (`Type=notify` for the embedded pool, whose master speaks the readiness protocol of
//! `pool::notify`; `Type=forking` with OMERO's pid file for Gunicorn) and the private
//! nginx. Values that reach a unit are checked so they cannot break its syntax.

use std::path::{Path, PathBuf};

use minijinja::{Environment, context};

use crate::config::Config;
use crate::site::{Site, SiteKind};

const POOL_TEMPLATE: &str = include_str!("../../assets/systemd/pool.service.j2");
const NGINX_TEMPLATE: &str = include_str!("../../assets/systemd/nginx.service.j2");

/// The units' default name: `omero-web.service`, `omero-web-nginx.service`, and the
/// template `omero-web@.service`.
pub const DEFAULT_NAME: &str = "omero-web";
/// The user of the template unit (OMERO's documentation runs OMERO.web as it); a
/// drop-in changes it.
pub const TEMPLATE_USER: &str = "omero-web";

#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error("{what} {value:?} cannot go into a systemd unit: {why}")]
    Unsafe {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("no user {0:?} on this host (--user names the account the services run as)")]
    NoSuchUser(String),
    #[error("cannot read the site {path}: {source}")]
    Site {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// One unit file: its name and text.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Unit {
    pub file_name: String,
    pub text: String,
}

/// What the units of a site are made of.
#[derive(Debug, Clone)]
pub struct UnitOptions {
    /// The units' name (`NAME.service`, `NAME-nginx.service`).
    pub name: String,
    /// The account the services run as; `None` = the owner of the site directory.
    pub user: Option<String>,
    /// The program the units run.
    pub exe: PathBuf,
}

/// The service account, with its primary group.
struct Account {
    user: String,
    group: String,
}

/// A site's units and what they need of the host.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SiteUnits {
    /// The pool's unit, then the private nginx's.
    pub units: Vec<Unit>,
    /// The account the services run as.
    pub user: String,
    /// The paths the services may write (`ReadWritePaths`), which must exist.
    pub writable: Vec<PathBuf>,
}

/// The pool's and the private nginx's units for `site`.
pub fn site_units(site: &Site, options: &UnitOptions) -> Result<SiteUnits, UnitError> {
    check_name(&options.name)?;
    let root = std::path::absolute(site.root()).map_err(|source| UnitError::Site {
        path: site.root().to_path_buf(),
        source,
    })?;
    let root = crate::site::normalize(&root);
    let config = Config::load(site)?;
    let settings = config.settings();
    let account = account(&root, options.user.as_deref())?;
    let exe = unit_path("program", &options.exe)?;
    let omerodir = unit_path("site directory", &root)?;
    // A private /tmp would hide a site that lives under /tmp (a trial site); without
    // one, ProtectSystem=strict would leave /tmp read-only, where Python and Gunicorn
    // keep temporary files: such a site gets the shared /tmp and /var/tmp writable.
    let private_tmp = !(root.starts_with("/tmp") || root.starts_with("/var/tmp"));
    let shared_tmp = [PathBuf::from("/tmp"), PathBuf::from("/var/tmp")];
    let mut extra = vec![&settings.log_dir, &settings.static_root];
    if !private_tmp {
        extra.extend(&shared_tmp);
    }
    let writable_dirs = distinct_writable(&root, &extra);
    let writable = writable_dirs
        .iter()
        .map(|p| unit_path("writable path", p))
        .collect::<Result<Vec<_>, _>>()?
        .join(" ");
    let kind = match site.kind() {
        SiteKind::Embedded => "embedded",
        SiteKind::OmeroWeb => "omeroweb",
    };
    let pool_unit = format!("{}.service", options.name);
    let nginx_unit = format!("{}-nginx.service", options.name);
    let pool = render(
        POOL_TEMPLATE,
        context! {
            file_name => &pool_unit,
            unit_name => &options.name,
            edit_name => &pool_unit,
            private_tmp,
            site_label => &omerodir,
            description => format!("OMERO.web ({}, {omerodir})", site.kind().title()),
            version => env!("CARGO_PKG_VERSION"),
            kind,
            exe => &exe,
            omerodir => &omerodir,
            pid_file => unit_path("pid file", &site_in(&root).django_pid_file())?,
            user => &account.user,
            group => &account.group,
            writable => &writable,
            // Gunicorn's start also collects static files and clears sessions.
            start_timeout => settings.boot_timeout + if kind == "embedded" { 30 } else { 90 },
            stop_timeout => settings.graceful_timeout + 15,
        },
    );
    let port = crate::nginx::instance::remembered_port(&site_in(&root)).unwrap_or(8080);
    let nginx = render(
        NGINX_TEMPLATE,
        context! {
            file_name => &nginx_unit,
            unit_name => format!("{}-nginx", options.name),
            edit_name => &nginx_unit,
            private_tmp,
            site_label => &omerodir,
            description => format!("OMERO.web private nginx ({omerodir})"),
            version => env!("CARGO_PKG_VERSION"),
            pool_unit => &pool_unit,
            exe => &exe,
            omerodir => &omerodir,
            pid_file => unit_path("pid file", &site_in(&root).nginx_dir().join("nginx.pid"))?,
            user => &account.user,
            group => &account.group,
            writable => &writable,
            port,
            low_port => port < 1024 && account.user != "root",
        },
    );
    Ok(SiteUnits {
        units: vec![
            Unit {
                file_name: pool_unit,
                text: pool,
            },
            Unit {
                file_name: nginx_unit,
                text: nginx,
            },
        ],
        user: account.user,
        writable: writable_dirs,
    })
}

/// The instantiable unit of an embedded site: `NAME@.service`, the instance being the
/// site directory as `systemd-escape --path` writes it
/// (`omero-web@srv-OMERO.web.service` runs `/srv/OMERO.web`), as [`TEMPLATE_USER`].
pub fn template_unit(name: &str, exe: &Path) -> Result<Unit, UnitError> {
    check_name(name)?;
    let exe = unit_path("program", exe)?;
    let file_name = format!("{name}@.service");
    let text = render(
        POOL_TEMPLATE,
        context! {
            file_name => &file_name,
            unit_name => name,
            edit_name => format!("{name}@INSTANCE.service"),
            private_tmp => true,
            site_label => "the site directory the instance names (systemd-escape --path DIR)",
            description => "OMERO.web (%f)",
            version => env!("CARGO_PKG_VERSION"),
            kind => "embedded",
            exe => &exe,
            omerodir => "%f",
            pid_file => "%f/var/django.pid",
            user => TEMPLATE_USER,
            group => None::<String>,
            writable => "%f/var",
            start_timeout => 90,
            stop_timeout => 45,
        },
    );
    Ok(Unit { file_name, text })
}

fn site_in(root: &Path) -> Site {
    Site::new(root)
}

/// var/ of the site, and any of `extra` outside it, without duplicates.
fn distinct_writable(root: &Path, extra: &[&PathBuf]) -> Vec<PathBuf> {
    let var = root.join("var");
    let mut paths = vec![var.clone()];
    for path in extra {
        let path = crate::site::normalize(&root.join(path));
        if !paths.iter().any(|p| path.starts_with(p)) {
            paths.push(path);
        }
    }
    paths
}

fn account(root: &Path, user: Option<&str>) -> Result<Account, UnitError> {
    use std::os::unix::fs::MetadataExt;
    let found = match user {
        Some(name) => {
            check_word("user", name)?;
            nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| UnitError::NoSuchUser(name.to_string()))?
        }
        None => {
            let uid = std::fs::metadata(root)
                .map_err(|source| UnitError::Site {
                    path: root.to_path_buf(),
                    source,
                })?
                .uid();
            match nix::unistd::User::from_uid(uid.into()).ok().flatten() {
                Some(user) => user,
                None => {
                    return Err(UnitError::NoSuchUser(format!(
                        "uid {uid} (owner of {})",
                        root.display()
                    )));
                }
            }
        }
    };
    let group = nix::unistd::Group::from_gid(found.gid)
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| found.gid.to_string());
    check_word("group", &group)?;
    Ok(Account {
        user: found.name,
        group,
    })
}

fn check_name(name: &str) -> Result<(), UnitError> {
    let fine = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if fine {
        Ok(())
    } else {
        Err(UnitError::Unsafe {
            what: "unit name",
            value: name.to_string(),
            why: "use letters, digits and - _ . : only",
        })
    }
}

fn check_word(what: &'static str, value: &str) -> Result<(), UnitError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UnitError::Unsafe {
            what,
            value: value.to_string(),
            why: "it is empty or has spaces or control characters",
        });
    }
    Ok(())
}

/// An absolute path as a unit writes it: `%` doubled (systemd's specifiers); quotes,
/// backslashes, whitespace and control characters refused (no unit setting that takes
/// a path quotes it the same way).
fn unit_path(what: &'static str, path: &Path) -> Result<String, UnitError> {
    let text = path.to_str().ok_or_else(|| UnitError::Unsafe {
        what,
        value: path.display().to_string(),
        why: "it is not UTF-8",
    })?;
    if !text.starts_with('/') {
        return Err(UnitError::Unsafe {
            what,
            value: text.to_string(),
            why: "it is not absolute",
        });
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'))
    {
        return Err(UnitError::Unsafe {
            what,
            value: text.to_string(),
            why: "it has whitespace, quotes, backslashes or control characters (move or symlink the site)",
        });
    }
    Ok(text.replace('%', "%%"))
}

fn render(template: &str, ctx: minijinja::Value) -> String {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let mut text = env
        .render_str(template, ctx)
        .expect("the unit templates render with every value they use");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_double_percent_and_refuse_what_would_break_the_unit() {
        assert_eq!(
            unit_path("p", Path::new("/srv/50%/web")).unwrap(),
            "/srv/50%%/web"
        );
        for bad in [
            "/srv/my site",
            "/srv/a\"b",
            "/srv/a\\b",
            "/srv/a\nb",
            "srv/web",
        ] {
            let err = unit_path("site directory", Path::new(bad))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("site directory "), "{err}");
            assert!(!err.contains('\n') || bad.contains('\n'), "{err}");
        }
        assert!(check_name("omero-web").is_ok());
        assert!(check_name("omero web").is_err());
        assert!(check_name("../x").is_err());
    }

    #[test]
    fn writable_paths_are_var_and_what_lies_outside_it() {
        let root = Path::new("/srv/site");
        let inside = PathBuf::from("var/log");
        let outside = PathBuf::from("/data/static");
        assert_eq!(
            distinct_writable(root, &[&inside, &outside]),
            [
                PathBuf::from("/srv/site/var"),
                PathBuf::from("/data/static")
            ]
        );
    }
}
