//! Where OMERO.web keeps its Django sessions, and whether that store answers. Hosts
//! that share users behind one front must share sessions, else whichever host answers
//! a request decides whether the user is logged in. OMERO's documented way: the
//! `cache` session engine with `omero.web.caches` pointing at Redis through
//! django-redis (what `scripts/omeroweb-venv` installs next to omero-web).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Config;

pub const ENGINE_KEY: &str = "omero.web.session_engine";
pub const CACHES_KEY: &str = "omero.web.caches";
/// Django's engine that keeps sessions in the `default` cache only.
pub const CACHE_ENGINE: &str = "django.contrib.sessions.backends.cache";
/// The engine that writes through to the database as well (OMERO.web offers it).
const CACHED_DB_ENGINE: &str = "django.contrib.sessions.backends.cached_db";
/// django-redis' backend, the one OMERO's docs name.
pub const REDIS_BACKEND: &str = "django_redis.cache.RedisCache";
/// The default engine of OMERO.web: one file per session in the temp dir of each host.
const FILE_ENGINE: &str = "django.contrib.sessions.backends.file";

/// The Redis key prefix of the embedded gateway's login sessions (django-redis' own
/// keys start with `:VERSION:`, never so).
pub const GATEWAY_SESSION_PREFIX: &str = "omero-webctl:session:";
/// What every Django session key in a django-redis cache holds: the cache session
/// engine's key prefix (`django.contrib.sessions.cache<ID>`, `…cached_db<ID>`) after
/// django-redis' `:1:`.
const DJANGO_SESSION_PATTERN: &str = "*django.contrib.sessions.cache*";

/// A Redis address as django-redis takes it: `redis://[[user]:password@]host[:port][/db]`
/// or `unix:///path/to.sock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub text: String,
    pub endpoint: Endpoint,
    pub db: u32,
    pub password: Option<String>,
    pub user: Option<String>,
    /// `?ssl_ca_certs=PATH` of a `rediss://` URL: the CA file that redis-py (under
    /// django-redis) trusts, and so does the check here.
    pub ssl_ca_certs: Option<std::path::PathBuf>,
    /// `?ssl_cert_reqs=none`: the certificate is not checked (redis-py's meaning).
    pub ssl_unchecked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp {
        host: String,
        port: u16,
    },
    /// `rediss://`: TLS (the system's CAs, or the URL's `ssl_ca_certs`).
    Tls {
        host: String,
        port: u16,
    },
    Unix(std::path::PathBuf),
}

impl RedisUrl {
    pub fn parse(text: &str) -> Result<RedisUrl, String> {
        let bad = |why: &str| format!("{text:?} is not a Redis URL: {why} (redis://HOST:PORT/DB)");
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if scheme == "unix" {
            if !rest.starts_with('/') {
                return Err(bad("a unix socket needs an absolute path"));
            }
            return Ok(RedisUrl {
                text: text.to_string(),
                endpoint: Endpoint::Unix(rest.split('?').next().unwrap_or(rest).into()),
                db: 0,
                password: None,
                user: None,
                ssl_ca_certs: None,
                ssl_unchecked: false,
            });
        }
        if scheme != "redis" && scheme != "rediss" {
            return Err(bad("the scheme is neither redis, rediss nor unix"));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            None => (None, None),
            Some(c) => match c.split_once(':') {
                Some((u, p)) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
                None => (Some(c.to_string()), None),
            },
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad(&format!("port {p:?} is not a number")))?,
            ),
            _ => (hostport, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let db_text = path.split('?').next().unwrap_or("");
        let db = if db_text.is_empty() {
            0
        } else {
            db_text
                .parse()
                .map_err(|_| bad(&format!("database {db_text:?} is not a number")))?
        };
        let host = host.to_string();
        // redis-py reads its TLS options from the query (percent-decoded); the two
        // that decide whom the check trusts are read here too.
        let query: Vec<(String, String)> = path
            .split_once('?')
            .map(|(_, q)| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        Ok(RedisUrl {
            ssl_ca_certs: param("ssl_ca_certs").map(Into::into),
            ssl_unchecked: param("ssl_cert_reqs").is_some_and(|v| v.eq_ignore_ascii_case("none")),
            text: text.to_string(),
            endpoint: if scheme == "rediss" {
                Endpoint::Tls { host, port }
            } else {
                Endpoint::Tcp { host, port }
            },
            db,
            password,
            user,
        })
    }

    /// The URL without its password, for tables and logs.
    pub fn shown(&self) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => self.text.replacen(&format!(":{p}@"), ":***@", 1),
            _ => self.text.clone(),
        }
    }
}

