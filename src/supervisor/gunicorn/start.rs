//! `start`: what `omero web start` does (collectstatic, clearsessions, Gunicorn with
//! OMERO's argv and environment, under the start lock), then waiting until the workers
//! answer HTTP before saying `[OK]`; a start that fails leaves no process behind.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::master::Master;
use super::wait_gone;
use super::{Gunicorn, GunicornLogs, argv, logs, process, python};
use crate::config::{AppServer, Config, Settings};
use crate::supervisor::StartOutcome;
use crate::supervisor::history;

impl Gunicorn {
    pub(super) fn start_gunicorn(&self) -> StartOutcome {
        let failed =
            |reason: String, log_tail: Vec<String>| StartOutcome::Failed { reason, log_tail };

        let settings = match self.settings() {
            Ok(s) => s,
            Err(e) => return failed(e, vec![]),
        };
        if settings.application_server != AppServer::WsgiTcp {
            return failed(
                format!(
                    "omero.web.application_server = {}: omero-webctl runs OMERO.web only as wsgi-tcp (Gunicorn)",
                    settings.application_server.as_str()
                ),
                vec![],
            );
        }
        let python = match python::inspect(settings.python.as_deref()) {
            Ok(p) => p,
            Err(e) => return failed(e.to_string(), vec![]),
        };
        let run_as = match self.run_as(&python) {
            Ok(user) => user,
            Err(reason) => return failed(reason, vec![]),
        };
        if let Err(e) = self.create_dir(&self.site.var_dir(), run_as.as_ref()) {
            return failed(
                format!("cannot create {}: {e}", self.site.var_dir().display()),
                vec![],
            );
        }
        // A second start waits here, then finds the first one's master running.
        let _starting = match self.start_lock() {
            Ok(lock) => lock,
            Err(e) => {
                return failed(
                    format!(
                        "cannot take the start lock in {}: {e}",
                        self.site.var_dir().display()
                    ),
                    vec![],
                );
            }
        };
        let stale_pid = match self.master() {
            Master::Running(pid) => return StartOutcome::AlreadyRunning { pid },
            Master::Stale(pid) => {
                let _ = std::fs::remove_file(self.site.django_pid_file());
                Some(pid.unwrap_or(0))
            }
            Master::NotRunning => None,
        };
        // Workers of a master killed with -9 still hold the port for a while. (This
        // start holds the lock, so what it finds is not another start's Gunicorn.)
        self.end(self.orphans_now());
        if let Err(reason) = check_port(&settings) {
            return failed(reason, vec![]);
        }
        for dir in [self.site.var_dir().join("lib"), settings.log_dir.clone()] {
            if let Err(e) = self.create_dir(&dir, run_as.as_ref()) {
                return failed(format!("cannot create {}: {e}", dir.display()), vec![]);
            }
        }
        let boot = Duration::from_secs(settings.boot_timeout.max(30) + 60);
        for args in [&["collectstatic", "--noinput"][..], &["clearsessions"][..]] {
            if let Err((reason, tail)) =
                self.manage(&settings, &python, run_as.as_ref(), args, boot)
            {
                return failed(reason, tail);
            }
        }

        let logs = argv::logs(&settings);
        let mut record = self.start_record(&settings);
        self.write_record(&record);

        let args = argv::gunicorn_args(&self.site, &settings);
        if let Err((reason, tail)) = self.launch(&settings, &python, run_as.as_ref(), args, 0) {
            return failed(reason, tail);
        }

        match self.wait_until_serving(&settings, &logs, boot) {
            Ok(pid) => {
                record.master_pid = Some(pid);
                record.applied = Config::load(&self.site)
                    .map(|c| c.applied_values())
                    .unwrap_or_default();
                // A log that did not exist before the start exists now: remember which
                // file counting began in, so a later rotation is recognised.
                record.access_inode = record
                    .access_inode
                    .or_else(|| record.access_log.as_deref().and_then(logs::inode_of));
                record.error_inode = record
                    .error_inode
                    .or_else(|| record.error_log.as_deref().and_then(logs::inode_of));
                self.write_record(&record);
                // What this generation runs with: the base a later rollback returns to.
                let mut change = history::change("start", Vec::new());
                change.to_master = Some(pid);
                change.outcome = match history::keep_config(&self.site) {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("ok, but its config could not be kept for rollback: {e}"),
                };
                change.rollback_available = history::previous_config(&self.site).is_file();
                history::record(&self.site, &change);
                let v = |k: &str| {
                    python
                        .versions
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| "?".into())
                };
                StartOutcome::Started {
                    pid,
                    detail: format!(
                        "{} {} workers on {} (OMERO.web {}, Gunicorn {})",
                        settings.workers,
                        settings.effective_worker_class().as_str(),
                        settings.bind(),
                        v("omero-web"),
                        v("gunicorn"),
                    ),
                    stale_pid,
                }
            }
            Err(reason) => {
                let _ = std::fs::remove_file(self.site.gunicorn_state_file());
                // Leave nothing behind that comes up after we said FAILED, even when
                // the pid file never appeared: every process with this site's pid file.
                if let Master::Running(pid) = self.master() {
                    let _ = self.signal(pid, Signal::SIGQUIT);
                    wait_gone(pid, Duration::from_secs(10));
                }
                for pid in process::site_gunicorn_processes(&self.site.django_pid_file()) {
                    let _ = self.signal(pid, Signal::SIGKILL);
                    wait_gone(pid, Duration::from_secs(5));
                }
                failed(reason, self.error_tail(Some(&settings)))
            }
        }
    }

    /// After Gunicorn daemonized: its pid file appears, its workers number the target,
    /// and the site answers HTTP without a server error.
    pub(super) fn wait_until_serving(
        &self,
        settings: &Settings,
        logs: &GunicornLogs,
        limit: Duration,
    ) -> Result<u32, String> {
        let deadline = Instant::now() + limit;
        let mut errors = logs
            .error
            .as_ref()
            .and_then(|p| crate::logging::LogFollower::open(p, crate::logging::Start::End).ok());
        let path = format!(
            "{}/webclient/login/",
            settings.prefix.as_deref().unwrap_or("")
        );
        let mut last_http = String::from("no answer yet");
        loop {
            // Gunicorn logs why it halted ("Reason: Worker failed to boot.") and exits.
            if let Some(follower) = &mut errors
                && let Ok(lines) = follower.poll()
                && let Some(i) = lines
                    .iter()
                    .position(|l| l.contains("Shutting down: Master"))
            {
                let reason = lines[i..]
                    .iter()
                    .find_map(|l| l.split_once("Reason: ").map(|(_, r)| r.to_string()))
                    .unwrap_or_else(|| "the Gunicorn master shut down".into());
                return Err(format!("Gunicorn stopped while booting: {reason}"));
            }
            if let Master::Running(pid) = self.master() {
                let workers = self.worker_pids(pid);
                if workers.len() as u32 >= settings.workers {
                    match http_status(settings, &path) {
                        Ok(code) if code < 500 => return Ok(pid),
                        Ok(code) => last_http = format!("GET {path} answered {code}"),
                        Err(e) => last_http = format!("GET {path}: {e}"),
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "OMERO.web did not serve within {}s ({last_http})",
                    limit.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

/// Refuses a port someone else listens on before Gunicorn spends seconds retrying.
pub(super) fn check_port(settings: &Settings) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = (settings.host.as_str(), settings.port)
        .to_socket_addrs()
        .map_err(|e| {
            format!(
                "cannot resolve omero.web.application_server.host {}: {e}",
                settings.host
            )
        })?
        .collect();
    for addr in addrs {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .map_err(|e| e.to_string())?;
        // As Gunicorn binds: SO_REUSEADDR, so TIME_WAIT leftovers do not count.
        let _ = socket.set_reuse_address(true);
        if let Err(e) = socket.bind(&addr.into()) {
            return Err(if e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "Connection in use: {} ({e}); another program listens there (omero.web.application_server.port moves the site)",
                    settings.bind()
                )
            } else {
                format!(
                    "cannot listen on {} ({e}); check omero.web.application_server.host",
                    settings.bind()
                )
            });
        }
    }
    Ok(())
}

/// The status code of `GET path` on the application server.
pub(super) fn http_status(settings: &Settings, path: &str) -> std::io::Result<u16> {
    let host = &settings.host;
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", settings.port) // an IPv6 literal
    } else {
        format!("{host}:{}", settings.port)
    };
    crate::supervisor::http_status(&address, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::Site;

    #[test]
    fn a_port_in_use_is_refused_by_name() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let site = Site::new(dir.path());
        let settings = Config::from_text(
            &site,
            site.toml_config_file(),
            format!("\"omero.web.application_server.port\" = {port}\n"),
            None,
        )
        .unwrap()
        .settings();
        let err = check_port(&settings).unwrap_err();
        assert!(
            err.starts_with(&format!("Connection in use: 127.0.0.1:{port}")),
            "{err}"
        );
        drop(listener);
        assert_eq!(check_port(&settings), Ok(()));
    }
}
