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
            None => unsafe {
                libc::kill(self.pid as libc::pid_t, signal as libc::c_int) as libc::c_long
            },
        };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
