//! The integration tests, one binary: each module is what was once a test binary of its
//! own (`cargo test --test e2e config::` runs one, `cargo test --test e2e NAME` one test).
//! One binary links the crate once instead of thirty times; the modules share `support`.
//! They run in one process, so no test may change process-wide state (the environment,
//! the current directory, the umask): each passes what it needs to the commands it runs.

mod support;

mod access;
mod architecture;
mod browser;
mod config;
mod config_xml;
mod fleet;
mod fleet_panel;
mod fleet_sessions;
mod fleet_upgrade;
mod fuzz_regressions;
mod gateway;
mod gateway_clients;
mod gateway_compat;
mod gateway_render;
mod gateway_url_walk;
mod generations;
mod nginx;
mod omero_compat;
mod omero_config_compat;
mod omero_words;
mod omeroweb;
mod ops;
mod pool;
mod pool_options;
mod privilege;
mod python_re;
mod reachability;
mod readme;
mod render_whole_planes;
mod stack;
mod systemd_notify;
mod tui;
