//! OMERO.web's URL shapes over the repository: render_thumbnail, render_image,
//! render_image_region, imgData, archived_files/download, the webclient pages and
//! /static/. Rendering runs on the blocking pool; every image response carries
//! ETag/Last-Modified and conditional requests get 304.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::cache::CacheKey;
use super::http::render_query;
use super::imaging::source::{ImageMeta, ImageSource};
use super::imaging::{encode, render};
use super::repository::ImageEntry;
use super::{Gateway, pages, static_files};
use crate::http_app::{self as app, Request, Response};

/// OMERO's default thumbnail size (the server's `thumb_default_size`).
pub const DEFAULT_THUMBNAIL_SIZE: u32 = 96;
/// The disk cache's variant for the default thumbnail under the image's saved
/// rendering settings (`saved`, "" for the imported defaults): saving new settings
/// makes a new thumbnail, as OMERO's thumbnail follows the saved definition.
pub fn default_thumbnail_variant(saved: &str) -> String {
    if saved.is_empty() {
        format!("{DEFAULT_THUMBNAIL_SIZE}")
    } else {
        format!("{DEFAULT_THUMBNAIL_SIZE}|{saved}")
    }
}

/// Largest thumbnail side: bigger ones are render_image's job, and an upscaled
/// thumbnail is all memory and no information.
pub const MAX_THUMBNAIL_SIZE: u32 = 1024;

