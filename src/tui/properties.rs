//! Properties tab state: which registry properties are shown (grouped, filtered), the
//! selection, and the inline editor that validates as you type.

use crate::config::registry::PROPERTIES;
use crate::config::{Config, Group, Kind, Property};

use super::input::LineInput;

/// An edit in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub key: &'static str,
    pub input: LineInput,
    /// Why the current text would be refused (`None`: it is valid).
    pub error: Option<String>,
    /// Submitted; waiting for the save to finish.
    pub saving: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    pub selected: Option<&'static str>,
    pub filter: String,
    pub filter_input: Option<LineInput>,
    /// The filter before `/` was pressed, restored by Esc.
    pub filter_before: String,
    pub edit: Option<Edit>,
    /// An OMERO.web site: properties only the embedded pool reads are not listed.
    pub hide_embedded_only: bool,
}

/// Whether a property matches a filter: key, help or group title, ignoring case.
pub fn matches(prop: &Property, filter: &str) -> bool {
    let filter = filter.trim().to_lowercase();
    filter.is_empty()
        || prop.key.to_lowercase().contains(&filter)
        || prop.help.to_lowercase().contains(&filter)
        || prop.group.title().to_lowercase().contains(&filter)
}

/// Why `text` is not a valid value of `prop`, in the words the CLI uses.
pub fn validation_error(prop: &Property, text: &str) -> Option<String> {
    prop.parse(text)
        .err()
        .map(|invalid| format!("{}; allowed: {}", invalid.reason, prop.kind.allowed()))
}

/// The values Tab cycles through, for properties that have a fixed set.
pub fn choices(prop: &Property) -> Vec<&'static str> {
    match prop.kind {
        Kind::Choice(words) => words.to_vec(),
        Kind::Bool => vec!["true", "false"],
        _ => Vec::new(),
    }
}

/// The value a property has: set in the file (as written, an odd value included),
/// else its default. `None`: unset and no default.
pub fn current_raw(config: &Config, prop: &Property) -> Option<String> {
    config
        .raw(prop.key)
        .or_else(|| config.effective(prop.key).map(|v| v.to_raw()))
}

