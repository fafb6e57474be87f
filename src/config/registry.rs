//! The table of every property: OMERO.web's (reference §1a–1e) and our extensions.
//! CLI listing, the panel's editor, the property reference (docs/properties.md) and validation all read it.

use super::property::{Group, GunicornArgv, JsonShape, Kind, Need, Property};

const RELOAD: &[Need] = &[Need::PoolReload];
const RESTART_NGINX: &[Need] = &[Need::PoolRestart, Need::Nginx];
const RELOAD_NGINX: &[Need] = &[Need::PoolReload, Need::Nginx];
const NGINX: &[Need] = &[Need::Nginx];
const RESTART: &[Need] = &[Need::PoolRestart];
const NOTHING: &[Need] = &[];

const WORKER_CLASSES: &[&str] = &["sync", "gthread", "gevent"];
const SERVER_TYPES: &[&str] = &["wsgi-tcp", "wsgi", "development"];
const SESSION_ENGINES: &[&str] = &[
    "omeroweb.filesessionstore",
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.file",
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.cached_db",
];
const SAMESITE: &[&str] = &["Lax", "Strict", "None"];
const PLATE_LAYOUTS: &[&str] = &["expand", "shrink", "trim"];

const fn int(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}
/// Most workers a pool may have: `omero.web.wsgi_workers`' bound, and what `scale`
/// (the CLI, the panel, a control-socket client) may ask for.
pub const MAX_WORKERS: u32 = 1024;

/// Why a pool may not have `target` workers, if it may not.
pub fn scale_refusal(target: i64) -> Option<String> {
    let max = MAX_WORKERS;
    (target > max as i64).then(|| {
        format!(
            "cannot scale to {target} workers: at most {max} (the limit of omero.web.wsgi_workers)"
        )
    })
}

const ANY_INT: Kind = int(i64::MIN, i64::MAX);
const NON_NEG: Kind = int(0, i64::MAX);
const POSITIVE: Kind = int(1, i64::MAX);
const PORT: Kind = int(1, 65535);
const LIST: Kind = Kind::Json(JsonShape::List);
const OBJECT: Kind = Kind::Json(JsonShape::Object);

/// A property with no special flags; the builder methods below add them.
const fn prop(
    key: &'static str,
    default: Option<&'static str>,
    kind: Kind,
    group: Group,
    help: &'static str,
) -> Property {
    Property {
        key,
        default,
        kind,
        group,
        help,
        needs: RELOAD,
        extension: false,
        embedded_only: false,
        replaced_by: None,
        secret: false,
        gunicorn: None,
    }
}

impl Property {
    const fn needs(mut self, needs: &'static [Need]) -> Property {
        self.needs = needs;
        self
    }
    const fn extension(mut self) -> Property {
        self.extension = true;
        self
    }
    const fn embedded_only(mut self) -> Property {
        self.embedded_only = true;
        self
    }
    const fn secret(mut self) -> Property {
        self.secret = true;
        self
    }
    /// Becomes this flag on a real Gunicorn's command line.
    const fn flag(mut self, flag: &'static str) -> Property {
        self.gunicorn = Some(GunicornArgv::Flag(flag));
        self
    }
    const fn on_argv(mut self, how: GunicornArgv) -> Property {
        self.gunicorn = Some(how);
        self
    }
    const fn deprecated(mut self, replaced_by: &'static str) -> Property {
        self.replaced_by = Some(replaced_by);
        self.group = Group::Deprecated;
        self
    }
}

use Group::*;

const DEFAULT_MIDDLEWARE: &str = r#"[{"index": 1, "class": "django.middleware.common.BrokenLinkEmailsMiddleware"}, {"index": 2, "class": "django.middleware.common.CommonMiddleware"}, {"index": 3, "class": "django.contrib.sessions.middleware.SessionMiddleware"}, {"index": 4, "class": "django.middleware.csrf.CsrfViewMiddleware"}, {"index": 5, "class": "django.contrib.messages.middleware.MessageMiddleware"}, {"index": 6, "class": "django.middleware.clickjacking.XFrameOptionsMiddleware"}]"#;
// Written as OMERO's settings.py writes it (no space after the comma), so the
// default reads back byte-identical.
const DEFAULT_OPEN_WITH: &str = r#"[["Image viewer", "webgateway", {"supported_objects": ["image"],"script_url": "webclient/javascript/ome.openwith_viewer.js"}]]"#;
const DEFAULT_TOP_LINKS: &str = r#"[["Data", "webindex", {"title": "Browse Data via Projects, Tags etc"}], ["History", "history", {"title": "History"}], ["Help", "https://help.openmicroscopy.org/", {"title": "Open OMERO user guide in a new tab", "target": "new"}]]"#;
const DEFAULT_METADATA_PANES: &str = r#"[{"name": "tag", "label": "Tags", "index": 1}, {"name": "map", "label": "Key-Value Pairs", "index": 2}, {"name": "table", "label": "Tables", "index": 3}, {"name": "file", "label": "Attachments", "index": 4}, {"name": "comment", "label": "Comments", "index": 5}, {"name": "rating", "label": "Ratings", "index": 6}, {"name": "other", "label": "Others", "index": 7}]"#;
const DEFAULT_RIGHT_PLUGINS: &str = r#"[["Acquisition", "webclient/data/includes/right_plugin.acquisition.js.html", "metadata_tab"], ["Preview", "webclient/data/includes/right_plugin.preview.js.html", "preview_tab"]]"#;