/// What a request asks for, parsed from its path.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Root,
    Health,
    /// `/favicon.ico`, which browsers ask for on every page.
    Favicon,
    Gallery,
    /// `webclient/login/`: embedded sites have no sessions, so the page says so and a
    /// POST goes straight on (health checks written for OMERO.web get a 200).
    Login,
    /// `webclient/logout/` (see `auth::login`).
    Logout,
    /// `webclient/keepalive_ping/`: OMERO answers a live session with "OK".
    KeepalivePing,
    Viewer(u64),
    /// `webclient`: the webclient variants answer a missing image with a placeholder.
    Thumbnail {
        id: u64,
        w: Option<u32>,
        h: Option<u32>,
        webclient: bool,
    },
    RenderImage {
        id: u64,
        z: Option<u32>,
        t: Option<u32>,
    },
    RenderRegion {
        id: u64,
        z: u32,
        t: u32,
    },
    /// `imgData/<id>/[<key>/]`.
    ImgData {
        id: u64,
        key: Option<String>,
    },
    /// `get_thumbnail/<id>/…`: one thumbnail as a JSON data URI.
    GetThumbnail {
        id: u64,
        w: Option<u32>,
        h: Option<u32>,
        webclient: bool,
    },
    /// `get_thumbnails/[<w>/]?id=…`: a batch, as JSON `{id: data URI}`.
    GetThumbnails {
        w: Option<u32>,
    },
    /// `render_birds_eye_view/<id>/[<size>/]`: a thumbnail with w = size.
    BirdsEye {
        id: u64,
        size: Option<u32>,
    },
    SplitChannel {
        id: u64,
        z: u32,
        t: u32,
    },
    LinePlot {
        id: u64,
        z: u32,
        t: u32,
        /// The row (for a row plot) or column.
        position: u32,
        width: Option<u32>,
        axis: super::imaging::plots::Axis,
    },
    Histogram {
        id: u64,
        channel: u32,
    },
    /// webclient's `render_image_download/<id>/[<z>/[<t>/]]?format=`.
    RenderDownload {
        id: u64,
        z: Option<u32>,
        t: Option<u32>,
    },
    Download(Option<u64>),
    /// `saveImgRDef/<id>/`, `getImgRDef/`, `copyImgRDef/`, `resetRDef/`,
    /// `applyOwnersRDef/`, `get_image_rdefs_json/<id>/` (see `rdef_views`).
    SaveRdef(u64),
    ClipboardRdef,
    CopyRdef,
    ResetRdef {
        to_owners: bool,
    },
    ImageRdefs(u64),
    /// `/api/…`: the JSON API (see `api`); the path below `/api/`.
    Api(String),
    /// `webgateway/`: OMERO's placeholder index.
    GatewayIndex,
    /// OMERO.iviewer's page, image data, and the two webclient/webgateway views it
    /// asks (`gateway::iviewer`).
    Iviewer,
    IviewerImageData(u64),
    /// iviewer's views about ROIs, time and wells, answered as for an image with none
    /// (`gateway::iviewer`): `image_data/<id>/delta_t/`, `rois_by_plane/<id>/<z>/<t>/`,
    /// `plane_shape_counts/<id>/`, `get_intensity/`, `shape_stats/`, `well_images/`.
    IviewerDeltaT(u64),
    IviewerRoisByPlane(u64),
    IviewerPlaneShapeCounts(u64),
    IviewerIntensity,
    IviewerShapeStats,
    IviewerWellImages,
    /// `save_projection/` and `persist_rois/`: nothing is written into the repository.
    IviewerReadOnly(&'static str),
    /// `roi|shape/<id>/page_data/` and `roi|shape/<id>/image_data/`: (kind, id). No ROI
    /// or shape exists here, so each answers as OMERO.web does for an ID it cannot find.
    IviewerRoiLookup(&'static str, u64),
    OpenWith,
    PathsToObject,
    /// `get_rois_json/<id>/`: an image here has no ROIs.
    Rois(u64),
    /// `luts/` and `luts_png/`.
    Luts,
    LutsPng,
    Static(String),
    NotFound,
}

/// Maps a path below the prefix to a route. Numbers that do not parse are 404s, as
/// Django's URL patterns would make them.
pub fn route(path: &str, static_url: &str) -> Route {
    if path == "/" {
        return Route::Root;
    }
    if path == "/favicon.ico" {
        return Route::Favicon;
    }
    if let Some(rest) = path.strip_prefix(static_url) {
        return Route::Static(rest.to_string());
    }
    // As before, a missing trailing slash is forgiven, except where histogram_json's
    // pattern needs one after the channel.
    let trailing = path.ends_with('/');
    let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // The webclient's image routes take an optional share ID before the view name.
    if parts.len() > 2 && parts[0] == "webclient" && parts[1].bytes().all(|b| b.is_ascii_digit()) {
        parts.remove(1);
        if !matches!(
            parts[1],
            "render_image"
                | "render_image_region"
                | "render_image_download"
                | "render_birds_eye_view"
                | "img_detail"
                | "imgData"
                | "render_row_plot"
                | "render_col_plot"
                | "render_split_channel"
        ) {
            return Route::NotFound;
        }
    }
    // Django's patterns take [0-9]+ only: no sign, no spaces.
    fn digits(s: &&&str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    let num = |i: usize| {
        parts
            .get(i)
            .filter(digits)
            .and_then(|s| s.parse::<u64>().ok())
    };
    let small = |i: usize| {
        parts
            .get(i)
            .filter(digits)
            .and_then(|s| s.parse::<u32>().ok())
    };
    let n = parts.len();
    // Optional trailing numbers at i.. (Django's "(?:(?P<x>[0-9]+)/)?"): all must parse.
    let optional = |from: usize, most: usize| -> Option<Vec<u32>> {
        if n < from || n > from + most {
            return None;
        }
        (from..n).map(small).collect()
    };
    let app = parts[0];
    if app == "api" {
        return Route::Api(parts[1..].join("/"));
    }
    let view = parts.get(1).copied().unwrap_or("");
    match (app, view) {
        ("__webctl", "health") if n == 2 => Route::Health,
        ("webclient", "") if n == 1 => Route::Gallery,
        ("webclient", "login") if n == 2 => Route::Login,
        ("webclient", "logout") if n == 2 => Route::Logout,
        ("webclient", "keepalive_ping") if n == 2 => Route::KeepalivePing,
        ("webclient" | "webgateway", "img_detail") if n == 3 => {
            num(2).map(Route::Viewer).unwrap_or(Route::NotFound)
        }
        ("webgateway", "render_thumbnail") => match (num(2), optional(3, 2)) {
            (Some(id), Some(wh)) => Route::Thumbnail {
                id,
                w: wh.first().copied(),
                h: wh.get(1).copied(),
                webclient: false,
            },
            _ => Route::NotFound,
        },
        // webclient: render_thumbnail/[size/<w>/]<id>/[<share_id>/]
        ("webclient", "render_thumbnail") if parts.get(2) == Some(&"size") => {
            match (small(3), num(4), n) {
                (Some(w), Some(id), 5 | 6) if n == 5 || num(5).is_some() => Route::Thumbnail {
                    id,
                    w: Some(w),
                    h: None,
                    webclient: true,
                },
                _ => Route::NotFound,
            }
        }
        ("webclient", "render_thumbnail") => match (num(2), n) {
            (Some(id), 3 | 4) if n == 3 || num(3).is_some() => Route::Thumbnail {
                id,
                w: None,
                h: None,
                webclient: true,
            },
            _ => Route::NotFound,
        },
        ("webgateway", "get_thumbnail") => match (num(2), optional(3, 2)) {
            (Some(id), Some(wh)) => Route::GetThumbnail {
                id,
                w: wh.first().copied(),
                h: wh.get(1).copied(),
                webclient: false,
            },
            _ => Route::NotFound,
        },
        // webclient: get_thumbnail/<id>/[<share_id>/], with a placeholder fallback.
        ("webclient", "get_thumbnail") => match (num(2), optional(3, 1)) {
            (Some(id), Some(_)) => Route::GetThumbnail {
                id,
                w: None,
                h: None,
                webclient: true,
            },
            _ => Route::NotFound,
        },
        ("webgateway", "get_thumbnails") => match optional(2, 1) {
            Some(w) => Route::GetThumbnails {
                w: w.first().copied(),
            },
            None => Route::NotFound,
        },
        // webclient: get_thumbnails/[<share_id>/] (the number is a share, not a size).
        ("webclient", "get_thumbnails") => match optional(2, 1) {
            Some(_) => Route::GetThumbnails { w: None },
            None => Route::NotFound,
        },
        ("webgateway" | "webclient", "render_birds_eye_view") => match (num(2), optional(3, 1)) {
            (Some(id), Some(size)) => Route::BirdsEye {
                id,
                size: size.first().copied(),
            },
            _ => Route::NotFound,
        },
        ("webgateway" | "webclient", "render_image") => match (num(2), optional(3, 2)) {
            (Some(id), Some(zt)) => Route::RenderImage {
                id,
                z: zt.first().copied(),
                t: zt.get(1).copied(),
            },
            _ => Route::NotFound,
        },
        ("webclient", "render_image_download") => match (num(2), optional(3, 2)) {
            (Some(id), Some(zt)) => Route::RenderDownload {
                id,
                z: zt.first().copied(),
                t: zt.get(1).copied(),
            },
            _ => Route::NotFound,
        },
        ("webgateway" | "webclient", "render_image_region") if n == 5 => {
            match (num(2), small(3), small(4)) {
                (Some(id), Some(z), Some(t)) => Route::RenderRegion { id, z, t },
                _ => Route::NotFound,
            }
        }
        ("webgateway" | "webclient", "render_split_channel") if n == 5 => {
            match (num(2), small(3), small(4)) {
                (Some(id), Some(z), Some(t)) => Route::SplitChannel { id, z, t },
                _ => Route::NotFound,
            }
        }
        ("webgateway" | "webclient", plot @ ("render_row_plot" | "render_col_plot")) => {
            match (num(2), small(3), small(4), small(5), optional(6, 1)) {
                (Some(id), Some(z), Some(t), Some(position), Some(width)) => Route::LinePlot {
                    id,
                    z,
                    t,
                    position,
                    width: width.first().copied(),
                    axis: if plot == "render_row_plot" {
                        super::imaging::plots::Axis::Row
                    } else {
                        super::imaging::plots::Axis::Column
                    },
                },
                _ => Route::NotFound,
            }
        }
        // histogram_json/<id>/channel/<c>/ followed by anything (no "$" in OMERO's
        // pattern).
        ("webgateway", "histogram_json") if n >= 4 && parts[3] == "channel" => {
            match (num(2), small(4)) {
                (Some(id), Some(channel)) if n > 5 || trailing => Route::Histogram { id, channel },
                _ => Route::NotFound,
            }
        }
        ("webgateway", "imgData") if n == 3 || n == 4 => match num(2) {
            Some(id) => Route::ImgData {
                id,
                key: parts.get(3).map(|k| k.to_string()),
            },
            None => Route::NotFound,
        },
        ("webclient", "imgData") if n == 3 => match num(2) {
            Some(id) => Route::ImgData { id, key: None },
            None => Route::NotFound,
        },
        ("webgateway", "saveImgRDef") if n == 3 => {
            num(2).map(Route::SaveRdef).unwrap_or(Route::NotFound)
        }
        ("webgateway", "get_image_rdefs_json") if n == 3 => {
            num(2).map(Route::ImageRdefs).unwrap_or(Route::NotFound)
        }
        ("webgateway", "getImgRDef") if n == 2 => Route::ClipboardRdef,
        ("webgateway", "") if n == 1 => Route::GatewayIndex,
        ("iviewer", "") if n == 1 => Route::Iviewer,
        ("iviewer", "image_data") if n == 3 => {
            num(2).map_or(Route::NotFound, Route::IviewerImageData)
        }
        ("iviewer", "image_data") if n == 4 && parts[3] == "delta_t" => {
            num(2).map_or(Route::NotFound, Route::IviewerDeltaT)
        }
        // `<z>[-<z_end>]/<t>[-<t_end>]`, as iviewer's pattern (`t` may hold colons).
        ("iviewer", "rois_by_plane")
            if n == 5 && plane_range(parts[3], false) && plane_range(parts[4], true) =>
        {
            num(2).map_or(Route::NotFound, Route::IviewerRoisByPlane)
        }
        ("iviewer", "plane_shape_counts") if n == 3 => {
            num(2).map_or(Route::NotFound, Route::IviewerPlaneShapeCounts)
        }
        ("iviewer", "get_intensity") if n == 2 => Route::IviewerIntensity,
        ("iviewer", "shape_stats") if n == 2 => Route::IviewerShapeStats,
        ("iviewer", "well_images") if n == 2 => Route::IviewerWellImages,
        ("iviewer", "save_projection") if n == 2 => Route::IviewerReadOnly("save_projection"),
        ("iviewer", "persist_rois") if n == 2 => Route::IviewerReadOnly("persist_rois"),
        ("iviewer", kind @ ("roi" | "shape"))
            if n == 4 && matches!(parts[3], "page_data" | "image_data") =>
        {
            let kind = if kind == "roi" { "roi" } else { "shape" };
            num(2).map_or(Route::NotFound, |id| Route::IviewerRoiLookup(kind, id))
        }
        ("webgateway", "open_with") if n == 2 => Route::OpenWith,
        ("webclient", "api") if n == 3 && parts[2] == "paths_to_object" => Route::PathsToObject,
        ("webgateway", "get_rois_json") if n == 3 => {
            num(2).map(Route::Rois).unwrap_or(Route::NotFound)
        }
        ("webgateway", "luts") if n == 2 => Route::Luts,
        ("webgateway", "luts_png") if n == 2 => Route::LutsPng,
        ("webgateway", "copyImgRDef") if n == 2 => Route::CopyRdef,
        ("webgateway", "resetRDef") if n == 2 => Route::ResetRdef { to_owners: false },
        ("webgateway", "applyOwnersRDef") if n == 2 => Route::ResetRdef { to_owners: true },
        ("webgateway", "archived_files") if parts.get(2) == Some(&"download") => match n {
            3 => Route::Download(None),
            4 => num(3)
                .map(|id| Route::Download(Some(id)))
                .unwrap_or(Route::NotFound),
            _ => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

/// Largest form body read (rendering settings are a few hundred bytes).
const MAX_FORM_BODY: usize = 64 * 1024;

/// `12`, `12-20` (and with `colons`, `1:2`): a plane index or range in iviewer's
/// `rois_by_plane` URL.
fn plane_range(part: &str, colons: bool) -> bool {
    let (start, end) = part.split_once('-').unwrap_or((part, "0"));
    let start_ok = !start.is_empty()
        && start
            .bytes()
            .all(|b| b.is_ascii_digit() || (colons && b == b':'));
    start_ok && !end.is_empty() && end.bytes().all(|b| b.is_ascii_digit())
}

/// A POST's urlencoded body as text, or the 413/400 for one too large or cut off.
async fn form_body(request: Request) -> Result<String, Response> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(request.into_body(), MAX_FORM_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(String::from_utf8_lossy(&collected.to_bytes()).into_owned()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(app::text(
            413,
            format!("form body over {MAX_FORM_BODY} bytes\n"),
        )),
        Err(e) => Err(app::text(400, format!("reading the form body: {e}\n"))),
    }
}

/// Query parameters, decoded.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

tokio::task_local! {
    /// The image the guard looked up for this request (access control on): the
    /// view's `lookup` of the same ID takes it instead of a second trip to the
    /// blocking pool. The file is judged again where it is opened.
    static GUARD_LOOKED_UP: Option<ImageEntry>;
    /// The logged-in user this request renders for (access control on): their own
    /// rendering settings come before the owner's (`rdefs`). `None` with access
    /// control off, for the public user and for nobody: they see the owner's.
    static RDEF_USER: Option<String>;
}

/// The logged-in user of the request being served (`RDEF_USER`), if any; none off
/// the request's task (the blocking pool, the publisher).
pub(super) fn rdef_user() -> Option<String> {
    RDEF_USER.try_with(Clone::clone).ok().flatten()
}

impl Gateway {
    /// Every request: the access guard (`auth::guard`), then the view.
    pub(super) async fn serve(self: Arc<Self>, request: Request) -> Response {
        let untrusted_header = self.remote_user_note(&request);
        let mut response = match self.admit(&request).await {
            Ok(mut admitted) => {
                let private = admitted.private;
                let looked_up = admitted.entry.take();
                let rdef_user = match &admitted.viewer {
                    super::auth::Viewer::User { name, .. } => Some(name.clone()),
                    _ => None,
                };
                let mut response = RDEF_USER
                    .scope(
                        rdef_user,
                        GUARD_LOOKED_UP.scope(looked_up, self.serve_as(request, admitted)),
                    )
                    .await;
                if private {
                    super::auth::guard::make_private(&mut response);
                }
                response
            }
            Err(refused) => refused,
        };
        if let Some(note) = untrusted_header
            && response.extensions().get::<app::LogNote>().is_none()
        {
            response.extensions_mut().insert(note);
        }
        response
    }

    async fn serve_as(
        self: Arc<Self>,
        request: Request,
        admitted: super::auth::guard::Admitted,
    ) -> Response {
        let path = request.uri().path().to_string();
        let super::auth::guard::Admitted { viewer, query, .. } = admitted;
        let login_request = |request: &Request| super::auth::login::LoginRequest {
            is_post: request.method() == hyper::Method::POST,
            query: query.clone(),
            body: String::new(),
            csrf_cookie: super::auth::guard::cookie(request, "csrftoken").map(str::to_string),
            csrf_header: request
                .headers()
                .get("x-csrftoken")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            session_cookie: super::auth::guard::cookie(request, &self.access.config.cookie.name)
                .map(str::to_string),
            client: request.extensions().get::<app::ClientAddr>().map(|c| c.0),
        };
        let mut login = login_request(&request);
        // The batch views answer an image the viewer may not see exactly as a missing
        // one (OMERO's queries find neither), so they read the IDs as asked and judge
        // each themselves; the guard's screened query would leave the hidden ones out.
        let asked_query = request.uri().query().unwrap_or("").to_string();
        let conditional = Conditional::from_request(&request);
        let is_post = request.method() == hyper::Method::POST;
        let json_body = request
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim_start().starts_with("application/json"));
        // Absolute URLs in API answers name the host the client used, as Django's
        // build_absolute_uri does.
        let host = request
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '"']))
            .unwrap_or("localhost")
            .to_string();
        // The few views that read a form body (OMERO's POSTs); others never wait for
        // one.
        let wants_body = is_post && {
            let p = request.uri().path();
            [
                "saveImgRDef/",
                "copyImgRDef/",
                "resetRDef/",
                "applyOwnersRDef/",
                "webclient/login/",
                "webclient/logout/",
                "api/v0/login/",
            ]
            .iter()
            .any(|view| p.contains(view))
        };
        let body = if wants_body {
            match form_body(request).await {
                Ok(body) => body,
                Err(response) => return response,
            }
        } else {
            String::new()
        };
        // Form fields naming images the viewer may not see are dropped, as in the query.
        let body = self.screen_fields(&viewer, &body);
        login.body = body.clone();
        let Some(local) = path.strip_prefix(&self.config.prefix) else {
            // Outside the prefix: the pages link the static files at `static_url`, an
            // absolute path as Django's STATIC_URL is, and browsers ask the root for
            // the favicon.
            if let Some(rest) = path.strip_prefix(&self.config.static_url) {
                return self.static_file(rest, &conditional);
            }
            if path == "/favicon.ico" {
                return favicon(&conditional);
            }
            return app::text(404, "Not Found\n");
        };
        let local = if local.is_empty() { "/" } else { local };
        match route(local, &self.config.static_url) {
            Route::Root => redirect(&format!("{}/webclient/", self.config.prefix)),
            Route::Health => app::text(200, "ok\n"),
            Route::Favicon => favicon(&conditional),
            // Listing and opening files can be slow (a rescan, a network filesystem):
            // never on the worker's runtime thread, where heartbeats run.
            Route::Gallery => {
                // The versioned thumbnail URLs are the viewer's own (their settings).
                let user = rdef_user();
                blocking("gallery", move || {
                    RDEF_USER.sync_scope(user, || self.gallery(&query, &viewer))
                })
                .await
            }
            Route::Login if self.access.is_on() => self.login_view(login, &viewer).await,
            Route::Login => self.login(is_post, &query),
            Route::Logout if self.access.is_on() => self.logout_view(login).await,
            // Without access control there is no session to end: on to the gallery.
            Route::Logout => redirect(&format!("{}/webclient/", self.config.prefix)),
            // The same body and type as OMERO's view: monitors compare both.
            Route::KeepalivePing => hyper::Response::builder()
                .status(200)
                .header("Content-Type", "text/plain")
                .body(app::full("OK"))
                .expect("valid response"),
            Route::Viewer(id) => match self.clone().iviewer_as_viewer(id, query.clone()).await {
                Some(page) => page,
                None => self.viewer(id, viewer).await,
            },
            Route::Thumbnail {
                id,
                w,
                h,
                webclient,
            } => {
                self.thumbnail(id, w, h, webclient, &query, &conditional)
                    .await
            }
            Route::RenderImage { id, z, t } => {
                self.render_image(id, z, t, &query, &conditional, false)
                    .await
            }
            Route::RenderRegion { id, z, t } => {
                self.render_image(id, Some(z), Some(t), &query, &conditional, true)
                    .await
            }
            Route::ImgData { id, key } => self.img_data(id, key, &query, &viewer).await,
            Route::GetThumbnail {
                id,
                w,
                h,
                webclient,
            } => self.get_thumbnail(id, w, h, webclient, &query).await,
            Route::GetThumbnails { w } => self.get_thumbnails(w, &asked_query, &viewer).await,
            // OMERO's render_birds_eye_view is render_thumbnail with w = size.
            Route::BirdsEye { id, size } => {
                self.thumbnail(id, size, None, false, &query, &conditional)
                    .await
            }
            Route::SplitChannel { id, z, t } => self.split_channel(id, z, t, &query).await,
            Route::LinePlot {
                id,
                z,
                t,
                position,
                width,
                axis,
            } => {
                self.line_plot(id, (z, t), position, width, axis, &query)
                    .await
            }
            Route::Histogram { id, channel } => self.histogram(id, channel, &query).await,
            Route::RenderDownload { id, z, t } => self.render_download(id, z, t, &query).await,
            Route::Download(id) => {
                blocking(format!("download {id:?}"), move || {
                    self.download(id, &asked_query, &viewer)
                })
                .await
            }
            Route::SaveRdef(id) if is_post => self.save_rdef(id, &query, &body, &viewer).await,
            Route::ImageRdefs(id) => self.image_rdefs(id, &query).await,
            Route::Luts => {
                let pairs = query_pairs(&query);
                let param = |key: &str| {
                    pairs
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str())
                };
                super::img_data::jsonp_response(
                    &super::imaging::lut::list_json(param("rgb") == Some("true")),
                    param("callback"),
                )
            }
            Route::Api(path) if path == "v0/token" => self.api_token(&login),
            Route::Api(path) if path == "v0/login" && is_post && self.access.is_on() => {
                self.api_login(login, json_body, &viewer).await
            }
            Route::Api(path) => {
                let pairs = query_pairs(&query);
                let param = |key: &str| {
                    pairs
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.to_string())
                };
                let (limit, offset) = (param("limit"), param("offset"));
                let base = format!("http://{host}{}", self.config.prefix);
                let gateway = self.clone();
                blocking("api", move || {
                    let images = gateway.gallery_order(&viewer);
                    let request = super::api::ApiRequest {
                        path: &path,
                        base: &base,
                        limit: limit.as_deref(),
                        offset: offset.as_deref(),
                        post: is_post,
                    };
                    match super::api::answer(&request, &images) {
                        Some((status, body)) => super::img_data::typed(
                            status,
                            "application/json",
                            serde_json::to_vec(&body).expect("JSON"),
                        ),
                        None => app::text(404, "There is no page at this address.\n"),
                    }
                })
                .await
            }
            Route::Iviewer => blocking("iviewer page", move || self.iviewer_index(&query)).await,
            Route::IviewerImageData(id) => self.iviewer_image_data(id, &viewer).await,
            Route::IviewerDeltaT(id) => self.iviewer_delta_t(id).await,
            Route::IviewerRoisByPlane(id) => self.iviewer_no_rois(id, false).await,
            Route::IviewerPlaneShapeCounts(id) => self.iviewer_no_rois(id, true).await,
            Route::IviewerIntensity => self.iviewer_intensity(&query).await,
            Route::IviewerShapeStats => super::iviewer_views::shape_stats(&query),
            Route::IviewerWellImages => super::iviewer_views::well_images(&query),
            Route::IviewerReadOnly(view) => super::iviewer_views::read_only(view),
            Route::IviewerRoiLookup(kind, id) => super::iviewer_views::no_such_roi(kind, id),
            Route::OpenWith => super::iviewer::open_with(),
            Route::PathsToObject => {
                let gateway = self.clone();
                blocking("paths to object", move || {
                    gateway.paths_to_object(&query_pairs(&query), &viewer)
                })
                .await
            }
            Route::GatewayIndex => hyper::Response::builder()
                .status(200)
                .header("Content-Type", "text/html; charset=utf-8")
                .body(app::full("Welcome to webgateway"))
                .expect("valid response"),
            // OMERO's list of the image's ROIs: none here (no ROI store), and 404 for
            // an image that is not there.
            Route::Rois(id) => match self.lookup(id).await {
                Some(_) => super::img_data::jsonp_response(
                    &serde_json::json!([]),
                    query_pairs(&query)
                        .iter()
                        .find(|(k, _)| k == "callback")
                        .map(|(_, v)| v.as_str()),
                ),
                None => app::text(404, "Image not found\n"),
            },
            Route::LutsPng => hyper::Response::builder()
                .status(200)
                .header("Content-Type", "image/png")
                .body(app::full(super::imaging::lut::png()))
                .expect("valid response"),
            Route::ClipboardRdef => self.clipboard_rdef(&query).await,
            Route::CopyRdef => self.copy_rdef(is_post, &query, &body).await,
            Route::ResetRdef { to_owners } if is_post => self.reset_rdefs(to_owners, &body).await,
            // OMERO's require_POST.
            Route::SaveRdef(_) | Route::ResetRdef { .. } => hyper::Response::builder()
                .status(405)
                .header("Allow", "POST")
                .body(app::full(Bytes::new()))
                .expect("valid response"),
            Route::Static(rest) => self.static_file(&rest, &conditional),
            Route::NotFound => self.error_page(404, "There is no page at this address."),
        }
    }

    /// OMERO's login URL on a site without sessions: GET shows that no login is
    /// needed (200, as OMERO's form page is), POST goes where OMERO's successful login
    /// would: the `url` parameter when it stays on this site, else the webclient.
    fn login(&self, is_post: bool, query: &str) -> Response {
        let pairs = query_pairs(query);
        let next = pairs
            .iter()
            .find(|(k, _)| k == "url")
            // Only a path on this site: never an open redirect.
            .and_then(|(_, v)| super::auth::login::local_target(v))
            .unwrap_or_else(|| format!("{}/webclient/", self.config.prefix));
        if is_post {
            return redirect(&next);
        }
        html(pages::login_page(
            &self.config.prefix,
            &self.config.static_url,
            &next,
        ))
    }

    /// A styled HTML error page with a way back to the gallery.
    fn error_page(&self, status: u16, message: &str) -> Response {
        hyper::Response::builder()
            .status(status)
            .header("Content-Type", "text/html; charset=utf-8")
            .body(app::full(pages::error_page(
                &self.config.prefix,
                &self.config.static_url,
                status,
                message,
            )))
            .expect("valid response")
    }

    /// `Repository::get` on the blocking pool (an unknown ID may trigger a rescan).
    /// The image's entry and source, opened, or the 404 OMERO's views answer for a
    /// missing or unreadable one.
    pub(super) async fn open_image(
        self: &Arc<Self>,
        id: u64,
    ) -> Result<(ImageEntry, Arc<dyn ImageSource>), Response> {
        let Some(entry) = self.lookup(id).await else {
            return Err(app::text(404, "Image not found\n"));
        };
        let source = self
            .clone()
            .source(&entry)
            .await
            .map_err(|e| app::text(404, format!("Failed to open image: {e}\n")))?;
        Ok((entry, source))
    }

    pub(super) async fn lookup(self: &Arc<Self>, id: u64) -> Option<ImageEntry> {
        let from_guard = GUARD_LOOKED_UP
            .try_with(|entry| entry.clone().filter(|e| e.id == id))
            .ok()
            .flatten();
        if from_guard.is_some() {
            return from_guard;
        }
        let gateway = self.clone();
        crate::http_app::blocking::spawn_blocking(format!("image {id} (lookup)"), move || {
            gateway.repository.get(id)
        })
        .await
        .ok()
        .flatten()
    }

    fn gallery(&self, query: &str, viewer: &super::auth::Viewer) -> Response {
        let pairs = query_pairs(query);
        let param = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let page = param("page").and_then(|v| v.parse().ok()).unwrap_or(1);
        let images = self.gallery_order(viewer);
        html(pages::gallery(
            &self.config.prefix,
            &self.config.static_url,
            &images,
            &pages::GalleryQuery {
                page,
                page_size: self.config.page_size,
                filter: param("q").unwrap_or(""),
                thumbnail_version: &|id| self.thumbnail_version(id),
            },
        ))
    }

    /// The current version of image `id`'s default thumbnail (`thumbnail_version`).
    fn thumbnail_version(&self, id: u64) -> Option<String> {
        let entry = self.repository.get(id)?;
        Some(super::thumbnail_version::of(&entry, &self.viewer_query(id)))
    }

    /// The project and dataset `entry` sits in (its folders).
    pub(super) fn parents(&self, entry: &ImageEntry) -> super::parents::Parents {
        let relative = entry
            .path
            .strip_prefix(self.repository.root())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| entry.name.clone());
        super::parents::Parents::of(&relative)
    }

    /// Every image as (ID, path inside the repository), in the gallery's order: by
    /// path, case-insensitively, so `exp1/cell.tif` and `exp2/cell.tif` are told apart
    /// and listed as a file browser lists them.
    pub(super) fn gallery_order(&self, viewer: &super::auth::Viewer) -> Vec<(u64, String)> {
        let root = self.repository.root().to_path_buf();
        let mut images: Vec<(u64, String)> = self
            .repository
            .list()
            .into_iter()
            .filter(|e| viewer.sees(super::auth::owning_group(&root, &e.path)))
            .map(|e| {
                let relative = e
                    .path
                    .strip_prefix(&root)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or(e.name);
                (e.id, relative)
            })
            .collect();
        images.sort_by(|a, b| {
            a.1.to_lowercase()
                .cmp(&b.1.to_lowercase())
                .then(a.1.cmp(&b.1))
                .then(a.0.cmp(&b.0))
        });
        images
    }

    /// The images before and after `id` in the gallery's order, and the gallery page
    /// that lists it.
    fn neighbours(&self, id: u64, viewer: &super::auth::Viewer) -> pages::Neighbours {
        let ids: Vec<u64> = self.gallery_order(viewer).iter().map(|e| e.0).collect();
        let Some(position) = ids.iter().position(|&i| i == id) else {
            return pages::Neighbours {
                gallery_page: 1,
                ..Default::default()
            };
        };
        pages::Neighbours {
            previous: position.checked_sub(1).map(|p| ids[p]),
            next: ids.get(position + 1).copied(),
            gallery_page: position / self.config.page_size.max(1) + 1,
        }
    }

    async fn viewer(self: Arc<Self>, id: u64, viewer: super::auth::Viewer) -> Response {
        let Some(entry) = self.lookup(id).await else {
            return self.error_page(404, &format!("There is no image with ID {id}."));
        };
        let gateway = self.clone();
        let neighbours =
            crate::http_app::blocking::spawn_blocking("gallery neighbours", move || {
                gateway.neighbours(id, &viewer)
            })
            .await
            .unwrap_or_default();
        let source = match self.clone().source(&entry).await {
            Ok(source) => source,
            Err(e) => {
                return hyper::Response::builder()
                    .status(404)
                    .header("Content-Type", "text/html; charset=utf-8")
                    .body(app::full(pages::image_error_page(
                        &self.config.prefix,
                        &self.config.static_url,
                        404,
                        &format!("Image {id} ({}) cannot be read: {e}", entry.name),
                        Some(&neighbours),
                    )))
                    .expect("valid response");
            }
        };
        let meta = source.meta();
        let defaults = self.saved_settings(id, meta);
        let type_max = meta.pixel_type.max_value() as u32;
        let channels = channel_views(meta, &defaults)
            .into_iter()
            .zip(&meta.channels)
            .map(|(c, m)| {
                // An empty range (a constant channel) gets the pixel type's.
                let (min, max) = if m.min < m.max {
                    (m.min as u32, m.max as u32)
                } else {
                    (0, type_max)
                };
                pages::ViewerChannel {
                    index: c.index,
                    label: viewer_channel_label(&c.label, m, c.index),
                    color: c.color,
                    start: c.start,
                    end: c.end,
                    min,
                    max,
                    active: c.active,
                    file_lut: defaults
                        .channels
                        .get(c.index - 1)
                        .is_some_and(|s| s.file_lut.is_some()),
                }
            })
            .collect();
        html(pages::viewer(
            &self.config.prefix,
            &self.config.static_url,
            &pages::ViewerPage {
                id,
                name: &entry.name,
                width: meta.size_x,
                height: meta.size_y,
                size_z: meta.size_z,
                size_t: meta.size_t,
                default_z: defaults.z,
                default_t: defaults.t,
                color_model: defaults.model == render::Model::Color,
                pixel_size_um: meta.physical_size_um[0].filter(|p| *p > 0.0),
                channels,
                neighbours,
                thumbnail_version: super::thumbnail_version::of(&entry, &self.viewer_query(id)),
                levels: render::resolution_levels(meta),
            },
        ))
    }

    async fn thumbnail(
        self: Arc<Self>,
        id: u64,
        w: Option<u32>,
        h: Option<u32>,
        webclient: bool,
        query: &str,
        conditional: &Conditional,
    ) -> Response {
        let Some(entry) = self.lookup(id).await else {
            return if webclient {
                self.placeholder()
            } else {
                app::text(404, "Failed to render thumbnail\n")
            };
        };
        if let Some(side) = [w, h]
            .into_iter()
            .flatten()
            .find(|&side| side > MAX_THUMBNAIL_SIZE || side == 0)
        {
            return app::text(
                400,
                format!(
                    "thumbnail size {side} is out of range: allowed 1 to {MAX_THUMBNAIL_SIZE}\n"
                ),
            );
        }
        // `?v=` (the gallery's and viewer's versioned URLs) is no render parameter.
        let (version, query) = super::thumbnail_version::split(query);
        let saved = self.viewer_query(id);
        let current = version == Some(super::thumbnail_version::of(&entry, &saved).as_str());
        let validator = Validator::of(
            &entry,
            &format!("thumb/{w:?}/{h:?}/{}/{saved}", normalised_query(&query)),
        );
        if conditional.matches(&validator) {
            return not_modified(&validator);
        }
        match self.thumbnail_jpeg(&entry, w, h, &query).await {
            Ok(jpeg) if current => {
                let mut response = jpeg_response(jpeg, &validator);
                response.headers_mut().insert(
                    hyper::header::CACHE_CONTROL,
                    hyper::header::HeaderValue::from_static(super::thumbnail_version::IMMUTABLE),
                );
                response
            }
            Ok(jpeg) => jpeg_response(jpeg, &validator),
            Err(RenderFailure::BadRequest(message)) => app::text(400, format!("{message}\n")),
            Err(RenderFailure::Failed(_)) if webclient => self.placeholder(),
            Err(RenderFailure::Failed(message)) => {
                app::text(404, format!("Failed to render thumbnail: {message}\n"))
            }
        }
    }

    /// A thumbnail's JPEG: the default size from (and into) the disk cache, any other
    /// size rendered fresh, as OMERO's thumbnail service does.
    pub(super) async fn thumbnail_jpeg(
        self: &Arc<Self>,
        entry: &ImageEntry,
        w: Option<u32>,
        h: Option<u32>,
        query: &str,
    ) -> Result<Bytes, RenderFailure> {
        // The shared cache and the published files hold the owner's rendering only: a
        // viewer with settings of their own gets theirs rendered for them alone.
        let cacheable =
            w.is_none() && h.is_none() && query.is_empty() && !self.has_own_settings(entry.id);
        let saved = self.viewer_query(entry.id);
        let key = CacheKey {
            id: entry.id,
            source_size: entry.size,
            source_modified: entry.modified,
            variant: default_thumbnail_variant(&saved),
        };
        if cacheable && let Some(jpeg) = self.cache.get(&key) {
            self.publish(entry, &jpeg, &saved);
            return Ok(jpeg);
        }
        // Longest side = w; both given = that exact size (OMERO's <w>/<h>/ form).
        let size = match (w, h) {
            (None, _) => render::OutputSize::Fit {
                max_w: DEFAULT_THUMBNAIL_SIZE,
                max_h: DEFAULT_THUMBNAIL_SIZE,
            },
            (Some(w), None) => render::OutputSize::Fit { max_w: w, max_h: w },
            (Some(width), Some(height)) => render::OutputSize::Exact { width, height },
        };
        let jpeg = Bytes::from(
            self.clone()
                .render(entry, query.to_string(), None, None, false, size)
                .await?,
        );
        if cacheable {
            // Writing (and any eviction) off the runtime thread; the response does not
            // wait for it.
            let (gateway, cached) = (self.clone(), jpeg.clone());
            crate::http_app::blocking::spawn_blocking("thumbnail cache write", move || {
                let _ = gateway.cache.put(&key, &cached);
            });
            self.publish(entry, &jpeg, &saved);
        }
        Ok(jpeg)
    }

    /// Publishes a default thumbnail for nginx, if that is on and it is not there yet
    /// (off the runtime thread; the response does not wait).
    /// `saved` is the rendering settings it was drawn with: if they changed meanwhile
    /// (a save or reset raced with it), the file goes again rather than stay stale.
    fn publish(self: &Arc<Self>, entry: &ImageEntry, jpeg: &Bytes, saved: &str) {
        if !self.config.published_thumbnails
            || !self.publishable(entry)
            || self.published.is_current(entry)
        {
            return;
        }
        let (gateway, entry, jpeg) = (self.clone(), entry.clone(), jpeg.clone());
        let saved = saved.to_string();
        crate::http_app::blocking::spawn_blocking(
            format!("image {} (publish)", entry.id),
            move || {
                let version = super::thumbnail_version::of(&entry, &saved);
                let _ = gateway.published.publish(&entry, &jpeg, &version, || {
                    gateway
                        .repository
                        .get(entry.id)
                        .filter(|_| gateway.rdefs.query(entry.id) == saved)
                });
            },
        );
    }

    async fn render_image(
        self: Arc<Self>,
        id: u64,
        z: Option<u32>,
        t: Option<u32>,
        query: &str,
        conditional: &Conditional,
        region_required: bool,
    ) -> Response {
        let Some(entry) = self.lookup(id).await else {
            return app::text(404, "Image not found\n");
        };
        let validator = Validator::of(
            &entry,
            &format!(
                "image/{z:?}/{t:?}/{}/{region_required}/{}",
                normalised_query(query),
                self.viewer_query(id)
            ),
        );
        if conditional.matches(&validator) {
            return not_modified(&validator);
        }
        match self
            .clone()
            .render(
                &entry,
                query.to_string(),
                z,
                t,
                region_required,
                render::OutputSize::Native,
            )
            .await
        {
            Ok(jpeg) => jpeg_response(Bytes::from(jpeg), &validator),
            Err(RenderFailure::BadRequest(message)) => app::text(400, format!("{message}\n")),
            Err(RenderFailure::Failed(message)) => app::text(404, format!("{message}\n")),
        }
    }

    /// Parses the query against the image and renders on the blocking pool.
    pub(super) async fn render(
        self: Arc<Self>,
        entry: &ImageEntry,
        query: String,
        z: Option<u32>,
        t: Option<u32>,
        region_required: bool,
        size: render::OutputSize,
    ) -> Result<Vec<u8>, RenderFailure> {
        let source = self
            .clone()
            .source(entry)
            .await
            .map_err(RenderFailure::Failed)?;
        let limits = self.config.render_limits();
        let query = super::rdefs::over_saved(&query, &self.viewer_query(entry.id));
        crate::http_app::blocking::spawn_blocking(
            format!("image {} (render)", entry.id),
            move || {
                render_jpeg(
                    source.as_ref(),
                    &query,
                    z,
                    t,
                    region_required,
                    size,
                    &limits,
                )
            },
        )
        .await
        .unwrap_or_else(|e| Err(RenderFailure::Failed(format!("rendering panicked: {e}"))))
    }

    /// An opened image, from the worker's small cache of sources (opening computes
    /// each channel's min/max, so it is worth keeping).
    pub(super) async fn source(
        self: Arc<Self>,
        entry: &ImageEntry,
    ) -> Result<Arc<dyn ImageSource>, String> {
        let fingerprint = (entry.id, entry.size, entry.modified);
        if let Some(source) = self.sources.lock().expect("sources lock").get(&fingerprint) {
            return Ok(source);
        }
        let path = entry.path.clone();
        let mut limits = self.config.source_limits();
        limits.within = Some(self.repository.canonical_root());
        let opened = crate::http_app::blocking::spawn_blocking(
            format!("image {} (open)", entry.id),
            move || super::imaging::source::open(&path, &limits),
        )
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| self.without_server_paths(&e.to_string()))?;
        let source: Arc<dyn ImageSource> = Arc::from(opened);
        self.sources
            .lock()
            .expect("sources lock")
            .put(fingerprint, source.clone());
        Ok(source)
    }

    /// The saved render query this request's viewer sees image `id` with: their own
    /// (a logged-in user's), else the owner's, else "" (`rdefs::RdefStore::query_for`).
    pub(super) fn viewer_query(&self, id: u64) -> String {
        self.rdefs.query_for(id, rdef_user().as_deref())
    }

    /// Whether this request's viewer renders image `id` otherwise than its owner: a
    /// set of their own that is not a copy of the owner's.
    pub(super) fn has_own_settings(&self, id: u64) -> bool {
        rdef_user()
            .and_then(|user| self.rdefs.user_query(id, &user))
            .is_some_and(|own| own != self.rdefs.query(id))
    }

    /// Image `id`'s rendering settings as this request's viewer saved them
    /// (`saveImgRDef`), else the owner's, else its imported defaults: what the viewer
    /// and imgData start from.
    pub(super) fn saved_settings(&self, id: u64, meta: &ImageMeta) -> render::RenderSettings {
        render_query::parse_query(&self.viewer_query(id), meta)
            .map(|request| request.settings)
            .unwrap_or_else(|_| render::RenderSettings::defaults(meta))
    }

    /// An error message as clients may see it: the source's errors name the file by
    /// its absolute path (right for the log), but pages and JSON show only the path
    /// inside the repository, never where the server keeps it.
    fn without_server_paths(&self, message: &str) -> String {
        // The canonical root (what entries' paths start with) and the configured one.
        let mut message = message.to_string();
        for root in [self.repository.root(), self.config.repository.as_path()] {
            let root = root.display().to_string();
            let root = root.trim_end_matches('/');
            if !root.is_empty() {
                message = message
                    .replace(&format!("{root}/"), "")
                    .replace(root, "the repository");
            }
        }
        message
    }

    /// `archived_files/download/`: one image's file, or a zip of `?image=` IDs. As
    /// OMERO's `getObjects` does, IDs that are missing or that `viewer` may not see
    /// are left out alike; when none is left, OMERO's "Images not found" 500.
    fn download(&self, id: Option<u64>, query: &str, viewer: &super::auth::Viewer) -> Response {
        if !self.config.downloads_allowed {
            // OMERO: canDownload() false → 404 with an empty body.
            return empty(404);
        }
        let mut ids: Vec<u64> = match id {
            Some(id) => vec![id],
            None => query_pairs(query)
                .iter()
                .filter(|(k, _)| k == "image")
                .filter_map(|(_, v)| v.parse().ok())
                .collect(),
        };
        // Each image once, in the order first asked for: `?image=1&image=1&…` must not
        // turn a short request into an answer as large as the repetitions.
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        if ids.is_empty() {
            return app::text(
                500,
                "No images or wells specified in request. Use ?image=123 or ?well=123\n",
            );
        }
        let entries: Vec<_> = ids
            .iter()
            .filter(|id| self.viewer_sees(viewer, **id))
            .filter_map(|id| self.repository.get(*id))
            .collect();
        if entries.is_empty() {
            // Python's repr of the list of strings OMERO was given.
            let asked: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
            return app::text(
                500,
                format!(
                    "Cannot download archived file because Images not found (ids: [{}])\n",
                    asked.join(", ")
                ),
            );
        }
        if let [entry] = entries.as_slice() {
            return match super::download::stream_file(
                &entry.path,
                Some(&self.repository.canonical_root()),
                self.config.chunk_size,
            ) {
                Ok((len, body)) => hyper::Response::builder()
                    .status(200)
                    .header("Content-Type", "application/force-download")
                    .header("Content-Length", len)
                    .header(
                        "Content-Disposition",
                        super::download::content_disposition(&entry.name),
                    )
                    .body(body)
                    .expect("valid response"),
                // The id and the file's name, not the error's absolute path.
                Err(e) => app::text(
                    500,
                    format!(
                        "Cannot download file (id:{}, {}): {}\n",
                        entry.id,
                        super::imaging::source::shown(&entry.path),
                        e.kind()
                    ),
                ),
            };
        }
        let total: u64 = entries.iter().map(|e| e.size).sum();
        if total > self.config.maximum_multifile_download_size {
            let message = super::download::too_large_message(
                total,
                self.config.maximum_multifile_download_size,
            );
            return app::text(403, format!("{message}\n"));
        }
        let members: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        let name = query_pairs(query)
            .into_iter()
            .find(|(k, _)| k == "zipname")
            .map(|(_, v)| format!("{v}.zip"))
            .unwrap_or_else(|| {
                super::download::zip_name(&entries.last().expect("two or more").name, &members)
            });
        let files = entries.into_iter().map(|e| (e.name, e.path)).collect();
        hyper::Response::builder()
            .status(200)
            .header("Content-Type", "application/force-download")
            // Sanitised: `zipname` comes from the query string.
            .header(
                "Content-Disposition",
                super::download::content_disposition(&name),
            )
            .body(super::download::stream_zip(
                files,
                Some(self.repository.canonical_root()),
                self.config.chunk_size,
            ))
            .expect("valid response")
    }

    fn static_file(&self, relative: &str, conditional: &Conditional) -> Response {
        let Some(path) = static_files::resolve(&self.config.static_root, relative) else {
            return app::text(404, "Not Found\n");
        };
        // Only a regular file (a FIFO planted in static_root must not hang a thread).
        let mut bytes = Vec::new();
        let read = crate::fsutil::open_regular(&path)
            .and_then(|mut file| std::io::Read::read_to_end(&mut file, &mut bytes));
        if read.is_err() {
            return app::text(404, "Not Found\n");
        }
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let validator = Validator {
            etag: format!("\"s-{:x}-{:x}\"", bytes.len(), unix_secs(modified)),
            modified,
        };
        if conditional.matches(&validator) {
            return not_modified(&validator);
        }
        hyper::Response::builder()
            .status(200)
            .header("Content-Type", static_files::content_type(&path))
            .header("ETag", &validator.etag)
            .header("Last-Modified", httpdate::fmt_http_date(validator.modified))
            .body(app::full(bytes))
            .expect("valid response")
    }

    /// OMERO's webclient answers a missing thumbnail with a placeholder image.
    pub(super) fn placeholder(&self) -> Response {
        hyper::Response::builder()
            .status(200)
            .header("Content-Type", "image/jpeg")
            .body(app::full(self.placeholder.clone()))
            .expect("valid response")
    }
}

