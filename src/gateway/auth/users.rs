//! The local user store: users with argon2id password hashes, and groups with their
//! members, in one JSON file under the site (`etc/access.json`). The file is written
//! atomically with mode 0600 (it holds hashes), and read leniently by the workers,
//! which reload it when it changes so `user passwd|del` take effect at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// The store's file, relative to the site directory.
pub const STORE_FILE: &str = "etc/access.json";

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserStore {
    #[serde(default)]
    pub users: BTreeMap<String, User>,
    /// Group name → member user names.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    /// The PHC string of an argon2id hash.
    pub hash: String,
}

/// Names as OMERO's (and a file system's) would take them: letters, digits and
/// `._-@`, not starting with a dot, at most 64 characters.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {kind} name {name:?}: use 1-64 letters, digits, '.', '_', '-' or '@' (not starting with '.')"
        ))
    }
}

/// An argon2id hash of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no random salt from the system: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("encoding the salt: {e}"))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// A hash of a password nobody has, verified against when the user does not exist,
/// so an unknown name takes as long as a wrong password (no user enumeration by
/// timing).
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

impl UserStore {
    pub fn path(site_root: &Path) -> PathBuf {
        site_root.join(STORE_FILE)
    }

    /// Reads the store; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<UserStore, String> {
        use std::os::unix::fs::OpenOptionsExt;
        // Never through a symlink: the store must be the site's own regular file.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(crate::fsutil::explain_refused_link)
            .and_then(|file| match file.metadata() {
                Ok(meta) if meta.is_file() => Ok(file),
                Ok(_) => Err(std::io::Error::other("not a regular file")),
                Err(e) => Err(e),
            });
        let text = match opened {
            Ok(mut file) => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut file, &mut text)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                text
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UserStore::default()),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a user store: {e}", path.display()))
    }

    /// Writes the store atomically, 0600 (the site owner's alone: it holds hashes).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).expect("the store serialises");
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!(
                "{} is a symlink; refused (the user store must be a regular file)",
                path.display()
            ));
        }
        crate::fsutil::write_atomic(path, text.as_bytes(), Some(0o600))
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Whether `password` is `user`'s; constant-time in the hash comparison, and as
    /// slow for an unknown user as for a known one.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let (hash, known) = match self.users.get(user) {
            Some(u) => (u.hash.as_str(), true),
            None => (decoy_hash(), false),
        };
        let matches = PasswordHash::new(hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        matches && known
    }

    /// The groups `user` is a member of.
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, members)| members.iter().any(|m| m == user))
            .map(|(group, _)| group.clone())
            .collect()
    }

    pub fn add_user(&mut self, name: &str, password: &str) -> Result<(), String> {
        check_name("user", name)?;
        if self.users.contains_key(name) {
            return Err(format!("user {name} exists already (use `user passwd`)"));
        }
        self.users.insert(
            name.to_string(),
            User {
                hash: hash_password(password)?,
            },
        );
        Ok(())
    }

    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), String> {
        let user = self
            .users
            .get_mut(name)
            .ok_or_else(|| format!("no user {name}"))?;
        user.hash = hash_password(password)?;
        Ok(())
    }

    /// Removes the user and their memberships.
    pub fn delete_user(&mut self, name: &str) -> Result<(), String> {
        self.users
            .remove(name)
            .ok_or_else(|| format!("no user {name}"))?;
        for members in self.groups.values_mut() {
            members.retain(|m| m != name);
        }
        Ok(())
    }

    pub fn add_group(&mut self, name: &str) -> Result<(), String> {
        check_name("group", name)?;
        if self.groups.contains_key(name) {
            return Err(format!("group {name} exists already"));
        }
        self.groups.insert(name.to_string(), Vec::new());
        Ok(())
    }

    pub fn delete_group(&mut self, name: &str) -> Result<(), String> {
        self.groups
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| format!("no group {name}"))
    }

    /// Adds and removes members of `group`; every name must be a user.
    pub fn change_members(
        &mut self,
        group: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), String> {
        if let Some(unknown) = add
            .iter()
            .chain(remove)
            .find(|u| !self.users.contains_key(*u))
        {
            return Err(format!("no user {unknown}"));
        }
        let members = self
            .groups
            .get_mut(group)
            .ok_or_else(|| format!("no group {group}"))?;
        for user in add {
            if !members.contains(user) {
                members.push(user.clone());
            }
        }
        members.retain(|m| !remove.contains(m));
        members.sort();
        Ok(())
    }
}

impl super::UserSource for UserStore {
    fn knows(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    fn authenticate(&self, user: &str, password: &str) -> super::Verdict {
        if self.verify(user, password) {
            super::Verdict::Valid
        } else {
            super::Verdict::Invalid
        }
    }

    fn groups_of(&self, user: &str) -> Option<Vec<String>> {
        self.knows(user).then(|| UserStore::groups_of(self, user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_for_their_user_and_hashes_are_argon2id() {
        let mut store = UserStore::default();
        store.add_user("alice", "s3cret").unwrap();
        assert!(store.users["alice"].hash.starts_with("$argon2id$"));
        assert!(store.verify("alice", "s3cret"));
        assert!(!store.verify("alice", "s3creT"));
        assert!(!store.verify("bob", "s3cret"));
        store.set_password("alice", "new").unwrap();
        assert!(!store.verify("alice", "s3cret") && store.verify("alice", "new"));
    }

    #[test]
    fn groups_keep_members_and_deleting_a_user_drops_their_memberships() {
        let mut store = UserStore::default();
        store.add_user("alice", "a").unwrap();
        store.add_group("labA").unwrap();
        store
            .change_members("labA", &["alice".into()], &[])
            .unwrap();
        assert_eq!(store.groups_of("alice"), vec!["labA"]);
        assert_eq!(
            store.change_members("labA", &["nobody".into()], &[]),
            Err("no user nobody".into())
        );
        store.delete_user("alice").unwrap();
        assert!(store.groups["labA"].is_empty());
        assert!(store.add_group("../etc").is_err());
    }
}
