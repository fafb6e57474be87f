//! Can OMERO.web reach its OMERO.server? For each `omero.web.server_list` entry
//! (`[["host", port, "name"], …]`) one probe says which of these it is: connection
//! refused, timed out, TLS handshake failed, answers but is not an Ice endpoint, or
//! reachable (an Ice endpoint over TCP or over TLS).
//!
//! The Ice protocol makes this cheap: right after it accepts a connection (over SSL:
//! right after the TLS handshake), an Ice server sends a 14-byte ValidateConnection
//! message — magic `IceP`, protocol 1.0, encoding 1.0, message type 3, compression 0,
//! size 14 (little-endian int) — before the client says anything. OMERO's Glacier2
//! router listens with ssl (4064, OMERO.web's default) and tcp (4063).
//!
//! The TLS side is a reachability probe, not a secure channel: it accepts any
//! certificate and every cipher OpenSSL has, including the anonymous (ADH) suites that
//! OMERO's clients and older Glacier2 configs use (`IceSSL.Ciphers=ADH…:@SECLEVEL=0`,
//! `IceSSL.VerifyPeer=0`), so a server OMERO.web can talk to is never reported as a
//! handshake failure. Nothing is sent over the connection beyond the handshake.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::Serialize;

/// How long each step of a probe (connect, first answer, TLS handshake) may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The ValidateConnection message an Ice server sends first.
const VALIDATE_CONNECTION: [u8; 14] = [
    b'I', b'c', b'e', b'P', // magic
    1, 0, // protocol version
    1, 0, // protocol encoding version
    3, // message type: validate connection
    0, // compression status
    14, 0, 0, 0, // message size
];

/// One entry of `omero.web.server_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerEntry {
    pub host: String,
    pub port: u16,
    /// The label OMERO.web shows on its login page, when given.
    pub name: Option<String>,
}

impl ServerEntry {
    /// `host:port`, with the name when it has one: how the panel and diagnostics
    /// name the entry.
    pub fn label(&self) -> String {
        let address = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        match &self.name {
            Some(name) if !name.is_empty() => format!("{name} ({address})"),
            _ => address,
        }
    }
}

/// The servers a site's config lists (the default `[["localhost", 4064, "omero"]]`
/// when unset).
pub fn configured_servers(config: &crate::config::Config) -> Result<Vec<ServerEntry>, String> {
    match config.effective("omero.web.server_list") {
        Some(value) => server_entries(&value.to_raw()),
        None => Ok(Vec::new()),
    }
}

