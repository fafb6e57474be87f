//! Rendering settings saved per image and per user, as OMERO keeps a rendering
//! definition per image for each user. The owner's set (the site's: with access
//! control off it is the only one, and with it on it is what the published thumbnails
//! and the shared cache are drawn with) is `var/rdefs/<id>.json`; a logged-in user's
//! own set is `var/rdefs/<id>/<user>.json`, the name made safe (`file_name_of`).
//! A viewer renders with their own set, else the owner's, else the imported defaults,
//! as OMERO's `RenderingEngine.lookupRenderingDef` does.
//! Each is a small JSON file, written atomically, holding a
//! render query in this gateway's own terms (`c=…&m=…&maps=…&z=…&t=…`, Z and T
//! 0-based): every route that renders reads it as the starting point its own query
//! overrides, which is what OMERO's rendering engine does with a saved definition.
//! A file that no longer fits its image (other channels) is read leniently: whatever
//! `render_query::parse_query` cannot use, it ignores.
//!
//! The "clipboard" of `copyImgRDef` (OMERO keeps it in the session) is
//! `var/rdefs/clipboard.json`: one for the site, as there are no sessions.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedRdef {
    /// The render query, URL-encoded as a query string is.
    query: String,
}

/// What `copyImgRDef` remembered: an image to copy from, or settings given as a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clipboard {
    FromId(u64),
    /// OMERO's session `rdef`: `c`, `m`, `pixel_range`, `maps`, `z`, `t`, `imageId`.
    Rdef(Value),
}

pub struct RdefStore {
    dir: PathBuf,
}

impl RdefStore {
    /// The store under the site's `var/` (the repository index's directory).
    pub fn new(index_dir: &Path) -> RdefStore {
        RdefStore {
            dir: index_dir.join("rdefs"),
        }
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The saved render query of image `id`, or "" (the imported defaults). A file
    /// that cannot be read or parsed counts as none: rendering never fails for it.
    pub fn query(&self, id: u64) -> String {
        read_saved(&self.path(id)).unwrap_or_default()
    }

    pub fn save(&self, id: u64, query: &str) -> io::Result<()> {
        write_saved(&self.path(id), query).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("saving the rendering settings of image {id}: {e}"),
            )
        })
    }

    /// Back to the imported defaults; true if there was something to remove.
    pub fn remove(&self, id: u64) -> io::Result<bool> {
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("resetting the rendering settings of image {id}: {e}"),
            )),
        }
    }

    fn user_path(&self, id: u64, user: &str) -> PathBuf {
        self.dir
            .join(id.to_string())
            .join(format!("{}.json", file_name_of(user)))
    }

    /// `user`'s own saved render query of image `id`, if they saved one (a broken file
    /// counts as none).
    pub fn user_query(&self, id: u64, user: &str) -> Option<String> {
        read_saved(&self.user_path(id, user))
    }

    /// What `user` (none: access control off, or not a logged-in user) renders image
    /// `id` with: their own set, else the owner's, else "" (the imported defaults).
    pub fn query_for(&self, id: u64, user: Option<&str>) -> String {
        user.and_then(|user| self.user_query(id, user))
            .unwrap_or_else(|| self.query(id))
    }

    pub fn save_user(&self, id: u64, user: &str, query: &str) -> io::Result<()> {
        let path = self.user_path(id, user);
        let context = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("saving {user}'s rendering settings of image {id}: {e}"),
            )
        };
        std::fs::create_dir_all(path.parent().expect("a user's file has a folder"))
            .map_err(context)?;
        write_saved(&path, query).map_err(context)
    }

    /// Every user's own set of image `id`, as (user, query), sorted by user.
    pub fn user_queries(&self, id: u64) -> Vec<(String, String)> {
        let Ok(dir) = std::fs::read_dir(self.dir.join(id.to_string())) else {
            return Vec::new();
        };
        let mut sets: Vec<(String, String)> = dir
            .flatten()
            .filter_map(|file| {
                let name = file
                    .file_name()
                    .to_str()?
                    .strip_suffix(".json")?
                    .to_string();
                let user = user_of_file_name(&name)?;
                Some((user, read_saved(&file.path())?))
            })
            .collect();
        sets.sort();
        sets
    }

    pub fn clipboard(&self) -> Option<Clipboard> {
        let bytes = std::fs::read(self.dir.join("clipboard.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn set_clipboard(&self, clipboard: &Clipboard) -> io::Result<()> {
        let json = serde_json::to_vec(clipboard).map_err(io::Error::other)?;
        crate::fsutil::write_atomic(&self.dir.join("clipboard.json"), &json, Some(0o644))
    }
}

fn write_saved(path: &Path, query: &str) -> io::Result<()> {
    let json = serde_json::to_vec(&SavedRdef {
        query: query.to_string(),
    })
    .map_err(io::Error::other)?;
    crate::fsutil::write_atomic(path, &json, Some(0o644))
}

fn read_saved(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<SavedRdef>(&bytes).ok())
        .map(|saved| saved.query)
}