/// Runs a handler that touches the filesystem on the blocking pool, counted under
/// `label` (what it works on, as the operator names it: never a file path).
pub(super) async fn blocking(
    label: impl Into<String>,
    handler: impl FnOnce() -> Response + Send + 'static,
) -> Response {
    crate::http_app::blocking::spawn_blocking(label, handler)
        .await
        .unwrap_or_else(|e| app::text(500, format!("internal error: {e}\n")))
}

/// Renders a plane (or region) of `source` as the query asks, to JPEG: the work behind
/// every image route, and behind the thumbnails published ahead of requests.
pub(super) fn render_jpeg(
    source: &dyn ImageSource,
    query: &str,
    z: Option<u32>,
    t: Option<u32>,
    region_required: bool,
    size: render::OutputSize,
    limits: &render::RenderLimits,
) -> Result<Vec<u8>, RenderFailure> {
    let mut request = render_query::parse_query(query, source.meta())
        .map_err(|e| RenderFailure::BadRequest(e.0))?;
    request
        .set_plane(z, t, source.meta())
        .map_err(|e| RenderFailure::BadRequest(e.0))?;
    if region_required && request.region.is_none() {
        return Err(RenderFailure::BadRequest(
            "tile or region argument required".into(),
        ));
    }
    let image = render::render_rgb(source, &request, size, limits).map_err(|e| match e {
        render::RenderError::Invalid(m) | render::RenderError::TooLarge(m) => {
            RenderFailure::BadRequest(m)
        }
        other => RenderFailure::Failed(other.to_string()),
    })?;
    encode::encode_jpeg(&image, request.settings.quality)
        .map_err(|e| RenderFailure::Failed(e.to_string()))
}

