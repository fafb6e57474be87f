//! Resolution: validated raw values become the one typed struct the program uses
//! (ripgrep's low-level → high-level args step). Nothing outside `config` reads raw
//! property values.

use std::path::PathBuf;

use super::property::Value;
use super::store::Config;
use crate::site::Site;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppServer {
    WsgiTcp,
    Wsgi,
    Development,
}

impl AppServer {
    pub fn as_str(self) -> &'static str {
        match self {
            AppServer::WsgiTcp => "wsgi-tcp",
            AppServer::Wsgi => "wsgi",
            AppServer::Development => "development",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerClass {
    Sync,
    Gthread,
    Gevent,
}

impl WorkerClass {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerClass::Sync => "sync",
            WorkerClass::Gthread => "gthread",
            WorkerClass::Gevent => "gevent",
        }
    }
}

/// HTTPS for the generated nginx server (extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub certificate: PathBuf,
    pub certificate_key: PathBuf,
    pub port: u16,
}

/// Everything the program uses, typed and with defaults applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub site_root: PathBuf,
    pub application_server: AppServer,
    pub host: String,
    pub port: u16,
    /// `omero.web.prefix` without its trailing slash; `None` when unset (the root).
    pub prefix: Option<String>,
    /// `omero.web.static_url`, always ending in `/`.
    pub static_url: String,
    pub static_root: PathBuf,
    pub debug: bool,

    pub workers: u32,
    pub worker_class: WorkerClass,
    pub threads: u32,
    pub worker_connections: u32,
    /// Seconds; 0 disables the liveness timeout.
    pub timeout: u64,
    pub max_requests: u64,
    pub max_requests_jitter: u64,
    pub wsgi_args: Option<String>,
    pub graceful_timeout: u64,
    pub keepalive: u64,
    pub backlog: u32,
    pub boot_timeout: u64,
    pub limit_request_line: u32,
    pub limit_request_fields: u32,
    pub limit_request_field_size: u32,

    pub nginx_extra_config: Vec<String>,
    /// Seconds for nginx's proxy_read_timeout/proxy_send_timeout.
    pub nginx_proxy_timeout: u64,
    pub tls: Option<Tls>,
    pub download_limit_conn: u32,
    pub download_limit_rate: String,
    /// Default thumbnails published on disk for nginx to serve
    /// (`omero.web.nginx.published_thumbnails`); only ever on an embedded site, whose
    /// thumbnails need no login.
    pub published_thumbnails: bool,

    pub log_dir: PathBuf,
    /// `omero.web.python`: the venv or interpreter of an OMERO.web site.
    pub python: Option<PathBuf>,
    pub log_max_bytes: u64,
    pub log_backup_count: u32,

    pub repository: PathBuf,
    pub binary_access: String,
    pub chunk_size: u64,
    pub maximum_multifile_download_size: u64,
    pub page_size: u32,
    /// `omero.web.viewer.view`: the view `webclient/img_detail/<id>/` opens.
    pub viewer_view: String,
    pub thumbnails_batch: u32,
    pub render_max_output_pixels: u64,
    pub render_max_image_pixels: u64,

    /// The embedded gateway's access control: session cookie, expiry, public user.
    pub access: AccessSettings,

    /// Values in the file that the strict rules refused and that no reading could keep:
    /// their defaults stand in here. Whatever renders them into another program's
    /// config (nginx) must refuse rather than render a default the site does not run.
    pub set_aside: Vec<SetAside>,
}

/// OMERO's session and public-user properties, as the embedded gateway's access
/// control uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSettings {
    pub cookie_name: Option<String>,
    pub cookie_path: Option<String>,
    pub cookie_domain: Option<String>,
    pub cookie_secure: bool,
    pub cookie_samesite: String,
    /// `omero.web.session_cookie_age`: the absolute lifetime of a session, seconds.
    pub cookie_age: u64,
    pub expire_at_browser_close: bool,
    /// `omero.web.access.idle_timeout`, seconds.
    pub idle_timeout: u64,
    pub public_enabled: bool,
    pub public_url_filter: String,
    pub public_get_only: bool,
    /// `omero.ldap.*`, when `omero.ldap.config` is true.
    pub ldap: Option<LdapSettings>,
    pub remote_user_header: String,
    pub remote_user_proxies: String,
    /// `omero.web.session_engine` and `omero.web.caches` as written (the gateway
    /// keeps sessions in Redis when they name it, as OMERO.web would).
    pub session_engine: Option<String>,
    pub caches: Option<String>,
}

