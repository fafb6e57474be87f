//! Running a member's own omero-webctl: directly for `local` members, else through the
//! system OpenSSH client (no agent of our own). ssh runs in batch mode (never a
//! password prompt), checks host keys strictly (an unknown host is an error, not a
//! silently accepted key), and multiplexes: the first command opens a master
//! connection that later ones reuse for `ControlPersist` seconds, so a refresh costs a
//! channel per member instead of a handshake.
//!
//! Output goes to temp files rather than pipes (`proc::run`): a persisting ssh master
//! inherits the client's descriptors, and a pipe it keeps open would never reach
//! end-of-file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::file::{Destination, FleetFile, Member};

/// How long an idle master connection stays up.
const CONTROL_PERSIST_SECS: u32 = 60;

/// What a member's command answered, or why it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It ran; its exit code (None: killed by a signal), stdout and stderr.
    Ran {
        code: Option<i32>,
        stdout: String,
        stderr: String,
    },
    /// No answer within the timeout, or ssh itself failed (exit 255).
    Unreachable(String),
}

impl Answer {
    pub fn succeeded(&self) -> bool {
        matches!(self, Answer::Ran { code: Some(0), .. })
    }

    /// A one-line account of a failure: the last line of stderr, or the reason.
    pub fn failure(&self) -> String {
        match self {
            Answer::Unreachable(why) => format!("unreachable: {why}"),
            Answer::Ran { code, stderr, .. } => {
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
                match (last, code) {
                    (Some(line), _) => line.trim().to_string(),
                    (None, Some(code)) => format!("exit status {code}"),
                    (None, None) => "killed by a signal".into(),
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Transport {
    program: String,
    timeout: Duration,
    identity: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    /// Where the master connections' sockets live (short: a socket path has a limit).
    control_dir: PathBuf,
    /// The omero-webctl that runs `local` members: this very binary.
    local_program: PathBuf,
}

impl Transport {
    pub fn new(fleet: &FleetFile, control_dir: &Path) -> anyhow::Result<Transport> {
        std::fs::create_dir_all(control_dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", control_dir.display()))?;
        Ok(Transport {
            program: fleet.ssh.program.clone(),
            timeout: fleet.ssh.timeout,
            identity: fleet.ssh.identity.clone(),
            known_hosts: fleet.ssh.known_hosts.clone(),
            control_dir: control_dir.to_path_buf(),
            local_program: std::env::current_exe()?,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The command that runs `omero-webctl --omerodir SITE ARGS…` on `member`.
    pub fn command(&self, member: &Member, args: &[&str]) -> Command {
        let site = member.site.display().to_string();
        let mut words: Vec<&str> = vec!["--omerodir", &site];
        words.extend_from_slice(args);
        match &member.destination {
            Destination::Local => {
                let mut command = Command::new(&self.local_program);
                command.args(&words);
                command
            }
            Destination::Ssh { user, host, port } => {
                let mut command = Command::new("ssh");
                let connect_timeout = self.timeout.as_secs().max(1).to_string();
                let control_path = self.control_dir.join("%C");
                for option in [
                    "BatchMode=yes".to_string(),
                    format!("ConnectTimeout={connect_timeout}"),
                    "ServerAliveInterval=5".to_string(),
                    "ServerAliveCountMax=2".to_string(),
                    "ControlMaster=auto".to_string(),
                    format!("ControlPath={}", control_path.display()),
                    format!("ControlPersist={CONTROL_PERSIST_SECS}"),
                    "StrictHostKeyChecking=yes".to_string(),
                    "LogLevel=ERROR".to_string(),
                ] {
                    command.arg("-o").arg(option);
                }
                if let Some(known_hosts) = &self.known_hosts {
                    command
                        .arg("-o")
                        .arg(format!("UserKnownHostsFile={}", known_hosts.display()));
                }
                if let Some(identity) = &self.identity {
                    command
                        .arg("-o")
                        .arg("IdentitiesOnly=yes")
                        .arg("-i")
                        .arg(identity);
                }
                if let Some(port) = port {
                    command.arg("-p").arg(port.to_string());
                }
                let target = match user {
                    Some(user) => format!("{user}@{host}"),
                    None => host.clone(),
                };
                // The remote side runs the words through a shell: quote each one.
                let remote: Vec<String> = std::iter::once(self.program.as_str())
                    .chain(words.iter().copied())
                    .map(quote)
                    .collect();
                // Only in an existing site: omero-webctl would create a missing
                // --omerodir, and asking a member must not change it.
                let remote = format!(
                    "test -d {site} || {{ echo site directory {site} does not exist >&2; exit 1; }}; {}",
                    remote.join(" "),
                    site = quote(&site)
                );
                command.arg(target).arg("--").arg(remote);
                command
            }
        }
    }

    /// Runs `args` on `member`, waiting at most the fleet's timeout (plus `extra` for
    /// commands that take long by nature, such as a restart).
    pub fn run(&self, member: &Member, args: &[&str], extra: Duration) -> Answer {
        // As over ssh (see `command`): a missing site is an answer, not created.
        if member.destination == Destination::Local && !member.site.is_dir() {
            return Answer::Ran {
                code: Some(1),
                stdout: String::new(),
                stderr: format!("site directory {} does not exist\n", member.site.display()),
            };
        }
        let mut command = self.command(member, args);
        let limit = self.timeout + extra;
        let output = match crate::proc::run::output_with_deadline(&mut command, limit) {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Answer::Unreachable(format!(
                    "no answer within {:.0} s",
                    limit.as_secs_f64()
                ));
            }
            Err(e) => {
                let program = command.get_program().to_string_lossy().into_owned();
                return Answer::Unreachable(format!("cannot run {program}: {e}"));
            }
        };
        let status = output.status;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let ssh = matches!(member.destination, Destination::Ssh { .. });
        if ssh && status.code() == Some(255) {
            let why = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("ssh failed")
                .trim()
                .to_string();
            return Answer::Unreachable(why);
        }
        Answer::Ran {
            code: status.code(),
            stdout,
            stderr,
        }
    }

    /// Runs `args` on every member at once; answers in the members' order.
    pub fn run_all(&self, members: &[Member], args: &[&str], extra: Duration) -> Vec<Answer> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = members
                .iter()
                .map(|member| scope.spawn(move || self.run(member, args, extra)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Answer::Unreachable("the query panicked".into()))
                })
                .collect()
        })
    }
}

/// One word for a POSIX shell.
fn quote(word: &str) -> String {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", word.replace('\0', "").replace('\'', "'\\''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> FleetFile {
        FleetFile::parse(
            "[ssh]\nprogram = \"/opt/o w/omero-webctl\"\nidentity = \"/k\"\nknown_hosts = \"/kh\"\n\
             [[member]]\nname = \"a\"\nssh = \"omero@10.0.0.2:2222\"\nsite = \"/srv/it's here\"\n",
            Path::new("f"),
        )
        .unwrap()
    }

    #[test]
    fn ssh_is_batch_strict_multiplexed_and_quotes_every_word() {
        let fleet = fleet();
        let transport = Transport::new(&fleet, &std::env::temp_dir()).unwrap();
        let command = transport.command(&fleet.members[0], &["config", "set", "k", "a b;rm"]);
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for expected in [
            "BatchMode=yes",
            "StrictHostKeyChecking=yes",
            "ControlMaster=auto",
            "ControlPersist=60",
            "ConnectTimeout=5",
            "UserKnownHostsFile=/kh",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
        let remote = args.last().unwrap();
        let (check, remote) = remote.split_once("exit 1; }; ").unwrap();
        let site = shlex::try_quote("/srv/it's here").unwrap();
        assert!(check.starts_with(&format!("test -d {site} || ")), "{check}");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{check}exit 1; }}"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "site directory /srv/it's here does not exist\n"
        );
        assert_eq!(
            shlex::split(remote).unwrap(),
            [
                "/opt/o w/omero-webctl",
                "--omerodir",
                "/srv/it's here",
                "config",
                "set",
                "k",
                "a b;rm"
            ]
        );
        assert_eq!(args[args.len() - 2], "--");
        assert_eq!(args[args.len() - 3], "omero@10.0.0.2");
    }
}
