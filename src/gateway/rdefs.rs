//! Rendering settings saved per image, as OMERO keeps a rendering definition per image
//! (per user there; one per image here until the access-control work brings users).
//! Each is a small JSON file `var/rdefs/<id>.json`, written atomically, holding a
//! render query in this gateway's own terms (`c=…&m=…&maps=…&z=…&t=…`, Z and T
//! 0-based): every route that renders reads it as the starting point its own query
//! overrides, which is what OMERO's rendering engine does with a saved definition.
//! A file that no longer fits its image (other channels) is read leniently: whatever
//! `render::parse_query` cannot use, it ignores.
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
        std::fs::read(self.path(id))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SavedRdef>(&bytes).ok())
            .map(|saved| saved.query)
            .unwrap_or_default()
    }

    pub fn save(&self, id: u64, query: &str) -> io::Result<()> {
        let json = serde_json::to_vec(&SavedRdef {
            query: query.to_string(),
        })
        .map_err(io::Error::other)?;
        crate::fsutil::write_atomic(&self.path(id), &json, Some(0o644)).map_err(|e| {
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

    pub fn clipboard(&self) -> Option<Clipboard> {
        let bytes = std::fs::read(self.dir.join("clipboard.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn set_clipboard(&self, clipboard: &Clipboard) -> io::Result<()> {
        let json = serde_json::to_vec(clipboard).map_err(io::Error::other)?;
        crate::fsutil::write_atomic(&self.dir.join("clipboard.json"), &json, Some(0o644))
    }
}

/// A request's render query over the saved one: `render::parse_query` takes the first
/// value of each key, so the request's own keys win and the saved ones fill the rest.
pub fn over_saved(request: &str, saved: &str) -> String {
    match (request.is_empty(), saved.is_empty()) {
        (_, true) => request.to_string(),
        (true, false) => saved.to_string(),
        (false, false) => format!("{request}&{saved}"),
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
    fn the_request_wins_over_the_saved_query() {
        assert_eq!(over_saved("", ""), "");
        assert_eq!(over_saved("m=c", ""), "m=c");
        assert_eq!(over_saved("", "m=g"), "m=g");
        assert_eq!(over_saved("m=c", "m=g&z=1"), "m=c&m=g&z=1");
    }
}
