//! The config store: one [`Config`] for every face, over two documents side by
//! side: an embedded site's `etc/omero-web.toml` ([`super::toml_doc`]) and an
//! OMERO.web site's `etc/grid/config.xml` ([`super::omero_xml`], OMERO's profile,
//! `__ACTIVE__` and lock-file rules). Which one is the site's kind. Validation,
//! registry lookups, defaults and errors are shared, so both kinds behave and
//! report alike: loading validates every value (file, line, key and reason);
//! saving takes the file's lock, refuses to overwrite a file that changed since it
//! was read, and writes atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::ConfigError;
use super::lenient;
use super::lock::{self, FileLock};
use super::omero_xml::{self, OmeroXml};
use super::property::{Property, Value};
use super::registry;
use super::settings::Settings;
use super::toml_doc;
use crate::site::{Site, SiteKind};

/// A value as a document holds it, before validation.
pub enum Raw<'a> {
    /// A TOML value (native integers and booleans allowed).
    Toml(&'a toml_edit::Value),
    /// Text (every config.xml value).
    Text(&'a str),
}

impl Raw<'_> {
    /// Whether a TOML value is of a type the property cannot hold at all (an array
    /// for an integer), rather than a value to read.
    fn toml_type_mismatch(&self, prop: &Property) -> bool {
        !matches!(
            (self, prop.kind),
            (Raw::Toml(toml_edit::Value::String(_)), _)
                | (
                    Raw::Toml(toml_edit::Value::Integer(_)),
                    super::Kind::Int { .. }
                )
                | (Raw::Toml(toml_edit::Value::Boolean(_)), super::Kind::Bool)
                | (Raw::Text(_), _)
        )
    }

    /// For messages and unknown keys: strings unquoted.
    fn text(&self) -> String {
        match self {
            Raw::Toml(v) => toml_doc::display(v),
            Raw::Text(s) => s.to_string(),
        }
    }
}

/// A known key whose text in the site's file the strict rules refuse. It is kept as
/// written and never stops the site from loading ("what OMERO runs, we run");
/// `message` says how OMERO reads it and what omero-webctl uses instead.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValueWarning {
    pub key: String,
    /// The text as the file holds it (`********` for a secret).
    pub raw: String,
    /// Line in the file (1-based).
    pub line: usize,
    pub message: String,
    /// OMERO.web's own parser fails on it: OMERO.web cannot start until it is fixed.
    pub omero_fails: bool,
    /// Why `config set` would refuse it, and what is allowed.
    #[serde(skip)]
    pub refused: String,
}

impl std::fmt::Display for ValueWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {:?}: {}", self.key, self.raw, self.message)
    }
}

/// The document behind a [`Config`].
#[derive(Debug, Clone)]
enum Document {
    Toml(toml_edit::DocumentMut),
    OmeroXml(OmeroXml),
}

/// A loaded config file: the editable document plus the validated values.
#[derive(Debug, Clone)]
pub struct Config {
    path: PathBuf,
    site: Site,
    doc: Document,
    /// The bytes as read; `None` when the file did not exist. Compared on save.
    original: Option<Vec<u8>>,
    /// The values used: valid ones, and OMERO's reading of an odd one where our
    /// types can hold it (see [`Config::value_warnings`]).
    values: BTreeMap<String, Value>,
    /// Known keys whose text in the file the strict rules refuse, kept as written.
    warnings: BTreeMap<String, ValueWarning>,
    /// Every known key's text exactly as the file holds it (TOML strings unquoted).
    literal: BTreeMap<String, String>,
    /// Keys the registry does not know (set with `--force`, or another OMERO
    /// component's properties in config.xml), with their raw text.
    unknown: BTreeMap<String, String>,
    /// The file's lock, when loaded with [`Config::load_for_update`].
    lock: Option<Arc<FileLock>>,
}

impl Config {
    /// Loads the site's config file; a missing file is an empty config.
    pub fn load(site: &Site) -> Result<Config, ConfigError> {
        Config::read(site, None)
    }

    /// Takes the file's lock, then loads; the lock is held until the config is saved
    /// or dropped, so a read-modify-write (`config set`) cannot fail or lose an
    /// update because another writer (`omero config set`, another omero-webctl) got
    /// in between. Do not call [`Config::save`] on another config of the same file
    /// while this one holds the lock.
    pub fn load_for_update(site: &Site) -> Result<Config, ConfigError> {
        let config_file = site.config_file();
        let (path, style) = lock_file(format_of(site, &config_file), &config_file);
        let held = FileLock::acquire(&path, style)?;
        Config::read(site, Some(Arc::new(held)))
    }

