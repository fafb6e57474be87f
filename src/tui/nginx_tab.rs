//! nginx tab state: the kind and command-line options, the live preview rendered from
//! the current properties, the `nginx -t` verdict for exactly that text, and the diff
//! against the file at the output path.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use crate::config::Settings;
use crate::nginx::{self, CheckReport, NginxKind, RenderOptions};

use super::diff::{DiffLine, diff_lines};
use super::input::LineInput;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NginxField {
    HttpPort,
    ServerName,
    MaxBodySize,
    OutputPath,
}

impl NginxField {
    pub fn label(self) -> &'static str {
        match self {
            NginxField::HttpPort => "HTTP port",
            NginxField::ServerName => "server_name",
            NginxField::MaxBodySize => "max body size",
            NginxField::OutputPath => "file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldEdit {
    pub field: NginxField,
    pub input: LineInput,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckState {
    NotRun,
    Running {
        text_hash: u64,
    },
    Done {
        text_hash: u64,
        result: Result<CheckReport, String>,
    },
}

/// The file at the output path, as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    NotRead,
    Missing,
    Present(String),
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxTab {
    pub kind: NginxKind,
    pub options: RenderOptions,
    pub output_path: PathBuf,
    /// The rendered config (without the final newline the file gets), or why it
    /// cannot be rendered.
    pub preview: Result<String, String>,
    pub preview_hash: u64,
    pub check: CheckState,
    pub target: Target,
    pub diff: Vec<DiffLine>,
    pub show_diff: bool,
    pub scroll: usize,
    pub edit: Option<FieldEdit>,
    pub writing: bool,
    /// The port was typed in this tab by whoever runs the panel (not read from
    /// var/nginx/port, a file the site's owner controls): only such a port is passed
    /// to a start, as `--http` would be.
    pub port_chosen: bool,
}

pub const KINDS: [NginxKind; 3] = [
    NginxKind::Nginx,
    NginxKind::NginxLocation,
    NginxKind::NginxDevelopment,
];

pub fn text_hash(kind: NginxKind, text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kind.as_str().hash(&mut h);
    text.hash(&mut h);
    h.finish()
}

/// Checks a field's text; `Ok(None)` means "empty: use the default".
pub fn parse_field(field: NginxField, text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return match field {
            NginxField::OutputPath => Err("a file path is needed".into()),
            _ => Ok(None),
        };
    }
    match field {
        NginxField::HttpPort => match text.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Some(port.to_string())),
            _ => Err("not a port; allowed: an integer from 1 to 65535".into()),
        },
        NginxField::ServerName => nginx::validate_server_name(text)
            .map(|_| Some(text.to_string()))
            .map_err(|e| e.to_string()),
        NginxField::MaxBodySize => nginx::validate_max_body_size(text)
            .map(|_| Some(text.to_string()))
            .map_err(|e| e.to_string()),
        NginxField::OutputPath => Ok(Some(text.to_string())),
    }
}

impl NginxTab {
    /// With `private_port` (the private nginx has been started before), the tab shows
    /// that instance's config: `nginx-development` on its port, written to the file it
    /// reads, so that writing and reloading from here keep it where it is.
    pub fn new(
        output_path: PathBuf,
        worker_user: Option<String>,
        private_port: Option<u16>,
    ) -> NginxTab {
        NginxTab {
            kind: if private_port.is_some() {
                NginxKind::NginxDevelopment
            } else {
                NginxKind::Nginx
            },
            options: RenderOptions {
                worker_user,
                http_port: private_port,
                ..RenderOptions::default()
            },
            output_path,
            preview: Err("not rendered yet".into()),
            preview_hash: 0,
            check: CheckState::NotRun,
            target: Target::NotRead,
            diff: Vec::new(),
            show_diff: false,
            scroll: 0,
            edit: None,
            writing: false,
            port_chosen: false,
        }
    }

    /// Renders the preview again from `settings` (`Err`: the config cannot be used).
    /// Returns whether the text changed.
    pub fn rerender(&mut self, settings: Result<&Settings, &str>) -> bool {
        let options = RenderOptions {
            // The `user` line belongs to the development config only, as in the CLI.
            worker_user: match self.kind {
                NginxKind::NginxDevelopment => self.options.worker_user.clone(),
                _ => None,
            },
            ..self.options.clone()
        };
        let preview = match settings {
            Ok(settings) => nginx::render(settings, self.kind, &options).map_err(|e| e.to_string()),
            Err(why) => Err(why.to_string()),
        };
        if preview == self.preview {
            return false;
        }
        self.preview = preview;
        self.preview_hash = match &self.preview {
            Ok(text) => text_hash(self.kind, text),
            Err(_) => 0,
        };
        self.recompute_diff();
        true
    }

