//! Versioned thumbnail URLs: the gallery and the viewer ask for
//! `render_thumbnail/<id>/?v=<version>`, where the version is a hash of what the
//! default thumbnail is drawn from (the file's size and mtime, the saved rendering
//! settings, this program's version). A request whose `v` is the current version may
//! be kept by the browser for a year without asking again: the URL itself changes
//! when the image or its settings do, so a replaced file or a saved rdef shows at
//! once, and an unchanged gallery costs no request at all (not even a 304).
//!
//! OMERO.web's tree JSON carries each image's thumbnail version (`thumbVersion`,
//! `webclient/tree.py`) for the same purpose. A `v` that is not the
//! current one is answered with the current thumbnail and the ordinary revalidation
//! headers, never with the long lifetime.

use super::cache::{self, CacheKey, default_thumbnail_variant};
use super::repository::ImageEntry;

/// The query parameter that carries the version.
pub const PARAM: &str = "v";

/// `Cache-Control` of a thumbnail asked for under its current version. `private`:
/// once sites have logins (access control), a thumbnail may be one user's to see.
pub const IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// The version of `entry`'s default thumbnail drawn with the saved settings `saved`
/// (a render query, "" for the imported defaults): the thumbnail cache's own key.
pub fn of(entry: &ImageEntry, saved: &str) -> String {
    cache::version(&CacheKey::new(entry, default_thumbnail_variant(saved)))
}

/// Splits the version off a raw query string: `(v, the rest)`, the rest as it was
/// (so that a versioned default thumbnail is still the cacheable one, whose query is
/// empty).
pub fn split(query: &str) -> (Option<&str>, String) {
    let mut version = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key == PARAM {
                version = Some(value);
                false
            } else {
                !pair.is_empty()
            }
        })
        .collect();
    (version, rest.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_version_is_split_off_and_the_rest_kept() {
        assert_eq!(split(""), (None, String::new()));
        assert_eq!(split("v=abc"), (Some("abc"), String::new()));
        assert_eq!(
            split("c=1%7C0:255$FF0000&v=abc&m=g"),
            (Some("abc"), "c=1%7C0:255$FF0000&m=g".to_string())
        );
        assert_eq!(split("m=g&vv=1"), (None, "m=g&vv=1".to_string()));
    }

    #[test]
    fn the_version_changes_with_the_file_and_the_saved_settings() {
        let entry = ImageEntry {
            id: 3,
            path: "/x.tif".into(),
            name: "x.tif".into(),
            size: 100,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
        };
        let v = of(&entry, "");
        assert_eq!(v.len(), 16);
        assert_eq!(v, of(&entry.clone(), ""));
        assert_ne!(v, of(&entry, "m=g"));
        let replaced = ImageEntry {
            modified: entry.modified + Duration::from_secs(1),
            ..entry.clone()
        };
        assert_ne!(v, of(&replaced, ""));
        let other_size = ImageEntry { size: 101, ..entry };
        assert_ne!(v, of(&other_size, ""));
    }
}
