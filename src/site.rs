//! The site directory (`$OMERODIR`) and every path under it. All other modules ask
//! `Site` for paths, so the layout is defined once.

use std::path::{Path, PathBuf};

/// Name of the site directory used when neither `--omerodir` nor `$OMERODIR` is given.
pub const DEFAULT_SITE_DIR: &str = "OMERO.web";

/// Which program serves a site and where its properties live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteKind {
    /// Our master, workers and image gateway; properties in `etc/omero-web.toml`.
    Embedded,
    /// The Python OMERO.web under Gunicorn; properties in OMERO's `etc/grid/config.xml`.
    #[serde(rename = "omeroweb")]
    OmeroWeb,
}

impl SiteKind {
    /// The name `--backend`, `status --json` and the panel use.
    pub fn name(self) -> &'static str {
        match self {
            SiteKind::Embedded => "embedded",
            SiteKind::OmeroWeb => "omeroweb",
        }
    }
    /// What the panel header and `status` print.
    pub fn title(self) -> &'static str {
        match self {
            SiteKind::Embedded => "embedded pool",
            SiteKind::OmeroWeb => "OMERO.web (Gunicorn)",
        }
    }
}

/// A site directory and the paths of everything under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    root: PathBuf,
    kind: SiteKind,
    /// An embedded master started beside the live one for a gapless switch (see
    /// `supervisor::embedded_generations`): its pid file and control socket live apart.
    interim: bool,
}

impl Site {
    /// A site rooted at `root`, its kind detected: OMERO's `etc/grid/config.xml`
    /// makes it an OMERO.web site. The path is made absolute (against the current
    /// directory) because it ends up in generated nginx configs and pid files.
    pub fn new(root: impl Into<PathBuf>) -> Site {
        let mut site = Site::with_kind(root, SiteKind::Embedded);
        if site.omero_config_file().is_file() {
            site.kind = SiteKind::OmeroWeb;
        }
        site
    }

    /// A site of a given kind (`--backend`), whatever its directory holds.
    pub fn with_kind(root: impl Into<PathBuf>, kind: SiteKind) -> Site {
        let root = root.into();
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .map(|cwd| cwd.join(&root))
                .unwrap_or(root)
        };
        Site {
            root: normalize(&root),
            kind,
            interim: false,
        }
    }

    /// The same site as seen by an interim embedded master: everything is shared but
    /// the pid file and the control socket, under `var/generations/interim-pool/`.
    pub fn interim(&self) -> Site {
        Site {
            interim: true,
            ..self.clone()
        }
    }
    pub fn is_interim(&self) -> bool {
        self.interim
    }
    /// Where the embedded master's pid file and control socket live.
    pub fn master_dir(&self) -> PathBuf {
        if self.interim {
            self.var_dir().join("generations").join("interim-pool")
        } else {
            self.var_dir()
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn kind(&self) -> SiteKind {
        self.kind
    }
    pub fn etc_dir(&self) -> PathBuf {
        self.root.join("etc")
    }
    /// The file the properties live in: ours, or OMERO's config.xml.
    pub fn config_file(&self) -> PathBuf {
        match self.kind {
            SiteKind::Embedded => self.toml_config_file(),
            SiteKind::OmeroWeb => self.omero_config_file(),
        }
    }
    pub fn toml_config_file(&self) -> PathBuf {
        self.etc_dir().join("omero-web.toml")
    }
    /// OMERO's `etc/grid/config.xml` (what `omero config set` writes).
    pub fn omero_config_file(&self) -> PathBuf {
        self.etc_dir().join("grid").join("config.xml")
    }
    /// Where nginx looks for the maintenance page (OMERO's path and spelling).
    pub fn maintenance_dir(&self) -> PathBuf {
        self.etc_dir().join("templates").join("error")
    }
    pub fn var_dir(&self) -> PathBuf {
        self.root.join("var")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.master_dir().join("omeroweb.pid")
    }
    /// OMERO's one-line pid file (Gunicorn's `-p`), which `omero web stop` and
    /// systemd units read.
    pub fn django_pid_file(&self) -> PathBuf {
        self.var_dir().join("django.pid")
    }
    /// Gunicorn's control socket of an OMERO.web site: per site, never the shared
    /// `$HOME/.gunicorn/gunicorn.ctl`.
    pub fn gunicorn_control_socket(&self) -> PathBuf {
        self.var_dir().join("gunicorn.ctl")
    }
    /// What omero-webctl remembers about the Gunicorn it started (argv, log offsets).
    pub fn gunicorn_state_file(&self) -> PathBuf {
        self.var_dir().join(".omero-webctl-gunicorn.json")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.master_dir().join("omeroweb.sock")
    }
    /// Default of `omero.web.logdir`.
    pub fn default_log_dir(&self) -> PathBuf {
        self.var_dir().join("log")
    }
    /// Default of `omero.web.static_root`.
    pub fn default_static_root(&self) -> PathBuf {
        self.var_dir().join("static")
    }
    /// Default of the image repository extension property.
    pub fn default_repository_dir(&self) -> PathBuf {
        self.var_dir().join("repository")
    }
    pub fn cache_dir(&self) -> PathBuf {
        self.var_dir().join("cache")
    }
    /// Everything of the private nginx instance: conf, pid, logs, temp files.
    pub fn nginx_dir(&self) -> PathBuf {
        self.var_dir().join("nginx")
    }
}

/// Removes `.` components and resolves `..` lexically (no filesystem access), as
/// Python's `os.path.normpath` does for `omero.web.static_root`.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// How the site directory was chosen, so the CLI can tell the user when it created
/// the default one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteOrigin {
    Flag,
    Env,
    Default,
}

