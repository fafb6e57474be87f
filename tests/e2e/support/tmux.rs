//! A real terminal for panel tests: tmux runs the panel, tests type keys with
//! send-keys and read the screen with capture-pane.

use std::process::Command;
use std::time::{Duration, Instant};

use super::free_port;

/// A tmux server of its own (its own socket), killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` in a shell in a new `width`×`height` session. The shell prints
    /// a marker and the terminal modes after the command, so a test can see how the
    /// panel left the terminal.
    pub fn start(command: &str, width: u16, height: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("tmux is not installed, and CI=true: .ci/run must install it");
            }
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        let socket = format!("omero-webctl-test-{}-{}", std::process::id(), free_port());
        let script = format!("{command}; echo PANEL-EXITED $?; stty -a; echo STTY-DONE; sleep 600");
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .args(["sh", "-c", &script])
            .status()
            .unwrap();
        assert!(status.success());
        Some(Tmux { socket })
    }

    pub fn keys(&self, keys: &[&str]) {
        for key in keys {
            Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", "-t", "t", key])
                .status()
                .unwrap();
        }
    }

    /// Resizes the terminal (the panel gets SIGWINCH and redraws).
    pub fn resize(&self, width: u16, height: u16) {
        Command::new("tmux")
            .args(["-L", &self.socket, "resize-window", "-t", "t"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .status()
            .unwrap();
    }

    pub fn text(&self, text: &str) {
        Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "t", "-l", text])
            .status()
            .unwrap();
    }

    pub fn screen(&self) -> String {
        // With scroll-back, so what the shell printed after the panel is all there.
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "capture-pane",
                "-p",
                "-S",
                "-200",
                "-t",
                "t",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen satisfies `check`; returns how long that took.
    pub fn wait_for(&self, limit: Duration, what: &str, check: impl Fn(&str) -> bool) -> Duration {
        let started = Instant::now();
        while started.elapsed() < limit {
            if check(&self.screen()) {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}; the screen:\n{}",
            self.screen()
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}
