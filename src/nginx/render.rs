//! Rendering OMERO's three nginx configs from the typed settings. The templates live in
//! `assets/nginx/` (embedded); this module runs OMERO's pre-checks, validates every
//! value, and computes the placeholders the way OMERO does (PREFIX_NAME, the location
//! paths, the extra-config block).

use minijinja::{Environment, Value, context};

use super::validate::{
    validate_max_body_size, validate_server_name, validate_settings, validate_worker_user,
};
use super::{NginxError, NginxKind};
use crate::config::{AppServer, Settings};
use crate::site::Site;

const NGINX_TEMPLATE: &str = include_str!("../../assets/nginx/nginx.conf.j2");
const LOCATION_TEMPLATE: &str = include_str!("../../assets/nginx/nginx-location.conf.j2");
const DEVELOPMENT_TEMPLATE: &str = include_str!("../../assets/nginx/nginx-development.conf.j2");

/// The command-line options of `omero-webctl nginx`; `None` means OMERO's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// `--http`: 80, or 8080 for nginx-development.
    pub http_port: Option<u16>,
    /// `--servername`: `$hostname` (used by `nginx` only, as in OMERO).
    pub server_name: Option<String>,
    /// `--max-body-size`: `0`, i.e. unlimited (not used by `nginx-location`).
    pub max_body_size: Option<String>,
    /// nginx-development only: the `user` line for the workers. Set it from
    /// [`super::instance::worker_user`], which is `Some` only when running as root.
    pub worker_user: Option<String>,
    /// A fleet's front (`fleet nginx`): the upstream's `server` lines (address and
    /// parameters, validated by the fleet file) in place of this site's own pool, and
    /// `proxy_next_upstream` so idempotent requests pass over a failed member.
    pub upstream_servers: Vec<String>,
}

/// OMERO's PREFIX_NAME: `_` followed by the prefix with every non-word character
/// deleted (`/omero` → `_omero`, `/my-omero` → `_myomero`); empty without a prefix.
/// It keeps upstream and location names unique when several webs share one nginx.
pub fn prefix_name(prefix: Option<&str>) -> String {
    match prefix {
        None => String::new(),
        Some(prefix) => std::iter::once('_')
            .chain(prefix.chars().filter(|c| c.is_alphanumeric() || *c == '_'))
            .collect(),
    }
}

/// Renders one of the three configs, without the extra trailing newline OMERO's CLI
/// prints after it. Runs OMERO's pre-checks first (application server, port conflict),
/// then refuses any value that is unsafe or invalid in nginx.
pub fn render(
    settings: &Settings,
    kind: NginxKind,
    options: &RenderOptions,
) -> Result<String, NginxError> {
    if settings.application_server != AppServer::WsgiTcp {
        return Err(NginxError::ServerMismatch {
            server: settings.application_server.as_str(),
            kind,
        });
    }
    let http_port = options
        .http_port
        .unwrap_or_else(|| kind.default_http_port());
    check_ports(settings, kind, http_port)?;

    let server_name = options.server_name.as_deref().unwrap_or("$hostname");
    validate_server_name(server_name)?;
    let max_body_size = options.max_body_size.as_deref().unwrap_or("0");
    validate_max_body_size(max_body_size)?;
    if let Some(user) = &options.worker_user {
        validate_worker_user(user)?;
    }
    validate_settings(settings)?;

    let ctx = template_context(
        settings,
        kind,
        http_port,
        server_name,
        max_body_size,
        options,
    );
    let source = match kind {
        NginxKind::Nginx => NGINX_TEMPLATE,
        NginxKind::NginxLocation => LOCATION_TEMPLATE,
        NginxKind::NginxDevelopment => DEVELOPMENT_TEMPLATE,
    };
    let env = environment()?;
    env.render_str(source, ctx)
        .map_err(|e| NginxError::Template(format!("{} template: {e:#}", kind.as_str())))
}