impl Properties {
    /// Every property passing the filter, grouped in the panel's group order.
    pub fn visible(&self) -> Vec<&'static Property> {
        Group::ALL
            .iter()
            .flat_map(|&group| PROPERTIES.iter().filter(move |p| p.group == group))
            .filter(|p| matches(p, &self.filter))
            .filter(|p| !(self.hide_embedded_only && p.embedded_only))
            .collect()
    }

    pub fn selected_property(&self) -> Option<&'static Property> {
        let visible = self.visible();
        self.selected
            .and_then(|key| visible.iter().find(|p| p.key == key).copied())
            .or_else(|| visible.first().copied())
    }

    pub fn move_selection(&mut self, delta: isize) {
        let visible = self.visible();
        if visible.is_empty() {
            return;
        }
        let current = self
            .selected_property()
            .and_then(|p| visible.iter().position(|v| v.key == p.key))
            .unwrap_or(0);
        let target = (current as isize + delta).clamp(0, visible.len() as isize - 1) as usize;
        self.selected = Some(visible[target].key);
    }

    /// Opens the editor on the selected property, holding its current value (empty
    /// for secrets, which are never shown).
    pub fn begin_edit(&mut self, config: &Config) -> Option<&'static Property> {
        let prop = self.selected_property()?;
        let text = if prop.secret {
            String::new()
        } else {
            current_raw(config, prop).unwrap_or_default()
        };
        self.selected = Some(prop.key);
        self.edit = Some(Edit {
            key: prop.key,
            error: validation_error(prop, &text),
            input: LineInput::new(text),
            saving: false,
        });
        Some(prop)
    }

    /// Re-validates the text being edited.
    pub fn revalidate(&mut self) {
        if let Some(edit) = &mut self.edit
            && let Some(prop) = crate::config::registry::lookup(edit.key)
        {
            edit.error = validation_error(prop, edit.input.value());
        }
    }

    /// Tab in the editor: the next allowed value after the one typed.
    pub fn complete(&mut self) {
        let Some(edit) = &mut self.edit else { return };
        let Some(prop) = crate::config::registry::lookup(edit.key) else {
            return;
        };
        let options = choices(prop);
        if options.is_empty() {
            return;
        }
        let typed = edit.input.value().trim().to_lowercase();
        let next = match options.iter().position(|o| o.to_lowercase() == typed) {
            Some(i) => options[(i + 1) % options.len()],
            None => options
                .iter()
                .find(|o| o.to_lowercase().starts_with(&typed))
                .copied()
                .unwrap_or(options[0]),
        };
        edit.input.set(next);
        self.revalidate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::Site;

    fn config(text: &str) -> Config {
        let site = Site::new("/srv/web");
        Config::from_text(&site, site.config_file(), text.into(), None).unwrap()
    }

    #[test]
    fn every_property_is_listed_in_group_order() {
        let p = Properties::default();
        let visible = p.visible();
        assert_eq!(visible.len(), PROPERTIES.len());
        let groups: Vec<Group> = visible.iter().map(|p| p.group).collect();
        let mut sorted = groups.clone();
        sorted.sort();
        assert_eq!(groups, sorted);
    }

    #[test]
    fn the_filter_matches_key_help_and_group() {
        let mut p = Properties {
            filter: "WSGI_WORKERS".into(),
            ..Default::default()
        };
        let keys: Vec<_> = p.visible().iter().map(|p| p.key).collect();
        assert!(keys.contains(&"omero.web.wsgi_workers"), "{keys:?}");
        p.filter = "smtp".into();
        assert!(p.visible().iter().any(|p| p.key == "omero.mail.host"));
        assert!(
            !p.visible()
                .iter()
                .any(|p| p.key == "omero.web.wsgi_workers")
        );
        p.filter = "image gateway".into();
        assert!(p.visible().iter().all(|p| p.group == Group::Gateway));
        p.filter = "no such thing at all".into();
        assert!(p.visible().is_empty());
        assert!(p.selected_property().is_none());
    }

    #[test]
    fn selection_survives_filtering() {
        let mut p = Properties::default();
        p.move_selection(3);
        let third = p.selected.unwrap();
        p.filter = third.to_string();
        assert_eq!(p.selected_property().unwrap().key, third);
        p.filter = "smtp".into();
        // The old selection is hidden: the first visible one is selected instead.
        assert_eq!(p.selected_property().unwrap().key, p.visible()[0].key);
        p.move_selection(-5);
        assert_eq!(p.selected, Some(p.visible()[0].key));
    }

    #[test]
    fn edits_validate_as_you_type() {
        let cfg = config("\"omero.web.application_server.port\" = 4090\n");
        let mut p = Properties {
            selected: Some("omero.web.application_server.port"),
            ..Default::default()
        };
        p.begin_edit(&cfg).unwrap();
        let edit = p.edit.as_ref().unwrap();
        assert_eq!(edit.input.value(), "4090");
        assert_eq!(edit.error, None);
        p.edit.as_mut().unwrap().input.set("99999");
        p.revalidate();
        let error = p.edit.as_ref().unwrap().error.clone().unwrap();
        assert!(error.contains("out of range"), "{error}");
        assert!(error.contains("1 to 65535"), "{error}");
        p.edit.as_mut().unwrap().input.set("abc");
        p.revalidate();
        assert!(p.edit.as_ref().unwrap().error.is_some());
    }

    #[test]
    fn unset_properties_start_from_their_default_and_secrets_start_empty() {
        let cfg = config("\"omero.mail.password\" = \"hunter2\"\n");
        let mut p = Properties {
            selected: Some("omero.web.wsgi_workers"),
            ..Default::default()
        };
        p.begin_edit(&cfg);
        assert_eq!(p.edit.as_ref().unwrap().input.value(), "5");
        p.selected = Some("omero.mail.password");
        p.begin_edit(&cfg);
        assert_eq!(p.edit.as_ref().unwrap().input.value(), "");
    }

    #[test]
    fn an_odd_value_is_edited_from_what_the_file_says() {
        let site = Site::with_kind("/srv/web", crate::site::SiteKind::OmeroWeb);
        let text = "<icegrid><properties id=\"default\"><property name=\"omero.web.debug\" value=\"yes\"/></properties></icegrid>";
        let cfg = Config::from_text(&site, site.config_file(), text.into(), None).unwrap();
        let mut p = Properties {
            selected: Some("omero.web.debug"),
            ..Default::default()
        };
        p.begin_edit(&cfg);
        let edit = p.edit.as_ref().unwrap();
        assert_eq!(edit.input.value(), "yes");
        // Saving it unchanged would be a new bad value: the editor says why.
        assert!(
            edit.error
                .as_deref()
                .unwrap()
                .contains("OMERO.web reads this word as false")
        );
    }

    #[test]
    fn tab_cycles_through_choices() {
        let cfg = config("");
        let mut p = Properties {
            selected: Some("omero.web.wsgi_worker_class"),
            ..Default::default()
        };
        p.begin_edit(&cfg);
        let first = p.edit.as_ref().unwrap().input.value().to_string();
        p.complete();
        let second = p.edit.as_ref().unwrap().input.value().to_string();
        assert_ne!(first, second);
        p.edit.as_mut().unwrap().input.set("gev");
        p.complete();
        assert_eq!(p.edit.as_ref().unwrap().input.value(), "gevent");
        assert_eq!(p.edit.as_ref().unwrap().error, None);
    }
}
