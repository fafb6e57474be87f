//! What a property is: its key, default, type, group, help and what a change needs.
//! The table of every property lives in `registry`; this module holds the types and
//! the validation that turns raw text into a typed [`Value`].

use std::fmt;

/// Where a property is shown; the panel and `config list` group by it, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Group {
    Deployment,
    Workers,
    Nginx,
    Logging,
    #[serde(rename = "Image gateway")]
    Gateway,
    #[serde(rename = "Sessions & security")]
    Security,
    Application,
    #[serde(rename = "JSON API")]
    Api,
    Mail,
    Internal,
    Deprecated,
}

impl Group {
    pub const ALL: [Group; 11] = [
        Group::Deployment,
        Group::Workers,
        Group::Nginx,
        Group::Logging,
        Group::Gateway,
        Group::Security,
        Group::Application,
        Group::Api,
        Group::Mail,
        Group::Internal,
        Group::Deprecated,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Deployment => "Deployment",
            Group::Workers => "Workers",
            Group::Nginx => "nginx",
            Group::Logging => "Logging",
            Group::Gateway => "Image gateway",
            Group::Security => "Sessions & security",
            Group::Application => "Application",
            Group::Api => "JSON API",
            Group::Mail => "Mail",
            Group::Internal => "Internal",
            Group::Deprecated => "Deprecated",
        }
    }
}

/// What has to happen for a changed value to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// A rolling reload of the pool (`omero-webctl reload`).
    PoolReload,
    /// A full restart of the pool (the listener changes).
    PoolRestart,
    /// Regenerating the nginx config (and reloading nginx).
    Nginx,
}

impl Need {
    pub fn describe(self) -> &'static str {
        match self {
            Need::PoolReload => "pool reload",
            Need::PoolRestart => "pool restart",
            Need::Nginx => "nginx regeneration",
        }
    }
}

/// Shape a JSON property must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonShape {
    List,
    Object,
}

/// The type of a property's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer within `min..=max`.
    Int { min: i64, max: i64 },
    /// `true/false/1/0/t/f/yes/no`; anything else is an error (OMERO reads it as false).
    Bool,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A filesystem path; normalised like Python's `os.path.normpath`.
    Path,
    /// A plain URL path: starts with `/`, no spaces, quotes, `;`, braces or control
    /// characters (it is written into nginx `location` lines).
    UrlPath,
    /// `omero.web.static_url`: a URL path, or an absolute URL of another server.
    StaticUrl,
    /// JSON text of the given shape.
    Json(JsonShape),
    /// A regular expression.
    Regex,
    /// An IANA time zone name.
    TimeZone,
    /// A bind address: an IP address or a host name.
    Host,
    /// An nginx size: digits with an optional `k`/`m`/`g` suffix (`0` = unlimited).
    NginxSize,
    /// Extra Gunicorn-style flags (`omero.web.wsgi_args`), checked by its parser.
    WsgiArgs,
    /// Any text.
    Text,
}

impl Kind {
    /// Short type name, for tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Int { .. } => "integer",
            Kind::Bool => "boolean",
            Kind::Choice(_) => "choice",
            Kind::Path => "path",
            Kind::UrlPath => "URL path",
            Kind::StaticUrl => "URL",
            Kind::Json(JsonShape::List) => "JSON list",
            Kind::Json(JsonShape::Object) => "JSON object",
            Kind::Regex => "regex",
            Kind::TimeZone => "time zone",
            Kind::Host => "host",
            Kind::NginxSize => "size",
            Kind::WsgiArgs => "flags",
            Kind::Text => "string",
        }
    }

    /// What values are allowed, in words, for error messages and help.
    pub fn allowed(self) -> String {
        match self {
            Kind::Int { min, max } if max == i64::MAX => format!("an integer >= {min}"),
            Kind::Int { min, max } => format!("an integer from {min} to {max}"),
            Kind::Bool => {
                "true or false (OMERO.web also reads 1 and t as true, 0, f, no and off as false)"
                    .into()
            }
            Kind::Choice(words) => format!("one of {}", words.join(", ")),
            Kind::Path => "a filesystem path".into(),
            Kind::UrlPath => {
                "a URL path starting with / (no spaces, quotes, ';', braces or '#')".into()
            }
            Kind::StaticUrl => "a URL path starting with / (no spaces, quotes, ';', braces or '#'), or an absolute URL such as https://static.example.org/omero/ (no spaces)".into(),
            Kind::Json(JsonShape::List) => "a JSON list, e.g. [\"a\", \"b\"]".into(),
            Kind::Json(JsonShape::Object) => "a JSON object, e.g. {\"key\": \"value\"}".into(),
            Kind::Regex => "a regular expression Python's re module compiles".into(),
            Kind::TimeZone => "an IANA time zone name such as Europe/London".into(),
            Kind::Host => "an IP address or a host name".into(),
            Kind::NginxSize => "a size such as 0, 512k, 10m or 1g".into(),
            Kind::WsgiArgs => {
                "shell-quoted Gunicorn flags (the embedded pool honours --log-level, --error-logfile, --access-logfile, --timeout, --graceful-timeout, --keep-alive, --backlog, --limit-request-line, --limit-request-fields, --limit-request-field_size, --max-requests-jitter, --threads, --worker-connections and --forwarded-allow-ips)".into()
            }
            Kind::Text => "any text".into(),
        }
    }
}

