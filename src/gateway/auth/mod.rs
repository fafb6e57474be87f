//! Access control for the embedded gateway, OMERO's model in small: local users and
//! groups (`users`), sessions in files every worker shares (`sessions`), and who sees
//! what (`Viewer`). The HTTP layer uses it: OMERO.web's login and logout pages
//! (`http::login`, `http::api_login`) and the guard every request passes before it is
//! dispatched (`http::guard`).
//!
//! **The switch:** access control is on as soon as the site has a user store
//! (`etc/access.json`, made by the first `omero-webctl user add` or `group add`).
//! Without one the gateway serves everyone, as it always did (loopback demo sites).
//! A worker that has seen the store keeps access control on even if the file
//! disappears (then nobody logs in): it fails closed, never open.
//!
//! **What belongs to whom:** the top-level directories of the repository are groups'
//! data, as OMERO groups own data: `<repository>/labA/…` belongs to group `labA`.
//! `<repository>/public/…` is the public group's, which the public user
//! (`omero.web.public.enabled`) sees through the URLs `omero.web.public.url_filter`
//! allows. Files directly in the repository's top directory belong to no group and
//! are seen by nobody once access control is on.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

pub mod ldap;
pub mod sessions;
pub mod throttle;
pub mod users;

use sessions::{Expiry, SessionPlace, SessionStore};
use users::UserStore;

/// What a user source says of a user name and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid,
    /// The source could not be asked (the reason, for the log).
    Unavailable(String),
}

/// Where users come from: the local store (`users`) and LDAP (`ldap`).
pub trait UserSource {
    /// Whether this source knows `user` (then it alone decides their logins).
    fn knows(&self, user: &str) -> bool;
    fn authenticate(&self, user: &str, password: &str) -> Verdict;
    /// `user`'s groups, or `None` when the source does not know them.
    fn groups_of(&self, user: &str) -> Option<Vec<String>>;
}

/// The group whose data the public user sees.
pub const PUBLIC_GROUP: &str = "public";

/// The session cookie as OMERO's `omero.web.session_cookie_*` properties shape it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CookieConfig {
    pub name: String,
    pub path: String,
    pub domain: Option<String>,
    pub secure: bool,
    pub samesite: String,
    /// `Max-Age`, or none for a browser-session cookie
    /// (`omero.web.session_expire_at_browser_close`).
    pub max_age: Option<u64>,
}

/// What the gateway's access control needs, part of every worker's spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessConfig {
    /// The user store; its existence switches access control on.
    pub store: PathBuf,
    pub sessions_dir: PathBuf,
    /// Where sessions live: `sessions_dir`, or the Redis OMERO's properties name.
    pub session_place: SessionPlace,
    /// Why a Redis setting was not used, when one was not.
    pub session_problem: Option<String>,
    /// Failed-login counts every worker shares.
    pub throttle_dir: PathBuf,
    pub cookie: CookieConfig,
    pub expiry: Expiry,
    pub public_enabled: bool,
    /// Python syntax (OMERO compiles it with `re`); searched in the request's path.
    pub public_url_filter: String,
    pub public_get_only: bool,
    /// LDAP as a second user source (`omero.ldap.config`); it also switches access
    /// control on.
    #[serde(default)]
    pub ldap: Option<ldap::LdapConfig>,
    /// The header a front that did the login names the user in (`X-Remote-User`);
    /// empty: no such header is believed.
    #[serde(default)]
    pub remote_user_header: String,
    /// The proxies whose header is believed, in `--forwarded-allow-ips` style.
    #[serde(default)]
    pub remote_user_proxies: String,
}

impl Default for AccessConfig {
    /// No store path: access control off (a spec from before access control).
    fn default() -> AccessConfig {
        AccessConfig {
            store: PathBuf::new(),
            sessions_dir: PathBuf::new(),
            session_place: SessionPlace::Files(PathBuf::new()),
            session_problem: None,
            throttle_dir: PathBuf::new(),
            cookie: CookieConfig {
                name: "sessionid".into(),
                path: "/".into(),
                domain: None,
                secure: false,
                samesite: "Lax".into(),
                max_age: None,
            },
            expiry: Expiry {
                absolute: 86400,
                idle: 600,
            },
            public_enabled: false,
            public_url_filter: String::new(),
            public_get_only: true,
            ldap: None,
            remote_user_header: String::new(),
            remote_user_proxies: String::new(),
        }
    }
}

