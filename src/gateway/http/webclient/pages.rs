//! The small webclient: a gallery of thumbnails (paged by `omero.web.page_size`,
//! filtered by name) and an image viewer (per-channel controls, Z/T, zoom and pan over
//! `render_image_region` tiles, a scale bar, the view state in the URL), plus the
//! styled error page. Plain server-side HTML whose behaviour lives in
//! `static/webclient/*.js`; every value from a file name is escaped.

/// Side of the longest edge above which the viewer never asks for the full plane: it
/// shows a scaled overview (a thumbnail of at most this size) and full-resolution
/// tiles of the part in view. The thumbnail routes allow up to this size.
/// The same size above which images have lower resolution levels: a big image's
/// viewer moves from the overview to tiles of the level it shows.
pub const OVERVIEW_MAX: u32 = crate::gateway::imaging::render::LEVELS_ABOVE;
/// Side of the viewer's square `render_image_region` tiles.
pub const TILE_SIZE: u32 = 512;

/// One channel as the viewer's controls need it.
pub struct ViewerChannel {
    /// 1-based, as in the `c` parameter.
    pub index: usize,
    pub label: String,
    /// `RRGGBB`.
    pub color: String,
    /// The default window.
    pub start: u32,
    pub end: u32,
    /// The channel's pixel range: the window sliders' bounds.
    pub min: u32,
    pub max: u32,
    pub active: bool,
    /// Drawn through the file's own table (an ImageJ LUT): the viewer sends no colour
    /// for it until one is picked.
    pub file_lut: bool,
}

/// Where the viewer's "previous", "next" and "gallery" links go.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Neighbours {
    pub previous: Option<u64>,
    pub next: Option<u64>,
    /// The gallery page that lists this image (1-based).
    pub gallery_page: usize,
}

pub struct ViewerPage<'a> {
    pub id: u64,
    pub name: &'a str,
    pub width: u32,
    pub height: u32,
    pub size_z: u32,
    pub size_t: u32,
    pub default_z: u32,
    pub default_t: u32,
    /// True for OMERO's colour model, false for greyscale.
    pub color_model: bool,
    /// Micrometres per pixel along X, when the metadata gives it.
    pub pixel_size_um: Option<f64>,
    pub channels: Vec<ViewerChannel>,
    pub neighbours: Neighbours,
    /// The default thumbnail's version (`thumbnail_version`): the overview's URL
    /// carries it, so the browser keeps the overview while the image is unchanged.
    pub thumbnail_version: String,
    /// Resolution levels `tile=` serves (`render::resolution_levels`).
    pub levels: u32,
}

/// What the gallery shows: a page of the images whose names match the filter.
pub struct GalleryQuery<'a> {
    /// 1-based.
    pub page: usize,
    pub page_size: usize,
    /// The name filter (`?q=`), case-insensitive substring; empty for all.
    pub filter: &'a str,
    /// The version of an image's default thumbnail (`thumbnail_version`), for URLs a
    /// browser may keep; `None` leaves the URL unversioned (revalidated each time).
    pub thumbnail_version: &'a dyn Fn(u64) -> Option<String>,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// "1 channel", "3 channels".
fn count(n: u32, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The page every HTML view draws (the webclient's and the login views'): the
/// site's stylesheet and icon, a header linking the gallery, `body`, then `scripts`.
pub fn page(prefix: &str, static_url: &str, title: &str, body: &str, scripts: &[&str]) -> String {
    let scripts: String = scripts
        .iter()
        .map(|s| format!("<script src=\"{static_url}webclient/{s}\"></script>\n"))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title} · OMERO.web</title>\n<link rel=\"icon\" href=\"{static_url}webclient/favicon.svg\" type=\"image/svg+xml\">\n<link rel=\"stylesheet\" href=\"{static_url}webclient/webclient.css\">\n</head>\n<body>\n<header><h1><a href=\"{prefix}/webclient/\">OMERO.web</a></h1><span class=\"title\">{title}</span></header>\n<main>\n{body}</main>\n{scripts}</body>\n</html>\n",
        title = escape(title),
    )
}

