//! The embedded pre-fork worker pool: a master that supervises worker processes
//! (re-executions of this binary sharing one listening socket), its control socket,
//! pid file and statistics, and the client side the CLI and the panel use.

mod arbiter;
mod backoff;
pub mod binaries;
pub mod client;
pub use crate::http_app::forwarded;
pub mod ipc;
pub mod master;
pub mod notify;
pub mod pidfile;
pub mod process;
pub mod protocol;
pub mod shared_stats;
pub mod spec;
/// Moved to the supervisor, which every kind of site shares.
pub use crate::supervisor::stats;
pub mod worker;
