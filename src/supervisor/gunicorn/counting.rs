//! What a start remembers (`var/.omero-webctl-gunicorn.json`: the master it started,
//! where its logs were when it did, the properties it applied) and the counting of
//! requests and worker deaths from the logs since then. A master omero-webctl did not
//! start is adopted: counted from when it was first seen, in memory only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::logs::{self, LogCounters, LogStart};
use super::{Gunicorn, argv, process};
use crate::config::Settings;

/// What `start` remembers so later calls (other processes too) count from the start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct StartRecord {
    pub(super) master_pid: Option<u32>,
    pub(super) access_log: Option<PathBuf>,
    pub(super) access_offset: u64,
    /// Inode of the access log then, to find it again after a rotation.
    #[serde(default)]
    pub(super) access_inode: Option<u64>,
    pub(super) error_log: Option<PathBuf>,
    pub(super) error_offset: u64,
    #[serde(default)]
    pub(super) error_inode: Option<u64>,
    /// Set when the master was not started by omero-webctl: counts begin here.
    #[serde(default)]
    pub(super) counting_since: Option<String>,
    /// The properties as the running master applied them (see
    /// `Config::applied_values`); empty for a master omero-webctl did not start.
    #[serde(default)]
    pub(super) applied: BTreeMap<String, String>,
}

/// The counting of one master: what it was started (or first seen) with, and the
/// counters reading its logs from there.
pub(super) struct Counting {
    pid: u32,
    record: StartRecord,
    counters: LogCounters,
}

impl Gunicorn {
    pub(super) fn record(&self) -> StartRecord {
        std::fs::read(self.site.gunicorn_state_file())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub(super) fn write_record(&self, record: &StartRecord) {
        let bytes = serde_json::to_vec_pretty(record).expect("the record serialises");
        // Losing it only costs the counts' starting point; never fail a start for it.
        // Never through a symlink: root may write it into a directory another user owns.
        let _ = crate::fsutil::replace_atomic(&self.site.gunicorn_state_file(), &bytes);
    }

    /// The record of a start about to launch: counting begins at the logs' ends now.
    pub(super) fn start_record(&self, settings: &Settings) -> StartRecord {
        let logs = argv::logs(settings);
        StartRecord {
            master_pid: None,
            access_offset: file_len(logs.access.as_deref()),
            access_inode: logs.access.as_deref().and_then(logs::inode_of),
            error_offset: file_len(logs.error.as_deref()),
            error_inode: logs.error.as_deref().and_then(logs::inode_of),
            access_log: logs.access.clone(),
            error_log: logs.error.clone(),
            counting_since: None,
            applied: BTreeMap::new(),
        }
    }

    /// Counts from the logs of master `pid`, read since its start.
    pub(super) fn figures<T>(
        &self,
        pid: u32,
        read: impl FnOnce(&logs::LogFigures, &StartRecord) -> T,
    ) -> T {
        let mut guard = self.counters.lock().expect("counters");
        // A master first met before the record of our start named it (a generation
        // switch writes it once the new master answers) was adopted as not ours: once
        // the record names it, it is ours, counted from our start.
        let named_since = |c: &Counting| {
            c.record.counting_since.is_some() && self.record().master_pid == Some(pid)
        };
        if guard
            .as_ref()
            .is_none_or(|c| c.pid != pid || named_since(c))
        {
            let record = self.adopt(pid);
            let counters = LogCounters::open_for(
                Some(pid),
                record.access_log.clone().map(|path| LogStart {
                    path,
                    offset: record.access_offset,
                    inode: record.access_inode,
                }),
                record.error_log.clone().map(|path| LogStart {
                    path,
                    offset: record.error_offset,
                    inode: record.error_inode,
                }),
            );
            *guard = Some(Counting {
                pid,
                record,
                counters,
            });
        }
        let counting = guard.as_mut().expect("just set");
        counting.counters.update();
        read(&counting.counters.figures, &counting.record)
    }

    /// The start record that counts apply to for master `pid`: ours (also while our
    /// start is still waiting for it), or, for a master omero-webctl did not start, a
    /// new one that counts from now on, remembered for later calls.
    pub(super) fn adopt(&self, pid: u32) -> StartRecord {
        let record = self.record();
        match record.master_pid {
            Some(of) if of == pid => return record,
            None if record.access_log.is_some() || record.error_log.is_some() => return record,
            _ => {}
        }
        // Its own command line says where its logs go (`omero web start` gives none).
        let args = process::cmdline(pid);
        let access_log = flag_value(&args, "--access-logfile").map(|p| self.site.root().join(p));
        let error_log = flag_value(&args, "--error-logfile")
            .or_else(|| flag_value(&args, "--log-file"))
            .map(|p| self.site.root().join(p));
        let adopted = StartRecord {
            master_pid: Some(pid),
            access_offset: file_len(access_log.as_deref()),
            access_inode: access_log.as_deref().and_then(logs::inode_of),
            error_offset: file_len(error_log.as_deref()),
            error_inode: error_log.as_deref().and_then(logs::inode_of),
            access_log,
            error_log,
            counting_since: Some(chrono::Local::now().format("%Y-%m-%d %H:%M").to_string()),
            applied: BTreeMap::new(),
        };
        // Kept in memory only: read-only commands (status, the panel) write nothing.
        adopted
    }
}

pub(super) fn file_len(path: Option<&std::path::Path>) -> u64 {
    path.and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len())
}