/// OMERO's port check (`--http` against the pool's port, also for nginx-location where
/// the HTTP port is unused), plus the same check for the HTTPS port.
fn check_ports(settings: &Settings, kind: NginxKind, http_port: u16) -> Result<(), NginxError> {
    let conflict = |first: String, second: String| Err(NginxError::PortConflict { first, second });
    if http_port == settings.port {
        return conflict(
            format!("HTTP({http_port})"),
            format!("wsgi({})", settings.port),
        );
    }
    if let (Some(tls), false) = (&settings.tls, kind == NginxKind::NginxLocation) {
        if tls.port == settings.port {
            return conflict(
                format!("HTTPS({})", tls.port),
                format!("wsgi({})", settings.port),
            );
        }
        if tls.port == http_port {
            return conflict(format!("HTTP({http_port})"), format!("HTTPS({})", tls.port));
        }
    }
    Ok(())
}

/// Exact whitespace control: a line holding only `{% ... %}` disappears entirely, and
/// the template's final newline is kept (OMERO's templates end with one).
fn environment() -> Result<Environment<'static>, NginxError> {
    let mut env = Environment::new();
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| NginxError::Template(e.to_string()))?;
    env.set_syntax(syntax);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    Ok(env)
}

fn template_context(
    settings: &Settings,
    kind: NginxKind,
    http_port: u16,
    server_name: &str,
    max_body_size: &str,
    options: &RenderOptions,
) -> Value {
    let prefix = settings.prefix.as_deref();
    let prefix_name = prefix_name(prefix);
    let site = Site::new(&settings.site_root);

    let tls = settings.tls.as_ref().map(|tls| {
        // https://host:443/... is written without the default port.
        let port = if tls.port == 443 {
            String::new()
        } else {
            format!(":{}", tls.port)
        };
        context! {
            port => tls.port,
            certificate => tls.certificate.display().to_string(),
            certificate_key => tls.certificate_key.display().to_string(),
            redirect => format!("https://$host{port}$request_uri"),
        }
    });

    let limit_conn = settings.download_limit_conn > 0;
    let limit_rate = settings.download_limit_rate != "0";
    let downloads = (limit_conn || limit_rate).then(|| {
        context! {
            location => format!("{}/webgateway/archived_files/download/", prefix.unwrap_or("")),
            // The zone is only needed (and only declared) for limit_conn.
            zone => limit_conn.then(|| format!("omeroweb_downloads{prefix_name}")),
            conn => settings.download_limit_conn,
            rate => limit_rate.then(|| settings.download_limit_rate.clone()),
        }
    });

    // Default thumbnails nginx serves from disk (see gateway::published); the named
    // capture is per site, so that several sites can share one nginx.
    let thumbnails = settings.published_thumbnails.then(|| {
        let cache = crate::site::Site::new(&settings.site_root).cache_dir();
        context! {
            root => crate::gateway::published::Published::new(&cache).root().display().to_string(),
            location => prefix.unwrap_or("").to_string(),
        }
    });

    context! {
        prefix_name => prefix_name,
        thumbnails => thumbnails,
        upstream => settings.bind(),
        fleet_servers => options.upstream_servers.clone(),
        site_root => settings.site_root.display().to_string(),
        // An absolute static URL (a CDN, another host) is not this server's to serve.
        static_location => (!settings.static_url_is_absolute())
            .then(|| settings.static_url.trim_end_matches('/').to_string()),
        static_url => settings.static_url.clone(),
        static_root => settings.static_root.display().to_string(),
        // OMERO's FORCE_SCRIPT_NAME: the prefix, or / without one.
        location => prefix.unwrap_or("/").to_string(),
        http_port => http_port,
        server_name => server_name,
        max_body_size => max_body_size,
        extra_config => settings.nginx_extra_config.clone(),
        proxy_timeout => settings.nginx_proxy_timeout,
        upstream_keepalive_ms => upstream_keepalive_ms(settings),
        tls => tls,
        downloads => downloads,
        nginx_dir => site.nginx_dir().display().to_string(),
        worker_user => match kind {
            NginxKind::NginxDevelopment => options.worker_user.clone(),
            _ => None,
        },
    }
}