impl AccessConfig {
    pub fn from_settings(settings: &crate::config::Settings) -> AccessConfig {
        let site = crate::site::Site::new(&settings.site_root);
        let a = &settings.access;
        let sessions_dir = site.var_dir().join("sessions");
        let (session_place, session_problem) = SessionPlace::from_properties(
            a.session_engine.as_deref(),
            a.caches.as_deref(),
            &sessions_dir,
        );
        AccessConfig {
            store: UserStore::path(site.root()),
            sessions_dir,
            session_place,
            session_problem,
            throttle_dir: site.var_dir().join("login-failures"),
            cookie: CookieConfig {
                name: a.cookie_name.clone().unwrap_or_else(|| "sessionid".into()),
                path: a.cookie_path.clone().unwrap_or_else(|| "/".into()),
                domain: a.cookie_domain.clone(),
                secure: a.cookie_secure,
                samesite: a.cookie_samesite.clone(),
                max_age: (!a.expire_at_browser_close).then_some(a.cookie_age),
            },
            expiry: Expiry {
                absolute: a.cookie_age,
                idle: a.idle_timeout,
            },
            public_enabled: a.public_enabled,
            public_url_filter: a.public_url_filter.clone(),
            public_get_only: a.public_get_only,
            ldap: a.ldap.as_ref().map(|l| ldap::LdapConfig {
                urls: l.urls.clone(),
                base: l.base.clone(),
                bind_dn: l.username.clone(),
                bind_password: l.password.clone(),
                user_filter: l.user_filter.clone(),
                user_attribute: ldap::mapping_value(&l.user_mapping, "omeName")
                    .unwrap_or_else(|| "cn".into()),
                group_filter: l.group_filter.clone(),
                group_attribute: ldap::mapping_value(&l.group_mapping, "name")
                    .unwrap_or_else(|| "cn".into()),
                new_user_group: l.new_user_group.clone(),
                starttls: l.starttls,
                ca_file: l.ca_file.clone(),
                groups_dir: site.var_dir().join("ldap-users"),
            }),
            remote_user_header: a.remote_user_header.clone(),
            remote_user_proxies: a.remote_user_proxies.clone(),
        }
    }
}

/// What the panel's Dashboard shows of access control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccessCounts {
    /// Live sessions (expired ones not yet swept are not counted).
    pub sessions: usize,
    /// Distinct users with a live session.
    pub users: usize,
    /// Failed logins in the last hour, every user and address.
    pub failed_last_hour: usize,
}

/// The counts for a site whose access control is on (None when it is off), read
/// from the stores the workers write; an error when the session store cannot be read.
pub fn counts(config: &AccessConfig) -> Option<Result<AccessCounts, String>> {
    if config.store.as_os_str().is_empty() || std::fs::symlink_metadata(&config.store).is_err() {
        return None;
    }
    let failed_last_hour = throttle::Throttle::new(&config.throttle_dir).recent_failures();
    let listed = SessionStore::open(&config.session_place, config.expiry).and_then(|store| {
        let sessions = store.list()?;
        Ok(sessions
            .into_iter()
            .filter(|(_, s)| !store.is_expired(s))
            .map(|(_, s)| s.user)
            .collect::<Vec<_>>())
    });
    Some(listed.map(|users| {
        let distinct: std::collections::BTreeSet<&String> = users.iter().collect();
        AccessCounts {
            sessions: users.len(),
            users: distinct.len(),
            failed_last_hour,
        }
    }))
}

/// Who is asking, once the guard has looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Access control is off: everything is everyone's.
    Everyone,
    User {
        name: String,
        groups: Vec<String>,
    },
    /// OMERO's public user, on a URL the filter allows.
    Public,
    /// Not logged in.
    Nobody,
}