/// Every property, grouped; order within a group is the order shown.
pub static PROPERTIES: &[Property] = &[
    // ---- Deployment -------------------------------------------------------------
    prop("omero.web.application_server", Some("wsgi-tcp"), Kind::Choice(SERVER_TYPES), Deployment,
        "How the web runs: wsgi-tcp = the managed worker pool on TCP; wsgi and development are refused by start").needs(RESTART_NGINX),
    prop("omero.web.application_server.host", Some("127.0.0.1"), Kind::Host, Deployment,
        "Address the pool listens on; also the upstream host in the nginx config").needs(RESTART_NGINX).flag("--bind"),
    prop("omero.web.application_server.port", Some("4080"), PORT, Deployment,
        "TCP port the pool listens on; also the upstream port in the nginx config").needs(RESTART_NGINX).flag("--bind"),
    prop("omero.web.prefix", None, Kind::UrlPath, Deployment,
        "URL path the site is mounted under, e.g. /omero (unset = the root)").needs(RELOAD_NGINX),
    prop("omero.web.static_url", Some("/static/"), Kind::StaticUrl, Deployment,
        "URL base of static assets; change it with the prefix, e.g. /omero/static/").needs(RELOAD_NGINX),
    prop("omero.web.static_root", Some("$OMERODIR/var/static"), Kind::Path, Deployment,
        "Directory static assets are collected into on start; nginx serves it with alias").needs(RELOAD_NGINX),
    prop("omero.web.python", None, Kind::Path, Deployment,
        "Python of an OMERO.web site: its venv directory or interpreter (unset = python3 on PATH)").extension().needs(RESTART).on_argv(GunicornArgv::Interpreter),
    prop("omero.web.debug", Some("false"), Kind::Bool, Deployment,
        "Debug mode: DEBUG-level logging and detailed error pages"),
    prop("omero.web.secret_key", None, Kind::Text, Security,
        "Secret used to sign sessions (unset = generated into var/django_secret_key)").secret(),
    // ---- Workers ----------------------------------------------------------------
    prop("omero.web.wsgi_workers", Some("5"), int(1, MAX_WORKERS as i64), Workers,
        "Number of worker processes; (2 x cores) + 1 is the usual advice").on_argv(GunicornArgv::WorkerCount),
    prop("omero.web.wsgi_worker_class", Some("sync"), Kind::Choice(WORKER_CLASSES), Workers,
        "sync = one request at a time; gthread = wsgi_threads at a time; gevent = async, many connections").flag("--worker-class"),
    prop("omero.web.wsgi_threads", Some("1"), int(1, 1024), Workers,
        "Concurrent requests per worker for gthread (and sync with more than 1)").flag("--threads"),
    prop("omero.web.wsgi_worker_connections", Some("1000"), int(1, 100_000), Workers,
        "Maximum concurrent connections per gevent worker").flag("--worker-connections"),
    prop("omero.web.wsgi_timeout", Some("60"), NON_NEG, Workers,
        "Seconds a worker may stay silent before it is aborted and replaced (0 = never)").needs(RELOAD_NGINX).flag("--timeout"),
    prop("omero.web.application_server.max_requests", Some("0"), NON_NEG, Workers,
        "Recycle a worker after this many requests (0 = never); in-flight work finishes first").flag("--max-requests"),
    prop("omero.web.wsgi_args", None, Kind::WsgiArgs, Workers,
        "Extra Gunicorn flags, split with shell quoting; words that are no Gunicorn flag are refused").on_argv(GunicornArgv::Appended),
    prop("omero.web.wsgi_max_requests_jitter", Some("0"), NON_NEG, Workers,
        "Random extra requests (0..N) added to max_requests per worker, so workers do not recycle together").extension().flag("--max-requests-jitter"),
    prop("omero.web.wsgi_graceful_timeout", Some("30"), NON_NEG, Workers,
        "Seconds a stopping or recycled worker gets to finish its requests before it is killed").extension().flag("--graceful-timeout"),
    prop("omero.web.wsgi_keepalive", Some("2"), NON_NEG, Workers,
        "Seconds an idle keep-alive connection stays open (gthread and gevent; sync closes)").extension().flag("--keep-alive"),
    prop("omero.web.wsgi_backlog", Some("2048"), int(1, 65535), Workers,
        "Length of the listen queue of the pool's socket").needs(&[Need::PoolRestart]).extension().flag("--backlog"),
    prop("omero.web.wsgi_boot_timeout", Some("30"), int(1, 3600), Workers,
        "Seconds a new worker may take to report ready before start or reload gives up").extension(),
    prop("omero.web.wsgi_limit_request_line", Some("4094"), int(0, 8190), Workers,
        "Maximum bytes of the HTTP request line (0 = the maximum, 8190)").extension().flag("--limit-request-line"),
    prop("omero.web.wsgi_limit_request_fields", Some("100"), int(1, 32768), Workers,
        "Maximum number of HTTP request header fields").extension().flag("--limit-request-fields"),
    prop("omero.web.wsgi_limit_request_field_size", Some("8190"), int(0, 65536), Workers,
        "Maximum bytes of one HTTP request header field (0 = 65536)").extension().flag("--limit-request-field_size"),
    // ---- nginx ------------------------------------------------------------------
    prop("omero.web.nginx_server_extra_config", Some("[]"), LIST, Nginx,
        "JSON list of raw lines added inside the generated server block (each must end with ';' or balance braces)").needs(NGINX),
    prop("omero.web.nginx.proxy_timeout", Some("0"), NON_NEG, Nginx,
        "proxy_read/send_timeout in seconds (0 = wsgi_timeout + 5 s, or 3600 s when the worker timeout is off)").needs(NGINX).extension(),
    prop("omero.web.nginx.ssl_certificate", None, Kind::Path, Nginx,
        "Certificate file; with the key, adds an HTTPS server and redirects HTTP to it").needs(NGINX).extension(),
    prop("omero.web.nginx.ssl_certificate_key", None, Kind::Path, Nginx,
        "Private key file of the certificate").needs(NGINX).extension(),
    prop("omero.web.nginx.https_port", Some("443"), PORT, Nginx,
        "Port of the HTTPS server when a certificate is set").needs(NGINX).extension(),
    prop("omero.web.nginx.download_limit_conn", Some("0"), int(0, 65535), Nginx,
        "Concurrent original-file downloads allowed per client address (0 = no limit)").needs(NGINX).extension(),
    prop("omero.web.nginx.download_limit_rate", Some("0"), Kind::NginxSize, Nginx,
        "Bytes per second per download connection, e.g. 10m (0 = no limit)").needs(NGINX).extension(),
    prop("omero.web.nginx.published_thumbnails", Some("true"), Kind::Bool, Nginx,
        "nginx serves default thumbnails the embedded pool published on disk, without calling it (never on an OMERO.web site, whose thumbnails need a login)")
        .needs(RESTART_NGINX).extension().embedded_only(),
    // ---- Logging ----------------------------------------------------------------
    prop("omero.web.logdir", Some("$OMERODIR/var/log"), Kind::Path, Logging,
        "Directory of OMEROweb.log (OMERO ignores this property; omero-webctl honours it)").needs(&[Need::PoolRestart]).flag("--error-logfile"),
    prop("omero.web.log.max_bytes", Some("104857600"), int(0, i64::MAX), Logging,
        "Rotate OMEROweb.log when it reaches this many bytes (0 = never rotate)").extension(),
    prop("omero.web.log.backup_count", Some("5"), int(0, 1000), Logging,
        "Number of rotated logs kept (OMEROweb.log.1 ...)").extension(),
    // ---- Image gateway ----------------------------------------------------------
    prop("omero.web.repository", Some("$OMERODIR/var/repository"), Kind::Path, Gateway,
        "Directory of the images the embedded gateway serves").extension().embedded_only(),
    prop("omero.web.render.max_output_pixels", Some("16777216"), int(1, 1 << 32), Gateway,
        "Largest rendered image (width x height) render_image and render_thumbnail produce; larger requests get 400").extension().embedded_only(),
    prop("omero.web.render.max_image_pixels", Some("1073741824"), int(1, i64::MAX), Gateway,
        "Largest image (x*y*z*c*t pixels) the gateway agrees to open, against decompression bombs").extension().embedded_only(),
    prop("omero.policy.binary_access", Some("+read,+write,+image,+plate"), Kind::Text, Gateway,
        "OMERO.server's download policy, which the embedded gateway honours; '-read' makes downloads answer 404")
        .extension().embedded_only(),
    prop("omero.web.chunk_size", Some("1048576"), int(1, 1 << 30), Gateway,
        "Bytes per chunk when streaming original files"),
    prop("omero.web.maximum_multifile_download_size", Some("1073741824"), NON_NEG, Gateway,
        "Largest total size of a multi-file zip download; larger requests get 403"),
    prop("omero.web.page_size", Some("200"), POSITIVE, Gateway,
        "Images per page in the webclient gallery"),
    prop("omero.web.thumbnails_batch", Some("50"), POSITIVE, Gateway,
        "Maximum image IDs per get_thumbnails request"),
    // ---- Sessions & security ----------------------------------------------------
    prop("omero.web.session_engine", Some("django.contrib.sessions.backends.file"), Kind::Choice(SESSION_ENGINES), Security,
        "Django session backend"),
    prop("omero.web.session_serializer", Some("django.contrib.sessions.serializers.JSONSerializer"), Kind::Text, Security,
        "Class that serialises session data"),
    prop("omero.web.session_expire_at_browser_close", Some("true"), Kind::Bool, Security,
        "Session cookies last only as long as the browser"),
    prop("omero.web.session_cookie_age", Some("86400"), NON_NEG, Security,
        "Session cookie lifetime in seconds"),
    prop("omero.web.session_cookie_domain", None, Kind::Text, Security, "Domain of the session cookie"),
    prop("omero.web.session_cookie_name", None, Kind::Text, Security,
        "Name of the session cookie (Django's default: sessionid)"),
    prop("omero.web.session_cookie_path", None, Kind::Text, Security, "Path of the session cookie"),
    prop("omero.web.session_cookie_secure", Some("false"), Kind::Bool, Security,
        "Send the session cookie over HTTPS only (recommended behind HTTPS)"),
    prop("omero.web.session_cookie_samesite", Some("Lax"), Kind::Choice(SAMESITE), Security,
        "SameSite flag of the session cookie"),
    prop("omero.web.access.idle_timeout", Some("600"), NON_NEG, Security,
        "Seconds without a request after which an embedded site's login session ends (0 = never; OMERO's server sessions time out after 600 s idle)")
        .extension().embedded_only(),
    prop("omero.web.access.remote_user_header", Some(""), Kind::Text, Security,
        "Header in which a front that did the login (SSO) names the user, e.g. X-Remote-User (empty = off)")
        .extension().embedded_only(),
    prop("omero.web.access.remote_user_proxies", Some("127.0.0.1,::1"), Kind::Text, Security,
        "Addresses or networks (comma-separated, as --forwarded-allow-ips) whose remote-user header is believed")
        .extension().embedded_only(),
    // OMERO.server's LDAP properties (its names and defaults), read by an embedded
    // site's login. OMERO.web does not read them: extensions, as far as it knows.
    prop("omero.ldap.config", Some("false"), Kind::Bool, Security,
        "Let users log in with their LDAP password (embedded sites: a second user source after the local store)")
        .extension().embedded_only(),
    prop("omero.ldap.urls", Some("ldap://localhost:389"), Kind::Text, Security,
        "LDAP server URLs, tried in order (ldaps:// for LDAP over TLS; certificates are checked)")
        .extension().embedded_only(),
    prop("omero.ldap.base", Some("ou=example,o=com"), Kind::Text, Security,
        "Base DN under which users and groups are searched").extension().embedded_only(),
    prop("omero.ldap.username", Some(""), Kind::Text, Security,
        "DN of the service account that searches for users (empty = anonymous search)").extension().embedded_only(),
    prop("omero.ldap.password", Some(""), Kind::Text, Security,
        "Password of that service account").secret().extension().embedded_only(),
    prop("omero.ldap.user_filter", Some("(objectClass=person)"), Kind::Text, Security,
        "LDAP filter every user entry must match").extension().embedded_only(),
    prop("omero.ldap.user_mapping", Some("omeName=cn,firstName=givenName,lastName=sn,email=mail,institution=o,middleName=middleName"),
        Kind::Text, Security, "User attributes; omeName= names the attribute holding the login name").extension().embedded_only(),
    prop("omero.ldap.group_filter", Some("(objectClass=groupOfNames)"), Kind::Text, Security,
        "LDAP filter of group entries; a user is in the groups whose member, uniqueMember or memberUid names them").extension().embedded_only(),
    prop("omero.ldap.group_mapping", Some("name=cn"), Kind::Text, Security,
        "Group attributes; name= names the attribute holding the group's name (a top-level directory of the repository)").extension().embedded_only(),
    prop("omero.ldap.new_user_group", Some("default"), Kind::Text, Security,
        "A group every LDAP user is also in (empty = none)").extension().embedded_only(),
    prop("omero.ldap.starttls", Some("false"), Kind::Bool, Security,
        "Upgrade ldap:// connections with StartTLS (certificates are checked)").extension().embedded_only(),
    prop("omero.ldap.ca_file", None, Kind::Text, Security,
        "PEM file of certificate authorities trusted for the LDAP server besides the system's").extension().embedded_only(),
    prop("omero.web.csrf_cookie_secure", Some("false"), Kind::Bool, Security,
        "Send the CSRF cookie over HTTPS only"),
    prop("omero.web.csrf_cookie_httponly", Some("false"), Kind::Bool, Security,
        "Hide the CSRF cookie from JavaScript (breaks the web client's POSTs)"),
    prop("omero.web.csrf_cookie_samesite", Some("Lax"), Kind::Choice(SAMESITE), Security,
        "SameSite flag of the CSRF cookie"),
    prop("omero.web.csrf_trusted_origins", Some("[]"), LIST, Security,
        "Origins trusted for unsafe requests, e.g. [\"https://*.example.org\"]"),
    prop("omero.web.secure_proxy_ssl_header", Some("[]"), LIST, Security,
        "Header and value that mark a proxied request as HTTPS, e.g. [\"HTTP_X_FORWARDED_PROTO\", \"https\"]"),
    prop("omero.web.use_x_forwarded_host", Some("false"), Kind::Bool, Security,
        "Trust X-Forwarded-Host over Host"),
    prop("omero.web.secure", Some("false"), Kind::Bool, Security,
        "Use SSL for connections to OMERO.server"),
    prop("omero.web.x_frame_options", Some("SAMEORIGIN"), Kind::Text, Security,
        "Value of the X-Frame-Options header"),
    prop("omero.web.html_meta_referrer", Some("origin-when-crossorigin"), Kind::Text, Security,
        "Content of the referrer meta tag"),
    prop("omero.web.cors_origin_whitelist", Some("[]"), LIST, Security, "Origins allowed for CORS"),
    prop("omero.web.cors_origin_allow_all", Some("false"), Kind::Bool, Security, "Allow CORS from every origin"),
    prop("omero.web.middleware", Some(DEFAULT_MIDDLEWARE), LIST, Security,
        "Django middleware as [{\"index\": n, \"class\": \"dotted.path\"}], sorted by index"),
    prop("omero.web.redirect_allowed_hosts", Some("[]"), LIST, Security, "External hosts allowed as redirect targets"),
    // ---- Application ------------------------------------------------------------
    prop("omero.web.server_list", Some(r#"[["localhost", 4064, "omero"]]"#), LIST, Application,
        "OMERO.servers users can log in to, as [host, port, name]"),
    prop("omero.web.caches", Some(r#"{"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}"#), OBJECT, Application,
        "Django CACHES setting"),
    prop("omero.web.time_zone", Some("Europe/London"), Kind::TimeZone, Application, "Time zone of the web application"),
    prop("omero.web.django_additional_settings", Some("[]"), LIST, Application,
        "Extra Django settings as [[\"NAME\", value], ...]"),
    prop("omero.web.databases", Some("{}"), OBJECT, Application,
        "Django DATABASES (only for the db session backends)"),
    prop("omero.web.apps", Some("[]"), LIST, Application, "Extra web apps, e.g. [\"omero_figure\"]"),
    prop("omero.web.root_application", Some(""), Kind::Text, Application, "App mounted at / instead of the webclient"),
    prop("omero.web.admins", Some("[]"), LIST, Application, "Admins who get error mails, as [[\"Name\", \"email\"]]"),
    prop("omero.web.pipeline_staticfile_storage", Some("pipeline.storage.PipelineStorage"), Kind::Text, Application,
        "Storage engine used when collecting static files"),
    prop("omero.web.pipeline_js_compressor", None, Kind::Text, Application, "JavaScript compressor class (unset = none)"),
    prop("omero.web.pipeline_css_compressor", None, Kind::Text, Application, "CSS compressor class (unset = none)"),
    prop("omero.web.staticfile_dirs", Some("[]"), LIST, Application, "Extra directories of static files"),
    prop("omero.web.template_dirs", Some("[]"), LIST, Application, "Extra template directories"),
    prop("omero.web.ping_interval", Some("60000"), NON_NEG, Application, "Keep-alive ping interval of the web client (ms)"),
    prop("omero.web.max_table_download_rows", Some("10000"), POSITIVE, Application, "Maximum OMERO.table rows per download"),
    prop("omero.web.max_table_slice_size", Some("1000000"), POSITIVE, Application, "Maximum cells per table slice"),
    prop("omero.web.viewer.view", Some("omeroweb.webclient.views.image_viewer"), Kind::Text, Application, "View that opens the full image viewer"),
    prop("omero.web.login.show_client_downloads", Some("true"), Kind::Bool, Application, "Show desktop-client download links on the login page"),
    prop("omero.web.login.client_downloads_base", Some("ome/omero-insight"), Kind::Text, Application, "Repository the client download links point at"),
    prop("omero.web.open_with", Some(DEFAULT_OPEN_WITH), LIST, Application,
        "Viewers offered for selected objects, as [name, url or view, options]"),
    prop("omero.web.login_view", Some("weblogin"), Kind::Text, Application, "Django view name of the login page"),
    prop("omero.web.login_redirect", Some("{}"), OBJECT, Application,
        "Where to go after login, as Django reverse() arguments"),
    prop("omero.web.login_logo", None, Kind::Text, Application, "URL of a logo shown above OMERO's on the login page"),
    prop("omero.web.login_incorrect_credentials_text",
        Some("Connection not available, please check your user name and password."), Kind::Text, Application,
        "Message shown after a wrong user name or password"),
    prop("omero.web.top_logo", Some(""), Kind::Text, Application, "URL of the logo in the top bar"),
    prop("omero.web.top_logo_link", Some(""), Kind::Text, Application, "Link target of the top logo"),
    prop("omero.web.user_dropdown", Some("true"), Kind::Bool, Application, "Show the user menu in the header"),
    prop("omero.web.show_forgot_password", Some("true"), Kind::Bool, Application, "Show the 'Forgot password' link"),
    prop("omero.web.favicon_url", Some("webgateway/img/ome.ico"), Kind::Text, Application, "Favicon path, relative to the static URL"),
    prop("omero.web.index_template", None, Kind::Text, Application, "Template for /index/; when set, / redirects there"),
    prop("omero.web.base_include_template", None, Kind::Text, Application, "Template appended to every page"),
    prop("omero.web.feedback.comment.enabled", Some("true"), Kind::Bool, Application, "Enable the comment feedback form"),
    prop("omero.web.feedback.error.enabled", Some("true"), Kind::Bool, Application, "Enable the error feedback form"),
    prop("omero.web.search.default_user", Some("0"), ANY_INT, Application, "User preselected in search (0 = me, -1 = all)"),
    prop("omero.web.search.default_group", Some("0"), ANY_INT, Application, "Group preselected in search (0 or -1 = all)"),
    prop("omero.web.ui.top_links", Some(DEFAULT_TOP_LINKS), LIST, Application, "Links in the header, as [text, url-or-view, options]"),
    prop("omero.web.ui.metadata_panes", Some(DEFAULT_METADATA_PANES), LIST, Application, "Order and labels of the metadata panes"),
    prop("omero.web.ui.right_plugins", Some(DEFAULT_RIGHT_PLUGINS), LIST, Application, "Right-panel plugins, as [label, template, div id]"),
    prop("omero.web.ui.center_plugins", Some("[]"), LIST, Application, "Centre-panel plugins"),
    prop("omero.web.plate_layout", Some("expand"), Kind::Choice(PLATE_LAYOUTS), Application, "Layout of plate grids"),
    prop("omero.web.sharing.twitter", Some("{}"), OBJECT, Application, "Twitter site per server name, for link previews"),
    prop("omero.web.sharing.opengraph", Some("{}"), OBJECT, Application, "OpenGraph site name per server name"),
    prop("omero.web.public.enabled", Some("false"), Kind::Bool, Application, "Enable the anonymous public user"),
    prop("omero.web.public.url_filter", Some("(?#This regular expression matches nothing)a^"), Kind::Regex, Application,
        "Regular expression of URLs the public user may open (Python syntax)"),
    prop("omero.web.public.get_only", Some("true"), Kind::Bool, Application, "Restrict the public user to GET requests"),
    prop("omero.web.public.server_id", Some("1"), POSITIVE, Application, "Index (1-based) in server_list used for the public user"),
    prop("omero.web.public.user", None, Kind::Text, Application, "User name of the public user"),
    prop("omero.web.public.password", None, Kind::Text, Application, "Password of the public user").secret(),
    prop("omero.web.public.cache.enabled", Some("false"), Kind::Bool, Application, "Share one public-user connection through the cache"),
    prop("omero.web.public.cache.key", Some("omero.web.public.cache.key"), Kind::Text, Application, "Cache key of that shared connection"),
    prop("omero.web.public.cache.timeout", Some("86400"), NON_NEG, Application, "Lifetime of that shared connection, seconds"),
    // ---- JSON API ---------------------------------------------------------------
    prop("omero.web.api.limit", Some("200"), POSITIVE, Api, "Default page size of /api/ lists"),
    prop("omero.web.api.max_limit", Some("500"), POSITIVE, Api, "Maximum page size of /api/ lists"),
    prop("omero.web.api.absolute_url", None, Kind::Text, Api, "Fixed base for absolute URLs in API JSON (unset = from the request)"),
    // ---- Mail -------------------------------------------------------------------
    prop("omero.mail.from", None, Kind::Text, Mail, "Sender address of error mails"),
    prop("omero.mail.host", None, Kind::Text, Mail, "SMTP host"),
    prop("omero.mail.port", Some("25"), PORT, Mail, "SMTP port"),
    prop("omero.mail.username", None, Kind::Text, Mail, "SMTP user name"),
    prop("omero.mail.password", None, Kind::Text, Mail, "SMTP password").secret(),
    prop("omero.mail.smtp.starttls.enable", Some("false"), Kind::Bool, Mail, "Use STARTTLS"),
    // ---- Internal (processed by OMERO but not shown by `omero web help`) --------
    prop("omero.web.allowed_hosts", Some(r#"["*"]"#), LIST, Internal, "Host names the site answers to"),
    prop("omero.web.system_checks", Some(r#"["1_8.W001"]"#), LIST, Internal, "Silenced Django system checks"),
    prop("omero.web.check_version", Some("true"), Kind::Bool, Internal, "Check for upgrades at login"),
    prop("omero.web.upgrades.url", None, Kind::Text, Internal, "URL of the upgrade check"),
    prop("omero.web.admins.email_subject_prefix", Some("[OMERO.web - admin notification]"), Kind::Text, Internal, "Subject prefix of admin mails"),
    prop("omero.qa.feedback", Some("http://qa.openmicroscopy.org.uk"), Kind::Text, Internal, "Where feedback is posted"),
    // ---- Deprecated (used only when the replacement is unset) -------------------
    prop("omero.web.force_script_name", None, Kind::UrlPath, Deprecated, "Old name of the URL prefix")
        .deprecated("omero.web.prefix").needs(RELOAD_NGINX),
    prop("omero.web.server_email", None, Kind::Text, Deprecated, "Old name of the mail sender").deprecated("omero.mail.from"),
    prop("omero.web.email_host", None, Kind::Text, Deprecated, "Old name of the SMTP host").deprecated("omero.mail.host"),
    prop("omero.web.email_host_password", None, Kind::Text, Deprecated, "Old name of the SMTP password").deprecated("omero.mail.password").secret(),
    prop("omero.web.email_host_user", None, Kind::Text, Deprecated, "Old name of the SMTP user").deprecated("omero.mail.username"),
    prop("omero.web.email_port", None, PORT, Deprecated, "Old name of the SMTP port").deprecated("omero.mail.port"),
    prop("omero.web.email_subject_prefix", Some("[OMERO.web]"), Kind::Text, Deprecated, "Old mail subject prefix")
        .deprecated("no longer configurable").needs(NOTHING),
    prop("omero.web.email_use_tls", Some("false"), Kind::Bool, Deprecated, "Old STARTTLS switch").deprecated("omero.mail.smtp.starttls.enable"),
    prop("omero.web.plate_download.enabled", Some("false"), Kind::Bool, Deprecated, "Old plate download switch")
        .deprecated("omero.policy.binary_access"),
    prop("omero.web.viewer.initial_zoom_level", None, ANY_INT, Deprecated, "Old initial viewer zoom")
        .deprecated("omero.client.viewer.initial_zoom_level (server side)"),
    prop("omero.web.send_broken_link_emails", Some("false"), Kind::Bool, Deprecated, "Old broken-link mail switch")
        .deprecated("BrokenLinkEmailsMiddleware in omero.web.middleware plus omero.web.admins"),
];

/// The property with this key.
pub fn lookup(key: &str) -> Option<&'static Property> {
    PROPERTIES.iter().find(|p| p.key == key)
}

/// Up to three known keys closest to `key`, for "did you mean" hints. Keys are
/// compared on what follows the prefix they share (`omero.web.`), by edit distance:
/// on whole keys every web key looks alike, and `open_with` would suggest
/// `time_zone`.
pub fn suggest(key: &str) -> Vec<&'static str> {
    fn tail(key: &str) -> String {
        key.strip_prefix("omero.web.")
            .or_else(|| key.strip_prefix("omero."))
            .unwrap_or(key)
            .to_ascii_lowercase()
    }
    let wanted = tail(key);
    let mut scored: Vec<(f64, &'static str)> = PROPERTIES
        .iter()
        .map(|p| {
            let known = tail(p.key);
            let mut score = strsim::normalized_damerau_levenshtein(&wanted, &known);
            // A word of the key written alone (`workers` for `wsgi_workers`).
            if wanted.len() >= 5 && (known.contains(&wanted) || wanted.contains(&known)) {
                score = score.max(0.7);
            }
            (score, p.key)
        })
        .filter(|(score, _)| *score >= 0.6)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(3).map(|(_, k)| k).collect()
}

/// The property reference as a Markdown table per group, for docs/properties.md.
pub fn markdown_reference() -> String {
    let mut out = String::new();
    for group in Group::ALL {
        let props: Vec<&Property> = PROPERTIES.iter().filter(|p| p.group == group).collect();
        if props.is_empty() {
            continue;
        }
        out.push_str(&format!("\n## {}\n\n", group.title()));
        out.push_str("| property | type | default | change needs | description |\n");
        out.push_str("| --- | --- | --- | --- | --- |\n");
        for p in props {
            let default = match p.default {
                Some(d) if d.len() > 40 => "(long JSON, see `config get`)".to_string(),
                Some("") => "empty".to_string(),
                Some(d) => format!("`{}`", d.replace('|', "\\|")),
                None => "unset".to_string(),
            };
            let needs = if p.needs.is_empty() {
                "nothing".to_string()
            } else {
                p.needs
                    .iter()
                    .map(|n| n.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut help = p.help.replace('|', "\\|");
            if p.extension {
                help.push_str(" *(extension)*");
            }
            if let Some(new) = p.replaced_by {
                help.push_str(&format!(" *(deprecated: {new})*"));
            }
            let kind = match p.kind {
                Kind::Int { .. } | Kind::Choice(_) => p.kind.allowed(),
                other => other.name().to_string(),
            };
            out.push_str(&format!(
                "| `{}` | {} | {default} | {needs} | {help} |\n",
                p.key, kind
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_beyond_the_worker_limit_is_refused_with_it() {
        assert_eq!(scale_refusal(1024), None);
        let refusal = scale_refusal(1025).unwrap();
        assert!(refusal.contains("at most 1024"), "{refusal}");
        assert!(scale_refusal(i64::MAX).is_some());
    }
    use std::collections::HashSet;

    #[test]
    fn keys_are_unique_and_defaults_valid() {
        let mut seen = HashSet::new();
        for p in PROPERTIES {
            assert!(seen.insert(p.key), "duplicate key {}", p.key);
            if let Some(raw) = p.default {
                let raw = raw.replace("$OMERODIR", "/site");
                p.parse(&raw)
                    .unwrap_or_else(|e| panic!("default of {} invalid: {}", p.key, e.reason));
            }
            assert!(!p.help.is_empty() && !p.help.contains('\n'), "{}", p.key);
        }
        assert!(
            PROPERTIES.len() >= 100,
            "only {} properties",
            PROPERTIES.len()
        );
    }

    #[test]
    fn deprecated_keys_name_their_replacement() {
        let old = lookup("omero.web.force_script_name").unwrap();
        assert_eq!(old.replaced_by, Some("omero.web.prefix"));
        assert_eq!(old.group, Group::Deprecated);
        for p in PROPERTIES.iter().filter(|p| p.is_deprecated()) {
            assert_eq!(p.group, Group::Deprecated, "{}", p.key);
        }
    }

    #[test]
    fn suggestions_find_typos() {
        assert_eq!(
            suggest("omero.web.wsgi_worker")[0],
            "omero.web.wsgi_workers"
        );
        assert!(suggest("completely.different").is_empty());
        // The shared prefix does not make unrelated keys look alike.
        assert!(suggest("omero.web.frobnicate").is_empty());
        assert!(!suggest("omero.web.openwith").contains(&"omero.web.time_zone"));
        assert_eq!(suggest("omero.web.openwith")[0], "omero.web.open_with");
        assert_eq!(
            suggest("omero.web.login_redirct")[0],
            "omero.web.login_redirect"
        );
        assert_eq!(suggest("omero.web.workers")[0], "omero.web.wsgi_workers");
        assert_eq!(
            suggest("omero.web.sesion_cookie_age")[0],
            "omero.web.session_cookie_age"
        );
    }
}
