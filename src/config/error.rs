//! Errors of the config layer. Each displays as one line that says what, where, why
//! and what is allowed.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: not valid TOML: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}:{line}: not a valid OMERO config.xml: {message}", path.display())]
    XmlSyntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{}:{line}: {key} is a table; write each property as a flat quoted key, e.g. \"omero.web.wsgi_workers\" = 5",
        path.display()
    )]
    NotFlat {
        path: PathBuf,
        line: usize,
        key: String,
    },
    #[error("{0}")]
    InvalidValue(Box<BadValue>),
    #[error(
        "unknown property {key}{}; use --force to set it anyway",
        did_you_mean(suggestions)
    )]
    UnknownKey {
        key: String,
        suggestions: Vec<&'static str>,
    },
    #[error(
        "{} changed on disk since it was read; nothing was written (run the command again)",
        path.display()
    )]
    ChangedOnDisk { path: PathBuf },
    #[error(
        "{} is held by another process (an `omero config` command?); nothing was written (run the command again)",
        path.display()
    )]
    Locked { path: PathBuf },
}

/// A value refused by its property's type.
#[derive(Debug)]
pub struct BadValue {
    /// File and line, when the value came from the config file.
    pub location: Option<(PathBuf, usize)>,
    pub key: String,
    pub value: String,
    pub reason: String,
    pub allowed: String,
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{} = {:?}: {}; allowed: {}",
            location_prefix(&self.location),
            self.key,
            self.value,
            self.reason,
            self.allowed
        )
    }
}

impl ConfigError {
    pub fn bad_value(
        location: Option<(PathBuf, usize)>,
        key: &str,
        value: String,
        reason: String,
        allowed: String,
    ) -> ConfigError {
        ConfigError::InvalidValue(Box::new(BadValue {
            location,
            key: key.to_string(),
            value,
            reason,
            allowed,
        }))
    }

    pub fn io(path: &Path, source: std::io::Error) -> ConfigError {
        ConfigError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn location_prefix(location: &Option<(PathBuf, usize)>) -> String {
    match location {
        Some((path, line)) => format!("{}:{line}: ", path.display()),
        None => String::new(),
    }
}

fn did_you_mean(suggestions: &[&str]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", suggestions.join(", "))
    }
}