impl Viewer {
    /// Whether this viewer sees data of `group` (`None`: data of no group).
    pub fn sees(&self, group: Option<&str>) -> bool {
        match self {
            Viewer::Everyone => true,
            Viewer::User { groups, .. } => group.is_some_and(|g| groups.iter().any(|m| m == g)),
            Viewer::Public => group == Some(PUBLIC_GROUP),
            Viewer::Nobody => false,
        }
    }

    /// Whether this viewer may save rendering settings of data of `group` (what
    /// imgData's `perms` report and `saveImgRDef` enforces): everyone without access
    /// control; a logged-in member of the owning group; never the public user (OMERO's
    /// public user is read-only) nor nobody.
    pub fn may_save_settings(&self, group: Option<&str>) -> bool {
        match self {
            Viewer::Everyone => true,
            Viewer::User { .. } => self.sees(group),
            Viewer::Public | Viewer::Nobody => false,
        }
    }
}

/// The group that owns the image at `path`: the top-level directory below `root`.
pub fn owning_group<'p>(root: &Path, path: &'p Path) -> Option<&'p str> {
    let relative = path.strip_prefix(root).ok()?;
    let mut parts = relative.components();
    let first = match parts.next()? {
        Component::Normal(name) => name.to_str()?,
        _ => return None,
    };
    // A file directly in the top directory is in no group.
    parts.next().map(|_| first)
}

/// The access control of one process (a worker, or the master's publisher).
pub struct Access {
    pub config: AccessConfig,
    pub sessions: SessionStore,
    url_filter: Option<fancy_regex::Regex>,
    users: Mutex<Option<(FileStamp, Arc<UserStore>)>>,
    was_on: AtomicBool,
    remote_user_proxies: crate::http_app::forwarded::TrustedProxies,
    /// Whether this process logged the header from an untrusted address already.
    untrusted_header_logged: AtomicBool,
}

/// What tells a changed file (the user store, a session file) from the one read:
/// files here are replaced whole (a new inode), never edited in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    fn of_metadata(meta: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            inode: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }

    /// The stamp of the regular file at `path`; links are not followed.
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        meta.is_file().then(|| FileStamp::of_metadata(&meta))
    }
}

impl Access {
    pub fn new(config: AccessConfig) -> Access {
        // A Redis URL the client refuses ends in a store nobody can log in to (the
        // session calls fail with 503), never in one that lets everyone in.
        let sessions =
            SessionStore::open(&config.session_place, config.expiry).unwrap_or_else(|e| {
                eprintln!("{e}: nobody can log in until it is fixed");
                SessionStore::unusable(e, config.expiry)
            });
        Access {
            sessions,
            url_filter: compile_url_filter(&config.public_url_filter),
            users: Mutex::new(None),
            was_on: AtomicBool::new(false),
            remote_user_proxies: crate::http_app::forwarded::TrustedProxies::parse(
                &config.remote_user_proxies,
            ),
            untrusted_header_logged: AtomicBool::new(false),
            config,
        }
    }

    /// Whether access control is on (see the module's note on the switch).
    pub fn is_on(&self) -> bool {
        if self.was_on.load(Ordering::Relaxed) {
            return true;
        }
        let on = self.config.ldap.is_some()
            || (!self.config.store.as_os_str().is_empty()
                && std::fs::symlink_metadata(&self.config.store).is_ok());
        if on {
            self.was_on.store(true, Ordering::Relaxed);
        }
        on
    }