/// The `omero.web.caches` value that puts the default cache (the sessions') in Redis.
pub fn caches_value(url: &RedisUrl) -> String {
    serde_json::json!({"default": {"BACKEND": REDIS_BACKEND, "LOCATION": url.text}}).to_string()
}

/// Where a site's sessions live, and whether the store answered this host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoreCheck {
    pub engine: String,
    /// "files in the temp dir of this host", "Redis redis://10.0.0.1:6379/0", ...
    pub location: String,
    /// Shared by every host that names the same store (files and local memory are not).
    pub shared: bool,
    /// The Redis URL (password hidden) when sessions live in Redis.
    pub redis: Option<String>,
    /// PING's round trip, when Redis answered.
    pub ping_ms: Option<f64>,
    /// Why the store cannot be used from this host.
    pub problem: Option<String>,
    /// The sessions the store holds, when it is Redis and answered (an older member
    /// does not send them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<SessionCounts>,
    /// Why the sessions could not be counted though PING answered (the counts are an
    /// extra: this does not make the store unusable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_problem: Option<String>,
}

/// The sessions in a Redis store, by who made them. Every site naming the store sees
/// the same numbers, whichever kind it is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionCounts {
    /// Logins of the embedded gateway.
    pub gateway: u64,
    /// OMERO.web's Django sessions.
    pub django: u64,
}

/// Reads the site's session settings and, when they name Redis, PINGs it.
pub fn check(config: &Config, timeout: Duration) -> StoreCheck {
    let engine = config
        .raw(ENGINE_KEY)
        .unwrap_or_else(|| FILE_ENGINE.to_string());
    let mut check = StoreCheck {
        engine: engine.clone(),
        location: String::new(),
        shared: false,
        redis: None,
        ping_ms: None,
        problem: None,
        counts: None,
        count_problem: None,
    };
    if engine != CACHE_ENGINE && engine != CACHED_DB_ENGINE {
        check.location = match engine.as_str() {
            FILE_ENGINE => "files in the temp dir of this host".into(),
            "django.contrib.sessions.backends.db" => "OMERO.web's database".into(),
            "django.contrib.sessions.backends.signed_cookies" => "the users' cookies".into(),
            other => other.to_string(),
        };
        check.shared = engine == "django.contrib.sessions.backends.signed_cookies";
        return check;
    }
    let (backend, location) = default_cache(config.raw(CACHES_KEY).as_deref());
    if !backend.to_ascii_lowercase().contains("redis") {
        check.location = format!("the default cache ({backend}) of each worker");
        if backend.ends_with("DummyCache") {
            check.problem = Some(
                "the default cache is Django's dummy cache: no session survives a request".into(),
            );
        }
        return check;
    }
    let Some(location) = location else {
        check.location = format!("Redis ({backend}) with no LOCATION");
        check.problem = Some(format!("{CACHES_KEY} names Redis but no LOCATION"));
        return check;
    };
    match RedisUrl::parse(&location) {
        Ok(url) => {
            check.location = format!("Redis {}", url.shown());
            check.redis = Some(url.shown());
            check.shared = true;
            match ping(&url, timeout) {
                Ok(took) => {
                    check.ping_ms = Some(took.as_secs_f64() * 1000.0);
                    // The Redis client the counts use is built without TLS.
                    let counted = match url.endpoint {
                        Endpoint::Tls { .. } => Err("not counted over TLS (rediss://)".into()),
                        _ => count_sessions(&url, timeout),
                    };
                    match counted {
                        Ok(counts) => check.counts = Some(counts),
                        Err(e) => check.count_problem = Some(e),
                    }
                }
                Err(e) => check.problem = Some(format!("Redis {}: {e}", url.shown())),
            }
        }
        Err(e) => {
            check.location = format!("Redis {location}");
            check.problem = Some(e);
        }
    }
    check
}

/// The default cache's BACKEND and LOCATION in an `omero.web.caches` value (Django's
/// dummy cache when the value names none or does not parse).
fn default_cache(caches: Option<&str>) -> (String, Option<String>) {
    let caches: Option<serde_json::Value> = caches.and_then(|text| serde_json::from_str(text).ok());
    let default = caches.as_ref().map(|c| &c["default"]);
    let backend = default
        .and_then(|d| d["BACKEND"].as_str())
        .unwrap_or("django.core.cache.backends.dummy.DummyCache")
        .to_string();
    let location = default.and_then(|d| match &d["LOCATION"] {
        serde_json::Value::String(s) => Some(s.clone()),
        // django-redis takes a list (primary first).
        serde_json::Value::Array(list) => list.first()?.as_str().map(str::to_string),
        _ => None,
    });
    (backend, location)
}

