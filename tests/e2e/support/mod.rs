//! Shared by the integration tests (the modules of tests/e2e): a throw-away site that
//! stops whatever ran in it, the real binary, free ports, polling with deadlines, HTTP
//! clients, the embedded gateway's users and login, and the test CA.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub mod browser;
pub mod disk;
pub mod fleet;
pub mod netns;
pub mod redis;
pub mod slapd;
pub mod tmux;

pub const BIN: &str = env!("CARGO_BIN_EXE_omero-webctl");

/// A throw-away site directory, driven through the real binary. When dropped, even
/// after a failed test, it stops whatever ran in it (pool, OMERO.web, private nginx)
/// and kills any process still working beneath it.
pub struct TestSite {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl TestSite {
    /// A site with the pool on a free port and a small, quick configuration.
    pub fn new(workers: u32) -> TestSite {
        let site = TestSite::empty();
        let port = site.port;
        site.write_config(&format!(
            "\"omero.web.application_server.port\" = {port}\n\"omero.web.wsgi_workers\" = {workers}\n\"omero.web.wsgi_graceful_timeout\" = 10\n"
        ));
        site
    }

    /// A pool site ([`TestSite::new`]) with `extra_config` appended and the images of
    /// `omero-webctl demo DEMO_ARGS` in its repository; not started.
    pub fn with_demo(workers: u32, extra_config: &str, demo_args: &[&str]) -> TestSite {
        let site = TestSite::new(workers);
        site.append_config(extra_config);
        let mut args = vec!["demo"];
        args.extend_from_slice(demo_args);
        site.ok(&args);
        site
    }

    /// A site with no configuration yet (for the config and nginx commands); `port` is
    /// a free port the test may configure.
    pub fn empty() -> TestSite {
        TestSite {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    pub fn config_file(&self) -> PathBuf {
        self.path("etc/omero-web.toml")
    }

    /// Writes etc/omero-web.toml directly (flat quoted keys).
    pub fn write_config(&self, text: &str) {
        std::fs::create_dir_all(self.root().join("etc")).unwrap();
        std::fs::write(self.config_file(), text).unwrap();
    }

    pub fn read_config(&self) -> String {
        std::fs::read_to_string(self.config_file()).unwrap_or_default()
    }

    pub fn append_config(&self, text: &str) {
        let mut all = std::fs::read_to_string(self.config_file()).unwrap_or_default();
        all.push_str(text);
        self.write_config(&all);
    }

    pub fn log_file(&self) -> PathBuf {
        self.root().join("var/log/OMEROweb.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--omerodir")
            .arg(self.root())
            .args(args)
            .env("OMEROWEBCTL_TEST_ROUTES", "1");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        cmd.output().unwrap()
    }

    /// Runs, expects exit 0, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({}):\nstdout: {}\nstderr: {}\nlog:\n{}",
            out.status,
            stdout(&out),
            stderr(&out),
            self.log()
        );
        stdout(&out)
    }

    /// Runs and expects failure with exit code 1; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} did not fail: {out:?}");
        stderr(&out)
    }