/// A validated value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bool(bool),
    /// Strings, paths, JSON text, regexes: stored as the text the operator gave
    /// (paths normalised).
    Text(String),
}

impl Value {
    /// The `key=value` text form, as `omero config get` prints it.
    pub fn to_raw(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Text(s) => s.clone(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_raw())
    }
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: String,
}

impl Invalid {
    pub fn new(reason: impl Into<String>) -> Invalid {
        Invalid {
            reason: reason.into(),
        }
    }
}

/// One property of the registry.
#[derive(Debug, Clone, Copy)]
pub struct Property {
    pub key: &'static str,
    /// Raw default; `None` = unset. `$OMERODIR/` at the start stands for the site root.
    pub default: Option<&'static str>,
    pub kind: Kind,
    pub group: Group,
    /// One line, in our words.
    pub help: &'static str,
    pub needs: &'static [Need],
    /// A property omero-webctl adds; OMERO.web does not know it.
    pub extension: bool,
    /// Only the embedded pool and its image gateway read it: on an OMERO.web site it
    /// has no effect (the panel hides it there).
    pub embedded_only: bool,
    /// For deprecated keys: what replaces it (or why it is gone).
    pub replaced_by: Option<&'static str>,
    /// Masked in listings.
    pub secret: bool,
    /// How it reaches the command line `omero web start` gives a real OMERO.web's
    /// Gunicorn (`supervisor::gunicorn::argv` builds it from these).
    pub gunicorn: Option<GunicornArgv>,
}

/// A property's place on Gunicorn's command line. A HUP keeps the command line, so
/// on an OMERO.web site a change of these applies at a restart, except the worker
/// count, which a reload applies (`worker add`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GunicornArgv {
    /// Becomes (part of) this flag's value.
    Flag(&'static str),
    /// `--workers`: on the command line, but a reload applies a new count.
    WorkerCount,
    /// Appended to the command line as written (`omero.web.wsgi_args`).
    Appended,
    /// Chooses the Python that runs Gunicorn, not a flag.
    Interpreter,
}

impl GunicornArgv {
    /// Only a restart of Gunicorn applies a change.
    pub fn needs_restart(self) -> bool {
        !matches!(self, GunicornArgv::WorkerCount)
    }
}

impl Property {
    pub fn is_deprecated(&self) -> bool {
        self.replaced_by.is_some()
    }

    /// Validates raw text (from the CLI, an import or a TOML string) into a value.
    pub fn parse(&self, raw: &str) -> Result<Value, Invalid> {
        parse_kind(self.kind, raw)
    }

    /// Validates a TOML value as found in the config file: native integers and
    /// booleans where the type says so, and strings for everything (parsed like CLI
    /// input, since OMERO's values are all strings).
    pub fn parse_toml(&self, value: &toml_edit::Value) -> Result<Value, Invalid> {
        match (value, self.kind) {
            (toml_edit::Value::String(s), _) => self.parse(s.value()),
            (toml_edit::Value::Integer(i), Kind::Int { .. }) => {
                check_int(self.kind, *i.value()).map(Value::Int)
            }
            (toml_edit::Value::Boolean(b), Kind::Bool) => Ok(Value::Bool(*b.value())),
            (other, _) => Err(Invalid::new(format!(
                "a TOML {} is not {}",
                other.type_name(),
                self.kind.allowed()
            ))),
        }
    }

    /// The value as it goes into the TOML file: native where TOML has the type.
    pub fn to_toml(&self, value: &Value) -> toml_edit::Value {
        match value {
            Value::Int(i) => toml_edit::Value::from(*i),
            Value::Bool(b) => toml_edit::Value::from(*b),
            Value::Text(s) => toml_edit::Value::from(s.as_str()),
        }
    }
}

fn check_int(kind: Kind, i: i64) -> Result<i64, Invalid> {
    if let Kind::Int { min, max } = kind
        && (i < min || i > max)
    {
        return Err(Invalid::new("out of range"));
    }
    Ok(i)
}