/// The Redis that sessions live in, when `engine` (`omero.web.session_engine`) is a
/// cache engine and `caches` (`omero.web.caches`) puts the default cache on a Redis
/// backend; None for any other store. An error when the settings name Redis but
/// give no usable LOCATION.
pub fn redis_location(
    engine: Option<&str>,
    caches: Option<&str>,
) -> Result<Option<RedisUrl>, String> {
    let engine = engine.unwrap_or(FILE_ENGINE);
    if engine != CACHE_ENGINE && engine != CACHED_DB_ENGINE {
        return Ok(None);
    }
    let (backend, location) = default_cache(caches);
    if !backend.to_ascii_lowercase().contains("redis") {
        return Ok(None);
    }
    let location = location.ok_or_else(|| format!("{CACHES_KEY} names Redis but no LOCATION"))?;
    RedisUrl::parse(&location).map(Some)
}

/// Every key matching `pattern` (Redis' glob), by SCAN: it never blocks the server the
/// way KEYS does on a store holding many sessions.
pub fn scan_keys(c: &mut redis::Connection, pattern: &str) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(c)?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// How many gateway logins and Django sessions the store at `url` holds.
pub fn count_sessions(url: &RedisUrl, timeout: Duration) -> Result<SessionCounts, String> {
    let client = redis::Client::open(url.text.as_str()).map_err(|e| e.to_string())?;
    let mut c = client
        .get_connection_with_timeout(timeout)
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = c.set_read_timeout(Some(timeout));
    let _ = c.set_write_timeout(Some(timeout));
    let count = |c: &mut redis::Connection, pattern: &str| {
        scan_keys(c, pattern)
            .map(|keys| keys.len() as u64)
            .map_err(|e| e.to_string())
    };
    Ok(SessionCounts {
        gateway: count(&mut c, &format!("{GATEWAY_SESSION_PREFIX}*"))?,
        django: count(&mut c, DJANGO_SESSION_PATTERN)?,
    })
}

/// Sends PING (after AUTH and SELECT when the URL has them) and expects PONG.
pub fn ping(url: &RedisUrl, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let mut stream: Box<dyn ReadWrite> = match &url.endpoint {
        Endpoint::Tcp { host, port } => Box::new(tcp_connect(host, *port, timeout)?),
        Endpoint::Unix(path) => {
            let stream = std::os::unix::net::UnixStream::connect(path)
                .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
            stream.set_read_timeout(Some(timeout)).ok();
            stream.set_write_timeout(Some(timeout)).ok();
            Box::new(stream)
        }
        Endpoint::Tls { host, port } => Box::new(tls_stream(url, host, *port, timeout)?),
    };
    let mut commands: Vec<Vec<&str>> = Vec::new();
    match (&url.user, &url.password) {
        (Some(user), Some(password)) => commands.push(vec!["AUTH", user, password]),
        (None, Some(password)) => commands.push(vec!["AUTH", password]),
        _ => {}
    }
    let db = url.db.to_string();
    if url.db != 0 {
        commands.push(vec!["SELECT", &db]);
    }
    commands.push(vec!["PING"]);
    for command in &commands {
        let mut request = format!("*{}\r\n", command.len());
        for word in command {
            request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
        }
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("sending {}: {e}", command[0]))?;
        let reply =
            read_line(&mut stream).map_err(|e| format!("{} got no answer: {e}", command[0]))?;
        if let Some(error) = reply.strip_prefix('-') {
            return Err(format!("{} refused: {error}", command[0]));
        }
        if command[0] == "PING" && reply != "+PONG" {
            return Err(format!("PING answered {reply:?}, not PONG: is this Redis?"));
        }
    }
    Ok(started.elapsed())
}

fn tcp_connect(host: &str, port: u16, timeout: Duration) -> Result<std::net::TcpStream, String> {
    use std::net::ToSocketAddrs;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    Ok(stream)
}