    pub fn status_json(&self) -> serde_json::Value {
        let out = self.run(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// PIDs of the workers in the state "ready".
    pub fn ready_pids(&self) -> Vec<u32> {
        let status = self.status_json();
        status["workers"]
            .as_array()
            .map(|ws| {
                ws.iter()
                    .filter(|w| w["state"] == "ready")
                    .map(|w| w["pid"].as_u64().unwrap() as u32)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn master_pid(&self) -> Option<u32> {
        self.status_json()["master_pid"].as_u64().map(|p| p as u32)
    }

    /// Makes the private nginx that `s` in the panel starts listen on a free port
    /// (it remembers its port in var/nginx/port); returns the port.
    pub fn pin_nginx_port(&self) -> u16 {
        let port = free_port();
        std::fs::create_dir_all(self.root().join("var/nginx")).unwrap();
        std::fs::write(self.root().join("var/nginx/port"), format!("{port}\n")).unwrap();
        port
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }
}

impl TestSite {
    /// An OMERO.web site (OMERO's etc/grid/config.xml, written through our CLI) run
    /// by the real Gunicorn from `venv`, on a free port.
    pub fn omeroweb(venv: &Path, workers: u32) -> TestSite {
        let site = TestSite::empty();
        let port = site.port;
        for (key, value) in [
            ("omero.web.python", venv.to_string_lossy().into_owned()),
            ("omero.web.application_server.port", port.to_string()),
            ("omero.web.wsgi_workers", workers.to_string()),
            ("omero.web.wsgi_graceful_timeout", "10".into()),
        ] {
            let out = Command::new(BIN)
                .arg("--omerodir")
                .arg(site.root())
                .args(["--backend", "omeroweb", "config", "set", key, &value])
                .output()
                .unwrap();
            assert!(out.status.success(), "config set {key}: {}", stderr(&out));
        }
        site
    }
}

/// `~/.cache/omero-webctl` (under `$XDG_CACHE_HOME` when set): where the venvs and
/// wheels the tests use are kept between runs.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        })
        .join("omero-webctl")
}

/// The venv with omero-web and Gunicorn that `scripts/omeroweb-venv` builds:
/// `$OMERO_WEBCTL_VENV`, else the script's default. Without it a test prints why and
/// returns early, except under CI (`CI=true`), where it fails.
pub fn omeroweb_venv(test: &str) -> Option<PathBuf> {
    let venv = match std::env::var_os("OMERO_WEBCTL_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => cache_dir().join("omeroweb-venv"),
    };
    if ["bin/python", "bin/gunicorn", "bin/omero"]
        .iter()
        .all(|f| venv.join(f).is_file())
    {
        return Some(venv);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{test}: no OMERO.web venv at {} and CI=true requires one (scripts/omeroweb-venv builds it)",
            venv.display()
        );
    }
    eprintln!(
        "skipping {test}: no OMERO.web venv at {} (scripts/omeroweb-venv builds it)",
        venv.display()
    );
    None
}

/// The real `omero` CLI of `venv` on site `dir`. It refuses to run as root, so as root
/// the same entry point runs without that check.
pub fn omero_cli(venv: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut cmd = Command::new(venv.join("bin/python"));
        cmd.arg("-c")
            .arg("import sys, omero.cli; sys.argv[0] = 'omero'; sys.exit(omero.cli.argv())");
        cmd
    } else {
        Command::new(venv.join("bin/omero"))
    };
    cmd.args(args).env("OMERODIR", dir).current_dir(dir);
    cmd
}

impl Drop for TestSite {
    fn drop(&mut self) {
        let _ = self.command(&["stop", "--quick"]).output();
        let _ = self.command(&["nginx", "stop"]).output();
        // Anything of this site still alive: a test that killed the master, or nginx
        // workers left when `nginx stop` failed (their command line does not name the
        // site, their working directory does).
        let kill_all = || {
            let mut left = processes_beneath(self.root());
            // nginx's workers serve on under PID 1 once their master is killed:
            // the children of whatever is left go too.
            let children: Vec<u32> = left
                .iter()
                .flat_map(|&pid| omero_webctl::proc::children(pid))
                .collect();
            left.extend(children);
            for &pid in &left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            left.is_empty()
        };
        // Killed ones may have forked meanwhile: again until none is left.
        wait_until(Duration::from_secs(10), kill_all);
    }
}

/// PIDs of live processes (this one aside) that work beneath `root`: whose command
/// line names it, or whose working directory or executable lies beneath it.
pub fn processes_beneath(root: &Path) -> Vec<u32> {
    let needle = root.to_string_lossy().into_owned();
    let real = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let beneath = |pid: u32, link: &str| {
        std::fs::read_link(format!("/proc/{pid}/{link}"))
            .is_ok_and(|target| target.starts_with(root) || target.starts_with(&real))
    };
    let mut out = processes_mentioning(&needle);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid != std::process::id()
            && !out.contains(&pid)
            && (beneath(pid, "cwd") || beneath(pid, "exe"))
            && alive(pid)
        {
            out.push(pid);
        }
    }
    out
}

/// PIDs of live processes whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) && alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

pub use omero_webctl::proc::is_alive as alive;

/// The PID in an OMERO.web site's `var/django.pid` (Gunicorn's master).
pub fn django_pid(root: &Path) -> Option<u32> {
    std::fs::read_to_string(root.join("var/django.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// Runs a freshly copied program: `run` again (for up to 10 s) while it fails with
/// ETXTBSY, which it does while another test's fork briefly holds the copy open for
/// writing (the fork inherited the descriptor the copy was written through).
pub fn unless_text_busy<T>(mut run: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tried = None;
    wait_until(Duration::from_secs(10), || {
        let result = run();
        let busy = matches!(&result, Err(e) if e.raw_os_error() == Some(libc::ETXTBSY));
        tried = Some(result);
        !busy
    });
    tried.expect("run at least once")
}

/// A plain HTTP/1.0 GET; returns status and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(
        port,
        &format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n"),
    )
}

pub fn http_request(port: u16, request: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Sends keep-alive HTTP/1.1 requests back to back on one connection (reconnecting
/// only when a response says `Connection: close`) until `stop` is set; returns
/// (responses, closes announced, failures).
pub fn keep_alive_client(
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (u64, u64, u64) {
    use std::io::{BufRead, BufReader, Read, Write};
    let (mut ok, mut closes, mut failures) = (0, 0, 0);
    let connect = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        BufReader::new(s)
    };
    let mut conn = connect();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let sent = conn
            .get_mut()
            .write_all(b"GET /__webctl/health HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut status = String::new();
        if sent.is_err() || conn.read_line(&mut status).unwrap_or(0) == 0 {
            failures += 1;
            conn = connect();
            continue;
        }
        let (mut length, mut close) = (0usize, false);
        loop {
            let mut line = String::new();
            conn.read_line(&mut line).unwrap();
            let lower = line.trim().to_lowercase();
            if lower.is_empty() {
                break;
            }
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            close |= lower == "connection: close";
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        ok += 1;
        if close {
            closes += 1;
            conn = connect();
        }
    }
    (ok, closes, failures)
}

/// Whether the real nginx is installed. Without it a test prints why and returns
/// early, except under CI (`CI=true`), where a missing nginx fails the test loudly.
pub fn nginx_available(test: &str) -> bool {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join("nginx").is_file()))
        .unwrap_or(false);
    if on_path || Path::new("/usr/sbin/nginx").is_file() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: nginx is not installed, and CI=true requires it (apt-get install nginx)");
    }
    eprintln!("skipping {test}: nginx is not installed");
    false
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A test CA and a server certificate for 127.0.0.1 it signed, made with the openssl
/// CLI in `dir` (ca.pem, server.pem, server.key), for the TLS servers tests start
/// (Redis, slapd); the CA's path.
pub fn test_certificates(dir: &std::path::Path) -> std::path::PathBuf {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=omero-webctl test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    dir.join("ca.pem")
}

/// OMERO.web's log line shape (`STANDARD_LOGFORMAT` of its settings.py):
/// `%(asctime)s %(levelname)5.5s [%(name)40.40s] (proc.%(process)5.5d) %(funcName)s():%(lineno)d %(message)s`.
/// The same regex is checked against the real OMERO.web's log and ours.
#[allow(dead_code)]
pub fn omero_log_line() -> regex::Regex {
    regex::Regex::new(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG| INFO|WARNI|ERROR|CRITI) \[.{40}\] \(proc\.\d{5,}\) (<module>|[A-Za-z_][A-Za-z0-9_]*)\(\):\d+ ",
    )
    .unwrap()
}

/// Django's `log_response` line for a 404 of `GET path`, in OMERO's `full_request` format.
#[allow(dead_code)]
pub fn django_404_line(path: &str) -> regex::Regex {
    regex::Regex::new(&format!(
        r"WARNI \[\s+django\.request\] \(proc\.\d{{5,}}\) log_response\(\):\d+ HTTP 404 <WSGIRequest: GET '{}'>$",
        regex::escape(path)
    ))
    .unwrap()
}

/// `ab -r -n requests -c concurrency` on the health route, on a thread: joined, the
/// requests it got a good answer to (complete minus failed).
#[allow(dead_code)]
pub fn ab_health_load(port: u16, requests: u32, concurrency: u64) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let out = Command::new("ab")
            .args([
                "-q",
                "-r",
                "-n",
                &requests.to_string(),
                "-c",
                &concurrency.to_string(),
            ])
            .arg(format!("http://127.0.0.1:{port}/__webctl/health"))
            .output()
            .expect("ab (apache2-utils) is installed");
        let report = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> u64 {
            ab_field(&report, name).unwrap_or_else(|| panic!("no {name} in ab's report:\n{report}"))
        };
        field("Complete requests:") - field("Failed requests:")
    })
}

