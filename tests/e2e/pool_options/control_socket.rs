//! The pool's control socket: private, refusing other users, silent and hostile clients.

use super::*;

#[test]
fn control_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let mode = std::fs::metadata(site.root().join("var/omeroweb.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    site.ok(&["stop"]);
    assert!(!site.root().join("var/omeroweb.sock").exists());
}

#[test]
fn another_user_that_reaches_the_control_socket_is_still_refused() {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true requires root for the other-user test"
        );
        eprintln!("skipping: needs root to act as another user");
        return;
    }
    let site = TestSite::new(1);
    site.ok(&["start"]);
    // Open the way a careless chmod would: the directories and the socket itself.
    let socket = site.root().join("var/omeroweb.sock");
    for dir in [site.root().to_path_buf(), site.root().join("var")] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // nobody connects and asks the master to stop: the peer's uid is checked (the
    // refusal may come before the request is even read).
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ntry:\n  s.sendall(b'{\"cmd\":\"stop\",\"quick\":true}\\n')\nexcept BrokenPipeError:\n  pass\nprint(s.makefile().readline())";
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .arg(&socket)
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.contains("\"ok\":false") && reply.contains("uid 65534 may not control this pool"),
        "{reply} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(site.status_json()["state"], "running");
    site.ok(&["stop"]);
}

#[test]
fn a_silent_control_client_is_dropped_and_does_not_block_others() {
    use std::io::Read;
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let mut silent =
        std::os::unix::net::UnixStream::connect(site.root().join("var/omeroweb.sock")).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Others are served meanwhile.
    assert_eq!(site.status_json()["state"], "running");
    // The master gives up on the silent one (it answers the empty request and closes).
    let started = std::time::Instant::now();
    let mut reply = String::new();
    silent.read_to_string(&mut reply).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "held for {:?}",
        started.elapsed()
    );
    assert!(reply.contains("\"ok\":false"), "{reply}");
}

#[test]
fn hostile_control_clients_are_refused_and_the_pool_is_unchanged() {
    use std::io::{Read, Write};
    let site = TestSite::new(1);
    site.ok(&["start"]);
    let pid = site.ready_pids()[0];
    // Garbage, a request of the wrong shape, binary noise.
    for request in [
        "hello",
        "{\"cmd\":\"launch_missiles\"}",
        "{\"cmd\":\"scale\",\"to\":-3}",
        "\u{0}\u{1}\u{ff}",
    ] {
        let reply = control(&site, request);
        assert!(
            reply.contains("\"ok\":false") && reply.contains("bad request"),
            "{request:?}: {reply}"
        );
    }
    // A fork bomb by request: refused with the limit, nothing spawned.
    let reply = control(&site, "{\"cmd\":\"scale\",\"to\":4000000000}");
    assert!(
        reply.contains("\"ok\":false") && reply.contains("at most 1024"),
        "{reply}"
    );
    let reply = control(&site, "{\"cmd\":\"scale\",\"by\":2000000000}");
    assert!(reply.contains("at most 1024"), "{reply}");
    // The CLI says the same in one line.
    let out = site.run(&["scale", "5000"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at most 1024"), "{stderr}");
    // A frame far over the 64 KiB limit, with no newline: cut off and answered.
    let mut socket =
        std::os::unix::net::UnixStream::connect(site.root().join("var/omeroweb.sock")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let huge = vec![b'x'; 4 << 20];
    let _ = socket.write_all(&huge); // the master stops reading; the write may fail
    let mut reply = String::new();
    let _ = socket.read_to_string(&mut reply);
    assert!(
        reply.is_empty() || reply.contains("\"ok\":false"),
        "{reply}"
    );
    // Through all of it: the same one worker, and the master answers.
    let status = site.status_json();
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(site.ready_pids(), [pid]);
    assert_eq!(status["target_workers"], 1, "{status}");
}
