//! Carries out the effects `update` asks for. Anything that may block (the pool's
//! control socket, starting processes, nginx -t, file I/O) runs on tokio's blocking
//! pool and reports back with an event, so the UI never waits.

use std::sync::mpsc::Sender;

use tokio::sync::mpsc::UnboundedSender;

use crate::config::{Config, ConfigError};
use crate::nginx::{self, NginxError, NginxKind, instance};
use crate::site::Site;
use crate::supervisor::{self, ControlResponse, Scale, StartOutcome, StopOutcome};

use super::event::{Effect, Event, Job, JobFailure, JobResult};
use super::sampler::{Follow, SampleNow};

pub struct Executor {
    pub site: Site,
    pub events: UnboundedSender<Event>,
    pub sampler: Sender<SampleNow>,
    pub tailer: Sender<Follow>,
    /// The fleet file and its sampler's "ask now", when the control site has a fleet.
    pub fleet: Option<(std::path::PathBuf, Sender<()>)>,
    /// Dropping it stops the reader of the member whose Dashboard is open.
    pub member_reader: std::sync::Mutex<Option<Sender<()>>>,
}

impl Executor {
    pub fn run(&self, effect: Effect) {
        match effect {
            Effect::FleetRefresh => {
                if let Some((_, now)) = &self.fleet {
                    let _ = now.send(());
                }
            }
            Effect::MemberOpen { name, generation } => {
                let Some((file, _)) = &self.fleet else {
                    return;
                };
                let stop = super::member_view::spawn_reader(
                    self.site.clone(),
                    file.clone(),
                    name,
                    generation,
                    self.events.clone(),
                );
                // Replacing the previous one stops its reader.
                if let Ok(mut reader) = self.member_reader.lock() {
                    *reader = Some(stop);
                }
            }
            Effect::MemberClose => {
                if let Ok(mut reader) = self.member_reader.lock() {
                    *reader = None;
                }
            }
            Effect::FleetDrain { name, drain } => {
                let Some((file, _)) = &self.fleet else {
                    return;
                };
                let (site, file) = (self.site.clone(), file.clone());
                self.background(move || Event::FleetDrained {
                    result: super::fleet_tab::drain(&site, &file, &name, drain),
                    name,
                    drain,
                });
            }
            Effect::FleetRoll => {
                let Some((file, _)) = &self.fleet else {
                    return;
                };
                let (site, file, events) = (self.site.clone(), file.clone(), self.events.clone());
                self.background(move || {
                    Event::FleetRolled(super::fleet_tab::rolling_reload(
                        &site,
                        &file,
                        &mut |line| {
                            let _ = events.send(Event::FleetProgress(line.to_string()));
                        },
                    ))
                });
            }
            Effect::SampleNow => {
                let _ = self.sampler.send(SampleNow);
            }
            Effect::FollowLog {
                path, generation, ..
            } => {
                let _ = self.tailer.send(Follow { path, generation });
            }
            Effect::RunJob(job) => {
                let site = self.site.clone();
                self.background(move || Event::JobFinished {
                    job,
                    result: run_job(&site, job),
                });
            }
            Effect::SaveConfig { base, key, value } => {
                let site = self.site.clone();
                self.background(move || save_config(&site, *base, key, value));
            }
            Effect::LoadConfig => {
                let site = self.site.clone();
                self.background(move || Event::ConfigLoaded(load_config(&site)));
            }
            Effect::CheckNginx {
                text,
                kind,
                text_hash,
            } => {
                let site = self.site.clone();
                self.background(move || Event::NginxChecked {
                    text_hash,
                    result: check_nginx(&site, &text, kind),
                });
            }
            Effect::ProbeServers(entries) => {
                self.background(move || Event::ServersProbed {
                    results: crate::reachability::probe_all(
                        &entries,
                        crate::reachability::PROBE_TIMEOUT,
                    ),
                    probed: entries,
                });
            }
            Effect::ReadNginxTarget(path) => {
                self.background(move || {
                    let content = match std::fs::read_to_string(&path) {
                        Ok(text) => Ok(Some(text)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(e.to_string()),
                    };
                    Event::NginxTargetRead { path, content }
                });
            }
            Effect::WriteNginx {
                path,
                text,
                private_port,
            } => {
                let site = self.site.clone();
                self.background(move || {
                    let result = crate::fsutil::write_atomic(&path, text.as_bytes(), None)
                        .map_err(|e| e.to_string())
                        .and_then(|()| match private_port {
                            Some(port) => {
                                instance::remember_port(&site, port).map_err(|e| e.to_string())
                            }
                            None => Ok(()),
                        });
                    Event::NginxWritten { path, result }
                });
            }
        }
    }

    fn background(&self, work: impl FnOnce() -> Event + Send + 'static) {
        let events = self.events.clone();
        tokio::task::spawn_blocking(move || {
            // The panel may have quit meanwhile; then nobody needs the answer.
            let _ = events.send(work());
        });
    }
}

fn load_config(site: &Site) -> Result<Box<Config>, String> {
    Config::load(site).map(Box::new).map_err(|e| e.to_string())
}

fn save_config(site: &Site, mut config: Config, key: String, value: Option<String>) -> Event {
    let changed = match &value {
        Some(raw) => config
            .set(&key, raw, false)
            .map_err(|e| e.to_string())
            // The nginx checks of the property too, as `config set` runs them.
            .and_then(|_| {
                crate::nginx::check_property(&key, &config.settings()).map_err(|e| e.to_string())
            }),
        None => config.unset(&key).map(|_| ()).map_err(|e| e.to_string()),
    };
    if let Err(error) = changed {
        return Event::ConfigSaveFailed {
            error,
            reloaded: None,
        };
    }
    // Refused when it would stop what serves the site (its warnings show in the
    // dashboard's diagnostics).
    if value.is_some()
        && let Err(refusal) = crate::supervisor::for_site(site).vet_setting(&config, &key)
    {
        return Event::ConfigSaveFailed {
            error: refusal,
            reloaded: None,
        };
    }
    match config.save() {
        Ok(()) => Event::ConfigSaved {
            config: Box::new(config),
            key: key.clone(),
            needs: crate::config::registry::lookup(&key)
                .map(|p| p.needs)
                .unwrap_or(&[]),
        },
        Err(e @ ConfigError::ChangedOnDisk { .. }) => Event::ConfigSaveFailed {
            error: e.to_string(),
            // Nothing stale stays: the panel takes the file as it is now.
            reloaded: Some(load_config(site)),
        },
        Err(e) => Event::ConfigSaveFailed {
            error: e.to_string(),
            reloaded: None,
        },
    }
}

fn check_nginx(site: &Site, text: &str, kind: NginxKind) -> Result<nginx::CheckReport, String> {
    if kind == NginxKind::NginxDevelopment {
        // That config names files under var/nginx/; nginx -t needs them to exist.
        let settings = Config::load(site).map_err(|e| e.to_string())?.settings();
        instance::prepare(site, &settings).map_err(|e| e.to_string())?;
    }
    nginx::check(text, kind).map_err(|e| e.to_string())
}

fn failure(message: impl Into<String>) -> JobFailure {
    JobFailure {
        message: message.into(),
        details: Vec::new(),
    }
}

fn nginx_failure(what: &str, e: NginxError) -> JobFailure {
    JobFailure {
        message: format!("{what}: {e}"),
        details: e.nginx_lines().to_vec(),
    }
}

/// Runs a job with the same library calls as the CLI.
pub fn run_job(site: &Site, job: Job) -> JobResult {
    match job {
        Job::Start { nginx_port } => start_all(site, nginx_port),
        Job::Stop => stop_all(site),
        Job::Restart => {
            if let Some(refused) = supervisor::refuse_unusable_config(site, "Restart") {
                return Err(failure(refused));
            }
            // As `restart` on the command line: a new generation switched in behind
            // the private nginx when one runs; a stop and a start otherwise.
            let gapless = supervisor::for_site(site)
                .restart_without_gap()
                .map_err(|e| failure(format!("{e:#}")))?;
            if let Some(reply) = gapless {
                return answer(Ok(reply));
            }
            stop_pool(site)?;
            start_pool(site)
        }
        Job::Reload => {
            if let Some(refused) = supervisor::refuse_unusable_config(site, "Reload") {
                return Err(failure(refused));
            }
            let reply = supervisor::for_site(site)
                .reload()
                .map_err(|e| failure(format!("{e:#}")))?;
            if reply.ok {
                Ok(reply.message)
            } else {
                Err(failure(format!("Reload aborted: {}", reply.message)))
            }
        }
        Job::Rollback => answer(supervisor::for_site(site).rollback()),
        Job::Scale(by) => {
            let supervisor = supervisor::for_site(site);
            let target = match supervisor.status() {
                Ok(supervisor::StatusOutcome::Running(s)) => {
                    Some(Scale::By(by).target(s.target_workers))
                }
                _ => None,
            };
            let mut message = answer(supervisor.scale(Scale::By(by)))?;
            // Say when the next reload undoes it, as the CLI does.
            if let Some(target) = target
                && let Ok(Some(note)) = supervisor::after_scale(site, target, false)
            {
                message = format!("{message} {note}");
            }
            Ok(message)
        }
        Job::KillWorker(pid) => answer(supervisor::for_site(site).kill_worker(pid)),
        Job::NginxStart { port } => start_nginx(site, port),
        Job::NginxStop => match instance::stop(site) {
            Ok(Some(pid)) => Ok(format!("Stopped the private nginx (PID {pid}).")),
            Ok(None) => Ok("The private nginx was not running.".into()),
            Err(e) => Err(nginx_failure("nginx did not stop", e)),
        },
        Job::NginxReload => {
            let settings = Config::load(site)
                .map_err(|e| failure(e.to_string()))?
                .settings();
            match instance::reload(site, &settings) {
                Ok(r) => Ok(format!(
                    "Reloaded the private nginx (PID {}, port {}).",
                    r.pid,
                    r.port.unwrap_or(instance::DEFAULT_PORT)
                )),
                Err(e) => Err(nginx_failure("nginx reload failed", e)),
            }
        }
    }
}

fn answer(reply: anyhow::Result<ControlResponse>) -> JobResult {
    let reply = reply.map_err(|e| failure(format!("{e:#}")))?;
    if reply.ok {
        Ok(reply.message)
    } else {
        Err(failure(reply.message))
    }
}

fn start_pool(site: &Site) -> JobResult {
    match supervisor::for_site(site).start() {
        StartOutcome::Started { pid, detail, .. } => {
            Ok(format!("Started OMERO.web: {detail} (master PID {pid})."))
        }
        StartOutcome::AlreadyRunning { pid } => {
            Ok(format!("OMERO.web is already running (PID {pid})."))
        }
        StartOutcome::Failed { reason, log_tail } => Err(JobFailure {
            message: format!("OMERO.web did not start: {reason}"),
            details: log_tail,
        }),
    }
}

fn start_nginx(site: &Site, port: Option<u16>) -> JobResult {
    let settings = Config::load(site)
        .map_err(|e| failure(e.to_string()))?
        .settings();
    match instance::start(site, &settings, port) {
        Ok(r) => Ok(format!(
            "Started the private nginx on port {} (PID {}).",
            r.port.unwrap_or(instance::DEFAULT_PORT),
            r.pid
        )),
        Err(NginxError::AlreadyRunning { pid }) => {
            Ok(format!("The private nginx is already running (PID {pid})."))
        }
        Err(e) => Err(nginx_failure("nginx did not start", e)),
    }
}

/// The pool, then nginx in front of it. A pool that started is reported even when
/// nginx could not (nginx may simply not be installed).
fn start_all(site: &Site, nginx_port: Option<u16>) -> JobResult {
    let pool = start_pool(site)?;
    match start_nginx(site, nginx_port) {
        Ok(nginx) => Ok(format!("{pool} {nginx}")),
        Err(e) => Err(JobFailure {
            message: format!("{pool} But: {}", e.message),
            details: e.details,
        }),
    }
}

fn stop_pool(site: &Site) -> JobResult {
    match supervisor::for_site(site)
        .stop(false)
        .map_err(|e| failure(format!("{e:#}")))?
    {
        StopOutcome::Stopped { pid } => Ok(format!("Stopped OMERO.web (PID {pid}).")),
        StopOutcome::Killed { pid } => Ok(format!(
            "OMERO.web (PID {pid}) did not stop within the graceful timeout and was killed."
        )),
        StopOutcome::NotRunning => Ok("OMERO.web was not running.".into()),
        StopOutcome::Orphans { pids } => Ok(format!(
            "OMERO.web's master was gone; ended {} worker(s) it had left.",
            pids.len()
        )),
        StopOutcome::Stale { pid } => Ok(format!(
            "OMERO.web was not running; removed a stale pid file (PID {}).",
            pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        )),
    }
}

fn stop_all(site: &Site) -> JobResult {
    let pool = stop_pool(site)?;
    match instance::stop(site) {
        Ok(Some(_)) => Ok(format!("{pool} Stopped the private nginx.")),
        Ok(None) => Ok(pool),
        Err(e) => Err(nginx_failure(&format!("{pool} But nginx did not stop"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panel_refuses_extra_config_lines_nginx_would_open_files_for() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::new(dir.path());
        let key = "omero.web.nginx_server_extra_config".to_string();
        let event = save_config(
            &site,
            Config::load(&site).unwrap(),
            key.clone(),
            Some(r#"["access_log /etc/cron.d/x;"]"#.into()),
        );
        let Event::ConfigSaveFailed { error, .. } = event else {
            panic!("saved an access_log line");
        };
        assert!(error.contains("open or create files"), "{error}");
        assert!(!site.config_file().exists(), "nothing written");
        let event = save_config(
            &site,
            Config::load(&site).unwrap(),
            key,
            Some(r#"["add_header X-A 1;"]"#.into()),
        );
        assert!(matches!(event, Event::ConfigSaved { .. }));
    }
}
