//! `omero-webctl systemd`: print the site's units, or write them into a directory
//! (atomically) and create the directories they let the services write.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::SystemdArgs;
use crate::fsutil::write_atomic;
use crate::privilege::{self, Stance};
use crate::site::Site;
use crate::systemd::{self, SiteUnits, Unit, UnitOptions};

/// `site` is `None` for `--template`, which names no site.
pub fn run(site: Option<&Site>, args: &SystemdArgs) -> anyhow::Result<ExitCode> {
    let exe = program(args)?;
    let (units, needs) = match site {
        None => (vec![systemd::template_unit(&args.name, &exe)?], None),
        Some(site) => {
            let SiteUnits {
                units,
                user,
                writable,
            } = systemd::site_units(site, &unit_options(args, exe))?;
            (units, Some((user, writable)))
        }
    };
    let Some(dir) = &args.output else {
        print_units(&units)?;
        return Ok(ExitCode::SUCCESS);
    };
    write_units(dir, &units)?;
    if let Some((user, writable)) = &needs {
        prepare_writable(user, writable)?;
    }
    print_next_step(site.is_some(), args, &units);
    Ok(ExitCode::SUCCESS)
}

/// The site's units, as the privilege rule wants them made: as root on a site another
/// user owns (`Stance::Split`, only with `--output`), the site is read and its
/// directories created by a child dropped to that user, and root writes only the unit
/// files into the directory its own command line named. Directories outside the site
/// are never created or handed over: they must already exist, belong to root or the
/// site's owner, and hold no symlink; otherwise one line says so and nothing is written.
pub fn run_for_site(site: &Site, stance: &Stance, args: &SystemdArgs) -> anyhow::Result<ExitCode> {
    let (Stance::Split(owner), Some(dir)) = (stance, &args.output) else {
        return run(Some(site), args);
    };
    let options = unit_options(args, program(args)?);
    let answer = privilege::as_owner(owner, || {
        let units = systemd::site_units(site, &options)?;
        // Inside the site the owner creates what the units may write (as they would).
        for path in units.writable.iter().filter(|p| p.starts_with(site.root())) {
            std::fs::create_dir_all(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        }
        Ok(serde_json::to_vec(&units)?)
    })?;
    // What the child sends is data from a process the owner could have steered.
    let units: SiteUnits = serde_json::from_slice(&answer)
        .map_err(|e| anyhow::anyhow!("the units rendered as {} are unreadable: {e}", owner.name))?;
    let expected = [
        format!("{}.service", args.name),
        format!("{}-nginx.service", args.name),
    ];
    if units.units.len() != 2
        || units
            .units
            .iter()
            .zip(&expected)
            .any(|(u, e)| &u.file_name != e)
    {
        anyhow::bail!("the units rendered as {} are not {expected:?}", owner.name);
    }
    for path in units
        .writable
        .iter()
        .filter(|p| !p.starts_with(site.root()))
    {
        check_outside_dir(path, owner)?;
    }
    write_units(dir, &units.units)?;
    print_next_step(true, args, &units.units);
    Ok(ExitCode::SUCCESS)
}

/// A writable directory outside the site, as root checks it before writing units
/// that name it: it exists, it and every directory above it are real directories (no
/// symlink), and it belongs to root or the site's owner.
fn check_outside_dir(path: &Path, owner: &privilege::Owner) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |why: String| {
        anyhow::anyhow!(
            "{} is outside the site and {why}; as root, omero-webctl creates or hands over nothing outside the site: nothing written",
            path.display()
        )
    };
    if !path.is_absolute() {
        return Err(refuse("is not absolute".into()));
    }
    for at in path.ancestors() {
        match std::fs::symlink_metadata(at) {
            Err(_) if at == path => {
                return Err(refuse(format!(
                    "does not exist (create it for {})",
                    owner.name
                )));
            }
            Err(e) => return Err(refuse(format!("cannot be checked: {}: {e}", at.display()))),
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(refuse(format!("goes through the symlink {}", at.display())));
            }
            Ok(meta) if !meta.is_dir() => return Err(refuse("is not a directory".into())),
            Ok(meta) if at == path && meta.uid() != 0 && meta.uid() != owner.uid => {
                return Err(refuse(format!(
                    "belongs to uid {}, neither root nor {}",
                    meta.uid(),
                    owner.name
                )));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

fn program(args: &SystemdArgs) -> anyhow::Result<PathBuf> {
    match &args.exe {
        Some(path) => Ok(path.clone()),
        None => std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find this program's path: {e}")),
    }
}

fn unit_options(args: &SystemdArgs, exe: PathBuf) -> UnitOptions {
    UnitOptions {
        name: args.name.clone(),
        user: args.user.clone(),
        exe,
    }
}

fn write_units(dir: &Path, units: &[Unit]) -> anyhow::Result<()> {
    for unit in units {
        let path = dir.join(&unit.file_name);
        write_atomic(&path, unit.text.as_bytes(), Some(0o644))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn print_next_step(for_site: bool, args: &SystemdArgs, units: &[Unit]) {
    if for_site {
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
