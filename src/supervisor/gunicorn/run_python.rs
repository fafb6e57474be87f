//! Running the site's Python as OMERO does: in the package directory, with OMERO's
//! environment, and, as root, as the site's owner (OMERO's own rule: `omero` refuses
//! root). `manage.py` commands of a start, the checks, sessions and generations all
//! go through here.

use std::os::unix::process::CommandExt;
use std::time::Duration;

use super::python::{self, PythonEnv};
use super::{Gunicorn, RunAs, TAIL_LINES, argv, process};
use crate::config::Settings;

impl Gunicorn {
    /// A command of the site's Python as OMERO runs them: in the package directory,
    /// with OMERO's environment, as the user `run_as` names.
    pub(super) fn python_command(
        &self,
        settings: &Settings,
        python: &PythonEnv,
        run_as: Option<&RunAs>,
        argv: &[std::ffi::OsString],
    ) -> std::process::Command {
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).current_dir(argv::working_dir(python));
        if let Some(user) = run_as {
            // Nothing of root's environment crosses over (tokens, TMPDIR,
            // GUNICORN_CMD_ARGS, ...): only what a login of that user would have.
            // OMERO's own variables (OMERO_CONFIG picks the profile) do cross.
            cmd.env_clear();
            for (key, value) in std::env::vars_os() {
                let name = key.to_string_lossy();
                if ["PATH", "LANG", "LC_ALL", "TZ"].contains(&name.as_ref())
                    || name.starts_with("OMERO_")
                {
                    cmd.env(&key, value);
                }
            }
            cmd.env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
            let (uid, gid) = (user.uid, user.gid);
            // Built here, before the fork: allocating between fork and exec is not
            // async-signal-safe (another thread may hold the allocator's lock).
            let groups: Vec<nix::unistd::Gid> = user
                .groups
                .iter()
                .map(|g| nix::unistd::Gid::from_raw(*g))
                .collect();
            // SAFETY: the closure runs between fork and exec, and makes only
            // async-signal-safe system calls (setgroups, setgid, setuid) on data made
            // before the fork; it allocates nothing (an errno becomes an io::Error
            // without allocating).
            unsafe {
                cmd.pre_exec(move || {
                    nix::unistd::setgroups(&groups).map_err(std::io::Error::from)?;
                    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))
                        .map_err(std::io::Error::from)?;
                    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))
                        .map_err(std::io::Error::from)?;
                    Ok(())
                });
            }
        }
        cmd.envs(argv::environment(&self.site, settings, python));
        cmd
    }

    /// Who runs the site's Python. As root, OMERO's rule holds (`omero` refuses to run
    /// as root): Python runs as the owner of the site's config.xml. A site root owns
    /// may not run an interpreter that another user owns (its code would run as root).
    pub(super) fn run_as(&self, python: &PythonEnv) -> Result<Option<RunAs>, String> {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let owner = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.uid(), m.gid()));
        // The privilege rule drops a root command to the site's owner at dispatch, so
        // this is root's own site, unless the config.xml it follows belongs to a user.
        if let Some((uid, gid)) = owner(&self.site.config_file()).filter(|(uid, _)| *uid != 0) {
            return Ok(Some(RunAs::of_uid(uid, gid)));
        }
        if let Some(site_owner) = crate::privilege::site_owner(&self.site) {
            return Ok(Some(site_owner));
        }
        let venv = python::venv_root(&python.python).unwrap_or_else(|| python.python.clone());
        match owner(&venv) {
            Some((other, _)) if other != 0 => Err(format!(
                "{} belongs to uid {other} but this site belongs to root: omero-webctl does not run another user's Python as root (chown the site to that user, or run omero-webctl as that user)",
                venv.display()
            )),
            _ => Ok(None),
        }
    }

    /// Creates `dir` (and missing parents); what it creates belongs to `run_as`.
    pub(super) fn create_dir(
        &self,
        dir: &std::path::Path,
        run_as: Option<&RunAs>,
    ) -> std::io::Result<()> {
        let Some(user) = run_as else {
            if !dir.is_dir() {
                crate::privilege::refuse_outside_site(self.site.root(), dir)?;
            }
            return std::fs::create_dir_all(dir);
        };
        if dir.is_dir() {
            return Ok(());
        }
        // As root for another user: only inside the site, and never handing over
        // something a link points at (lchown changes the link, not its target).
        if !dir.starts_with(self.site.root()) {
            return Err(std::io::Error::other(format!(
                "{} does not exist; as root, omero-webctl creates directories only inside the site (create it for {})",
                dir.display(),
                user.name
            )));
        }
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(d) = at.filter(|d| std::fs::symlink_metadata(d).is_err()) {
            missing.push(d.to_path_buf());
            at = d.parent();
        }
        for d in missing.iter().rev() {
            std::fs::create_dir(d)?;
            std::os::unix::fs::lchown(d, Some(user.uid), Some(user.gid))?;
        }
        Ok(())
    }

    /// Runs `python manage.py COMMAND` as OMERO does (in the package directory).
    pub(super) fn manage(
        &self,
        settings: &Settings,
        python: &PythonEnv,
        run_as: Option<&RunAs>,
        args: &[&str],
        timeout: Duration,
    ) -> Result<(), (String, Vec<String>)> {
        let mut argv: Vec<std::ffi::OsString> =
            vec![python.python.clone().into(), "manage.py".into()];
        argv.extend(args.iter().map(std::ffi::OsString::from));
        let mut cmd = self.python_command(settings, python, run_as, &argv);
        let what = format!("manage.py {}", args.join(" "));
        match process::output_with_deadline(&mut cmd, timeout) {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err((
                format!("{what} failed ({})", out.status),
                last_lines(&out.stderr, TAIL_LINES),
            )),
            Err(e) => Err((format!("{what}: {e}"), Vec::new())),
        }
    }
}

pub(super) fn last_lines(bytes: &[u8], n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}
