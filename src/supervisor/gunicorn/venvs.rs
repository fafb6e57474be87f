//! Where new venv generations come from. They live under the site, in
//! `var/venvs/`: a release built for `upgrade --omero-web VERSION` is
//! `var/venvs/omero-web-VERSION`; a venv made for `app add|remove` is
//! `var/venvs/apps-TIMESTAMP`. None is ever removed by omero-webctl (the previous
//! generation's venv is what `rollback` returns to), and none is ever pip-installed
//! into once a generation runs from it.
//!
//! A release is built by `scripts/omeroweb-venv` itself, embedded in the binary (an
//! installed omero-webctl has no checkout beside it): it is written next to the venvs
//! and run with bash, so the one recipe (the patched zeroc-ice wheel, its cache) is
//! not written twice.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::site::Site;

const OMEROWEB_VENV_SCRIPT: &str = include_str!("../../../scripts/omeroweb-venv");

pub fn dir(site: &Site) -> PathBuf {
    site.var_dir().join("venvs")
}

/// The venv `upgrade --omero-web VERSION` builds.
pub fn release_dir(site: &Site, version: &str) -> PathBuf {
    dir(site).join(format!("omero-web-{version}"))
}

/// A release number as PyPI spells them; anything else would end up in a path and
/// in pip's arguments.
pub fn check_version(version: &str) -> Result<(), String> {
    let ok = !version.is_empty()
        && version.len() <= 40
        && version.chars().next().is_some_and(|c| c.is_ascii_digit())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{version:?} is not an omero-web release number (e.g. 5.33.2)"
        ))
    }
}

/// Where `scripts/omeroweb-venv` keeps its wheels (the patched zeroc-ice).
pub fn wheel_cache() -> Option<PathBuf> {
    let cache = std::env::var_os("OMERO_WEBCTL_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(|x| PathBuf::from(x).join("omero-webctl"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/omero-webctl"))
        })?;
    Some(cache.join("wheels"))
}

/// Runs `command`, giving each line it writes to stderr to `progress`; `Err` has
/// the last of them.
fn run_streaming(
    mut command: Command,
    what: &str,
    progress: &dyn Fn(&str),
) -> anyhow::Result<String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {what}: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    // Read stdout on the side so neither pipe can fill up and stall the child.
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut text);
        text
    });
    let mut last = String::new();
    for line in std::io::BufReader::new(child.stderr.take().expect("piped"))
        .lines()
        .map_while(Result::ok)
    {
        if !line.trim().is_empty() {
            progress(&format!("  {line}"));
            last = line;
        }
    }
    let status = child.wait()?;
    let text = out.join().unwrap_or_default();
    if status.success() {
        Ok(text)
    } else {
        anyhow::bail!("{what} failed ({status}): {last}")
    }
}

/// Builds (or finds up to date, by the script's own stamp) the venv of omero-web
/// `version` under `var/venvs/`, with `scripts/omeroweb-venv`.
pub fn build_release(
    site: &Site,
    version: &str,
    progress: &dyn Fn(&str),
) -> anyhow::Result<PathBuf> {
    check_version(version).map_err(|e| anyhow::anyhow!(e))?;
    // pip and a possible zeroc-ice compile must not slow the requests being served.
    let _niced = super::generation::NicedWhileChanging::new();
    let venvs = dir(site);
    std::fs::create_dir_all(&venvs)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", venvs.display()))?;
    let script = venvs.join(".omeroweb-venv.sh");
    crate::fsutil::write_atomic(&script, OMEROWEB_VENV_SCRIPT.as_bytes(), Some(0o600))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", script.display()))?;
    let target = release_dir(site, version);
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .arg(&target)
        .env("OMERO_WEB_VERSION", version);
    // The script refuses a non-empty directory without its stamp (never someone's
    // venv); a build of its own that failed half way must not become one.
    let stamp = target.join(".omero-webctl-stamp");
    let ours = !target.exists() || stamp.is_file();
    if let Err(e) = run_streaming(command, "scripts/omeroweb-venv", progress) {
        if ours && !stamp.is_file() {
            let _ = std::fs::remove_dir_all(&target);
        }
        return Err(e);
    }
    Ok(target)
}

/// The file marking a venv generation prepared ahead of its switch (`app add
/// --prepare`): which change it was built for and from which live venv, so that the
/// change itself takes it instead of building again, and only while it still fits.
const PREPARED_MARK: &str = ".omero-webctl-prepared";

/// Marks `venv` as built for `change` (`add omero-iviewer==0.19.1`) from `from` (the
/// live venv's python then).
pub fn mark_prepared(venv: &Path, change: &str, from: &Path) -> std::io::Result<()> {
    let mark = serde_json::json!({ "change": change, "from": from });
    crate::fsutil::write_atomic(
        &venv.join(PREPARED_MARK),
        mark.to_string().as_bytes(),
        Some(0o644),
    )
}

/// A venv under the site's `var/venvs/` prepared for `change` from `from`, if any (the
/// newest); one prepared from another live venv no longer fits and is not taken.
pub fn find_prepared(site: &Site, change: &str, from: &Path) -> Option<PathBuf> {
    let wanted = serde_json::json!({ "change": change, "from": from });
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir(site))
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|venv| {
            std::fs::read(venv.join(PREPARED_MARK))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .is_some_and(|mark| mark == wanted)
                && venv.join("bin/python").is_file()
        })
        .collect();
    found.sort();
    found.pop()
}

