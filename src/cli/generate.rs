//! What is generated from the clap definitions themselves, so it can never drift from
//! the real flags: shell completions (property names included) and man pages; and
//! `install`, which puts them, the binary and the systemd unit template in place.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::{PossibleValue, StringValueParser, TypedValueParser};
use clap::{CommandFactory, ValueEnum};

use super::Cli;
use crate::config::registry;
use crate::fsutil::write_atomic;

const BIN_NAME: &str = "omero-webctl";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    pub const ALL: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }

    /// Where the shell looks for a completion script, relative to an install prefix
    /// (bash-completion, zsh's site-functions and fish's vendor directory).
    pub fn install_path(self) -> PathBuf {
        match self {
            Shell::Bash => PathBuf::from("share/bash-completion/completions").join(BIN_NAME),
            Shell::Zsh => PathBuf::from("share/zsh/site-functions").join(format!("_{BIN_NAME}")),
            Shell::Fish => {
                PathBuf::from("share/fish/vendor_completions.d").join(format!("{BIN_NAME}.fish"))
            }
        }
    }
}

/// A property key: any text is accepted (the config store answers unknown keys with
/// "did you mean", and `set --force` stores them), while the registry's keys are the
/// possible values the shell completions offer.
#[derive(Debug, Clone, Copy)]
pub struct PropertyKeyParser;

impl TypedValueParser for PropertyKeyParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            registry::PROPERTIES
                .iter()
                .filter(|p| !p.is_deprecated())
                .map(|p| PossibleValue::new(p.key)),
        ))
    }
}

/// The completion script for `shell`.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell.generator(), &mut cmd, BIN_NAME, &mut out);
    if shell == Shell::Bash {
        // clap_complete's bash generator spells a hyphenated program's function cases
        // two ways (`omero__webctl` where it tracks the words, `omero__subcmd__webctl`
        // where it completes them), so no subcommand would ever complete: use one.
        let script = String::from_utf8(out).expect("the script is UTF-8");
        let mangled = BIN_NAME.replace('-', "__subcmd__");
        let tracked = BIN_NAME.replace('-', "__");
        out = script.replace(&mangled, &tracked).into_bytes();
    }
    if shell == Shell::Fish {
        out.extend(fish_property_keys().into_bytes());
    }
    out
}

/// clap_complete's fish generator leaves out the possible values of positional
/// arguments, so the property keys of `config get/set/unset` are added here, with
/// their help as fish's descriptions, offered only where the key goes.
fn fish_property_keys() -> String {
    fn quote(text: &str) -> String {
        format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
    }
    let mut out = String::from(
        "
# The property keys of `config get/set/unset` (before the key, not after it).
function __fish_omero_webctl_wants_property_key
    set -l seen 0
    for word in (commandline -opc)
        if test $seen -eq 1
            string match -q -- '-*' $word; or return 1
        else if contains -- $word get set unset
            set seen 1
        end
    end
    test $seen -eq 1
end
",
    );
    for p in registry::PROPERTIES.iter().filter(|p| !p.is_deprecated()) {
        out.push_str(&format!(
            "complete -c {BIN_NAME} -n '__fish_omero_webctl_using_subcommand config; and __fish_omero_webctl_wants_property_key' -f -a {} -d {}\n",
            quote(p.key),
            quote(p.help)
        ));
    }
    out
}

/// The man pages: `omero-webctl.1` first, then one per command
/// (`omero-webctl-config-set.1`, ...), as (file name, roff).
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    fn collect(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) {
        // The text after --help becomes real sections (ENVIRONMENT, FILES, EXIT
        // STATUS) rather than clap_mangen's one "EXTRA" block.
        let sections = cmd
            .get_after_long_help()
            .map(|text| roff_sections(&text.to_string()));
        let man = clap_mangen::Man::new(cmd.clone().after_long_help(None::<&str>))
            .manual("omero-webctl manual");
        let mut roff = Vec::new();
        man.render(&mut roff).expect("rendering into memory");
        if let Some(sections) = sections {
            let mut text = String::from_utf8(roff).expect("roff is UTF-8");
            let at = text.find(".SH VERSION").unwrap_or(text.len());
            text.insert_str(at, &sections);
            roff = text.into_bytes();
        }
        pages.push((man.get_filename(), roff));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            collect(sub, pages);
        }
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building names the subcommands `omero-webctl-config` etc., as their pages are.
    cmd.build();
    let mut pages = Vec::new();
    collect(&cmd, &mut pages);
    pages
}

