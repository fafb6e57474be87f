//! The embedded site's store: `etc/omero-web.toml` with flat quoted keys, edited in
//! place with toml_edit so comments, order and formatting survive.

use std::path::Path;

use super::error::ConfigError;
use super::property::{Property, Value};
use super::store::Raw;

/// Parses the text and hands every key with its line and raw value to `add` (the
/// shared validation).
pub fn parse(
    path: &Path,
    text: &str,
    add: &mut dyn FnMut(&str, usize, Raw) -> Result<(), ConfigError>,
) -> Result<toml_edit::DocumentMut, ConfigError> {
    let parsed = toml_edit::Document::parse(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        line: line_of(text, e.span().map(|s| s.start).unwrap_or(0)),
        message: e.message().trim().to_string(),
    })?;
    for (key, item) in parsed.as_table().iter() {
        let line = line_of(text, item_offset(&parsed, key));
        match item {
            toml_edit::Item::Value(v) => add(key, line, Raw::Toml(v))?,
            _ => {
                return Err(ConfigError::NotFlat {
                    path: path.to_path_buf(),
                    line,
                    key: key.to_string(),
                });
            }
        }
    }
    Ok(parsed.into_mut())
}

/// Sets `key`: the typed value of a known property (native TOML where TOML has
/// the type), else the raw text as a string. Keeps the comment around an old value.
pub fn set(
    doc: &mut toml_edit::DocumentMut,
    key: &str,
    typed: Option<(&Property, &Value)>,
    raw: &str,
) {
    let toml_value = match typed {
        Some((prop, value)) => prop.to_toml(value),
        None => toml_edit::Value::from(raw),
    };
    let table = doc.as_table_mut();
    match table.get_mut(key) {
        Some(toml_edit::Item::Value(old)) => {
            let decor = old.decor().clone();
            let mut new = toml_value;
            *new.decor_mut() = decor;
            *old = new;
        }
        _ => {
            table.insert(key, toml_edit::Item::Value(toml_value));
        }
    }
}

pub fn unset(doc: &mut toml_edit::DocumentMut, key: &str) {
    doc.as_table_mut().remove(key);
}

/// A TOML value as text, for messages and for unknown keys: strings unquoted.
pub fn display(value: &toml_edit::Value) -> String {
    match value {
        toml_edit::Value::String(s) => s.value().clone(),
        other => other.to_string().trim().to_string(),
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
