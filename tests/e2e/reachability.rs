//! The OMERO.server reachability probe against real sockets on this machine: nothing
//! listening, a backlog that drops connections, a listener that accepts and stays
//! silent, listeners that answer with something else (SSH banner, HTTP), real TLS
//! servers (`openssl s_server` with a self-signed certificate, with anonymous DH as old
//! OMERO configs use, and one that demands a client certificate), and fake Ice
//! endpoints that send the ValidateConnection frame over TCP and over TLS. Ports come
//! from the OS; every server stops when its test ends.

use crate::support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use omero_webctl::reachability::{Reach, Transport, probe};
use support::{BIN, free_port, stderr, stdout, wait_until};

/// Short, so a silent server costs the tests little; the steps are bounded by it.
const TIMEOUT: Duration = Duration::from_secs(1);

/// What an Ice server sends right after accepting: `IceP`, protocol 1.0, encoding
/// 1.0, type 3 (validate connection), no compression, size 14.
const VALIDATE_CONNECTION: [u8; 14] = [0x49, 0x63, 0x65, 0x50, 1, 0, 1, 0, 3, 0, 14, 0, 0, 0];

/// A TCP server on a free port that treats each connection with `serve` on its own
/// thread, for the test's life.
fn serve_tcp(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let serve = std::sync::Arc::new(serve);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let serve = serve.clone();
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

/// A self-signed certificate and its key, made by the real `openssl req`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=omero-test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl req: {}", stderr(&out));
    (cert, key)
}

/// `openssl s_server` on a free port with `args`; killed when dropped.
struct SServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl SServer {
    fn start(args: &[&str], with_cert: bool) -> SServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new("openssl");
        cmd.args(["s_server", "-accept", &port.to_string(), "-quiet"]);
        if with_cert {
            let (cert, key) = self_signed(dir.path());
            cmd.arg("-cert").arg(cert).arg("-key").arg(key);
        }
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap();
        let server = SServer {
            child,
            port,
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(20), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "openssl s_server did not listen on {port}"
        );
        server
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nothing_listening_is_connection_refused() {
    let port = free_port();
    assert_eq!(probe("127.0.0.1", port, TIMEOUT), Reach::Refused);
}

#[test]
fn a_backlog_that_drops_connections_times_out_connecting() {
    // A listener that never accepts, with the smallest backlog: once its queue is
    // full the kernel drops new SYNs, as a firewall that drops would.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(stream) => held.push(stream),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    assert!(
        full,
        "the backlog never filled ({} connections)",
        held.len()
    );
    assert_eq!(
        probe("127.0.0.1", addr.port(), TIMEOUT),
        Reach::TimedOut {
            secs: 1,
            answer: false
        }
    );
}

#[test]
fn a_listener_that_accepts_and_stays_silent_times_out_answering() {
    // It accepts and holds each connection, saying nothing (to TCP or to a client
    // hello): "timed out", connected but no answer.
    let port = serve_tcp(|stream| {
        std::thread::sleep(Duration::from_secs(10));
        drop(stream);
    });
    assert_eq!(
        probe("127.0.0.1", port, TIMEOUT),
        Reach::TimedOut {
            secs: 1,
            answer: true
        }
    );
}

