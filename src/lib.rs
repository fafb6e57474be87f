//! omero-webctl: OMERO.web's deployment (typed `omero.web.*` configuration, nginx
//! generation, a pre-fork worker pool and its log) behind one library API that the CLI,
//! the terminal panel and the tests all drive.

pub mod cli;
pub mod config;
pub mod diagnostics;
pub mod fleet;
pub mod fsutil;
pub mod fuzz_checks;
pub mod gateway;
pub mod host;
pub mod http_app;
pub mod logging;
pub mod metrics;
pub mod nginx;
pub mod pool;
pub mod privilege;
pub mod proc;
pub mod reachability;
pub mod session_store;
pub mod site;
pub mod status;
pub mod supervisor;
pub mod systemd;
pub mod tui;