/// The value of `--flag VALUE` or `--flag=VALUE` (the last one) in a command line;
/// `-` (stdio) counts as none.
pub(super) fn flag_value(args: &[String], flag: &str) -> Option<PathBuf> {
    let mut found = None;
    for (i, arg) in args.iter().enumerate() {
        if arg == flag {
            found = args.get(i + 1).cloned();
        } else if let Some(value) = arg.strip_prefix(flag).and_then(|v| v.strip_prefix('=')) {
            found = Some(value.to_string());
        }
    }
    found.filter(|v| v != "-").map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::{Site, SiteKind};

    #[test]
    fn counts_start_where_our_start_began_even_before_it_finished() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        std::fs::create_dir_all(site.var_dir()).unwrap();
        let g = Gunicorn::new(site.clone());
        let access = dir.path().join("access.log");
        std::fs::write(&access, "x".repeat(500)).unwrap();
        // A start of ours is waiting for its master: its offsets apply, not 0.
        g.write_record(&StartRecord {
            access_log: Some(access.clone()),
            access_offset: 300,
            ..Default::default()
        });
        let record = g.adopt(std::process::id());
        assert_eq!(record.access_offset, 300);
        assert_eq!(record.counting_since, None);
        // Another master (not ours): counted from now on, and said so.
        g.write_record(&StartRecord {
            master_pid: Some(1),
            access_log: Some(access.clone()),
            access_offset: 300,
            ..Default::default()
        });
        let record = g.adopt(std::process::id());
        assert_eq!(record.master_pid, Some(std::process::id()));
        assert!(record.counting_since.is_some());
        // This process's command line names no access log: nothing to count from.
        assert_eq!(record.access_log, None);
        assert_eq!(
            g.record().master_pid,
            Some(1),
            "read-only commands write nothing into the site"
        );
    }

    #[test]
    fn a_master_adopted_before_our_record_named_it_is_ours_once_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        std::fs::create_dir_all(site.var_dir()).unwrap();
        let g = Gunicorn::new(site.clone());
        let me = std::process::id();
        // The record still names the previous generation's master: this one is met as
        // not ours (a long-running reader, the panel, keeps what it met).
        g.write_record(&StartRecord {
            master_pid: Some(1),
            ..Default::default()
        });
        assert!(g.figures(me, |_, r| r.counting_since.is_some()));
        // The switch names it: from then on it is ours, in the same reader.
        g.write_record(&StartRecord {
            master_pid: Some(me),
            ..Default::default()
        });
        assert_eq!(g.figures(me, |_, r| r.counting_since.clone()), None);
        assert_eq!(g.figures(me, |_, r| r.master_pid), Some(me));
    }

    #[test]
    fn log_flags_are_read_from_a_command_line() {
        let args: Vec<String> = [
            "gunicorn",
            "--access-logfile",
            "/a.log",
            "--error-logfile=/e.log",
            "--access-logfile=/b.log",
            "--log-file",
            "-",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            flag_value(&args, "--access-logfile"),
            Some(PathBuf::from("/b.log"))
        );
        assert_eq!(
            flag_value(&args, "--error-logfile"),
            Some(PathBuf::from("/e.log"))
        );
        assert_eq!(flag_value(&args, "--log-file"), None, "stdio is no file");
        assert_eq!(flag_value(&args, "--statsd-host"), None);
    }
}