/// The gallery: `images` are (id, path inside the repository) in the gallery's order;
/// the filter matches the whole path, so `?q=exp1` finds everything under `exp1/`.
pub fn gallery(
    prefix: &str,
    static_url: &str,
    images: &[(u64, String)],
    query: &GalleryQuery,
) -> String {
    let needle = query.filter.trim().to_lowercase();
    let matching: Vec<&(u64, String)> = images
        .iter()
        .filter(|(_, name)| needle.is_empty() || name.to_lowercase().contains(&needle))
        .collect();
    let page_size = query.page_size.max(1);
    let pages = matching.len().div_ceil(page_size).max(1);
    let page_number = query.page.clamp(1, pages);
    let filter_param = if needle.is_empty() {
        String::new()
    } else {
        format!(
            "&amp;q={}",
            crate::gateway::query::encode(query.filter.trim())
        )
    };
    let mut body = String::new();
    if images.is_empty() {
        body.push_str("<p class=\"empty\">No images in the repository yet. Run <code>omero-webctl demo</code> or copy TIFF, PNG or JPEG files into it.</p>\n");
        return page(prefix, static_url, "Gallery", &body, &[]);
    }
    body.push_str(&format!(
        "<form class=\"filter\" method=\"get\" action=\"{prefix}/webclient/\" role=\"search\"><input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"Filter by name or folder\" aria-label=\"Filter by name or folder\"><button type=\"submit\">Filter</button>{}</form>\n",
        escape(query.filter.trim()),
        if needle.is_empty() {
            String::new()
        } else {
            format!("<a href=\"{prefix}/webclient/\">show all</a>")
        }
    ));
    if matching.is_empty() {
        body.push_str(&format!(
            "<p class=\"empty\">No image name contains “{}”.</p>\n",
            escape(query.filter.trim())
        ));
        return page(prefix, static_url, "Gallery", &body, &[]);
    }
    let summary = if needle.is_empty() {
        count(matching.len() as u32, "image")
    } else {
        format!(
            "{} of {}",
            count(matching.len() as u32, "image"),
            images.len()
        )
    };
    body.push_str(&format!(
        "<p class=\"summary\">{summary} · page {page_number} of {pages}</p>\n<ul class=\"gallery\">\n"
    ));
    let shown = matching
        .iter()
        .skip((page_number - 1) * page_size)
        .take(page_size);
    for (id, path) in shown {
        // The file name on the card, its folder above it: two `cell.tif` from two
        // experiments are told apart at a glance.
        let (folder, name) = match path.rsplit_once('/') {
            Some((folder, name)) => (format!("{folder}/"), name),
            None => (String::new(), path.as_str()),
        };
        let folder_line = if folder.is_empty() {
            String::new()
        } else {
            format!("<span class=\"folder\">{}</span>", escape(&folder))
        };
        let title = escape(path);
        let name = escape(name);
        // The 2x source serves high-density screens; the dimensions line is filled in
        // by gallery.js from imgData. Versioned URLs change with the image and its
        // saved settings, so the browser keeps them instead of revalidating.
        let version = (query.thumbnail_version)(*id)
            .map(|v| format!("?{}={v}", crate::gateway::thumbnail_version::PARAM))
            .unwrap_or_default();
        body.push_str(&format!(
            "<li title=\"{title}\"><a href=\"{prefix}/webclient/img_detail/{id}/\"><img src=\"{prefix}/webclient/render_thumbnail/{id}/{version}\" alt=\"{title}\" srcset=\"{prefix}/webclient/render_thumbnail/size/192/{id}/{version} 2x\" width=\"96\" height=\"96\" loading=\"lazy\">{folder_line}<span class=\"name\">{name}</span><span class=\"dims\" data-img-data=\"{prefix}/webgateway/imgData/{id}/size/\"></span></a></li>\n"
        ));
    }
    body.push_str("</ul>\n<nav class=\"pager\">");
    if page_number > 1 {
        body.push_str(&format!(
            "<a href=\"?page={}{filter_param}\" rel=\"prev\">&larr; previous</a>",
            page_number - 1
        ));
    }
    if page_number < pages {
        body.push_str(&format!(
            "<a href=\"?page={}{filter_param}\" rel=\"next\">next &rarr;</a>",
            page_number + 1
        ));
    }
    body.push_str("</nav>\n");
    page(prefix, static_url, "Gallery", &body, &["gallery.js"])
}

/// True when the viewer must not load the whole plane at once.
pub fn is_big(width: u32, height: u32) -> bool {
    width.max(height) > OVERVIEW_MAX
}