/// Characters that would let a value break out of an nginx directive.
/// `http://…`, `https://…` or protocol-relative `//host/…`.
pub fn is_absolute_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .or_else(|| s.strip_prefix("//"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

pub fn has_nginx_metachar(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, ';' | '{' | '}' | '"' | '\'' | '#' | '\\') || c.is_control())
}

fn parse_kind(kind: Kind, raw: &str) -> Result<Value, Invalid> {
    match kind {
        Kind::Int { .. } => {
            let t = raw.trim();
            let i: i64 = t.parse().map_err(|_| Invalid::new("not an integer"))?;
            check_int(kind, i).map(Value::Int)
        }
        // Exactly OMERO.web's `parse_boolean`: only true, 1 and t are true, anything
        // else is false. Words that look true but that OMERO would read as false are
        // refused, so that a value never changes meaning between OMERO and us.
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "t" => Ok(Value::Bool(true)),
            "false" | "0" | "f" | "no" | "off" | "n" => Ok(Value::Bool(false)),
            "yes" | "y" | "on" | "enabled" | "enable" => Err(Invalid::new(
                "OMERO.web reads this word as false (only true, 1 and t are true)",
            )),
            _ => Err(Invalid::new("not a boolean")),
        },
        Kind::Choice(words) => {
            let t = raw.trim();
            if words.contains(&t) {
                Ok(Value::Text(t.to_string()))
            } else {
                Err(Invalid::new("not an allowed choice"))
            }
        }
        Kind::Path => {
            if raw.trim().is_empty() {
                return Err(Invalid::new("empty path"));
            }
            if raw.chars().any(|c| c.is_control()) {
                return Err(Invalid::new("control characters in path"));
            }
            let p = crate::site::normalize(std::path::Path::new(raw.trim()));
            let text = p.to_string_lossy().into_owned();
            // "logs //" normalises to "logs ", which would read back as "logs".
            if text.trim() != text {
                return Err(Invalid::new(
                    "the path would begin or end with a space once its extra '/' are removed",
                ));
            }
            Ok(Value::Text(text))
        }
        // Django's STATIC_URL may point at another server (a CDN), as OMERO's docs show.
        Kind::StaticUrl if is_absolute_url(raw.trim()) => {
            let t = raw.trim();
            if t.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"')
            {
                return Err(Invalid::new(
                    "contains spaces, quotes or control characters",
                ));
            }
            Ok(Value::Text(t.to_string()))
        }
        Kind::UrlPath | Kind::StaticUrl => {
            let t = raw.trim();
            if !t.starts_with('/') {
                return Err(Invalid::new("does not start with /"));
            }
            if has_nginx_metachar(t) || t.chars().any(char::is_whitespace) {
                return Err(Invalid::new(
                    "contains characters not allowed in a URL path",
                ));
            }
            Ok(Value::Text(t.to_string()))
        }
        Kind::Json(shape) => {
            let v: serde_json::Value = serde_json::from_str(raw)
                .map_err(|e| Invalid::new(format!("invalid JSON ({e})")))?;
            match (shape, &v) {
                (JsonShape::List, serde_json::Value::Array(_))
                | (JsonShape::Object, serde_json::Value::Object(_)) => {
                    Ok(Value::Text(raw.trim().to_string()))
                }
                _ => Err(Invalid::new("JSON of the wrong shape")),
            }
        }
        // OMERO.web compiles it with Python's `re` on import; what Python refuses
        // stops the site.
        Kind::Regex => super::python_re::check(raw)
            .map(|()| Value::Text(raw.to_string()))
            .map_err(|why| Invalid::new(format!("Python cannot compile this regex ({why})"))),
        Kind::TimeZone => raw
            .trim()
            .parse::<chrono_tz::Tz>()
            .map(|_| Value::Text(raw.trim().to_string()))
            .map_err(|_| Invalid::new("unknown time zone")),
        Kind::Host => {
            let t = raw.trim();
            if t.parse::<std::net::IpAddr>().is_ok() || is_host_name(t) {
                Ok(Value::Text(t.to_string()))
            } else {
                Err(Invalid::new("not an IP address or host name"))
            }
        }
        Kind::NginxSize => {
            let t = raw.trim();
            let digits = t.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
            let suffixes = t.len() - digits.len();
            if !digits.is_empty() && suffixes <= 1 && digits.bytes().all(|b| b.is_ascii_digit()) {
                Ok(Value::Text(t.to_string()))
            } else {
                Err(Invalid::new("not an nginx size"))
            }
        }
        // What any site accepts; the embedded pool's stricter rule is the store's.
        Kind::WsgiArgs => super::wsgi_args::parse_for_gunicorn(raw)
            .map(|_| Value::Text(raw.to_string()))
            .map_err(|e| {
                let message = e.to_string();
                let message = message
                    .strip_prefix("omero.web.wsgi_args: ")
                    .unwrap_or(&message);
                Invalid::new(message)
            }),
        Kind::Text => {
            if raw.contains('\0') {
                Err(Invalid::new("contains a NUL character"))
            } else {
                Ok(Value::Text(raw.to_string()))
            }
        }
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
pub fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(kind: Kind, raw: &str) -> Value {
        parse_kind(kind, raw).unwrap_or_else(|e| panic!("{raw:?} refused: {}", e.reason))
    }
    fn bad(kind: Kind, raw: &str) -> String {
        match parse_kind(kind, raw) {
            Ok(v) => panic!("{raw:?} accepted as {v:?}"),
            Err(e) => e.reason,
        }
    }

    #[test]
    fn integers_are_bounded() {
        let port = Kind::Int { min: 1, max: 65535 };
        assert_eq!(ok(port, " 4080 "), Value::Int(4080));
        assert_eq!(bad(port, "0"), "out of range");
        assert_eq!(bad(port, "65536"), "out of range");
        assert_eq!(bad(port, "80a"), "not an integer");
        assert_eq!(bad(port, ""), "not an integer");
    }

    #[test]
    fn booleans_refuse_garbage() {
        // What OMERO.web's parse_boolean reads as true, and only that.
        for t in ["true", "TRUE", "1", "t", " T "] {
            assert_eq!(ok(Kind::Bool, t), Value::Bool(true));
        }
        for f in ["false", "0", "f", "no", " No ", "off"] {
            assert_eq!(ok(Kind::Bool, f), Value::Bool(false));
        }
        assert_eq!(bad(Kind::Bool, "maybe"), "not a boolean");
        // OMERO would read these as false: refused rather than silently flipped.
        for looks_true in ["yes", "Yes", "on", "y"] {
            assert_eq!(
                bad(Kind::Bool, looks_true),
                "OMERO.web reads this word as false (only true, 1 and t are true)"
            );
        }
    }

    #[test]
    fn choices_json_regex_zone() {
        let k = Kind::Choice(&["sync", "gthread", "gevent"]);
        assert_eq!(ok(k, "gevent"), Value::Text("gevent".into()));
        assert_eq!(bad(k, "eventlet"), "not an allowed choice");
        assert!(bad(Kind::Json(JsonShape::List), "[1,").starts_with("invalid JSON"));
        assert_eq!(
            bad(Kind::Json(JsonShape::List), "{}"),
            "JSON of the wrong shape"
        );
        ok(Kind::Json(JsonShape::Object), r#"{"a": 1}"#);
        assert!(bad(Kind::Regex, "a(").starts_with("Python cannot compile this regex"));
        ok(Kind::Regex, "^/webgateway/");
        ok(Kind::TimeZone, "Europe/London");
        assert_eq!(bad(Kind::TimeZone, "Mars/Olympus"), "unknown time zone");
    }

    #[test]
    fn url_paths_and_hosts_cannot_inject() {
        ok(Kind::UrlPath, "/omero");
        assert_eq!(
            bad(Kind::UrlPath, "https://cdn.example.org/static/"),
            "does not start with /"
        );
        // static_url may be absolute, as Django's STATIC_URL and OMERO's docs allow.
        for url in [
            "https://cdn.example.org/static/",
            "http://h/s/",
            "//h/static/",
            "/static/",
        ] {
            assert_eq!(ok(Kind::StaticUrl, url), Value::Text(url.into()));
        }
        assert_eq!(bad(Kind::StaticUrl, "static/"), "does not start with /");
        assert_eq!(
            bad(Kind::StaticUrl, "https://h/a b/"),
            "contains spaces, quotes or control characters"
        );
        assert_eq!(bad(Kind::StaticUrl, "https:///x"), "does not start with /");
        assert_eq!(bad(Kind::UrlPath, "omero"), "does not start with /");
        for evil in ["/a;b", "/a{", "/a}", "/a\"", "/a b", "/a\nb", "/a#"] {
            bad(Kind::UrlPath, evil);
        }
        ok(Kind::Host, "127.0.0.1");
        ok(Kind::Host, "::1");
        ok(Kind::Host, "web-1.example.org");
        bad(Kind::Host, "a;b");
        bad(Kind::Host, "-bad");
    }

    #[test]
    fn sizes_and_paths() {
        ok(Kind::NginxSize, "0");
        ok(Kind::NginxSize, "2m");
        bad(Kind::NginxSize, "2mb");
        bad(Kind::NginxSize, "m");
        assert_eq!(ok(Kind::Path, "/a/./b/../c"), Value::Text("/a/c".into()));
        bad(Kind::Path, "  ");
    }
}
