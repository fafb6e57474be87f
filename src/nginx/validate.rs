//! Every value that reaches a generated nginx config is checked here first, so that no
//! property or option can end a directive early, open or close a block, or expand an
//! nginx variable. The config layer already validated the properties' types; this
//! layer adds what nginx needs (and refuses OMERO's known invalid renderings).

use std::path::Path;

use super::{NginxError, tokens};
use crate::config::Settings;
use crate::config::property::{has_nginx_metachar, is_host_name};

const SERVER_NAME_ALLOWED: &str = "host names, wildcard names (*.example.org, www.example.*), _ or $hostname, separated by spaces";
const SIZE_ALLOWED: &str =
    "digits with an optional k, m or g suffix, e.g. 0 (unlimited), 512k, 2m, 1g";
const URL_PATH_ALLOWED: &str =
    "a URL path starting with / made of letters, digits and - . _ ~ / % + , : @ =";
const PATH_ALLOWED: &str =
    "an absolute path without spaces, quotes, ';', '{', '}', '#', '$', '\\' or control characters";
const EXTRA_CONFIG_ALLOWED: &str = "single lines that end with ';', '{' or '}' (or # comments), whose braces and quotes balance, without server/http/events blocks, file-opening directives (include, access_log, error_log, *_temp_path, ...) or paths outside the site";

/// `--servername`: nginx's `server_name` takes several names; each must be one of the
/// forms nginx documents that cannot carry anything else.
pub fn validate_server_name(value: &str) -> Result<(), NginxError> {
    let refuse =
        |reason: String| NginxError::invalid("--servername", value, reason, SERVER_NAME_ALLOWED);
    let names: Vec<&str> = value.split(' ').filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err(refuse("no name given".into()));
    }
    for name in names {
        if !is_server_name(name) {
            return Err(refuse(format!("{name:?} is not a host name")));
        }
    }
    Ok(())
}

fn is_server_name(name: &str) -> bool {
    if name == "_" || name == "$hostname" {
        return true;
    }
    if let Some(rest) = name.strip_prefix("*.") {
        return is_host_name(rest);
    }
    if let Some(rest) = name.strip_suffix(".*") {
        return is_host_name(rest);
    }
    is_host_name(name)
}

/// `--max-body-size`: an nginx size.
pub fn validate_max_body_size(value: &str) -> Result<(), NginxError> {
    if is_nginx_size(value) {
        Ok(())
    } else {
        Err(NginxError::invalid(
            "--max-body-size",
            value,
            "not an nginx size",
            SIZE_ALLOWED,
        ))
    }
}