#[derive(Debug)]
pub(super) enum RenderFailure {
    BadRequest(String),
    Failed(String),
}

/// One channel as the viewer page shows it.
struct ChannelView {
    index: usize,
    label: String,
    color: String,
    start: u32,
    end: u32,
    active: bool,
}

fn channel_views(meta: &ImageMeta, settings: &render::RenderSettings) -> Vec<ChannelView> {
    meta.channels
        .iter()
        .zip(&settings.channels)
        .enumerate()
        .map(|(i, (m, s))| ChannelView {
            index: i + 1,
            label: super::img_data::channel_label(m, i),
            color: format!("{:02X}{:02X}{:02X}", s.color[0], s.color[1], s.color[2]),
            start: s.start as u32,
            end: s.end as u32,
            active: s.active,
        })
        .collect()
}

/// The viewer's name for a channel: imgData's label (OMERO's), except that a channel
/// with neither a name nor a wavelength, which OMERO labels with its 0-based index, is
/// "Channel n" (1-based, as the `c` parameter counts).
fn viewer_channel_label(
    label: &str,
    meta: &super::imaging::source::ChannelMeta,
    index: usize,
) -> String {
    let named = meta.name.as_deref().is_some_and(|n| !n.trim().is_empty());
    if named || meta.emission_nm.is_some() {
        label.to_string()
    } else {
        format!("Channel {index}")
    }
}

