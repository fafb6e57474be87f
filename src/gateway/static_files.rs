//! Static assets: embedded in the binary, collected into `omero.web.static_root` on
//! `start` (so nginx serves them with `alias`), and served by the workers too for
//! direct access without nginx.

use std::path::{Component, Path, PathBuf};

/// (path under the static root, contents).
pub const ASSETS: &[(&str, &[u8])] = &[
    (
        "webclient/webclient.css",
        include_bytes!("../../assets/static/webclient/webclient.css"),
    ),
    (
        "webclient/viewer.js",
        include_bytes!("../../assets/static/webclient/viewer.js"),
    ),
    (
        "webclient/histogram.js",
        include_bytes!("../../assets/static/webclient/histogram.js"),
    ),
    (
        "webclient/gallery.js",
        include_bytes!("../../assets/static/webclient/gallery.js"),
    ),
    (
        "webclient/favicon.svg",
        include_bytes!("../../assets/static/webclient/favicon.svg"),
    ),
];

/// Writes every asset into `static_root` (atomically, only when it differs); returns
/// how many files were written.
pub fn collect(static_root: &Path) -> std::io::Result<usize> {
    let mut written = 0;
    for (relative, contents) in ASSETS {
        let target = static_root.join(relative);
        if std::fs::read(&target).ok().as_deref() == Some(*contents) {
            continue;
        }
        crate::fsutil::write_atomic(&target, contents, Some(0o644))?;
        written += 1;
    }
    Ok(written)
}

/// The file for a URL path below the static URL, if it stays inside the root.
pub fn resolve(static_root: &Path, relative: &str) -> Option<PathBuf> {
    let relative = Path::new(relative);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let path = static_root.join(relative);
    path.is_file().then_some(path)
}

pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_writes_once_and_resolve_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(collect(dir.path()).unwrap(), ASSETS.len());
        assert_eq!(collect(dir.path()).unwrap(), 0);
        assert!(resolve(dir.path(), "webclient/viewer.js").is_some());
        assert!(resolve(dir.path(), "../etc/passwd").is_none());
        assert!(resolve(dir.path(), "/etc/passwd").is_none());
        assert!(resolve(dir.path(), "webclient/missing.js").is_none());
    }
}
