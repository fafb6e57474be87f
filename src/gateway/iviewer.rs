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
//! Everything else iviewer asks for (rendering, `luts`, `getImgRDef`,
//! `get_image_rdefs_json`, `saveImgRDef`, histograms) is OMERO's own webgateway.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::Gateway;
use super::img_data::typed;
use super::routes::query_pairs;
use crate::http_app::{self as app, Response};

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

fn json_response(status: u16, value: &Value) -> Response {
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

/// `webclient/api/paths_to_object/`: an image's parents; none are reported (iviewer
/// then shows no thumbnail strip).
pub fn paths_to_object() -> Response {
    json_response(200, &json!({"paths": []}))
}

/// `delta_t`'s answer: OMERO lists a time per T index when there are several, 0 where
/// the file records none (here: always); `image_id` is the URL's text, as Django
/// passes it.
pub fn delta_t_json(id: u64, size_t: u32) -> Value {
    let times = if size_t > 1 {
        vec![0; size_t as usize]
    } else {
        Vec::new()
    };
    json!({"delta_t": times, "delta_t_unit_symbol": null, "image_id": id.to_string()})
}

/// `plane_shape_counts`' answer for an image without shapes: a zero per (z, t).
pub fn plane_shape_counts_json(size_z: u32, size_t: u32) -> Value {
    json!({"data": vec![vec![0; size_t as usize]; size_z as usize]})
}

/// `rois_by_plane`'s answer: no ROIs on any plane.
pub fn no_rois_json() -> Value {
    json!({"data": [], "meta": {"totalCount": 0}})
}

/// `shape_stats/?ids=…&z=…&t=…`: the view's parameter checks, then no statistics,
/// since no shape exists here to measure.
pub fn shape_stats(query: &str) -> Response {
    let pairs = query_pairs(query);
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let (Some(ids), Some(z), Some(t)) = (get("ids"), get("z"), get("t")) else {
        return json_response(
            200,
            &json!({"error": "Parameters ids, z and t are mandatory"}),
        );
    };
    let ids: Result<Vec<u64>, _> = ids
        .split(',')
        .filter(|id| !id.is_empty())
        .map(|id| id.rsplit(':').next().unwrap_or(id).parse::<u64>())
        .collect();
    let (Ok(ids), Ok(_), Ok(_)) = (ids, z.parse::<i64>(), t.parse::<i64>()) else {
        return json_response(200, &json!({"error": "Invalid Parameter types"}));
    };
    match ids.first() {
        None => json_response(200, &json!({})),
        Some(id) => json_response(
            200,
            &json!({"error": format!("No shape with ID {id}: this site stores no ROIs")}),
        ),
    }
}

/// `well_images/?id=…`: no image here is in a well, so every well is empty.
pub fn well_images(query: &str) -> Response {
    if !query_pairs(query).iter().any(|(k, _)| k == "id") {
        return json_response(200, &json!({"error": "No well id provided."}));
    }
    json_response(200, &no_rois_json())
}

/// `save_projection/` and `persist_rois/`: the repository is read-only to the web, so
/// nothing is saved; the refusal in the shape each view reports errors in (iviewer
/// shows it).
pub fn read_only(view: &str) -> Response {
    let message =
        "This site's images are files served read-only: projections and ROIs cannot be saved.";
    if view == "persist_rois" {
        json_response(200, &json!({"errors": [message]}))
    } else {
        json_response(200, &json!({"error": message}))
    }
}

/// How far around the point `get_intensity` reads (its `QUERY_DISTANCE`).
const INTENSITY_DISTANCE: u32 = 25;

/// `get_intensity`'s parameters, checked as its view checks them.
struct IntensityQuery {
    image: u64,
    x: i64,
    y: i64,
    z: i64,
    t: i64,
    channels: String,
}

impl IntensityQuery {
    fn parse(query: &str) -> Result<IntensityQuery, &'static str> {
        let pairs = query_pairs(query);
        let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim());
        const MANDATORY: &str = "Mandatory params are: image, x, y, c, z and t";
        let (Some(image), Some(x), Some(y), Some(c), Some(z), Some(t)) = (
            get("image"),
            get("x"),
            get("y"),
            get("c"),
            get("z"),
            get("t"),
        ) else {
            return Err(MANDATORY);
        };
        // Python's int(float(v)): a fraction is cut towards zero.
        let number = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(|f| f as i64)
        };
        match (image.parse(), number(x), number(y), number(z), number(t)) {
            (Ok(image), Some(x), Some(y), Some(z), Some(t)) => Ok(IntensityQuery {
                image,
                x,
                y,
                z,
                t,
                channels: c.to_string(),
            }),
            _ => Err("image must be an ID and x, y, z, t numbers"),
        }
    }
}

