//! What `history` lists, under `var/generations/`: `history.jsonl`, one change per
//! line (when, who, what, the generations, the outcome), written by both kinds of site
//! (every switch of generations, and an OMERO.web start). For an OMERO.web site,
//! `rollback` returns to a kept config: the files the last two generations ran with
//! (`current.config`, `previous.config`; 0600, they hold the secret key). The embedded
//! pool keeps binaries instead (`pool::binaries`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::site::Site;

/// One change of the running site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// RFC 3339, local time.
    pub at: String,
    /// The uid that ran the command.
    pub uid: u32,
    /// `start`, `reload`, `restart`, `rollback`, `upgrade`, `app add NAME`, `app remove NAME`.
    pub action: String,
    /// The saved changes it applied (`key old → new`), secrets masked.
    pub applied: Vec<String>,
    pub from_master: Option<u32>,
    /// The master serving once the change is over (the one before it, when the
    /// change was refused or rolled back by itself).
    pub to_master: Option<u32>,
    /// Every generation the change started or ran beside (a rolled-back one too),
    /// with the last role it had.
    #[serde(default)]
    pub generations: Vec<crate::supervisor::progress::GenerationSeen>,
    /// `ok`, or why it failed.
    pub outcome: String,
    /// Whether `rollback` can return to what ran before it.
    pub rollback_available: bool,
}

fn dir(site: &Site) -> PathBuf {
    site.var_dir().join("generations")
}

pub fn current_config(site: &Site) -> PathBuf {
    dir(site).join("current.config")
}

pub fn previous_config(site: &Site) -> PathBuf {
    dir(site).join("previous.config")
}

/// Keeps the config a generation now runs with; the one before becomes `previous`.
pub fn keep_config(site: &Site) -> std::io::Result<()> {
    let bytes = std::fs::read(site.config_file())?;
    std::fs::create_dir_all(dir(site))?;
    if let Ok(old) = std::fs::read(current_config(site)) {
        crate::fsutil::write_atomic(&previous_config(site), &old, Some(0o600))?;
    }
    crate::fsutil::write_atomic(&current_config(site), &bytes, Some(0o600))
}

/// "master 12 on :4080 (venv), ...": the generations of a change in one line.
pub fn generations_line(change: &Change) -> Option<String> {
    (!change.generations.is_empty()).then(|| {
        change
            .generations
            .iter()
            .map(|g| format!("{} {} on :{} ({})", g.role, g.master, g.port, g.runs))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Appends one change; losing a line of history never fails the change itself.
pub fn record(site: &Site, change: &Change) {
    use std::io::Write;
    let _ = std::fs::create_dir_all(dir(site));
    let Ok(line) = serde_json::to_string(change) else {
        return;
    };
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir(site).join("history.jsonl"))
    {
        let _ = writeln!(file, "{line}");
    }
}

/// Every recorded change, oldest first (unreadable lines are skipped).
pub fn read(site: &Site) -> Vec<Change> {
    std::fs::read_to_string(dir(site).join("history.jsonl"))
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A change made now by this process.
pub fn change(action: &str, applied: Vec<String>) -> Change {
    Change {
        at: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        uid: nix::unistd::getuid().as_raw(),
        action: action.to_string(),
        applied,
        from_master: None,
        to_master: None,
        generations: Vec::new(),
        outcome: String::new(),
        rollback_available: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::SiteKind;

    #[test]
    fn configs_are_kept_for_one_step_back_and_changes_are_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        std::fs::create_dir_all(site.config_file().parent().unwrap()).unwrap();
        std::fs::write(site.config_file(), "first").unwrap();
        keep_config(&site).unwrap();
        assert!(!previous_config(&site).exists());
        std::fs::write(site.config_file(), "second").unwrap();
        keep_config(&site).unwrap();
        assert_eq!(
            std::fs::read_to_string(previous_config(&site)).unwrap(),
            "first"
        );
        assert_eq!(
            std::fs::read_to_string(current_config(&site)).unwrap(),
            "second"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(previous_config(&site))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "it holds the secret key");

        assert!(read(&site).is_empty());
        let mut one = change("reload", vec!["omero.web.wsgi_timeout 60 → 90".into()]);
        one.outcome = "ok".into();
        record(&site, &one);
        record(&site, &change("rollback", vec![]));
        let listed = read(&site);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0], one);
        assert_eq!(listed[1].action, "rollback");
    }
}
