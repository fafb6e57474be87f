//! OMERO.iviewer's released bundle served by the embedded gateway, so that the viewer
//! OMERO sites use opens the repository's images. Nothing of iviewer is shipped here:
//! the site installs its package (the `omero_iviewer` directory of the PyPI wheel)
//! as `var/apps/omero_iviewer/`, e.g.
//!
//! ```text
//! pip download omero-iviewer --no-deps -d /tmp && unzip /tmp/omero_iviewer-*.whl 'omero_iviewer/*' -d var/apps/
//! ```
//!
//! What its Django app would do, done here:
//! * `/iviewer/?images=<id>` renders the package's own `index.html` template with the
//!   context its `index` view gives (`window.INITIAL_REQUEST_PARAMS`: the query's
//!   parameters upper-cased, the webgateway/webclient/API URLs under the prefix, its
//!   settings' defaults); its `{% static %}` URLs point into `omero.web.static_url`;
//! * `static/omero_iviewer/…` is collected into `omero.web.static_root` at start, as
//!   Django's collectstatic does (so nginx serves it), and served by the workers too;
//! * `/iviewer/image_data/<id>/` is imgData plus what iviewer's view adds (no ROIs,
//!   the linear family); `/webgateway/open_with/` lists no other viewers and
//!   `/webclient/api/paths_to_object/` no parents, which iviewer takes as "no
//!   thumbnail strip".
//!
//! Its views about ROIs, time, wells and intensities are `iviewer_views`.
//! Everything else iviewer asks for (rendering, `luts`, `getImgRDef`,
//! `get_image_rdefs_json`, `saveImgRDef`, histograms) is OMERO's own webgateway.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::gateway::http::webgateway::img_data::typed;
use crate::gateway::query::query_pairs;
use crate::http_app::{self as app, Response};

pub mod views;

/// `omero.web.viewer.view` when iviewer is a site's viewer (its README's setting).
pub const VIEWER_VIEW: &str = "omero_iviewer.views.index";

/// OMERO.web's version this gateway answers as (`OMERO_VERSION` in iviewer's page).
const OMERO_VERSION: &str = "5.33.2";

/// An installed iviewer package.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    /// The package under the site's `var/` (the gateway's index directory), if
    /// installed: its template and its static files must both be there.
    pub fn locate(var_dir: &Path) -> Option<Bundle> {
        let dir = var_dir.join("apps").join("omero_iviewer");
        let bundle = Bundle { dir };
        (bundle.template().is_file() && bundle.static_dir().join("main.js").is_file())
            .then_some(bundle)
    }

    fn template(&self) -> PathBuf {
        self.dir.join("templates/omero_iviewer/index.html")
    }

    /// `static/omero_iviewer/`: what `{static_url}omero_iviewer/…` serves.
    pub fn static_dir(&self) -> PathBuf {
        self.dir.join("static/omero_iviewer")
    }

    /// The package's version (`VERSION = (0, 19, 1)` in `version.py`, which its
    /// `__version__` joins with dots), as its page and URL suffix carry it.
    fn version(&self) -> String {
        std::fs::read_to_string(self.dir.join("version.py"))
            .ok()
            .and_then(|text| version_of(&text))
            .unwrap_or_else(|| "unknown".into())
    }

    /// Copies the static files into `static_root/omero_iviewer/` (only those that
    /// differ); returns how many were written.
    pub fn collect_static(&self, static_root: &Path) -> io::Result<usize> {
        let target = static_root.join("omero_iviewer");
        copy_tree(&self.static_dir(), &target)
    }

    /// The page of `/iviewer/`: the package's template with the view's context.
    pub fn index_page(
        &self,
        query: &[(String, String)],
        prefix: &str,
        static_url: &str,
    ) -> io::Result<String> {
        let template = std::fs::read_to_string(self.template())?;
        let version = self.version();
        let mut params: Vec<(String, String)> = vec![
            ("VERSION".into(), version.clone()),
            ("OMERO_VERSION".into(), OMERO_VERSION.into()),
        ];
        // The view: every non-empty query parameter, its name upper-cased.
        for (key, value) in query {
            if !value.is_empty() {
                params.retain(|(k, _)| *k != key.to_uppercase());
                params.push((key.to_uppercase(), value.clone()));
            }
        }
        for (key, value) in [
            ("INTERPOLATE", "True".to_string()),
            ("WEBGATEWAY", format!("{prefix}/webgateway/")),
            ("WEBCLIENT", format!("{prefix}/webclient/")),
            ("WEB_API_BASE", format!("{prefix}/api/v0/")),
            ("ROI_PAGE_SIZE", "500".into()),
            // iviewer's defaults where its view asks OMERO.server's config.
            ("MAX_PROJECTION_BYTES", (256u64 << 20).to_string()),
            ("MAX_ACTIVE_CHANNELS", "10".into()),
            ("NODEDESCRIPTORS", "None".into()),
            ("ROI_COLOR_PALETTE", String::new()),
            ("SHOW_PALETTE_ONLY", "False".into()),
            ("ENABLE_MIRROR", "False".into()),
        ] {
            params.push((key.to_string(), value));
        }
        if !prefix.is_empty() {
            params.push(("URI_PREFIX".into(), prefix.to_string()));
        }
        Ok(render_template(&template, &params, static_url, &version))
    }
}

