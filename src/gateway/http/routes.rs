//! The URL table: OMERO.web's URL shapes (webgateway, webclient, OMERO.iviewer, the
//! JSON API, /static/) parsed into a `Route`; `serve` dispatches each to its view.

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
    /// `webclient/logout/` (see `http::login`).
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
        axis: crate::gateway::imaging::plots::Axis,
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
    /// asks (`gateway::http::iviewer`).
    Iviewer,
    IviewerImageData(u64),
    /// iviewer's views about ROIs, time and wells, answered as for an image with none
    /// (`gateway::http::iviewer`): `image_data/<id>/delta_t/`, `rois_by_plane/<id>/<z>/<t>/`,
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
                        crate::gateway::imaging::plots::Axis::Row
                    } else {
                        crate::gateway::imaging::plots::Axis::Column
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
}