/// The values around (x, y) of the asked channels, keyed `"<col>-<row>"` then by
/// channel, as iviewer's `get_intensity` returns them.
fn intensity_json(
    meta: &super::source::ImageMeta,
    q: &IntensityQuery,
    read: impl Fn(u32, &[u32], u32, super::source::Region) -> Result<Vec<super::source::Plane>, String>,
) -> Value {
    let inside = |v: i64, size: u32| v >= 0 && v < i64::from(size);
    if !(inside(q.x, meta.size_x)
        && inside(q.y, meta.size_y)
        && inside(q.z, meta.size_z)
        && inside(q.t, meta.size_t))
    {
        return json!({"error": "Either one or more x, y, z, t are out of bounds"});
    }
    let mut channels = Vec::new();
    for token in q.channels.split(',') {
        let Ok(c) = token.trim().parse::<i64>() else {
            return json!({"error": "The channels have to be a comma separated string"});
        };
        if !inside(c, meta.size_c) {
            return json!({"error": "One or more channels are out of bounds"});
        }
        channels.push(c as u32);
    }
    let (x, y) = (q.x as u32, q.y as u32);
    let x0 = x.saturating_sub(INTENSITY_DISTANCE);
    let y0 = y.saturating_sub(INTENSITY_DISTANCE);
    let side = 2 * INTENSITY_DISTANCE + 1;
    let region = super::source::Region {
        x: x0,
        y: y0,
        width: side.min(meta.size_x - x0),
        height: side.min(meta.size_y - y0),
    };
    let planes = match read(q.z as u32, &channels, q.t as u32, region) {
        Ok(planes) => planes,
        Err(e) => return json!({"error": e}),
    };
    let mut pixels = serde_json::Map::new();
    let mut count = 0;
    for (c, plane) in channels.iter().zip(&planes) {
        for row in 0..plane.height {
            for col in 0..plane.width {
                let value = plane.data[(row * plane.width + col) as usize];
                let key = format!("{}-{}", region.x + col, region.y + row);
                let entry = pixels.entry(key).or_insert_with(|| json!({}));
                entry[c.to_string()] = json!(value);
                count += 1;
            }
        }
    }
    json!({"count": count, "pixels": pixels})
}

impl Gateway {
    fn iviewer_bundle(&self) -> Option<Bundle> {
        Bundle::locate(&self.config.index_dir)
    }

