//! OMERO's `etc/grid/config.xml`, read and written the way omero-py's `ConfigXml`
//! (`omero/config.py`) does, so `omero config` and omero-webctl can edit the same
//! file side by side.
//!
//! The rules (omero-py 5.23):
//!
//! * The file is `<icegrid>` holding `<properties id="PROFILE">` blocks of
//!   `<property name="KEY" value="VALUE"/>`, every value a string.
//! * The profile read and written is `$OMERO_CONFIG` when set and not empty, else the
//!   `omero.config.profile` property of the `__ACTIVE__` block, else `default`
//!   (`Environment.for_default`).
//! * Saving regenerates the whole file: a comment with the time, then `__ACTIVE__`
//!   naming the *persisted* profile (`__ACTIVE__`'s own `omero.config.profile`, else
//!   `default`; `$OMERO_CONFIG` is not persisted, `Environment.for_save`), then
//!   `omero.config.version` = `5.1.0`, then a copy of that profile's properties
//!   (or, when that profile does not exist, a new block for it after `__ACTIVE__`);
//!   then every other `<properties>` block as it was, whitespace removed; then
//!   `<include file="templates.xml"/>`. Written by `ElementTree.write(encoding=
//!   "UTF-8")`: no XML declaration, no trailing newline, `<x a="v" />` for empty
//!   elements, attribute values escaped (`&amp; &lt; &gt; &quot; &#10; &#13; &#09;`).
//! * A new file gets `__ACTIVE__` and the profile `$OMERO_CONFIG` or `default`.
//! * Setting a key replaces its value in place or appends it to the profile (creating
//!   the profile, `omero.config.version` first, when missing); unsetting removes it.
//!
//! Not done: omero-py upgrades profiles written by OMERO 4.2.0/4.2.1 (LDAP `${…}`
//! placeholders, default top links) when it opens them; such blocks are kept as they
//! are here.

use std::fmt::Write as _;

/// The block omero-py regenerates on every save.
pub const ACTIVE: &str = "__ACTIVE__";
/// Names the active profile inside `__ACTIVE__`.
pub const PROFILE_KEY: &str = "omero.config.profile";
/// Every block starts with it.
pub const VERSION_KEY: &str = "omero.config.version";
/// `ConfigXml.VERSION`.
pub const VERSION: &str = "5.1.0";
pub const DEFAULT_PROFILE: &str = "default";
/// The environment variable that selects another profile.
pub const PROFILE_ENV: &str = "OMERO_CONFIG";

/// `$OMERO_CONFIG` as omero-py reads it: ignored when empty.
pub fn env_profile() -> Option<String> {
    std::env::var(PROFILE_ENV).ok().filter(|p| !p.is_empty())
}

/// An element as omero-py keeps it on save: tag, attributes in order, child
/// elements. Text and comments are dropped (`clear_text`, ElementTree's parser).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    tag: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
}

impl Element {
    fn property(name: &str, value: &str) -> Element {
        Element {
            tag: "property".into(),
            attrs: vec![("name".into(), name.into()), ("value".into(), value.into())],
            children: Vec::new(),
        }
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn set_attr(&mut self, name: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.attrs.push((name.to_string(), value.to_string())),
        }
    }

    fn is_property(&self, name: &str) -> bool {
        self.tag == "property" && self.attr("name") == Some(name)
    }

    fn from_node(node: roxmltree::Node) -> Element {
        Element {
            tag: node.tag_name().name().to_string(),
            attrs: node
                .attributes()
                .map(|a| (a.name().to_string(), a.value().to_string()))
                .collect(),
            children: node
                .children()
                .filter(|n| n.is_element())
                .map(Element::from_node)
                .collect(),
        }
    }

    /// ElementTree's serialisation.
    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.tag);
        for (name, value) in &self.attrs {
            let _ = write!(out, " {name}=\"");
            escape_attribute(value, out);
            out.push('"');
        }
        if self.children.is_empty() {
            out.push_str(" />");
        } else {
            out.push('>');
            for child in &self.children {
                child.write(out);
            }
            let _ = write!(out, "</{}>", self.tag);
        }
    }
}

