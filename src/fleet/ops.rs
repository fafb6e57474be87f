//! Rolling operations, one member at a time: drain (upstream `down` + graceful reload
//! of the front, then wait until the member has nothing in flight), act, check its
//! health through its own bind, undrain. The first failure stops the roll: the failed
//! member stays drained, the ones after it are untouched, and the error says so.
//!
//! `config set` changes every member or none: all must answer first, and a member
//! that refuses the value has the members changed before it put back.

use std::time::{Duration, Instant};

use super::{Answer, Fleet, Member};
use crate::site::SiteKind;

/// How long a drained member may take to finish its in-flight requests.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// How long a member may take to come back healthy after acting on it.
const HEALTH_LIMIT: Duration = Duration::from_secs(120);
/// What a reload or restart may take on top of the fleet's ssh timeout.
const ACT_EXTRA: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(200);
/// How long a member whose workers are all ready may keep answering 5xx.
const ANSWERED_5XX_LIMIT: Duration = Duration::from_secs(10);
/// The OMERO session key the health probe hands OMERO.web (no server knows it).
const SESSION_PROBE: &str = "omero-webctl-health-probe";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Reload,
    Restart,
    /// `upgrade` on each member with the release that fits its kind: `--venv DIR` (an
    /// OMERO.web release in another venv) on OMERO.web members, `--binary PATH` (another
    /// omero-webctl) on embedded ones. A member whose kind got none is skipped.
    Upgrade {
        venv: Option<String>,
        binary: Option<String>,
        health_window: u64,
    },
}

impl Action {
    fn verb(&self) -> &'static str {
        match self {
            Action::Reload => "reload",
            Action::Restart => "restart",
            Action::Upgrade { .. } => "upgrade",
        }
    }

    /// The member's command for a member of `kind` (None: nothing for that kind).
    fn args(&self, kind: SiteKind) -> Option<Vec<String>> {
        let Action::Upgrade {
            venv,
            binary,
            health_window,
        } = self
        else {
            return Some(vec![self.verb().to_string()]);
        };
        let (flag, release) = match kind {
            SiteKind::OmeroWeb => ("--venv", venv.as_ref()?),
            SiteKind::Embedded => ("--binary", binary.as_ref()?),
        };
        Some(vec![
            "upgrade".into(),
            flag.into(),
            release.clone(),
            "--health-window".into(),
            health_window.to_string(),
        ])
    }

    /// Whether the act gives the member a new generation that `rollback` undoes.
    fn changes_generation(&self) -> bool {
        matches!(self, Action::Upgrade { .. })
    }
}

/// Why a member is not healthy (yet).
enum Unhealthy {
    /// Not running, workers still booting, or not answering: give it time.
    NotReady(String),
    /// Every worker is ready and it answers 5xx.
    Answered5xx(String),
}

/// What a member whose health check fails after the act gets back.
#[derive(Debug, Clone)]
pub enum Restore {
    /// Nothing to give back (reload, restart): it stays drained.
    Nothing,
    /// Its previous generation (`rollback` on the member): after an upgrade.
    Generation,
    /// The values `config_set_all` replaced, then a reload.
    Values(Previous),
}

/// The values a fleet-wide `config set` replaced, member by member.
#[derive(Debug, Clone, Default)]
pub struct Previous {
    keys: Vec<String>,
    /// By member name: each key's old value (None: it was not set).
    old: std::collections::BTreeMap<String, Vec<Option<String>>>,
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

