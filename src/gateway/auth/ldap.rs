//! LDAP as a user source, configured by OMERO's `omero.ldap.*` properties: a simple
//! bind as the user (the DN found by a search under `omero.ldap.base` with
//! `user_filter` and the `omeName` attribute of `user_mapping`, bound as the service
//! account `omero.ldap.username` when one is set), then the user's groups by a group
//! search (`group_filter`, members by `member=<dn>` or `memberUid=<name>`, names by
//! `group_mapping`'s `name` attribute). Those group names are our groups: the
//! repository's top-level directories. `ldaps://` URLs and `omero.ldap.starttls`
//! encrypt; certificates are always checked (the system's trust store).
//!
//! The groups found at a login are kept in a small file per user under `var/`, so
//! every worker's guard knows them without asking the directory on each request; a
//! new login refreshes them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use serde::{Deserialize, Serialize};

use super::users::check_name;
use super::{UserSource, Verdict};

/// LDAP's result code for a wrong password or an unknown DN.
const INVALID_CREDENTIALS: u32 = 49;

/// How long a directory may take to answer before the login says it is unavailable.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The `omero.ldap.*` settings the gateway uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdapConfig {
    /// Tried in order until one answers.
    pub urls: Vec<String>,
    pub base: String,
    /// Service account for the user search; empty: search anonymously.
    pub bind_dn: String,
    pub bind_password: String,
    pub user_filter: String,
    /// The attribute holding the login name (`omeName=` in `user_mapping`).
    pub user_attribute: String,
    pub group_filter: String,
    /// The attribute holding a group's name (`name=` in `group_mapping`).
    pub group_attribute: String,
    /// A group every LDAP user is in as well (empty: none).
    pub new_user_group: String,
    pub starttls: bool,
    /// Certificate authorities (PEM) trusted besides the system's, for a directory
    /// whose certificate a site CA signed.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Where each user's groups from the last login are kept.
    pub groups_dir: PathBuf,
}

