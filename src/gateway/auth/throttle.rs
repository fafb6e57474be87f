//! Failed logins, counted per client address and per user name in files every
//! worker shares (`var/login-failures/`), each locked while it is read and rewritten.
//! Past the limit within the window, logins are refused without checking the
//! password, so guessing costs the guesser time and the server no argon2 work.

use std::io::{Read, Seek, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::sessions::now_secs;

/// The window failures are counted in, seconds.
pub const WINDOW_SECS: u64 = 15 * 60;
/// Failures within the window after which a user name is refused.
pub const PER_USER: usize = 5;
/// Failures within the window after which a client address is refused.
pub const PER_ADDRESS: usize = 20;

pub struct Throttle {
    dir: PathBuf,
}

fn hex(text: &str) -> String {
    text.bytes().take(64).map(|b| format!("{b:02x}")).collect()
}

impl Throttle {
    pub fn new(dir: &Path) -> Throttle {
        Throttle {
            dir: dir.to_path_buf(),
        }
    }

    fn files(&self, address: Option<IpAddr>, user: &str) -> Vec<(PathBuf, usize)> {
        let mut files = vec![(self.dir.join(format!("user-{}", hex(user))), PER_USER)];
        if let Some(ip) = address {
            files.push((
                self.dir.join(format!("addr-{}", hex(&ip.to_string()))),
                PER_ADDRESS,
            ));
        }
        files
    }

    /// Whether this address or user name has failed too often lately.
    pub fn blocked(&self, address: Option<IpAddr>, user: &str) -> bool {
        self.files(address, user)
            .iter()
            .any(|(file, limit)| update(file, false).is_ok_and(|n| n >= *limit))
    }

    /// Counts one failure for both; returns the user name's count in the window.
    pub fn failed(&self, address: Option<IpAddr>, user: &str) -> usize {
        let mut counts = self
            .files(address, user)
            .iter()
            .map(|(file, _)| update(file, true).unwrap_or(0))
            .collect::<Vec<_>>();
        counts.swap_remove(0)
    }

    /// Removes count files with no failure inside the window (written last longer
    /// ago than it), so names tried once do not pile up.
    pub fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let window = std::time::Duration::from_secs(WINDOW_SECS);
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > window);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// A successful login forgets the user name's failures (not the address's).
    pub fn succeeded(&self, user: &str) {
        let _ = std::fs::remove_file(self.dir.join(format!("user-{}", hex(user))));
    }
}

/// Reads the failure times in `file` under an exclusive lock, drops those out of the
/// window, adds now if `add`, writes them back; returns how many remain.
fn update(file: &Path, add: bool) -> std::io::Result<usize> {
    use std::os::unix::fs::OpenOptionsExt;
    if !add && !file.exists() {
        return Ok(0);
    }
    std::fs::create_dir_all(file.parent().expect("a file in a directory"))?;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(file)
        .map_err(crate::fsutil::explain_refused_link)?;
    let mut locked = nix::fcntl::Flock::lock(opened, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| std::io::Error::from(e))?;
    let mut text = String::new();
    locked.read_to_string(&mut text)?;
    let now = now_secs();
    let mut times: Vec<u64> = text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&t: &u64| t + WINDOW_SECS > now)
        .collect();
    if add {
        times.push(now);
    }
    let body: String = times.iter().map(|t| format!("{t}\n")).collect();
    locked.set_len(0)?;
    locked.rewind()?;
    locked.write_all(body.as_bytes())?;
    Ok(times.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_the_user_and_the_address_separately() {
        let dir = tempfile::tempdir().unwrap();
        let throttle = Throttle::new(dir.path());
        let here: IpAddr = "192.0.2.1".parse().unwrap();
        for n in 1..=PER_USER {
            assert!(!throttle.blocked(Some(here), "alice"));
            assert_eq!(throttle.failed(Some(here), "alice"), n);
        }
        assert!(throttle.blocked(None, "alice"));
        // The address has failed 5 times only: another user from it may try.
        assert!(!throttle.blocked(Some(here), "bob"));
        // A second throttle over the same directory (another worker) agrees.
        assert!(Throttle::new(dir.path()).blocked(None, "alice"));
        throttle.succeeded("alice");
        assert!(!throttle.blocked(None, "alice"));
        for _ in 0..PER_ADDRESS {
            throttle.failed(Some(here), "x");
        }
        assert!(throttle.blocked(Some(here), "carol"));
        // Counts older than the window go with the sweep; fresh ones stay.
        let stale = dir.path().join(format!("user-{}", hex("old")));
        std::fs::write(&stale, "1\n").unwrap();
        let long_ago =
            std::time::SystemTime::now() - std::time::Duration::from_secs(WINDOW_SECS + 60);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        throttle.sweep();
        assert!(!stale.exists());
        assert!(throttle.blocked(Some(here), "carol"));
    }
}
