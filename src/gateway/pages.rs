//! The small webclient: a gallery of thumbnails (paged by `omero.web.page_size`) and
//! a plane viewer with Z/T sliders and channel toggles that uses `render_image`.
//! Plain server-side HTML; every value from a file name is escaped.

/// One channel as the viewer's toggles need it.
pub struct ViewerChannel {
    /// 1-based, as in the `c` parameter.
    pub index: usize,
    pub label: String,
    /// `RRGGBB`.
    pub color: String,
    pub start: u32,
    pub end: u32,
    pub active: bool,
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
    pub channels: Vec<ViewerChannel>,
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

fn page(prefix: &str, static_url: &str, title: &str, body: &str, script: bool) -> String {
    let script = if script {
        format!("<script src=\"{static_url}webclient/viewer.js\"></script>\n")
    } else {
        String::new()
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<link rel=\"stylesheet\" href=\"{static_url}webclient/webclient.css\">\n</head>\n<body>\n<header><h1><a href=\"{prefix}/webclient/\">OMERO.web</a></h1><span>{title}</span></header>\n<main>\n{body}</main>\n{script}</body>\n</html>\n",
        title = escape(title),
    )
}

/// The gallery: `images` are (id, name) in id order; `page` is 1-based.
pub fn gallery(
    prefix: &str,
    static_url: &str,
    images: &[(u64, String)],
    page_number: usize,
    page_size: usize,
) -> String {
    let pages = images.len().div_ceil(page_size.max(1)).max(1);
    let page_number = page_number.clamp(1, pages);
    let shown = images
        .iter()
        .skip((page_number - 1) * page_size)
        .take(page_size);
    let mut body = String::new();
    if images.is_empty() {
        body.push_str("<p class=\"empty\">No images in the repository yet. Run <code>omero-webctl demo</code> or copy TIFF, PNG or JPEG files into it.</p>\n");
    } else {
        body.push_str(&format!(
            "<p>{} images · page {page_number} of {pages}</p>\n<ul class=\"gallery\">\n",
            images.len()
        ));
        for (id, name) in shown {
            let name = escape(name);
            body.push_str(&format!(
                "<li><a href=\"{prefix}/webclient/img_detail/{id}/\"><img src=\"{prefix}/webclient/render_thumbnail/{id}/\" alt=\"{name}\" loading=\"lazy\"><div class=\"name\">{name}</div></a></li>\n"
            ));
        }
        body.push_str("</ul>\n<nav class=\"pager\">");
        if page_number > 1 {
            body.push_str(&format!(
                "<a href=\"?page={}\">&larr; previous</a>",
                page_number - 1
            ));
        }
        if page_number < pages {
            body.push_str(&format!(
                "<a href=\"?page={}\">next &rarr;</a>",
                page_number + 1
            ));
        }
        body.push_str("</nav>\n");
    }
    page(prefix, static_url, "Gallery", &body, false)
}

/// The viewer of one image.
pub fn viewer(prefix: &str, static_url: &str, v: &ViewerPage) -> String {
    let mut controls = String::new();
    controls.push_str(&format!(
        "<label>Z <input id=\"z\" type=\"range\" min=\"0\" max=\"{}\" value=\"{}\"> <span id=\"z-value\">{}</span></label>\n",
        v.size_z.saturating_sub(1),
        v.default_z,
        v.default_z
    ));
    controls.push_str(&format!(
        "<label>T <input id=\"t\" type=\"range\" min=\"0\" max=\"{}\" value=\"{}\"> <span id=\"t-value\">{}</span></label>\n",
        v.size_t.saturating_sub(1),
        v.default_t,
        v.default_t
    ));
    for ch in &v.channels {
        controls.push_str(&format!(
            "<label><input class=\"channel\" type=\"checkbox\" data-index=\"{}\" data-start=\"{}\" data-end=\"{}\" data-color=\"{}\"{}> <span class=\"swatch\" style=\"background:#{}\"></span> {}</label>\n",
            ch.index,
            ch.start,
            ch.end,
            escape(&ch.color),
            if ch.active { " checked" } else { "" },
            escape(&ch.color),
            escape(&ch.label)
        ));
    }
    let body = format!(
        "<div id=\"viewer\" class=\"viewer\" data-render-base=\"{prefix}/webgateway/render_image/{id}/\">\n<img id=\"plane\" class=\"plane\" src=\"{prefix}/webgateway/render_image/{id}/{z}/{t}/\" width=\"{w}\" height=\"{h}\" alt=\"{name}\">\n<div class=\"controls\">\n<p>{w} × {h} px · {sz} Z · {st} T · {sc} channels</p>\n{controls}<p><a href=\"{prefix}/webgateway/imgData/{id}/\">imgData</a> · <a href=\"{prefix}/webgateway/archived_files/download/{id}/\">download original</a></p>\n</div>\n</div>\n",
        id = v.id,
        z = v.default_z,
        t = v.default_t,
        w = v.width,
        h = v.height,
        name = escape(v.name),
        sz = v.size_z,
        st = v.size_t,
        sc = v.channels.len(),
    );
    page(prefix, static_url, v.name, &body, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gallery_pages_and_escapes() {
        let images: Vec<(u64, String)> = (1..=5).map(|i| (i, format!("img<{i}>.tif"))).collect();
        let html = gallery("/omero", "/static/", &images, 2, 2);
        assert!(html.contains("5 images · page 2 of 3"));
        assert!(html.contains("/omero/webclient/render_thumbnail/3/"));
        assert!(html.contains("/omero/webclient/render_thumbnail/4/"));
        assert!(!html.contains("render_thumbnail/5/"));
        assert!(html.contains("img&lt;3&gt;.tif") && !html.contains("img<3>"));
        assert!(html.contains("href=\"?page=1\"") && html.contains("href=\"?page=3\""));
        let empty = gallery("", "/static/", &[], 1, 200);
        assert!(empty.contains("No images in the repository yet"));
    }

    #[test]
    fn viewer_lists_channels_with_their_windows() {
        let v = ViewerPage {
            id: 7,
            name: "cells \"a\"",
            width: 512,
            height: 256,
            size_z: 5,
            size_t: 1,
            default_z: 2,
            default_t: 0,
            channels: vec![ViewerChannel {
                index: 1,
                label: "DAPI".into(),
                color: "0000FF".into(),
                start: 10,
                end: 900,
                active: true,
            }],
        };
        let html = viewer("", "/static/", &v);
        assert!(html.contains("src=\"/webgateway/render_image/7/2/0/\""));
        assert!(html.contains(
            "data-index=\"1\" data-start=\"10\" data-end=\"900\" data-color=\"0000FF\" checked"
        ));
        assert!(html.contains("cells &quot;a&quot;"));
        assert!(html.contains("max=\"4\" value=\"2\""));
    }
}