/// The "gallery", "previous" and "next" links of an image's page (the viewer's, and
/// the error page of an image that cannot be read, so that is no dead end).
fn image_nav(prefix: &str, n: &Neighbours) -> String {
    let mut nav = format!(
        "<nav class=\"image-nav\"><a id=\"to-gallery\" href=\"{prefix}/webclient/?page={}\">&larr; gallery</a>",
        n.gallery_page.max(1)
    );
    for (rel, id, text) in [
        ("prev", n.previous, "&lsaquo; previous"),
        ("next", n.next, "next &rsaquo;"),
    ] {
        match id {
            Some(id) => nav.push_str(&format!(
                "<a id=\"{rel}-image\" rel=\"{rel}\" href=\"{prefix}/webclient/img_detail/{id}/\">{text}</a>"
            )),
            None => nav.push_str(&format!("<span class=\"disabled\">{text}</span>")),
        }
    }
    nav.push_str("</nav>\n");
    nav
}

/// The viewer of one image. The page carries the image's facts and defaults in
/// data- attributes; viewer.js builds the view from them and from the URL's state.
pub fn viewer(prefix: &str, static_url: &str, v: &ViewerPage) -> String {
    let mut controls = image_nav(prefix, &v.neighbours);
    let scale = v
        .pixel_size_um
        .map(|p| format!(" · {p} µm/px"))
        .unwrap_or_default();
    controls.push_str(&format!(
        "<h2 class=\"image-name\" title=\"{name}\">{name}</h2>\n<p class=\"dims\">{w} × {h} px · {z} · {t} · {c}{scale}</p>\n",
        name = escape(v.name),
        w = v.width,
        h = v.height,
        z = if v.size_z == 1 { "1 Z-plane".to_string() } else { format!("{} Z-planes", v.size_z) },
        t = count(v.size_t, "timepoint"),
        c = count(v.channels.len() as u32, "channel"),
    ));
    // Z and T as OMERO shows them: 1-based, "n / N"; no slider for a single plane.
    for (axis, size, default) in [("z", v.size_z, v.default_z), ("t", v.size_t, v.default_t)] {
        if size > 1 {
            controls.push_str(&format!(
                "<label class=\"plane\">{label} <input id=\"{axis}\" type=\"range\" min=\"0\" max=\"{max}\" value=\"{default}\"> <output id=\"{axis}-value\">{shown} / {size}</output></label>\n",
                label = axis.to_uppercase(),
                max = size - 1,
                shown = default + 1,
            ));
        }
    }
    let (grey, colour) = if v.color_model {
        ("", " checked")
    } else {
        (" checked", "")
    };
    controls.push_str(&format!(
        "<fieldset class=\"model\"><legend>Rendering</legend><label><input type=\"radio\" name=\"model\" value=\"g\"{grey}> greyscale</label> <label><input type=\"radio\" name=\"model\" value=\"c\"{colour}> colour</label></fieldset>\n<ul class=\"channels\">\n"
    ));
    for ch in &v.channels {
        let (lo, hi) = (ch.min.min(ch.start), ch.max.max(ch.end));
        controls.push_str(&format!(
            "<li class=\"channel\" data-index=\"{i}\" data-start=\"{start}\" data-end=\"{end}\" data-color=\"{color}\"{file_lut}><label class=\"channel-name\"><input class=\"channel-active\" type=\"checkbox\"{checked}> <span class=\"swatch\"></span> <span class=\"label\" title=\"{label}\">{label}</span></label> <input class=\"channel-color\" type=\"color\" value=\"#{color}\" aria-label=\"colour of {label}\"><div class=\"window\"><canvas class=\"histogram\" hidden aria-label=\"{label} histogram\"></canvas><input class=\"window-start\" type=\"range\" min=\"{lo}\" max=\"{hi}\" value=\"{start}\" aria-label=\"{label} window start\"><input class=\"window-end\" type=\"range\" min=\"{lo}\" max=\"{hi}\" value=\"{end}\" aria-label=\"{label} window end\"><output class=\"window-value\">{start}–{end}</output><input class=\"window-start-number\" type=\"number\" step=\"1\" value=\"{start}\" aria-label=\"{label} window start value\"><input class=\"window-end-number\" type=\"number\" step=\"1\" value=\"{end}\" aria-label=\"{label} window end value\"><button type=\"button\" class=\"window-auto\" title=\"window from the plane's histogram: 0.1 % to 99.9 % of its pixels\">auto</button></div></li>\n",
            i = ch.index,
            start = ch.start,
            end = ch.end,
            color = escape(&ch.color),
            checked = if ch.active { " checked" } else { "" },
            label = escape(&ch.label),
            file_lut = if ch.file_lut { " data-file-lut=\"1\"" } else { "" },
        ));
    }
    controls.push_str("</ul>\n<p class=\"histogram-controls\"><label><input type=\"checkbox\" id=\"histogram-show\"> histogram</label> <label><input type=\"checkbox\" id=\"histogram-log\"> log scale</label></p>\n");
    controls.push_str(&format!(
        "<p class=\"links\"><a id=\"share-link\" href=\"\">link to this view</a> · <a id=\"reset-view\" href=\"{prefix}/webclient/img_detail/{id}/\">reset</a> · <a href=\"{prefix}/webgateway/imgData/{id}/\">imgData</a> · <a href=\"{prefix}/webgateway/archived_files/download/{id}/\">download original</a></p>\n<p class=\"rdef\"><button type=\"button\" id=\"save-rdef\">save settings</button> <button type=\"button\" id=\"reset-rdef\">reset to imported</button> <output id=\"rdef-status\"></output></p>\n<p class=\"keys\">Keys: ↑/↓ Z, ←/→ T, +/− zoom, 0 fit; drag to pan.</p>\n",
        id = v.id
    ));
    // Without JavaScript: one rendered image, never the full plane of a big one.
    let fallback = if is_big(v.width, v.height) {
        format!(
            "{prefix}/webgateway/render_thumbnail/{id}/{OVERVIEW_MAX}/",
            id = v.id
        )
    } else {
        format!(
            "{prefix}/webgateway/render_image/{id}/{z}/{t}/",
            id = v.id,
            z = v.default_z,
            t = v.default_t
        )
    };
    let body = format!(
        "<div id=\"viewer\" class=\"viewer\" data-id=\"{id}\" data-prefix=\"{prefix}\" data-width=\"{w}\" data-height=\"{h}\" data-size-z=\"{sz}\" data-size-t=\"{st}\" data-default-z=\"{dz}\" data-default-t=\"{dt}\" data-model=\"{model}\" data-pixel-size=\"{px}\" data-overview-max=\"{OVERVIEW_MAX}\" data-tile-size=\"{TILE_SIZE}\" data-thumbnail-version=\"{version}\" data-levels=\"{levels}\">\n<div class=\"view-column\">\n<div id=\"viewport\" class=\"viewport\" tabindex=\"0\" aria-label=\"{name}\" style=\"aspect-ratio: {w} / {h}\">\n<div id=\"stage\" class=\"stage\"><img id=\"overview\" class=\"overview\" alt=\"{name}\" draggable=\"false\"></div>\n<div id=\"scalebar\" class=\"scalebar\" hidden><div class=\"bar\"></div><span class=\"scalebar-label\"></span></div>\n<noscript><img class=\"fallback\" src=\"{fallback}\" alt=\"{name}\"></noscript>\n</div>\n<div class=\"zoom\"><button type=\"button\" id=\"zoom-out\" aria-label=\"zoom out\">−</button><output id=\"zoom-value\"></output><button type=\"button\" id=\"zoom-in\" aria-label=\"zoom in\">+</button><button type=\"button\" id=\"zoom-fit\">fit</button></div>\n</div>\n<div class=\"controls\">\n{controls}</div>\n</div>\n",
        id = v.id,
        w = v.width,
        h = v.height,
        sz = v.size_z,
        st = v.size_t,
        dz = v.default_z,
        dt = v.default_t,
        model = if v.color_model { "c" } else { "g" },
        px = v.pixel_size_um.map(|p| p.to_string()).unwrap_or_default(),
        name = escape(v.name),
        version = escape(&v.thumbnail_version),
        levels = v.levels,
    );
    page(
        prefix,
        static_url,
        v.name,
        &body,
        &["histogram.js", "viewer.js"],
    )
}

