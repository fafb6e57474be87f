//! `omero-webctl systemd`: print the site's units, or write them into a directory
//! (atomically) and create the directories they let the services write.

use std::io::Write;
use std::process::ExitCode;

use super::SystemdArgs;
use crate::fsutil::write_atomic;
use crate::site::Site;
use crate::systemd::{self, SiteUnits, Unit, UnitOptions};

/// `site` is `None` for `--template`, which names no site.
pub fn run(site: Option<&Site>, args: &SystemdArgs) -> anyhow::Result<ExitCode> {
    let exe = match &args.exe {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find this program's path: {e}"))?,
    };
    let (units, needs) = match site {
        None => (vec![systemd::template_unit(&args.name, &exe)?], None),
        Some(site) => {
            let SiteUnits {
                units,
                user,
                writable,
            } = systemd::site_units(
                site,
                &UnitOptions {
                    name: args.name.clone(),
                    user: args.user.clone(),
                    exe,
                },
            )?;
            (units, Some((user, writable)))
        }
    };
    match &args.output {
        None => print_units(&units)?,
        Some(dir) => {
            for unit in &units {
                let path = dir.join(&unit.file_name);
                write_atomic(&path, unit.text.as_bytes(), Some(0o644))
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                println!("wrote {}", path.display());
            }
            if let Some((user, writable)) = &needs {
                prepare_writable(user, writable)?;
            }
            if site.is_some() {
                let names: Vec<&str> = units.iter().map(|u| u.file_name.as_str()).collect();
                println!(
                    "Then: systemctl daemon-reload && systemctl enable --now {}",
                    names.join(" ")
                );
            } else {
                println!(
                    "Then: systemctl daemon-reload && systemctl enable --now {}@$(systemd-escape --path SITE_DIR).service",
                    args.name
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_units(units: &[Unit]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for (i, unit) in units.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        out.write_all(unit.text.as_bytes())?;
    }
    Ok(())
}

/// `ReadWritePaths` refuses to start a service whose paths are missing: create them,
/// owned by the service's user when we are root (they would be root's otherwise).
fn prepare_writable(user: &str, writable: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let owner = nix::unistd::User::from_name(user).ok().flatten();
    for dir in writable {
        if dir.is_dir() {
            continue;
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        if let Some(owner) = &owner
            && nix::unistd::geteuid().is_root()
        {
            nix::unistd::chown(dir, Some(owner.uid), Some(owner.gid)).map_err(|e| {
                anyhow::anyhow!("cannot give {} to {}: {e}", dir.display(), owner.name)
            })?;
        }
        println!("created {}", dir.display());
    }
    Ok(())
}
