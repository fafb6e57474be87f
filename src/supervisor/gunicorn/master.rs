//! The site's Gunicorn master as its pid file, its control socket and `/proc` show it:
//! which process it is, its workers and their signals, what a dead master left behind
//! (orphans, ended under the start lock), and how the last master ended when it halted
//! by itself. Every command begins here.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{CTL_TIMEOUT, Gunicorn, HALT_LINES, control, logs, process, wait_gone};
use crate::config::Config;
use crate::site::SiteKind;

/// The master of a site as its pid file and `/proc` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Master {
    Running(u32),
    Stale(Option<u32>),
    NotRunning,
}

impl Gunicorn {
    /// Who holds `var/django.pid`. Gunicorn rewrites it during a reload (unlink, then
    /// create), so a missing file is checked against the control socket too.
    pub(super) fn master(&self) -> Master {
        let pid_file = self.site.django_pid_file();
        let named = match crate::proc::pidfile::read_pid(&pid_file) {
            Ok(Some(pid)) if process::is_site_gunicorn(pid, &pid_file) => Master::Running(pid),
            Ok(pid) => Master::Stale(pid),
            Err(_) => match control::stats(&self.socket(), Duration::from_secs(2)) {
                Ok(stats) if process::is_site_gunicorn(stats.pid, &pid_file) => {
                    Master::Running(stats.pid)
                }
                _ => Master::NotRunning,
            },
        };
        match named {
            Master::Running(pid) => Master::Running(pid),
            // A garbage pid file, or var/ removed under a running Gunicorn: its master
            // is still among the site's processes, and must not pass for an orphan.
            other => self.master_among_processes().map_or(other, Master::Running),
        }
    }

    /// The master among the processes running Gunicorn with this site's pid file: the
    /// one whose children are among them (its workers; orphaned workers have none).
    fn master_among_processes(&self) -> Option<u32> {
        let pids = process::site_gunicorn_processes(&self.site.django_pid_file());
        pids.iter()
            .copied()
            .find(|&pid| process::children(pid).iter().any(|c| pids.contains(c)))
    }

    pub(super) fn running(&self) -> anyhow::Result<u32> {
        match self.master() {
            // It would answer nothing: say why rather than wait.
            Master::Running(pid) if process::state(pid) == Some('T') => anyhow::bail!(
                "the Gunicorn master (PID {pid}) is stopped (SIGSTOP): send it SIGCONT first"
            ),
            Master::Running(pid) => Ok(pid),
            _ => anyhow::bail!("OMERO.web is not running"),
        }
    }

    /// Worker PIDs: from the control socket, else the master's children.
    pub(super) fn worker_pids(&self, master: u32) -> Vec<u32> {
        match control::workers(&self.socket(), CTL_TIMEOUT) {
            Ok(workers) => workers.iter().map(|w| w.pid).collect(),
            Err(_) => process::children(master),
        }
    }