/// A styled error page with a way back to the gallery.
pub fn error_page(prefix: &str, static_url: &str, status: u16, message: &str) -> String {
    image_error_page(prefix, static_url, status, message, None)
}

/// The error page of one image (one that cannot be read): with the viewer's
/// "previous"/"next" links when `neighbours` are given, so browsing goes on past it.
pub fn image_error_page(
    prefix: &str,
    static_url: &str,
    status: u16,
    message: &str,
    neighbours: Option<&Neighbours>,
) -> String {
    let title = match status {
        404 => "Not found",
        400 => "Bad request",
        _ => "Error",
    };
    let nav = neighbours.map(|n| image_nav(prefix, n)).unwrap_or_default();
    let body = format!(
        "<div class=\"error\">{nav}<h2>{status} · {title}</h2><p>{}</p><p><a href=\"{prefix}/webclient/\">&larr; back to the gallery</a></p></div>\n",
        escape(message)
    );
    page(prefix, static_url, title, &body, &[])
}

/// What `/webclient/login/` shows on a site without sessions: that nobody needs to
/// log in, and the way on (`next`, already checked to be a path on this site).
pub fn login_page(prefix: &str, static_url: &str, next: &str) -> String {
    let body = format!(
        "<div class=\"login\" id=\"login\"><h2>No login needed</h2><p>This site serves its images to everyone: there are no accounts or sessions.</p><p><a href=\"{}\">Continue &rarr;</a></p></div>\n",
        escape(next)
    );
    page(prefix, static_url, "Login", &body, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: u64) -> Vec<(u64, String)> {
        (1..=n).map(|i| (i, format!("img<{i}>.tif"))).collect()
    }

    fn query(page: usize, page_size: usize, filter: &str) -> GalleryQuery<'_> {
        GalleryQuery {
            page,
            page_size,
            filter,
            thumbnail_version: &|_| None,
        }
    }

    #[test]
    fn gallery_thumbnail_urls_carry_the_version_given() {
        let version = |id: u64| (id == 2).then(|| "00ab".to_string());
        let html = gallery(
            "",
            "/static/",
            &images(2),
            &GalleryQuery {
                thumbnail_version: &version,
                ..query(1, 10, "")
            },
        );
        assert!(
            html.contains("src=\"/webclient/render_thumbnail/2/?v=00ab\""),
            "{html}"
        );
        assert!(html.contains("srcset=\"/webclient/render_thumbnail/size/192/2/?v=00ab 2x\""));
        assert!(html.contains("src=\"/webclient/render_thumbnail/1/\""));
    }

    #[test]
    fn gallery_pages_and_escapes() {
        let html = gallery("/omero", "/static/", &images(5), &query(2, 2, ""));
        assert!(html.contains("5 images · page 2 of 3"));
        assert!(html.contains("/omero/webclient/render_thumbnail/3/"));
        assert!(html.contains("/omero/webclient/render_thumbnail/4/"));
        assert!(!html.contains("render_thumbnail/5/"));
        assert!(html.contains("img&lt;3&gt;.tif") && !html.contains("img<3>"));
        assert!(html.contains("href=\"?page=1\"") && html.contains("href=\"?page=3\""));
        let empty = gallery("", "/static/", &[], &query(1, 200, ""));
        assert!(empty.contains("No images in the repository yet"));
        assert!(gallery("", "/static/", &images(1), &query(1, 10, "")).contains("1 image · "));
    }

    #[test]
    fn gallery_cards_carry_full_name_hidpi_source_and_dimensions_hook() {
        let html = gallery("", "/static/", &images(1), &query(1, 10, ""));
        assert!(html.contains("<li title=\"img&lt;1&gt;.tif\">"), "{html}");
        assert!(html.contains("srcset=\"/webclient/render_thumbnail/size/192/1/ 2x\""));
        assert!(html.contains("data-img-data=\"/webgateway/imgData/1/size/\""));
        assert!(html.contains("webclient/gallery.js"));
    }

    #[test]
    fn gallery_filters_by_name_and_pages_keep_the_filter() {
        let mut all = images(5);
        all.push((6, "Cells A.tif".into()));
        all.push((7, "cells b.tif".into()));
        all.push((8, "cells c.tif".into()));
        let html = gallery("", "/static/", &all, &query(1, 2, "CELLS"));
        assert!(html.contains("3 images of 8 · page 1 of 2"), "{html}");
        assert!(html.contains("Cells A.tif") && html.contains("cells b.tif"));
        assert!(!html.contains("img&lt;1&gt;"));
        assert!(html.contains("href=\"?page=2&amp;q=CELLS\""));
        assert!(html.contains("value=\"CELLS\""));
        let none = gallery("", "/static/", &all, &query(1, 2, "<zzz>"));
        assert!(none.contains("No image name contains “&lt;zzz&gt;”"));
    }

    #[test]
    fn pages_have_viewport_meta_and_icon() {
        for html in [
            gallery("", "/static/", &images(1), &query(1, 10, "")),
            error_page("", "/static/", 404, "x"),
        ] {
            assert!(html.contains(
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            ));
            assert!(html.contains("rel=\"icon\" href=\"/static/webclient/favicon.svg\""));
        }
    }

    #[test]
    fn error_page_is_styled_escaped_and_links_back() {
        let html = error_page("/omero", "/static/", 404, "No image <7>");
        assert!(html.contains("404 · Not found"));
        assert!(html.contains("No image &lt;7&gt;"));
        assert!(html.contains("href=\"/omero/webclient/\""));
        assert!(html.contains("webclient.css"));
    }

    fn sample(size_z: u32, size_t: u32, width: u32) -> ViewerPage<'static> {
        ViewerPage {
            id: 7,
            name: "cells \"a\"",
            width,
            height: 256,
            size_z,
            size_t,
            default_z: 2,
            default_t: 0,
            color_model: false,
            pixel_size_um: Some(0.325),
            channels: vec![ViewerChannel {
                index: 1,
                label: "DAPI".into(),
                color: "0000FF".into(),
                start: 10,
                end: 900,
                min: 5,
                max: 1000,
                active: true,
                file_lut: false,
            }],
            neighbours: Neighbours {
                previous: Some(6),
                next: None,
                gallery_page: 2,
            },
            thumbnail_version: "00ab".into(),
            levels: 1,
        }
    }

    #[test]
    fn viewer_lists_channels_with_their_windows_and_ranges() {
        let html = viewer("", "/static/", &sample(5, 1, 512));
        assert!(html.contains("src=\"/webgateway/render_image/7/2/0/\""));
        assert!(html.contains("data-thumbnail-version=\"00ab\""), "{html}");
        assert!(
            html.contains(
                "data-index=\"1\" data-start=\"10\" data-end=\"900\" data-color=\"0000FF\""
            )
        );
        assert!(
            html.contains(
                "class=\"window-start\" type=\"range\" min=\"5\" max=\"1000\" value=\"10\""
            )
        );
        assert!(html.contains("cells &quot;a&quot;"));
        assert!(html.contains("data-model=\"g\""));
        assert!(html.contains("data-pixel-size=\"0.325\""));
    }

    #[test]
    fn viewer_counts_planes_as_omero_does() {
        let html = viewer("", "/static/", &sample(5, 1, 512));
        // Z from 1 with its total; no T slider for one timepoint; singular nouns.
        assert!(html.contains("max=\"4\" value=\"2\"> <output id=\"z-value\">3 / 5</output>"));
        assert!(!html.contains("id=\"t\""));
        assert!(html.contains("5 Z-planes · 1 timepoint · 1 channel · 0.325 µm/px"));
        assert!(!html.contains("1 channels"));
        let html = viewer("", "/static/", &sample(1, 3, 512));
        assert!(
            !html.contains("id=\"z\"") && html.contains("<output id=\"t-value\">1 / 3</output>")
        );
    }

    #[test]
    fn viewer_links_neighbours_and_its_gallery_page() {
        let html = viewer("/p", "/static/", &sample(1, 1, 512));
        assert!(html.contains("href=\"/p/webclient/?page=2\""));
        assert!(html.contains("rel=\"prev\" href=\"/p/webclient/img_detail/6/\""));
        // "reset": the viewer without view state, so with the image's defaults.
        assert!(html.contains("id=\"reset-view\" href=\"/p/webclient/img_detail/7/\""));
        assert!(!html.contains("rel=\"next\""));
    }

    #[test]
    fn big_image_fallback_is_never_the_full_plane() {
        let html = viewer("", "/static/", &sample(1, 1, 2048));
        assert!(html.contains("render_thumbnail/7/1024/"));
        assert!(!html.contains("render_image/7/"));
    }
}