    /// `webclient/img_detail/<id>/` when `omero.web.viewer.view` is iviewer's: its
    /// page for that image, as OMERO calls the configured view with the image ID;
    /// None (the built-in viewer) when iviewer is not the viewer or not installed.
    pub(super) async fn iviewer_as_viewer(
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

    pub(super) fn iviewer_index(&self, query: &str) -> Response {
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

    pub(super) async fn iviewer_image_data(
        self: Arc<Self>,
        id: u64,
        viewer: &super::auth::Viewer,
    ) -> Response {
        let Some(entry) = self.lookup(id).await else {
            return json_response(404, &json!({"error": "Image not found"}));
        };
        let source = match self.clone().source(&entry).await {
            Ok(source) => source,
            Err(e) => return json_response(200, &json!({"error": e.to_string()})),
        };
        let settings = self.saved_settings(id, source.meta());
        let may_save = self.may_save_settings(viewer, &entry);
        let value = super::img_data::img_data_json(id, &entry, source.meta(), &settings, may_save);
        json_response(200, &image_data(value))
    }
}

impl Gateway {
    /// `image_data/<id>/delta_t/`.
    pub(super) async fn iviewer_delta_t(self: Arc<Self>, id: u64) -> Response {
        match self.open_image(id).await {
            Ok((_, source)) => json_response(200, &delta_t_json(id, source.meta().size_t)),
            Err(_) => json_response(404, &json!({"error": "Image not found"})),
        }
    }

    /// `rois_by_plane/…` (`counts` false) and `plane_shape_counts/<id>/` (true).
    pub(super) async fn iviewer_no_rois(self: Arc<Self>, id: u64, counts: bool) -> Response {
        match self.open_image(id).await {
            Ok(_) if !counts => json_response(200, &no_rois_json()),
            Ok((_, source)) => {
                let meta = source.meta();
                json_response(200, &plane_shape_counts_json(meta.size_z, meta.size_t))
            }
            Err(_) => json_response(404, &json!({"error": "Image not found"})),
        }
    }

    /// `get_intensity/?image=…&x=…&y=…&z=…&t=…&c=…`.
    pub(super) async fn iviewer_intensity(self: Arc<Self>, query: &str) -> Response {
        let q = match IntensityQuery::parse(query) {
            Ok(q) => q,
            Err(message) => return json_response(200, &json!({"error": message})),
        };
        let source = match self.open_image(q.image).await {
            Ok((_, source)) => source,
            Err(_) => return json_response(404, &json!({"error": "Image not Found"})),
        };
        let answer = crate::http_app::blocking::spawn_blocking(
            format!("image {} (intensity)", q.image),
            move || {
                intensity_json(source.meta(), &q, |z, channels, t, region| {
                    source
                        .read_planes(z, channels, t, Some(region))
                        .map_err(|e| e.to_string())
                })
            },
        )
        .await;
        match answer {
            Ok(value) => json_response(200, &value),
            Err(e) => json_response(500, &json!({"error": e.to_string()})),
        }
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

    fn body(response: Response) -> Value {
        use http_body_util::BodyExt;
        let bytes = block_on(response.into_body().collect())
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("JSON")
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn views_about_rois_time_and_wells_answer_as_for_an_image_with_none() {
        assert_eq!(
            delta_t_json(4, 3),
            json!({"delta_t": [0, 0, 0], "delta_t_unit_symbol": null, "image_id": "4"})
        );
        assert_eq!(delta_t_json(4, 1)["delta_t"], json!([]));
        assert_eq!(
            plane_shape_counts_json(2, 3),
            json!({"data": [[0, 0, 0], [0, 0, 0]]})
        );
        assert_eq!(
            no_rois_json(),
            json!({"data": [], "meta": {"totalCount": 0}})
        );
        assert_eq!(
            body(well_images("")),
            json!({"error": "No well id provided."})
        );
        assert_eq!(body(well_images("id=3")), no_rois_json());
        assert_eq!(
            body(shape_stats("ids=1")),
            json!({"error": "Parameters ids, z and t are mandatory"})
        );
        assert_eq!(
            body(shape_stats("ids=a&z=0&t=0")),
            json!({"error": "Invalid Parameter types"})
        );
        assert_eq!(body(shape_stats("ids=&z=0&t=0")), json!({}));
        assert!(
            body(shape_stats("ids=5:9&z=0&t=0"))["error"]
                .as_str()
                .is_some_and(|e| e.contains("No shape with ID 9"))
        );
        assert!(
            body(read_only("persist_rois"))["errors"][0]
                .as_str()
                .is_some_and(|e| e.contains("read-only"))
        );
        assert!(
            body(read_only("save_projection"))["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot be saved"))
        );
    }

    #[test]
    fn intensity_reads_around_the_point_within_the_image() {
        let meta = super::super::source::ImageMeta {
            name: "a".into(),
            size_x: 100,
            size_y: 2,
            size_z: 1,
            size_c: 2,
            size_t: 1,
            pixel_type: super::super::source::PixelType::U16,
            channels: Vec::new(),
            physical_size_um: [None; 3],
            rgb: false,
        };
        // Pixel value = 100·channel + x + 10·y.
        let read = |_z: u32, channels: &[u32], _t: u32, r: super::super::source::Region| {
            Ok(channels
                .iter()
                .map(|&c| super::super::source::Plane {
                    width: r.width,
                    height: r.height,
                    data: (0..r.height)
                        .flat_map(|y| {
                            (0..r.width).map(move |x| (100 * c + r.x + x + 10 * (r.y + y)) as u16)
                        })
                        .collect(),
                })
                .collect())
        };
        let q = IntensityQuery::parse("image=1&x=2.7&y=1&z=0&t=0&c=1,0").expect("valid");
        let value = intensity_json(&meta, &q, read);
        // As OMERO: 51 columns from max(x - 25, 0) (here 0..=50), rows 0..=1 (cut at
        // the image's edge), two channels.
        assert_eq!(value["count"], json!(51 * 2 * 2), "{value}");
        assert_eq!(value["pixels"]["2-1"], json!({"0": 12, "1": 112}));
        assert_eq!(value["pixels"]["50-0"]["1"], json!(150));
        assert!(value["pixels"].get("51-0").is_none());
        let out = IntensityQuery::parse("image=1&x=100&y=0&z=0&t=0&c=0").expect("valid");
        assert_eq!(
            intensity_json(&meta, &out, read)["error"],
            json!("Either one or more x, y, z, t are out of bounds")
        );
        let channel = IntensityQuery::parse("image=1&x=0&y=0&z=0&t=0&c=2").expect("valid");
        assert_eq!(
            intensity_json(&meta, &channel, read)["error"],
            json!("One or more channels are out of bounds")
        );
        assert_eq!(
            IntensityQuery::parse("image=1&x=0").err(),
            Some("Mandatory params are: image, x, y, c, z and t")
        );
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