/// The query as the renderer reads it: decoded, so that `%7C` and `|` (or `%24` and
/// `$`) give one ETag for one image.
fn normalised_query(query: &str) -> String {
    format!("{:?}", query_pairs(query))
}

/// The favicon: a cell (a green disc with a nucleus) on OMERO blue, drawn here and
/// served as an ICO holding one 32×32 PNG.
fn favicon_ico() -> &'static [u8] {
    static ICO: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ICO.get_or_init(|| {
        const SIDE: u32 = 32;
        let mut rgba = Vec::with_capacity((SIDE * SIDE * 4) as usize);
        for y in 0..SIDE {
            for x in 0..SIDE {
                let (dx, dy) = (x as f32 - 15.5, y as f32 - 15.5);
                let r = (dx * dx + dy * dy).sqrt();
                let (nx, ny) = (x as f32 - 13.0, y as f32 - 14.0);
                let nucleus = (nx * nx + ny * ny).sqrt();
                let pixel = if nucleus < 5.0 {
                    [0x3d, 0x7b, 0xff, 0xff]
                } else if r < 12.5 {
                    [0x46, 0xc8, 0x5a, 0xff]
                } else {
                    [0x29, 0x43, 0x5c, 0xff]
                };
                rgba.extend_from_slice(&pixel);
            }
        }
        let mut png_bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut png_bytes, SIDE, SIDE);
            encoder.set_color(png::ColorType::Rgba);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().expect("PNG header in memory");
            writer.write_image_data(&rgba).expect("PNG data in memory");
        }
        // ICONDIR (reserved, type 1 = icon, one image) and its ICONDIRENTRY.
        let mut ico = vec![0, 0, 1, 0, 1, 0];
        ico.extend_from_slice(&[SIDE as u8, SIDE as u8, 0, 0, 1, 0, 32, 0]);
        ico.extend_from_slice(&(png_bytes.len() as u32).to_le_bytes());
        ico.extend_from_slice(&22u32.to_le_bytes());
        ico.extend_from_slice(&png_bytes);
        ico
    })
}