    /// What would be written: the preview plus the final newline (as the CLI writes).
    /// The preview as a file: exactly one newline at the end, as `nginx start` and
    /// `nginx --output` write it (else the same config "differs" by a blank line).
    pub fn file_text(&self) -> Option<String> {
        self.preview
            .as_ref()
            .ok()
            .map(|t| format!("{}\n", t.trim_end_matches('\n')))
    }

    pub fn recompute_diff(&mut self) {
        self.diff = match (&self.target, self.file_text()) {
            (Target::Present(old), Some(new)) => diff_lines(old, &new),
            (Target::Missing, Some(new)) => diff_lines("", &new),
            _ => Vec::new(),
        };
    }

    /// Whether the file on disk already holds the preview.
    pub fn up_to_date(&self) -> bool {
        matches!((&self.target, self.file_text()), (Target::Present(old), Some(new)) if *old == new)
    }

    /// Whether the verdict shown is not for the current preview.
    pub fn check_is_stale(&self) -> bool {
        if self.preview.is_err() {
            return false;
        }
        match &self.check {
            CheckState::NotRun => true,
            CheckState::Running { text_hash } | CheckState::Done { text_hash, .. } => {
                *text_hash != self.preview_hash
            }
        }
    }

    pub fn check_running(&self) -> bool {
        matches!(self.check, CheckState::Running { .. })
    }

    pub fn next_kind(&mut self) {
        let i = KINDS.iter().position(|&k| k == self.kind).unwrap_or(0);
        self.kind = KINDS[(i + 1) % KINDS.len()];
        self.scroll = 0;
    }

    /// The port `s` and `n` start the private nginx on: the one typed here, if any
    /// (else the start's own rule: the remembered port, else 8080).
    pub fn chosen_port(&self) -> Option<u16> {
        self.options.http_port.filter(|_| self.port_chosen)
    }

    /// The port the config is rendered for.
    pub fn http_port(&self) -> u16 {
        self.options
            .http_port
            .unwrap_or_else(|| self.kind.default_http_port())
    }

    pub fn begin_edit(&mut self, field: NginxField) {
        let text = match field {
            NginxField::HttpPort => self
                .options
                .http_port
                .unwrap_or_else(|| self.kind.default_http_port())
                .to_string(),
            NginxField::ServerName => self
                .options
                .server_name
                .clone()
                .unwrap_or_else(|| "$hostname".into()),
            NginxField::MaxBodySize => self
                .options
                .max_body_size
                .clone()
                .unwrap_or_else(|| "0".into()),
            NginxField::OutputPath => self.output_path.display().to_string(),
        };
        self.edit = Some(FieldEdit {
            field,
            error: parse_field(field, &text).err(),
            input: LineInput::new(text),
        });
    }

    pub fn revalidate(&mut self) {
        if let Some(edit) = &mut self.edit {
            edit.error = parse_field(edit.field, edit.input.value()).err();
        }
    }

    /// Applies the field being edited. `Err` (the edit stays open) if it is invalid;
    /// `Ok(true)` when the output path changed.
    pub fn apply_edit(&mut self, site_root: &std::path::Path) -> Result<bool, String> {
        let Some(edit) = &self.edit else {
            return Ok(false);
        };
        let value = parse_field(edit.field, edit.input.value())?;
        let mut path_changed = false;
        match edit.field {
            NginxField::HttpPort => {
                self.options.http_port = value.and_then(|v| v.parse().ok());
                self.port_chosen = true;
            }
            NginxField::ServerName => self.options.server_name = value,
            NginxField::MaxBodySize => self.options.max_body_size = value,
            NginxField::OutputPath => {
                let path = PathBuf::from(value.unwrap_or_default());
                // Relative paths are taken from the site directory, not the cwd.
                let path = if path.is_absolute() {
                    path
                } else {
                    site_root.join(path)
                };
                path_changed = path != self.output_path;
                if path_changed {
                    self.output_path = path;
                    self.target = Target::NotRead;
                    self.recompute_diff();
                }
            }
        }
        self.edit = None;
        Ok(path_changed)
    }

