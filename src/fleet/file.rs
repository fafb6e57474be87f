//! The fleet file (`etc/fleet.toml` of the control site, or `--fleet FILE`): the
//! members, the front and the session store. Read strictly, since nothing else reads
//! it: every problem is one line naming the file, the member and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{DocumentMut, Item, Table};

/// What `fleet init` writes: every field, commented.
pub const EXAMPLE: &str = r#"# The web tier of this OMERO site: hosts that each run omero-webctl (the same
# version, ideally), one front nginx in front of them, one session store.
# `omero-webctl fleet status` shows them all; see docs/fleet.md in the source.

[front]
# The front is this control site's private nginx (`omero-webctl fleet nginx start`).
# The port it listens on:
port = 8080

[ssh]
# The command that runs omero-webctl on every member (the Debian package's by default).
program = "omero-webctl"
# Seconds a member may take to answer before it is shown as unreachable.
timeout = 5
# Optional: the key to log in with and the known_hosts file checked (host keys are
# never accepted without being known).
# identity = "/home/omero/.ssh/id_ed25519"
# known_hosts = "/home/omero/.ssh/known_hosts"

# [sessions]
# redis = "redis://10.0.0.1:6379/0"

# One [[member]] per OMERO.web host.
[[member]]
name = "web1"
# user@host[:port] to reach it over ssh, or "local" for this host.
ssh = "local"
# Its site directory (OMERODIR).
site = "/opt/omero/web/OMERO.web"
# Where the front reaches its pool (default: the ssh host, port 4080).
upstream = "127.0.0.1:4080"
# Its share of requests (default 1).
weight = 1

# [[member]]
# name = "web2"
# ssh = "omero@10.0.0.3"
# site = "/opt/omero/web/OMERO.web"
"#;

/// The default pool port of OMERO.web (omero.web.application_server.port).
const DEFAULT_POOL_PORT: u16 = 4080;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetFile {
    pub path: PathBuf,
    pub front_port: u16,
    pub ssh: SshOptions,
    pub redis: Option<String>,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    pub program: String,
    pub timeout: Duration,
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub destination: Destination,
    pub site: PathBuf,
    /// host:port of its pool, as the front's upstream names it.
    pub upstream: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Local,
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
}

impl Destination {
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Local => "local",
            Destination::Ssh { .. } => "ssh",
        }
    }
}

/// One problem with the fleet file, as one line.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FleetFileError {
    pub path: String,
    pub message: String,
}

impl FleetFile {
    pub fn load(path: &Path) -> Result<FleetFile, FleetFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| FleetFileError {
            path: path.display().to_string(),
            message: format!("cannot read it: {e}"),
        })?;
        FleetFile::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<FleetFile, FleetFileError> {
        let fail = |message: String| FleetFileError {
            path: path.display().to_string(),
            message,
        };
        let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            let first = e.message().lines().next().unwrap_or("").to_string();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    fail(format!("line {line}: {first}"))
                }
                None => fail(first),
            }
        })?;
        let root = doc.as_table();
        known_keys(root, "", &["front", "ssh", "sessions", "member"]).map_err(fail)?;

        let front = table(root, "front").map_err(fail)?;
        let front_port = match front.and_then(|t| t.get("port")) {
            None => 8080,
            Some(item) => port(item).ok_or_else(|| fail("front.port must be 1-65535".into()))?,
        };
        if let Some(front) = front {
            known_keys(front, "front.", &["port"]).map_err(fail)?;
        }

        let ssh = table(root, "ssh").map_err(fail)?;
        let ssh = ssh_options(ssh).map_err(fail)?;

        let redis = match table(root, "sessions").map_err(fail)? {
            None => None,
            Some(sessions) => {
                known_keys(sessions, "sessions.", &["redis"]).map_err(fail)?;
                let url = string(sessions, "redis", "sessions.redis").map_err(fail)?;
                if let Some(url) = &url
                    && !url.starts_with("redis://")
                    && !url.starts_with("rediss://")
                {
                    return Err(fail(format!(
                        "sessions.redis must be a redis:// URL, not {url:?}"
                    )));
                }
                url
            }
        };

        let members = match root.get("member") {
            None => Vec::new(),
            Some(item) => {
                let array = item.as_array_of_tables().ok_or_else(|| {
                    fail("member must be [[member]] tables (one per host)".into())
                })?;
                array
                    .iter()
                    .enumerate()
                    .map(|(i, t)| member(t, i + 1))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(fail)?
            }
        };
        if members.is_empty() {
            return Err(fail("no [[member]]: a fleet needs at least one".into()));
        }
        for (i, m) in members.iter().enumerate() {
            if let Some(other) = members[..i].iter().find(|o| o.name == m.name) {
                return Err(fail(format!("two members are named {:?}", other.name)));
            }
            if let Some(other) = members[..i].iter().find(|o| o.upstream == m.upstream) {
                return Err(fail(format!(
                    "members {:?} and {:?} have the same upstream {}",
                    other.name, m.name, m.upstream
                )));
            }
        }
        Ok(FleetFile {
            path: path.to_path_buf(),
            front_port,
            ssh,
            redis,
            members,
        })
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The member named `name`, or an error listing the names there are.
    pub fn require(&self, name: &str) -> anyhow::Result<&Member> {
        self.member(name).ok_or_else(|| {
            let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
            anyhow::anyhow!(
                "no member named {name:?} in {} (members: {})",
                self.path.display(),
                names.join(", ")
            )
        })
    }
}