#[test]
fn a_server_that_speaks_first_but_not_ice_is_not_an_ice_endpoint() {
    let port = serve_tcp(|mut stream| {
        let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n");
        std::thread::sleep(Duration::from_secs(5));
    });
    match probe("127.0.0.1", port, TIMEOUT) {
        Reach::NotIce {
            transport: Transport::Tcp,
            answer,
        } => assert!(answer.contains("SSH-2.0"), "{answer}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_http_server_answering_the_client_hello_is_not_an_ice_endpoint() {
    // Silent until spoken to, then an HTTP error: what port 80 or 4080 would say.
    let port = serve_tcp(|mut stream| {
        let mut buf = [0u8; 512];
        if stream.read(&mut buf).unwrap_or(0) > 0 {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    match probe("127.0.0.1", port, TIMEOUT) {
        Reach::NotIce {
            transport: Transport::Tcp,
            answer,
        } => assert_eq!(answer, "it sent \"HTTP/1.1 400 Bad Request\""),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_fake_ice_endpoint_over_tcp_is_reachable() {
    let port = serve_tcp(|mut stream| {
        let _ = stream.write_all(&VALIDATE_CONNECTION);
        std::thread::sleep(Duration::from_secs(5));
    });
    assert_eq!(
        probe("127.0.0.1", port, TIMEOUT),
        Reach::Reachable {
            transport: Transport::Tcp
        }
    );
}

#[test]
fn a_tls_server_that_is_not_ice_is_named_as_such() {
    let server = SServer::start(&[], true);
    assert_eq!(
        probe("127.0.0.1", server.port, TIMEOUT),
        Reach::NotIce {
            transport: Transport::Tls,
            answer: "nothing after the TLS handshake".into()
        }
    );
}

#[test]
fn an_anonymous_dh_tls_server_as_old_omero_configs_use_completes_the_handshake() {
    // `omero.glacier2.IceSSL.Ciphers=ADH:…:@SECLEVEL=0`, no certificate at all.
    let server = SServer::start(&["-nocert", "-cipher", "ADH:@SECLEVEL=0", "-tls1_2"], false);
    assert_eq!(
        probe("127.0.0.1", server.port, TIMEOUT),
        Reach::NotIce {
            transport: Transport::Tls,
            answer: "nothing after the TLS handshake".into()
        }
    );
}

#[test]
fn a_tls_server_demanding_a_client_certificate_fails_the_handshake() {
    let server = SServer::start(&["-Verify", "1"], true);
    match probe("127.0.0.1", server.port, TIMEOUT) {
        Reach::TlsHandshakeFailed { reason } => assert!(!reason.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_fake_ice_endpoint_over_tls_is_reachable() {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    acceptor.set_certificate_chain_file(&cert).unwrap();
    acceptor
        .set_private_key_file(&key, SslFiletype::PEM)
        .unwrap();
    let acceptor = acceptor.build();
    let port = serve_tcp(move |stream| {
        if let Ok(mut tls) = acceptor.accept(stream) {
            let _ = tls.write_all(&VALIDATE_CONNECTION);
            std::thread::sleep(Duration::from_secs(5));
        }
    });
    assert_eq!(
        probe("127.0.0.1", port, TIMEOUT),
        Reach::Reachable {
            transport: Transport::Tls
        }
    );
}

#[test]
fn diagnostics_name_each_server_list_entry_in_text_and_json() {
    let site = tempfile::tempdir().unwrap();
    let refused = free_port();
    let ice = serve_tcp(|mut stream| {
        let _ = stream.write_all(&VALIDATE_CONNECTION);
        std::thread::sleep(Duration::from_secs(5));
    });
    let list = format!(r#"[["127.0.0.1", {refused}, "gone"], ["127.0.0.1", {ice}, "omero"]]"#);
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("--omerodir")
            .arg(site.path())
            .args(["--backend", "omeroweb"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["config", "set", "omero.web.server_list", &list]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = run(&["diagnostics", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let servers = json["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{json:#}");
    assert_eq!(servers[0]["server"]["port"], refused);
    assert_eq!(servers[0]["reach"]["state"], "refused");
    assert_eq!(servers[1]["server"]["name"], "omero");
    assert_eq!(servers[1]["reach"]["state"], "reachable");
    assert_eq!(servers[1]["reach"]["transport"], "tcp");
    let warnings: Vec<&str> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings[0].contains(&format!("gone (127.0.0.1:{refused})"))
            && warnings[0].contains("connection refused"),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains(&format!(":{ice})"))),
        "{warnings:?}"
    );

    let out = run(&["diagnostics"]);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "Server    : gone (127.0.0.1:{refused}) — connection refused"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Server    : omero (127.0.0.1:{ice}) — reachable (an Ice endpoint over TCP)"
        )),
        "{text}"
    );
}

#[test]
fn an_embedded_site_probes_no_server() {
    let site = support::TestSite::empty();
    let out = site.run(&["diagnostics", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["servers"], serde_json::json!([]));
}

/// Diagnostics of an OMERO.web site carry none of the embedded gateway's notes: its
/// sync-worker download warning (our gateway's streaming) and its thumbnail cache.
#[test]
fn omeroweb_diagnostics_carry_no_embedded_gateway_noise() {
    let sync_download = "each download holds a worker";
    let embedded = support::TestSite::empty();
    embedded.write_config("\"omero.web.wsgi_worker_class\" = \"sync\"\n");
    let json: serde_json::Value =
        serde_json::from_str(&embedded.ok(&["diagnostics", "--json"])).unwrap();
    assert!(
        json["warnings"].to_string().contains(sync_download),
        "{json:#}"
    );
    assert!(json["host"].to_string().contains("\"cache\""), "{json:#}");

    let site = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("--omerodir")
            .arg(site.path())
            .args(["--backend", "omeroweb"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["config", "set", "omero.web.wsgi_worker_class", "sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing listens there; the probe says so quickly.
    let out = run(&[
        "config",
        "set",
        "omero.web.server_list",
        &format!(r#"[["127.0.0.1", {}, "x"]]"#, free_port()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["diagnostics", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        !json["warnings"].to_string().contains(sync_download),
        "{json:#}"
    );
    assert!(!json["host"].to_string().contains("\"cache\""), "{json:#}");
}