/// The entries of a `server_list` value (JSON). Read as leniently as OMERO.web reads
/// it: the port may be a number or a numeric string, the name may be missing.
pub fn server_entries(json: &str) -> Result<Vec<ServerEntry>, String> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| format!("omero.web.server_list is not JSON: {e}"))?;
    let list = value
        .as_array()
        .ok_or("omero.web.server_list is not a JSON list")?;
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            let bad = |why: &str| format!("omero.web.server_list entry {}: {why}", i + 1);
            let fields = entry
                .as_array()
                .ok_or_else(|| bad("not a [host, port, name] list"))?;
            let host = fields
                .first()
                .and_then(|h| h.as_str())
                .ok_or_else(|| bad("the host is not a string"))?;
            let port = match fields.get(1) {
                Some(serde_json::Value::Number(n)) => n.as_u64(),
                Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p > 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
            let name = fields.get(2).map(|n| match n {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            Ok(ServerEntry {
                host: host.to_string(),
                port,
                name,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Tls,
}

impl Transport {
    fn title(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Reach {
    /// An Ice endpoint answered with its ValidateConnection message.
    Reachable { transport: Transport },
    /// Nothing listens on that port (or a firewall rejects).
    Refused,
    /// No connection within the timeout (`answer: false`: a dropped SYN, a firewall
    /// that drops), or connected but nothing answered, neither Ice over TCP nor a
    /// TLS handshake (`answer: true`).
    TimedOut { secs: u64, answer: bool },
    /// It speaks TLS, but the handshake failed (e.g. the server wants a client
    /// certificate, or no protocol version in common).
    TlsHandshakeFailed { reason: String },
    /// Something answered, but not Ice: `answer` is what came back, printable.
    NotIce {
        transport: Transport,
        answer: String,
    },
    /// The host name does not resolve.
    Unresolved { reason: String },
    /// Any other network error (no route to host, network unreachable, …).
    Failed { reason: String },
}

impl Reach {
    pub fn is_reachable(&self) -> bool {
        matches!(self, Reach::Reachable { .. })
    }

    /// One line, the same in diagnostics and the panel.
    pub fn describe(&self) -> String {
        match self {
            Reach::Reachable { transport } => {
                format!("reachable (an Ice endpoint over {})", transport.title())
            }
            Reach::Refused => "connection refused (nothing listens there?)".into(),
            Reach::TimedOut {
                secs,
                answer: false,
            } => {
                format!(
                    "timed out: no connection within {secs} s (host down or a firewall drops it?)"
                )
            }
            Reach::TimedOut { secs, answer: true } => format!(
                "timed out: it accepts connections but answers nothing within {secs} s (neither Ice nor TLS)"
            ),
            Reach::TlsHandshakeFailed { reason } => format!("TLS handshake failed: {reason}"),
            Reach::NotIce { transport, answer } => format!(
                "answers over {} but is not an Ice endpoint ({answer})",
                transport.title()
            ),
            Reach::Unresolved { reason } => format!("host name does not resolve: {reason}"),
            Reach::Failed { reason } => format!("cannot connect: {reason}"),
        }
    }
}

/// One entry and what its probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerReach {
    pub server: ServerEntry,
    pub reach: Reach,
    /// `reach` in words, for scripts that show it as it is.
    pub summary: String,
}

impl ServerReach {
    pub fn new(server: ServerEntry, reach: Reach) -> ServerReach {
        ServerReach {
            summary: reach.describe(),
            server,
            reach,
        }
    }

    /// The diagnostics line of an entry that is not reachable.
    pub fn problem(&self) -> Option<String> {
        (!self.reach.is_reachable()).then(|| {
            format!(
                "OMERO.server {}: {} — logins fail (omero.web.server_list)",
                self.server.label(),
                self.summary
            )
        })
    }
}

/// Probes every entry at once (one thread each), so the whole check takes about as
/// long as the slowest entry.
pub fn probe_all(entries: &[ServerEntry], timeout: Duration) -> Vec<ServerReach> {
    std::thread::scope(|scope| {
        let probes: Vec<_> = entries
            .iter()
            .map(|entry| scope.spawn(move || probe(&entry.host, entry.port, timeout)))
            .collect();
        entries
            .iter()
            .zip(probes)
            .map(|(entry, probe)| {
                let reach = probe.join().unwrap_or_else(|_| Reach::Failed {
                    reason: "the probe panicked".into(),
                });
                ServerReach::new(entry.clone(), reach)
            })
            .collect()
    })
}

/// What `host:port` is, each step bounded by `timeout`.
pub fn probe(host: &str, port: u16, timeout: Duration) -> Reach {
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            return Reach::Unresolved {
                reason: e.to_string(),
            };
        }
    };
    if addrs.is_empty() {
        return Reach::Unresolved {
            reason: "no address".into(),
        };
    }
    let secs = timeout.as_secs().max(1);
    // Plain TCP first: an Ice server over TCP speaks first.
    let mut stream = match connect(&addrs, timeout) {
        Ok(stream) => stream,
        Err(e) => return connect_error(e, secs),
    };
    if let Err(e) = stream.set_read_timeout(Some(timeout)) {
        return Reach::Failed {
            reason: format!("setting a read timeout: {e}"),
        };
    }
    let first = match first_answer(|buf| stream.read(buf), tcp_read_error) {
        Answer::Bytes(bytes) => {
            return if bytes == VALIDATE_CONNECTION {
                Reach::Reachable {
                    transport: Transport::Tcp,
                }
            } else {
                Reach::NotIce {
                    transport: Transport::Tcp,
                    answer: printable(&bytes),
                }
            };
        }
        Answer::Error(e) => {
            return Reach::Failed {
                reason: format!("reading the first answer: {e}"),
            };
        }
        other => other,
    };
    // Closed before the TLS try: a server that takes one connection at a time (as
    // `openssl s_server` does) would not answer the second while the first is open.
    drop(stream);
    // Silent (or closed at once): it may wait for a TLS client hello.
    let stream = match connect(&addrs, timeout) {
        Ok(stream) => stream,
        Err(e) => return connect_error(e, secs),
    };
    match tls_probe(host, stream, timeout) {
        TlsOutcome::Answer(Answer::Bytes(bytes)) if bytes == VALIDATE_CONNECTION => {
            Reach::Reachable {
                transport: Transport::Tls,
            }
        }
        TlsOutcome::Answer(Answer::Bytes(bytes)) => Reach::NotIce {
            transport: Transport::Tls,
            answer: printable(&bytes),
        },
        TlsOutcome::Answer(Answer::Closed | Answer::Silent) => Reach::NotIce {
            transport: Transport::Tls,
            answer: "nothing after the TLS handshake".into(),
        },
        TlsOutcome::Answer(Answer::Error(reason)) | TlsOutcome::HandshakeFailed(reason) => {
            Reach::TlsHandshakeFailed { reason }
        }
        TlsOutcome::NotTls(bytes) => Reach::NotIce {
            transport: Transport::Tcp,
            answer: printable(&bytes),
        },
        TlsOutcome::NoAnswer => match first {
            Answer::Closed => Reach::NotIce {
                transport: Transport::Tcp,
                answer: "closes the connection without a word".into(),
            },
            _ => Reach::TimedOut { secs, answer: true },
        },
    }
}

fn connect(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no address")))
}

fn connect_error(e: io::Error, secs: u64) -> Reach {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Reach::Refused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Reach::TimedOut {
            secs,
            answer: false,
        },
        _ => Reach::Failed {
            reason: e.to_string(),
        },
    }
}

/// What a server said first.
#[derive(Debug)]
enum Answer {
    /// Up to 14 bytes (fewer if it then closed or went quiet).
    Bytes(Vec<u8>),
    /// It closed the connection without sending anything.
    Closed,
    /// Nothing within the timeout.
    Silent,
    Error(String),
}

/// Reads what the server sends first, at most the 14 bytes of a ValidateConnection,
/// with `read` (the stream has a read timeout). `on_error` says what an error before
/// any byte means (`None`: read again); after some bytes, those are the answer.
fn first_answer<E>(
    mut read: impl FnMut(&mut [u8]) -> Result<usize, E>,
    on_error: impl Fn(E) -> Option<Answer>,
) -> Answer {
    let mut got = Vec::with_capacity(VALIDATE_CONNECTION.len());
    let mut buf = [0u8; 14];
    while got.len() < VALIDATE_CONNECTION.len() {
        match read(&mut buf[..VALIDATE_CONNECTION.len() - got.len()]) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => match on_error(e) {
                None => {}
                Some(_) if !got.is_empty() => break,
                Some(answer) => return answer,
            },
        }
    }
    if got.is_empty() {
        Answer::Closed
    } else {
        Answer::Bytes(got)
    }
}

/// What a plain socket's read error before any byte means.
fn tcp_read_error(e: io::Error) -> Option<Answer> {
    match e.kind() {
        io::ErrorKind::Interrupted => None,
        _ if is_timeout(&e) => Some(Answer::Silent),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Some(Answer::Closed),
        _ => Some(Answer::Error(e.to_string())),
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

enum TlsOutcome {
    /// The handshake worked; this is what the server sent after it.
    Answer(Answer),
    HandshakeFailed(String),
    /// The server answered the client hello with something that is not TLS.
    NotTls(Vec<u8>),
    /// Nothing came back (closed or silent).
    NoAnswer,
}

fn tls_probe(host: &str, stream: TcpStream, timeout: Duration) -> TlsOutcome {
    use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.set_write_timeout(Some(timeout)).is_err()
    {
        return TlsOutcome::HandshakeFailed("cannot set socket timeouts".into());
    }
    let connector = (|| {
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        // A probe: any certificate, any cipher OMERO's Ice might be configured with.
        builder.set_verify(SslVerifyMode::NONE);
        builder.set_security_level(0);
        builder.set_cipher_list("ALL:aNULL:@SECLEVEL=0")?;
        builder.set_min_proto_version(None)?;
        Ok::<_, openssl::error::ErrorStack>(builder.build())
    })();
    let connector = match connector {
        Ok(c) => c,
        Err(e) => return TlsOutcome::HandshakeFailed(format!("OpenSSL setup: {e}")),
    };
    let config = match connector.configure() {
        Ok(mut config) => {
            config.set_verify_hostname(false);
            config
        }
        Err(e) => return TlsOutcome::HandshakeFailed(format!("OpenSSL setup: {e}")),
    };
    let recording = Recording {
        inner: stream,
        first: Vec::new(),
    };
    match config.connect(host, recording) {
        Ok(mut tls) => TlsOutcome::Answer(first_answer(|buf| tls.ssl_read(buf), tls_read_error)),
        Err(HandshakeError::SetupFailure(e)) => {
            TlsOutcome::HandshakeFailed(format!("OpenSSL setup: {e}"))
        }
        Err(HandshakeError::Failure(mut mid) | HandshakeError::WouldBlock(mut mid)) => {
            let first = mid.get_ref().first.clone();
            if first.is_empty() {
                return TlsOutcome::NoAnswer;
            }
            // A TLS record starts with its type (alert 21, handshake 22) and version 3.x.
            if matches!(first[0], 21 | 22) && first.get(1) == Some(&3) {
                return TlsOutcome::HandshakeFailed(ssl_reason(mid.error()));
            }
            // OpenSSL read a record header's worth; the rest of the line says more.
            let mut answer = first;
            let mut more = [0u8; 32];
            if let Ok(n) = mid
                .get_mut()
                .inner
                .read(&mut more[..32 - answer.len().min(32)])
            {
                answer.extend_from_slice(&more[..n]);
            }
            TlsOutcome::NotTls(answer)
        }
    }
}

/// What a TLS read error before any byte means. After a TLS 1.3 handshake the
/// server may still refuse (a client certificate it requires): that comes as an alert
/// on the first read, and is a handshake failure (`Answer::Error`).
fn tls_read_error(e: openssl::ssl::Error) -> Option<Answer> {
    use openssl::ssl::ErrorCode;
    Some(match e.code() {
        ErrorCode::ZERO_RETURN => Answer::Closed,
        ErrorCode::WANT_READ | ErrorCode::WANT_WRITE => Answer::Silent,
        ErrorCode::SYSCALL if e.io_error().is_some_and(is_timeout) => Answer::Silent,
        ErrorCode::SYSCALL if e.ssl_error().is_none() => Answer::Closed,
        _ => Answer::Error(ssl_reason(&e)),
    })
}

/// OpenSSL's reason, without its library/function prefix noise.
fn ssl_reason(e: &openssl::ssl::Error) -> String {
    if let Some(stack) = e.ssl_error()
        && let Some(first) = stack.errors().first()
    {
        return first
            .reason()
            .map(str::to_string)
            .unwrap_or_else(|| first.to_string());
    }
    if let Some(io) = e.io_error() {
        return io.to_string();
    }
    e.to_string()
}

/// The first bytes of an answer, for a message: text as text, the rest escaped.
fn printable(bytes: &[u8]) -> String {
    let line = bytes
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .filter(|line| !line.is_empty())
        .unwrap_or(bytes);
    let text: String = line
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    format!("it sent \"{text}\"")
}

/// A stream that keeps the first bytes read from it: what a server answered to the
/// client hello tells a TLS server that refused from something that is not TLS.
struct Recording {
    inner: TcpStream,
    first: Vec<u8>,
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.first.len() < 16 {
            let take = n.min(16 - self.first.len());
            self.first.extend_from_slice(&buf[..take]);
        }
        Ok(n)
    }
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_list_entries_read_leniently() {
        let entries =
            server_entries(r#"[["omero.example.org", 4064, "omero"], ["10.0.0.2", "4063"]]"#)
                .unwrap();
        assert_eq!(
            entries,
            vec![
                ServerEntry {
                    host: "omero.example.org".into(),
                    port: 4064,
                    name: Some("omero".into())
                },
                ServerEntry {
                    host: "10.0.0.2".into(),
                    port: 4063,
                    name: None
                },
            ]
        );
        assert_eq!(entries[0].label(), "omero (omero.example.org:4064)");
        assert_eq!(entries[1].label(), "10.0.0.2:4063");
        let err = server_entries(r#"[["h", 70000, "x"]]"#).unwrap_err();
        assert!(err.contains("entry 1") && err.contains("port"), "{err}");
        assert!(server_entries("{").unwrap_err().contains("not JSON"));
    }
}
