//! Helpers shared by the integration tests that run the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A site directory in a temp dir, driven through the real binary.
pub struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        Site {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    /// Writes etc/omero-web.toml directly (flat quoted keys).
    pub fn write_config(&self, text: &str) {
        let file = self.path("etc/omero-web.toml");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_omero-webctl"))
            .arg("--omerodir")
            .arg(self.root())
            .args(args)
            .output()
            .unwrap()
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
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

/// A TCP port that was free a moment ago (the OS picked it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
