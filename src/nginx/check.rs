//! `nginx -t` on a rendered config. The `nginx` and `nginx-location` configs are
//! fragments, so they are wrapped in a minimal nginx.conf in a temp directory, in the
//! context they are meant for (http, or a server block). Everything that wrapper makes
//! nginx open or create (pid, logs, temp paths) points into the temp directory, so the
//! check needs no root and touches no system directory; nginx would otherwise create
//! /var/lib/nginx/* and open /var/log/nginx/access.log even for `-t`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{NginxError, NginxKind};

/// The verdict of `nginx -t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub ok: bool,
    /// What nginx printed (warnings, or the errors that failed the test), with its
    /// timestamps removed and temp paths replaced by `<generated>`.
    pub nginx_lines: Vec<String>,
    /// What the check did differently from a real start, e.g. the ports it had to
    /// move because `nginx -t` binds them and this user may not.
    pub notes: Vec<String>,
}

/// The nginx binary: `nginx` on PATH, else `/usr/sbin/nginx` (where distributions
/// put it, often outside a non-root user's PATH).
pub fn find_nginx() -> Result<PathBuf, NginxError> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("nginx"))
        .find(|candidate| is_executable(candidate));
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| is_executable(p)))
        .ok_or(NginxError::NginxNotFound)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `nginx -t` on `text` as a config of `kind`. `Err` means the check could not
/// run (no nginx, temp files); a config nginx refuses is `Ok` with `ok == false`.
///
/// `nginx-development` is a complete nginx.conf and is tested as it is, so the files
/// it names (under the site's var/nginx/) must exist: see [`super::instance::prepare`].
pub fn check(text: &str, kind: NginxKind) -> Result<CheckReport, NginxError> {
    let nginx = find_nginx()?;
    let dir = tempfile::Builder::new()
        .prefix("omero-webctl-nginx-t.")
        .tempdir()
        .map_err(|e| NginxError::io(&std::env::temp_dir(), e))?;
    let tmp = dir.path();
    let generated = tmp.join("generated.conf");
    let (text, notes) = if nix::unistd::geteuid().is_root() {
        (text.to_string(), Vec::new())
    } else {
        move_privileged_listens(text, unprivileged_port_start())
    };
    std::fs::write(&generated, text).map_err(|e| NginxError::io(&generated, e))?;

    let conf = match kind {
        NginxKind::NginxDevelopment => generated.clone(),
        NginxKind::Nginx | NginxKind::NginxLocation => {
            let wrapper = tmp.join("nginx.conf");
            let body = wrapper_conf(tmp, &generated, kind)?;
            std::fs::write(&wrapper, body).map_err(|e| NginxError::io(&wrapper, e))?;
            wrapper
        }
    };

    let output = Command::new(&nginx)
        .arg("-t")
        .arg("-q")
        .arg("-p")
        .arg(prefix_arg(tmp))
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg("stderr")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NginxError::Spawn {
            program: nginx.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let nginx_lines = stderr
        .lines()
        .map(|line| tidy_line(line, tmp))
        .filter(|line| !line.is_empty())
        .collect();
    Ok(CheckReport {
        ok: output.status.success(),
        nginx_lines,
        notes,
    })
}

/// The lowest port a non-root user may bind (Linux lets the admin lower it).
fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1024)
}

/// `nginx -t` binds every `listen` port (it only tolerates ports already in use), so
/// without root a config listening on 80 or 443 would fail the test for a reason that
/// has nothing to do with the config. Such listens are tested on free local ports
/// instead; each change is reported as a note. Line numbers stay the same.
fn move_privileged_listens(text: &str, lowest_allowed: u16) -> (String, Vec<String>) {
    let mut moved: Vec<(u16, u16)> = Vec::new();
    let mut notes = Vec::new();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let rest = &line[indent..];
        let Some(args) = rest.strip_prefix("listen ") else {
            out.push_str(line);
            continue;
        };
        let address = args.split([' ', ';']).next().unwrap_or("");
        let port_text = address.rsplit(':').next().unwrap_or(address);
        let port = match port_text.parse::<u16>() {
            Ok(port) if port < lowest_allowed => port,
            _ => {
                out.push_str(line);
                continue;
            }
        };
        let replacement = match moved.iter().find(|(from, _)| *from == port) {
            Some((_, to)) => *to,
            None => match free_local_port() {
                Ok(to) => {
                    moved.push((port, to));
                    notes.push(format!(
                        "note: not running as root, so nginx -t cannot bind port {port}; it was tested on 127.0.0.1:{to} instead"
                    ));
                    to
                }
                Err(_) => {
                    out.push_str(line);
                    continue;
                }
            },
        };
        out.push_str(&line[..indent]);
        out.push_str("listen 127.0.0.1:");
        out.push_str(&replacement.to_string());
        out.push_str(&args[address.len()..]);
    }
    (out, notes)
}