/// Fills iviewer's template: the `{% static '…'|add:iviewer_url_suffix %}` URLs and
/// the loop that writes `INITIAL_REQUEST_PARAMS` (values as JSON strings, with `<`
/// escaped so that no value can close the script).
fn render_template(
    template: &str,
    params: &[(String, String)],
    static_url: &str,
    version: &str,
) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find("{%") {
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find("%}") else {
            break;
        };
        let tag = rest[at + 2..at + end].trim();
        rest = &rest[at + end + 2..];
        if let Some(path) = tag
            .strip_prefix("static '")
            .and_then(|t| t.split('\'').next())
        {
            out.push_str(&format!("{static_url}{path}?_iviewer-{version}"));
        } else if tag.starts_with("for key, value in params.items") {
            // The loop's body, rendered once per parameter.
            let Some(close) = rest.find("{% endfor %}") else {
                break;
            };
            rest = &rest[close + "{% endfor %}".len()..];
            for (key, value) in params {
                let js = |s: &str| json!(s).to_string().replace('<', "\\u003c");
                out.push_str(&format!(
                    "\n        window.INITIAL_REQUEST_PARAMS[{}] = {};",
                    js(key),
                    js(value)
                ));
            }
        }
    }
    out.push_str(rest);
    out
}

/// `0.19.1` from a `VERSION = (0, 19, 1)` line.
fn version_of(version_py: &str) -> Option<String> {
    let line = version_py
        .lines()
        .find(|l| l.trim_start().starts_with("VERSION ="))?;
    let tuple = line.split_once('(')?.1.split_once(')')?.0;
    let parts: Vec<&str> = tuple
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty() && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())))
        .then(|| parts.join("."))
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<usize> {
    let mut written = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            written += copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            let bytes = std::fs::read(entry.path())?;
            if std::fs::read(&target).ok().as_deref() != Some(bytes.as_slice()) {
                crate::fsutil::write_atomic(&target, &bytes, Some(0o644))?;
                written += 1;
            }
        }
    }
    Ok(written)
}

/// What iviewer's `image_data` view adds to imgData: the ROI count (none here) and
/// the rendering families (linear only).
pub fn image_data(mut img_data: Value) -> Value {
    if let Some(object) = img_data.as_object_mut() {
        object.insert("roi_count".into(), json!(0));
        object.insert("families".into(), json!(["linear"]));
        object.insert("delta_t_unit_symbol".into(), Value::Null);
    }
    img_data
}

pub(in crate::gateway) fn json_response(status: u16, value: &Value) -> Response {
    typed(
        status,
        "application/json",
        serde_json::to_vec(value).expect("JSON"),
    )
}

/// `webgateway/open_with/`: the other viewers OMERO.web lists; none here.
pub fn open_with() -> Response {
    json_response(200, &json!({"open_with_options": []}))
}

