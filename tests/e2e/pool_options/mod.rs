//! Worker classes, wsgi_args flags and the pool's operational extras, through the real
//! binary with real processes.

use crate::support;

use std::time::Duration;

use support::disk::{SmallDisk, fill};
use support::{
    TestSite, alive, decode_jpeg, fetch, http_get, http_request, keep_alive_client, wait_until,
};

mod control_socket;
mod flags;
mod full_disk;
mod hostile_http;
mod lifecycle;
mod operations;

const LONG: Duration = Duration::from_secs(30);

fn kill(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

/// Sends one control request by hand, as any client of the documented protocol would.
fn control(site: &TestSite, request: &str) -> String {
    use std::io::{Read, Write};
    let mut socket =
        std::os::unix::net::UnixStream::connect(site.root().join("var/omeroweb.sock")).unwrap();
    socket.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    socket.read_to_string(&mut reply).unwrap();
    reply
}
