//! Compatibility with OMERO.web's image endpoints, pinned to omero-web's source
//! (`omeroweb/webgateway/urls.py`, `views.py`, `marshal.py`, `omeroweb/webclient/urls.py`)
//! and omero-py's gateway: the URL table with OMERO's status and content type, imgData's
//! key set, and the render parameter cases OMERO renders. Drives the real binary over
//! HTTP on a demo site (3 images of 120×120, 3 channels, 3 Z; OME-TIFF with
//! PhysicalSizeX/Y 0.325 µm, Z 1.0 µm).

use crate::support;

use std::collections::BTreeSet;

use omero_webctl::gateway::imaging::plots::decode_gif;
use serde_json::Value;
use support::{TestSite, decode_jpeg};

/// A GET: status, content type, body.
fn fetch(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    let (status, headers, body) = support::fetch(port, path, &[]);
    let content_type = support::header(&headers, "content-type")
        .unwrap_or_default()
        .to_string();
    (status, content_type, body)
}

fn json(port: u16, path: &str) -> Value {
    let (status, content_type, body) = fetch(port, path);
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/json"),
        "{path}"
    );
    serde_json::from_slice(&body).unwrap()
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text.bytes().filter(|&b| b != b'=').map(value).collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &v)| n | (v as u32) << (18 - 6 * i));
        for k in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * k)) as u8);
        }
    }
    out
}

/// A data URI's JPEG, decoded: (width, height).
fn data_uri_size(uri: &Value) -> (u32, u32) {
    let text = uri
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {uri}"));
    let payload = text
        .strip_prefix("data:image/jpeg;base64,")
        .unwrap_or_else(|| panic!("not a JPEG data URI: {text:.40}"));
    let (w, h, _, _) = decode_jpeg(&base64_decode(payload));
    (w, h)
}

/// A started demo site; `omero.web.thumbnails_batch` is 2 so the batch limit shows.
fn site() -> TestSite {
    let site = TestSite::with_demo(
        1,
        "\"omero.web.thumbnails_batch\" = 2\n",
        &[
            "--images",
            "3",
            "--size",
            "120",
            "--channels",
            "3",
            "--z",
            "3",
        ],
    );
    site.ok(&["start"]);
    site
}