/// The `user` line of the private nginx: a user name and optionally a group name.
pub(crate) fn validate_worker_user(value: &str) -> Result<(), NginxError> {
    let names: Vec<&str> = value.split(' ').collect();
    let is_name = |name: &str| {
        !name.is_empty()
            && !name.starts_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if names.len() > 2 || !names.iter().all(|n| is_name(n)) {
        return Err(NginxError::invalid(
            "worker user",
            value,
            "not a user name (and group name)",
            "letters, digits, '_', '-' and '.'",
        ));
    }
    Ok(())
}

/// Digits with at most one `k`/`m`/`g` suffix (either case).
pub(crate) fn is_nginx_size(value: &str) -> bool {
    let digits = value
        .strip_suffix(['k', 'K', 'm', 'M', 'g', 'G'])
        .unwrap_or(value);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `omero.web.nginx_server_extra_config`: raw directives are its purpose, but they must
/// stay inside the server block they are written into and must not make nginx (whose
/// master may run as root: the system nginx) open files the site does not own. The
/// lines are read with nginx's own tokeniser ([`super::tokens`]), one whole directive
/// (or brace, or comment) per line, and refused with the line and the reason when they:
/// close a block they did not open or leave one open; open a `server`, `http`,
/// `events`, `stream` or `mail` block; use a directive that opens or creates files
/// (`include`, `access_log`, `error_log`, `load_module`, `*_temp_path`, ...); or name a
/// file or directory outside `site_root` in `root`, `alias` or an `ssl_*` file.
pub fn validate_extra_config(lines: &[String], site_root: &Path) -> Result<(), NginxError> {
    const KEY: &str = "omero.web.nginx_server_extra_config";
    let refuse_line = |index: usize, reason: &str| {
        let what = format!("{KEY} line {}", index + 1);
        let line = lines.get(index).map(String::as_str).unwrap_or_default();
        NginxError::invalid(&what, line, reason, EXTRA_CONFIG_ALLOWED)
    };
    for (index, line) in lines.iter().enumerate() {
        if line.contains(['\n', '\r']) {
            return Err(refuse_line(index, "contains a line break"));
        }
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(refuse_line(index, "contains control characters"));
        }
    }
    let items = tokens::read(&lines.join("\n"), true)
        .map_err(|e| refuse_line(e.line.saturating_sub(1), &e.reason))?;
    let mut depth: i64 = 0;
    for item in &items {
        match item {
            tokens::Item::BlockEnd { line } => {
                depth -= 1;
                if depth < 0 {
                    return Err(refuse_line(line - 1, "closes a block it did not open"));
                }
            }
            tokens::Item::Directive {
                words,
                opens_block,
                line,
            } => {
                if let Some(reason) = refused_directive(words, *opens_block, site_root) {
                    return Err(refuse_line(line - 1, &reason));
                }
                if *opens_block {
                    depth += 1;
                }
            }
        }
    }
    if depth != 0 {
        return Err(NginxError::invalid(
            KEY,
            lines.join(" "),
            format!("'{{' and '}}' do not balance ({depth} block(s) left open)"),
            EXTRA_CONFIG_ALLOWED,
        ));
    }
    Ok(())
}

/// The nginx checks of one property, for every face that sets properties (`config
/// set`, the panel): refused when it is set, not first when a config is generated.
pub fn check_property(key: &str, settings: &Settings) -> Result<(), NginxError> {
    match key {
        "omero.web.nginx_server_extra_config" => {
            validate_extra_config(&settings.nginx_extra_config, &settings.site_root)
        }
        _ => Ok(()),
    }
}

/// Blocks that only belong outside a server block: one in the extra lines means they
/// left the server block.
const OUTER_BLOCKS: [&str; 5] = ["server", "http", "events", "stream", "mail"];
/// Directives that open or create files by themselves (logs, includes, modules, temp
/// and cache directories, stores, scripts): no property of ours asks for them here.
const FILE_DIRECTIVES: [&str; 12] = [
    "include",
    "load_module",
    "access_log",
    "error_log",
    "pid",
    "lock_file",
    "working_directory",
    "js_import",
    "js_path",
    "perl_modules",
    "perl_require",
    "ssl_engine",
];
/// Suffixes of directive names that open files or create directories.
const FILE_DIRECTIVE_SUFFIXES: [&str; 3] = ["_temp_path", "_cache_path", "_store"];
/// Directives whose arguments name files or directories: allowed inside the site only.
const PATH_DIRECTIVES: [&str; 3] = ["root", "alias", "auth_basic_user_file"];
/// `ssl_*` (also `proxy_ssl_*`, `grpc_ssl_*`, ...) directives that read files.
const SSL_FILE_SUFFIXES: [&str; 9] = [
    "ssl_certificate",
    "ssl_certificate_key",
    "ssl_trusted_certificate",
    "ssl_client_certificate",
    "ssl_crl",
    "ssl_dhparam",
    "ssl_password_file",
    "ssl_stapling_file",
    "ssl_session_ticket_key",
];

/// Why a directive of the extra lines is refused, if it is.
/// The directives that take a block inside a server (or location) block.
const SERVER_BLOCKS: [&str; 4] = ["location", "if", "limit_except", "types"];

fn refused_directive(words: &[String], opens_block: bool, site_root: &Path) -> Option<String> {
    let name = words.first()?.as_str();
    let lower = name.to_ascii_lowercase();
    if opens_block && OUTER_BLOCKS.contains(&lower.as_str()) {
        return Some(format!(
            "opens a {lower:?} block, which cannot be inside the server block these lines go into"
        ));
    }
    if opens_block && !SERVER_BLOCKS.contains(&lower.as_str()) {
        // nginx refuses it ("is not terminated by \";\""); a block we let through
        // would also be one whose contents we judged as a block's.
        return Some(format!(
            "gives {name:?} a block, which nginx allows only for {}",
            SERVER_BLOCKS.join(", ")
        ));
    }
    let args = &words[1..];
    // `access_log off;` opens nothing; `proxy_store off;` stores nothing.
    let off = args.len() == 1 && args[0] == "off";
    let opens_files = FILE_DIRECTIVES.contains(&lower.as_str())
        || FILE_DIRECTIVE_SUFFIXES.iter().any(|s| lower.ends_with(s));
    if opens_files && !off {
        return Some(format!(
            "uses {name:?}, which makes nginx open or create files; not allowed in these lines"
        ));
    }
    let names_paths = PATH_DIRECTIVES.contains(&lower.as_str())
        || SSL_FILE_SUFFIXES.iter().any(|s| lower.ends_with(s));
    if names_paths {
        for arg in args {
            if !is_inside(arg, site_root) {
                return Some(format!(
                    "{name} names {arg:?}, which is not a plain path inside the site directory {}",
                    site_root.display()
                ));
            }
        }
    }
    None
}

/// A literal absolute path below `site_root`: no variables, no `..`, no `data:`.
fn is_inside(arg: &str, site_root: &Path) -> bool {
    let path = Path::new(arg);
    path.is_absolute()
        && !arg.contains('$')
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        && path.starts_with(site_root)
        && path != site_root
}

/// The settings the templates use, checked for nginx. The config layer validated their
/// types; this refuses what would still be invalid or unsafe in an nginx file.
pub(crate) fn validate_settings(settings: &Settings) -> Result<(), NginxError> {
    // A value the site's file holds but we could not use would be rendered as its
    // default: an nginx config for a site that does not run that way.
    if let Some(aside) = settings
        .set_aside
        .iter()
        .find(|a| a.needs.contains(&crate::config::Need::Nginx))
    {
        return Err(NginxError::SetAside {
            warning: aside.warning.clone(),
            key: aside.key.clone(),
        });
    }
    if let Some(prefix) = &settings.prefix {
        let refuse = |reason: &str| {
            NginxError::invalid("omero.web.prefix", prefix, reason, URL_PATH_ALLOWED)
        };
        if prefix.is_empty() || prefix == "/" {
            // OMERO renders this as `location  {`, which nginx rejects.
            return Err(refuse(
                "is the root; leave omero.web.prefix unset to serve at /",
            ));
        }
        if !is_plain_url_path(prefix) {
            return Err(refuse("is not a plain URL path"));
        }
    }

    let static_url = &settings.static_url;
    let refuse_static = |reason: &str| {
        NginxError::invalid("omero.web.static_url", static_url, reason, URL_PATH_ALLOWED)
    };
    if settings.static_url_is_absolute() {
        // Served elsewhere: nothing of it goes into the nginx configuration but a
        // comment, which must stay one line.
        if static_url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(refuse_static("holds spaces or control characters"));
        }
    } else if !is_plain_url_path(static_url) {
        return Err(refuse_static("is not a plain URL path"));
    }
    let static_location = static_url.trim_end_matches('/');
    if static_location.is_empty() && !settings.static_url_is_absolute() {
        return Err(refuse_static(
            "is the root; static files need their own path, e.g. /static/",
        ));
    }
    if Some(static_location) == settings.prefix.as_deref() {
        return Err(refuse_static(
            "is the same location as omero.web.prefix; give static files their own path",
        ));
    }

    check_path("site directory", &settings.site_root)?;
    check_path("omero.web.static_root", &settings.static_root)?;
    if let Some(tls) = &settings.tls {
        check_path("omero.web.nginx.ssl_certificate", &tls.certificate)?;
        check_path("omero.web.nginx.ssl_certificate_key", &tls.certificate_key)?;
    }

    if has_nginx_metachar(&settings.host) || settings.host.contains(char::is_whitespace) {
        return Err(NginxError::invalid(
            "omero.web.application_server.host",
            &settings.host,
            "contains characters nginx treats specially",
            "an IP address or host name",
        ));
    }
    if !is_nginx_size(&settings.download_limit_rate) {
        return Err(NginxError::invalid(
            "omero.web.nginx.download_limit_rate",
            &settings.download_limit_rate,
            "not an nginx size",
            SIZE_ALLOWED,
        ));
    }
    validate_extra_config(&settings.nginx_extra_config, &settings.site_root)
}

