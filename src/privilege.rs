//! The one privilege rule. Sysadmins run omero-webctl as root (units, `sudo`) on sites a
//! service user owns, and that user can write the site's config, `var/`, logs and
//! repository. **Nothing root does may be steered by a file that user controls.**
//!
//! So when the effective user is root and the site belongs to another user, the
//! command drops to the site's owner — supplementary groups as a login would have them,
//! then gid, then uid, then a check that `setuid(0)` fails, and an environment cleared
//! down to what a login of that user would have — before it opens, creates, chowns,
//! reads or signals anything in the site. `cli::run` applies this at its single
//! dispatch point, so every command (present and future) follows it.
//!
//! Root keeps only what needs root and is steered by root's own command line alone:
//! - binding the privileged port `nginx start --http PORT` names: the socket is bound
//!   before the drop and handed to nginx, which then runs as the owner (master too);
//! - writing unit files into the directory `systemd --output DIR` names: the units are
//!   rendered by a child process that dropped to the owner ([`as_owner`]), and root
//!   only writes the bytes it got back (and checks, never creates, directories outside
//!   the site);
//! - writing the system nginx's config to `nginx --output FILE`: the owner's process
//!   reads the site's config file, root parses and validates that text and renders it.
//!
//! Facts behind it: `shared/reference/privilege.md`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::unistd::{Gid, Uid};

use crate::site::Site;

/// The user a root-run command acts as on a site that user owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    pub home: PathBuf,
    /// The supplementary groups a login of this user has (never root's).
    pub groups: Vec<u32>,
}

impl Owner {
    /// The account of `uid` from the user database; an unnamed uid keeps the file's
    /// gid and gets `/` as its home.
    pub fn of_uid(uid: u32, file_gid: u32) -> Owner {
        let user = nix::unistd::User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten();
        let gid = user.as_ref().map_or(file_gid, |u| u.gid.as_raw());
        let groups = user
            .as_ref()
            .and_then(|u| {
                let name = std::ffi::CString::new(u.name.clone()).ok()?;
                nix::unistd::getgrouplist(&name, Gid::from_raw(gid)).ok()
            })
            .map(|list| list.iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|| vec![gid]);
        Owner {
            uid,
            gid,
            name: user
                .as_ref()
                .map_or_else(|| uid.to_string(), |u| u.name.clone()),
            home: user.map_or_else(|| PathBuf::from("/"), |u| u.dir),
            groups,
        }
    }
}

/// The user other than root who owns the site: the owner of the site directory, else
/// of `etc/`, the config file or `var/`, else of a directory above the site (whoever
/// can write those steers the site: the owner of `/home/alice` can swap a root-owned
/// `/home/alice/OMERO.web` for anything). `None` when root owns all of them (root's
/// own site).
pub fn site_owner(site: &Site) -> Option<Owner> {
    let owner = |meta: std::fs::Metadata| (meta.uid(), meta.gid());
    // The site directory and those above it were named by root (flag or OMERODIR):
    // followed. The others are looked at as they are, links included (a link's owner
    // planted it).
    let root = std::fs::metadata(site.root()).ok().map(owner);
    let inside = [site.etc_dir(), site.config_file(), site.var_dir()]
        .map(|p| std::fs::symlink_metadata(p).ok().map(owner));
    let above = site
        .root()
        .ancestors()
        .skip(1)
        .map(|p| std::fs::metadata(p).ok().map(owner));
    std::iter::once(root)
        .chain(inside)
        .chain(above)
        .flatten()
        .find(|(uid, _)| *uid != 0)
        .map(|(uid, gid)| Owner::of_uid(uid, gid))
}

/// What root keeps before a drop, as root's own command line asks for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    /// `nginx start --http PORT` with PORT below 1024: bind it before dropping.
    pub privileged_port: Option<u16>,
    /// `systemd --output DIR`, `nginx --output FILE`: stay root to write there, and do
    /// the site's part in [`as_owner`].
    pub root_output: bool,
}

/// How a command runs, decided once at dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stance {
    /// Not root: the kernel already limits us to what this user may do.
    Unprivileged,
    /// Root on a site root owns: nobody else steers it.
    RootsOwnSite,
    /// Root dropped to the site's owner for good.
    Dropped(Owner),
    /// Still root (writing into a file or directory root named); the site's part runs
    /// in a child dropped to this owner.
    Split(Owner),
}