fn known_keys(table: &Table, prefix: &str, known: &[&str]) -> Result<(), String> {
    for (key, _) in table.iter() {
        if !known.contains(&key) {
            return Err(format!(
                "unknown key {prefix}{key} (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

fn table<'a>(root: &'a Table, name: &str) -> Result<Option<&'a Table>, String> {
    match root.get(name) {
        None => Ok(None),
        Some(item) => item
            .as_table()
            .map(Some)
            .ok_or_else(|| format!("{name} must be a [{name}] table")),
    }
}

fn string(table: &Table, key: &str, label: &str) -> Result<Option<String>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(item) => item
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| format!("{label} must be a string")),
    }
}

fn port(item: &Item) -> Option<u16> {
    item.as_integer()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&p| p > 0)
}

fn ssh_options(ssh: Option<&Table>) -> Result<SshOptions, String> {
    let mut options = SshOptions {
        program: "omero-webctl".into(),
        timeout: Duration::from_secs(5),
        identity: None,
        known_hosts: None,
    };
    let Some(ssh) = ssh else {
        return Ok(options);
    };
    known_keys(
        ssh,
        "ssh.",
        &["program", "timeout", "identity", "known_hosts"],
    )?;
    if let Some(program) = string(ssh, "program", "ssh.program")? {
        if program.trim().is_empty() {
            return Err("ssh.program must not be empty".into());
        }
        options.program = program;
    }
    if let Some(item) = ssh.get("timeout") {
        let secs = item
            .as_integer()
            .filter(|n| (1..=600).contains(n))
            .ok_or("ssh.timeout must be whole seconds, 1-600")?;
        options.timeout = Duration::from_secs(secs as u64);
    }
    options.identity = string(ssh, "identity", "ssh.identity")?.map(PathBuf::from);
    options.known_hosts = string(ssh, "known_hosts", "ssh.known_hosts")?.map(PathBuf::from);
    Ok(options)
}

fn member(table: &Table, index: usize) -> Result<Member, String> {
    let name = string(table, "name", "member.name")?
        .ok_or_else(|| format!("member #{index} has no name"))?;
    let valid_name = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !valid_name {
        return Err(format!(
            "member #{index}: name {name:?} must be 1-32 letters, digits, '-', '_' or '.'"
        ));
    }
    let label = |field: &str| format!("member {name:?}: {field}");
    known_keys(
        table,
        &format!("in member {name:?}: "),
        &["name", "ssh", "site", "upstream", "weight"],
    )?;
    let ssh = string(table, "ssh", &label("ssh"))?.ok_or_else(|| {
        format!(
            "{} is missing (user@host[:port] or \"local\")",
            label("ssh")
        )
    })?;
    let destination = destination(&ssh).map_err(|why| format!("{}: {why}", label("ssh")))?;
    let site = string(table, "site", &label("site"))?
        .ok_or_else(|| format!("{} is missing (the member's site directory)", label("site")))?;
    if !site.starts_with('/') {
        return Err(format!(
            "{} must be an absolute path, not {site:?}",
            label("site")
        ));
    }
    let upstream = match string(table, "upstream", &label("upstream"))? {
        Some(upstream) => {
            upstream_address(&upstream).map_err(|why| format!("{}: {why}", label("upstream")))?
        }
        None => match &destination {
            Destination::Local => format!("127.0.0.1:{DEFAULT_POOL_PORT}"),
            Destination::Ssh { host, .. } => format!("{host}:{DEFAULT_POOL_PORT}"),
        },
    };
    let weight = match table.get("weight") {
        None => 1,
        Some(item) => {
            item.as_integer()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| format!("{} must be 1-100", label("weight")))? as u32
        }
    };
    Ok(Member {
        name,
        destination,
        site: PathBuf::from(site),
        upstream,
        weight,
    })
}

