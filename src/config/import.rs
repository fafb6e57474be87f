//! Reading OMERO's own config for `config import`: an `etc/grid/config.xml` (the
//! active profile) or `key=value` lines as `omero config get` prints them, and the
//! `key=value` export that `omero config load` reads back.

use std::path::Path;

use super::error::ConfigError;
use super::omero_xml;
use super::registry;
use super::store::Config;

/// What happened to one imported entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Imported,
    /// Not ours to import (OMERO bookkeeping or another component's property).
    Ignored(String),
    /// An OMERO.web property we refused (unknown key or invalid value).
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportEntry {
    pub key: String,
    pub value: String,
    pub outcome: Outcome,
}

/// Parses a file into `(key, value)` pairs: OMERO XML if it looks like XML, else
/// `key=value` lines.
pub fn read_pairs(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))?;
    if text.trim_start().starts_with('<') {
        parse_config_xml(&text, omero_xml::env_profile().as_deref()).map_err(|e| {
            ConfigError::XmlSyntax {
                path: path.to_path_buf(),
                line: e.line,
                message: e.message,
            }
        })
    } else {
        parse_key_value_lines(&text).map_err(|(line, message)| ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        })
    }
}

/// The properties of the profile OMERO reads from a `config.xml` (`omero config
/// get`): the one `$OMERO_CONFIG` names (`env_profile`), else the one `__ACTIVE__`
/// names, else `default`. The parser is the config.xml store's.
pub fn parse_config_xml(
    text: &str,
    env_profile: Option<&str>,
) -> Result<Vec<(String, String)>, omero_xml::XmlError> {
    let (_, entries) = omero_xml::OmeroXml::parse(text, env_profile)?;
    Ok(entries.into_iter().map(|e| (e.key, e.value)).collect())
}

/// `KEY=VALUE` lines; `#` comments and blank lines are skipped.
pub fn parse_key_value_lines(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| (i + 1, format!("expected KEY=VALUE, found {trimmed:?}")))?;
        out.push((key.trim().to_string(), value.to_string()));
    }
    Ok(out)
}

/// Applies imported pairs to `config` (not saved). Unknown `omero.web.*` keys are
/// refused unless `force`; other components' keys are ignored.
pub fn apply(config: &mut Config, pairs: Vec<(String, String)>, force: bool) -> Vec<ImportEntry> {
    pairs
        .into_iter()
        .map(|(key, value)| {
            let outcome = if key.starts_with("omero.config.") {
                Outcome::Ignored("OMERO's own bookkeeping".into())
            } else if registry::lookup(&key).is_none() && !key.starts_with("omero.web.") {
                Outcome::Ignored("not an OMERO.web property".into())
            } else {
                match config.set(&key, &value, force) {
                    Ok(_) => Outcome::Imported,
                    Err(e) => Outcome::Refused(e.to_string()),
                }
            };
            ImportEntry {
                key,
                value,
                outcome,
            }
        })
        .collect()
}

/// `key=value` lines of every set property, for `omero config load`.
/// Every set property as `key=value` lines. Unless `show_secrets`, secret values are
/// masked as `omero config get` masks them (`********`): the registry's secrets, and
/// any key ending in `pass` or `password`, as OMERO decides. Returns the text and how
/// many values were masked.
pub fn export(config: &Config, show_secrets: bool) -> (String, usize) {
    let mut masked = 0;
    let text = config
        .set_entries()
        .into_iter()
        .map(|(k, v)| {
            if !show_secrets && !v.is_empty() && is_secret(&k) {
                masked += 1;
                format!("{k}={}\n", "*".repeat(8))
            } else {
                format!("{k}={v}\n")
            }
        })
        .collect();
    (text, masked)
}

/// Whether a key's value is a secret: the registry says so, or its name does as
/// omero-py's `config get` reads it.
pub fn is_secret(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    super::registry::lookup(key).is_some_and(|p| p.secret)
        || lower.ends_with("pass")
        || lower.ends_with("password")
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<icegrid>
  <!-- generated -->
  <properties id="__ACTIVE__">
    <property name="omero.config.profile" value="site"/>
    <property name="omero.config.version" value="5.1.0"/>
    <property name="omero.web.wsgi_workers" value="stale"/>
  </properties>
  <properties id="default">
    <property name="omero.config.version" value="5.1.0"/>
    <property name="omero.web.wsgi_workers" value="2"/>
  </properties>
  <properties id="site">
    <property name="omero.config.version" value="5.1.0"/>
    <property name="omero.web.wsgi_workers" value="9"/>
    <property name="omero.web.apps" value="[&quot;omero_figure&quot;]"/>
  </properties>
  <include file="generated.xml"/>
</icegrid>"#;

    #[test]
    fn xml_reads_the_profile_omero_reads_and_unescapes() {
        let pairs = parse_config_xml(XML, None).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("omero.web.wsgi_workers".into(), "9".into()),
                ("omero.web.apps".into(), r#"["omero_figure"]"#.into())
            ]
        );
        let pairs = parse_config_xml(XML, Some("default")).unwrap();
        assert_eq!(pairs, vec![("omero.web.wsgi_workers".into(), "2".into())]);
        assert!(
            parse_config_xml("<foo/>", None)
                .unwrap_err()
                .message
                .contains("<icegrid>")
        );
    }

    #[test]
    fn key_value_lines() {
        let pairs = parse_key_value_lines("# c\n\nomero.web.debug=true\na=b=c\n").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("omero.web.debug".into(), "true".into()),
                ("a".into(), "b=c".into())
            ]
        );
        assert_eq!(parse_key_value_lines("oops\n").unwrap_err().0, 1);
    }
}
