//! The front: OMERO's nginx config with an upstream of the members, run as the control
//! site's private nginx (or written as an include for the system nginx). A drained
//! member stays in the upstream marked `down`, so undraining is one reload too.

use std::path::PathBuf;

use super::Fleet;
use crate::config::Config;
use crate::nginx::{self, NginxKind, RenderOptions};

/// How often a member may fail before nginx stops sending it requests, and for how
/// long (passive health checks: open-source nginx has no active ones).
const MAX_FAILS: u32 = 1;
const FAIL_TIMEOUT_SECS: u32 = 5;

impl Fleet {
    fn drained_file(&self) -> PathBuf {
        self.state_dir().join("drained")
    }

    /// The members taken out of the front, by name.
    pub fn drained(&self) -> Vec<String> {
        std::fs::read_to_string(self.drained_file())
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|name| self.file.member(name).is_some())
            .map(str::to_string)
            .collect()
    }

    fn save_drained(&self, names: &[String]) -> anyhow::Result<()> {
        let path = self.drained_file();
        let mut text = names.join("\n");
        text.push('\n');
        crate::fsutil::write_atomic(&path, text.as_bytes(), None)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
    }

    /// The upstream's `server` lines: every member, `down` if drained.
    pub fn upstream_servers(&self, drained: &[String]) -> Vec<String> {
        self.file
            .members
            .iter()
            .map(|m| {
                let mut line = format!(
                    "{} weight={} max_fails={MAX_FAILS} fail_timeout={FAIL_TIMEOUT_SECS}s",
                    m.upstream, m.weight
                );
                if drained.contains(&m.name) {
                    line.push_str(" down");
                }
                line
            })
            .collect()
    }

    /// The front's config: `nginx` (an include for the system nginx) or
    /// `nginx-development` (what the private front runs).
    pub fn render_front(&self, kind: NginxKind, http_port: Option<u16>) -> anyhow::Result<String> {
        let settings = Config::load(&self.control)?.settings();
        let options = RenderOptions {
            http_port: Some(http_port.unwrap_or(self.file.front_port)),
            worker_user: match kind {
                NginxKind::NginxDevelopment => nginx::instance::worker_user(&self.control),
                _ => None,
            },
            upstream_servers: self.upstream_servers(&self.drained()),
            ..RenderOptions::default()
        };
        Ok(nginx::render(&settings, kind, &options)?)
    }

    /// Starts the front (the control site's private nginx) on the fleet's port.
    pub fn start_front(&self) -> anyhow::Result<nginx::Running> {
        let settings = Config::load(&self.control)?.settings();
        let servers = self.upstream_servers(&self.drained());
        Ok(nginx::instance::start_front(
            &self.control,
            &settings,
            Some(self.file.front_port),
            &servers,
        )?)
    }

    /// Regenerates the front's config and reloads it gracefully, if it runs; `false`
    /// when no front runs here (an include for the system nginx is the sysadmin's to
    /// reload).
    pub fn reload_front(&self) -> anyhow::Result<bool> {
        if !matches!(
            nginx::instance::status(&self.control)?,
            nginx::Status::Running(_)
        ) {
            return Ok(false);
        }
        let settings = Config::load(&self.control)?.settings();
        let servers = self.upstream_servers(&self.drained());
        nginx::instance::reload_front(&self.control, &settings, &servers)?;
        Ok(true)
    }

    pub fn stop_front(&self) -> anyhow::Result<Option<i32>> {
        Ok(nginx::instance::stop(&self.control)?)
    }

    /// Marks `name` drained (or not) and reloads the front. Returns whether it changed.
    pub fn set_drained(&self, name: &str, drained: bool) -> anyhow::Result<bool> {
        self.file.require(name)?;
        let mut names = self.drained();
        let was = names.iter().any(|n| n == name);
        if was == drained {
            return Ok(false);
        }
        if drained {
            if names.len() + 1 >= self.file.members.len() {
                anyhow::bail!(
                    "draining {name} would leave no member in the front ({} drained already)",
                    names.len()
                );
            }
            names.push(name.to_string());
        } else {
            names.retain(|n| n != name);
        }
        let before = self.drained();
        self.save_drained(&names)?;
        if let Err(e) = self.reload_front() {
            // The front still runs the old set: say so, and keep the file in step.
            self.save_drained(&before)?;
            return Err(e.context(format!("the front kept {name} as it was")));
        }
        Ok(true)
    }
}