    fn read(site: &Site, lock: Option<Arc<FileLock>>) -> Result<Config, ConfigError> {
        let path = site.config_file();
        let original = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ConfigError::io(&path, e)),
        };
        let text = match &original {
            Some(bytes) => String::from_utf8(bytes.clone()).map_err(|_| {
                let (path, line, message) = (path.clone(), 1, "the file is not UTF-8 text".into());
                match format_of(site, &path) {
                    SiteKind::Embedded => ConfigError::Syntax {
                        path,
                        line,
                        message,
                    },
                    SiteKind::OmeroWeb => ConfigError::XmlSyntax {
                        path,
                        line,
                        message,
                    },
                }
            })?,
            None => String::new(),
        };
        let mut config = Config::from_text(site, path, text, original)?;
        config.lock = lock;
        Ok(config)
    }

    /// Parses and validates config text as if it were the file at `path`: TOML for
    /// the site's `etc/omero-web.toml`, OMERO's format for its `etc/grid/config.xml`,
    /// and for any other path (an edited copy) the format of the site's kind.
    pub fn from_text(
        site: &Site,
        path: PathBuf,
        text: String,
        original: Option<Vec<u8>>,
    ) -> Result<Config, ConfigError> {
        let mut values = BTreeMap::new();
        let mut unknown = BTreeMap::new();
        let kind = format_of(site, &path);
        let mut warnings = BTreeMap::new();
        let mut literal = BTreeMap::new();
        let mut add = |key: &str, line: usize, raw: Raw| -> Result<(), ConfigError> {
            match registry::lookup(key) {
                Some(prop) => {
                    let parsed = match &raw {
                        Raw::Toml(v) => prop.parse_toml(v),
                        Raw::Text(s) => prop.parse(s),
                    }
                    .and_then(|value| for_kind(kind, prop, value));
                    literal.insert(key.to_string(), raw.text());
                    // What OMERO's parser refuses though ours forgives it.
                    let parsed = match (parsed, &raw) {
                        (Ok(value), Raw::Text(text)) => {
                            match lenient::omero_refuses(prop, text, kind) {
                                Some(read) => Err((
                                    read,
                                    "OMERO.web reads the word exactly, spaces included".into(),
                                )),
                                None => Ok(value),
                            }
                        }
                        (Ok(value), Raw::Toml(_)) => Ok(value),
                        (Err(invalid), _) => {
                            let text = raw.text();
                            let read = lenient::read(
                                prop,
                                &text,
                                &invalid,
                                kind,
                                raw.toml_type_mismatch(prop),
                            );
                            Err((read, invalid.reason))
                        }
                    };
                    match parsed {
                        Ok(value) => {
                            values.insert(key.to_string(), value);
                        }
                        // What OMERO runs, we run: the value stays as written, the
                        // site keeps loading, and the key carries a warning.
                        Err((read, reason)) => {
                            if let Some(used) = read.used {
                                values.insert(key.to_string(), used);
                            }
                            warnings.insert(
                                key.to_string(),
                                ValueWarning {
                                    key: key.to_string(),
                                    // Shown in listings and reports: never a secret.
                                    raw: if prop.secret {
                                        "********".into()
                                    } else {
                                        raw.text()
                                    },
                                    line,
                                    message: read.message,
                                    omero_fails: read.omero_fails,
                                    refused: format!("{reason}; allowed: {}", prop.kind.allowed()),
                                },
                            );
                        }
                    }
                }
                None => {
                    unknown.insert(key.to_string(), raw.text());
                }
            }
            Ok(())
        };
        let doc = match kind {
            SiteKind::Embedded => Document::Toml(toml_doc::parse(&path, &text, &mut add)?),
            SiteKind::OmeroWeb => {
                let (xml, entries) = OmeroXml::parse(&text, omero_xml::env_profile().as_deref())
                    .map_err(|e| ConfigError::XmlSyntax {
                        path: path.clone(),
                        line: e.line,
                        message: e.message,
                    })?;
                for entry in &entries {
                    add(&entry.key, entry.line, Raw::Text(&entry.value))?;
                }
                Document::OmeroXml(xml)
            }
        };
        Ok(Config {
            path,
            site: site.clone(),
            doc,
            original,
            values,
            warnings,
            literal,
            unknown,
            lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The file's bytes as they were read (`None`: there was no file).
    pub fn original_bytes(&self) -> Option<&[u8]> {
        self.original.as_deref()
    }
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// The value set in the file and used, if any (for a key with a warning: OMERO's
    /// reading of it, when our types can hold it).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// Whether the file sets `key` (a known key, possibly with a warning).
    pub fn is_set(&self, key: &str) -> bool {
        self.values.contains_key(key) || self.warnings.contains_key(key)
    }

    /// The key's text exactly as the file holds it (what `omero config get` prints),
    /// for a known or an unknown key; `None` when the file does not set it.
    pub fn raw(&self, key: &str) -> Option<String> {
        self.literal
            .get(key)
            .or_else(|| self.unknown.get(key))
            .cloned()
    }

    /// Values in the file the strict rules refuse, in table order: each is kept,
    /// shown with its warning, and never a reason to refuse the site.
    pub fn value_warnings(&self) -> Vec<&ValueWarning> {
        registry::PROPERTIES
            .iter()
            .filter_map(|p| self.warnings.get(p.key))
            .collect()
    }

    /// The warning on `key`, if its value is odd.
    pub fn value_warning(&self, key: &str) -> Option<&ValueWarning> {
        self.warnings.get(key)
    }

    /// Keys set in the file that the registry does not know.
    pub fn unknown(&self) -> &BTreeMap<String, String> {
        &self.unknown
    }

    /// Every set key with its raw text, registry keys first in table order, then
    /// unknown ones: the `key=value` export.
    pub fn set_entries(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = registry::PROPERTIES
            .iter()
            .filter(|p| self.is_set(p.key))
            .filter_map(|p| Some((p.key.to_string(), self.raw(p.key)?)))
            .collect();
        out.extend(self.unknown.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// What the pool runs with, as text per property that a pool reload or restart
    /// applies: what a running pool reports, so that a saved but unapplied change can
    /// be told ("drift"). Secrets appear only as a checksum.
    pub fn applied_values(&self) -> BTreeMap<String, String> {
        registry::PROPERTIES
            .iter()
            .filter(|p| {
                p.needs
                    .iter()
                    .any(|n| matches!(n, super::Need::PoolReload | super::Need::PoolRestart))
            })
            .map(|p| {
                let raw = self
                    .effective(p.key)
                    .map(|v| v.to_raw())
                    .unwrap_or_default();
                let shown = if p.secret && !raw.is_empty() {
                    format!("(secret, crc32 {:08x})", crc32fast::hash(raw.as_bytes()))
                } else {
                    raw
                };
                (p.key.to_string(), shown)
            })
            .collect()
    }

    /// The value that applies: set, else a set deprecated key it replaces, else the
    /// default (with `$OMERODIR` expanded). `None` means unset with no default.
    pub fn effective(&self, key: &str) -> Option<Value> {
        if let Some(v) = self.values.get(key) {
            return Some(v.clone());
        }
        // A set key with a value we cannot use still wins over its deprecated
        // name, as in OMERO; then the default applies.
        if !self.warnings.contains_key(key)
            && let Some(old) = registry::PROPERTIES
                .iter()
                .find(|p| p.replaced_by == Some(key) && self.values.contains_key(p.key))
        {
            return self.values.get(old.key).cloned();
        }
        let prop = registry::lookup(key)?;
        self.default_of(prop)
    }

    /// A property's default as a value, `$OMERODIR` expanded. (OMERO.web 5.33 computes
    /// the same defaults for `static_root` and `logdir`: `$OMERODIR/var/...`.)
    pub fn default_of(&self, prop: &Property) -> Option<Value> {
        let raw = prop.default?;
        let raw = match raw.strip_prefix("$OMERODIR") {
            Some(rest) => format!("{}{}", self.site.root().display(), rest),
            None => raw.to_string(),
        };
        Some(prop.parse(&raw).unwrap_or_else(|e| {
            panic!("registry default of {} is invalid: {}", prop.key, e.reason)
        }))
    }

    /// For an OMERO.web site, the config.xml profile read and written (`$OMERO_CONFIG`,
    /// else the one `__ACTIVE__` names, else `default`); `None` for an embedded site.
    pub fn omero_profile(&self) -> Option<&str> {
        match &self.doc {
            Document::OmeroXml(xml) => Some(xml.profile()),
            Document::Toml(_) => None,
        }
    }

    /// Warnings about deprecated keys in use, OMERO's rules: the old key applies only
    /// while the new one is unset.
    pub fn deprecation_warnings(&self) -> Vec<String> {
        registry::PROPERTIES
            .iter()
            .filter(|p| p.is_deprecated() && self.is_set(p.key))
            .map(|p| {
                let new = p.replaced_by.unwrap_or_default();
                if self.is_set(new) {
                    format!("{} is deprecated and ignored because {new} is set", p.key)
                } else if registry::lookup(new).is_some() {
                    format!(
                        "{} is deprecated; it applies as {new} — set that instead",
                        p.key
                    )
                } else {
                    format!("{} is deprecated ({new}) and has no effect", p.key)
                }
            })
            .collect()
    }

    /// Sets a property from raw text. Unknown keys are refused (with suggestions)
    /// unless `force`, in which case the text is stored as a string.
    pub fn set(
        &mut self,
        key: &str,
        raw: &str,
        force: bool,
    ) -> Result<&'static [super::Need], ConfigError> {
        if let Document::OmeroXml(_) = &self.doc {
            // The key and the profile name end up in the file too.
            if let Some(bad) = not_xml_char(key) {
                return Err(ConfigError::bad_value(
                    None,
                    &key.escape_debug().to_string(),
                    raw.to_string(),
                    format!(
                        "the key contains U+{:04X}, which config.xml (XML 1.0) cannot hold",
                        bad as u32
                    ),
                    "keys without control characters".into(),
                ));
            }
            if let Some(bad) = self.omero_profile().and_then(not_xml_char) {
                return Err(ConfigError::bad_value(
                    None,
                    "OMERO_CONFIG",
                    self.omero_profile().unwrap_or_default().to_string(),
                    format!(
                        "contains U+{:04X}, which config.xml (XML 1.0) cannot hold",
                        bad as u32
                    ),
                    "a profile name without control characters".into(),
                ));
            }
        }
        if let (Document::OmeroXml(_), Some(bad)) = (&self.doc, not_xml_char(raw)) {
            // config.xml could not be read back by anyone (OMERO.server included).
            return Err(ConfigError::bad_value(
                None,
                key,
                raw.to_string(),
                format!(
                    "contains U+{:04X}, which config.xml (XML 1.0) cannot hold",
                    bad as u32
                ),
                "text without control characters other than tab and newline".into(),
            ));
        }
        let needs = match registry::lookup(key) {
            Some(prop) => {
                let kind = match &self.doc {
                    Document::Toml(_) => SiteKind::Embedded,
                    Document::OmeroXml(_) => SiteKind::OmeroWeb,
                };
                let value = prop
                    .parse(raw)
                    .and_then(|v| for_kind(kind, prop, v))
                    .map_err(|invalid| {
                        ConfigError::bad_value(
                            None,
                            key,
                            raw.to_string(),
                            invalid.reason,
                            prop.kind.allowed(),
                        )
                    })?;
                self.doc.set(key, Some((prop, &value)), raw);
                self.literal.insert(key.to_string(), value.to_raw());
                self.values.insert(key.to_string(), value);
                self.warnings.remove(key);
                prop.needs
            }
            None if force => {
                self.doc.set(key, None, raw);
                self.unknown.insert(key.to_string(), raw.to_string());
                &[][..]
            }
            None => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_string(),
                    suggestions: registry::suggest(key),
                });
            }
        };
        Ok(needs)
    }

    /// Removes a key; returns whether it was set.
    pub fn unset(&mut self, key: &str) -> Result<bool, ConfigError> {
        if registry::lookup(key).is_none() && !self.unknown.contains_key(key) {
            return Err(ConfigError::UnknownKey {
                key: key.to_string(),
                suggestions: registry::suggest(key),
            });
        }
        let was_set = self.values.remove(key).is_some()
            | self.warnings.remove(key).is_some()
            | self.literal.remove(key).is_some()
            | self.unknown.remove(key).is_some();
        self.doc.unset(key);
        Ok(was_set)
    }

    /// The document as it would be written.
    pub fn to_text(&self) -> String {
        match &self.doc {
            Document::Toml(doc) => doc.to_string(),
            Document::OmeroXml(xml) => xml.to_text(),
        }
    }

    /// Whether the file on disk still holds what was read. For config.xml, what
    /// counts is the settings, not the bytes: `omero config get` rewrites the file
    /// (a new time in its comment) without changing anything.
    pub fn unchanged_on_disk(&self) -> Result<bool, ConfigError> {
        let now = match std::fs::read(&self.path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ConfigError::io(&self.path, e)),
        };
        if now == self.original {
            return Ok(true);
        }
        let Document::OmeroXml(_) = &self.doc else {
            return Ok(false);
        };
        let env = omero_xml::env_profile();
        let settings = |bytes: &Option<Vec<u8>>| -> Option<OmeroXml> {
            match bytes {
                None => Some(OmeroXml::empty(env.as_deref())),
                Some(b) => {
                    let text = std::str::from_utf8(b).ok()?;
                    OmeroXml::parse(text, env.as_deref()).ok().map(|(x, _)| x)
                }
            }
        };
        Ok(match (settings(&self.original), settings(&now)) {
            (Some(then), Some(now)) => then.same_settings(&now),
            _ => false,
        })
    }

    /// Writes the document atomically under the file's lock (see [`super::lock`]),
    /// unless the file changed since it was read. Releases a lock taken by
    /// [`Config::load_for_update`].
    pub fn save(&mut self) -> Result<(), ConfigError> {
        let format = match self.doc {
            Document::Toml(_) => SiteKind::Embedded,
            Document::OmeroXml(_) => SiteKind::OmeroWeb,
        };
        let (lock_path, style) = lock_file(format, &self.path);
        let mut held = self.lock.take();
        loop {
            let lock = match held.take() {
                Some(lock) if lock.still_held() => lock,
                _ => Arc::new(FileLock::acquire(&lock_path, style)?),
            };
            if !self.unchanged_on_disk()? {
                return Err(ConfigError::ChangedOnDisk {
                    path: self.path.clone(),
                });
            }
            // OMERO deletes its lock file after unlocking it; if that happened to
            // ours meanwhile, another writer may hold a new one: start over. Checked
            // again (with the file's content) once the new file is on disk, right
            // before the rename, where the window for another writer is smallest.
            if !lock.still_held() {
                continue;
            }
            let text = self.to_text();
            let written = crate::fsutil::write_atomic_if(&self.path, text.as_bytes(), None, || {
                lock.still_held() && self.unchanged_on_disk().unwrap_or(false)
            })
            .map_err(|e| ConfigError::io(&self.path, e))?;
            if !written {
                continue;
            }
            self.original = Some(text.into_bytes());
            return Ok(());
        }
    }

    /// The typed settings the program runs with.
    pub fn settings(&self) -> Settings {
        Settings::resolve(self, &self.site)
    }
}

