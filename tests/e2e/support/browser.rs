//! A real headless Chromium for the webclient tests, driven over the DevTools protocol
//! by a small client on a websocket: one page target, its console errors, uncaught
//! exceptions, network requests and responses recorded as they come. The browser is
//! killed when the guard drops, even when the test failed.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

const CANDIDATES: &[&str] = &["chromium", "chromium-browser", "google-chrome"];

/// How long one DevTools command may take (a screenshot of a big page, a slow CI box).
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The Chromium to drive: `$CHROMIUM`, else the first of the usual names on PATH. A
/// test without one returns early, except under CI (`CI=true`), where it fails.
pub fn chromium(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .flat_map(|dir| CANDIDATES.iter().map(move |name| dir.join(name)))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "{test}: Chromium is not installed, and CI=true requires it (apt-get install chromium)"
            );
        }
        eprintln!("{test}: skipped, Chromium is not installed (apt-get install chromium)");
    }
    found
}

/// The window a page is shown in.
#[derive(Debug, Clone, Copy)]
pub struct Screen {
    pub width: u32,
    pub height: u32,
    pub device_scale: f64,
    /// Phone emulation: the viewport meta tag counts, touch events exist.
    pub mobile: bool,
}

pub const DESKTOP: Screen = Screen {
    width: 1280,
    height: 800,
    device_scale: 1.0,
    mobile: false,
};
/// A desktop browser window as narrow as a phone.
pub const NARROW: Screen = Screen {
    width: 390,
    height: 844,
    device_scale: 1.0,
    mobile: false,
};
/// A phone: 390 CSS pixels wide at 3 device pixels each.
pub const PHONE: Screen = Screen {
    width: 390,
    height: 844,
    device_scale: 3.0,
    mobile: true,
};

/// One finished response.
#[derive(Debug, Clone)]
pub struct Response {
    pub url: String,
    pub status: u16,
}

