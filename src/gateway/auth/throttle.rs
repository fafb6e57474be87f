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
/// How long every failure is remembered for the panel's "failed logins in the last
/// hour" (in one file, `recent`, apart from the per-name counts).
pub const RECENT_SECS: u64 = 60 * 60;
const RECENT_FILE: &str = "recent";

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

    /// Failed logins of every user from every address in the last hour.
    pub fn recent_failures(&self) -> usize {
        update(&self.dir.join(RECENT_FILE), false, RECENT_SECS).unwrap_or(0)
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
            .any(|(file, limit)| update(file, false, WINDOW_SECS).is_ok_and(|n| n >= *limit))
    }

    /// Counts one failure for both; returns the user name's count in the window.
    pub fn failed(&self, address: Option<IpAddr>, user: &str) -> usize {
        let _ = update(&self.dir.join(RECENT_FILE), true, RECENT_SECS);
        let mut counts = self
            .files(address, user)
            .iter()
            .map(|(file, _)| update(file, true, WINDOW_SECS).unwrap_or(0))
            .collect::<Vec<_>>();
        counts.swap_remove(0)
    }

    /// Removes count files with no failure inside the window (written last longer
    /// ago than it), so names tried once do not pile up.
    pub fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let keep = if entry.file_name() == RECENT_FILE {
                RECENT_SECS
            } else {
                WINDOW_SECS
            };
            let window = std::time::Duration::from_secs(keep);
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

/// Reads the failure times in `file` under an exclusive lock, drops those older than
/// `keep` seconds, adds now if `add`, writes them back; returns how many remain.
fn update(file: &Path, add: bool, keep: u64) -> std::io::Result<usize> {
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
        .filter(|&t: &u64| t + keep > now)
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

    #[test]
    fn every_failure_of_the_last_hour_is_counted_once_success_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let throttle = Throttle::new(dir.path());
        let here: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(throttle.recent_failures(), 0);
        throttle.failed(Some(here), "alice");
        throttle.failed(None, "bob");
        throttle.failed(Some(here), "alice");
        // A success forgets alice's count for the throttle, not for the hour.
        throttle.succeeded("alice");
        assert_eq!(throttle.recent_failures(), 3);
        // Failures older than the window but within the hour still count; older not.
        let now = now_secs();
        let recent = dir.path().join(RECENT_FILE);
        let earlier = format!("{}\n{}\n", now - RECENT_SECS - 5, now - WINDOW_SECS - 60);
        std::fs::write(&recent, earlier).unwrap();
        throttle.sweep();
        assert_eq!(throttle.recent_failures(), 1);
    }
}