/// Roff for the blocks of [`super::AFTER_LONG_HELP`]'s shape: `Heading (note):` then
/// `  term   meaning` lines, as `.SH HEADING`, the note, and one `.TP` per entry.
fn roff_sections(text: &str) -> String {
    fn escape(text: &str) -> String {
        text.replace('\\', "\\e").replace('-', "\\-")
    }
    let mut out = String::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines();
        let Some(heading) = lines.next().and_then(|h| h.strip_suffix(':')) else {
            continue;
        };
        let (title, note) = match heading.split_once(" (") {
            Some((title, note)) => (title, note.strip_suffix(')')),
            None => (heading, None),
        };
        out.push_str(&format!(".SH \"{}\"\n", title.to_uppercase()));
        if let Some(note) = note {
            out.push_str(&format!("{}:\n", escape(&super::capitalise(note))));
        }
        for line in lines {
            let entry = line.trim_start();
            let (term, meaning) = entry
                .split_once("  ")
                .map(|(t, m)| (t, m.trim()))
                .unwrap_or((entry, ""));
            out.push_str(&format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                escape(term),
                escape(meaning)
            ));
        }
    }
    out
}

/// `omero-webctl man [--output DIR]`.
pub fn man_command(output: Option<&Path>) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let pages = man_pages();
    match output {
        None => std::io::stdout().write_all(&pages[0].1)?,
        Some(dir) => {
            for (name, roff) in &pages {
                let path = dir.join(name);
                write_atomic(&path, roff, Some(0o644))
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
            eprintln!("Wrote {} man pages into {}", pages.len(), dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot read this program ({path}): {source}")]
    ReadSelf {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Unit(#[from] crate::systemd::UnitError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Every file `install` puts under a prefix, relative to it, with its mode and content.
pub fn install_files(
    prefix: &Path,
    exe: &Path,
) -> Result<Vec<(PathBuf, u32, Vec<u8>)>, InstallError> {
    let binary = std::fs::read(exe).map_err(|source| InstallError::ReadSelf {
        path: exe.to_path_buf(),
        source,
    })?;
    let mut files = vec![(PathBuf::from("bin").join(BIN_NAME), 0o755, binary)];
    // The pool's worker program, when a trusted one goes with this program: in
    // lib/omero-webctl/, where the installed program looks for it. Without it the
    // installed program's workers run the program itself.
    if let Some(worker) = crate::pool::worker_program::trusted_beside(exe) {
        let path = crate::pool::worker_program::fd_path(&worker);
        let program =
            std::fs::read(&path).map_err(|source| InstallError::ReadSelf { path, source })?;
        files.push((
            PathBuf::from("lib/omero-webctl").join(crate::pool::worker_program::NAME),
            0o755,
            program,
        ));
    }
    for shell in Shell::ALL {
        files.push((shell.install_path(), 0o644, completion_script(shell)));
    }
    for (name, roff) in man_pages() {
        files.push((PathBuf::from("share/man/man1").join(name), 0o644, roff));
    }
    let installed = prefix.join("bin").join(BIN_NAME);
    let template = crate::systemd::template_unit(crate::systemd::DEFAULT_NAME, &installed)?;
    files.push((
        PathBuf::from("lib/systemd/system").join(&template.file_name),
        0o644,
        template.text.into_bytes(),
    ));
    Ok(files)
}

/// Installs everything under `prefix`; each file is written atomically. Everything is
/// generated before the first write, so a failure to generate writes nothing.
pub fn install(prefix: &Path, exe: &Path) -> Result<Vec<PathBuf>, InstallError> {
    // The unit template names the installed program by its absolute path.
    let prefix = &std::path::absolute(prefix).map_err(|source| InstallError::Write {
        path: prefix.to_path_buf(),
        source,
    })?;
    let files = install_files(prefix, exe)?;
    let mut written = Vec::new();
    for (relative, mode, content) in files {
        let path = prefix.join(relative);
        write_atomic(&path, &content, Some(mode)).map_err(|source| InstallError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// `omero-webctl install [--prefix PREFIX]`.
pub fn install_command(prefix: &Path) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program's path: {e}"))?;
    let written = install(prefix, &exe).map_err(|e| match &e {
        InstallError::Write { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            anyhow::anyhow!("{e} (run as root, or choose another --prefix)")
        }
        _ => anyhow::anyhow!("{e}"),
    })?;
    for path in &written {
        println!("installed {}", path.display());
    }
    println!(
        "Open a new shell for the completions; `man omero-webctl` for the manual; `omero-webctl systemd` writes the units of a site."
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_current_property_is_offered_and_no_deprecated_one() {
        let offered: Vec<String> = PropertyKeyParser
            .possible_values()
            .unwrap()
            .map(|v| v.get_name().to_string())
            .collect();
        for p in registry::PROPERTIES {
            assert_eq!(
                offered.contains(&p.key.to_string()),
                !p.is_deprecated(),
                "{}",
                p.key
            );
        }
    }
}