pub struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    /// Every URL the page requested, in order.
    pub requests: Vec<String>,
    pub responses: Vec<Response>,
    /// Console errors, uncaught exceptions and error log entries (failed loads).
    pub errors: Vec<String>,
    /// URLs of requests the page gave up before their answer came (an image whose
    /// source changed meanwhile).
    pub cancelled: Vec<String>,
    urls_by_request: std::collections::HashMap<String, String>,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile and opens one blank page of `screen`'s size.
    pub fn launch(chromium: &Path, screen: Screen) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-port=0",
            ])
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            .arg(format!("--window-size={},{}", screen.width, screen.height))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group, so that the guard can end every Chromium process.
            .process_group(0)
            .spawn()
            .expect("Chromium starts");
        // Chromium writes the port and browser path it listens on into its profile.
        let active = profile.path().join("profile/DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&active) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break (port.trim().parse::<u16>().unwrap(), path.trim().to_string());
                }
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its DevTools port; its log:\n{}",
                std::fs::read_to_string(profile.path().join("chromium.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (socket, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .expect("DevTools websocket handshake");
        // A short read timeout lets every wait keep its own deadline.
        socket
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            requests: Vec::new(),
            responses: Vec::new(),
            errors: Vec::new(),
            cancelled: Vec::new(),
            urls_by_request: std::collections::HashMap::new(),
            profile,
        };
        let target = browser.call_browser("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = browser.call_browser(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Network.enable",
            "Log.enable",
        ] {
            browser.call(domain, json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": screen.width,
                "height": screen.height,
                "deviceScaleFactor": screen.device_scale,
                "mobile": screen.mobile,
            }),
        );
        if screen.mobile {
            browser.call(
                "Emulation.setTouchEmulationEnabled",
                json!({"enabled": true, "maxTouchPoints": 5}),
            );
        }
        browser
    }

    /// Sends a command and waits for its answer: its result, or the error Chromium gave.
    fn try_send(
        &mut self,
        method: &str,
        params: Value,
        session: Option<String>,
    ) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = Value::String(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .expect("DevTools command sent");
        let deadline = Instant::now() + COMMAND_LIMIT;
        loop {
            assert!(
                Instant::now() < deadline,
                "{method}: no answer from Chromium"
            );
            let Some(message) = self.receive() else {
                continue;
            };
            if message["id"].as_u64() == Some(id) {
                if let Some(error) = message.get("error") {
                    return Err(error.clone());
                }
                return Ok(message["result"].clone());
            }
            self.record(&message);
        }
    }

    /// The next message, or None after the read timeout.
    fn receive(&mut self) -> Option<Value> {
        match self.socket.read() {
            Ok(Message::Text(text)) => Some(serde_json::from_str(text.as_str()).unwrap()),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                None
            }
            Err(e) => panic!(
                "DevTools connection lost: {e}; Chromium's log:\n{}",
                std::fs::read_to_string(self.profile.path().join("chromium.log"))
                    .unwrap_or_default()
            ),
        }
    }

    fn record(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str().unwrap_or("") {
            "Network.requestWillBeSent" => {
                if let Some(url) = params["request"]["url"].as_str() {
                    self.requests.push(url.to_string());
                    if let Some(id) = params["requestId"].as_str() {
                        self.urls_by_request.insert(id.to_string(), url.to_string());
                    }
                }
            }
            "Network.loadingFailed" if params["canceled"] == true => {
                let id = params["requestId"].as_str().unwrap_or("");
                let url = self.urls_by_request.get(id).cloned().unwrap_or_default();
                self.cancelled.push(url);
            }
            "Network.responseReceived" => self.responses.push(Response {
                url: params["response"]["url"].as_str().unwrap_or("").to_string(),
                status: params["response"]["status"].as_u64().unwrap_or(0) as u16,
            }),
            "Runtime.exceptionThrown" => self
                .errors
                .push(format!("exception: {}", params["exceptionDetails"])),
            "Runtime.consoleAPICalled" if params["type"] == "error" => self
                .errors
                .push(format!("console.error: {}", params["args"])),
            "Log.entryAdded" if params["entry"]["level"] == "error" => self.errors.push(format!(
                "log: {} {}",
                params["entry"]["text"],
                params["entry"]["url"].as_str().unwrap_or("")
            )),
            _ => {}
        }
    }

    fn send(&mut self, method: &str, params: Value, session: Option<String>) -> Value {
        self.try_send(method, params, session)
            .unwrap_or_else(|error| panic!("{method} failed: {error}"))
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    /// A command to the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(session))
    }

    /// Reads whatever events arrived meanwhile.
    pub fn pump(&mut self) {
        while let Some(message) = self.receive() {
            self.record(&message);
        }
    }

    /// Opens `url` and waits until the document and its images have loaded.
    pub fn open(&mut self, url: &str) {
        // A mark on the old document tells it apart from the new one, whenever the
        // navigation commits.
        self.eval("window.__leaving = true");
        self.call("Page.navigate", json!({"url": url}));
        assert!(
            self.wait_for(
                "window.__leaving !== true && document.readyState === 'complete'",
                Duration::from_secs(60)
            ),
            "{url} did not finish loading"
        );
    }

    /// The value of a JavaScript expression (promises awaited).
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(details) = result.get("exceptionDetails") {
            panic!("{expression} threw: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Polls a JavaScript condition until it is true or `limit` passes. A poll that
    /// meets the page navigating away (a form submitted, a link followed) counts as
    /// "not yet".
    pub fn wait_for(&mut self, expression: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let session = self.session.clone();
            let answer = self.try_send(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
                Some(session),
            );
            match answer {
                Ok(result) if result.get("exceptionDetails").is_some() => {
                    panic!("{expression} threw: {}", result["exceptionDetails"])
                }
                Ok(result) if result["result"]["value"] == Value::Bool(true) => return true,
                Ok(_) => {}
                Err(error) if navigating(&error) => {}
                Err(error) => panic!("Runtime.evaluate failed: {error}"),
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.pump();
        }
    }

    /// A key press, as the keyboard sends it (`key` as in KeyboardEvent.key).
    pub fn press(&mut self, key: &str) {
        let (code, key_code) = match key {
            "ArrowUp" => ("ArrowUp", 38),
            "ArrowDown" => ("ArrowDown", 40),
            "ArrowLeft" => ("ArrowLeft", 37),
            "ArrowRight" => ("ArrowRight", 39),
            "+" => ("Equal", 187),
            "-" => ("Minus", 189),
            "0" => ("Digit0", 48),
            other => panic!("no key code for {other}"),
        };
        let text = if key.chars().count() == 1 { key } else { "" };
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({
                    "type": kind,
                    "key": key,
                    "code": code,
                    "windowsVirtualKeyCode": key_code,
                    "text": if kind == "keyDown" { text } else { "" },
                }),
            );
        }
    }

    /// A left-button drag from `from` to `to` (CSS pixels) in `steps` moves.
    pub fn drag(&mut self, from: (f64, f64), to: (f64, f64), steps: u32) {
        let mouse = |kind: &str, (x, y): (f64, f64), buttons: u32| json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1});
        self.call("Input.dispatchMouseEvent", mouse("mousePressed", from, 1));
        for i in 1..=steps {
            let f = i as f64 / steps as f64;
            let at = (from.0 + (to.0 - from.0) * f, from.1 + (to.1 - from.1) * f);
            self.call("Input.dispatchMouseEvent", mouse("mouseMoved", at, 1));
        }
        self.call("Input.dispatchMouseEvent", mouse("mouseReleased", to, 0));
    }

    /// Two fingers that start `from` apart around `centre` and end `to` apart (a pinch
    /// out when `to` > `from`), in `steps` moves.
    pub fn pinch(&mut self, centre: (f64, f64), from: f64, to: f64, steps: u32) {
        let fingers = |spread: f64| {
            json!([
                {"x": centre.0 - spread / 2.0, "y": centre.1, "id": 0},
                {"x": centre.0 + spread / 2.0, "y": centre.1, "id": 1},
            ])
        };
        self.call(
            "Input.dispatchTouchEvent",
            json!({"type": "touchStart", "touchPoints": fingers(from)}),
        );
        for i in 1..=steps {
            let spread = from + (to - from) * i as f64 / steps as f64;
            self.call(
                "Input.dispatchTouchEvent",
                json!({"type": "touchMove", "touchPoints": fingers(spread)}),
            );
        }
        self.call(
            "Input.dispatchTouchEvent",
            json!({"type": "touchEnd", "touchPoints": []}),
        );
    }

    /// A PNG of the page as shown, written to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64_decode(shot["data"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Forgets the requests, responses and errors recorded so far.
    pub fn clear(&mut self) {
        self.pump();
        self.requests.clear();
        self.responses.clear();
        self.errors.clear();
        self.cancelled.clear();
    }

    /// Failed responses (status 400 and above).
    pub fn failed_responses(&self) -> Vec<&Response> {
        self.responses.iter().filter(|r| r.status >= 400).collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The browser and its renderers, by the group this Chromium leads.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

/// Where the tests keep screenshots for people (and CI) to look at.
pub fn artefacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("browser-artefacts")
}

/// The decoded value of `key` in a query string.
pub fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// Standard base64 (the screenshots DevTools sends).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            other => panic!("not base64: {other}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut bits = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            bits |= value(c) << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_padded_and_unpadded_text() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}

/// Whether a command failed only because the page was navigating at that moment.
fn navigating(error: &Value) -> bool {
    let message = error["message"].as_str().unwrap_or("");
    [
        "navigated or closed",
        "Cannot find context",
        "Execution context was destroyed",
    ]
    .iter()
    .any(|m| message.contains(m))
}