/// `local`, or `[user@]host[:port]` with a host name or IPv4 address (no shell or ssh
/// option characters: the value becomes an argument of ssh).
fn destination(text: &str) -> Result<Destination, String> {
    if text == "local" {
        return Ok(Destination::Local);
    }
    let (user, rest) = match text.split_once('@') {
        Some((user, rest)) => (Some(user), rest),
        None => (None, text),
    };
    if let Some(user) = user
        && (user.is_empty()
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || user.starts_with('-'))
    {
        return Err(format!("{user:?} is not a user name"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("{port:?} is not a port"))?;
            (host, Some(port))
        }
        None => (rest, None),
    };
    host_name(host)?;
    Ok(Destination::Ssh {
        user: user.map(str::to_string),
        host: host.to_string(),
        port,
    })
}

fn host_name(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && !host.starts_with('-')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!("{host:?} is not a host name or IPv4 address"))
    }
}

/// `host:port`, as nginx's `server` takes it.
fn upstream_address(text: &str) -> Result<String, String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} must be host:port"))?;
    host_name(host)?;
    port.parse::<u16>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("{port:?} is not a port"))?;
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FleetFile, String> {
        FleetFile::parse(text, Path::new("fleet.toml")).map_err(|e| e.to_string())
    }

    const TWO: &str = r#"
[front]
port = 9000
[ssh]
program = "/usr/bin/omero-webctl"
timeout = 3
[[member]]
name = "web1"
ssh = "local"
site = "/srv/web1"
[[member]]
name = "web2"
ssh = "omero@10.0.0.3:2222"
site = "/srv/web2"
weight = 2
"#;

    #[test]
    fn the_example_that_init_writes_is_valid() {
        let fleet = parse(EXAMPLE).unwrap();
        assert_eq!(fleet.members.len(), 1);
        assert_eq!(fleet.members[0].destination, Destination::Local);
        assert_eq!(fleet.front_port, 8080);
    }

    #[test]
    fn members_destinations_and_defaults() {
        let fleet = parse(TWO).unwrap();
        assert_eq!(fleet.front_port, 9000);
        assert_eq!(fleet.ssh.program, "/usr/bin/omero-webctl");
        assert_eq!(fleet.ssh.timeout, Duration::from_secs(3));
        assert_eq!(fleet.members[0].upstream, "127.0.0.1:4080");
        assert_eq!(
            fleet.members[1].destination,
            Destination::Ssh {
                user: Some("omero".into()),
                host: "10.0.0.3".into(),
                port: Some(2222)
            }
        );
        assert_eq!(fleet.members[1].upstream, "10.0.0.3:4080");
        assert_eq!(fleet.members[1].weight, 2);
    }

    #[test]
    fn each_problem_is_one_line_naming_the_field() {
        let cases = [
            (
                TWO.replace("weight = 2", "weight = 0"),
                "member \"web2\": weight must be 1-100",
            ),
            (
                TWO.replace("omero@10.0.0.3:2222", "-oProxyCommand=x"),
                "is not a host name",
            ),
            (
                TWO.replace("omero@10.0.0.3:2222", "a b@h"),
                "is not a user name",
            ),
            (
                TWO.replace("\"/srv/web2\"", "\"srv\""),
                "site must be an absolute path",
            ),
            (
                TWO.replace("name = \"web2\"", "name = \"web1\""),
                "two members are named \"web1\"",
            ),
            (
                TWO.replace("timeout = 3", "timeout = 0"),
                "ssh.timeout must be whole seconds",
            ),
            (
                TWO.replace("port = 9000", "port = 70000"),
                "front.port must be 1-65535",
            ),
            (
                TWO.replace("weight = 2", "wieght = 2"),
                "unknown key in member \"web2\": wieght",
            ),
            (TWO.replace("[front]", "[front"), "fleet.toml: line 2:"),
            ("[front]\nport = 1\n".to_string(), "no [[member]]"),
        ];
        for (text, expected) in cases {
            let error = parse(&text).unwrap_err();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
            assert!(!error.contains('\n'), "not one line: {error:?}");
        }
    }

    #[test]
    fn a_session_store_must_be_a_redis_url() {
        let ok = format!("{TWO}\n[sessions]\nredis = \"redis://10.0.0.1:6379/0\"\n");
        assert_eq!(
            parse(&ok).unwrap().redis.as_deref(),
            Some("redis://10.0.0.1:6379/0")
        );
        let bad = format!("{TWO}\n[sessions]\nredis = \"10.0.0.1\"\n");
        assert!(parse(&bad).unwrap_err().contains("must be a redis:// URL"));
    }
}