/// What one kind of site adds to a property's validation: the embedded pool refuses
/// `wsgi_args` flags it does not honour, where Gunicorn takes any of its flags.
fn for_kind(
    kind: SiteKind,
    prop: &Property,
    value: Value,
) -> Result<Value, super::property::Invalid> {
    if kind == SiteKind::Embedded
        && prop.kind == super::Kind::WsgiArgs
        && let Err(e) = super::wsgi_args::parse(&value.to_raw())
    {
        let message = e.to_string();
        let message = message
            .strip_prefix("omero.web.wsgi_args: ")
            .unwrap_or(&message);
        return Err(super::property::Invalid::new(message));
    }
    Ok(value)
}

/// The first character XML 1.0 does not allow, if any.
fn not_xml_char(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
    })
}

impl Document {
    /// `typed`: a known property's validated value; `raw`: the text as given (what
    /// an unknown key stores).
    fn set(&mut self, key: &str, typed: Option<(&Property, &Value)>, raw: &str) {
        match self {
            Document::Toml(doc) => toml_doc::set(doc, key, typed, raw),
            // Values in config.xml are strings: the canonical text of the value.
            Document::OmeroXml(xml) => match typed {
                Some((_, value)) => xml.set(key, &value.to_raw()),
                None => xml.set(key, raw),
            },
        }
    }

