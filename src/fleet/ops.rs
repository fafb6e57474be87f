//! Rolling operations, one member at a time: drain (upstream `down` + graceful reload
//! of the front, then wait until the member has nothing in flight), act, check its
//! health through its own bind, undrain. The first failure stops the roll: the failed
//! member stays drained, the ones after it are untouched, and the error says so.
//!
//! `config set` changes every member or none: all must answer first, and a member
//! that refuses the value has the members changed before it put back.

use std::time::{Duration, Instant};

use super::{Answer, Fleet, Member};

/// How long a drained member may take to finish its in-flight requests.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// How long a member may take to come back healthy after acting on it.
const HEALTH_LIMIT: Duration = Duration::from_secs(120);
/// What a reload or restart may take on top of the fleet's ssh timeout.
const ACT_EXTRA: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reload,
    Restart,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Reload => "reload",
            Action::Restart => "restart",
        }
    }
}

impl Fleet {
    /// Takes `member` out of the front and waits until nginx's old workers are gone
    /// and the member has no request in flight.
    pub fn drain(&self, name: &str, say: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
        let member = self.file.require(name)?.clone();
        let old_workers = front_workers(self);
        self.set_drained(name, true)?;
        say(&format!("{name}: drained from the front"));
        // A graceful reload: nginx's old workers finish what they have and exit; until
        // then they may still pass new requests to the member.
        let deadline = Instant::now() + DRAIN_LIMIT;
        self.wait_for_old_workers(&old_workers, deadline);
        loop {
            match self.in_flight(&member) {
                Ok(0) => break,
                Ok(n) if Instant::now() >= deadline => {
                    say(&format!(
                        "{name}: still {n} request(s) in flight after {} s; going on",
                        DRAIN_LIMIT.as_secs()
                    ));
                    break;
                }
                Ok(_) => std::thread::sleep(POLL),
                // A member that does not answer has nothing in flight we could wait for.
                Err(e) => {
                    say(&format!("{name}: {e:#}"));
                    break;
                }
            }
        }
        Ok(())
    }

    /// Puts `name` back into the front; returns once nginx's old workers are gone, so
    /// the front serves with the member when this returns.
    pub fn undrain(&self, name: &str, say: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
        let old_workers = front_workers(self);
        self.set_drained(name, false)?;
        self.wait_for_old_workers(&old_workers, Instant::now() + DRAIN_LIMIT);
        say(&format!("{name}: back in the front"));
        Ok(())
    }