/// An attribute value as ElementTree escapes it (`_escape_attrib`): newlines, tabs
/// and carriage returns as character references so they survive a re-read.
fn escape_attribute(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#09;"),
            c => out.push(c),
        }
    }
}

/// One property of the profile in use, with the line its value is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Why a file is not a usable config.xml, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    pub line: usize,
    pub message: String,
}

/// A parsed config.xml.
#[derive(Debug, Clone)]
pub struct OmeroXml {
    /// The `<properties>` blocks other than `__ACTIVE__`, in file order.
    blocks: Vec<Element>,
    /// The profile `__ACTIVE__` names; what a save persists (`None`: `default`).
    active: Option<String>,
    /// The profile read and written.
    profile: String,
}

impl OmeroXml {
    /// What omero-py starts from when there is no file (or an empty one).
    pub fn empty(env_profile: Option<&str>) -> OmeroXml {
        let profile = env_profile
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_PROFILE)
            .to_string();
        OmeroXml {
            blocks: Vec::new(),
            active: Some(profile.clone()),
            profile,
        }
    }

    /// Parses a file's text; `env_profile` is `$OMERO_CONFIG` ([`env_profile`]).
    /// Returns the document and the properties of the profile in use (later
    /// duplicates win, as in omero-py; OMERO's bookkeeping keys left out).
    pub fn parse(
        text: &str,
        env_profile: Option<&str>,
    ) -> Result<(OmeroXml, Vec<Entry>), XmlError> {
        if text.trim().is_empty() {
            return Ok((OmeroXml::empty(env_profile), Vec::new()));
        }
        // Python's parser accepts a DOCTYPE; so do we (roxmltree bounds entities).
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = roxmltree::Document::parse_with_options(text, options).map_err(|e| XmlError {
            line: e.pos().row as usize,
            message: format!("not valid XML: {e}"),
        })?;
        let root = doc.root_element();
        if root.tag_name().name() != "icegrid" {
            return Err(XmlError {
                line: doc.text_pos_at(root.range().start).row as usize,
                message: format!(
                    "the root element is <{}>, expected <icegrid>",
                    root.tag_name().name()
                ),
            });
        }
        let blocks: Vec<roxmltree::Node> = root
            .children()
            .filter(|n| n.has_tag_name("properties"))
            .collect();
        // `internal_value`: the last omero.config.profile of the first __ACTIVE__.
        let active = blocks
            .iter()
            .find(|b| b.attribute("id") == Some(ACTIVE))
            .and_then(|b| {
                b.children()
                    .rfind(|p| {
                        p.has_tag_name("property") && p.attribute("name") == Some(PROFILE_KEY)
                    })
                    .map(|p| p.attribute("value").unwrap_or_default().to_string())
            });
        let profile = env_profile
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .or_else(|| active.clone())
            .unwrap_or_else(|| DEFAULT_PROFILE.to_string());

        let mut entries: Vec<Entry> = Vec::new();
        if let Some(block) = blocks
            .iter()
            .find(|b| b.attribute("id") == Some(profile.as_str()))
        {
            for node in block.children().filter(|n| n.has_tag_name("property")) {
                let Some(key) = node.attribute("name") else {
                    continue;
                };
                if key == VERSION_KEY || key == PROFILE_KEY {
                    continue;
                }
                let value_attr = node.attributes().find(|a| a.name() == "value");
                let at = value_attr
                    .as_ref()
                    .map(|a| a.range_value().start)
                    .unwrap_or_else(|| node.range().start);
                entries.retain(|e| e.key != key);
                entries.push(Entry {
                    key: key.to_string(),
                    value: value_attr
                        .map(|a| a.value().to_string())
                        .unwrap_or_default(),
                    line: doc.text_pos_at(at).row as usize,
                });
            }
        }
        let config = OmeroXml {
            blocks: blocks
                .iter()
                .filter(|b| b.attribute("id") != Some(ACTIVE))
                .map(|b| Element::from_node(*b))
                .collect(),
            active,
            profile,
        };
        Ok((config, entries))
    }

    /// The profile read and written.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// The profile `__ACTIVE__` names after a save.
    pub fn active_profile(&self) -> &str {
        self.active.as_deref().unwrap_or(DEFAULT_PROFILE)
    }

    /// Ids of the profile blocks, in file order.
    pub fn profiles(&self) -> Vec<&str> {
        self.blocks.iter().filter_map(|b| b.attr("id")).collect()
    }

    /// `key=value` of a profile (bookkeeping keys left out).
    pub fn properties_of(&self, profile: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        if let Some(block) = self.block(profile) {
            for p in block.children.iter().filter(|c| c.tag == "property") {
                if let Some(name) = p.attr("name")
                    && name != VERSION_KEY
                    && name != PROFILE_KEY
                {
                    out.retain(|(k, _)| k != name);
                    out.push((
                        name.to_string(),
                        p.attr("value").unwrap_or_default().to_string(),
                    ));
                }
            }
        }
        out
    }

    fn block(&self, id: &str) -> Option<&Element> {
        self.blocks.iter().find(|b| b.attr("id") == Some(id))
    }

    /// Sets a property of the profile in use (`ConfigXml.__setitem__`): in place when
    /// present (later duplicates removed), else appended; the profile is created when
    /// missing.
    pub fn set(&mut self, key: &str, value: &str) {
        let index = match self
            .blocks
            .iter()
            .position(|b| b.attr("id") == Some(self.profile.as_str()))
        {
            Some(i) => i,
            None => {
                self.blocks.push(Element {
                    tag: "properties".into(),
                    attrs: vec![("id".into(), self.profile.clone())],
                    children: vec![Element::property(VERSION_KEY, VERSION)],
                });
                self.blocks.len() - 1
            }
        };
        let block = &mut self.blocks[index];
        let mut found = false;
        block.children.retain_mut(|child| {
            if !child.is_property(key) {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            child.set_attr("value", value);
            true
        });
        if !found {
            block.children.push(Element::property(key, value));
        }
    }

    /// Removes a property from the profile in use; returns whether it was there.
    pub fn unset(&mut self, key: &str) -> bool {
        let profile = self.profile.clone();
        let Some(block) = self
            .blocks
            .iter_mut()
            .find(|b| b.attr("id") == Some(profile.as_str()))
        else {
            return false;
        };
        let before = block.children.len();
        block.children.retain(|c| !c.is_property(key));
        block.children.len() != before
    }

    /// The file as omero-py writes it now.
    pub fn to_text(&self) -> String {
        self.to_text_at(
            &chrono::Local::now()
                .format("%a %b %e %H:%M:%S %Y")
                .to_string(),
        )
    }

    /// The file as omero-py writes it, `generated_at` in `time.ctime()` form.
    pub fn to_text_at(&self, generated_at: &str) -> String {
        let mut out = String::from("<icegrid><!--\n\n\tThis file was generated at ");
        out.push_str(generated_at);
        out.push_str(
            " by the OmeroConfig system.\n\tDo not edit directly but see `omero config` for details.\n\tThis file may be included into your IceGrid application.\n\n-->",
        );
        let active = self.active_profile();
        let mut internal = Element {
            tag: "properties".into(),
            attrs: vec![("id".into(), ACTIVE.into())],
            children: vec![
                Element::property(PROFILE_KEY, active),
                Element::property(VERSION_KEY, VERSION),
            ],
        };
        let copied = self.block(active);
        if let Some(block) = copied {
            for child in &block.children {
                if child.attr("name") != Some(PROFILE_KEY)
                    && child.attr("name") != Some(VERSION_KEY)
                {
                    // `SubElement(internal, "property", x.attrib)`: attributes only.
                    internal.children.push(Element {
                        tag: "property".into(),
                        attrs: child.attrs.clone(),
                        children: Vec::new(),
                    });
                }
            }
        }
        internal.write(&mut out);
        if copied.is_none() {
            Element {
                tag: "properties".into(),
                attrs: vec![("id".into(), active.into())],
                children: vec![Element::property(VERSION_KEY, VERSION)],
            }
            .write(&mut out);
        }
        for block in &self.blocks {
            block.write(&mut out);
        }
        out.push_str("<include file=\"templates.xml\" /></icegrid>");
        out
    }

    /// Whether two documents hold the same settings: the same active profile and
    /// the same blocks, ignoring what a save regenerates (the comment, whitespace,
    /// `__ACTIVE__`'s copy) and profiles that hold nothing but their version.
    /// `omero config get` rewrites the file on every run (its `close()` saves), so
    /// comparing bytes would see a change where there is none.
    pub fn same_settings(&self, other: &OmeroXml) -> bool {
        fn meaningful(x: &OmeroXml) -> (&str, Vec<&Element>) {
            let blocks = x
                .blocks
                .iter()
                .filter(|b| !b.children.iter().all(|c| c.is_property(VERSION_KEY)))
                .collect();
            (x.active_profile(), blocks)
        }
        meaningful(self) == meaningful(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What omero-py 5.23 wrote after `omero config set omero.web.prefix /omero`
    /// in an empty OMERODIR (captured from the real program).
    const WRITTEN_BY_OMERO: &str = "<icegrid><!--\n\n\tThis file was generated at Mon Nov 30 12:06:11 2026 by the OmeroConfig system.\n\tDo not edit directly but see `omero config` for details.\n\tThis file may be included into your IceGrid application.\n\n--><properties id=\"__ACTIVE__\"><property name=\"omero.config.profile\" value=\"default\" /><property name=\"omero.config.version\" value=\"5.1.0\" /><property name=\"omero.web.prefix\" value=\"/omero\" /></properties><properties id=\"default\"><property name=\"omero.config.version\" value=\"5.1.0\" /><property name=\"omero.web.prefix\" value=\"/omero\" /></properties><include file=\"templates.xml\" /></icegrid>";

    const PROFILES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<icegrid>
  <!-- hand-made -->
  <properties id="__ACTIVE__">
    <property name="omero.config.profile" value="prod"/>
    <property name="omero.config.version" value="5.1.0"/>
    <property name="omero.web.wsgi_workers" value="stale copy"/>
  </properties>
  <properties id="default">
    <property name="omero.config.version" value="5.1.0"/>
    <property name="omero.web.wsgi_workers" value="3"/>
  </properties>
  <properties id="prod">
    <property name="omero.config.version" value="5.1.0"/>
    <property name="omero.db.name" value="omero_prod"/>
    <property name="omero.web.wsgi_workers" value="9"/>
    <property name="omero.data.dir" value="/OMERO"/>
  </properties>
  <include file="generated.xml"/>
</icegrid>
"#;

    fn pairs(entries: &[Entry]) -> Vec<(&str, &str)> {
        entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect()
    }

    #[test]
    fn profile_is_omero_config_then_active_then_default() {
        let (x, entries) = OmeroXml::parse(PROFILES, None).unwrap();
        assert_eq!(x.profile(), "prod");
        assert_eq!(
            pairs(&entries),
            [
                ("omero.db.name", "omero_prod"),
                ("omero.web.wsgi_workers", "9"),
                ("omero.data.dir", "/OMERO")
            ]
        );
        // The profile's line, not __ACTIVE__'s stale copy.
        assert_eq!(entries[1].line, 16);

        let (x, entries) = OmeroXml::parse(PROFILES, Some("default")).unwrap();
        assert_eq!(x.profile(), "default");
        assert_eq!(pairs(&entries), [("omero.web.wsgi_workers", "3")]);
        // $OMERO_CONFIG is not persisted: __ACTIVE__ keeps naming prod.
        assert_eq!(x.active_profile(), "prod");
        // An empty $OMERO_CONFIG counts as unset.
        assert_eq!(
            OmeroXml::parse(PROFILES, Some("")).unwrap().0.profile(),
            "prod"
        );

        let no_active = r#"<icegrid><properties id="default"><property name="omero.web.debug" value="true"/></properties></icegrid>"#;
        let (x, entries) = OmeroXml::parse(no_active, None).unwrap();
        assert_eq!((x.profile(), x.active_profile()), ("default", "default"));
        assert_eq!(pairs(&entries), [("omero.web.debug", "true")]);

        // A profile that does not exist reads as empty and is created on set.
        let (mut x, entries) = OmeroXml::parse(PROFILES, Some("test")).unwrap();
        assert!(entries.is_empty());
        x.set("omero.web.debug", "true");
        assert_eq!(x.profiles(), ["default", "prod", "test"]);
        assert_eq!(
            x.properties_of("test"),
            [("omero.web.debug".to_string(), "true".to_string())]
        );
    }

    #[test]
    fn writes_what_omero_writes() {
        let x = OmeroXml::empty(None);
        let mut x2 = x.clone();
        x2.set("omero.web.prefix", "/omero");
        assert_eq!(x2.to_text_at("Mon Nov 30 12:06:11 2026"), WRITTEN_BY_OMERO);
        // And reading OMERO's file back gives the same.
        let (parsed, entries) = OmeroXml::parse(WRITTEN_BY_OMERO, None).unwrap();
        assert_eq!(pairs(&entries), [("omero.web.prefix", "/omero")]);
        assert_eq!(
            parsed.to_text_at("Mon Nov 30 12:06:11 2026"),
            WRITTEN_BY_OMERO
        );
        assert!(parsed.same_settings(&x2));
        assert!(!parsed.same_settings(&x));
    }

    #[test]
    fn save_rewrites_active_and_keeps_every_other_block() {
        let (mut x, _) = OmeroXml::parse(PROFILES, None).unwrap();
        x.set("omero.web.wsgi_workers", "7");
        x.set("omero.web.debug", "true");
        let text = x.to_text_at("T");
        assert!(
            text.contains("<properties id=\"__ACTIVE__\"><property name=\"omero.config.profile\" value=\"prod\" /><property name=\"omero.config.version\" value=\"5.1.0\" /><property name=\"omero.db.name\" value=\"omero_prod\" /><property name=\"omero.web.wsgi_workers\" value=\"7\" /><property name=\"omero.data.dir\" value=\"/OMERO\" /><property name=\"omero.web.debug\" value=\"true\" /></properties><properties id=\"default\">"),
            "{text}"
        );
        assert!(text.ends_with("<include file=\"templates.xml\" /></icegrid>"));
        assert!(!text.contains("stale copy") && !text.contains("generated.xml"));
        let (again, entries) = OmeroXml::parse(&text, None).unwrap();
        assert_eq!(
            pairs(&entries),
            [
                ("omero.db.name", "omero_prod"),
                ("omero.web.wsgi_workers", "7"),
                ("omero.data.dir", "/OMERO"),
                ("omero.web.debug", "true")
            ]
        );
        assert_eq!(
            again.properties_of("default"),
            [("omero.web.wsgi_workers".to_string(), "3".to_string())]
        );
        // Writing in another profile ($OMERO_CONFIG) leaves __ACTIVE__ on prod.
        let (mut other, _) = OmeroXml::parse(&text, Some("default")).unwrap();
        other.set("omero.web.wsgi_workers", "4");
        assert!(other.unset("omero.web.wsgi_workers"));
        assert!(!other.unset("omero.web.wsgi_workers"));
        other.set("omero.web.prefix", "/x");
        let (back, entries) = OmeroXml::parse(&other.to_text_at("T"), None).unwrap();
        assert_eq!(back.profile(), "prod");
        assert_eq!(entries.len(), 4);
        assert_eq!(
            back.properties_of("default"),
            [("omero.web.prefix".to_string(), "/x".to_string())]
        );
    }

    #[test]
    fn values_round_trip_escaped() {
        let tricky =
            "[\"a & b\", \"<tag attr='x'>\", \"line1\\nline2\"]\n\tsecond line\r\"quoted\" é";
        let mut x = OmeroXml::empty(None);
        x.set("omero.web.ui.top_links", tricky);
        let text = x.to_text_at("T");
        assert!(
            text.contains("&amp; b")
                && text.contains("&#10;")
                && text.contains("&quot;quoted&quot;")
        );
        let (_, entries) = OmeroXml::parse(&text, None).unwrap();
        assert_eq!(pairs(&entries), [("omero.web.ui.top_links", tricky)]);
    }

    #[test]
    fn duplicates_and_new_files() {
        let dup = r#"<icegrid><properties id="default"><property name="k" value="1"/><property name="j" value="x"/><property name="k" value="2"/></properties></icegrid>"#;
        let (mut x, entries) = OmeroXml::parse(dup, None).unwrap();
        assert_eq!(pairs(&entries), [("j", "x"), ("k", "2")]);
        x.set("k", "3");
        assert_eq!(
            x.properties_of("default"),
            [
                ("k".to_string(), "3".to_string()),
                ("j".to_string(), "x".to_string())
            ]
        );
        // OMERO_CONFIG names the profile of a new file, and __ACTIVE__ persists it.
        let mut new = OmeroXml::empty(Some("site"));
        new.set("omero.web.debug", "true");
        let (back, _) = OmeroXml::parse(&new.to_text_at("T"), None).unwrap();
        assert_eq!((back.profile(), back.profiles()), ("site", vec!["site"]));
        assert!(OmeroXml::parse("", None).unwrap().1.is_empty());
    }

    #[test]
    fn errors_have_lines() {
        let err = OmeroXml::parse("<icegrid>\n<properties id=\"default\">\n</icegrid>", None)
            .unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.starts_with("not valid XML"), "{err:?}");
        let err = OmeroXml::parse("\n<config/>", None).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("expected <icegrid>"));
    }

    #[test]
    fn same_settings_ignores_what_a_save_regenerates() {
        let (a, _) = OmeroXml::parse(PROFILES, None).unwrap();
        let (b, _) = OmeroXml::parse(&a.to_text_at("later"), None).unwrap();
        assert!(a.same_settings(&b));
        let mut c = b.clone();
        c.set("omero.web.debug", "true");
        assert!(!b.same_settings(&c));
        // A fresh file omero wrote equals no file at all.
        let (fresh, _) = OmeroXml::parse(&OmeroXml::empty(None).to_text_at("T"), None).unwrap();
        assert!(fresh.same_settings(&OmeroXml::empty(None)));
    }

    // ---- The config.xml store behind `Config` ------------------------------------

    use crate::config::{Config, ConfigError, Value};
    use crate::site::{Site, SiteKind};
    use nix::fcntl::{Flock, FlockArg};
    use std::time::{Duration, Instant};

    fn xml_site(text: Option<&str>) -> (tempfile::TempDir, Site) {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::with_kind(dir.path(), SiteKind::OmeroWeb);
        if let Some(text) = text {
            std::fs::create_dir_all(site.omero_config_file().parent().unwrap()).unwrap();
            std::fs::write(site.omero_config_file(), text).unwrap();
        }
        (dir, site)
    }

    fn lock_path(site: &Site) -> std::path::PathBuf {
        site.etc_dir().join("grid/config.xml.lock")
    }

    /// What omero-py does: open `config.xml.lock` "a+", flock(LOCK_EX | LOCK_NB).
    fn omero_lock(site: &Site) -> Result<Flock<std::fs::File>, nix::errno::Errno> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(lock_path(site))
            .unwrap();
        Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e)
    }

    #[test]
    fn config_reads_and_writes_the_active_profile_and_keeps_the_rest() {
        let (_dir, site) = xml_site(Some(PROFILES));
        let mut config = Config::load(&site).unwrap();
        assert_eq!(config.omero_profile(), Some("prod"));
        assert_eq!(config.get("omero.web.wsgi_workers"), Some(&Value::Int(9)));
        // Other components' properties are kept as unknown, and do not fail the load.
        assert_eq!(config.unknown()["omero.db.name"], "omero_prod");
        config.set("omero.web.wsgi_workers", "7", false).unwrap();
        config.set("omero.web.debug", "T", false).unwrap();
        config.save().unwrap();
        let text = std::fs::read_to_string(site.omero_config_file()).unwrap();
        let (x, entries) = OmeroXml::parse(&text, None).unwrap();
        assert_eq!(
            pairs(&entries),
            [
                ("omero.db.name", "omero_prod"),
                ("omero.web.wsgi_workers", "7"),
                ("omero.data.dir", "/OMERO"),
                // The canonical text of the value.
                ("omero.web.debug", "true")
            ]
        );
        assert_eq!(
            x.properties_of("default"),
            [("omero.web.wsgi_workers".to_string(), "3".to_string())]
        );
        assert!(text.contains("<properties id=\"__ACTIVE__\"><property name=\"omero.config.profile\" value=\"prod\" /><property name=\"omero.config.version\" value=\"5.1.0\" /><property name=\"omero.db.name\""));
        assert!(
            !lock_path(&site).exists(),
            "the lock file is removed, as OMERO does"
        );

        let mut again = Config::load(&site).unwrap();
        assert_eq!(again.get("omero.web.debug"), Some(&Value::Bool(true)));
        assert!(again.unset("omero.web.debug").unwrap());
        assert!(again.unset("omero.db.name").unwrap());
        again.save().unwrap();
        let (_, entries) = OmeroXml::parse(
            &std::fs::read_to_string(site.omero_config_file()).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(
            pairs(&entries),
            [
                ("omero.web.wsgi_workers", "7"),
                ("omero.data.dir", "/OMERO")
            ]
        );
    }

    #[test]
    fn a_site_without_config_xml_gets_one_like_omero_makes() {
        let (_dir, site) = xml_site(None);
        let mut config = Config::load(&site).unwrap();
        assert_eq!(config.omero_profile(), Some("default"));
        assert_eq!(
            config.effective("omero.web.wsgi_workers"),
            Some(Value::Int(5))
        );
        config.set("omero.web.prefix", "/omero", false).unwrap();
        config.save().unwrap();
        let text = std::fs::read_to_string(site.omero_config_file()).unwrap();
        // Byte for byte what omero-py wrote for the same command, but the time.
        let (_, rest) = text.split_once(" by the OmeroConfig system.").unwrap();
        let (_, expected) = WRITTEN_BY_OMERO
            .split_once(" by the OmeroConfig system.")
            .unwrap();
        assert_eq!(rest, expected);
        assert!(text.starts_with("<icegrid><!--\n\n\tThis file was generated at "));
        assert!(Site::new(site.root()).kind() == SiteKind::OmeroWeb);
    }

    #[test]
    fn a_value_omero_cannot_read_is_reported_by_key_and_line_and_the_rest_loads() {
        let text = "<icegrid>\n<properties id=\"default\">\n<property name=\"omero.config.version\" value=\"5.1.0\"/>\n<property name=\"omero.web.wsgi_workers\"\n    value=\"many\"/>\n<property name=\"omero.web.application_server.port\" value=\"4099\"/>\n</properties>\n</icegrid>\n";
        let (_dir, site) = xml_site(Some(text));
        let config = Config::load(&site).unwrap();
        let warnings = config.value_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].key, "omero.web.wsgi_workers");
        assert_eq!(warnings[0].line, 5);
        assert!(warnings[0].omero_fails);
        assert_eq!(
            warnings[0].to_string(),
            "omero.web.wsgi_workers = \"many\": not an integer: OMERO.web cannot start with it (int() fails); omero-webctl uses the default (5) until it is changed"
        );
        assert_eq!(
            config.raw("omero.web.wsgi_workers").as_deref(),
            Some("many")
        );
        let settings = config.settings();
        assert_eq!((settings.workers, settings.port), (5, 4099));
        let (_dir, site) = xml_site(Some("<icegrid>\n<properties id=\"default\">\n</icegrid>\n"));
        let err = Config::load(&site).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}:3: not a valid OMERO config.xml: not valid XML",
                site.omero_config_file().display()
            )),
            "{err}"
        );
    }

    #[test]
    fn an_external_change_is_not_overwritten_but_a_rewrite_is_not_a_change() {
        let (_dir, site) = xml_site(Some(PROFILES));
        let mut config = Config::load(&site).unwrap();
        config.set("omero.web.wsgi_workers", "7", false).unwrap();
        // `omero config get` rewrites the file with a new comment: same settings.
        let (x, _) = OmeroXml::parse(PROFILES, None).unwrap();
        std::fs::write(
            site.omero_config_file(),
            x.to_text_at("Tue Dec  1 00:00:00 2026"),
        )
        .unwrap();
        assert!(config.unchanged_on_disk().unwrap());
        // `omero config set omero.data.dir /data`: a real change.
        let (mut x, _) = OmeroXml::parse(PROFILES, None).unwrap();
        x.set("omero.data.dir", "/data");
        let changed = x.to_text_at("T");
        std::fs::write(site.omero_config_file(), &changed).unwrap();
        let err = config.save().unwrap_err();
        assert!(matches!(err, ConfigError::ChangedOnDisk { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(site.omero_config_file()).unwrap(),
            changed
        );
    }

    #[test]
    fn save_waits_for_omeros_lock_and_sees_what_omero_wrote_meanwhile() {
        let (_dir, site) = xml_site(Some(PROFILES));
        let mut config = Config::load(&site).unwrap();
        config.set("omero.web.wsgi_workers", "7", false).unwrap();

        // An `omero config set` holds the lock, saves, releases after 300 ms.
        let held = omero_lock(&site).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = std::thread::spawn({
            let site = site.clone();
            move || {
                rx.recv().unwrap();
                std::thread::sleep(Duration::from_millis(300));
                let (mut x, _) = OmeroXml::parse(PROFILES, None).unwrap();
                x.set("omero.web.prefix", "/omero");
                std::fs::write(site.omero_config_file(), x.to_text_at("T")).unwrap();
                // omero-py: close (unlock), then delete the lock file.
                drop(held);
                let _ = std::fs::remove_file(lock_path(&site));
            }
        });
        tx.send(()).unwrap();
        let started = Instant::now();
        let err = config.save().unwrap_err();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "save did not wait"
        );
        assert!(matches!(err, ConfigError::ChangedOnDisk { .. }), "{err}");
        other.join().unwrap();

        // Loaded for update, the lock is ours from the read to the write: omero's
        // attempt fails (it exits 112, "Could not acquire lock") and nothing is lost.
        let mut config = Config::load_for_update(&site).unwrap();
        assert_eq!(
            omero_lock(&site).unwrap_err(),
            nix::errno::Errno::EWOULDBLOCK
        );
        config.set("omero.web.wsgi_workers", "7", false).unwrap();
        config.save().unwrap();
        let lock = omero_lock(&site).expect("released after the save");
        drop(lock);
        let config = Config::load(&site).unwrap();
        assert_eq!(config.get("omero.web.wsgi_workers"), Some(&Value::Int(7)));
        assert_eq!(
            config.get("omero.web.prefix").map(Value::to_raw).as_deref(),
            Some("/omero")
        );
    }
}