/// The value of `key` in an OMERO mapping such as `omeName=uid,email=mail`.
pub fn mapping_value(mapping: &str, key: &str) -> Option<String> {
    mapping
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A filter as LDAP needs it: in parentheses.
fn parenthesised(filter: &str) -> String {
    let filter = filter.trim();
    if filter.starts_with('(') {
        filter.to_string()
    } else {
        format!("({filter})")
    }
}

fn first_value(entry: &SearchEntry, attribute: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
        .and_then(|(_, values)| values.first().cloned())
}

impl LdapConfig {
    /// A TLS connector that also trusts `ca_file`'s authorities (the checks stay on).
    fn tls_connector(&self) -> Result<Option<native_tls::TlsConnector>, String> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let pem = std::fs::read(path)
            .map_err(|e| format!("reading omero.ldap.ca_file {}: {e}", path.display()))?;
        let mut builder = native_tls::TlsConnector::builder();
        for cert in pem_certificates(&pem) {
            let cert = native_tls::Certificate::from_pem(&cert)
                .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
            builder.add_root_certificate(cert);
        }
        builder
            .build()
            .map(Some)
            .map_err(|e| format!("setting up TLS with {}: {e}", path.display()))
    }

    fn connect(&self) -> Result<LdapConn, String> {
        let connector = self.tls_connector()?;
        let mut last = String::from("no omero.ldap.urls");
        for url in &self.urls {
            let mut settings = LdapConnSettings::new()
                .set_conn_timeout(TIMEOUT)
                .set_starttls(self.starttls && url.starts_with("ldap://"));
            if let Some(connector) = &connector {
                settings = settings.set_connector(connector.clone());
            }
            match LdapConn::with_settings(settings, url) {
                Ok(mut conn) => {
                    conn.with_timeout(TIMEOUT);
                    return Ok(conn);
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(last)
    }
}

impl UserSource for LdapConfig {
    /// Whether `user` logged in through LDAP before (the directory is asked only at
    /// a login).
    fn knows(&self, user: &str) -> bool {
        self.groups_of(user).is_some()
    }

    /// Checks `password` by binding as `user`; on success records the user's groups.
    fn authenticate(&self, user: &str, password: &str) -> Verdict {
        // An empty password is an anonymous bind, which every directory accepts.
        if password.is_empty() || check_name("user", user).is_err() {
            return Verdict::Invalid;
        }
        match self.bind_and_find_groups(user, password) {
            Ok(Some(groups)) => match self.record_groups(user, &groups) {
                Ok(()) => Verdict::Valid,
                Err(e) => Verdict::Unavailable(e),
            },
            Ok(None) => Verdict::Invalid,
            Err(e) => Verdict::Unavailable(e),
        }
    }

    /// The groups `user` had at their last LDAP login; `None` if they never logged in.
    fn groups_of(&self, user: &str) -> Option<Vec<String>> {
        check_name("user", user).ok()?;
        read_groups(&self.groups_file(user))
    }
}

impl LdapConfig {
    /// `Ok(None)`: no such user or a wrong password; `Err`: the directory failed.
    fn bind_and_find_groups(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<Vec<String>>, String> {
        let mut conn = self.connect()?;
        if !self.bind_dn.is_empty() {
            conn.simple_bind(&self.bind_dn, &self.bind_password)
                .and_then(|r| r.success())
                .map_err(|e| format!("binding as the service account {}: {e}", self.bind_dn))?;
        }
        let filter = format!(
            "(&{}({}={}))",
            parenthesised(&self.user_filter),
            self.user_attribute,
            ldap_escape(user)
        );
        let (entries, _) = conn
            .search(&self.base, Scope::Subtree, &filter, vec!["1.1"])
            .and_then(|r| r.success())
            .map_err(|e| format!("searching {filter} under {}: {e}", self.base))?;
        let [entry] = entries.as_slice() else {
            // Nobody, or a name that is not unique: no login either way.
            let _ = conn.unbind();
            return Ok(None);
        };
        let dn = SearchEntry::construct(entry.clone()).dn;
        let bound = conn
            .simple_bind(&dn, password)
            .map_err(|e| format!("binding as {dn}: {e}"))?;
        if bound.rc == INVALID_CREDENTIALS {
            let _ = conn.unbind();
            return Ok(None);
        }
        bound
            .success()
            .map_err(|e| format!("binding as {dn}: {e}"))?;
        let groups = self.groups_of_dn(&mut conn, user, &dn)?;
        let _ = conn.unbind();
        Ok(Some(groups))
    }

    fn groups_of_dn(
        &self,
        conn: &mut LdapConn,
        user: &str,
        dn: &str,
    ) -> Result<Vec<String>, String> {
        let filter = format!(
            "(&{}(|(member={})(uniqueMember={})(memberUid={})))",
            parenthesised(&self.group_filter),
            ldap_escape(dn),
            ldap_escape(dn),
            ldap_escape(user)
        );
        let (entries, _) = conn
            .search(
                &self.base,
                Scope::Subtree,
                &filter,
                vec![self.group_attribute.as_str()],
            )
            .and_then(|r| r.success())
            .map_err(|e| format!("searching groups {filter} under {}: {e}", self.base))?;
        let mut groups: Vec<String> = entries
            .into_iter()
            .filter_map(|e| first_value(&SearchEntry::construct(e), &self.group_attribute))
            // Only names that can be a directory of the repository.
            .filter(|g| check_name("group", g).is_ok())
            .collect();
        if !self.new_user_group.is_empty() {
            groups.push(self.new_user_group.clone());
        }
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    fn groups_file(&self, user: &str) -> PathBuf {
        self.groups_dir.join(format!("{user}.json"))
    }

    fn record_groups(&self, user: &str, groups: &[String]) -> Result<(), String> {
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&self.groups_dir)
            .map_err(|e| format!("creating {}: {e}", self.groups_dir.display()))?;
        let text = serde_json::to_string(groups).expect("names serialise");
        let path = self.groups_file(user);
        crate::fsutil::write_atomic(&path, text.as_bytes(), Some(0o600))
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

/// Each `BEGIN CERTIFICATE` block of a PEM bundle (`from_pem` reads only the first).
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    let mut certs = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(end) = rest[start..].find(END) else {
            break;
        };
        let stop = start + end + END.len();
        certs.push(rest.as_bytes()[start..stop].to_vec());
        rest = &rest[stop..];
    }
    certs
}

fn read_groups(path: &Path) -> Option<Vec<String>> {
    // Only a regular file (a FIFO put in its place cannot hang the guard).
    let file = crate::fsutil::open_regular(path).ok()?;
    serde_json::from_reader(std::io::BufReader::new(file)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omero_mappings_give_their_attributes() {
        let mapping = "omeName=uid, firstName=givenName,lastName=sn,email=mail";
        assert_eq!(mapping_value(mapping, "omeName").as_deref(), Some("uid"));
        assert_eq!(mapping_value(mapping, "email").as_deref(), Some("mail"));
        assert_eq!(mapping_value(mapping, "name"), None);
        assert_eq!(parenthesised("objectClass=person"), "(objectClass=person)");
        assert_eq!(
            parenthesised("(objectClass=person)"),
            "(objectClass=person)"
        );
    }
}