/// OMERO's `omero.ldap.*` properties as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapSettings {
    pub urls: Vec<String>,
    pub base: String,
    pub username: String,
    pub password: String,
    pub user_filter: String,
    pub user_mapping: String,
    pub group_filter: String,
    pub group_mapping: String,
    pub new_user_group: String,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
}

/// A value of the site's file that [`Settings`] could not use (see `set_aside`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub key: String,
    /// The warning: the value as written, its line, why it is refused.
    pub warning: String,
    pub needs: &'static [super::property::Need],
}

impl Settings {
    /// A warning when the application server listens beyond this host: without nginx
    /// in front, clients reach it directly (no TLS, no static files, no limits).
    pub fn public_bind_warning(&self) -> Option<String> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        (!loopback).then(|| {
            format!(
                "the application server listens on {} (omero.web.application_server.host), where clients can reach it without nginx; bind 127.0.0.1 and let nginx face the network",
                self.bind()
            )
        })
    }

    /// `host:port` of the pool's listener.
    pub fn bind(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The class workers really run: Gunicorn turns sync with `--threads` > 1 into
    /// gthread.
    pub fn effective_worker_class(&self) -> WorkerClass {
        match self.worker_class {
            WorkerClass::Sync if self.threads > 1 => WorkerClass::Gthread,
            other => other,
        }
    }

    /// Whether static files are served from another server (a CDN): then nginx
    /// does not serve them and the gateway does not either.
    pub fn static_url_is_absolute(&self) -> bool {
        crate::config::property::is_absolute_url(&self.static_url)
    }

    /// Whether `omero.policy.binary_access` allows original-file downloads.
    pub fn downloads_allowed(&self) -> bool {
        !self
            .binary_access
            .split(',')
            .any(|item| item.trim() == "-read")
    }

    /// Resolves a loaded config. Values were validated on load, so this cannot fail;
    /// it applies defaults, deprecated fallbacks and derived values.
    pub fn resolve(config: &Config, site: &Site) -> Settings {
        let text = |key: &str| -> Option<String> { config.effective(key).map(|v| v.to_raw()) };
        let string = |key: &str| text(key).unwrap_or_default();
        let int = |key: &str| -> i64 {
            match config.effective(key) {
                Some(Value::Int(i)) => i,
                other => panic!("{key} resolved to {other:?}, expected an integer"),
            }
        };
        let boolean = |key: &str| matches!(config.effective(key), Some(Value::Bool(true)));
        let path = |key: &str| -> PathBuf {
            let raw = string(key);
            let p = PathBuf::from(raw);
            if p.is_absolute() {
                p
            } else {
                site.root().join(p)
            }
        };

        let timeout = int("omero.web.wsgi_timeout") as u64;
        let tls = match (
            text("omero.web.nginx.ssl_certificate"),
            text("omero.web.nginx.ssl_certificate_key"),
        ) {
            (Some(cert), Some(key)) => Some(Tls {
                certificate: cert.into(),
                certificate_key: key.into(),
                port: int("omero.web.nginx.https_port") as u16,
            }),
            _ => None,
        };
        let prefix = text("omero.web.prefix")
            .map(|p| p.trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty());
        let mut static_url = string("omero.web.static_url");
        if !static_url.ends_with('/') {
            static_url.push('/');
        }
        let extra: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&string(
            "omero.web.nginx_server_extra_config",
        ))
        .unwrap_or_default()
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
        .collect();
        let worker_class = match string("omero.web.wsgi_worker_class").as_str() {
            "gevent" => WorkerClass::Gevent,
            "gthread" => WorkerClass::Gthread,
            _ => WorkerClass::Sync,
        };
        let application_server = match string("omero.web.application_server").as_str() {
            "wsgi" => AppServer::Wsgi,
            "development" => AppServer::Development,
            _ => AppServer::WsgiTcp,
        };
        let mut settings = Settings {
            site_root: site.root().to_path_buf(),
            application_server,
            host: string("omero.web.application_server.host"),
            port: int("omero.web.application_server.port") as u16,
            prefix,
            static_url,
            static_root: path("omero.web.static_root"),
            debug: boolean("omero.web.debug"),
            workers: int("omero.web.wsgi_workers") as u32,
            worker_class,
            threads: int("omero.web.wsgi_threads") as u32,
            worker_connections: int("omero.web.wsgi_worker_connections") as u32,
            timeout,
            max_requests: int("omero.web.application_server.max_requests") as u64,
            max_requests_jitter: int("omero.web.wsgi_max_requests_jitter") as u64,
            wsgi_args: text("omero.web.wsgi_args").filter(|s| !s.trim().is_empty()),
            graceful_timeout: int("omero.web.wsgi_graceful_timeout") as u64,
            keepalive: int("omero.web.wsgi_keepalive") as u64,
            backlog: int("omero.web.wsgi_backlog") as u32,
            boot_timeout: int("omero.web.wsgi_boot_timeout") as u64,
            limit_request_line: int("omero.web.wsgi_limit_request_line") as u32,
            limit_request_fields: int("omero.web.wsgi_limit_request_fields") as u32,
            limit_request_field_size: int("omero.web.wsgi_limit_request_field_size") as u32,
            nginx_extra_config: extra,
            nginx_proxy_timeout: 0, // derived below, once wsgi_args applied

            tls,
            download_limit_conn: int("omero.web.nginx.download_limit_conn") as u32,
            download_limit_rate: string("omero.web.nginx.download_limit_rate"),
            published_thumbnails: boolean("omero.web.nginx.published_thumbnails")
                && site.kind() == crate::site::SiteKind::Embedded,
            log_dir: path("omero.web.logdir"),
            python: text("omero.web.python").map(PathBuf::from),
            log_max_bytes: int("omero.web.log.max_bytes") as u64,
            log_backup_count: int("omero.web.log.backup_count") as u32,
            repository: path("omero.web.repository"),
            binary_access: string("omero.policy.binary_access"),
            chunk_size: int("omero.web.chunk_size") as u64,
            maximum_multifile_download_size: int("omero.web.maximum_multifile_download_size")
                as u64,
            page_size: int("omero.web.page_size") as u32,
            viewer_view: string("omero.web.viewer.view"),
            thumbnails_batch: int("omero.web.thumbnails_batch") as u32,
            render_max_output_pixels: int("omero.web.render.max_output_pixels") as u64,
            render_max_image_pixels: int("omero.web.render.max_image_pixels") as u64,
            access: AccessSettings {
                cookie_name: text("omero.web.session_cookie_name").filter(|s| !s.is_empty()),
                cookie_path: text("omero.web.session_cookie_path").filter(|s| !s.is_empty()),
                cookie_domain: text("omero.web.session_cookie_domain").filter(|s| !s.is_empty()),
                cookie_secure: boolean("omero.web.session_cookie_secure"),
                cookie_samesite: string("omero.web.session_cookie_samesite"),
                cookie_age: int("omero.web.session_cookie_age") as u64,
                expire_at_browser_close: boolean("omero.web.session_expire_at_browser_close"),
                idle_timeout: int("omero.web.access.idle_timeout") as u64,
                public_enabled: boolean("omero.web.public.enabled"),
                public_url_filter: string("omero.web.public.url_filter"),
                public_get_only: boolean("omero.web.public.get_only"),
                ldap: boolean("omero.ldap.config").then(|| LdapSettings {
                    urls: string("omero.ldap.urls")
                        .split([' ', ','])
                        .filter(|u| !u.is_empty())
                        .map(str::to_string)
                        .collect(),
                    base: string("omero.ldap.base"),
                    username: string("omero.ldap.username"),
                    password: string("omero.ldap.password"),
                    user_filter: string("omero.ldap.user_filter"),
                    user_mapping: string("omero.ldap.user_mapping"),
                    group_filter: string("omero.ldap.group_filter"),
                    group_mapping: string("omero.ldap.group_mapping"),
                    new_user_group: string("omero.ldap.new_user_group"),
                    starttls: boolean("omero.ldap.starttls"),
                    ca_file: text("omero.ldap.ca_file")
                        .filter(|f| !f.is_empty())
                        .map(PathBuf::from),
                }),
                remote_user_header: string("omero.web.access.remote_user_header"),
                remote_user_proxies: string("omero.web.access.remote_user_proxies"),
                session_engine: config.raw("omero.web.session_engine"),
                caches: config.raw("omero.web.caches"),
            },
            set_aside: config
                .value_warnings()
                .into_iter()
                .filter(|w| config.get(&w.key).is_none())
                .filter_map(|w| {
                    let prop = super::registry::lookup(&w.key)?;
                    Some(SetAside {
                        key: w.key.clone(),
                        warning: w.to_string(),
                        needs: prop.needs,
                    })
                })
                .collect(),
        };
        // wsgi_args flags override their properties everywhere (the pool, `stop`'s
        // wait, nginx's timeouts), not just in the master. The value was validated
        // when the config was loaded.
        if let Some(args) = &settings.wsgi_args
            && let Ok(flags) = super::wsgi_args::parse_for_gunicorn(args)
        {
            flags.apply(&mut settings);
        }
        settings.nginx_proxy_timeout = match int("omero.web.nginx.proxy_timeout") as u64 {
            0 if settings.timeout == 0 => 3600,
            0 => settings.timeout + 5,
            explicit => explicit,
        };
        settings
    }
}