#[test]
fn every_endpoint_answers_in_omeros_shape() {
    let site = site();
    let port = site.port;
    // (path, OMERO's status, OMERO's content type)
    let table: &[(&str, u16, &str)] = &[
        ("/webgateway/render_thumbnail/1/", 200, "image/jpeg"),
        ("/webgateway/render_birds_eye_view/1/", 200, "image/jpeg"),
        ("/webgateway/render_birds_eye_view/1/50/", 200, "image/jpeg"),
        ("/webclient/render_birds_eye_view/1/", 200, "image/jpeg"),
        (
            "/webclient/7/render_birds_eye_view/1/40/",
            200,
            "image/jpeg",
        ),
        ("/webgateway/get_thumbnail/1/", 200, "application/json"),
        ("/webgateway/get_thumbnail/1/64/", 200, "application/json"),
        (
            "/webgateway/get_thumbnail/1/64/32/",
            200,
            "application/json",
        ),
        ("/webclient/get_thumbnail/1/", 200, "application/json"),
        ("/webclient/get_thumbnail/1/7/", 200, "application/json"),
        ("/webgateway/get_thumbnails/?id=1", 200, "application/json"),
        (
            "/webgateway/get_thumbnails/64/?id=1&id=2",
            200,
            "application/json",
        ),
        (
            "/webclient/get_thumbnails/?id=1&id=2",
            200,
            "application/json",
        ),
        ("/webclient/get_thumbnails/7/?id=1", 200, "application/json"),
        ("/webgateway/render_image/1/", 200, "image/jpeg"),
        ("/webgateway/render_image/1/2/0/", 200, "image/jpeg"),
        ("/webclient/render_image/1/", 200, "image/jpeg"),
        ("/webclient/7/render_image/1/1/", 200, "image/jpeg"),
        (
            "/webclient/render_image_region/1/0/0/?region=0,0,10,10",
            200,
            "image/jpeg",
        ),
        (
            "/webclient/7/render_image_region/1/0/0/?tile=0,0,0",
            200,
            "image/jpeg",
        ),
        (
            "/webclient/render_image_download/1/",
            200,
            "application/force-download",
        ),
        ("/webgateway/render_split_channel/1/0/0/", 200, "image/jpeg"),
        ("/webclient/render_split_channel/1/0/0/", 200, "image/jpeg"),
        ("/webgateway/render_row_plot/1/0/0/5/", 200, "image/gif"),
        ("/webgateway/render_row_plot/1/0/0/5/3/", 200, "image/gif"),
        ("/webgateway/render_col_plot/1/0/0/5/", 200, "image/gif"),
        ("/webclient/7/render_col_plot/1/0/0/5/2/", 200, "image/gif"),
        (
            "/webgateway/histogram_json/1/channel/0/",
            200,
            "application/json",
        ),
        (
            "/webgateway/histogram_json/1/channel/0/anything",
            200,
            "application/json",
        ),
        ("/webgateway/imgData/1/", 200, "application/json"),
        ("/webgateway/imgData/1/size/", 200, "application/json"),
        ("/webclient/imgData/1/", 200, "application/json"),
        ("/webclient/7/imgData/1/", 200, "application/json"),
        (
            "/webgateway/imgData/1/?callback=cb",
            200,
            "application/javascript",
        ),
        ("/webgateway/img_detail/1/", 200, "text/html; charset=utf-8"),
        (
            "/webclient/7/img_detail/1/",
            200,
            "text/html; charset=utf-8",
        ),
        // Errors where OMERO gives them.
        ("/webgateway/imgData/99/", 404, "text/html; charset=utf-8"),
        (
            "/webgateway/imgData/1/?callback=alert(1)",
            400,
            "text/html; charset=utf-8",
        ),
        ("/webgateway/get_thumbnail/99/", 500, "application/json"),
        ("/webclient/get_thumbnail/99/", 200, "application/json"),
        (
            "/webgateway/get_thumbnails/?id=1&id=2&id=3",
            500,
            "text/javascript",
        ),
        ("/webgateway/get_thumbnails/?id=x", 500, "application/json"),
        ("/webgateway/histogram_json/1/channel/3/", 404, ""),
        ("/webgateway/histogram_json/1/channel/0", 404, ""),
        ("/webgateway/render_split_channel/99/0/0/", 404, ""),
        ("/webgateway/render_row_plot/99/0/0/5/", 404, ""),
    ];
    let mut wrong = Vec::new();
    for &(path, status, content_type) in table {
        let (got_status, got_type, _) = fetch(port, path);
        let type_ok = content_type.is_empty() || got_type == content_type;
        if got_status != status || !type_ok {
            wrong.push(format!(
                "{path}: {got_status} {got_type:?}, OMERO: {status} {content_type:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn img_data_has_omeros_keys_and_values() {
    let site = site();
    let port = site.port;
    let data = json(port, "/webgateway/imgData/1/");
    let keys = |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| s.to_string()).collect() };
    // marshal.imageMarshal for an image without tiles or nominal magnification.
    assert_eq!(
        keys(&data),
        set(&[
            "id",
            "meta",
            "perms",
            "tiles",
            "interpolate",
            "size",
            "pixel_size",
            "init_zoom",
            "pixel_range",
            "channels",
            "split_channel",
            "rdefs"
        ])
    );
    assert_eq!(
        keys(&data["meta"]),
        set(&[
            "imageName",
            "imageDescription",
            "imageAuthor",
            "imageArchived",
            "projectName",
            "projectId",
            "projectDescription",
            "datasetName",
            "datasetId",
            "datasetDescription",
            "wellSampleId",
            "wellId",
            "imageTimestamp",
            "imageId",
            "pixelsType"
        ])
    );
    assert_eq!(
        keys(&data["channels"][0]),
        set(&[
            "emissionWave",
            "label",
            "color",
            "inverted",
            "reverseIntensity",
            "family",
            "coefficient",
            "window",
            "active"
        ])
    );
    assert_eq!(
        keys(&data["rdefs"]),
        set(&["model", "projection", "defaultZ", "defaultT", "invertAxis"])
    );
    // Values OMERO gives an image in a dataset outside projects and wells: the demo's
    // folder is its dataset (the JSON API's id), and no project holds it.
    let meta = &data["meta"];
    assert_eq!(meta["projectName"], "Multiple");
    assert_eq!(meta["datasetName"], "demo");
    assert_eq!(
        meta["datasetId"],
        json(port, "/api/v0/m/datasets/")["data"][0]["@id"]
    );
    assert_eq!(meta["projectId"], Value::Null);
    assert_eq!(meta["wellId"], "");
    assert_eq!(meta["wellSampleId"], "");
    assert!(meta["imageTimestamp"].is_f64());
    // Pixel sizes in µm from the OME-XML; OMERO's initial zoom and split layouts.
    assert_eq!(data["pixel_size"]["x"], 0.325);
    assert_eq!(data["pixel_size"]["y"], 0.325);
    assert_eq!(data["pixel_size"]["z"], 1.0);
    assert_eq!(data["init_zoom"], 0);
    // 3 channels: greyscale 2×2 grid; colour (4 panels) 2×2; 120·2 + 2·3 = 246.
    let g = &data["split_channel"]["g"];
    assert_eq!(
        (g["gridx"].as_u64(), g["gridy"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        (g["width"].as_u64(), g["border"].as_u64()),
        (Some(246), Some(2))
    );
    assert_eq!(data["split_channel"]["c"]["height"], 246);
    assert!(data["channels"][0]["window"]["min"].is_f64());

    // One key, dotted keys, missing keys.
    assert_eq!(json(port, "/webgateway/imgData/1/size/"), data["size"]);
    assert_eq!(json(port, "/webgateway/imgData/1/size.width/"), 120);
    assert_eq!(json(port, "/webgateway/imgData/1/nothing/"), Value::Null);
    // The webclient alias answers the same object.
    assert_eq!(json(port, "/webclient/imgData/1/"), data);
    // JSONP.
    let (status, content_type, body) = fetch(port, "/webgateway/imgData/1/size/?callback=cb_1");
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/javascript")
    );
    let text = String::from_utf8(body).unwrap();
    let inner = text
        .strip_prefix("cb_1(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(inner).unwrap(), data["size"]);
    let (status, _, body) = fetch(port, "/webgateway/imgData/1/?callback=a.b");
    assert_eq!(
        (status, body.as_slice()),
        (400, b"Invalid callback".as_slice())
    );
}

#[test]
fn thumbnails_batches_plots_histograms_and_downloads() {
    let site = site();
    let port = site.port;
    // get_thumbnails: {id: data URI}, null for a missing image, 96 px by default.
    let batch = json(port, "/webgateway/get_thumbnails/?id=2&id=1&id=2");
    assert_eq!(
        batch.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["1", "2"]
    );
    assert_eq!(data_uri_size(&batch["1"]), (96, 96));
    let sized = json(port, "/webgateway/get_thumbnails/40/?id=1&id=99");
    assert_eq!(data_uri_size(&sized["1"]), (40, 40));
    assert_eq!(sized["99"], Value::Null);
    let (_, _, body) = fetch(port, "/webgateway/get_thumbnails/?id=1&id=2&id=3");
    assert_eq!(body, b"Max 2 thumbnails at a time.");
    // get_thumbnail: one data URI as a JSON string.
    assert_eq!(
        data_uri_size(&json(port, "/webgateway/get_thumbnail/1/64/32/")),
        (64, 32)
    );
    assert_eq!(
        data_uri_size(&json(port, "/webclient/get_thumbnail/99/")),
        (96, 96)
    );
    // Bird's eye view: a thumbnail with w = size.
    let (_, _, jpeg) = fetch(port, "/webgateway/render_birds_eye_view/1/50/");
    assert_eq!(decode_jpeg(&jpeg).0, 50);

    // Split channels: 3 channels + merged on a 2×2 grid of 120 px panels.
    let (_, _, jpeg) = fetch(port, "/webgateway/render_split_channel/1/0/0/");
    let (w, h, _, _) = decode_jpeg(&jpeg);
    assert_eq!((w, h), (246, 246));
    let (_, _, jpeg) = fetch(port, "/webgateway/render_split_channel/1/0/0/?m=g");
    assert_eq!(decode_jpeg(&jpeg).0, 246);

    // Row plot: the plane's size, transparent background, a white marker at the row.
    let (_, _, gif) = fetch(port, "/webgateway/render_row_plot/1/0/0/30/");
    let (w, h, palette, transparent, pixels) = decode_gif(&gif).expect("a GIF");
    assert_eq!((w, h, transparent), (120, 120, Some(0)));
    let white = palette.iter().position(|&c| c == [255, 255, 255]).unwrap() as u8;
    let marked = (0..120).filter(|&x| pixels[30 * 120 + x] == white).count();
    assert!(marked > 60, "{marked} marker pixels on row 30");
    let drawn = pixels.iter().filter(|&&p| p > white).count();
    assert!(drawn > 120, "{drawn} profile pixels");
    // Only the active channels are drawn: none active leaves the marker alone.
    let (_, _, gif) = fetch(port, "/webgateway/render_col_plot/1/0/0/30/?c=-1,-2,-3");
    let (_, _, _, _, pixels) = decode_gif(&gif).unwrap();
    assert!(pixels.iter().all(|&p| p == 0 || p == white));

    // Histogram: 256 bins by default, every pixel of the plane counted.
    let hist = json(port, "/webgateway/histogram_json/1/channel/1/");
    let data = hist["data"].as_array().unwrap();
    assert_eq!(data.len(), 256);
    assert_eq!(
        data.iter().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        120 * 120
    );
    let hist = json(
        port,
        "/webgateway/histogram_json/1/channel/1/?bins=8&theZ=2",
    );
    assert_eq!(hist["data"].as_array().unwrap().len(), 8);

    // render_image_download: JPEG, PNG or TIFF as an attachment.
    let (_, _, jpeg) = fetch(port, "/webclient/render_image_download/1/");
    assert!(jpeg.starts_with(&[0xff, 0xd8]));
    let (_, _, png) = fetch(port, "/webclient/render_image_download/1/?format=png");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let (_, _, tif) = fetch(port, "/webclient/render_image_download/1/0/0/?format=tif");
    assert!(tif.starts_with(b"II*\0") || tif.starts_with(b"MM\0*"));
}

#[test]
fn render_parameters_omero_renders_render_here() {
    let site = site();
    let port = site.port;
    let render = |query: &str| {
        let path = format!("/webgateway/render_image/1/1/0/?{query}");
        let (status, content_type, body) = fetch(port, &path);
        assert_eq!(
            (status, content_type.as_str()),
            (200, "image/jpeg"),
            "{query}"
        );
        decode_jpeg(&body).3
    };
    let plane = 120 * 120;
    // A window over the lower half of channel 1's range, so the plane is bright.
    let window = &json(port, "/webgateway/imgData/1/")["channels"][0]["window"];
    let (min, max) = (
        window["min"].as_f64().unwrap(),
        window["max"].as_f64().unwrap(),
    );
    let w = format!("{min}:{}", (min + max) / 2.0);
    let mean = |pixels: &[u16], k: usize| {
        pixels[k * plane..(k + 1) * plane]
            .iter()
            .map(|&v| v as u64)
            .sum::<u64>()
            / plane as u64
    };
    // Each of these is a 400 in a strict parser and renders in OMERO.
    for query in [
        "c=1|0:3000$FF000080,2,3,4,5",
        "c=1|0:3000$cool.lut",
        "c=1|0:3000$fire.lut",
        "c=x,1,,9",
        "m=x",
        "p=foo",
        "p=intmax|a:b",
        "c=1&maps=[{",
        "c=1&maps=[1,2,3,4,5]",
        "maps=oops",
        "ia=1",
        "c=1$GG0000",
    ] {
        render(query);
    }
    // RRGGBBAA: a half-transparent red is about half as bright as the opaque one.
    let sum = |pixels: &[u16]| pixels[..plane].iter().map(|&v| v as f64).sum::<f64>();
    let opaque = sum(&render(&format!("c=1|{w}$FF0000FF,-2,-3&m=c")));
    let half = sum(&render(&format!("c=1|{w}$FF000080,-2,-3&m=c")));
    assert!(opaque > 50_000.0, "opaque red sum {opaque}");
    let ratio = half / opaque;
    assert!((0.4..0.6).contains(&ratio), "half/opaque = {ratio}");
    // cool.lut: low values cyan, so green and blue light up where red alone did not.
    let red = render(&format!("c=1|{w}$FF0000,-2,-3&m=c"));
    let cool = render(&format!("c=1|{w}$cool.lut,-2,-3&m=c"));
    assert!(
        mean(&red, 2) < 10 && mean(&cool, 2) > 200,
        "blue {} → {}",
        mean(&red, 2),
        mean(&cool, 2)
    );
    // An unknown LUT falls back to the channel's colour (the demo's stored one).
    let fallback = render(&format!("c=1|{w}$nothing.lut,-2,-3&m=c"));
    assert_eq!(fallback, render(&format!("c=1|{w},-2,-3&m=c")));
    assert_ne!(fallback, cool);
    // Extra c entries change nothing.
    assert_eq!(render(&format!("c=1|{w}$FF0000,-2,-3,4,7&m=c")), red);
    // format=png is a download parameter only: render_image stays JPEG (checked in
    // render()), as in OMERO.
    render("format=png");
}
