//! systemd's readiness protocol (sd_notify), spoken by the master when systemd runs it
//! in the foreground (`Type=notify`): datagrams of `KEY=value` lines sent to the socket
//! named by `NOTIFY_SOCKET` (a path, or an abstract name written with a leading '@').
//!
//! Without `NOTIFY_SOCKET` every call is a no-op, so the master calls these methods
//! unconditionally. A failed send is ignored: systemd being away must never stop the
//! pool (systemd notices the missing message by itself, through its timeouts).

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The variables the protocol reads; removed from the workers' environment so only the
/// master (systemd's MAINPID) ever talks to systemd.
pub const ENV_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor an abstract name ('@…')")]
    BadAddress(String),
    #[error("NOTIFY_SOCKET={address:?}: {source}")]
    Socket {
        address: String,
        source: std::io::Error,
    },
}

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// Half the watchdog timeout, when systemd set one for this process.
    watchdog_every: Option<Duration>,
    last_watchdog: Instant,
    last_status: Option<String>,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog_every: None,
            last_watchdog: Instant::now(),
            last_status: None,
        }
    }

    /// Reads the protocol's variables from this process's environment.
    pub fn from_env() -> Result<Notifier, NotifyError> {
        Notifier::from_vars(|name| std::env::var(name).ok(), std::process::id())
    }

    /// `lookup` gives a variable's value; `pid` is this process's id (for
    /// `WATCHDOG_PID`, which says whom the watchdog is meant for).
    pub fn from_vars(
        lookup: impl Fn(&str) -> Option<String>,
        pid: u32,
    ) -> Result<Notifier, NotifyError> {
        let Some(address) = lookup("NOTIFY_SOCKET").filter(|a| !a.is_empty()) else {
            return Ok(Notifier::disabled());
        };
        let socket_error = |source| NotifyError::Socket {
            address: address.clone(),
            source,
        };
        let addr = if let Some(name) = address.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes()).map_err(socket_error)?
        } else if address.starts_with('/') {
            SocketAddr::from_pathname(&address).map_err(socket_error)?
        } else {
            return Err(NotifyError::BadAddress(address));
        };
        let socket = UnixDatagram::unbound().map_err(socket_error)?;
        // A full socket buffer (systemd busy) must not stall the master's loop.
        socket.set_nonblocking(true).map_err(socket_error)?;
        let watchdog_for_us = match lookup("WATCHDOG_PID") {
            Some(p) => p.trim().parse::<u32>().ok() == Some(pid),
            None => true,
        };
        let watchdog_every = lookup("WATCHDOG_USEC")
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|&usec| usec > 0 && watchdog_for_us)
            .map(|usec| Duration::from_micros(usec / 2));
        Ok(Notifier {
            target: Some((socket, addr)),
            watchdog_every,
            last_watchdog: Instant::now(),
            last_status: None,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often `WATCHDOG=1` is due (half of `WATCHDOG_USEC`), if at all.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog_every
    }

    /// Every worker serves: startup (or a reload) is complete.
    pub fn ready(&mut self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
        self.last_status = Some(status.to_string());
    }

    /// A reload begins; systemd shows the unit as "reloading" until the next `ready`.
    pub fn reloading(&mut self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=Reloading",
            monotonic_usec()
        ));
        self.last_status = Some("Reloading".to_string());
    }

    /// The pool is stopping.
    pub fn stopping(&mut self) {
        self.send("STOPPING=1\nSTATUS=Stopping");
        self.last_status = Some("Stopping".to_string());
    }

    /// The one-line text `systemctl status` shows; sent only when it changed.
    pub fn status(&mut self, text: &str) {
        if self.last_status.as_deref() == Some(text) {
            return;
        }
        self.send(&format!("STATUS={text}"));
        self.last_status = Some(text.to_string());
    }

    /// Sends `WATCHDOG=1` if half the watchdog timeout has passed since the last one.
    /// Called from the master's loop, so a stuck loop stops the pings and systemd
    /// restarts the service.
    pub fn watchdog_if_due(&mut self) {
        let Some(every) = self.watchdog_every else {
            return;
        };
        if self.last_watchdog.elapsed() >= every {
            self.send("WATCHDOG=1");
            self.last_watchdog = Instant::now();
        }
    }

    fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.target {
            let _ = socket.send_to_addr(message.as_bytes(), addr);
        }
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
pub fn monotonic_usec() -> u64 {
    // The monotonic clock cannot fail on Linux; 0 would only delay a watchdog ping.
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn without_notify_socket_nothing_is_set_up() {
        let n = Notifier::from_vars(vars(&[("WATCHDOG_USEC", "1000000")]), 1).unwrap();
        assert!(!n.is_enabled());
        assert_eq!(n.watchdog_interval(), None);
        let n = Notifier::from_vars(vars(&[("NOTIFY_SOCKET", "")]), 1).unwrap();
        assert!(!n.is_enabled());
    }

    #[test]
    fn a_relative_address_is_refused_in_one_line() {
        let err = Notifier::from_vars(vars(&[("NOTIFY_SOCKET", "run/notify")]), 1)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("\"run/notify\""), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn watchdog_is_half_the_timeout_and_only_for_its_pid() {
        let n = Notifier::from_vars(
            vars(&[("NOTIFY_SOCKET", "@x"), ("WATCHDOG_USEC", "3000000")]),
            7,
        )
        .unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(1500)));
        let n = Notifier::from_vars(
            vars(&[
                ("NOTIFY_SOCKET", "@x"),
                ("WATCHDOG_USEC", "3000000"),
                ("WATCHDOG_PID", "8"),
            ]),
            7,
        )
        .unwrap();
        assert_eq!(n.watchdog_interval(), None);
        let n = Notifier::from_vars(
            vars(&[
                ("NOTIFY_SOCKET", "@x"),
                ("WATCHDOG_USEC", "3000000"),
                ("WATCHDOG_PID", "7"),
            ]),
            7,
        )
        .unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn messages_reach_a_path_socket_and_status_repeats_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut n = Notifier::from_vars(
            vars(&[("NOTIFY_SOCKET", path.to_str().unwrap())]),
            std::process::id(),
        )
        .unwrap();
        n.ready("2 workers");
        n.status("2 workers");
        n.status("3 workers");
        let before = monotonic_usec();
        n.reloading();
        let after = monotonic_usec();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(len) = listener.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..len]).to_string());
        }
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], "READY=1\nSTATUS=2 workers");
        assert_eq!(got[1], "STATUS=3 workers");
        let usec: u64 = got[2]
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|rest| rest.lines().next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(before <= usec && usec <= after);
    }
}
