//! Shared by the benchmarks: a throw-away site whose pool and private nginx are
//! stopped even when a step panics, free ports, ab, and /proc readings.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_omero-webctl");

/// A site on a free port, with `extra` appended to its config.
pub struct BenchSite {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl BenchSite {
    pub fn new(extra: &str) -> BenchSite {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/omero-web.toml"),
            format!("\"omero.web.application_server.port\" = {port}\n{extra}"),
        )
        .unwrap();
        BenchSite { dir, port }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the CLI on this site; panics (with its stderr) if it fails.
    pub fn ctl(&self, args: &[&str]) {
        let out = Command::new(BIN)
            .arg("--omerodir")
            .arg(self.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl BenchSite {
    /// `status --json` of this site.
    pub fn status_json(&self) -> serde_json::Value {
        let out = Command::new(BIN)
            .arg("--omerodir")
            .arg(self.path())
            .args(["status", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for BenchSite {
    fn drop(&mut self) {
        for args in [&["nginx", "stop"][..], &["stop"][..]] {
            let _ = Command::new(BIN)
                .arg("--omerodir")
                .arg(self.path())
                .args(args)
                .output();
        }
    }
}

/// Whether every tool is on PATH; prints why the benchmark is skipped if not.
pub fn have(tools: &[&str]) -> bool {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            eprintln!("skipped: {tool} is not installed");
            return false;
        }
    }
    true
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `ab -n N -c C`: requests per second; panics if any request failed.
pub fn ab(port: u16, path: &str, n: u32, c: u32) -> f64 {
    ab_with_cookie(port, path, n, c, None)
}

/// `ab` as [`ab`] does, sending `cookie` (`name=value`) with every request.
pub fn ab_with_cookie(port: u16, path: &str, n: u32, c: u32, cookie: Option<&str>) -> f64 {
    let mut command = Command::new("ab");
    command.args(["-q", "-n", &n.to_string(), "-c", &c.to_string()]);
    if let Some(cookie) = cookie {
        command.args(["-C", cookie]);
    }
    let out = command
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let failed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Failed requests:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    assert_eq!(failed, 0, "ab reported failed requests for {path}:\n{text}");
    assert!(
        !text.contains("Non-2xx responses"),
        "ab saw responses other than 2xx for {path}:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests per second:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no Requests per second in ab output:\n{text}"))
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A process's memory as `/proc/PID/smaps_rollup` splits it, KiB: resident (RSS,
/// which counts every shared page of the executable and its libraries in full), its
/// proportional share (PSS: shared pages divided among the processes mapping them),
/// and what is its alone (private clean + private dirty: what another worker adds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    pub pss: u64,
    pub private: u64,
}

pub fn memory_kib(pid: u32) -> Option<Memory> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> Option<u64> {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Memory {
        rss: field("Rss:")?,
        pss: field("Pss:")?,
        private: field("Private_Clean:")? + field("Private_Dirty:")?,
    })
}
