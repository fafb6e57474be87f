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
    let _ = omero_compat; // config get in OMERO's words: to do (issue 19)
    // A write holds the file's lock from its read to its write (`omero config` too).
    let mut config = match action {
        ConfigAction::Set { .. } | ConfigAction::Unset { .. } | ConfigAction::Import { .. } => {
            Config::load_for_update(site)?
        }
        _ => Config::load(site)?,
    };
    match action {
        ConfigAction::Get {
            key: None,
            show_password,
        } => {
            print!("{}", import::export(&config, show_password).0);
        }
        ConfigAction::Get { key: Some(key), .. } => {
            if registry::lookup(&key).is_none() && !config.unknown().contains_key(&key) {
                return Err(crate::config::ConfigError::UnknownKey {
                    suggestions: registry::suggest(&key),
                    key,
                }
                .into());
            }
            let value = config
                .effective(&key)
                .map(|v| v.to_raw())
                .or_else(|| config.unknown().get(&key).cloned());
            if let Some(value) = value {
                println!("{value}");
            }
        }
        ConfigAction::Set { key, value, force } => {
            let needs = config.set(&key, &value, force)?;
            // Refused at `set`, with the line and the reason, not first when nginx's
            // config is generated (by root, perhaps, for the system nginx).
            crate::nginx::check_property(&key, &config.settings())?;
            let warning = crate::supervisor::vet_setting(site, &config, &key)
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
        let set = config.get(p.key).cloned();
        let source = if set.is_some() {
            "set"
        } else if p.default.is_some() {
            "default"
        } else {
            "unset"
        };
        let value = set
            .or_else(|| config.default_of(p))
            .map(|v: Value| v.to_raw());
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
        }
    };
    let (set, unset): (Vec<&Property>, Vec<&Property>) = registry::PROPERTIES
        .iter()
        .filter(shown)
        .partition(|p| config.get(p.key).is_some());
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
    }));
    rows.extend(unset.into_iter().map(row));
    rows
}

fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for r in rows {
        let note = if !r.known {
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
    let checked = Config::from_text(site, copy.path().to_path_buf(), text.clone(), None);
    let saved = checked.and_then(|_| {
        let mut edited = Config::from_text(
            site,
            config.path().to_path_buf(),
            text,
            config.original_bytes().map(<[u8]>::to_vec),
        )?;
        edited.save()
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