impl Gateway {
    /// `webclient/api/paths_to_object/?image=<id>[&page_size=<n>]`: the image's
    /// folders as OMERO's parents (`parents::paths_to_object`), so iviewer's thumbnail
    /// strip lists its dataset. `page_size` defaults to `omero.web.page_size`; a value
    /// that is not a number is OMERO's 400 "Invalid parameter value".
    pub(in crate::gateway) fn paths_to_object(
        &self,
        pairs: &[(String, String)],
        viewer: &crate::gateway::auth::Viewer,
    ) -> Response {
        let param = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim());
        let number = |key: &str| param(key).filter(|v| !v.is_empty()).map(str::parse::<u64>);
        let (image, page_size) = match (number("image"), number("page_size")) {
            (Some(Err(_)), _) | (_, Some(Err(_))) => {
                return app::text(400, "Invalid parameter value");
            }
            (image, page_size) => (
                image.map(Result::unwrap),
                page_size.map_or(self.config.page_size, |p| p.unwrap() as usize),
            ),
        };
        let Some(image) = image else {
            return json_response(200, &json!({"paths": []}));
        };
        let images = self.gallery_order(viewer);
        json_response(
            200,
            &crate::gateway::parents::paths_to_object(image, &images, page_size),
        )
    }

    fn iviewer_bundle(&self) -> Option<Bundle> {
        Bundle::locate(&self.config.index_dir)
    }

    /// `webclient/img_detail/<id>/` when `omero.web.viewer.view` is iviewer's: its
    /// page for that image, as OMERO calls the configured view with the image ID;
    /// None (the built-in viewer) when iviewer is not the viewer or not installed.
    pub(in crate::gateway) async fn iviewer_as_viewer(
        self: Arc<Self>,
        id: u64,
        query: String,
    ) -> Option<Response> {
        if !self.config.iviewer_is_the_viewer {
            return None;
        }
        // The package is read from disk: off the runtime thread.
        crate::http_app::blocking::spawn_blocking(format!("image {id} (iviewer page)"), move || {
            self.iviewer_bundle()?;
            let mut pairs = query_pairs(&query);
            pairs.retain(|(k, _)| !k.eq_ignore_ascii_case("images"));
            pairs.insert(0, ("images".into(), id.to_string()));
            Some(self.iviewer_page(&pairs))
        })
        .await
        .ok()
        .flatten()
    }

    pub(in crate::gateway) fn iviewer_index(&self, query: &str) -> Response {
        self.iviewer_page(&query_pairs(query))
    }

    fn iviewer_page(&self, query: &[(String, String)]) -> Response {
        let Some(bundle) = self.iviewer_bundle() else {
            return app::text(
                404,
                "OMERO.iviewer is not installed on this site (var/apps/omero_iviewer/).\n",
            );
        };
        match bundle.index_page(query, &self.config.prefix, &self.config.static_url) {
            Ok(page) => typed(200, "text/html; charset=utf-8", page.into_bytes()),
            Err(e) => app::text(500, format!("reading OMERO.iviewer's template: {e}\n")),
        }
    }

    pub(in crate::gateway) async fn iviewer_image_data(
        self: Arc<Self>,
        id: u64,
        viewer: &crate::gateway::auth::Viewer,
    ) -> Response {
        let Some(entry) = self.lookup(id).await else {
            return json_response(404, &json!({"error": "Image not found"}));
        };
        let source = match self.clone().source(&entry).await {
            Ok(source) => source,
            Err(e) => return json_response(200, &json!({"error": e.to_string()})),
        };
        let value = self.img_data_for(viewer, &entry, source.meta());
        json_response(200, &image_data(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_gets_static_urls_and_the_request_params() {
        let template = "<link href=\"{% static 'omero_iviewer/css/all.min.css'|add:iviewer_url_suffix %}\" />\n<script>\n        window.INITIAL_REQUEST_PARAMS = {};\n        {% for key, value in params.items %}\n            window.INITIAL_REQUEST_PARAMS['{{key}}'] = \"{{value}}\";\n        {% endfor %}\n</script>";
        let html = render_template(
            template,
            &[
                ("IMAGES".into(), "3".into()),
                ("X".into(), "</script><b>".into()),
            ],
            "/static/",
            "0.19.1",
        );
        assert!(html.contains("href=\"/static/omero_iviewer/css/all.min.css?_iviewer-0.19.1\""));
        assert!(html.contains("window.INITIAL_REQUEST_PARAMS[\"IMAGES\"] = \"3\";"));
        assert!(html.contains("\\u003c/script>\\u003cb>"), "{html}");
        assert!(!html.contains("{%") && !html.contains("{{"), "{html}");
    }

    #[test]
    fn the_version_is_read_from_version_py() {
        assert_eq!(
            version_of("from x import y\n\nVERSION = (0, 19, 1)\nRC = \"\"\n").as_deref(),
            Some("0.19.1")
        );
        assert_eq!(version_of("__version__ = get()\n"), None);
    }
}