    /// The user store as the file has it now; an unreadable store is empty (nobody
    /// logs in) rather than the last one read.
    pub fn users(&self) -> Arc<UserStore> {
        let stamp = FileStamp::of(&self.config.store);
        let mut cached = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(stamp), Some((seen, store))) = (stamp, cached.as_ref())
            && *seen == stamp
        {
            return store.clone();
        }
        let store = Arc::new(UserStore::load(&self.config.store).unwrap_or_default());
        if let Some(stamp) = stamp {
            *cached = Some((stamp, store.clone()));
        }
        store
    }

    /// Checks a login: a user the local store knows is its alone; any other name is
    /// LDAP's when LDAP is configured (else the store's, which refuses it as slowly
    /// as a wrong password).
    pub fn authenticate(&self, user: &str, password: &str) -> Verdict {
        let local = self.users();
        match &self.config.ldap {
            Some(ldap) if !local.knows(user) => ldap.authenticate(user, password),
            _ => local.authenticate(user, password),
        }
    }

    /// The groups of a logged-in `user`, from the source that knows them; `None`
    /// when no source knows the user any more (their sessions end).
    pub fn groups_of(&self, user: &str) -> Option<Vec<String>> {
        let local = self.users();
        if local.knows(user) {
            return UserSource::groups_of(&*local, user);
        }
        self.config.ldap.as_ref()?.groups_of(user)
    }

    /// The user the front names in the trusted header, when the header is configured,
    /// present, and came from a trusted proxy (`peer`: the connection's address).
    /// `Err` carries the log line for the first header from any other address (once
    /// per process, so a scanner cannot flood the log).
    pub fn remote_user(
        &self,
        value: Option<&str>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Option<String>, String> {
        if self.config.remote_user_header.is_empty() {
            return Ok(None);
        }
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        match peer {
            Some(peer) if self.remote_user_proxies.trusts(peer) => {
                Ok(users::check_name("user", value)
                    .is_ok()
                    .then(|| value.to_string()))
            }
            _ if self.untrusted_header_logged.swap(true, Ordering::Relaxed) => Ok(None),
            _ => Err(format!(
                "Ignored the {} header from {}: not one of omero.web.access.remote_user_proxies ({}); logged once per worker",
                self.config.remote_user_header,
                peer.map_or("an unknown address".to_string(), |p| p.to_string()),
                self.config.remote_user_proxies
            )),
        }
    }

    /// Whether the public user may open `path` with `method` (OMERO's
    /// `is_valid_public_url`: the filter is searched, not matched, in the path).
    pub fn public_allows(&self, method: &str, path: &str) -> bool {
        if !self.config.public_enabled || (self.config.public_get_only && method != "GET") {
            return false;
        }
        self.url_filter
            .as_ref()
            .is_some_and(|re| re.is_match(path).unwrap_or(false))
    }

    /// Whether nginx may serve image `id`'s published default thumbnail without asking
    /// the pool: always with access control off, else only a public image whose
    /// thumbnail URL the public user may open.
    pub fn publishable(&self, group: Option<&str>, thumbnail_path: &str) -> bool {
        !self.is_on() || (group == Some(PUBLIC_GROUP) && self.public_allows("GET", thumbnail_path))
    }
}

/// OMERO's filter compiled with a regex engine that has lookaround (OMERO's documented
/// filters use a negative lookahead). Python's `(?#…)` comments, which the engine
/// lacks, are dropped first. A pattern that does not compile allows nothing.
pub fn compile_url_filter(pattern: &str) -> Option<fancy_regex::Regex> {
    if pattern.is_empty() {
        return None;
    }
    let mut cleaned = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(start) = rest.find("(?#") {
        // An escaped "\(?#" is a literal, not a comment.
        let escaped = rest[..start]
            .chars()
            .rev()
            .take_while(|&c| c == '\\')
            .count()
            % 2
            == 1;
        if escaped {
            cleaned.push_str(&rest[..start + 3]);
            rest = &rest[start + 3..];
            continue;
        }
        cleaned.push_str(&rest[..start]);
        match rest[start..].find(')') {
            Some(end) => rest = &rest[start + end + 1..],
            None => return None,
        }
    }
    cleaned.push_str(rest);
    fancy_regex::Regex::new(&cleaned).ok()
}