/// A count in ab's report: `name` is the label with its colon ("Failed requests:").
pub fn ab_field(report: &str, name: &str) -> Option<u64> {
    report
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Once nothing is in flight, the pool's total: ab's `answered` count, give or take
/// the requests a killed worker had in flight (at most `concurrency`).
#[allow(dead_code)]
pub fn assert_counted(site: &TestSite, answered: u64, concurrency: u64) -> u64 {
    assert!(wait_until(Duration::from_secs(30), || {
        site.status_json()["totals"]["in_flight"] == 0
    }));
    let counted = site.status_json()["totals"]["requests"].as_u64().unwrap();
    assert!(
        answered <= counted && counted <= answered + concurrency,
        "ab had {answered} answered; the pool counted {counted}"
    );
    counted
}

/// A raw HTTP/1.0 GET with extra headers: status, headers (lower-cased names),
/// body bytes.
pub fn fetch(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, Headers, Vec<u8>) {
    request(port, "GET", path, headers, "")
}

pub type Headers = Vec<(String, String)>;

/// One HTTP/1.0 request with `headers` and `body`; the status, headers (lower-case
/// names) and body.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Headers, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut text = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            text.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    (status.parse().unwrap(), headers, raw[split + 4..].to_vec())
}

/// The value `name` gets in the response's Set-Cookie headers.
pub fn set_cookie(headers: &Headers, name: &str) -> Option<String> {
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
}

