//! `omero-webctl config ...`: get, set, unset, list, edit, import, export.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::ConfigAction;
use crate::config::import::{self, Outcome};
use crate::config::{Config, Group, Property, Value, registry};
use crate::site::Site;

/// `omero_compat`: OMERO's `omero config get` output (see `--omero-compat`).
pub fn run(site: &Site, action: ConfigAction, omero_compat: bool) -> anyhow::Result<ExitCode> {
    // A write holds the file's lock from its read to its write (`omero config` too).
    let mut config = match action {
        ConfigAction::Set { .. } | ConfigAction::Unset { .. } | ConfigAction::Import { .. } => {
            Config::load_for_update(site)?
        }
        _ => Config::load(site)?,
    };
    match action {
        ConfigAction::Get {
            keys,
            show_password,
        } if omero_compat => print!("{}", omero_config_get(&config, &keys, show_password)),
        ConfigAction::Get {
            keys,
            show_password,
        } if keys.is_empty() => {
            print!("{}", import::export(&config, show_password).0);
        }
        ConfigAction::Get {
            keys,
            show_password,
        } => {
            // Every key is checked before anything is printed.
            if let Some(key) = keys
                .iter()
                .find(|k| registry::lookup(k).is_none() && !config.unknown().contains_key(*k))
            {
                return Err(crate::config::ConfigError::UnknownKey {
                    suggestions: registry::suggest(key),
                    key: key.clone(),
                }
                .into());
            }
            let value_of = |key: &str| -> Option<String> {
                config
                    .raw(key)
                    .or_else(|| config.effective(key).map(|v| v.to_raw()))
            };
            if let [key] = keys.as_slice() {
                if let Some(value) = value_of(key) {
                    println!("{value}");
                }
            } else {
                for key in &keys {
                    if let Some(value) = value_of(key) {
                        let shown = if !show_password && !value.is_empty() && import::is_secret(key)
                        {
                            "*".repeat(8)
                        } else {
                            value
                        };
                        println!("{key}={shown}");
                    }
                }
            }
        }
        ConfigAction::Set { key, value, force } => {
            let needs = config.set(&key, &value, force)?;
            // Refused at `set`, with the line and the reason, not first when nginx's
            // config is generated (by root, perhaps, for the system nginx).
            crate::nginx::check_property(&key, &config.settings())?;
            let warning = crate::supervisor::for_site(site)
                .vet_setting(&config, &key)
                .map_err(|refusal| anyhow::anyhow!(refusal))?;
            config.save()?;
            if let Some(warning) = warning {
                eprintln!("WARNING: {warning}");
            }
            print_needs(&key, needs);
            if key == "omero.web.wsgi_args"
                && site.kind() == crate::site::SiteKind::Embedded
                && let Some(note) = crate::config::wsgi_args::parse(&value)
                    .ok()
                    .and_then(|args| args.no_effect_note())
            {
                eprintln!("note: {note}");
            }
        }
        ConfigAction::Unset { key } => {
            if config.unset(&key)? {
                config.save()?;
            } else {
                eprintln!("{key} was not set");
            }
        }
        ConfigAction::List { all, json } => {
            let rows = list_rows(&config, all);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_table(&rows);
            }
        }
        ConfigAction::Edit => return edit(site, &config),
        ConfigAction::Import { file, force } => {
            let pairs = import::read_pairs(&file)?;
            let entries = import::apply(&mut config, pairs, force);
            let mut refused = 0;
            let mut imported = 0;
            for e in &entries {
                match &e.outcome {
                    Outcome::Imported => {
                        imported += 1;
                        println!("imported {}={}", e.key, e.value);
                    }
                    Outcome::Ignored(why) => println!("skipped  {}: {why}", e.key),
                    Outcome::Refused(why) => {
                        refused += 1;
                        eprintln!("refused  {why}");
                    }
                }
            }
            if imported > 0 {
                config.save()?;
            }
            println!(
                "{imported} imported, {} skipped, {refused} refused into {}",
                entries.len() - imported - refused,
                config.path().display()
            );
            if refused > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        ConfigAction::Export { show_password } => {
            let (text, masked) = import::export(&config, show_password);
            print!("{text}");
            if masked > 0 {
                eprintln!(
                    "note: {masked} secret value(s) masked as ********; add --show-password to export them"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `omero config get KEY...` (omero-py's `prefs.py`): only keys the file sets, in
/// sorted order; one key prints its bare value, several (or none: every key) print
/// `key=value` with values of keys named like passwords masked; an unset or unknown
/// key prints nothing. Values are the file's text as written.
fn omero_config_get(config: &Config, keys: &[String], show_password: bool) -> String {
    let set: Vec<(String, String)> = config.set_entries();
    let value_of = |key: &str| set.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let mut wanted: Vec<&str> = if keys.is_empty() {
        set.iter().map(|(k, _)| k.as_str()).collect()
    } else {
        keys.iter().map(String::as_str).collect()
    };
    wanted.sort_unstable();
    let mut out = String::new();
    for key in wanted {
        let Some(value) = value_of(key) else {
            continue;
        };
        if keys.len() == 1 {
            out.push_str(&format!("{value}\n"));
        } else {
            let lower = key.to_lowercase();
            let password = lower.ends_with("pass") || lower.ends_with("password");
            let shown = match (password && !show_password, value.is_empty()) {
                (true, false) => "*".repeat(8),
                (true, true) => String::new(),
                _ => value.clone(),
            };
            out.push_str(&format!("{key}={shown}\n"));
        }
    }
    out
}

fn print_needs(key: &str, needs: &[crate::config::Need]) {
    if !needs.is_empty() {
        let words: Vec<_> = needs.iter().map(|n| n.describe()).collect();
        eprintln!("{key} takes effect after: {}", words.join(", "));
    }
}

/// One row of `config list`.
#[derive(Debug, serde::Serialize)]
struct Row {
    key: String,
    group: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    /// "set", "default" or "unset".
    source: &'static str,
    value: Option<String>,
    default: Option<String>,
    extension: bool,
    deprecated_by: Option<&'static str>,
    known: bool,
    needs: Vec<&'static str>,
    description: &'static str,
    /// Why the set value is odd, how OMERO reads it and what omero-webctl uses.
    warning: Option<String>,
    /// OMERO.web's own parser fails on the value: it cannot start until it is fixed.
    omero_fails: bool,
}

fn mask(prop: &Property, value: Option<String>) -> Option<String> {
    match value {
        Some(v) if prop.secret && !v.is_empty() => Some("********".into()),
        other => other,
    }
}

fn list_rows(config: &Config, all: bool) -> Vec<Row> {
    let shown = |p: &&Property| all || !matches!(p.group, Group::Internal | Group::Deprecated);
    let row = |p: &Property| {
        let source = if config.is_set(p.key) {
            "set"
        } else if p.default.is_some() {
            "default"
        } else {
            "unset"
        };
        // A set value as the file writes it (an odd one included), else the default.
        let value = config
            .raw(p.key)
            .or_else(|| config.default_of(p).map(|v: Value| v.to_raw()));
        Row {
            key: p.key.to_string(),
            group: p.group.title(),
            kind: p.kind.name(),
            source,
            value: mask(p, value),
            default: mask(p, config.default_of(p).map(|v| v.to_raw())),
            extension: p.extension,
            deprecated_by: p.replaced_by,
            known: true,
            needs: p.needs.iter().map(|n| n.describe()).collect(),
            description: p.help,
            warning: config.value_warning(p.key).map(|w| w.message.clone()),
            omero_fails: config.value_warning(p.key).is_some_and(|w| w.omero_fails),
        }
    };
    let (set, unset): (Vec<&Property>, Vec<&Property>) = registry::PROPERTIES
        .iter()
        .filter(shown)
        .partition(|p| config.is_set(p.key));
    let mut rows: Vec<Row> = set.into_iter().map(row).collect();
    rows.extend(config.unknown().iter().map(|(k, v)| Row {
        key: k.clone(),
        group: "Unknown",
        kind: "string",
        source: "set",
        value: Some(v.clone()),
        default: None,
        extension: false,
        deprecated_by: None,
        known: false,
        needs: vec![],
        description: "not a known property (set with --force)",
        warning: None,
        omero_fails: false,
    }));
    rows.extend(unset.into_iter().map(row));
    rows
}

fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for r in rows {
        let note = if let Some(warning) = &r.warning {
            let level = if r.omero_fails { "error" } else { "warning" };
            format!("  ({level}: {warning})")
        } else if !r.known {
            "  (unknown)".to_string()
        } else if let Some(new) = r.deprecated_by {
            format!("  (deprecated: {new})")
        } else if r.extension {
            "  (extension)".to_string()
        } else {
            String::new()
        };
        let value = r
            .value
            .as_deref()
            .map(|v| format!("{v:?}"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "{:width$}  {:7}  {value}{note}", r.key, r.source);
    }
}

/// An edit is a set of values being set: odd values already in the file stay (and
/// keep their warnings), but a value the edit makes odd is refused with its reason.
fn refuse_new_odd_values(before: &Config, edited: &Config) -> anyhow::Result<()> {
    let new: Vec<String> = edited
        .value_warnings()
        .into_iter()
        .filter(|w| {
            before
                .value_warning(&w.key)
                .is_none_or(|old| old.raw != w.raw)
        })
        .map(|w| {
            let path = edited.path().display();
            format!("{path}:{}: {} = {:?}: {}", w.line, w.key, w.raw, w.refused)
        })
        .collect();
    if new.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", new.join("\n"))
    }
}

/// Opens `$VISUAL`/`$EDITOR` on a copy of the config; the copy replaces the file only
/// if it is valid and the file did not change meanwhile. An invalid edit is kept.
fn edit(site: &Site, config: &Config) -> anyhow::Result<ExitCode> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    let dir = site.etc_dir();
    std::fs::create_dir_all(&dir)?;
    let copy = tempfile::Builder::new()
        .prefix("omero-web.edit-")
        .suffix(".toml")
        .tempfile_in(&dir)?;
    std::fs::write(copy.path(), config.to_text())?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(copy.path())
        .status()
        .with_context(|| format!("cannot run the editor {editor:?}"))?;
    if !status.success() {
        anyhow::bail!("the editor {editor:?} failed ({status}); nothing was changed");
    }
    let text = std::fs::read_to_string(copy.path())?;
    if text == config.to_text() {
        eprintln!("no changes");
        return Ok(ExitCode::SUCCESS);
    }
    // Validate under the copy's name, so a reported line points at the kept file.
    let checked = Config::from_text(site, copy.path().to_path_buf(), text.clone(), None)
        .map_err(anyhow::Error::from)
        .and_then(|edited| refuse_new_odd_values(config, &edited));
    let saved = checked.and_then(|_| {
        let mut edited = Config::from_text(
            site,
            config.path().to_path_buf(),
            text,
            config.original_bytes().map(<[u8]>::to_vec),
        )?;
        Ok(edited.save()?)
    });
    if let Err(problem) = saved {
        let (_, kept) = copy.keep()?;
        anyhow::bail!(
            "{problem}; nothing was changed, your edit is kept in {}",
            kept.display()
        );
    }
    eprintln!("saved {}", config.path().display());
    Ok(ExitCode::SUCCESS)
}