    /// Lines the preview pane shows (preview or diff), for scrolling.
    pub fn line_count(&self) -> usize {
        if self.show_diff {
            super::diff::hunks(&self.diff, super::diff::CONTEXT).len()
        } else {
            match &self.preview {
                Ok(text) => text.lines().count(),
                Err(_) => 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::site::Site;

    fn settings(text: &str) -> Settings {
        let site = Site::new("/srv/web");
        Config::from_text(&site, site.config_file(), text.into(), None)
            .unwrap()
            .settings()
    }

    #[test]
    fn the_preview_follows_the_properties_and_options() {
        let mut tab = NginxTab::new("/srv/web/var/nginx/omeroweb.conf".into(), None, None);
        assert!(tab.rerender(Ok(&settings(""))));
        assert!(tab.preview.as_ref().unwrap().contains("127.0.0.1:4080"));
        assert!(!tab.rerender(Ok(&settings(""))));
        let s = settings("\"omero.web.application_server.port\" = 4099\n");
        assert!(tab.rerender(Ok(&s)));
        assert!(tab.preview.as_ref().unwrap().contains("4099"));
        tab.options.http_port = Some(4099);
        tab.rerender(Ok(&s));
        assert!(tab.preview.as_ref().unwrap_err().contains("Port conflict"));
        assert!(!tab.check_is_stale(), "an error needs no nginx -t");
        tab.rerender(Err("bad config"));
        assert_eq!(tab.preview, Err("bad config".to_string()));
    }

    #[test]
    fn option_fields_are_validated() {
        assert_eq!(
            parse_field(NginxField::HttpPort, "8080"),
            Ok(Some("8080".into()))
        );
        assert!(parse_field(NginxField::HttpPort, "0").is_err());
        assert!(parse_field(NginxField::HttpPort, "http").is_err());
        assert_eq!(parse_field(NginxField::HttpPort, " "), Ok(None));
        assert!(parse_field(NginxField::ServerName, "a;b").is_err());
        assert!(parse_field(NginxField::MaxBodySize, "10m").is_ok());
        assert!(parse_field(NginxField::MaxBodySize, "10 m").is_err());
        assert!(parse_field(NginxField::OutputPath, "").is_err());
    }

    #[test]
    fn verdicts_belong_to_one_text() {
        let mut tab = NginxTab::new("/x".into(), None, None);
        tab.rerender(Ok(&settings("")));
        assert!(tab.check_is_stale());
        tab.check = CheckState::Done {
            text_hash: tab.preview_hash,
            result: Err("nginx not found".into()),
        };
        assert!(!tab.check_is_stale());
        tab.next_kind();
        tab.rerender(Ok(&settings("")));
        assert!(tab.check_is_stale());
    }

    #[test]
    fn the_diff_compares_with_the_file() {
        let mut tab = NginxTab::new("/x".into(), None, None);
        tab.rerender(Ok(&settings("")));
        tab.target = Target::Present(tab.file_text().unwrap());
        tab.recompute_diff();
        assert!(tab.up_to_date());
        assert_eq!(super::super::diff::summary(&tab.diff), (0, 0));
        tab.options.max_body_size = Some("2m".into());
        tab.rerender(Ok(&settings("")));
        assert!(!tab.up_to_date());
        assert_eq!(super::super::diff::summary(&tab.diff), (1, 1));
    }

    #[test]
    fn relative_output_paths_are_under_the_site() {
        let mut tab = NginxTab::new("/srv/web/var/nginx/omeroweb.conf".into(), None, None);
        tab.begin_edit(NginxField::OutputPath);
        tab.edit.as_mut().unwrap().input.set("etc/nginx.conf");
        assert_eq!(tab.apply_edit(std::path::Path::new("/srv/web")), Ok(true));
        assert_eq!(tab.output_path, PathBuf::from("/srv/web/etc/nginx.conf"));
        tab.begin_edit(NginxField::HttpPort);
        tab.edit.as_mut().unwrap().input.set("x");
        assert!(tab.apply_edit(std::path::Path::new("/srv/web")).is_err());
        assert!(tab.edit.is_some());
    }
}