/// The embedded gateway's login form's CSRF token (its cookie and its form field are
/// the same), as a browser gets it.
pub fn csrf(port: u16) -> String {
    let (status, headers, body) = request(port, "GET", "/webclient/login/", &[], "");
    assert_eq!(status, 200);
    let cookie = set_cookie(&headers, "csrftoken").expect("a csrftoken cookie");
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains(&format!("name=\"csrfmiddlewaretoken\" value=\"{cookie}\"")),
        "{body}"
    );
    cookie
}

/// Logs in; the whole answer to the POST.
pub fn login_with(
    port: u16,
    user: &str,
    password: &str,
    extra_cookie: Option<&str>,
) -> (u16, Headers, Vec<u8>) {
    let token = csrf(port);
    let cookie = match extra_cookie {
        Some(extra) => format!("csrftoken={token}; {extra}"),
        None => format!("csrftoken={token}"),
    };
    request(
        port,
        "POST",
        "/webclient/login/?url=%2Fwebclient%2F",
        &[("Cookie", &cookie)],
        &format!("csrfmiddlewaretoken={token}&username={user}&password={password}&server=1"),
    )
}

/// Logs in and returns the `Cookie` header value of the session.
pub fn login(port: u16, cookie_name: &str, user: &str, password: &str) -> String {
    let (status, headers, body) = login_with(port, user, password, None);
    assert_eq!(
        (status, header(&headers, "location")),
        (302, Some("/webclient/")),
        "login of {user}: {}",
        String::from_utf8_lossy(&body)
    );
    let id = set_cookie(&headers, cookie_name).expect("a session cookie");
    format!("{cookie_name}={id}")
}

/// Adds a user to an embedded site's own store (access control on from then), in
/// `groups`.
pub fn add_user(site: &TestSite, name: &str, password: &str, groups: &[&str]) {
    let mut args = vec!["user", "add", name, "--password-stdin"];
    for g in groups {
        args.extend(["--group", g]);
    }
    let mut child = site
        .command(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "user add {name}: {out:?}");
}

#[allow(dead_code)]
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Decodes a JPEG with the gateway's own reader: (width, height, channels, pixels).
#[allow(dead_code)]
pub fn decode_jpeg(bytes: &[u8]) -> (u32, u32, u32, Vec<u16>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jpg");
    std::fs::write(&path, bytes).unwrap();
    let source = omero_webctl::gateway::imaging::source::open(&path, &Default::default()).unwrap();
    let meta = source.meta().clone();
    let mut pixels = Vec::new();
    for c in 0..meta.size_c {
        pixels.extend(source.plane(0, c, 0).unwrap().data);
    }
    (meta.size_x, meta.size_y, meta.size_c, pixels)
}