/// Why a drop could not be done (nothing of the site was touched).
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error(
        "cannot act as {name} (uid {uid}), the owner of the site: {step} failed: {errno}; nothing was done as root"
    )]
    Drop {
        name: String,
        uid: u32,
        step: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("still able to become root after dropping to {name} (uid {uid}); refusing to go on")]
    NotDropped { name: String, uid: u32 },
    #[error("cannot bind port {port} for nginx before dropping to the site's owner: {source}")]
    Bind { port: u16, source: std::io::Error },
}

static DROPPED_TO: OnceLock<Owner> = OnceLock::new();
static KEPT_LISTENER: OnceLock<(u16, OwnedFd)> = OnceLock::new();

/// Applies the rule for a command on `site`; call before anything touches the site.
/// Must run while the process has a single thread (it changes the environment).
pub fn enforce(site: &Site, keep: Keep) -> Result<Stance, PrivilegeError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(Stance::Unprivileged);
    }
    let Some(owner) = site_owner(site) else {
        return Ok(Stance::RootsOwnSite);
    };
    if keep.root_output {
        return Ok(Stance::Split(owner));
    }
    if let Some(port) = keep.privileged_port.filter(|p| *p < 1024) {
        let listener =
            bind_listener(port).map_err(|source| PrivilegeError::Bind { port, source })?;
        let _ = KEPT_LISTENER.set((port, listener));
    }
    // SAFETY: called at dispatch, before any thread is started (see above).
    unsafe { clean_environment(&owner) };
    drop_to(&owner)?;
    let _ = DROPPED_TO.set(owner.clone());
    Ok(Stance::Dropped(owner))
}

/// The owner this root-run process dropped to, if it did: code that would create
/// something outside the site asks this (a directory root's command line did not
/// name is not created for the owner, even though the owner now could).
pub fn acting_for_root() -> Option<&'static Owner> {
    DROPPED_TO.get()
}

/// Refuses to create `dir` outside `site_root` when this process acts for root.
pub fn refuse_outside_site(site_root: &Path, dir: &Path) -> std::io::Result<()> {
    match acting_for_root() {
        Some(owner) if !dir.starts_with(site_root) => Err(std::io::Error::other(format!(
            "{} does not exist; as root, omero-webctl creates directories only inside the site (create it for {})",
            dir.display(),
            owner.name
        ))),
        _ => Ok(()),
    }
}

/// The listening socket root bound for `port` before dropping, for nginx to inherit.
pub fn kept_listener(port: u16) -> Option<&'static OwnedFd> {
    KEPT_LISTENER
        .get()
        .filter(|(kept, _)| *kept == port)
        .map(|(_, fd)| fd)
}

/// Drops to `owner` for good: groups, gid, uid (this order), then proves it by
/// failing to get root back.
pub fn drop_to(owner: &Owner) -> Result<(), PrivilegeError> {
    let fail = |step: &'static str| {
        move |errno| PrivilegeError::Drop {
            name: owner.name.clone(),
            uid: owner.uid,
            step,
            errno,
        }
    };
    let groups: Vec<Gid> = owner.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(fail("setgroups"))?;
    nix::unistd::setgid(Gid::from_raw(owner.gid)).map_err(fail("setgid"))?;
    nix::unistd::setuid(Uid::from_raw(owner.uid)).map_err(fail("setuid"))?;
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() || nix::unistd::geteuid().is_root() {
        return Err(PrivilegeError::NotDropped {
            name: owner.name.clone(),
            uid: owner.uid,
        });
    }
    Ok(())
}

/// Whether a variable of root's environment may cross to the owner: locale, time zone,
/// terminal, systemd's notification variables, OMERO's own (OMERODIR, OMERO_*) and ours
/// (OMEROWEBCTL_*), all set by root, not by the owner.
/// Everything else (tokens, TMPDIR, PYTHONPATH, LD_*, ...) stays behind.
fn crosses(name: &str) -> bool {
    const KEPT: [&str; 12] = [
        "PATH",
        "LANG",
        "TZ",
        "TERM",
        "COLORTERM",
        "NO_COLOR",
        "EDITOR",
        "VISUAL",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "OMERODIR",
    ];
    KEPT.contains(&name)
        || name.starts_with("LC_")
        || name.starts_with("OMERO_")
        || name.starts_with("OMEROWEBCTL_")
}