    fn unset(&mut self, key: &str) {
        match self {
            Document::Toml(doc) => toml_doc::unset(doc, key),
            Document::OmeroXml(xml) => {
                xml.unset(key);
            }
        }
    }
}

/// Which document `path` holds: the site's TOML file is TOML and its config.xml is
/// OMERO's, whatever the site's kind; any other path (a copy being edited) is in
/// the format of the site's kind.
fn format_of(site: &Site, path: &Path) -> SiteKind {
    if path == site.toml_config_file() {
        SiteKind::Embedded
    } else if path == site.omero_config_file() {
        SiteKind::OmeroWeb
    } else {
        site.kind()
    }
}

/// The lock file guarding a site's config file, and its convention: ours next to
/// the TOML file, OMERO's `config.xml.lock` for config.xml.
fn lock_file(kind: SiteKind, config: &Path) -> (PathBuf, lock::Style) {
    match kind {
        SiteKind::Embedded => (
            config
                .parent()
                .unwrap_or(Path::new("."))
                .join(".omero-web.toml.lock"),
            lock::Style::Blocking,
        ),
        SiteKind::OmeroWeb => {
            let mut name = config.as_os_str().to_owned();
            name.push(".lock");
            (
                PathBuf::from(name),
                lock::Style::Omero {
                    wait: lock::OMERO_LOCK_WAIT,
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_beyond_this_host_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::Embedded);
        let mut config = Config::load(&site).unwrap();
        assert_eq!(config.settings().public_bind_warning(), None);
        for quiet in ["localhost", "::1", "127.0.0.2"] {
            config
                .set("omero.web.application_server.host", quiet, false)
                .unwrap();
            assert_eq!(config.settings().public_bind_warning(), None, "{quiet}");
        }
        for public in ["0.0.0.0", "10.1.2.3", "::", "web.example.org"] {
            config
                .set("omero.web.application_server.host", public, false)
                .unwrap();
            let warning = config.settings().public_bind_warning();
            assert!(
                warning
                    .as_deref()
                    .is_some_and(|w| w.contains("without nginx")),
                "{public}: {warning:?}"
            );
        }
    }

    #[test]
    fn thumbnails_are_only_published_for_nginx_on_an_embedded_site() {
        let dir = tempfile::tempdir().unwrap();
        let embedded = Site::with_kind(dir.path(), SiteKind::Embedded);
        assert!(
            Config::load(&embedded)
                .unwrap()
                .settings()
                .published_thumbnails
        );
        let mut off = Config::load(&embedded).unwrap();
        off.set("omero.web.nginx.published_thumbnails", "false", false)
            .unwrap();
        assert!(!off.settings().published_thumbnails);
        // OMERO.web's thumbnails need a login: nginx must never serve them itself.
        let omeroweb = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        assert!(
            !Config::load(&omeroweb)
                .unwrap()
                .settings()
                .published_thumbnails
        );
    }

    #[test]
    fn wsgi_args_follow_what_serves_the_site() {
        let dir = tempfile::tempdir().unwrap();
        let embedded = Site::with_kind(dir.path(), SiteKind::Embedded);
        // Any Gunicorn flag is taken (the pool says which have no effect); a word
        // that is no Gunicorn flag is not.
        let mut config = Config::load(&embedded).unwrap();
        config
            .set("omero.web.wsgi_args", "--preload", false)
            .unwrap();
        let err = config
            .set("omero.web.wsgi_args", "--prelaod", false)
            .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "omero.web.wsgi_args = \"--prelaod\": --prelaod is not a flag of Gunicorn 27.0.1; did you mean --preload?"
            ),
            "{err}"
        );
        let omeroweb = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        let mut config = Config::load(&omeroweb).unwrap();
        config
            .set(
                "omero.web.wsgi_args",
                "--preload --worker-tmp-dir /dev/shm",
                false,
            )
            .unwrap();
        config.save().unwrap();
        // An OMERO.web site's config.xml with such flags loads (it used to be refused).
        let config = Config::load(&omeroweb).unwrap();
        assert_eq!(
            config.settings().wsgi_args.as_deref(),
            Some("--preload --worker-tmp-dir /dev/shm")
        );
    }

    #[test]
    fn characters_config_xml_cannot_hold_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        let mut config = Config::load(&site).unwrap();
        config
            .set("omero.web.public.user", "tab\there", false)
            .unwrap();
        let err = config
            .set("omero.web.public.user", "/x\u{1}y", false)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "omero.web.public.user = \"/x\\u{1}y\": contains U+0001, which config.xml (XML 1.0) cannot hold; allowed: text without control characters other than tab and newline"
        );
        let err = config
            .set("omero.web.made_up", "\u{1b}[31m", true)
            .unwrap_err();
        assert!(err.to_string().contains("U+001B"), "{err}");
        config.save().unwrap();
        let text = std::fs::read_to_string(site.omero_config_file()).unwrap();
        assert!(roxmltree::Document::parse(&text).is_ok(), "{text}");
        assert!(!text.contains("made_up"));
        let err = config.set("omero.web.x\u{1}y", "v", true).unwrap_err();
        assert!(err.to_string().contains("the key contains U+0001"), "{err}");
        // The TOML store can hold them (escaped), as before.
        let toml_site = Site::with_kind(dir.path(), SiteKind::Embedded);
        let mut toml = Config::load(&toml_site).unwrap();
        toml.set("omero.web.public.user", "/x\u{1}y", false)
            .unwrap();
    }
}