/// Whether nginx may serve `entry`'s published default thumbnail (see
/// [`Access::publishable`]): nginx's location answers both thumbnail URLs, so the
/// public user must be allowed both.
pub fn publishable_entry(
    access: &Access,
    root: &Path,
    prefix: &str,
    entry: &crate::gateway::repository::ImageEntry,
) -> bool {
    let group = owning_group(root, &entry.path);
    ["webgateway", "webclient"].iter().all(|app| {
        access.publishable(
            group,
            &format!("{prefix}/{app}/render_thumbnail/{}/", entry.id),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter OMERO's documentation gives for a public site, lookahead included.
    const DOCUMENTED_FILTER: &str = r"^/(?!webadmin|webclient/(action|logout|annotate_(file|tag|comment|rating|map)|tag_image|attach_to_(share|field)|publish|save_(rdef|annotations))|webgateway/(archived_files|download_as))";

    #[test]
    fn url_filters_behave_as_pythons_re_search() {
        let nothing = compile_url_filter("(?#This regular expression matches nothing)a^").unwrap();
        assert!(!nothing.is_match("/webgateway/render_thumbnail/1/").unwrap());
        assert!(!nothing.is_match("a").unwrap());
        let documented = compile_url_filter(DOCUMENTED_FILTER).unwrap();
        assert!(
            documented
                .is_match("/webgateway/render_thumbnail/1/")
                .unwrap()
        );
        assert!(documented.is_match("/webclient/img_detail/1/").unwrap());
        assert!(
            !documented
                .is_match("/webgateway/archived_files/download/1/")
                .unwrap()
        );
        assert!(!documented.is_match("/webadmin/").unwrap());
        assert!(!documented.is_match("/webclient/logout/").unwrap());
        // search, not match: a filter without ^ finds its text anywhere.
        let anywhere = compile_url_filter("render_thumbnail").unwrap();
        assert!(
            anywhere
                .is_match("/webgateway/render_thumbnail/1/")
                .unwrap()
        );
    }

    #[test]
    fn the_remote_user_header_is_believed_only_from_trusted_proxies_and_logged_once() {
        let off = Access::new(AccessConfig::default());
        let front: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(off.remote_user(Some("alice"), Some(front)), Ok(None));
        let access = Access::new(AccessConfig {
            remote_user_header: "X-Remote-User".into(),
            remote_user_proxies: "10.0.0.0/8, 192.0.2.7".into(),
            ..AccessConfig::default()
        });
        assert_eq!(
            access.remote_user(Some("alice"), Some(front)),
            Ok(Some("alice".into()))
        );
        assert_eq!(access.remote_user(Some("../x"), Some(front)), Ok(None));
        assert_eq!(access.remote_user(None, Some(front)), Ok(None));
        let stranger: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let logged = access
            .remote_user(Some("alice"), Some(stranger))
            .unwrap_err();
        assert!(logged.contains("from 127.0.0.1"), "{logged}");
        assert_eq!(access.remote_user(Some("alice"), Some(stranger)), Ok(None));
        assert_eq!(access.remote_user(Some("alice"), None), Ok(None));
    }

    #[test]
    fn top_level_directories_are_groups() {
        let root = Path::new("/repo");
        assert_eq!(
            owning_group(root, Path::new("/repo/labA/x/y.tif")),
            Some("labA")
        );
        assert_eq!(owning_group(root, Path::new("/repo/y.tif")), None);
        assert_eq!(owning_group(root, Path::new("/elsewhere/labA/y.tif")), None);
        let user = Viewer::User {
            name: "a".into(),
            groups: vec!["labA".into()],
        };
        assert!(user.sees(Some("labA")) && !user.sees(Some("labB")) && !user.sees(None));
        assert!(Viewer::Public.sees(Some(PUBLIC_GROUP)) && !Viewer::Public.sees(Some("labA")));
        assert!(!Viewer::Nobody.sees(Some(PUBLIC_GROUP)));
    }

    #[test]
    fn settings_are_saved_by_everyone_or_a_member_never_the_public_user() {
        assert!(Viewer::Everyone.may_save_settings(None));
        assert!(Viewer::Everyone.may_save_settings(Some("labA")));
        let member = Viewer::User {
            name: "a".into(),
            groups: vec!["labA".into(), PUBLIC_GROUP.into()],
        };
        assert!(member.may_save_settings(Some("labA")));
        assert!(member.may_save_settings(Some(PUBLIC_GROUP)));
        assert!(!member.may_save_settings(Some("labB")));
        assert!(!member.may_save_settings(None));
        // The public user sees public data but may not change it.
        assert!(Viewer::Public.sees(Some(PUBLIC_GROUP)));
        assert!(!Viewer::Public.may_save_settings(Some(PUBLIC_GROUP)));
        assert!(!Viewer::Nobody.may_save_settings(Some(PUBLIC_GROUP)));
        assert!(!Viewer::Nobody.may_save_settings(None));
    }
}