/// The venv is taken by its change: never offered again.
pub fn unmark_prepared(venv: &Path) {
    let _ = std::fs::remove_file(venv.join(PREPARED_MARK));
}

/// A new venv with what `live` (a venv's python) has, as `pip freeze` lists it,
/// minus the distributions in `without` and plus the requirements in `add`
/// (`omero-iviewer`, `omero-figure==7.2.0`). pip gets the wheel cache and `find_links`.
/// A failed build leaves nothing behind.
pub fn clone_with(
    live: &Path,
    target: &Path,
    add: &[String],
    without: &[String],
    find_links: &[PathBuf],
    progress: &dyn Fn(&str),
) -> anyhow::Result<()> {
    let _niced = super::generation::NicedWhileChanging::new();
    let frozen = Command::new(live)
        .args([
            "-m",
            "pip",
            "freeze",
            "--exclude-editable",
            "--disable-pip-version-check",
        ])
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {} -m pip freeze: {e}", live.display()))?;
    if !frozen.status.success() {
        anyhow::bail!(
            "{} -m pip freeze failed: {}",
            live.display(),
            String::from_utf8_lossy(&frozen.stderr).trim()
        );
    }
    let dropped: Vec<String> = without
        .iter()
        .chain(add.iter())
        .map(|r| super::python::normalise(requirement_name(r)))
        .collect();
    let requirements: String = String::from_utf8_lossy(&frozen.stdout)
        .lines()
        .filter(|l| {
            let l = l.trim();
            !l.is_empty()
                && !l.starts_with('#')
                && !dropped.contains(&super::python::normalise(requirement_name(l)))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if target.exists() {
        anyhow::bail!("{} exists already", target.display());
    }
    let built = (|| -> anyhow::Result<()> {
        progress(&format!(
            "new venv generation {} (python -m venv, from {})",
            target.display(),
            live.display()
        ));
        let made = Command::new(live)
            .args(["-m", "venv"])
            .arg(target)
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run {} -m venv: {e}", live.display()))?;
        if !made.status.success() {
            anyhow::bail!(
                "python -m venv {} failed: {}",
                target.display(),
                String::from_utf8_lossy(&made.stderr).trim()
            );
        }
        // What this generation was built from, kept with it.
        let listed = target.join("omero-webctl-requirements.txt");
        std::fs::write(&listed, &requirements)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", listed.display()))?;
        progress(&format!(
            "pip install: the live venv's {} packages{}{}",
            requirements.lines().count(),
            if add.is_empty() { "" } else { " and " },
            add.join(" ")
        ));
        let mut pip = Command::new(target.join("bin/python"));
        pip.args(["-m", "pip", "install", "--disable-pip-version-check", "-q"]);
        for links in wheel_cache().iter().chain(find_links) {
            if links.is_dir() {
                pip.arg("--find-links").arg(links);
            }
        }
        pip.arg("-r").arg(&listed).args(add);
        run_streaming(pip, "pip install", progress)?;
        Ok(())
    })();
    if built.is_err() {
        let _ = std::fs::remove_dir_all(target);
    }
    built
}

/// The distribution name a requirement line starts with (`a-b==1`, `a @ file:…`).
fn requirement_name(line: &str) -> &str {
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_venv_is_taken_only_for_its_change_from_its_live_venv_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), crate::site::SiteKind::OmeroWeb);
        let venv = super::dir(&site).join("apps-20261207-010000");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/python"), "").unwrap();
        let live = Path::new("/srv/venv/bin/python");
        assert_eq!(find_prepared(&site, "add omero-iviewer", live), None);
        mark_prepared(&venv, "add omero-iviewer", live).unwrap();
        assert_eq!(
            find_prepared(&site, "add omero-iviewer", live),
            Some(venv.clone())
        );
        // Another change, or the same from another live venv, does not fit it.
        assert_eq!(find_prepared(&site, "add omero-figure", live), None);
        assert_eq!(find_prepared(&site, "remove omero-iviewer", live), None);
        assert_eq!(
            find_prepared(
                &site,
                "add omero-iviewer",
                Path::new("/srv/other/bin/python")
            ),
            None
        );
        unmark_prepared(&venv);
        assert_eq!(find_prepared(&site, "add omero-iviewer", live), None);
    }

    #[test]
    fn release_numbers_are_checked_before_they_reach_a_path_or_pip() {
        assert!(check_version("5.33.2").is_ok());
        assert!(check_version("5.29.0rc1").is_ok());
        for bad in ["", "../x", "5.33.2 --index-url=http://x", "latest", "5/1"] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requirement_names_are_read_from_freeze_lines() {
        assert_eq!(requirement_name("omero-web==5.33.2"), "omero-web");
        assert_eq!(
            requirement_name("zeroc-ice @ file:///root/.cache/x.whl"),
            "zeroc-ice"
        );
        assert_eq!(requirement_name("omero_iviewer"), "omero_iviewer");
    }
}
