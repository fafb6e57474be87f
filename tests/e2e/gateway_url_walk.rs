//! Walks the installed omero-web's own URL lists (`webgateway/urls.py`, `api/urls.py`)
//! and asks an embedded site for each route: every one answers (anything but our
//! "no page at this address" 404), or docs/gateway.md's "Still not like OMERO.web" names it
//! with the reason. A route OMERO adds shows up here as a failure until it is served
//! or listed.

use crate::support;

use std::path::{Path, PathBuf};

use support::{TestSite, fetch, omeroweb_venv};

/// The installed package's directory (`…/site-packages/omeroweb`).
fn omeroweb_package(venv: &Path) -> PathBuf {
    std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("site-packages/omeroweb"))
        .find(|p| p.is_dir())
        .expect("omeroweb in the venv's site-packages")
}

/// The URL patterns of a urls.py: every `r"^…"` literal, with the string literals
/// Python joins across lines joined too.
fn patterns(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("r\"^") {
        let after = &rest[at + 2..];
        let end = after.find('"').unwrap();
        let mut pattern = after[..end].to_string();
        rest = &after[end + 1..];
        // `r"…" "…"` (on one line or the next): Python joins adjacent literals.
        while let Some(next) = rest.trim_start().strip_prefix('"') {
            let close = next.find('"').unwrap();
            pattern.push_str(&next[..close]);
            rest = &next[close + 1..];
        }
        out.push(pattern);
    }
    out
}

/// A concrete path for a pattern: optional groups dropped, IDs 1, other groups a
/// plausible word.
fn sample(pattern: &str) -> String {
    let mut p = pattern
        .trim_start_matches('^')
        .trim_end_matches('$')
        .to_string();
    // Optional groups `(?:(?P<x>…)/)?`.
    while let Some(at) = p.find("(?:") {
        let close = p[at..].find(")?").map(|c| at + c).unwrap();
        // The group's own inner `)` closes first: skip to the `)?` after `/)`.
        let end = p[close + 2..]
            .find(")?")
            .map(|c| close + 2 + c + 2)
            .filter(|_| p[at..close + 2].matches('(').count() > 1)
            .unwrap_or(close + 2);
        p.replace_range(at..end, "");
    }
    let mut out = String::new();
    let mut chars = p.as_str();
    while let Some(at) = chars.find("(?P<") {
        out.push_str(&chars[..at]);
        let group = &chars[at..];
        let close = group.find(')').unwrap();
        let body = &group[..close];
        out.push_str(if body.contains("api_version") {
            "0"
        } else if body.contains("[0-9]") || body.contains("\\d") {
            "1"
        } else if body.contains("[zt]") {
            "z"
        } else {
            "image"
        });
        chars = &group[close + 1..];
    }
    out.push_str(chars);
    out.replace("/?", "/")
}

/// docs/gateway.md's "Still not like OMERO.web" list (up to the next blank line).
fn not_like_omero(readme: &str) -> String {
    let start = readme
        .find("Still not like OMERO.web:")
        .expect("docs/gateway.md's list");
    let rest = &readme[start..];
    rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
}

#[test]
fn every_webgateway_and_api_route_answers_or_is_listed_with_its_reason() {
    let Some(venv) = omeroweb_venv("every_webgateway_and_api_route_answers") else {
        return;
    };
    let package = omeroweb_package(&venv);
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/gateway.md"))
            .unwrap();
    let listed = not_like_omero(&readme);

    let site = TestSite::with_demo(1, "", &["--images", "1", "--size", "64"]);
    site.ok(&["start"]);
    let mut answered = 0;
    let mut missing = Vec::new();
    for (app, file) in [("webgateway", "webgateway/urls.py"), ("api", "api/urls.py")] {
        let source = std::fs::read_to_string(package.join(file)).unwrap();
        let found = patterns(&source);
        assert!(found.len() > 40, "{file}: only {} patterns", found.len());
        for pattern in found {
            let path = format!("/{app}/{}", sample(&pattern));
            let (status, _, body) = fetch(site.port, &path, &[]);
            let unrouted = status == 404
                && String::from_utf8_lossy(&body).contains("There is no page at this address.");
            if !unrouted {
                answered += 1;
                continue;
            }
            // Listed by its view: `webgateway/<first segment>/`, or the API's
            // `/api/v0/<path>` with IDs as `<id>`.
            let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            let key = match (app, segments.as_slice()) {
                ("webgateway", [_, view, ..]) => format!("`webgateway/{view}/"),
                ("api", [_, _, "m", resource, ..]) => format!("`/api/v0/m/{resource}/"),
                ("api", [_, _, view, ..]) => format!("`/api/v0/{view}/"),
                _ => "`/api/`".to_string(),
            };
            if !listed.contains(&key) {
                missing.push(format!(
                    "{path} ({pattern}): not served, and {key}…` is not in docs/gateway.md's list"
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    eprintln!("{answered} of omero-web's routes answered");
    // What this gateway serves of it (img_detail, render_*, imgData, rdefs, luts, the
    // JSON API over folders…).
    assert!(answered >= 38, "only {answered} routes answered");
}
