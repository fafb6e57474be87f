//! `reload` without a private nginx in front: Gunicorn's HUP (its argv stays), after a
//! check that OMERO.web loads with the saved config (Gunicorn halts the whole site when
//! new workers cannot). `wsgi_workers` is applied after it with `worker add|remove`;
//! what needs a restart is said, and the record keeps what the flags still run with.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::{CTL_TIMEOUT, Gunicorn, argv, control, process, python, restart_properties};
use crate::config::Config;
use crate::supervisor::{ConfigCheck, ControlResponse, pid_list};

impl Gunicorn {
    pub(super) fn reload_gunicorn(&self) -> anyhow::Result<ControlResponse> {
        // Behind the private nginx a new generation replaces the workers with no gap
        // (and applies Gunicorn's flags too); elsewhere Gunicorn's HUP, as before.
        if let Some(reply) = self.switch_generation("reload")? {
            return Ok(reply);
        }
        let pid = self.running()?;
        let settings = match self.settings() {
            Ok(settings) => settings,
            Err(why) => {
                return Ok(ControlResponse::failed(format!(
                    "reload refused: {why}; the running workers keep serving"
                )));
            }
        };
        let python = python::inspect(settings.python.as_deref())?;
        // Gunicorn halts the whole site when new workers cannot load the app: try the
        // import first, in a process of its own, with the new config.
        match self.app_loads(&settings, &python) {
            Ok(()) => {}
            Err(ConfigCheck::Fails(why)) => {
                return Ok(ControlResponse::failed(format!(
                    "reload refused: OMERO.web does not load with the saved config ({why}); the running workers keep serving"
                )));
            }
            Err(other) => {
                return Ok(ControlResponse::failed(format!(
                    "reload refused: the check that OMERO.web loads did not pass ({}); the running workers keep serving",
                    other.describe()
                )));
            }
        }
        let old = self.worker_pids(pid);
        let before = control::stats(&self.socket(), CTL_TIMEOUT).ok();
        if control::call(&self.socket(), "reload", CTL_TIMEOUT).is_err() {
            self.signal(pid, Signal::SIGHUP)?;
        }
        // A HUP goes back to the argv's --workers.
        let argv_workers = argv_workers(&process::cmdline(pid)).unwrap_or(settings.workers);
        let limit =
            Duration::from_secs(settings.boot_timeout.max(30) * (argv_workers as u64).max(1) + 30);
        let new = match self.wait_for_workers(pid, argv_workers, &old, limit) {
            Ok(new) => new,
            Err(reason) => {
                let tail = self.error_tail(Some(&settings));
                return Ok(ControlResponse::failed(format!(
                    "reload failed: {reason}. Gunicorn's log says: {}",
                    tail.last().cloned().unwrap_or_default()
                )));
            }
        };
        // Said, because it is not gapless: see `generation`.
        let mut message = format!(
            "Reloaded: {} new workers (PIDs {}) by Gunicorn's HUP (no private nginx in front to switch generations behind: requests wait while the new workers load).",
            new.len(),
            pid_list(&new)
        );
        if settings.workers != argv_workers {
            let (verb, n) = if settings.workers > argv_workers {
                ("add", settings.workers - argv_workers)
            } else {
                ("remove", argv_workers - settings.workers)
            };
            control::call(&self.socket(), &format!("worker {verb} {n}"), CTL_TIMEOUT)?;
            self.wait_for_workers(pid, settings.workers, &[], limit)
                .map_err(|e| anyhow::anyhow!(e))?;
            message.push_str(&format!(
                " omero.web.wsgi_workers = {} applied (Gunicorn was started with {argv_workers}).",
                settings.workers
            ));
        }
        let wanted = argv::gunicorn_args(&self.site, &settings);
        let pending: Vec<String> = argv::argv_changes(&process::cmdline(pid), &wanted)
            .into_iter()
            .filter(|c| !c.starts_with("--workers "))
            .collect();
        if !pending.is_empty() {
            message.push_str(&format!(
                " Gunicorn keeps its command line over a reload; restart to apply: {}.",
                pending.join(", ")
            ));
        }
        if let Some(before) = before
            && before.reloads > 0
        {
            message.push_str(&format!(" (reload {} of this master)", before.reloads + 1));
        }
        // What the new workers read from the config applies; the flags do not.
        let mut record = self.record();
        if record.master_pid == Some(pid)
            && let Ok(config) = Config::load(&self.site)
        {
            let mut applied = config.applied_values();
            for key in restart_properties() {
                match record.applied.get(key) {
                    Some(old) => applied.insert(key.to_string(), old.clone()),
                    None => applied.remove(key),
                };
            }
            record.applied = applied;
            self.write_record(&record);
        }
        Ok(ControlResponse::ok(message))
    }
}

/// `--workers N` of a master's command line.
pub(super) fn argv_workers(args: &[String]) -> Option<u32> {
    argv_flag(args, &["--workers", "-w"])?.parse().ok()
}

/// The value of the last of `names` given as a separate word on a command line (as
/// our argv passes every flag), as Gunicorn reads it: the last one wins.
pub(super) fn argv_flag<'a>(args: &'a [String], names: &[&str]) -> Option<&'a str> {
    let i = args.iter().rposition(|a| names.contains(&a.as_str()))?;
    args.get(i + 1).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_flag_is_read_from_a_command_line() {
        let args: Vec<String> = "python gunicorn -D --workers 5 --workers=9 x --workers 3"
            .split(' ')
            .map(String::from)
            .collect();
        assert_eq!(argv_workers(&args), Some(3));
        assert_eq!(argv_workers(&["gunicorn".to_string()]), None);
    }
}
