//! The embedded pre-fork worker pool: a master that supervises worker processes
//! (`omero-webctl-worker`, or this binary again, sharing one listening socket), its control socket,
//! pid file and statistics, and the client side the CLI and the panel use.

pub mod allocator;
mod arbiter;
mod backoff;
pub mod binaries;
pub mod client;
mod connection;
pub use crate::http_app::forwarded;
pub mod ipc;
pub mod master;
pub mod notify;
pub mod protocol;
pub mod shared_stats;
pub mod spec;
/// The counters are part of the status model every kind of site shares.
pub use crate::status::stats;
pub mod worker;
pub mod worker_program;
