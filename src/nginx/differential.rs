//! Our reading of `omero.web.nginx_server_extra_config` against nginx's own: a value
//! the checker accepts is put into a server block followed by a marker directive that
//! nginx allows only directly in a server block (`server_name`), and `nginx -t` reads
//! it. Had nginx seen one `}` more than we did, the marker would land in `http`; one
//! `{` more, in a block inside the server; either way nginx reports "not allowed here",
//! an unexpected brace or the end of the file. The fuzz target for nginx values and a
//! seeded test (`tests/e2e/privilege/nginx_as_owner.rs`) run it.

use std::path::Path;
use std::process::{Command, Stdio};

use super::tokens::{self, Item};

/// The directives the comparison knows nginx accepts inside a server (and location)
/// block with any arguments of the right count; a value using others tells nothing
/// about structure when nginx refuses it ("unknown directive").
const KNOWN: [&str; 4] = ["add_header", "location", "return", "set"];

/// What `nginx -t` made of an accepted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// nginx read the same block structure (the marker stayed in the server block).
    Agrees,
    /// nginx saw another structure: the value must not have been accepted.
    Differs(String),
    /// nginx refused it for another reason (an argument it does not take), or the
    /// value uses directives outside [`KNOWN`]: nothing learnt.
    Inconclusive,
}

/// Runs the comparison for `lines` that `validate_extra_config` accepted; `None` when
/// nginx is not installed.
pub fn compare_with_nginx(lines: &[String]) -> Option<Verdict> {
    let nginx = super::check::find_nginx().ok()?;
    let text = lines.join("\n");
    let Ok(items) = tokens::read(&text, true) else {
        return Some(Verdict::Inconclusive);
    };
    let all_known = items.iter().all(|item| match item {
        Item::Directive { words, .. } => KNOWN.contains(&words[0].as_str()),
        Item::BlockEnd { .. } => true,
    });
    if !all_known {
        return Some(Verdict::Inconclusive);
    }
    let dir = tempfile::Builder::new()
        .prefix("omero-webctl-nginx-diff.")
        .tempdir()
        .ok()?;
    let conf = dir.path().join("nginx.conf");
    // `nginx -t` binds the ports it is given: a free one keeps that from failing.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    std::fs::write(&conf, config_around(dir.path(), &text, port)).ok()?;
    let output = Command::new(&nginx)
        .arg("-t")
        .arg("-q")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if output.status.success() {
        return Some(Verdict::Agrees);
    }
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    let structural = [
        "is not allowed here",
        "unexpected \"}\"",
        "unexpected \"{\"",
        "unexpected end of file",
        "is not terminated",
    ];
    Some(if structural.iter().any(|s| said.contains(s)) {
        Verdict::Differs(said)
    } else {
        Verdict::Inconclusive
    })
}

/// A whole nginx.conf with the value in a server block, the marker after it, and
/// everything nginx would open or create inside `dir`.
fn config_around(dir: &Path, value: &str, port: u16) -> String {
    let d = dir.display();
    format!(
        "pid {d}/nginx.pid;
events {{}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
# <<<<< value
{value}
# value >>>>>
        server_name omero-webctl-marker;
    }}
}}
"
    )
}

/// Lines for the comparison, from `bytes`: each line is one of a few directives with
/// arguments assembled from the characters nginx's tokeniser treats specially.
pub fn lines_from(bytes: &[u8]) -> Vec<String> {
    const PIECES: [&str; 16] = [
        "a", "\"", "'", "\\", "\\\"", "{", "}", ";", "#", " ", "$uri", "${uri}", "x}", "\\\\",
        "\t", "/",
    ];
    let mut out = Vec::new();
    for chunk in bytes.chunks(5) {
        let (&head, rest) = match chunk.split_first() {
            Some(split) => split,
            None => continue,
        };
        let tail: String = rest
            .iter()
            .map(|b| PIECES[*b as usize % PIECES.len()])
            .collect();
        out.push(match head % 6 {
            0 => format!("add_header X-T {tail};"),
            1 => format!("set $v {tail};"),
            2 => "location /x {".to_string(),
            3 => "}".to_string(),
            4 => format!("return 200 {tail};"),
            _ => format!("add_header X-T a; # {tail}"),
        });
    }
    out
}
