//! Running a helper command to completion with a deadline, its output captured: the
//! Gunicorn supervisor's Python checks and `manage.py`, and the fleet's commands on
//! its members (directly or over ssh).
//!
//! Output goes to anonymous temp files rather than pipes: whatever the command leaves
//! running keeps its descriptors (a persisting ssh master connection, a daemon that
//! keeps its stdio), and a pipe it holds open would never reach end-of-file, so
//! reading it would outlast the command and its deadline. A file is read once the
//! command itself has exited.

use std::io::{Read, Seek};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How often the child is looked at: soon at first (most commands are quick), then
/// less often.
const FIRST_POLL: Duration = Duration::from_millis(2);
const LAST_POLL: Duration = Duration::from_millis(20);

/// Runs `cmd` with stdin from `/dev/null` until it exits, and returns its status and
/// output; after `limit` it is killed and the error is `TimedOut` ("did not finish
/// within N s"). A command that cannot be started is the spawn error as it is (its
/// kind tells a missing program).
pub fn output_with_deadline(cmd: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let temp = || {
        tempfile::tempfile().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot make a temp file for its output: {e}"),
            )
        })
    };
    let (mut stdout, mut stderr) = (temp()?, temp()?);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(stdout.try_clone()?)
        .stderr(stderr.try_clone()?)
        .spawn()?;
    let deadline = Instant::now() + limit;
    let mut poll = FIRST_POLL;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("did not finish within {:.0} s", limit.as_secs_f64()),
            ));
        }
        std::thread::sleep(poll.min(deadline.saturating_duration_since(Instant::now())));
        poll = (poll * 2).min(LAST_POLL);
    };
    Ok(Output {
        status,
        stdout: read_from_start(&mut stdout)?,
        stderr: read_from_start(&mut stderr)?,
    })
}

fn read_from_start(file: &mut std::fs::File) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.rewind()?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_commands_are_stopped_at_the_deadline() {
        let started = Instant::now();
        let err = output_with_deadline(Command::new("sleep").arg("10"), Duration::from_millis(200))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "did not finish within 0 s");
        assert!(started.elapsed() < Duration::from_secs(8), "it was killed");
        let ok =
            output_with_deadline(Command::new("echo").arg("hi"), Duration::from_secs(10)).unwrap();
        assert!(ok.status.success());
        assert_eq!(String::from_utf8_lossy(&ok.stdout), "hi\n");
        let missing = output_with_deadline(
            &mut Command::new("/nonexistent/omero-webctl-test"),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn both_outputs_are_kept_apart_and_whole() {
        // More than a pipe's buffer on each, so a reader of one only would block.
        let out = output_with_deadline(
            Command::new("sh").args([
                "-c",
                "head -c 200000 /dev/zero | tr '\\0' o; head -c 150000 /dev/zero | tr '\\0' e >&2; exit 3",
            ]),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout.len(), 200_000);
        assert!(out.stdout.iter().all(|&b| b == b'o'));
        assert_eq!(out.stderr.len(), 150_000);
        assert!(out.stderr.iter().all(|&b| b == b'e'));
    }

    #[test]
    fn what_the_command_leaves_running_does_not_hold_up_its_answer() {
        // A background process that keeps the command's stdout (as a daemon that
        // inherits its stdio does): read from a pipe, the answer would wait for it.
        let started = Instant::now();
        let out = output_with_deadline(
            Command::new("sh").args(["-c", "sleep 60 </dev/null & echo $!"]),
            Duration::from_secs(30),
        )
        .unwrap();
        let elapsed = started.elapsed();
        let left: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(left),
            nix::sys::signal::Signal::SIGKILL,
        );
        assert!(out.status.success());
        assert!(
            elapsed < Duration::from_secs(20),
            "the answer waited for the background process: {elapsed:?}"
        );
    }
}
