//! A redis-server of the test's own (sessions in Redis: the fleet's OMERO.web
//! members, the embedded gateway's pools).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_until};

/// A redis-server of the test's own on a free loopback port, killed when dropped.
pub struct Redis {
    child: Child,
    pub port: u16,
    /// The CA of a TLS-only server (its port speaks TLS alone).
    pub tls_ca: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// None (after saying why) without redis-server, except under CI.
    pub fn start(test: &str) -> Option<Redis> {
        Redis::start_with(test, false)
    }

    /// A redis-server that speaks TLS only, with a certificate for 127.0.0.1 from a CA
    /// of the test's own (`tls_ca`).
    #[allow(dead_code)]
    pub fn start_tls(test: &str) -> Option<Redis> {
        Redis::start_with(test, true)
    }

    fn start_with(test: &str, tls: bool) -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: redis-server is missing and CI=true requires it (apt-get install redis-server)"
            );
            eprintln!("skipping {test}: no redis-server (apt-get install redis-server)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tls_ca = tls.then(|| super::test_certificates(dir.path()));
        let log = dir.path().join("redis.log");
        // A port from the OS can be taken by another test between our probe and
        // redis-server's bind (CI saw it once): redis-server then exits, and we try
        // the next port instead of waiting out the deadline on a dead server.
        for _attempt in 0..5 {
            let port = free_port();
            let mut command = Command::new("redis-server");
            if tls {
                let file = |name: &str| dir.path().join(name).display().to_string();
                command
                    .args(["--port", "0", "--tls-port", &port.to_string()])
                    .args(["--tls-cert-file", &file("server.pem")])
                    .args(["--tls-key-file", &file("server.key")])
                    .args(["--tls-ca-cert-file", &file("ca.pem")])
                    .args(["--tls-auth-clients", "no"]);
            } else {
                command.args(["--port", &port.to_string()]);
            }
            let mut child = command
                .args(["--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .arg("--logfile")
                .arg(&log)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut exited = false;
            let answered = wait_until(Duration::from_secs(30), || {
                exited = matches!(child.try_wait(), Ok(Some(_)));
                exited || cli(port, tls_ca.as_deref(), &["PING"]) == "PONG"
            });
            if answered && !exited {
                return Some(Redis {
                    child,
                    port,
                    tls_ca,
                    _dir: dir,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                exited,
                "redis-server did not answer PING on port {port} in 30 s; its log:\n{said}"
            );
            eprintln!("redis-server exited on port {port}, trying another; its log:\n{said}");
        }
        panic!("redis-server exited five times on five free ports");
    }

    /// `redis://…`, or for a TLS server `rediss://…?ssl_ca_certs=CA` (redis-py's option).
    pub fn url(&self) -> String {
        match &self.tls_ca {
            None => format!("redis://127.0.0.1:{}/0", self.port),
            Some(ca) => format!(
                "rediss://127.0.0.1:{}/0?ssl_ca_certs={}",
                self.port,
                ca.display()
            ),
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, self.tls_ca.as_deref(), args)
    }
}

/// redis-cli's answer on `port` (over TLS when a CA is given), trimmed; empty when it
/// could not be run.
fn cli(port: u16, tls_ca: Option<&std::path::Path>, args: &[&str]) -> String {
    let mut command = Command::new("redis-cli");
    if let Some(ca) = tls_ca {
        command.arg("--tls").arg("--cacert").arg(ca);
    }
    command
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
