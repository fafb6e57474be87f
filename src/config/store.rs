//! The config store: `etc/omero-web.toml` with flat quoted keys. Loading validates
//! every value (and reports file, line, key and reason); saving edits the document in
//! place with toml_edit so comments, order and formatting survive, writes atomically,
//! and refuses to overwrite a file that changed since it was read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::property::{Property, Value};
use super::registry;
use super::settings::Settings;
use crate::site::Site;

/// A loaded config file: the editable document plus the validated values.
#[derive(Debug, Clone)]
pub struct Config {
    path: PathBuf,
    site: Site,
    doc: toml_edit::DocumentMut,
    /// The bytes as read; `None` when the file did not exist. Compared on save.
    original: Option<Vec<u8>>,
    values: BTreeMap<String, Value>,
    /// Keys the registry does not know (set with `--force`), with their raw text.
    unknown: BTreeMap<String, String>,
}

impl Config {
    /// Loads the site's config file; a missing file is an empty config.
    pub fn load(site: &Site) -> Result<Config, ConfigError> {
        let path = site.config_file();
        let original = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ConfigError::io(&path, e)),
        };
        let text = match &original {
            Some(bytes) => String::from_utf8(bytes.clone()).map_err(|_| ConfigError::Syntax {
                path: path.clone(),
                line: 1,
                message: "the file is not UTF-8 text".into(),
            })?,
            None => String::new(),
        };
        Config::from_text(site, path, text, original)
    }

    /// Parses and validates config text as if it were the file at `path`.
    pub fn from_text(
        site: &Site,
        path: PathBuf,
        text: String,
        original: Option<Vec<u8>>,
    ) -> Result<Config, ConfigError> {
        let parsed =
            toml_edit::Document::parse(text.as_str()).map_err(|e| ConfigError::Syntax {
                path: path.clone(),
                line: line_of(&text, e.span().map(|s| s.start).unwrap_or(0)),
                message: e.message().trim().to_string(),
            })?;
        let mut values = BTreeMap::new();
        let mut unknown = BTreeMap::new();
        for (key, item) in parsed.as_table().iter() {
            let line = line_of(&text, item_offset(&parsed, key));
            let value = match item {
                toml_edit::Item::Value(v) => v,
                _ => {
                    return Err(ConfigError::NotFlat {
                        path: path.clone(),
                        line,
                        key: key.to_string(),
                    });
                }
            };
            match registry::lookup(key) {
                Some(prop) => {
                    let parsed_value = prop.parse_toml(value).map_err(|invalid| {
                        ConfigError::bad_value(
                            Some((path.clone(), line)),
                            key,
                            display_toml(value),
                            invalid.reason,
                            prop.kind.allowed(),
                        )
                    })?;
                    values.insert(key.to_string(), parsed_value);
                }
                None => {
                    let raw = match value {
                        toml_edit::Value::String(s) => s.value().clone(),
                        other => display_toml(other),
                    };
                    unknown.insert(key.to_string(), raw);
                }
            }
        }
        Ok(Config {
            path,
            site: site.clone(),
            doc: parsed.into_mut(),
            original,
            values,
            unknown,
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

    /// The value set in the file, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
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
            .filter_map(|p| {
                self.values
                    .get(p.key)
                    .map(|v| (p.key.to_string(), v.to_raw()))
            })
            .collect();
        out.extend(self.unknown.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// The value that applies: set, else a set deprecated key it replaces, else the
    /// default (with `$OMERODIR` expanded). `None` means unset with no default.
    pub fn effective(&self, key: &str) -> Option<Value> {
        if let Some(v) = self.values.get(key) {
            return Some(v.clone());
        }
        if let Some(old) = registry::PROPERTIES
            .iter()
            .find(|p| p.replaced_by == Some(key) && self.values.contains_key(p.key))
        {
            return self.values.get(old.key).cloned();
        }
        let prop = registry::lookup(key)?;
        self.default_of(prop)
    }

    /// A property's default as a value, `$OMERODIR` expanded.
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

    /// Warnings about deprecated keys in use, OMERO's rules: the old key applies only
    /// while the new one is unset.
    pub fn deprecation_warnings(&self) -> Vec<String> {
        registry::PROPERTIES
            .iter()
            .filter(|p| p.is_deprecated() && self.values.contains_key(p.key))
            .map(|p| {
                let new = p.replaced_by.unwrap_or_default();
                if self.values.contains_key(new) {
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
        let (toml_value, needs) = match registry::lookup(key) {
            Some(prop) => {
                let value = prop.parse(raw).map_err(|invalid| {
                    ConfigError::bad_value(
                        None,
                        key,
                        raw.to_string(),
                        invalid.reason,
                        prop.kind.allowed(),
                    )
                })?;
                let toml_value = prop.to_toml(&value);
                self.values.insert(key.to_string(), value);
                (toml_value, prop.needs)
            }
            None if force => {
                self.unknown.insert(key.to_string(), raw.to_string());
                (toml_edit::Value::from(raw), &[][..])
            }
            None => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_string(),
                    suggestions: registry::suggest(key),
                });
            }
        };
        let table = self.doc.as_table_mut();
        match table.get_mut(key) {
            Some(toml_edit::Item::Value(old)) => {
                // Keep the comment and spacing around the old value.
                let decor = old.decor().clone();
                let mut new = toml_value;
                *new.decor_mut() = decor;
                *old = new;
            }
            _ => {
                table.insert(key, toml_edit::Item::Value(toml_value));
            }
        }
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
        let was_set = self.values.remove(key).is_some() | self.unknown.remove(key).is_some();
        self.doc.as_table_mut().remove(key);
        Ok(was_set)
    }

    /// The document as it would be written.
    pub fn to_text(&self) -> String {
        self.doc.to_string()
    }

    /// Whether the file on disk still holds what was read.
    pub fn unchanged_on_disk(&self) -> Result<bool, ConfigError> {
        let now = match std::fs::read(&self.path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ConfigError::io(&self.path, e)),
        };
        Ok(now == self.original)
    }

    /// Writes the document atomically, unless the file changed since it was read.
    /// A lock file serialises concurrent omero-webctl writers.
    pub fn save(&mut self) -> Result<(), ConfigError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| ConfigError::io(dir, e))?;
        let lock_path = dir.join(".omero-web.toml.lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| ConfigError::io(&lock_path, e))?;
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| ConfigError::io(&lock_path, errno.into()))?;
        if !self.unchanged_on_disk()? {
            return Err(ConfigError::ChangedOnDisk {
                path: self.path.clone(),
            });
        }
        let text = self.to_text();
        crate::fsutil::write_atomic(&self.path, text.as_bytes(), None)
            .map_err(|e| ConfigError::io(&self.path, e))?;
        self.original = Some(text.into_bytes());
        Ok(())
    }

    /// The typed settings the program runs with.
    pub fn settings(&self) -> Settings {
        Settings::resolve(self, &self.site)
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn item_offset(doc: &toml_edit::Document<&str>, key: &str) -> usize {
    doc.as_table()
        .key(key)
        .and_then(|k| k.span())
        .or_else(|| doc.as_table().get(key).and_then(|i| i.span()))
        .map(|s| s.start)
        .unwrap_or(0)
}

fn display_toml(value: &toml_edit::Value) -> String {
    match value {
        toml_edit::Value::String(s) => s.value().clone(),
        other => other.to_string().trim().to_string(),
    }
}
