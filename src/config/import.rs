//! Reading OMERO's own config for `config import`: an `etc/grid/config.xml` (the
//! active profile) or `key=value` lines as `omero config get` prints them, and the
//! `key=value` export that `omero config load` reads back.

use std::path::Path;

use super::error::ConfigError;
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
        parse_config_xml(&text).map_err(|message| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: 1,
            message,
        })
    } else {
        parse_key_value_lines(&text).map_err(|(line, message)| ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        })
    }
}

/// The properties of the active profile of an OMERO `config.xml`: the `__ACTIVE__`
/// block when present (OMERO keeps a copy of the active profile there), else the
/// profile named by `$OMERO_CONFIG`, else `default`.
pub fn parse_config_xml(text: &str) -> Result<Vec<(String, String)>, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("not valid XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "icegrid" {
        return Err(format!(
            "not an OMERO config.xml (root element <{}>, expected <icegrid>)",
            root.tag_name().name()
        ));
    }
    let blocks: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("properties"))
        .collect();
    let wanted = std::env::var("OMERO_CONFIG").unwrap_or_else(|_| "default".into());
    let block = blocks
        .iter()
        .find(|n| n.attribute("id") == Some("__ACTIVE__"))
        .or_else(|| {
            blocks
                .iter()
                .find(|n| n.attribute("id") == Some(wanted.as_str()))
        })
        .ok_or_else(|| format!("no __ACTIVE__ or '{wanted}' profile in the file"))?;
    Ok(block
        .children()
        .filter(|n| n.has_tag_name("property"))
        .filter_map(|n| {
            Some((
                n.attribute("name")?.to_string(),
                n.attribute("value")?.to_string(),
            ))
        })
        .collect())
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
pub fn export(config: &Config) -> String {
    config
        .set_entries()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<icegrid>
  <!-- generated -->
  <properties id="__ACTIVE__">
    <property name="omero.config.profile" value="default"/>
    <property name="omero.config.version" value="5.1.0"/>
    <property name="omero.web.wsgi_workers" value="9"/>
    <property name="omero.web.apps" value="[&quot;omero_figure&quot;]"/>
  </properties>
  <properties id="default">
    <property name="omero.config.version" value="5.1.0"/>
    <property name="omero.web.wsgi_workers" value="9"/>
  </properties>
  <include file="generated.xml"/>
</icegrid>"#;

    #[test]
    fn xml_uses_the_active_block_and_unescapes() {
        let pairs = parse_config_xml(XML).unwrap();
        assert_eq!(pairs.len(), 4);
        assert_eq!(
            pairs[3],
            ("omero.web.apps".into(), r#"["omero_figure"]"#.into())
        );
        assert!(
            parse_config_xml("<foo/>")
                .unwrap_err()
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