    /// Waits until Gunicorn's workers number `target` and none of `old` is left.
    pub(super) fn wait_for_workers(
        &self,
        master: u32,
        target: u32,
        old: &[u32],
        limit: Duration,
    ) -> Result<Vec<u32>, String> {
        let deadline = Instant::now() + limit;
        loop {
            if !crate::proc::is_alive(master) {
                return Err(format!("the Gunicorn master (PID {master}) exited"));
            }
            let pids = self.worker_pids(master);
            if pids.len() as u32 == target && !pids.iter().any(|p| old.contains(p)) {
                return Ok(pids);
            }
            if Instant::now() >= deadline {
                let left = pids.iter().filter(|p| old.contains(p)).count();
                return Err(if old.is_empty() {
                    format!(
                        "after {}s Gunicorn has {} workers, not {target}",
                        limit.as_secs(),
                        pids.len()
                    )
                } else {
                    format!(
                        "after {}s Gunicorn has {} workers ({left} of the old ones), not {target} new ones",
                        limit.as_secs(),
                        pids.len()
                    )
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(super) fn signal(&self, pid: u32, signal: Signal) -> anyhow::Result<()> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .map_err(|e| anyhow::anyhow!("cannot send {signal} to Gunicorn (PID {pid}): {e}"))
    }

    /// Held for a whole start: a Gunicorn still booting (no pid file yet, its parent
    /// init after -D) must not be taken for one a dead master left, and two starts
    /// must not race.
    pub(super) fn start_lock(&self) -> std::io::Result<nix::fcntl::Flock<std::fs::File>> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            // Root may open it in a directory another user owns: never through a link.
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.site.var_dir().join(".omero-webctl-start.lock"))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| std::io::Error::from(errno))
    }

    /// Whether another process is starting this site right now.
    pub(super) fn start_in_progress(&self) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.site.var_dir().join(".omero-webctl-start.lock"))
        else {
            return false;
        };
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
    }

    /// Processes of this site's Gunicorn whose master is gone (none while a start
    /// runs: its Gunicorn is booting, not orphaned).
    pub(super) fn orphans(&self) -> Vec<u32> {
        if self.start_in_progress() {
            return Vec::new();
        }
        self.orphans_now()
    }

    pub(super) fn orphans_now(&self) -> Vec<u32> {
        // After its master died a worker's parent is init, so it reads like a master
        // itself: what counts is whether the pid file names a live master.
        let master = match self.master() {
            Master::Running(pid) => Some(pid),
            _ => None,
        };
        process::site_gunicorn_processes(&self.site.django_pid_file())
            .into_iter()
            .filter(|&pid| match master {
                Some(m) => pid != m && process::parent_of(pid) != Some(m),
                None => true,
            })
            .collect()
    }

    /// Ends what a dead master left: TERM, then KILL after 5 s. Returns their PIDs.
    pub(super) fn end_orphans(&self) -> Vec<u32> {
        self.end(self.orphans())
    }

    pub(super) fn end(&self, orphans: Vec<u32>) -> Vec<u32> {
        for &pid in &orphans {
            let _ = self.signal(pid, Signal::SIGTERM);
        }
        for &pid in &orphans {
            if !wait_gone(pid, Duration::from_secs(5)) {
                let _ = self.signal(pid, Signal::SIGKILL);
                wait_gone(pid, Duration::from_secs(5));
            }
        }
        orphans
    }

    /// How the last master ended, when Gunicorn's error log says it halted by itself
    /// ("Worker failed to boot": a worker started while the saved config could not
    /// load), with the saved changes it had not applied.
    pub(super) fn halt(&self) -> Option<crate::supervisor::Halt> {
        let record = self.record();
        let settings = self.settings().ok();
        let log = record
            .error_log
            .clone()
            .or_else(|| self.error_log(settings.as_ref()))?;
        let lines = crate::logging::tail_lines(&log, HALT_LINES).ok()?;
        let found = logs::last_halt(&lines)?;
        let pending = Config::load(&self.site)
            .map(|config| {
                crate::supervisor::pending_against(&config, &record.applied, SiteKind::OmeroWeb)
            })
            .unwrap_or_default();
        Some(crate::supervisor::Halt {
            at: found.at,
            reason: found.reason,
            error: found.error,
            log,
            pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::Site;
    use crate::supervisor::StopOutcome;
    use crate::supervisor::Supervisor;

    #[test]
    fn a_site_without_a_master_is_not_running_and_a_foreign_pid_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        let g = Gunicorn::new(site.clone());
        assert_eq!(g.master(), Master::NotRunning);
        std::fs::create_dir_all(site.var_dir()).unwrap();
        // Our own PID: alive, but not a Gunicorn of this site.
        std::fs::write(site.django_pid_file(), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(g.master(), Master::Stale(Some(std::process::id())));
        assert!(matches!(g.stop(false).unwrap(), StopOutcome::Stale { .. }));
        assert!(
            !site.django_pid_file().exists(),
            "the stale file is removed"
        );
    }
}
