//! The web host as a sysadmin checks it next to the pool: load, memory, swap, and the
//! free space of the filesystems that hold the site's logs, cache and repository, with
//! a warning before one fills. Read with `sysinfo`, so it works beyond Linux.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Below this share free, a filesystem is about to fill.
const LOW_FREE_SHARE: f64 = 0.10;
/// ... or below this many bytes, whatever its size.
const LOW_FREE_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostFigures {
    /// One-minute load average.
    pub load1: f64,
    pub cpus: usize,
    pub memory_used: u64,
    pub memory_total: u64,
    pub swap_used: u64,
    pub swap_total: u64,
    pub disks: Vec<DiskSpace>,
}

/// The filesystem holding one of the site's directories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskSpace {
    /// What the site keeps there, e.g. "logs".
    pub holds: String,
    pub path: PathBuf,
    pub mount_point: PathBuf,
    pub available: u64,
    pub total: u64,
}

impl DiskSpace {
    pub fn is_low(&self) -> bool {
        self.total > 0
            && (self.available < LOW_FREE_BYTES
                || (self.available as f64) < self.total as f64 * LOW_FREE_SHARE)
    }
}

/// Reads the host now; `dirs` are (what it holds, directory) of the site.
pub fn observe(dirs: &[(&str, PathBuf)]) -> HostFigures {
    use sysinfo::{Disks, MemoryRefreshKind, RefreshKind, System};
    // Each part that cannot be read is reported as zero, never as a failure.
    let system = System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::everything()),
    )
    .ok();
    let mounts: Vec<(PathBuf, u64, u64)> = Disks::new_with_refreshed_list()
        .map(|disks| {
            disks
                .iter()
                .map(|d| {
                    (
                        d.mount_point().to_path_buf(),
                        d.available_space(),
                        d.total_space(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let memory = |read: fn(&System) -> u64| system.as_ref().map_or(0, read);
    HostFigures {
        load1: System::load_average().map_or(0.0, |l| l.one),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_used: memory(System::used_memory),
        memory_total: memory(System::total_memory),
        swap_used: memory(System::used_swap),
        swap_total: memory(System::total_swap),
        disks: dirs
            .iter()
            .filter_map(|(holds, dir)| disk_of(&mounts, holds, dir))
            .collect(),
    }
}

/// The filesystem a directory is on: the longest mount point that contains it (the
/// directory itself may not exist yet: its nearest existing parent decides).
fn disk_of(mounts: &[(PathBuf, u64, u64)], holds: &str, dir: &Path) -> Option<DiskSpace> {
    let existing = dir.ancestors().find(|p| p.exists())?;
    let real = std::fs::canonicalize(existing).ok()?;
    let (mount, available, total) = mounts
        .iter()
        .filter(|(mount, _, _)| real.starts_with(mount))
        .max_by_key(|(mount, _, _)| mount.as_os_str().len())?;
    Some(DiskSpace {
        holds: holds.to_string(),
        path: dir.to_path_buf(),
        mount_point: mount.clone(),
        available: *available,
        total: *total,
    })
}

impl HostFigures {
    /// One line per filesystem about to fill (once per filesystem).
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen: Vec<&Path> = Vec::new();
        for disk in self.disks.iter().filter(|d| d.is_low()) {
            if seen.contains(&disk.mount_point.as_path()) {
                continue;
            }
            seen.push(&disk.mount_point);
            let holds: Vec<&str> = self
                .disks
                .iter()
                .filter(|d| d.mount_point == disk.mount_point)
                .map(|d| d.holds.as_str())
                .collect();
            out.push(format!(
                "the filesystem {} (holding the {}) has {} free of {} ({:.0}%)",
                disk.mount_point.display(),
                holds.join(", "),
                gib(disk.available),
                gib(disk.total),
                disk.available as f64 * 100.0 / disk.total.max(1) as f64
            ));
        }
        out
    }

    /// `load 0.52/2 · mem 3.1/23.4 GiB · swap 0.0/0.0 GiB`
    pub fn summary(&self) -> String {
        format!(
            "load {:.2}/{} · mem {} · swap {}",
            self.load1,
            self.cpus,
            used_of(self.memory_used, self.memory_total),
            used_of(self.swap_used, self.swap_total)
        )
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn used_of(used: u64, total: u64) -> String {
    format!(
        "{:.1}/{:.1} GiB",
        used as f64 / (1u64 << 30) as f64,
        total as f64 / (1u64 << 30) as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_on_the_longest_mount_that_holds_it_and_low_space_is_said_once() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        let mounts = vec![
            (PathBuf::from("/"), 50 << 30, 100 << 30),
            (real.clone(), 100 << 20, 10 << 30),
        ];
        let logs = disk_of(&mounts, "logs", &real.join("not/yet/there")).unwrap();
        assert_eq!(
            logs.mount_point, real,
            "the nearest existing parent decides"
        );
        assert!(logs.is_low(), "100 MiB free");
        let root = disk_of(&mounts, "cache", Path::new("/")).unwrap();
        assert!(!root.is_low());
        let figures = HostFigures {
            load1: 0.5,
            cpus: 2,
            memory_used: 1 << 30,
            memory_total: 4 << 30,
            swap_used: 0,
            swap_total: 0,
            disks: vec![
                logs.clone(),
                DiskSpace {
                    holds: "repository".into(),
                    ..logs
                },
                root,
            ],
        };
        let warnings = figures.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0]
                .contains("(holding the logs, repository) has 0.1 GiB free of 10.0 GiB (1%)"),
            "{warnings:?}"
        );
        assert_eq!(
            figures.summary(),
            "load 0.50/2 · mem 1.0/4.0 GiB · swap 0.0/0.0 GiB"
        );
    }

    #[test]
    fn this_host_can_be_read() {
        let figures = observe(&[("logs", std::env::temp_dir())]);
        assert!(figures.memory_total > 0);
        assert_eq!(figures.disks.len(), 1);
        assert!(figures.disks[0].total > 0);
    }
}
