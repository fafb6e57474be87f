//! Processes of a Gunicorn site as `/proc` shows them: command lines, children, start
//! times; and running a helper command with a deadline.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to completion, capturing its output; kills it after `timeout`.
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    // Drain both pipes on threads so a chatty command cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("did not finish within {}s", timeout.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// The arguments of a process (`/proc/PID/cmdline`), empty when it is gone.
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|&b| b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` is a Gunicorn master of this site: its command line runs gunicorn
/// with this pid file or OMERO.web's application (PID reuse must not fool us).
pub fn is_site_gunicorn(pid: u32, pid_file: &Path) -> bool {
    let args = cmdline(pid);
    let runs_gunicorn = args.iter().any(|a| a.contains("gunicorn"));
    let pid_file = pid_file.to_string_lossy();
    let ours = args
        .iter()
        .any(|a| a == pid_file.as_ref() || a.starts_with("omeroweb.wsgi"));
    runs_gunicorn && ours && crate::pool::pidfile::is_alive(pid)
}

/// PIDs whose parent is `parent` (Gunicorn's workers are its master's children).
pub fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect();
    pids.sort_unstable();
    pids
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Seconds since the process started (from its start time and the system uptime).
pub fn age_secs(pid: u32) -> Option<f64> {
    let start_ticks = crate::pool::pidfile::process_start_time(pid)? as f64;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((uptime - start_ticks / ticks.max(1.0)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_and_cmdline_come_from_proc() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let me = std::process::id();
        let pid = child.id();
        let kids = children(me);
        let args = cmdline(pid);
        let age = age_secs(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(kids.contains(&pid), "{kids:?} lacks {pid}");
        assert_eq!(args, vec!["sleep".to_string(), "30".to_string()]);
        assert!(age.is_some_and(|a| a < 60.0), "{age:?}");
        // Not gunicorn, whatever its pid file: never taken for a master.
        assert!(!is_site_gunicorn(me, Path::new("/x/var/django.pid")));
    }

    #[test]
    fn slow_commands_are_stopped_at_the_deadline() {
        let err = output_with_timeout(Command::new("sleep").arg("10"), Duration::from_millis(200))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        let ok =
            output_with_timeout(Command::new("echo").arg("hi"), Duration::from_secs(10)).unwrap();
        assert_eq!(String::from_utf8_lossy(&ok.stdout), "hi\n");
    }
}