    /// Healthy (the error does not name the member: callers do): the pool runs with every worker ready, and answers HTTP on the address
    /// the front uses (from here, as the front reaches it) with no 5xx. Workers still
    /// booting get [`HEALTH_LIMIT`]; a ready pool that keeps answering 5xx for
    /// [`ANSWERED_5XX_LIMIT`] is not going to get better by itself.
    pub fn wait_healthy(&self, member: &Member) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut first_5xx: Option<Instant> = None;
        loop {
            let last = match self.health(member) {
                Ok(()) => return Ok(()),
                Err(Unhealthy::Answered5xx(why)) => {
                    let since = *first_5xx.get_or_insert_with(Instant::now);
                    if since.elapsed() >= ANSWERED_5XX_LIMIT {
                        anyhow::bail!("not healthy: {why}, for {} s", ANSWERED_5XX_LIMIT.as_secs());
                    }
                    why
                }
                Err(Unhealthy::NotReady(why)) => {
                    first_5xx = None;
                    why
                }
            };
            if started.elapsed() >= HEALTH_LIMIT {
                anyhow::bail!("not healthy after {} s: {last}", HEALTH_LIMIT.as_secs());
            }
            std::thread::sleep(POLL);
        }
    }

    fn health(&self, member: &Member) -> Result<(), Unhealthy> {
        let not_ready = |e: String| Unhealthy::NotReady(e);
        let status = self
            .member_status(member)
            .map_err(|e| not_ready(format!("{e:#}")))?;
        let state = status["state"].as_str().unwrap_or("?");
        let ready = status["workers"]
            .as_array()
            .map_or(0, |ws| ws.iter().filter(|w| w["state"] == "ready").count());
        let target = status["target_workers"].as_u64().unwrap_or(u64::MAX) as usize;
        if state != "running" || ready < target {
            return Err(not_ready(format!(
                "{state}, {ready}/{target} workers ready"
            )));
        }
        let code = crate::supervisor::http_status(&member.upstream, "/")
            .map_err(|e| not_ready(format!("GET / on {}: {e}", member.upstream)))?;
        if code >= 500 {
            return Err(Unhealthy::Answered5xx(format!(
                "GET / on {} answered {code}",
                member.upstream
            )));
        }
        // A request that saves a session (OMERO stores the `bsession` it is handed
        // before trying to join it): GET / never touches the session store, and
        // Django reads a store it cannot reach as an empty session, so only a write
        // shows that logins would fail here. It leaves one throw-away session in the
        // store, expiring with the session cookie's age.
        let path = format!("/webclient/?bsession={SESSION_PROBE}");
        let code = crate::supervisor::http_status(&member.upstream, &path)
            .map_err(|e| not_ready(format!("GET {path} on {}: {e}", member.upstream)))?;
        if code >= 500 {
            return Err(Unhealthy::Answered5xx(format!(
                "GET /webclient/ saving a session on {} answered {code} (can it reach its session store?)",
                member.upstream
            )));
        }
        Ok(())
    }

    /// drain → act → health → undrain, member after member.
    pub fn roll(&self, action: Action, say: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
        self.roll_restoring(action, &Restore::Nothing, say)
    }

    /// [`Fleet::roll`]; a member whose health check fails after the act gets `restore`
    /// back (and, healthy again, returns to the front) and the roll stops there.
    pub fn roll_restoring(
        &self,
        action: Action,
        restore: &Restore,
        say: &mut dyn FnMut(&str),
    ) -> anyhow::Result<()> {
        let members = self.file.members.clone();
        // The members this roll changed, in order (what `fleet rollback` undoes).
        let mut changed: Vec<String> = Vec::new();
        for (i, member) in members.iter().enumerate() {
            let name = &member.name;
            let untouched: Vec<&str> = members[i + 1..].iter().map(|m| m.name.as_str()).collect();
            let done = changed.clone();
            let stop = |what: String| {
                let mut message = what;
                if !done.is_empty() {
                    message.push_str(&format!("; done before it: {}", done.join(", ")));
                }
                if !untouched.is_empty() {
                    message.push_str(&format!("; not touched: {}", untouched.join(", ")));
                }
                anyhow::anyhow!("{message}")
            };
            let Some(args) = self
                .act_for(member, &action)
                .map_err(|e| stop(format!("{name}: {e:#}")))?
            else {
                say(&format!("{name}: no release of its kind given; skipped"));
                continue;
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
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let answer = self.transport.run(member, &args, ACT_EXTRA);
            let failure = if !answer.succeeded() {
                // An upgrade that fails puts the member's old generation back by itself.
                Some(format!("{} failed ({})", action.verb(), answer.failure()))
            } else {
                self.wait_healthy(member).err().map(|e| format!("{e:#}"))
            };
            let Some(failure) = failure else {
                say(&format!("{name}: healthy"));
                if action.changes_generation() {
                    changed.push(name.clone());
                    self.record_roll(action.verb(), &changed)
                        .map_err(|e| stop(format!("{name}: {e:#}")))?;
                }
                if !kept_out {
                    self.undrain(name, say)
                        .map_err(|e| stop(format!("{name}: cannot undrain: {e:#}")))?;
                }
                continue;
            };
            if !answer.succeeded() && matches!(restore, Restore::Generation) {
                // The member kept (or went back to) the generation it served: once
                // healthy it can serve again.
                let back = match self.wait_healthy(member) {
                    Err(e) => format!("not healthy ({e:#}); it stays drained"),
                    Ok(()) if kept_out => "healthy on its previous generation; it stays drained".into(),
                    Ok(()) => match self.undrain(name, say) {
                        Ok(()) => "healthy on its previous generation, back in the front".into(),
                        Err(_) => "healthy on its previous generation; it stays drained (the front did not take it back)".into(),
                    },
                };
                return Err(stop(format!("{name}: {failure}; {back}; the roll stopped")));
            }
            if matches!(restore, Restore::Nothing) {
                return Err(stop(format!("{name}: {failure}; it stays drained")));
            }
            say(&format!("{name}: {failure}; restoring it"));
            self.put_back_untouched(&members[i + 1..], restore, say);
            match self.restore(member, restore) {
                Ok(what) => {
                    say(&format!("{name}: {what} back and healthy"));
                    let back = if kept_out {
                        "it stays drained"
                    } else {
                        match self.undrain(name, say) {
                            Ok(()) => "back in the front",
                            Err(_) => "it stays drained (the front did not take it back)",
                        }
                    };
                    return Err(stop(format!(
                        "{name}: {failure}; restored: {what} back, healthy, {back}; the roll stopped"
                    )));
                }
                Err(e) => {
                    return Err(stop(format!(
                        "{name}: {failure}; restoring failed: {e:#}; it stays drained"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The member's command for `action`, for its kind (None: skip it). Only an
    /// upgrade asks the member its kind.
    fn act_for(&self, member: &Member, action: &Action) -> anyhow::Result<Option<Vec<String>>> {
        if !matches!(action, Action::Upgrade { .. }) {
            return Ok(action.args(SiteKind::Embedded));
        }
        let status = self.member_status(member)?;
        let kind: SiteKind = serde_json::from_value(status["kind"].clone())
            .map_err(|e| anyhow::anyhow!("its status does not say its kind: {e}"))?;
        Ok(action.args(kind))
    }

    /// Gives `member` its previous values or generation back and waits until it is
    /// healthy; says what came back.
    fn restore(&self, member: &Member, restore: &Restore) -> anyhow::Result<&'static str> {
        let what = match restore {
            Restore::Nothing => return Ok("nothing"),
            Restore::Generation => {
                let answer = self.transport.run(member, &["rollback"], ACT_EXTRA);
                if !answer.succeeded() {
                    anyhow::bail!("rollback: {}", answer.failure());
                }
                "its previous generation"
            }
            Restore::Values(previous) => {
                self.put_back(member, previous)?;
                let answer = self.transport.run(member, &["reload"], ACT_EXTRA);
                if !answer.succeeded() {
                    anyhow::bail!("reload with the old values: {}", answer.failure());
                }
                "its previous values"
            }
        };
        self.wait_healthy(member)?;
        Ok(what)
    }

    /// The members a stopped roll never reached keep what they ran: a fleet-wide
    /// `config set` wrote the new values into their config already, so those go back.
    fn put_back_untouched(&self, rest: &[Member], restore: &Restore, say: &mut dyn FnMut(&str)) {
        let Restore::Values(previous) = restore else {
            return;
        };
        for member in rest {
            match self.put_back(member, previous) {
                Ok(()) => say(&format!(
                    "{}: old values put back (not reloaded)",
                    member.name
                )),
                Err(e) => say(&format!("{}: COULD NOT put back: {e:#}", member.name)),
            }
        }
    }

    /// Sets each key `previous` holds back to its old value on `member` (unsets the
    /// ones that were not set).
    fn put_back(&self, member: &Member, previous: &Previous) -> anyhow::Result<()> {
        let Some(old) = previous.old.get(&member.name) else {
            return Ok(());
        };
        for (key, old) in previous.keys.iter().zip(old) {
            let args: Vec<&str> = match old {
                Some(old) => vec!["config", "set", "--force", key, old],
                None => vec!["config", "unset", key],
            };
            let answer = self.transport.run(member, &args, Duration::ZERO);
            if !answer.succeeded() {
                anyhow::bail!("{key}: {}", answer.failure());
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
    ) -> anyhow::Result<Previous> {
        self.config_set_all(&[(key, value)], say)
    }

    /// [`Fleet::config_set`] of several keys at once (all of them on every member, or
    /// none on any); returns the values replaced, for a roll that must put them back.
    pub fn config_set_all(
        &self,
        pairs: &[(&str, &str)],
        say: &mut dyn FnMut(&str),
    ) -> anyhow::Result<Previous> {
        let members = &self.file.members;
        let exports = self.transport.run_all(
            members,
            &["config", "export", "--show-password"],
            Duration::ZERO,
        );
        let mut previous = Previous {
            keys: pairs.iter().map(|(k, _)| k.to_string()).collect(),
            old: Default::default(),
        };
        for (member, answer) in members.iter().zip(&exports) {
            match answer {
                Answer::Ran {
                    code: Some(0),
                    stdout,
                    ..
                } => {
                    let old = pairs
                        .iter()
                        .map(|(k, _)| previous_value(stdout, k))
                        .collect();
                    previous.old.insert(member.name.clone(), old);
                }
                _ => anyhow::bail!("{}: {}; no member changed", member.name, answer.failure()),
            }
        }
        for (i, member) in members.iter().enumerate() {
            let refused = pairs.iter().find_map(|(key, value)| {
                let answer =
                    self.transport
                        .run(member, &["config", "set", key, value], Duration::ZERO);
                (!answer.succeeded()).then(|| answer.failure())
            });
            let Some(why) = refused else {
                for (key, _) in pairs {
                    say(&format!("{}: {key} set", member.name));
                }
                continue;
            };
            let mut restored = Vec::new();
            let mut stuck = Vec::new();
            // The refusing member may have taken the keys before the refused one.
            for changed in &members[..=i] {
                match self.put_back(changed, &previous) {
                    Ok(()) if changed.name != member.name => restored.push(changed.name.as_str()),
                    Ok(()) => {}
                    Err(_) => stuck.push(changed.name.as_str()),
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
        Ok(previous)
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
    crate::proc::children(running.pid as u32)
        .into_iter()
        .map(|pid| pid as i32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_gives_each_kind_its_own_release_or_skips_it() {
        let venv_only = Action::Upgrade {
            venv: Some("/opt/v".into()),
            binary: None,
            health_window: 3,
        };
        assert_eq!(
            venv_only.args(SiteKind::OmeroWeb).unwrap(),
            ["upgrade", "--venv", "/opt/v", "--health-window", "3"]
        );
        assert_eq!(venv_only.args(SiteKind::Embedded), None);
        let both = Action::Upgrade {
            venv: Some("/opt/v".into()),
            binary: Some("/opt/b".into()),
            health_window: 10,
        };
        assert_eq!(
            both.args(SiteKind::Embedded).unwrap(),
            ["upgrade", "--binary", "/opt/b", "--health-window", "10"]
        );
        assert_eq!(Action::Reload.args(SiteKind::OmeroWeb).unwrap(), ["reload"]);
        assert!(both.changes_generation() && !Action::Restart.changes_generation());
    }

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