/// How long nginx keeps an idle connection to a worker, in ms; 0 = no upstream
/// keep-alive. Workers that keep connections alive (gthread, gevent) close idle ones
/// after `wsgi_keepalive` seconds: nginx lets go at half that, so it never sends a
/// request on a connection the worker is closing. Sync workers close after every
/// response, so there is nothing to keep.
pub fn upstream_keepalive_ms(settings: &Settings) -> u64 {
    let keeps_alive = settings.effective_worker_class() != crate::config::WorkerClass::Sync;
    if keeps_alive && settings.keepalive > 0 {
        settings.keepalive * 500
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn upstream_keep_alive_only_with_workers_that_keep_connections() {
        assert_eq!(upstream_keepalive_ms(&settings_from("")), 0);
        let gevent = settings_from("\"omero.web.wsgi_worker_class\" = \"gevent\"\n");
        assert_eq!(upstream_keepalive_ms(&gevent), 1000);
        let threads =
            settings_from("\"omero.web.wsgi_threads\" = 4\n\"omero.web.wsgi_keepalive\" = 6\n");
        assert_eq!(upstream_keepalive_ms(&threads), 3000);
        let off = settings_from(
            "\"omero.web.wsgi_worker_class\" = \"gthread\"\n\"omero.web.wsgi_keepalive\" = 0\n",
        );
        assert_eq!(upstream_keepalive_ms(&off), 0);
        let text = render(&gevent, NginxKind::Nginx, &RenderOptions::default()).unwrap();
        assert!(text.contains("    keepalive 32;\n    keepalive_timeout 1000ms;\n"));
        assert!(text.contains(
            "        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n"
        ));
    }

    fn settings_from(toml: &str) -> Settings {
        let site = Site::new("/home/omero/OMERO.server");
        Config::from_text(&site, site.config_file(), toml.to_string(), None)
            .unwrap()
            .settings()
    }

    #[test]
    fn prefix_name_follows_omero() {
        assert_eq!(prefix_name(None), "");
        assert_eq!(prefix_name(Some("/omero")), "_omero");
        assert_eq!(prefix_name(Some("/my-omero")), "_myomero");
        assert_eq!(prefix_name(Some("/test")), "_test");
        assert_eq!(prefix_name(Some("/a/b_c.d")), "_ab_cd");
    }

    #[test]
    fn default_nginx_is_omeros_plus_documented_additions() {
        let text = render(
            &settings_from(""),
            NginxKind::Nginx,
            &RenderOptions::default(),
        )
        .unwrap();
        let expected = "upstream omeroweb {
    server 127.0.0.1:4080 fail_timeout=0;
}

server {
    listen 80;
    server_name $hostname;

    sendfile on;
    client_max_body_size 0;



    # maintenance page serve from here
    location @maintenance {
        root /home/omero/OMERO.server/etc/templates/error;
        try_files $uri /maintainance.html =502;
    }

    # weblitz django apps serve media from here
    location /static {
        alias /home/omero/OMERO.server/var/static;
    }

    # default thumbnails the pool published on disk, served without calling it;
    # anything else (other sizes, query strings, missing files) goes to the pool
    location ~ ^/(?:webgateway|webclient)/render_thumbnail/(?<omeroweb_thumbnail>[0-9]+)/$ {
        root /home/omero/OMERO.server/var/cache/published;
        types { image/jpeg jpg; }
        # browsers revalidate (a cheap 304): a replaced file's new thumbnail shows at once
        add_header Cache-Control \"no-cache\";
        try_files /t$is_args/$omeroweb_thumbnail.jpg @omeroweb_versioned_thumbnail;
    }

    # the same for a versioned URL (?v=<version>): a file named after the query, kept
    # a year by browsers (a new image or new settings give a new URL); others to the pool
    location @omeroweb_versioned_thumbnail {
        root /home/omero/OMERO.server/var/cache/published;
        types { image/jpeg jpg; }
        add_header Cache-Control \"private, max-age=31536000, immutable\";
        try_files /v/$omeroweb_thumbnail$is_args$args.jpg @proxy_to_app;
    }

    location @proxy_to_app {
        error_page 502 =502 @maintenance;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header Host $http_host;
        proxy_redirect off;
        proxy_buffering off;
        proxy_read_timeout 65s;
        proxy_send_timeout 65s;

        proxy_pass http://omeroweb;
    }

    location / {

        error_page 502 @maintenance;
        # checks for static file, if not found proxy to app
        try_files $uri @proxy_to_app;
    }

}
";
        assert_eq!(text, expected);
    }

    #[test]
    fn extra_config_is_framed_at_column_zero() {
        let settings = settings_from(
            r#""omero.web.nginx_server_extra_config" = '["listen 443 ssl;", "ssl_certificate /home/omero/OMERO.server/etc/fullchain.pem;"]'"#,
        );
        let text = render(&settings, NginxKind::Nginx, &RenderOptions::default()).unwrap();
        assert!(text.contains(
            "    client_max_body_size 0;

# <<<<< omero.web.nginx_server_extra_config
listen 443 ssl;
ssl_certificate /home/omero/OMERO.server/etc/fullchain.pem;
# omero.web.nginx_server_extra_config >>>>>

    # maintenance page serve from here
"
        ));
    }

    #[test]
    fn omero_prechecks() {
        let wsgi = settings_from(r#""omero.web.application_server" = "wsgi""#);
        let err = render(&wsgi, NginxKind::Nginx, &RenderOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration mismatch. omero.web.application_server=wsgi cannot be used with 'omero-webctl nginx nginx'."
        );
        let dev = settings_from(r#""omero.web.application_server" = "development""#);
        let err = render(&dev, NginxKind::NginxLocation, &RenderOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("=development cannot be used with 'omero-webctl nginx nginx-location'")
        );

        let port80 = settings_from(r#""omero.web.application_server.port" = 80"#);
        for kind in [NginxKind::Nginx, NginxKind::NginxLocation] {
            let err = render(&port80, kind, &RenderOptions::default()).unwrap_err();
            assert_eq!(err.to_string(), "Port conflict: HTTP(80) and wsgi(80).");
        }
        let options = RenderOptions {
            http_port: Some(4080),
            ..RenderOptions::default()
        };
        let err = render(&settings_from(""), NginxKind::NginxDevelopment, &options).unwrap_err();
        assert_eq!(err.to_string(), "Port conflict: HTTP(4080) and wsgi(4080).");
    }

    #[test]
    fn options_cannot_inject() {
        let settings = settings_from("");
        for (server_name, size) in [
            (Some("a;b"), None),
            (Some("x{"), None),
            (Some("\"x\""), None),
            (Some("a\nb"), None),
            (None, Some("1m;")),
            (None, Some("1m\n}")),
        ] {
            let options = RenderOptions {
                server_name: server_name.map(String::from),
                max_body_size: size.map(String::from),
                ..RenderOptions::default()
            };
            for kind in [
                NginxKind::Nginx,
                NginxKind::NginxLocation,
                NginxKind::NginxDevelopment,
            ] {
                render(&settings, kind, &options).expect_err("accepted an injection");
            }
        }
    }

    #[test]
    fn an_absolute_static_url_gets_no_static_location() {
        let settings =
            settings_from("\"omero.web.static_url\" = \"https://cdn.example.org/omero/static/\"\n");
        for kind in [
            NginxKind::Nginx,
            NginxKind::NginxLocation,
            NginxKind::NginxDevelopment,
        ] {
            let text = render(&settings, kind, &RenderOptions::default()).unwrap();
            assert!(!text.contains("alias "), "{kind:?}:\n{text}");
            assert!(
                text.contains(
                    "# static files are served from https://cdn.example.org/omero/static/, not by this server\n"
                ),
                "{kind:?}:\n{text}"
            );
        }
        let default = render(
            &settings_from(""),
            NginxKind::Nginx,
            &RenderOptions::default(),
        );
        assert!(
            default
                .unwrap()
                .contains("    location /static {\n        alias ")
        );
    }

    #[test]
    fn published_thumbnails_get_their_location_only_when_on() {
        let on = render(
            &settings_from(""),
            NginxKind::Nginx,
            &RenderOptions::default(),
        )
        .unwrap();
        assert!(on.contains(
            "try_files /t$is_args/$omeroweb_thumbnail.jpg @omeroweb_versioned_thumbnail;"
        ));
        assert!(on.contains("try_files /v/$omeroweb_thumbnail$is_args$args.jpg @proxy_to_app;"));
        let mut off = settings_from("");
        off.published_thumbnails = false;
        let text = render(&off, NginxKind::Nginx, &RenderOptions::default()).unwrap();
        assert!(!text.contains("render_thumbnail"), "{text}");
    }

    #[test]
    fn tls_and_download_limits() {
        let settings = settings_from(
            r#""omero.web.nginx.ssl_certificate" = "/etc/ssl/web.pem"
"omero.web.nginx.ssl_certificate_key" = "/etc/ssl/web.key"
"omero.web.nginx.https_port" = 8443
"omero.web.nginx.download_limit_conn" = 2
"omero.web.nginx.download_limit_rate" = "10m"
"omero.web.prefix" = "/omero"
"omero.web.static_url" = "/omero/static/"
"#,
        );
        let text = render(&settings, NginxKind::Nginx, &RenderOptions::default()).unwrap();
        assert!(text.starts_with(
            "limit_conn_zone $binary_remote_addr zone=omeroweb_downloads_omero:10m;\n\nupstream omeroweb_omero {"
        ));
        assert!(text.contains("    listen 80;\n    server_name $hostname;\n    return 301 https://$host:8443$request_uri;\n"));
        assert!(text.contains("    listen 8443 ssl;\n    server_name $hostname;\n    ssl_certificate /etc/ssl/web.pem;\n    ssl_certificate_key /etc/ssl/web.key;\n"));
        assert!(text.contains("    location /omero/webgateway/archived_files/download/ {\n"));
        assert!(
            text.contains(
                "        limit_conn omeroweb_downloads_omero 2;\n        limit_rate 10m;\n"
            )
        );

        let location = render(
            &settings,
            NginxKind::NginxLocation,
            &RenderOptions::default(),
        )
        .unwrap();
        assert!(!location.contains("\nlimit_conn "));
        assert!(location.contains(
            "    #   limit_conn_zone $binary_remote_addr zone=omeroweb_downloads_omero:10m;\n"
        ));
        assert!(location.contains("    limit_rate 10m;\n"));
        assert!(!location.contains("ssl"));

        let dev = render(
            &settings,
            NginxKind::NginxDevelopment,
            &RenderOptions::default(),
        )
        .unwrap();
        assert!(dev.contains(
            "\n    limit_conn_zone $binary_remote_addr zone=omeroweb_downloads_omero:10m;\n"
        ));
        assert!(dev.contains("        listen 8080;\n        server_name _;\n        return 301 https://$host:8443$request_uri;\n"));

        // Port 443 is left out of the redirect; rate alone declares no zone.
        let settings = settings_from(
            r#""omero.web.nginx.ssl_certificate" = "/etc/ssl/web.pem"
"omero.web.nginx.ssl_certificate_key" = "/etc/ssl/web.key"
"omero.web.nginx.download_limit_rate" = "1m"
"#,
        );
        let text = render(&settings, NginxKind::Nginx, &RenderOptions::default()).unwrap();
        assert!(text.contains("return 301 https://$host$request_uri;"));
        assert!(!text.contains("limit_conn"));
        assert!(text.contains("    location /webgateway/archived_files/download/ {\n"));
    }

    #[test]
    fn development_keeps_everything_under_var_nginx() {
        let options = RenderOptions {
            worker_user: Some("root".into()),
            ..RenderOptions::default()
        };
        let text = render(&settings_from(""), NginxKind::NginxDevelopment, &options).unwrap();
        let dir = "/home/omero/OMERO.server/var/nginx";
        for line in [
            format!("pid {dir}/nginx.pid;"),
            format!("error_log {dir}/error.log;"),
            "user root;".to_string(),
            format!("    access_log    {dir}/access.log;"),
            format!("    include       {dir}/mime.types;"),
            format!("    client_body_temp_path {dir}/tmp/client_body;"),
            format!("    fastcgi_temp_path {dir}/tmp/fastcgi;"),
            format!("    uwsgi_temp_path {dir}/tmp/uwsgi;"),
            format!("    scgi_temp_path {dir}/tmp/scgi;"),
            format!("        proxy_temp_path {dir}/tmp/proxy;"),
            "        listen 8080;".to_string(),
            "        server_name _;".to_string(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let plain = render(
            &settings_from(""),
            NginxKind::NginxDevelopment,
            &RenderOptions::default(),
        )
        .unwrap();
        assert!(!plain.lines().any(|l| l.starts_with("user ")));
    }
}
