//! Readers of `/proc/PID`: whether a process lives, when it started, its command line,
//! parent, children and state. `None` or empty when the process is gone.

/// Start time of a process in clock ticks since boot (`/proc/PID/stat` field 22):
/// together with the PID it identifies a process even across PID reuse.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process is alive and not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split_whitespace().next().map(|s| s != "Z"))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The arguments of a process (`/proc/PID/cmdline`), empty when it is gone.
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|&b| b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The process state letter of `/proc/PID/stat` (`R`, `S`, `T` stopped, `Z`, ...).
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every PID `/proc` lists now, in no particular order.
pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// The process holding a `flock` on `file` (the kernel's `/proc/locks`, matched by
/// device and inode): who holds a pid file's lock when its text cannot say.
pub fn flock_holder(file: &std::fs::File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 15706 00:2b:1234 0 EOF"; waiters have "->".
        let fields: Vec<&str> = line.split_whitespace().filter(|f| *f != "->").collect();
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut id = fields.get(5)?.split(':');
        let same = u32::from_str_radix(id.next()?, 16).ok()? == major
            && u32::from_str_radix(id.next()?, 16).ok()? == minor
            && id.next()?.parse::<u64>().ok()? == meta.ino();
        if same && !line.contains("->") {
            fields.get(4)?.parse().ok()
        } else {
            None
        }
    })
}

/// PIDs whose parent is `parent` (Gunicorn's workers are its master's children).
pub fn children(parent: u32) -> Vec<u32> {
    let mut pids: Vec<u32> = all_pids()
        .into_iter()
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect();
    pids.sort_unstable();
    pids
}

/// Seconds since the process started (from its start time and the system uptime).
pub fn age_secs(pid: u32) -> Option<f64> {
    let start_ticks = process_start_time(pid)? as f64;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((uptime - start_ticks / ticks.max(1.0)).max(0.0))
}

/// Files the process holds open that were deleted since (`/proc/PID/fd` links read
/// "PATH (deleted)").
pub fn deleted_open_files(pid: u32) -> Vec<std::path::PathBuf> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut out: Vec<std::path::PathBuf> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_suffix(" (deleted)"))
                .map(std::path::PathBuf::from)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