/// Picks the site directory: `--omerodir`, else `$OMERODIR`, else `./OMERO.web`;
/// `kind` (from `--backend`) overrides the detected kind.
pub fn resolve_site(
    flag: Option<&Path>,
    env: Option<&Path>,
    kind: Option<SiteKind>,
) -> (Site, SiteOrigin) {
    let (site, origin) = match (flag, env) {
        (Some(dir), _) => (Site::new(dir), SiteOrigin::Flag),
        (None, Some(dir)) if !dir.as_os_str().is_empty() => (Site::new(dir), SiteOrigin::Env),
        _ => (Site::new(DEFAULT_SITE_DIR), SiteOrigin::Default),
    };
    match kind {
        Some(kind) => (Site::with_kind(site.root, kind), origin),
        None => (site, origin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_env_and_default() {
        let (site, origin) = resolve_site(Some(Path::new("/a")), Some(Path::new("/b")), None);
        assert_eq!(site.root(), Path::new("/a"));
        assert_eq!(origin, SiteOrigin::Flag);
        let (site, origin) = resolve_site(None, Some(Path::new("/b")), None);
        assert_eq!(site.root(), Path::new("/b"));
        assert_eq!(origin, SiteOrigin::Env);
        let (site, origin) = resolve_site(None, None, None);
        assert!(site.root().ends_with(DEFAULT_SITE_DIR));
        assert_eq!(origin, SiteOrigin::Default);
    }

    #[test]
    fn paths_follow_the_design_layout() {
        let site = Site::new("/srv/web");
        assert_eq!(site.config_file(), Path::new("/srv/web/etc/omero-web.toml"));
        assert_eq!(site.pid_file(), Path::new("/srv/web/var/omeroweb.pid"));
        assert_eq!(
            site.control_socket(),
            Path::new("/srv/web/var/omeroweb.sock")
        );
        assert_eq!(site.default_log_dir(), Path::new("/srv/web/var/log"));
        assert_eq!(site.nginx_dir(), Path::new("/srv/web/var/nginx"));
    }

    #[test]
    fn config_xml_makes_an_omeroweb_site_and_backend_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::new(dir.path());
        assert_eq!(site.kind(), SiteKind::Embedded);
        assert!(site.config_file().ends_with("etc/omero-web.toml"));
        std::fs::create_dir_all(dir.path().join("etc/grid")).unwrap();
        std::fs::write(dir.path().join("etc/grid/config.xml"), "<icegrid/>").unwrap();
        let site = Site::new(dir.path());
        assert_eq!(site.kind(), SiteKind::OmeroWeb);
        assert!(site.config_file().ends_with("etc/grid/config.xml"));
        let (forced, _) = resolve_site(Some(dir.path()), None, Some(SiteKind::Embedded));
        assert_eq!(forced.kind(), SiteKind::Embedded);
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/./b/../c/")), Path::new("/a/c"));
        assert_eq!(normalize(Path::new("a/..")), Path::new("."));
    }
}