/// A TLS connection to a `rediss://` store, trusting what redis-py would: the system's
/// CAs, plus the URL's `ssl_ca_certs`; nothing checked with `ssl_cert_reqs=none`.
fn tls_stream(
    url: &RedisUrl,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<native_tls::TlsStream<std::net::TcpStream>, String> {
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(path) = &url.ssl_ca_certs {
        let pem =
            std::fs::read(path).map_err(|e| format!("ssl_ca_certs {}: {e}", path.display()))?;
        let ca = native_tls::Certificate::from_pem(&pem)
            .map_err(|e| format!("ssl_ca_certs {}: {e}", path.display()))?;
        builder.add_root_certificate(ca);
    }
    if url.ssl_unchecked {
        builder
            .danger_accept_invalid_certs(true)
            .danger_accept_invalid_hostnames(true);
    }
    let connector = builder.build().map_err(|e| format!("TLS: {e}"))?;
    let stream = tcp_connect(host, port, timeout)?;
    connector
        .connect(host, stream)
        .map_err(|e| format!("TLS with {host}:{port}: {e}"))
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// One RESP reply line, without its CRLF.
fn read_line(stream: &mut dyn ReadWrite) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        line.push(byte[0]);
        if line.len() > 4096 {
            return Err(std::io::Error::other("reply line too long"));
        }
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rediss_url_names_its_ca_as_redis_py_reads_it() {
        let url =
            RedisUrl::parse("rediss://cache:6380/1?ssl_ca_certs=%2Fetc%2Fca%20x.pem").unwrap();
        assert_eq!(
            (url.endpoint.clone(), url.db),
            (
                Endpoint::Tls {
                    host: "cache".into(),
                    port: 6380
                },
                1
            )
        );
        assert_eq!(
            url.ssl_ca_certs.as_deref(),
            Some(std::path::Path::new("/etc/ca x.pem"))
        );
        assert!(!url.ssl_unchecked);
        let url = RedisUrl::parse("rediss://cache/0?ssl_cert_reqs=none").unwrap();
        assert!(url.ssl_unchecked && url.ssl_ca_certs.is_none());
    }

    #[test]
    fn redis_urls_as_django_redis_takes_them() {
        let url = RedisUrl::parse("redis://:s3cret@10.0.0.1:6380/2").unwrap();
        assert_eq!(
            url.endpoint,
            Endpoint::Tcp {
                host: "10.0.0.1".into(),
                port: 6380
            }
        );
        assert_eq!((url.db, url.password.as_deref()), (2, Some("s3cret")));
        assert_eq!(url.shown(), "redis://:***@10.0.0.1:6380/2");
        let url = RedisUrl::parse("redis://cache.example").unwrap();
        assert_eq!(
            (url.endpoint, url.db),
            (
                Endpoint::Tcp {
                    host: "cache.example".into(),
                    port: 6379
                },
                0
            )
        );
        assert_eq!(
            RedisUrl::parse("unix:///run/redis.sock").unwrap().endpoint,
            Endpoint::Unix("/run/redis.sock".into())
        );
        for bad in [
            "10.0.0.1:6379",
            "http://x/0",
            "redis://x:port/0",
            "redis://x/abc",
            "redis:///0",
        ] {
            let error = RedisUrl::parse(bad).unwrap_err();
            assert!(error.contains("is not a Redis URL"), "{bad}: {error}");
        }
    }

    #[test]
    fn sessions_are_in_redis_only_when_engine_and_caches_say_so() {
        let caches = r#"{"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6390/1"}}"#;
        let url = redis_location(Some(CACHE_ENGINE), Some(caches))
            .unwrap()
            .unwrap();
        assert_eq!(url.text, "redis://127.0.0.1:6390/1");
        assert!(
            redis_location(Some(CACHED_DB_ENGINE), Some(caches))
                .unwrap()
                .is_some()
        );
        // The file engine, or no engine set, keeps files whatever the caches say.
        assert_eq!(redis_location(Some(FILE_ENGINE), Some(caches)), Ok(None));
        assert_eq!(redis_location(None, Some(caches)), Ok(None));
        // A cache that is not Redis, or caches that do not parse: not Redis.
        let local = r#"{"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}"#;
        assert_eq!(redis_location(Some(CACHE_ENGINE), Some(local)), Ok(None));
        assert_eq!(
            redis_location(Some(CACHE_ENGINE), Some("{not json")),
            Ok(None)
        );
        // Redis named without a usable LOCATION: said, not guessed.
        let nowhere = r#"{"default": {"BACKEND": "django_redis.cache.RedisCache"}}"#;
        assert!(
            redis_location(Some(CACHE_ENGINE), Some(nowhere))
                .unwrap_err()
                .contains("no LOCATION")
        );
        let bad = r#"{"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "127.0.0.1:6379"}}"#;
        assert!(
            redis_location(Some(CACHE_ENGINE), Some(bad))
                .unwrap_err()
                .contains("is not a Redis URL")
        );
    }

    #[test]
    fn the_caches_value_is_what_omeros_docs_set() {
        let url = RedisUrl::parse("redis://127.0.0.1:6379/0").unwrap();
        let value: serde_json::Value = serde_json::from_str(&caches_value(&url)).unwrap();
        assert_eq!(value["default"]["BACKEND"], REDIS_BACKEND);
        assert_eq!(value["default"]["LOCATION"], "redis://127.0.0.1:6379/0");
    }
}