    /// Waits (until `deadline`) for the front's workers from before a reload to exit.
    fn wait_for_old_workers(&self, old_workers: &[i32], deadline: Instant) {
        while old_workers
            .iter()
            .any(|pid| front_workers(self).contains(pid))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn in_flight(&self, member: &Member) -> anyhow::Result<u64> {
        let status = self.member_status(member)?;
        Ok(status["totals"]["in_flight"].as_u64().unwrap_or(0))
    }

    /// `status --json` of one member.
    pub fn member_status(&self, member: &Member) -> anyhow::Result<serde_json::Value> {
        let answer = self
            .transport
            .run(member, &["status", "--json"], Duration::ZERO);
        match &answer {
            Answer::Ran { stdout, .. } => serde_json::from_str(stdout)
                .map_err(|e| anyhow::anyhow!("{}: status --json: {e}", member.name)),
            Answer::Unreachable(_) => anyhow::bail!("{}: {}", member.name, answer.failure()),
        }
    }

    /// Healthy: the pool runs with every worker ready, and answers HTTP on the address
    /// the front uses (from here, as the front reaches it) with no 5xx.
    pub fn wait_healthy(&self, member: &Member) -> anyhow::Result<()> {
        let deadline = Instant::now() + HEALTH_LIMIT;
        loop {
            let last = match self.health(member) {
                Ok(()) => return Ok(()),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{}: not healthy after {} s: {last}",
                    member.name,
                    HEALTH_LIMIT.as_secs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn health(&self, member: &Member) -> anyhow::Result<()> {
        let status = self.member_status(member)?;
        let state = status["state"].as_str().unwrap_or("?");
        let ready = status["workers"]
            .as_array()
            .map_or(0, |ws| ws.iter().filter(|w| w["state"] == "ready").count());
        let target = status["target_workers"].as_u64().unwrap_or(u64::MAX) as usize;
        if state != "running" || ready < target {
            anyhow::bail!("{state}, {ready}/{target} workers ready");
        }
        let code = http_status(&member.upstream)
            .map_err(|e| anyhow::anyhow!("GET / on {}: {e}", member.upstream))?;
        if code >= 500 {
            anyhow::bail!("GET / on {} answered {code}", member.upstream);
        }
        Ok(())
    }

    /// drain → act → health → undrain, member after member.
    pub fn roll(&self, action: Action, say: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
        let members = self.file.members.clone();
        for (i, member) in members.iter().enumerate() {
            let name = &member.name;
            let untouched: Vec<&str> = members[i + 1..].iter().map(|m| m.name.as_str()).collect();
            let stop = |what: String| {
                let rest = if untouched.is_empty() {
                    String::new()
                } else {
                    format!("; not touched: {}", untouched.join(", "))
                };
                anyhow::anyhow!("{what}{rest}")
            };
            // A member the operator drained stays out of the front after the act.
            let kept_out = self.drained().contains(name);
            if kept_out {
                say(&format!("{name}: drained already; it stays drained"));
            } else {
                self.drain(name, say)
                    .map_err(|e| stop(format!("{name}: cannot drain: {e:#}")))?;
            }
            say(&format!("{name}: {}…", action.verb()));
            let answer = self.transport.run(member, &[action.verb()], ACT_EXTRA);
            if !answer.succeeded() {
                return Err(stop(format!(
                    "{name}: {} failed ({}); it stays drained",
                    action.verb(),
                    answer.failure()
                )));
            }
            self.wait_healthy(member)
                .map_err(|e| stop(format!("{e:#}; it stays drained")))?;
            say(&format!("{name}: healthy"));
            if !kept_out {
                self.undrain(name, say)
                    .map_err(|e| stop(format!("{name}: cannot undrain: {e:#}")))?;
            }
        }
        Ok(())
    }

    /// Sets `key` on every member, or on none: every member must answer first, and if
    /// one refuses, the members already changed get their old value back.
    pub fn config_set(
        &self,
        key: &str,
        value: &str,
        say: &mut dyn FnMut(&str),
    ) -> anyhow::Result<()> {
        let members = &self.file.members;
        let exports = self.transport.run_all(
            members,
            &["config", "export", "--show-password"],
            Duration::ZERO,
        );
        let mut old_values = Vec::new();
        for (member, answer) in members.iter().zip(&exports) {
            match answer {
                Answer::Ran {
                    code: Some(0),
                    stdout,
                    ..
                } => old_values.push(previous_value(stdout, key)),
                _ => anyhow::bail!("{}: {}; no member changed", member.name, answer.failure()),
            }
        }
        for (i, member) in members.iter().enumerate() {
            let answer = self
                .transport
                .run(member, &["config", "set", key, value], Duration::ZERO);
            if answer.succeeded() {
                say(&format!("{}: {key} set", member.name));
                continue;
            }
            let why = answer.failure();
            let mut restored = Vec::new();
            let mut stuck = Vec::new();
            for (changed, old) in members[..i].iter().zip(&old_values) {
                let args: Vec<&str> = match old {
                    Some(old) => vec!["config", "set", "--force", key, old],
                    None => vec!["config", "unset", key],
                };
                if self
                    .transport
                    .run(changed, &args, Duration::ZERO)
                    .succeeded()
                {
                    restored.push(changed.name.as_str());
                } else {
                    stuck.push(changed.name.as_str());
                }
            }
            let mut message = format!("{}: {why}; ", member.name);
            if restored.is_empty() && stuck.is_empty() {
                message.push_str("no member changed");
            } else if stuck.is_empty() {
                message.push_str(&format!("put back: {}", restored.join(", ")));
            } else {
                message.push_str(&format!(
                    "put back: {}; COULD NOT put back: {} (they have the new value)",
                    restored.join(", "),
                    stuck.join(", ")
                ));
            }
            anyhow::bail!(message);
        }
        Ok(())
    }
}

/// The value `key` has in `config export` output (None: not set).
fn previous_value(export: &str, key: &str) -> Option<String> {
    export
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

/// The PIDs of the front nginx's worker processes (children of its master).
fn front_workers(fleet: &Fleet) -> Vec<i32> {
    let Ok(crate::nginx::Status::Running(running)) = crate::nginx::instance::status(&fleet.control)
    else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // The fields after the command name (which may hold spaces).
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(running.pid)
        })
        .collect()
}

/// The status code of `GET /` on `address` (host:port), HTTP/1.0.
fn http_status(address: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let addr = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_value_comes_from_the_export() {
        let export = "omero.web.wsgi_workers=3\nomero.web.wsgi_workers_x=9\n";
        assert_eq!(
            previous_value(export, "omero.web.wsgi_workers").as_deref(),
            Some("3")
        );
        assert_eq!(previous_value(export, "omero.web.prefix"), None);
    }
}