/// A URL path nginx reads as one literal token.
fn is_plain_url_path(path: &str) -> bool {
    path.starts_with('/')
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~/%+,:@=".contains(c))
}

/// A filesystem path written unquoted into `root`, `alias`, `ssl_certificate`, ...:
/// those directives also expand `$variables`, so `$` is refused with the metacharacters.
fn check_path(what: &str, path: &Path) -> Result<(), NginxError> {
    let text = path.to_string_lossy();
    let bad = has_nginx_metachar(&text) || text.contains(char::is_whitespace) || text.contains('$');
    if !path.is_absolute() || bad {
        let reason = if path.is_absolute() {
            "contains characters nginx would misread"
        } else {
            "is not absolute"
        };
        return Err(NginxError::invalid(what, text, reason, PATH_ALLOWED));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn server_names() {
        for good in [
            "$hostname",
            "_",
            "omeroweb.host",
            "example.org www.example.org",
            "*.example.org",
            "www.example.*",
            "localhost",
            "10.0.0.1",
        ] {
            validate_server_name(good).unwrap_or_else(|e| panic!("{good:?} refused: {e}"));
        }
        for bad in [
            "",
            " ",
            "a;b",
            "x{",
            "x}",
            "\"quoted\"",
            "a\nb",
            "a\tb",
            "host; return 200 x",
            "$host",
            "*",
            "*.",
            "ex*ample.org",
            "-bad.org",
        ] {
            let err = validate_server_name(bad).expect_err(bad);
            let text = err.to_string();
            assert!(text.starts_with("--servername "), "{text}");
            assert!(text.contains("allowed: host names"), "{text}");
        }
    }

    #[test]
    fn body_sizes() {
        for good in ["0", "2m", "512k", "1G", "10"] {
            validate_max_body_size(good).unwrap();
        }
        for bad in ["", "m", "2mb", "1m;", "1 m", "-1", "1m\n", "2m; deny all"] {
            let err = validate_max_body_size(bad).expect_err(bad).to_string();
            assert!(err.contains("not an nginx size"), "{err}");
        }
    }

    const SITE: &str = "/srv/omero-web";

    #[test]
    fn only_directives_nginx_gives_a_block_may_open_one() {
        // Found by the fuzz target against `nginx -t`: nginx refuses `return` with a
        // block ("is not terminated by \";\"").
        let site = Path::new(SITE);
        let err = validate_extra_config(
            &lines(&["add_header X-T a; # \\{'/", "return 200 {#$uri/;", "}"]),
            site,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("gives \"return\" a block"), "{err}");
        validate_extra_config(
            &lines(&["location /x {", "if ($uri) {", "return 403;", "}", "}"]),
            site,
        )
        .unwrap();
    }

    #[test]
    fn extra_config_lines() {
        let site = Path::new(SITE);
        validate_extra_config(&[], site).unwrap();
        validate_extra_config(
            &lines(&[
                "listen 443 ssl;",
                "ssl_certificate /srv/omero-web/etc/fullchain.pem;",
                "# a comment with a { brace",
                "",
                "location /x {",
                "    return 403;",
                "}",
                "add_header X-Frame-Options \"SAMEORIGIN\";",
                "access_log off;",
            ]),
            site,
        )
        .unwrap();

        let reason = |items: &[&str]| {
            validate_extra_config(&lines(items), site)
                .unwrap_err()
                .to_string()
        };
        assert!(reason(&["listen 80;\nserver_name x;"]).contains("line break"));
        assert!(reason(&["proxy_read_timeout 300s"]).contains("does not end with"));
        assert!(reason(&["location /x {"]).contains("do not balance"));
        assert!(reason(&["}", "server {"]).contains("closes a block it did not open"));
        assert!(reason(&["} server {"]).contains("closes a block it did not open"));
        assert!(reason(&["return 200 \"x;"]).contains("quote"));
        // Braces hidden in a comment or a string do not count: these lines would
        // close the server block and open a new one in nginx.
        assert!(
            reason(&[
                "add_header X-A 1; # {",
                "}",
                "server {",
                "listen 9999;",
                "}",
                "add_header X-B 1; # }",
            ])
            .contains("closes a block it did not open")
        );
        assert!(reason(&["add_header X-A \"{\";", "}"]).contains("closes a block"));
        // A `#` inside a token is not a comment (nginx reads `a#b` as one word).
        validate_extra_config(&lines(&["return 301 https://example.org/#top;"]), site).unwrap();
        // Attack 2 of issue 20: outside quotes nginx reads `\"` as an escaped quote, so
        // the `}` after it closes the server block in nginx; a checker that took `"`
        // for the start of a string missed it.
        assert!(
            reason(&["add_header X-A \\\";}", "server {", "}", "location /y {"])
                .contains("closes a block it did not open")
        );
        assert!(reason(&["return 200 \\\";", "}"]).contains("closes a block it did not open"));
        // Blocks that belong outside a server block, and directives that open files.
        assert!(reason(&["server {", "}"]).contains("\"server\" block"));
        assert!(reason(&["http {", "}"]).contains("\"http\" block"));
        for opener in [
            "access_log /etc/cron.d/x;",
            "access_log /srv/omero-web/var/log/a.log combined;",
            "error_log /root/.bashrc;",
            "include /etc/nginx/x.conf;",
            "load_module /x.so;",
            "proxy_temp_path /etc/cron.d;",
            "client_body_temp_path /tmp/x 1 2;",
            "proxy_store /var/www;",
        ] {
            assert!(
                reason(&[opener]).contains("open or create files"),
                "{opener}"
            );
        }
        // Paths outside the site, and paths that could be anywhere.
        for outside in [
            "root /etc;",
            "alias /srv/omero-web/../../etc/;",
            "ssl_certificate_key /etc/shadow;",
            "proxy_ssl_trusted_certificate /root/ca.pem;",
            "root $document_root/x;",
            "auth_basic_user_file /etc/shadow;",
            "root /srv/omero-web;",
        ] {
            assert!(
                reason(&[outside]).contains("inside the site directory"),
                "{outside}"
            );
        }
        validate_extra_config(
            &lines(&["location /files/ {", "alias /srv/omero-web/files/;", "}"]),
            site,
        )
        .unwrap();
        // The message names the line.
        let text = reason(&["listen 1;", "x"]);
        assert!(
            text.starts_with("omero.web.nginx_server_extra_config line 2 \"x\": "),
            "{text}"
        );
    }

    fn settings() -> Settings {
        let dir = std::path::PathBuf::from("/srv/omero-web");
        let site = crate::site::Site::new(&dir);
        let config =
            crate::config::Config::from_text(&site, site.config_file(), String::new(), None)
                .unwrap();
        config.settings()
    }

    #[test]
    fn setting_the_extra_config_runs_its_nginx_check() {
        let mut s = settings();
        s.nginx_extra_config = vec!["access_log /etc/cron.d/x;".into()];
        let err = check_property("omero.web.nginx_server_extra_config", &s).unwrap_err();
        assert!(err.to_string().contains("open or create files"), "{err}");
        // Other keys have no nginx check of their own here.
        check_property("omero.web.wsgi_workers", &s).unwrap();
    }

    #[test]
    fn defaults_pass() {
        validate_settings(&settings()).unwrap();
    }

    #[test]
    fn prefix_and_static_url() {
        let refused = |edit: &dyn Fn(&mut Settings)| {
            let mut s = settings();
            edit(&mut s);
            validate_settings(&s).unwrap_err().to_string()
        };
        let text = refused(&|s| s.prefix = Some("/".into()));
        assert!(
            text.starts_with("omero.web.prefix \"/\": is the root"),
            "{text}"
        );
        refused(&|s| s.prefix = Some(String::new()));
        refused(&|s| s.prefix = Some("/a;b".into()));
        refused(&|s| s.prefix = Some("/a b".into()));
        refused(&|s| s.prefix = Some("/$x".into()));
        // Served by another server: accepted (nginx then does not serve /static).
        for absolute in [
            "http://h/static/",
            "https://cdn.example.org/",
            "//h/static/",
        ] {
            let mut s = settings();
            s.static_url = absolute.into();
            validate_settings(&s).unwrap();
        }
        refused(&|s| s.static_url = "https://h/a\nb/".into());
        refused(&|s| s.static_url = "/".into());
        refused(&|s| s.static_url = "/st{atic/".into());
        let text = refused(&|s| {
            s.prefix = Some("/omero".into());
            s.static_url = "/omero/".into();
        });
        assert!(text.contains("same location"), "{text}");

        let mut ok = settings();
        ok.prefix = Some("/my-omero".into());
        ok.static_url = "/my-omero/static/".into();
        validate_settings(&ok).unwrap();
    }

    #[test]
    fn paths_and_other_values() {
        let refused = |edit: &dyn Fn(&mut Settings)| {
            let mut s = settings();
            edit(&mut s);
            validate_settings(&s).unwrap_err().to_string()
        };
        let text = refused(&|s| s.static_root = "/srv/my static".into());
        assert!(text.starts_with("omero.web.static_root"), "{text}");
        refused(&|s| s.static_root = "/srv/a;b".into());
        refused(&|s| s.static_root = "/srv/$document_root".into());
        refused(&|s| s.site_root = "/srv/{x}".into());
        refused(&|s| {
            s.tls = Some(crate::config::Tls {
                certificate: "/etc/ssl/a;b.pem".into(),
                certificate_key: "/etc/ssl/k.pem".into(),
                port: 443,
            })
        });
        refused(&|s| s.host = "127.0.0.1;".into());
        refused(&|s| s.download_limit_rate = "1m;".into());
        refused(&|s| s.nginx_extra_config = vec!["}".into()]);
    }
}
