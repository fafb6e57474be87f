//! Processes as Linux shows them, written once for the pool, both supervisors and
//! nginx: pidfds that cannot signal a reused PID, the master's pid files, and readers
//! of `/proc/PID`. Knows nothing of what the processes serve.

pub mod pidfile;
pub mod process;
mod procfs;
pub mod run;

pub use procfs::{
    age_secs, all_pids, children, cmdline, deleted_open_files, flock_holder, is_alive, parent_of,
    process_start_time, state,
};