/// Clears the environment down to what crosses, with the owner's HOME, USER, LOGNAME.
///
/// # Safety
/// Changes the process environment: only while no other thread runs.
unsafe fn clean_environment(owner: &Owner) {
    let names: Vec<OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| !crosses(&name.to_string_lossy()))
        .collect();
    // SAFETY: the caller guarantees a single thread.
    unsafe {
        for name in names {
            std::env::remove_var(name);
        }
        std::env::set_var("HOME", &owner.home);
        std::env::set_var("USER", &owner.name);
        std::env::set_var("LOGNAME", &owner.name);
    }
}

/// Runs `work` in a child process that dropped to `owner`, and returns the bytes it
/// produced (or its error, as text). Root's process stays root and is steered only by
/// those bytes, which the caller treats as untrusted data.
pub fn as_owner(
    owner: &Owner,
    work: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Vec<u8>> {
    let (read_end, write_end) = nix::unistd::pipe()?;
    // SAFETY: called from the single-threaded command line (see `enforce`); the child
    // only runs our own code and leaves with _exit.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            drop(read_end);
            let mut out = std::fs::File::from(write_end);
            // SAFETY: the child has a single thread.
            unsafe { clean_environment(owner) };
            let result = drop_to(owner)
                .map_err(anyhow::Error::from)
                .and_then(|()| work());
            let (tag, body) = match result {
                Ok(bytes) => (b'0', bytes),
                Err(e) => (b'1', format!("{e:#}").into_bytes()),
            };
            let code = i32::from(out.write_all(&[tag]).and(out.write_all(&body)).is_err());
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(write_end);
            let mut bytes = Vec::new();
            std::fs::File::from(read_end).read_to_end(&mut bytes)?;
            let status = nix::sys::wait::waitpid(child, None)?;
            match bytes.split_first() {
                Some((b'0', body)) => Ok(body.to_vec()),
                Some((_, body)) => Err(anyhow::anyhow!("{}", String::from_utf8_lossy(body))),
                None => Err(anyhow::anyhow!(
                    "the part run as {} ended without an answer ({status:?})",
                    owner.name
                )),
            }
        }
    }
}

/// A listening TCP socket on every IPv4 address, as `listen PORT;` asks of nginx.
fn bind_listener(port: u16) -> std::io::Result<OwnedFd> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], port)).into())?;
    socket.listen(511)?;
    Ok(socket.into())
}

/// The `NGINX` environment value that makes nginx inherit `fd` as a listening socket
/// (how nginx's own binary upgrade hands sockets over).
pub fn nginx_inherit_value(fd: &OwnedFd) -> String {
    format!("{};", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_harmless_variables_cross() {
        for kept in [
            "PATH",
            "LANG",
            "LC_ALL",
            "TERM",
            "OMERODIR",
            "OMERO_CONFIG",
            "NOTIFY_SOCKET",
        ] {
            assert!(crosses(kept), "{kept}");
        }
        for dropped in [
            "SECRET_TOKEN",
            "TMPDIR",
            "LD_PRELOAD",
            "PYTHONPATH",
            "NGINX",
            "HOME",
        ] {
            assert!(!crosses(dropped), "{dropped}");
        }
    }

    #[test]
    fn whoever_owns_a_directory_above_the_site_owns_the_site() {
        if !nix::unistd::geteuid().is_root() {
            return; // only root can give a directory away
        }
        let home = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(home.path(), Some(65534), Some(65534)).unwrap();
        let site = Site::new(home.path().join("OMERO.web"));
        std::fs::create_dir(site.root()).unwrap();
        assert_eq!(site_owner(&site).map(|o| o.uid), Some(65534));
    }

    #[test]
    fn a_site_of_nobody_but_root_has_no_owner_to_drop_to() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::new(dir.path());
        let me = nix::unistd::geteuid().as_raw();
        match site_owner(&site) {
            None => assert_eq!(me, 0),
            Some(owner) => assert_eq!(owner.uid, me),
        }
    }
}
