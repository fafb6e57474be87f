//! The ceiling of the nginx → pool hop: the site's own private nginx config, run a
//! second time with its upstream pointed at the cheapest upstream there is, a server
//! block of the same nginx answering `return 200` with the trivial route's body. What
//! that pair serves per second bounds what any application server behind this nginx
//! config can reach on this machine, whatever it does per request: the only work left
//! is nginx's own (the client connection, the upstream connection, proxying).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The body of the pool's trivial route (`/__webctl/health`), answered by the ceiling's
/// upstream as well, so that both move the same bytes.
const TRIVIAL_BODY: &str = "ok\n";

/// A copy of the site's private nginx, running from its own directory.
pub struct CeilingNginx {
    dir: PathBuf,
    conf: PathBuf,
    /// Where clients connect (the copy of the site's server block).
    pub port: u16,
}

impl CeilingNginx {
    /// Starts a copy of the site's private nginx (`site_nginx_dir`, where `nginx start`
    /// wrote its config) on `port`, whose upstream is a `return 200` server block on
    /// `upstream_port`. With `keep_alive`, nginx keeps its upstream connections as it
    /// does for gthread and gevent workers; without, a new one per request, as sync
    /// workers get.
    pub fn start(
        site_nginx_dir: &Path,
        dir: PathBuf,
        port: u16,
        upstream_port: u16,
        keep_alive: bool,
    ) -> CeilingNginx {
        let site_conf = std::fs::read_to_string(site_nginx_dir.join("nginx.conf")).unwrap();
        for tmp in ["client_body", "fastcgi", "uwsgi", "scgi", "proxy"] {
            std::fs::create_dir_all(dir.join("tmp").join(tmp)).unwrap();
        }
        std::fs::copy(site_nginx_dir.join("mime.types"), dir.join("mime.types")).unwrap();
        let text = ceiling_config(
            &site_conf,
            site_nginx_dir,
            &dir,
            port,
            upstream_port,
            keep_alive,
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, text).unwrap();
        let out = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the ceiling's nginx ({}): {}",
            conf.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let ceiling = CeilingNginx { dir, conf, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the ceiling's nginx never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ceiling
    }
}

impl Drop for CeilingNginx {
    fn drop(&mut self) {
        let _ = Command::new("nginx")
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(&self.conf)
            .args(["-s", "stop"])
            .output();
        // The master removes its pid file as it exits.
        let pid = self.dir.join("nginx.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The site's config with every path of its nginx directory moved to `dir`, its server
/// listening on `port`, its upstream the `return 200` server on `upstream_port` (added
/// at the end of the http block), and (`keep_alive`) the upstream keep-alive lines
/// the generated config carries for workers that keep connections.
fn ceiling_config(
    site_conf: &str,
    site_nginx_dir: &Path,
    dir: &Path,
    port: u16,
    upstream_port: u16,
    keep_alive: bool,
) -> String {
    let site_conf = site_conf.replace(
        &site_nginx_dir.display().to_string(),
        &dir.display().to_string(),
    );
    let mut out = String::new();
    let (mut in_upstream, mut listens) = (false, 0);
    for line in site_conf.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("upstream omeroweb") {
            in_upstream = true;
        } else if in_upstream && trimmed.starts_with("server ") {
            out.push_str(&format!(
                "{indent}server 127.0.0.1:{upstream_port} fail_timeout=0;\n"
            ));
            if keep_alive && !site_conf.contains("keepalive 32;") {
                out.push_str(&format!(
                    "{indent}keepalive 32;\n{indent}keepalive_timeout 1000ms;\n"
                ));
            }
            continue;
        } else if in_upstream && trimmed == "}" {
            in_upstream = false;
        } else if trimmed.starts_with("listen ") {
            listens += 1;
            out.push_str(&format!("{indent}listen 127.0.0.1:{port};\n"));
            continue;
        } else if keep_alive
            && trimmed.starts_with("proxy_read_timeout")
            && !site_conf.contains("proxy_http_version 1.1;")
        {
            out.push_str(&format!(
                "{indent}proxy_http_version 1.1;\n{indent}proxy_set_header Connection \"\";\n"
            ));
        }
        out.push_str(line);
        out.push('\n');
    }
    assert_eq!(
        listens, 1,
        "the site's config should have one server (no TLS)"
    );
    // The cheapest upstream: no access log, no file lookup, the trivial route's body.
    let body = TRIVIAL_BODY.replace('\n', "\\n");
    let end = out.trim_end().rfind('}').expect("the http block's end");
    out.insert_str(
        end,
        &format!(
            "    server {{\n        listen 127.0.0.1:{upstream_port};\n        access_log off;\n        default_type text/plain;\n        location / {{\n            return 200 \"{body}\";\n        }}\n    }}\n\n"
        ),
    );
    out
}