/// The minimal nginx.conf that puts a fragment in its context.
fn wrapper_conf(tmp: &Path, generated: &Path, kind: NginxKind) -> Result<String, NginxError> {
    let tmp = tmp.display();
    let include = match kind {
        NginxKind::Nginx => format!("    include {};\n", generated.display()),
        _ => {
            // A location file lives inside a server block; the port is free so the
            // wrapper could also be started as it is, not just tested.
            let port = free_local_port().map_err(|e| NginxError::io(Path::new("127.0.0.1"), e))?;
            format!(
                "    server {{\n        listen 127.0.0.1:{port};\n        include {};\n    }}\n",
                generated.display()
            )
        }
    };
    // As root, name the worker user explicitly: the compiled-in default (nobody and
    // its group) does not exist on every system, and nginx -t resolves it.
    let user = if nix::unistd::geteuid().is_root() {
        "user root;\n"
    } else {
        ""
    };
    Ok(format!(
        "{user}pid {tmp}/nginx.pid;\n\
         error_log stderr;\n\
         events {{}}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {tmp}/client_body;\n\
         \x20   proxy_temp_path {tmp}/proxy;\n\
         \x20   fastcgi_temp_path {tmp}/fastcgi;\n\
         \x20   uwsgi_temp_path {tmp}/uwsgi;\n\
         \x20   scgi_temp_path {tmp}/scgi;\n\
         {include}\
         }}\n"
    ))
}

/// nginx's `-p` wants a trailing slash to treat the prefix as a directory.
pub(crate) fn prefix_arg(dir: &Path) -> String {
    let mut prefix = dir.display().to_string();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    prefix
}

/// A TCP port on 127.0.0.1 that is free right now (the OS picks it).
pub(crate) fn free_local_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// `2024/01/02 03:04:05 [emerg] 123#123: unknown directive ...` → `nginx: [emerg]
/// unknown directive ...`, with the temp directory's files named `<generated>`.
pub(crate) fn tidy_line(line: &str, tmp: &Path) -> String {
    let mut line = line.trim_end().to_string();
    if let Some(level_at) = line.find(" [")
        && line[..level_at]
            .chars()
            .all(|c| c.is_ascii_digit() || "/: ".contains(c))
        && level_at > 0
    {
        let rest = &line[level_at + 1..];
        // Drop the `pid#tid: ` after the level.
        let rest = match rest.split_once("] ") {
            Some((level, tail)) => {
                let tail = match tail.split_once(": ") {
                    Some((ids, message)) if ids.chars().all(|c| c.is_ascii_digit() || c == '#') => {
                        message
                    }
                    _ => tail,
                };
                format!("{level}] {tail}")
            }
            None => rest.to_string(),
        };
        line = format!("nginx: {rest}");
    }
    let generated = tmp.join("generated.conf").display().to_string();
    let wrapper = tmp.join("nginx.conf").display().to_string();
    line.replace(&generated, "<generated>")
        .replace(&wrapper, "<wrapper>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_tidied() {
        let tmp = Path::new("/tmp/x");
        assert_eq!(
            tidy_line(
                "2026/11/26 21:13:19 [emerg] 11213#11213: unknown directive \"foo\" in /tmp/x/generated.conf:3",
                tmp
            ),
            "nginx: [emerg] unknown directive \"foo\" in <generated>:3"
        );
        assert_eq!(
            tidy_line(
                "nginx: configuration file /tmp/x/nginx.conf test failed",
                tmp
            ),
            "nginx: configuration file <wrapper> test failed"
        );
    }

    #[test]
    fn privileged_listens_move_without_root() {
        let text = "server {\n    listen 80;\n    listen 443 ssl;\nlisten 0.0.0.0:443 ssl;\n    listen 8080;\n}\n";
        let (moved, notes) = move_privileged_listens(text, 1024);
        let lines: Vec<&str> = moved.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(lines[1].starts_with("    listen 127.0.0.1:") && lines[1].ends_with(';'));
        assert!(lines[2].starts_with("    listen 127.0.0.1:") && lines[2].ends_with(" ssl;"));
        // The same port maps to the same replacement.
        assert_eq!(lines[3].trim_start(), lines[2].trim_start());
        assert_eq!(lines[4], "    listen 8080;");
        assert_eq!(notes.len(), 2, "{notes:?}");
        let (same, notes) = move_privileged_listens(text, 0);
        assert_eq!(same, text);
        assert!(notes.is_empty());
    }

    #[test]
    fn wrapper_puts_fragments_in_context() {
        let tmp = Path::new("/tmp/x");
        let generated = tmp.join("generated.conf");
        let http = wrapper_conf(tmp, &generated, NginxKind::Nginx).unwrap();
        assert!(http.contains("http {\n"));
        assert!(http.contains("    include /tmp/x/generated.conf;\n}\n"));
        assert!(http.contains("    access_log off;\n"));
        let server = wrapper_conf(tmp, &generated, NginxKind::NginxLocation).unwrap();
        assert!(server.contains("    server {\n        listen 127.0.0.1:"));
        assert!(server.contains("        include /tmp/x/generated.conf;\n    }\n}\n"));
    }
}
