//! Fleet members as network namespaces: each gets a veth pair (host side
//! 10.231.X.4N+1/30, member side .4N+2), loopback, and an sshd of its own that accepts
//! a key this test generated. Everything is removed when the guard drops, even when
//! the test failed. Processes in a namespace share the filesystem, so a member's site
//! is an ordinary temp directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Whether namespaces can be made here (root, `ip netns`, sshd); skips with a reason,
/// or fails when CI=true.
pub fn available(test: &str) -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("needs root for ip netns")
    } else if !Path::new("/usr/sbin/sshd").is_file() {
        Some("needs sshd (apt-get install openssh-server)")
    } else if !Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        Some("`ip netns` does not work here")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: {why}, and CI=true requires it")
        }
        Some(why) => {
            eprintln!("skipping {test}: {why}");
            false
        }
    }
}

fn ip(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("ip").args(args).output()
}

fn must(args: &[&str]) {
    let out = ip(args).unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The keys of one test: the client's identity and one host key all members' sshd use.
pub struct Keys {
    pub dir: tempfile::TempDir,
}

impl Keys {
    pub fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        for name in ["client", "host"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(dir.path().join(name))
                .output()
                .unwrap();
            assert!(out.status.success(), "ssh-keygen: {out:?}");
        }
        std::fs::copy(
            dir.path().join("client.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        Keys { dir }
    }

    pub fn identity(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// Lets the client know `address`'s host key (appends to known_hosts).
    pub fn trust(&self, address: &str) {
        use std::io::Write;
        let key = std::fs::read_to_string(self.dir.path().join("host.pub")).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.known_hosts())
            .unwrap();
        writeln!(file, "{address} {}", key.trim()).unwrap();
    }
}

/// One namespace with its veth pair and sshd.
pub struct Netns {
    pub name: String,
    pub host_if: String,
    /// The member's address (inside the namespace).
    pub address: String,
    /// The member's /30, routed nowhere while the guard lives (see [`Netns::new`]).
    subnet: String,
    sshd: Option<Child>,
    dir: tempfile::TempDir,
}

impl Netns {
    pub fn new(keys: &Keys) -> Netns {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(n < 60, "too many namespaces in one test binary");
        let pid = std::process::id();
        let name = format!("owf{}n{n}", pid % 10000);
        let host_if = format!("{name}h");
        // A /30 not in use on this host.
        let mut third = pid % 250;
        let in_use =
            String::from_utf8_lossy(&ip(&["-o", "-4", "addr"]).unwrap().stdout).into_owned();
        while in_use.contains(&format!("10.231.{third}.{} ", 4 * n + 1))
            || in_use.contains(&format!("10.231.{third}.{}/", 4 * n + 1))
        {
            third = (third + 1) % 250;
        }
        let host_addr = format!("10.231.{third}.{}", 4 * n + 1);
        let address = format!("10.231.{third}.{}", 4 * n + 2);
        // Packets to the member must never leave this machine: while its veth is down
        // or already deleted, the connected route is gone and the default route would
        // carry them off. An unreachable route for the /30, behind the veth's own,
        // refuses them here instead.
        let subnet = format!("10.231.{third}.{}/30", 4 * n);
        must(&["route", "add", "unreachable", &subnet, "metric", "4000"]);
        let ns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            address: address.clone(),
            subnet,
            sshd: None,
            dir: tempfile::tempdir().unwrap(),
        };
        must(&["netns", "add", &name]);
        must(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &name,
        ]);
        must(&["addr", "add", &format!("{host_addr}/30"), "dev", &host_if]);
        must(&["link", "set", &host_if, "up"]);
        let cidr = format!("{address}/30");
        for args in [
            ["addr", "add", cidr.as_str(), "dev", "eth0"].as_slice(),
            &["link", "set", "eth0", "up"],
            &["link", "set", "lo", "up"],
        ] {
            let mut all = vec!["netns", "exec", name.as_str(), "ip"];
            all.extend_from_slice(args);
            must(&all);
        }
        let mut ns = ns;
        ns.start_sshd(keys);
        keys.trust(&address);
        ns
    }

    fn start_sshd(&mut self, keys: &Keys) {
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = self.dir.path().join("sshd_config");
        let k = keys.dir.path();
        std::fs::write(
            &config,
            format!(
                "ListenAddress {addr}\nPort 22\nHostKey {host}\nAuthorizedKeysFile {auth}\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PidFile {dir}/sshd.pid\nMaxSessions 100\nMaxStartups 100\n",
                addr = self.address,
                host = k.join("host").display(),
                auth = k.join("authorized_keys").display(),
                dir = self.dir.path().display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.dir.path().join("sshd.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
            ])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.sshd = Some(child);
        let addr: std::net::SocketAddr = format!("{}:22", self.address).parse().unwrap();
        assert!(
            super::wait_until(Duration::from_secs(15), || {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            }),
            "sshd in {} does not listen: {}",
            self.name,
            std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
        );
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Takes the member off the network, or back: its side of the veth goes down. The
    /// host side stays up, so the route to the member stays on the veth and packets to
    /// it are dropped there; with the host side down they would follow the default
    /// route off this machine.
    pub fn set_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        must(&[
            "netns", "exec", &self.name, "ip", "link", "set", "eth0", state,
        ]);
        if up {
            // Back up, the address is still there but the route came back without it.
            let _ = ip(&["link", "set", &self.host_if, "up"]);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        // Whatever still runs in it (a member's pool the test did not stop).
        if let Ok(out) = ip(&["netns", "pids", &self.name]) {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
        // Last: until here, packets to the member stay on this machine. (A test's
        // control site, declared after its members, drops first and takes its ssh
        // connection masters and front nginx with it.)
        let _ = ip(&[
            "route",
            "del",
            "unreachable",
            &self.subnet,
            "metric",
            "4000",
        ]);
    }
}
