//! Signalling child processes without the PID-reuse race: a pidfd names the process
//! itself, so a signal sent after it exited (and was reaped) fails with ESRCH instead of
//! reaching whatever process got the PID next.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::signal::Signal;

/// A handle on one child process.
#[derive(Debug)]
pub struct ProcessHandle {
    pid: u32,
    /// `None` on kernels without pidfds (before Linux 5.3): plain kill(2) then.
    pidfd: Option<OwnedFd>,
}

impl ProcessHandle {
    /// Opens a handle; call it before the child can have been reaped.
    pub fn open(pid: u32) -> ProcessHandle {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        let pidfd = (fd >= 0).then(|| {
            // SAFETY: the kernel just handed us this descriptor; nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(fd as i32) }
        });
        ProcessHandle { pid, pidfd }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal`; an error when the process is gone.
    pub fn signal(&self, signal: Signal) -> std::io::Result<()> {
        let result = match &self.pidfd {
            // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    signal as libc::c_int,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            },
            None => {
                return nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), signal)
                    .map_err(std::io::Error::from);
            }
        };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// How often [`wait_until_exited`] looks.
const EXIT_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Polls `exited` (which judges by whatever identifies the process to its caller: a
/// PID alive in `/proc`, nginx's command line, a released pid-file lock) until it says
/// yes or `limit` has passed; whether it did. It is asked at least once, and once more
/// at the deadline, so a process that exits during the last sleep still counts.
pub fn wait_until_exited(limit: std::time::Duration, mut exited: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if exited() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(
            EXIT_POLL.min(deadline.saturating_duration_since(std::time::Instant::now())),
        );
    }
}

/// [`wait_until_exited`] for a PID: until it is gone or a zombie.
pub fn wait_gone(pid: u32, limit: std::time::Duration) -> bool {
    wait_until_exited(limit, || !super::is_alive(pid))
}

/// Starts `cmd`'s child in a session of its own, so that closing this terminal (or the
/// panel) does not stop what it starts.
pub fn detach(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec; setsid is async-signal-safe and
    // it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

/// This very program, to run again as the master or a worker: `/proc/self/exe`, which
/// names the running binary even after it was replaced on disk (an upgrade), and which
/// the kernel opens without walking the path, so a process that dropped to a site's
/// owner can still run a binary whose directories that user may not search (a
/// checkout under root's `mktemp -d`). Elsewhere, the path it was started from.
pub fn this_program() -> std::io::Result<std::path::PathBuf> {
    let proc_exe = std::path::Path::new("/proc/self/exe");
    if proc_exe.exists() {
        Ok(proc_exe.to_path_buf())
    } else {
        std::env::current_exe()
    }
}

/// What `ps` should show as argv[0] for [`this_program`]: the program's path rather
/// than `/proc/self/exe`.
pub fn this_program_name() -> Option<String> {
    std::env::current_exe().ok().map(|name| {
        name.to_string_lossy()
            .trim_end_matches(" (deleted)")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_for_an_exit_ends_when_the_process_goes_or_at_the_deadline() {
        use std::time::{Duration, Instant};
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        // Alive: the wait gives up at its deadline, not before, and says so.
        let started = Instant::now();
        assert!(!wait_gone(pid, Duration::from_millis(300)));
        assert!(started.elapsed() >= Duration::from_millis(300));
        // Killed and reaped on another thread meanwhile: the wait sees it go.
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            child.kill().unwrap();
            child.wait().unwrap();
        });
        let started = Instant::now();
        assert!(wait_gone(pid, Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(25));
        killer.join().unwrap();
        // The caller's own judgement is asked until it says yes.
        let mut asked = 0;
        assert!(wait_until_exited(Duration::from_secs(30), || {
            asked += 1;
            asked == 3
        }));
        assert_eq!(asked, 3);
        // Even with no time at all it is asked once.
        assert!(wait_until_exited(Duration::ZERO, || true));
    }

    #[test]
    fn a_reaped_child_cannot_be_signalled() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let handle = ProcessHandle::open(child.id());
        handle.signal(Signal::SIGTERM).unwrap();
        child.wait().unwrap();
        // Reaped: the handle refuses, whatever process has the PID by now.
        assert!(handle.signal(Signal::SIGKILL).is_err());
    }
}