/// A user name as a file name: letters, digits, `_` and `-` as they are, every other
/// byte `%XX`, so no name (user names are anyone's input) can be `..`, hold a `/` or
/// clash with another's.
fn file_name_of(user: &str) -> String {
    user.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The user a file name (`file_name_of`) stands for; `None` for any other name.
fn user_of_file_name(name: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut rest = name.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    let user = String::from_utf8(bytes).ok()?;
    (file_name_of(&user) == name).then_some(user)
}

/// A request's render query over the saved one: `render_query::parse_query` keeps the
/// last value of a repeated key (as Django's `request.GET[key]`), so the saved query
/// comes first and the request's own keys, after it, win; the saved ones fill the rest.
pub fn over_saved(request: &str, saved: &str) -> String {
    match (request.is_empty(), saved.is_empty()) {
        (_, true) => request.to_string(),
        (true, false) => saved.to_string(),
        (false, false) => format!("{saved}&{request}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_queries_round_trip_and_a_broken_file_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = RdefStore::new(dir.path());
        assert_eq!(store.query(7), "");
        store.save(7, "c=1%7C0:10$FF0000&m=g").unwrap();
        assert_eq!(store.query(7), "c=1%7C0:10$FF0000&m=g");
        std::fs::write(dir.path().join("rdefs/8.json"), b"{not json").unwrap();
        assert_eq!(store.query(8), "");
        assert!(store.remove(7).unwrap());
        assert!(!store.remove(7).unwrap());
        assert_eq!(store.query(7), "");
        store.set_clipboard(&Clipboard::FromId(3)).unwrap();
        assert_eq!(store.clipboard(), Some(Clipboard::FromId(3)));
    }

    #[test]
    fn each_user_has_their_own_set_over_the_owners() {
        let dir = tempfile::tempdir().unwrap();
        let store = RdefStore::new(dir.path());
        assert_eq!(store.query_for(7, Some("bob")), "");
        store.save(7, "m=g").unwrap();
        assert_eq!(store.query_for(7, Some("bob")), "m=g");
        store.save_user(7, "bob", "m=c").unwrap();
        store.save_user(7, "../../etc/x y", "z=1").unwrap();
        assert_eq!(store.query_for(7, Some("bob")), "m=c");
        assert_eq!(store.query_for(7, Some("alice")), "m=g");
        assert_eq!(store.query_for(7, None), "m=g");
        assert_eq!(store.query(7), "m=g");
        // A hostile name stays inside the image's folder, and lists as itself.
        assert!(
            dir.path()
                .join("rdefs/7/%2E%2E%2F%2E%2E%2Fetc%2Fx%20y.json")
                .is_file()
        );
        assert_eq!(
            store.user_queries(7),
            vec![
                ("../../etc/x y".to_string(), "z=1".to_string()),
                ("bob".to_string(), "m=c".to_string())
            ]
        );
        assert_eq!(user_of_file_name("a%2"), None);
        assert_eq!(user_of_file_name("%61"), None);
    }

    #[test]
    fn the_request_wins_over_the_saved_query() {
        assert_eq!(over_saved("", ""), "");
        assert_eq!(over_saved("m=c", ""), "m=c");
        assert_eq!(over_saved("", "m=g"), "m=g");
        // What the renderer reads from the merged query: the request's `m` and `q`,
        // the saved `c` where the request names none.
        let meta = crate::gateway::imaging::source::ImageMeta {
            name: "m".into(),
            size_x: 10,
            size_y: 10,
            size_z: 1,
            size_c: 2,
            size_t: 1,
            pixel_type: crate::gateway::imaging::source::PixelType::U8,
            channels: Vec::new(),
            physical_size_um: [None; 3],
            rgb: false,
        };
        let parse = |query: &str| {
            crate::gateway::query::render_query::parse_query(query, &meta)
                .unwrap()
                .settings
        };
        let merged = parse(&over_saved("m=g&q=0.5", "m=c&q=0.9&c=-1,2"));
        assert_eq!(
            merged.model,
            crate::gateway::imaging::render::Model::Greyscale
        );
        assert_eq!(merged.quality, 0.5);
        assert_eq!(merged, parse("m=g&q=0.5&c=-1,2"));
    }
}