fn favicon(conditional: &Conditional) -> Response {
    let bytes = favicon_ico();
    let validator = Validator {
        etag: format!("\"favicon-{:08x}\"", crc32fast::hash(bytes)),
        modified: SystemTime::UNIX_EPOCH,
    };
    if conditional.matches(&validator) {
        return not_modified(&validator);
    }
    hyper::Response::builder()
        .status(200)
        .header("Content-Type", "image/x-icon")
        .header("ETag", &validator.etag)
        .header("Cache-Control", "public, max-age=86400")
        .body(app::full(Bytes::from_static(bytes)))
        .expect("valid response")
}

/// ETag and Last-Modified of a response derived from a source file.
struct Validator {
    etag: String,
    modified: SystemTime,
}

impl Validator {
    /// The same tag the thumbnail cache uses: image, file version, variant, and our
    /// version (a new renderer must not be answered with a 304).
    fn of(entry: &ImageEntry, variant: &str) -> Validator {
        Validator {
            etag: super::cache::etag(&CacheKey::new(entry, variant)),
            modified: entry.modified,
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The request's If-None-Match / If-Modified-Since.
pub(super) struct Conditional {
    if_none_match: Option<String>,
    if_modified_since: Option<SystemTime>,
}

impl Conditional {
    fn from_request(request: &Request) -> Conditional {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Conditional {
            if_none_match: header("if-none-match"),
            if_modified_since: header("if-modified-since")
                .and_then(|v| httpdate::parse_http_date(&v).ok()),
        }
    }

    /// RFC 9110: If-None-Match wins over If-Modified-Since.
    fn matches(&self, v: &Validator) -> bool {
        match (&self.if_none_match, self.if_modified_since) {
            (Some(tags), _) => super::cache::etag_matches(tags, &v.etag),
            (None, Some(since)) => unix_secs(v.modified) <= unix_secs(since),
            (None, None) => false,
        }
    }
}

fn not_modified(v: &Validator) -> Response {
    hyper::Response::builder()
        .status(304)
        .header("ETag", &v.etag)
        .header("Last-Modified", httpdate::fmt_http_date(v.modified))
        .body(app::full(Bytes::new()))
        .expect("valid response")
}

fn jpeg_response(jpeg: Bytes, v: &Validator) -> Response {
    hyper::Response::builder()
        .status(200)
        .header("Content-Type", "image/jpeg")
        .header("ETag", &v.etag)
        .header("Last-Modified", httpdate::fmt_http_date(v.modified))
        .header("Cache-Control", "private, max-age=0, must-revalidate")
        .body(app::full(jpeg))
        .expect("valid response")
}

fn html(body: String) -> Response {
    hyper::Response::builder()
        .status(200)
        .header("Content-Type", "text/html; charset=utf-8")
        .body(app::full(body))
        .expect("valid response")
}

fn empty(status: u16) -> Response {
    hyper::Response::builder()
        .status(status)
        .body(app::full(Bytes::new()))
        .expect("valid response")
}

pub(super) fn redirect(location: &str) -> Response {
    hyper::Response::builder()
        .status(302)
        .header("Location", location)
        .body(app::full(Bytes::new()))
        .expect("valid redirect")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omero_url_shapes_route() {
        let cases = [
            ("/", Route::Root),
            ("/favicon.ico", Route::Favicon),
            ("/webclient/", Route::Gallery),
            ("/webgateway/img_detail/5/", Route::Viewer(5)),
            ("/webclient/img_detail/5/", Route::Viewer(5)),
            ("/webclient/login/", Route::Login),
            ("/webclient/keepalive_ping/", Route::KeepalivePing),
            ("/webclient/login/extra/", Route::NotFound),
            ("/webgateway/saveImgRDef/4/", Route::SaveRdef(4)),
            ("/webgateway/get_image_rdefs_json/4/", Route::ImageRdefs(4)),
            ("/webgateway/getImgRDef/", Route::ClipboardRdef),
            ("/webgateway/luts/", Route::Luts),
            ("/webgateway/", Route::GatewayIndex),
            ("/webgateway/get_rois_json/3/", Route::Rois(3)),
            ("/webgateway/luts_png/", Route::LutsPng),
            ("/webgateway/copyImgRDef/", Route::CopyRdef),
            (
                "/webgateway/resetRDef/",
                Route::ResetRdef { to_owners: false },
            ),
            (
                "/webgateway/applyOwnersRDef/",
                Route::ResetRdef { to_owners: true },
            ),
            ("/webgateway/saveImgRDef/x/", Route::NotFound),
            ("/iviewer/image_data/7/delta_t/", Route::IviewerDeltaT(7)),
            (
                "/iviewer/rois_by_plane/7/0/0/",
                Route::IviewerRoisByPlane(7),
            ),
            (
                "/iviewer/rois_by_plane/7/0-4/1:2-3/",
                Route::IviewerRoisByPlane(7),
            ),
            ("/iviewer/rois_by_plane/7/x/0/", Route::NotFound),
            (
                "/iviewer/plane_shape_counts/7/",
                Route::IviewerPlaneShapeCounts(7),
            ),
            ("/iviewer/get_intensity/", Route::IviewerIntensity),
            ("/iviewer/shape_stats/", Route::IviewerShapeStats),
            ("/iviewer/well_images/", Route::IviewerWellImages),
            (
                "/iviewer/persist_rois",
                Route::IviewerReadOnly("persist_rois"),
            ),
            (
                "/iviewer/save_projection/",
                Route::IviewerReadOnly("save_projection"),
            ),
            (
                "/iviewer/roi/5/page_data/",
                Route::IviewerRoiLookup("roi", 5),
            ),
            (
                "/iviewer/shape/6/image_data/",
                Route::IviewerRoiLookup("shape", 6),
            ),
            ("/iviewer/shape/x/page_data/", Route::NotFound),
            ("/iviewer/label/6/page_data/", Route::NotFound),
            (
                "/webgateway/render_thumbnail/3/",
                Route::Thumbnail {
                    id: 3,
                    w: None,
                    h: None,
                    webclient: false,
                },
            ),
            (
                "/webgateway/render_thumbnail/3/64/",
                Route::Thumbnail {
                    id: 3,
                    w: Some(64),
                    h: None,
                    webclient: false,
                },
            ),
            (
                "/webgateway/render_thumbnail/3/64/32/",
                Route::Thumbnail {
                    id: 3,
                    w: Some(64),
                    h: Some(32),
                    webclient: false,
                },
            ),
            (
                "/webclient/render_thumbnail/3/",
                Route::Thumbnail {
                    id: 3,
                    w: None,
                    h: None,
                    webclient: true,
                },
            ),
            (
                "/webclient/render_thumbnail/size/120/3/",
                Route::Thumbnail {
                    id: 3,
                    w: Some(120),
                    h: None,
                    webclient: true,
                },
            ),
            (
                "/webgateway/render_image/3/",
                Route::RenderImage {
                    id: 3,
                    z: None,
                    t: None,
                },
            ),
            (
                "/webgateway/render_image/3/2/",
                Route::RenderImage {
                    id: 3,
                    z: Some(2),
                    t: None,
                },
            ),
            (
                "/webgateway/render_image/3/2/1/",
                Route::RenderImage {
                    id: 3,
                    z: Some(2),
                    t: Some(1),
                },
            ),
            (
                "/webgateway/render_image_region/3/0/0/",
                Route::RenderRegion { id: 3, z: 0, t: 0 },
            ),
            (
                "/webgateway/imgData/3/",
                Route::ImgData { id: 3, key: None },
            ),
            (
                "/webgateway/archived_files/download/3/",
                Route::Download(Some(3)),
            ),
            (
                "/webgateway/archived_files/download/",
                Route::Download(None),
            ),
            (
                "/static/webclient/viewer.js",
                Route::Static("webclient/viewer.js".into()),
            ),
            ("/webgateway/render_thumbnail/abc/", Route::NotFound),
            ("/webgateway/render_image/3/x/", Route::NotFound),
            ("/webgateway/render_image_region/3/0/", Route::NotFound),
            ("/elsewhere/", Route::NotFound),
        ];
        for (path, expected) in cases {
            assert_eq!(route(path, "/static/"), expected, "{path}");
        }
    }

    #[test]
    fn equivalent_queries_share_one_etag_key() {
        assert_eq!(
            normalised_query("c=1%7C0:255%24FF0000&m=g"),
            normalised_query("c=1|0:255$FF0000&m=g")
        );
        assert_ne!(normalised_query("m=g"), normalised_query("m=c"));
        // A decoded "&" cannot pose as a separator.
        assert_ne!(normalised_query("a=1%26b=2"), normalised_query("a=1&b=2"));
    }

    #[test]
    fn favicon_is_an_ico_holding_a_png() {
        let ico = favicon_ico();
        assert_eq!(&ico[..6], &[0, 0, 1, 0, 1, 0]);
        assert_eq!(&ico[22..30], b"\x89PNG\r\n\x1a\n");
        let len = u32::from_le_bytes(ico[14..18].try_into().unwrap()) as usize;
        assert_eq!(ico.len(), 22 + len);
    }

    #[test]
    fn viewer_names_unnamed_channels_from_one() {
        let channel = super::super::imaging::source::ChannelMeta {
            name: None,
            color: None,
            emission_nm: None,
            min: 0,
            max: 1,
            lut: None,
            display_range: None,
        };
        assert_eq!(viewer_channel_label("0", &channel, 1), "Channel 1");
        let named = super::super::imaging::source::ChannelMeta {
            name: Some("DAPI".into()),
            ..channel
        };
        assert_eq!(viewer_channel_label("DAPI", &named, 1), "DAPI");
    }

    #[test]
    fn queries_are_percent_decoded() {
        assert_eq!(
            query_pairs("c=1%7C100:505%240000FF,-2&m=c&x"),
            vec![
                ("c".to_string(), "1|100:505$0000FF,-2".to_string()),
                ("m".to_string(), "c".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert_eq!(
            query_pairs("a=%zz%4"),
            vec![("a".to_string(), "%zz%4".to_string())]
        );
    }
}