/// Logs in to an OMERO.web on `port` as a browser does: GET the login page (its
/// `csrftoken` cookie and the form's `csrfmiddlewaretoken`), then POST the form with
/// both. Returns the POST's status and body.
#[allow(dead_code)]
pub fn omeroweb_login(port: u16, user: &str, password: &str) -> (u16, String) {
    let path = "/webclient/login/";
    let (code, headers, body) = fetch(port, path, &[]);
    assert_eq!(code, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    let cookie = set_cookie(&headers, "csrftoken")
        .unwrap_or_else(|| panic!("no csrftoken cookie in {headers:?}"));
    let body = String::from_utf8_lossy(&body).into_owned();
    let field = regex::Regex::new(r#"name="csrfmiddlewaretoken" value="([^"]+)""#)
        .unwrap()
        .captures(&body)
        .unwrap_or_else(|| panic!("no csrfmiddlewaretoken field in the login page:\n{body}"))[1]
        .to_string();
    let form = format!("csrfmiddlewaretoken={field}&username={user}&password={password}&server=1");
    let cookie = format!("csrftoken={cookie}");
    let (status, _, body) = request(port, "POST", path, &[("Cookie", &cookie)], &form);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A copy of the binary that any user can run, in a directory removed when it drops:
/// the build's own may lie below a directory only root can search (a checkout in
/// root's `mktemp -d`, as a CI clone is).
pub struct SharedBinary {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn shared_binary() -> SharedBinary {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("omero-webctl-bin")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("omero-webctl");
    std::fs::copy(BIN, &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    SharedBinary { _dir: dir, path }
}

/// The venv of the older omero-web release an upgrade starts from:
/// `OMERO_WEB_VERSION=5.32.0 scripts/omeroweb-venv DIR` builds it;
/// `$OMERO_WEBCTL_OLD_VENV`, else `~/.cache/omero-webctl/omeroweb-venv-5.32.0`.
pub fn older_venv(test: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("OMERO_WEBCTL_OLD_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/omero-webctl/omeroweb-venv-5.32.0")
        });
    if venv.join("bin/gunicorn").is_file() {
        return Some(venv);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: no older OMERO.web venv at {}", venv.display());
    }
    eprintln!(
        "skipping {test}: no older OMERO.web venv at {} (OMERO_WEB_VERSION=5.32.0 scripts/omeroweb-venv DIR)",
        venv.display()
    );
    None
}

/// A venv at `dir` with its own copy of `good`'s `omeroweb` package (for a test to
/// break) and everything else (Django, omero-py, Gunicorn, django-redis) from `good`
/// through a .pth file; returns its site-packages.
pub fn copied_release(good: &Path, dir: &Path) -> PathBuf {
    let made = Command::new("/usr/bin/python3.11")
        .args(["-m", "venv", "--without-pip"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(made.success());
    let site_packages = |venv: &Path| venv.join("lib/python3.11/site-packages");
    let (from, to) = (site_packages(good), site_packages(dir));
    for name in [
        "omeroweb",
        "omero_web-5.33.2.dist-info",
        "gunicorn-27.0.1.dist-info",
    ] {
        let copied = Command::new("cp")
            .arg("-r")
            .arg(from.join(name))
            .arg(&to)
            .status()
            .unwrap();
        assert!(copied.success(), "{name}");
    }
    // Django's metadata too, as a real release has it (the session-store preflight
    // reads the Django version from it; the package itself comes through the .pth).
    for entry in std::fs::read_dir(&from).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_lowercase();
        if name.starts_with("django-") && name.ends_with(".dist-info") {
            let copied = Command::new("cp")
                .arg("-r")
                .arg(entry.path())
                .arg(&to)
                .status()
                .unwrap();
            assert!(copied.success(), "{name}");
        }
    }
    std::fs::write(to.join("release.pth"), format!("{}\n", from.display())).unwrap();
    to
}

/// The site's cleanup finds a process by its executable too: a program run from the
/// site under another name, from outside it, names the site nowhere else.
#[test]
fn a_dropped_site_kills_a_program_run_from_beneath_it() {
    use std::os::unix::process::CommandExt;
    let site = TestSite::empty();
    let copy = site.path("sleeper");
    std::fs::copy("/bin/sleep", &copy).unwrap();
    let mut child = unless_text_busy(|| {
        Command::new(&copy)
            .arg0("sleeper")
            .arg("600")
            .current_dir("/")
            .spawn()
    })
    .expect("the copied sleep runs");
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_link(format!("/proc/{}/exe", child.id())).is_ok_and(|e| e == copy)
    }));
    drop(site);
    assert!(
        wait_until(Duration::from_secs(30), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "the program run from the site outlived it"
    );
}
