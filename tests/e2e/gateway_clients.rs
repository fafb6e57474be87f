//! What OMERO's own clients and monitors ask of an embedded site (issue 23): the
//! health-check URLs, the viewer's error pages, the published thumbnails' caching.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;

use support::{TestSite, fetch, header};

/// A raw POST with a form body: the whole response as text.
fn post_form(port: u16, path: &str, form: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn demo_site(images: u32) -> TestSite {
    TestSite::with_demo(1, "", &["--images", &images.to_string(), "--size", "64"])
}

#[test]
fn login_and_keepalive_ping_answer_as_omero_does_for_a_live_session() {
    let site = demo_site(1);
    site.ok(&["start"]);
    let port = site.port;

    // keepalive_ping: OMERO's exact body and type.
    let (status, headers, body) = fetch(port, "/webclient/keepalive_ping/", &[]);
    assert_eq!(
        (status, header(&headers, "content-type"), body.as_slice()),
        (200, Some("text/plain"), b"OK".as_slice())
    );

    // GET login/: a 200 HTML page (monitors check for it) that says no login is needed
    // and links on.
    let (status, headers, body) = fetch(port, "/webclient/login/", &[]);
    let html = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{html}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        html.contains("id=\"login\"") && html.contains("href=\"/webclient/\""),
        "{html}"
    );
    let (_, _, body) = fetch(port, "/webclient/login/?url=/webclient/img_detail/1/", &[]);
    assert!(String::from_utf8_lossy(&body).contains("href=\"/webclient/img_detail/1/\""));

    // POST login/: where OMERO's successful login goes; never off the site.
    for (path, location) in [
        ("/webclient/login/", "/webclient/"),
        (
            "/webclient/login/?url=/webclient/img_detail/1/",
            "/webclient/img_detail/1/",
        ),
        ("/webclient/login/?url=//evil.example/", "/webclient/"),
        ("/webclient/login/?url=https://evil.example/", "/webclient/"),
    ] {
        let response = post_form(port, path, "username=a&password=b&server=1");
        assert!(response.starts_with("HTTP/1.0 302"), "{path}: {response}");
        assert!(
            response
                .lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("location: {location}"))),
            "{path}: {response}"
        );
    }
}

#[test]
fn an_unreadable_image_names_no_server_path_and_keeps_previous_and_next() {
    let site = demo_site(3);
    std::fs::write(
        site.root().join("var/repository/demo/demo-002b-broken.tif"),
        b"II*\0 not really a TIFF",
    )
    .unwrap();
    site.ok(&["start"]);
    let port = site.port;
    let root = site.root().display().to_string();

    let html = String::from_utf8(fetch(port, "/webclient/?q=broken", &[]).2).unwrap();
    let broken = html
        .split("/webclient/img_detail/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    let (status, _, body) = fetch(port, &format!("/webclient/img_detail/{broken}/"), &[]);
    let html = String::from_utf8_lossy(&body);
    assert_eq!(status, 404);
    assert!(
        html.contains("cannot be read") && html.contains("demo-002b-broken.tif"),
        "{html}"
    );
    assert!(
        !html.contains(&root),
        "the page names the server path: {html}"
    );
    // Browsing goes on: every neighbour link opens a viewer, and there is one.
    let links: Vec<String> = ["rel=\"prev\"", "rel=\"next\""]
        .iter()
        .filter_map(|rel| {
            let at = html.find(rel)?;
            let href = html[at..].split("href=\"").nth(1)?.split('"').next()?;
            Some(href.to_string())
        })
        .collect();
    assert!(
        !links.is_empty(),
        "no previous/next on the error page: {html}"
    );
    for link in &links {
        let (status, _, _) = fetch(port, link, &[]);
        assert_eq!(status, 200, "{link}");
    }

    // imgData (JSON, OMERO's error shape) and the image routes say it as plainly.
    for path in [
        format!("/webgateway/imgData/{broken}/"),
        format!("/webgateway/render_image/{broken}/0/0/"),
        format!("/webgateway/render_thumbnail/{broken}/"),
    ] {
        let (_, _, body) = fetch(port, &path, &[]);
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains(&root),
            "{path} names the server path: {text}"
        );
    }
}

/// Writes an 8-bit PNG (`channels` 1 = grey, 3 = RGB) whose samples span only
/// `low..=high`.
fn narrow_png(path: &std::path::Path, channels: usize, low: u8, high: u8) {
    let (w, h) = (32u32, 16u32);
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(if channels == 3 {
        png::ColorType::Rgb
    } else {
        png::ColorType::Grayscale
    });
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    let data: Vec<u8> = (0..(w * h) as usize * channels)
        .map(|i| low + (i % (high - low + 1) as usize) as u8)
        .collect();
    writer.write_image_data(&data).unwrap();
}

#[test]
fn an_rgb_photo_is_shown_as_the_file_is_and_a_grey_one_keeps_its_window() {
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    std::fs::create_dir_all(&repository).unwrap();
    narrow_png(&repository.join("a-photo.png"), 3, 100, 150);
    narrow_png(&repository.join("b-grey.png"), 1, 100, 150);
    site.ok(&["start"]);
    let port = site.port;

    let channels = |name: &str| {
        let html = String::from_utf8(fetch(port, &format!("/webclient/?q={name}"), &[]).2).unwrap();
        let id = html
            .split("/webclient/img_detail/")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap()
            .to_string();
        let (status, _, body) = fetch(port, &format!("/webgateway/imgData/{id}/"), &[]);
        assert_eq!(status, 200);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json["channels"].as_array().unwrap().clone()
    };
    // The photo: red, green, blue over the whole 8-bit range, not each sample's own
    // 100–150 (which would stretch and shift its colours).
    let photo = channels("a-photo");
    let shown: Vec<(String, f64, f64)> = photo
        .iter()
        .map(|c| {
            (
                c["color"].as_str().unwrap().to_string(),
                c["window"]["start"].as_f64().unwrap(),
                c["window"]["end"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("FF0000".to_string(), 0.0, 255.0),
            ("00FF00".to_string(), 0.0, 255.0),
            ("0000FF".to_string(), 0.0, 255.0)
        ]
    );
    // A lone grey channel keeps its own window, and OMERO's colour for a single
    // channel without one in its file: grey 808080 (omero-blitz's importer,
    // ChannelProcessor.setSingleChannel).
    let grey = channels("b-grey");
    assert_eq!(grey.len(), 1);
    assert_eq!(grey[0]["color"], "808080");
    assert_eq!(
        (
            grey[0]["window"]["start"].as_f64(),
            grey[0]["window"]["end"].as_f64()
        ),
        (Some(100.0), Some(150.0))
    );
}

fn json_of(port: u16, path: &str) -> serde_json::Value {
    let (status, _, body) = fetch(port, path, &[]);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The body of a response `post_form` returned.
fn body_of(response: &str) -> &str {
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("")
}

#[test]
fn rendering_settings_are_saved_per_image_reset_copied_and_followed_by_thumbnails() {
    let site = TestSite::with_demo(
        1,
        "",
        &[
            "--images",
            "2",
            "--size",
            "64",
            "--channels",
            "2",
            "--z",
            "3",
        ],
    );
    site.ok(&["start"]);
    let port = site.port;
    let root = site.root().to_path_buf();

    // Before: one rendering definition, the imported defaults.
    let rdefs = json_of(port, "/webgateway/get_image_rdefs_json/1/");
    assert_eq!(rdefs["rdefs"].as_array().unwrap().len(), 1, "{rdefs}");
    assert_eq!(rdefs["rdefs"][0]["model"], "rgb");
    assert_eq!(rdefs["rdefs"][0]["c"].as_array().unwrap().len(), 2);
    let (_, headers, before) = fetch(port, "/webgateway/render_thumbnail/1/", &[]);
    let etag = header(&headers, "etag").unwrap().to_string();

    // OMERO's require_POST, and its validation.
    let (status, _, _) = fetch(port, "/webgateway/saveImgRDef/1/?c=1|0:100$00FF00", &[]);
    assert_eq!(status, 405);
    let response = post_form(port, "/webgateway/saveImgRDef/1/", "c=1%7C0%3A100&m=g");
    assert!(response.starts_with("HTTP/1.0 400"), "{response}");

    // Save: channel 1 green 0–100, channel 2 off, greyscale, Z 3 (1-based).
    let response = post_form(
        port,
        "/webgateway/saveImgRDef/1/",
        "c=1%7C0%3A100%2400FF00%2C-2%7C0%3A100%24FF0000&m=g&z=3",
    );
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert_eq!(body_of(&response), "true");
    assert!(root.join("var/rdefs/1.json").is_file());
    let img = json_of(port, "/webgateway/imgData/1/");
    assert_eq!(img["rdefs"]["model"], "greyscale", "{img}");
    assert_eq!(img["rdefs"]["defaultZ"], 2);
    assert_eq!(img["channels"][0]["color"], "00FF00");
    assert_eq!(img["channels"][0]["window"]["end"].as_f64(), Some(100.0));
    assert_eq!(img["channels"][1]["active"], false);
    let rdefs = json_of(port, "/webgateway/get_image_rdefs_json/1/");
    assert_eq!(rdefs["rdefs"][0]["model"], "greyscale");
    assert_eq!(rdefs["rdefs"][0]["z"], 2);
    assert_eq!(rdefs["rdefs"][0]["c"][0]["color"], "00FF00");
    // Image 2 keeps its own.
    assert_eq!(
        json_of(port, "/webgateway/imgData/2/")["rdefs"]["model"],
        "color"
    );

    // The thumbnail follows the saved settings: new bytes, a new ETag, and the copy
    // published for nginx too.
    let (status, headers, saved_thumb) = fetch(
        port,
        "/webgateway/render_thumbnail/1/",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(status, 200);
    assert_ne!(header(&headers, "etag"), Some(etag.as_str()));
    assert_ne!(saved_thumb, before);
    let published = root.join("var/cache/published/t/1.jpg");
    assert!(
        support::wait_until(std::time::Duration::from_secs(60), || {
            std::fs::read(&published).is_ok_and(|b| b == saved_thumb)
        }),
        "the published thumbnail did not follow the saved settings"
    );

    // Copy image 1's settings onto image 2 (OMERO's copy, then paste).
    let (status, _, body) = fetch(port, "/webgateway/copyImgRDef/?fromid=1", &[]);
    assert_eq!((status, body.as_slice()), (200, b"true".as_slice()));
    let clipboard = json_of(port, "/webgateway/getImgRDef/");
    assert!(
        clipboard["rdef"]["c"]
            .as_str()
            .unwrap()
            .starts_with("1|0.0:100.0$00FF00,-2|"),
        "{clipboard}"
    );
    let response = post_form(port, "/webgateway/copyImgRDef/", "toids=2&toids=999");
    let pasted: serde_json::Value = serde_json::from_str(body_of(&response)).unwrap();
    assert_eq!(pasted, serde_json::json!({"true": [2], "false": [999]}));
    assert_eq!(
        json_of(port, "/webgateway/imgData/2/")["rdefs"]["model"],
        "greyscale"
    );

    // Reset: back to the imported defaults, and the thumbnail with them.
    let response = post_form(port, "/webgateway/resetRDef/", "to_type=image&toids=1");
    assert_eq!(body_of(&response), "[1]", "{response}");
    assert!(!root.join("var/rdefs/1.json").exists());
    assert_eq!(
        json_of(port, "/webgateway/imgData/1/")["rdefs"]["model"],
        "color"
    );
    let (_, _, after) = fetch(port, "/webgateway/render_thumbnail/1/", &[]);
    assert_eq!(after, before);
    // applyOwnersRDef: the owner's (the saved) settings stay.
    let response = post_form(port, "/webgateway/applyOwnersRDef/", "toids=2");
    assert_eq!(body_of(&response), "[2]");
    assert_eq!(
        json_of(port, "/webgateway/imgData/2/")["rdefs"]["model"],
        "greyscale"
    );
}

#[test]
fn omeros_lookup_tables_are_listed_drawn_as_a_png_and_rendered() {
    let site = demo_site(1);
    site.ok(&["start"]);
    let port = site.port;

    let luts = json_of(port, "/webgateway/luts/");
    let list = luts["luts"].as_array().unwrap();
    assert_eq!(list.len(), 39);
    let names: Vec<&str> = list.iter().map(|l| l["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, sorted);
    let fire = list.iter().find(|l| l["name"] == "fire.lut").unwrap();
    assert_eq!(fire["path"], "/luts/");
    assert_eq!(fire["png_index"], 9);
    assert_eq!(luts["png_luts"].as_array().unwrap().len(), 40);
    assert_eq!(
        luts["png_luts_new"].as_array().unwrap().last().unwrap(),
        "gradient.png"
    );
    let with_rgb = json_of(port, "/webgateway/luts/?rgb=true");
    assert_eq!(with_rgb["luts"][0]["rgb"].as_array().unwrap().len(), 256);

    // luts_png: 256 px wide, ten rows a table plus the gradient, the rows as listed.
    let (status, headers, png) = fetch(port, "/webgateway/luts_png/", &[]);
    assert_eq!(
        (status, header(&headers, "content-type")),
        (200, Some("image/png"))
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (256, 400));
    let grays_row = names.iter().position(|n| *n == "grays.lut").unwrap() * 10 + 5;
    let at = |x: usize, y: usize| &pixels[(y * 256 + x) * 4..(y * 256 + x) * 4 + 4];
    assert_eq!(at(200, grays_row), &[200, 200, 200, 255]);
    assert_eq!(at(0, 395)[3], 255);
    assert_eq!(at(200, 395)[3], 0);

    // $name.lut in a render query draws the table; an unknown one, the colour.
    let render = |c: &str| {
        fetch(
            port,
            &format!("/webgateway/render_image/1/0/0/?c={c}&m=c"),
            &[],
        )
        .2
    };
    let red = render("1|0:255$FF0000");
    assert_ne!(render("1|0:255$fire.lut"), red);
    assert_ne!(render("1|0:255$cyan_hot.lut"), render("1|0:255$fire.lut"));
    assert_eq!(render("1|0:255$nothing.lut"), render("1|0:255"));
}

#[test]
fn folders_tell_same_named_files_apart_the_filter_matches_paths_and_order_is_by_name() {
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    for dir in ["exp2", "exp1"] {
        std::fs::create_dir_all(repository.join(dir)).unwrap();
        narrow_png(&repository.join(dir).join("cell.png"), 1, 0, 200);
    }
    narrow_png(&repository.join("Zebra.png"), 1, 0, 200);
    narrow_png(&repository.join("apple.png"), 1, 0, 200);
    site.ok(&["start"]);
    let port = site.port;

    let html = String::from_utf8(fetch(port, "/webclient/", &[]).2).unwrap();
    let titles: Vec<&str> = html
        .split("<li title=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    // By path, case-insensitively, whatever IDs the scan gave.
    assert_eq!(
        titles,
        ["apple.png", "exp1/cell.png", "exp2/cell.png", "Zebra.png"]
    );
    assert!(
        html.contains("<span class=\"folder\">exp1/</span>"),
        "{html}"
    );

    // The filter matches folders.
    let html = String::from_utf8(fetch(port, "/webclient/?q=exp1", &[]).2).unwrap();
    assert_eq!(html.matches("<li title=").count(), 1, "{html}");
    assert!(html.contains("title=\"exp1/cell.png\""));

    // Previous/next follow the gallery's order.
    let id_of = |title: &str| {
        let html = String::from_utf8(fetch(port, "/webclient/", &[]).2).unwrap();
        let at = html.find(&format!("<li title=\"{title}\"")).unwrap();
        html[at..]
            .split("img_detail/")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    let viewer = String::from_utf8(
        fetch(
            port,
            &format!("/webclient/img_detail/{}/", id_of("exp1/cell.png")),
            &[],
        )
        .2,
    )
    .unwrap();
    assert!(viewer.contains(&format!(
        "rel=\"prev\" href=\"/webclient/img_detail/{}/\"",
        id_of("apple.png")
    )));
    assert!(viewer.contains(&format!(
        "rel=\"next\" href=\"/webclient/img_detail/{}/\"",
        id_of("exp2/cell.png")
    )));
}

#[test]
fn the_json_api_shows_folders_as_projects_datasets_and_images_in_omeros_shape() {
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    for dir in ["exp1", "exp2/day1/deep"] {
        std::fs::create_dir_all(repository.join(dir)).unwrap();
    }
    narrow_png(&repository.join("top.png"), 1, 0, 200);
    narrow_png(&repository.join("exp1/a.png"), 1, 0, 200);
    narrow_png(&repository.join("exp2/day1/b.png"), 1, 0, 200);
    narrow_png(&repository.join("exp2/day1/deep/c.png"), 1, 0, 200);
    site.ok(&["start"]);
    let port = site.port;
    let base = "http://localhost/api/v0";

    let versions = json_of(port, "/api/");
    assert_eq!(versions["data"][0]["version"], "0");
    assert_eq!(versions["data"][0]["url:base"], format!("{base}/"));
    assert_eq!(
        json_of(port, "/api/v0/")["url:projects"],
        format!("{base}/m/projects/")
    );

    // exp2 is a project (it has a folder below it); exp1 holds images directly: a
    // dataset without a project.
    let projects = json_of(port, "/api/v0/m/projects/");
    assert_eq!(projects["meta"]["totalCount"], 1, "{projects}");
    assert_eq!(projects["meta"]["limit"], 200);
    assert_eq!(projects["meta"]["maxLimit"], 500);
    let project = &projects["data"][0];
    assert_eq!(project["Name"], "exp2");
    assert_eq!(
        project["@type"],
        "http://www.openmicroscopy.org/Schemas/OME/2016-06#Project"
    );
    assert_eq!(project["omero:details"]["@type"], "TBD#Details");
    let pid = project["@id"].as_u64().unwrap();
    assert_eq!(project["url:project"], format!("{base}/m/projects/{pid}/"));
    assert_eq!(
        json_of(port, &format!("/api/v0/m/projects/{pid}/"))["data"]["@id"],
        pid
    );

    let datasets = json_of(port, &format!("/api/v0/m/projects/{pid}/datasets/"));
    assert_eq!(datasets["data"].as_array().unwrap().len(), 1);
    assert_eq!(datasets["data"][0]["Name"], "day1");
    let did = datasets["data"][0]["@id"].as_u64().unwrap();
    let all = json_of(port, "/api/v0/m/datasets/");
    let names: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["day1", "exp1"]);

    // The dataset's images: deeper folders flattened, their path in the name.
    let images = json_of(port, &format!("/api/v0/m/datasets/{did}/images/"));
    let names: Vec<&str> = images["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b.png", "deep/c.png"]);
    let iid = images["data"][0]["@id"].as_u64().unwrap();
    assert_eq!(
        json_of(port, &format!("/api/v0/m/images/{iid}/"))["data"]["Name"],
        "b.png"
    );
    assert_eq!(
        json_of(port, &format!("/api/v0/m/images/{iid}/datasets/"))["data"][0]["@id"],
        did
    );
    // The image's IDs are the gateway's own: imgData answers for it.
    assert_eq!(
        json_of(port, &format!("/webgateway/imgData/{iid}/"))["id"],
        iid
    );

    // Paging, and OMERO's 404 for a missing object; no ROIs.
    let page = json_of(port, "/api/v0/m/images/?limit=2&offset=1");
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["meta"]["totalCount"], 4);
    assert_eq!(page["meta"]["offset"], 1);
    let (status, _, body) = fetch(port, "/api/v0/m/projects/12345/", &[]);
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["message"],
        "Project 12345 not found"
    );
    assert_eq!(
        json_of(port, &format!("/api/v0/m/images/{iid}/rois/"))["meta"]["totalCount"],
        0
    );
    let (status, _, _) = fetch(port, "/api/v0/m/images/?limit=x", &[]);
    assert_eq!(status, 400);
}

#[test]
fn imagej_calibration_gives_pixel_size_and_z_spacing() {
    // An ImageJ hyperstack as ImageJ (and tifffile's imagej=True writer) lays it out:
    // 2 slices, `unit=\u00B5m` escaped, XResolution/YResolution 4 pixels per micron,
    // `spacing=2.5`.
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    std::fs::create_dir_all(&repository).unwrap();
    let file = std::fs::File::create(repository.join("calibrated.tif")).unwrap();
    let mut tiff = tiff::encoder::TiffEncoder::new(std::io::BufWriter::new(file)).unwrap();
    for slice in 0..2u8 {
        let mut image = tiff
            .new_image::<tiff::encoder::colortype::Gray8>(16, 8)
            .unwrap();
        image
            .encoder()
            .write_tag(
                tiff::tags::Tag::ImageDescription,
                "ImageJ=1.54f\nimages=2\nslices=2\nunit=\\u00B5m\nspacing=2.5\nloop=false\n",
            )
            .unwrap();
        image.resolution(
            tiff::tags::ResolutionUnit::None,
            tiff::encoder::Rational { n: 4, d: 1 },
        );
        image.write_data(&[slice * 100; 16 * 8]).unwrap();
    }
    drop(tiff);
    site.ok(&["start"]);
    let img = json_of(site.port, "/webgateway/imgData/1/");
    assert_eq!(img["size"]["z"], 2, "{img}");
    assert_eq!(img["pixel_size"]["x"].as_f64(), Some(0.25), "{img}");
    assert_eq!(img["pixel_size"]["y"].as_f64(), Some(0.25));
    assert_eq!(img["pixel_size"]["z"].as_f64(), Some(2.5));
    // The viewer shows the calibration (and so its scale bar).
    let (_, _, page) = fetch(site.port, "/webclient/img_detail/1/", &[]);
    assert!(String::from_utf8_lossy(&page).contains("0.25 µm/px"));
}

/// The versioned thumbnail URL of image `id` on a gallery page.
fn gallery_thumbnail_url(port: u16, id: u32) -> String {
    let html = String::from_utf8(fetch(port, "/webclient/", &[]).2).unwrap();
    let needle = format!("src=\"/webclient/render_thumbnail/{id}/?v=");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no versioned thumbnail of {id}: {html}"));
    let url = html[at + 5..].split('"').next().unwrap().to_string();
    // The 2x source carries the same version.
    let version = url.split("?v=").nth(1).unwrap();
    assert!(
        html.contains(&format!(
            "/webclient/render_thumbnail/size/192/{id}/?v={version} 2x"
        )),
        "{html}"
    );
    url
}

#[test]
fn thumbnail_urls_are_versioned_kept_by_browsers_and_change_with_the_image_or_its_settings() {
    let site = demo_site(2);
    site.ok(&["start"]);
    let port = site.port;
    let forever = Some("private, max-age=31536000, immutable");

    let first = gallery_thumbnail_url(port, 1);
    let other = gallery_thumbnail_url(port, 2);
    let (status, headers, versioned) = fetch(port, &first, &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), forever, "{first}");
    // The same picture as the plain URL, which is still revalidated every time.
    let (_, headers, plain) = fetch(port, "/webclient/render_thumbnail/1/", &[]);
    assert_eq!(plain, versioned);
    assert_eq!(
        header(&headers, "cache-control"),
        Some("private, max-age=0, must-revalidate")
    );
    // The viewer's overview carries the same version.
    let version = first.split("?v=").nth(1).unwrap();
    let viewer = String::from_utf8(fetch(port, "/webclient/img_detail/1/", &[]).2).unwrap();
    assert!(
        viewer.contains(&format!("data-thumbnail-version=\"{version}\"")),
        "{viewer}"
    );

    // Saved settings: a new URL at once, with the new picture; the old URL is no
    // longer promised for a year (whoever still asks gets the current picture).
    let response = post_form(
        port,
        "/webgateway/saveImgRDef/1/",
        "c=1%7C0%3A100%2400FF00&m=g",
    );
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    let saved = gallery_thumbnail_url(port, 1);
    assert_ne!(saved, first);
    let (status, headers, saved_thumb) = fetch(port, &saved, &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), forever);
    assert_ne!(saved_thumb, versioned);
    let (status, headers, stale) = fetch(port, &first, &[]);
    assert_eq!(status, 200);
    assert_eq!(stale, saved_thumb);
    assert_ne!(header(&headers, "cache-control"), forever);
    // The other image's URL is untouched.
    assert_eq!(gallery_thumbnail_url(port, 2), other);

    // A file replaced under the same name (another mtime): a new URL too.
    let file = site.root().join("var/repository/demo/demo-002.ome.tiff");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .set_modified(later)
        .unwrap();
    assert!(
        support::wait_until(std::time::Duration::from_secs(60), || {
            gallery_thumbnail_url(port, 2) != other
        }),
        "the replaced file's thumbnail URL did not change"
    );
    let (_, headers, _) = fetch(port, &gallery_thumbnail_url(port, 2), &[]);
    assert_eq!(header(&headers, "cache-control"), forever);
}

/// A composite ImageJ hyperstack of two 8-bit channels with its LUTs in the IJMetadata
/// tags, laid out as ImageJ and tifffile's ImageJ writer lay them out (little-endian
/// file: the magic reads `JIJI`, the LUT type `stul`): channel 1 magenta (a ramp),
/// channel 2 a table of its own (i ↦ (i, 255 − i, 0)). Channel 1 is black, channel 2
/// a flat 128.
fn write_imagej_luts(path: &std::path::Path) {
    let int = |v: &[u8; 4]| u32::from_be_bytes(*v).to_le_bytes();
    let mut metadata = int(b"IJIJ").to_vec();
    metadata.extend(int(b"luts"));
    metadata.extend(2u32.to_le_bytes());
    let mut counts = vec![metadata.len() as u32];
    let tables: [[Vec<u8>; 3]; 2] = [
        [(0..=255).collect(), vec![0; 256], (0..=255).collect()],
        [(0..=255).collect(), (0..=255).rev().collect(), vec![0; 256]],
    ];
    for table in &tables {
        counts.push(768);
        for component in table {
            metadata.extend(component);
        }
    }
    let file = std::fs::File::create(path).unwrap();
    let mut tiff = tiff::encoder::TiffEncoder::new(std::io::BufWriter::new(file)).unwrap();
    for (page, value) in [0u8, 128].into_iter().enumerate() {
        let mut image = tiff
            .new_image::<tiff::encoder::colortype::Gray8>(16, 8)
            .unwrap();
        image
            .encoder()
            .write_tag(
                tiff::tags::Tag::ImageDescription,
                "ImageJ=1.54f\nimages=2\nchannels=2\nmode=composite\nhyperstack=true\n",
            )
            .unwrap();
        if page == 0 {
            image
                .encoder()
                .write_tag(tiff::tags::Tag::Unknown(50838), counts.as_slice())
                .unwrap();
            image
                .encoder()
                .write_tag(tiff::tags::Tag::Unknown(50839), metadata.as_slice())
                .unwrap();
        }
        image.write_data(&[value; 16 * 8]).unwrap();
    }
}

/// The colour at the centre of a rendered JPEG.
fn centre_colour(port: u16, path: &str) -> [u8; 3] {
    let (status, _, jpeg) = fetch(port, path, &[]);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&jpeg));
    // Planar: all reds, then greens, then blues.
    let (width, height, channels, pixels) = support::decode_jpeg(&jpeg);
    assert_eq!(channels, 3, "{path}");
    let plane = (width * height) as usize;
    let at = ((height / 2) * width + width / 2) as usize;
    [0, 1, 2].map(|k| pixels[k * plane + at] as u8)
}

fn assert_near(found: [u8; 3], expected: [u8; 3], what: &str) {
    assert!(
        found
            .iter()
            .zip(expected)
            .all(|(&f, e)| (f as i32 - e as i32).abs() <= 6),
        "{what}: {found:?}, expected about {expected:?}"
    );
}

#[test]
fn imagej_luts_colour_their_channels_and_imagej_lut_names_are_accepted() {
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    std::fs::create_dir_all(&repository).unwrap();
    write_imagej_luts(&repository.join("composite.tif"));
    site.ok(&["start"]);
    let port = site.port;

    let img = json_of(port, "/webgateway/imgData/1/");
    assert_eq!(img["size"]["c"], 2, "{img}");
    // The ramp is its colour; the other table reports the colour it ends on.
    assert_eq!(img["channels"][0]["color"], "FF00FF", "{img}");
    assert_eq!(img["channels"][1]["color"], "FF0000", "{img}");

    // Drawn through the file's table: 128 ↦ (128, 127, 0), channel 1 adds nothing.
    assert_near(
        centre_colour(port, "/webgateway/render_image/1/0/0/"),
        [128, 127, 0],
        "the file's table",
    );
    // A colour asked for replaces the table.
    assert_near(
        centre_colour(
            port,
            "/webgateway/render_image/1/0/0/?c=1|0:255$FF0000,2|0:255$00FF00&m=c",
        ),
        [0, 128, 0],
        "an explicit colour",
    );
    // ImageJ's menu names are OMERO's tables: "Red/Green" is red-green.lut.
    let by_file = centre_colour(
        port,
        "/webgateway/render_image/1/0/0/?c=-1|0:255,2|0:255$red-green.lut&m=c",
    );
    let by_menu_name = centre_colour(
        port,
        "/webgateway/render_image/1/0/0/?c=-1|0:255,2|0:255$Red/Green&m=c",
    );
    assert_eq!(by_menu_name, by_file);
    assert_ne!(
        by_file,
        centre_colour(
            port,
            "/webgateway/render_image/1/0/0/?c=-1|0:255,2|0:255&m=c"
        )
    );

    // The viewer keeps the table: it sends no colour for that channel.
    let (_, _, page) = fetch(port, "/webclient/img_detail/1/", &[]);
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("data-index=\"2\" data-start=\"0\" data-end=\"255\" data-color=\"FF0000\" data-file-lut=\"1\""),
        "{page}"
    );
}

#[test]
fn the_api_lists_one_embedded_server_a_token_a_login_and_the_public_user() {
    let site = demo_site(1);
    site.ok(&["start"]);
    let port = site.port;
    // Links are on the host asked (support::fetch asks for `localhost`).
    let base = "http://localhost/api/v0";

    // What /api/v0/ links to is there.
    let v0 = json_of(port, "/api/v0/");
    for key in ["url:servers", "url:token", "url:login", "url:experimenters"] {
        assert!(v0[key].as_str().is_some(), "{key}: {v0}");
    }
    assert_eq!(
        json_of(port, "/api/v0/servers/"),
        serde_json::json!({"data": [{"id": 1, "host": "embedded", "port": 0, "server": "embedded"}]})
    );
    let token = json_of(port, "/api/v0/token/");
    let token = token["data"].as_str().unwrap().to_string();
    assert!(
        token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );

    // login: OMERO's 405 for a GET; a POST is the public user's event context.
    let (status, headers, body) = fetch(port, "/api/v0/login/", &[]);
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["message"],
        "POST only with username, password, server and csrftoken"
    );
    let response = post_form(
        port,
        "/api/v0/login/",
        &format!("username=anyone&password=x&server=1&csrfmiddlewaretoken={token}"),
    );
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    let login: serde_json::Value = serde_json::from_str(body_of(&response)).unwrap();
    assert_eq!(login["success"], true, "{login}");
    let context = &login["eventContext"];
    assert_eq!(
        (
            &context["userName"],
            &context["userId"],
            &context["groupName"],
            &context["isAdmin"]
        ),
        (
            &serde_json::json!("public"),
            &serde_json::json!(0),
            &serde_json::json!("public"),
            &serde_json::json!(false)
        )
    );

    // The public user and group, the owner every object names.
    let owner = json_of(port, "/api/v0/m/images/1/")["data"]["omero:details"]["owner"].clone();
    let users = json_of(port, "/api/v0/m/experimenters/");
    assert_eq!(users["meta"]["totalCount"], 1, "{users}");
    let user = &users["data"][0];
    assert_eq!(user["@id"], owner["@id"]);
    assert_eq!(user["UserName"], "public");
    assert_eq!(
        user["@type"],
        "http://www.openmicroscopy.org/Schemas/OME/2016-06#Experimenter"
    );
    assert_eq!(
        user["url:experimenter"],
        format!("{base}/m/experimenters/0/")
    );
    assert_eq!(
        json_of(port, "/api/v0/m/experimenters/0/")["data"]["UserName"],
        "public"
    );
    let groups = json_of(port, "/api/v0/m/experimenters/0/experimentergroups/");
    assert_eq!(groups["data"][0]["Name"], "public", "{groups}");
    let members = json_of(port, "/api/v0/m/experimentergroups/0/experimenters/");
    assert_eq!(members["data"][0]["UserName"], "public", "{members}");
    let (status, _, body) = fetch(port, "/api/v0/m/experimenters/7/", &[]);
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("Experimenter 7 not found"));
}

#[test]
fn a_big_image_reports_its_resolution_levels_as_omero_reports_a_pyramid() {
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    std::fs::create_dir_all(&repository).unwrap();
    // 2500 px wide: levels of 2500, 1250 and 625 px.
    let file = std::fs::File::create(repository.join("wide.png")).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), 2500, 40);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&vec![77u8; 2500 * 40])
        .unwrap();
    site.ok(&["start"]);
    let img = json_of(site.port, "/webgateway/imgData/1/");
    assert_eq!(img["tiles"], true, "{img}");
    assert_eq!(img["levels"], 3);
    assert_eq!(
        img["tile_size"],
        serde_json::json!({"width": 512, "height": 512})
    );
    assert_eq!(
        img["resolutions"],
        serde_json::json!({"0": {"sizeX": 2500, "sizeY": 40}, "1": {"sizeX": 1250, "sizeY": 20}, "2": {"sizeX": 625, "sizeY": 10}})
    );
    assert_eq!(
        img["zoomLevelScaling"],
        serde_json::json!({"0": 1.0, "1": 0.5, "2": 0.25})
    );
    // The last level's tiles, and OMERO's 400 past it.
    let (status, _, jpeg) = fetch(
        site.port,
        "/webgateway/render_image_region/1/0/0/?tile=2,1,0,512,512",
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(support::decode_jpeg(&jpeg).0, 625 - 512);
    let (status, _, body) = fetch(
        site.port,
        "/webgateway/render_image_region/1/0/0/?tile=3,0,0",
        &[],
    );
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body)
            .contains("Invalid resolution level, 3 > number of available levels 2")
    );
}

/// A stand-in for the omero_iviewer package: its template's two Django constructs and
/// a static file, enough to see what the gateway renders and collects.
fn fake_iviewer(site: &TestSite) {
    let package = site.root().join("var/apps/omero_iviewer");
    std::fs::create_dir_all(package.join("templates/omero_iviewer")).unwrap();
    std::fs::create_dir_all(package.join("static/omero_iviewer")).unwrap();
    std::fs::write(
        package.join("templates/omero_iviewer/index.html"),
        "<script src=\"{% static 'omero_iviewer/main.js'|add:iviewer_url_suffix %}\"></script>\n<script>\n{% for key, value in params.items %}\n    window.INITIAL_REQUEST_PARAMS['{{key}}'] = \"{{value}}\";\n{% endfor %}\n</script>\n",
    )
    .unwrap();
    std::fs::write(package.join("static/omero_iviewer/main.js"), "// iviewer\n").unwrap();
    std::fs::write(package.join("version.py"), "VERSION = (0, 19, 1)\n").unwrap();
}

#[test]
fn iviewer_is_served_when_installed_and_opens_from_img_detail_when_it_is_the_viewer() {
    let site = demo_site(1);
    site.append_config("\"omero.web.viewer.view\" = \"omero_iviewer.views.index\"\n");
    site.ok(&["start"]);
    let port = site.port;
    // Not installed: /iviewer/ says so, and img_detail keeps the built-in viewer.
    let (status, _, body) = fetch(port, "/iviewer/?images=1", &[]);
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("not installed"));
    let (status, _, body) = fetch(port, "/webclient/img_detail/1/", &[]);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("id=\"viewer\""));

    fake_iviewer(&site);
    site.ok(&["restart"]);
    // Its static files collected into static_root (var/static) at start.
    assert_eq!(
        std::fs::read_to_string(site.root().join("var/static/omero_iviewer/main.js")).unwrap(),
        "// iviewer\n"
    );
    let (_, headers, body) = fetch(port, "/static/omero_iviewer/main.js", &[]);
    assert_eq!(body, b"// iviewer\n");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let (status, _, body) = fetch(port, "/iviewer/?images=1&zm=50", &[]);
    let page = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{page}");
    for line in [
        "<script src=\"/static/omero_iviewer/main.js?_iviewer-0.19.1\"></script>",
        "window.INITIAL_REQUEST_PARAMS[\"IMAGES\"] = \"1\";",
        "window.INITIAL_REQUEST_PARAMS[\"ZM\"] = \"50\";",
        "window.INITIAL_REQUEST_PARAMS[\"WEBGATEWAY\"] = \"/webgateway/\";",
        "window.INITIAL_REQUEST_PARAMS[\"WEB_API_BASE\"] = \"/api/v0/\";",
    ] {
        assert!(page.contains(line), "{line} missing from {page}");
    }
    // img_detail is iviewer's page for that image, as OMERO calls the configured view.
    let (status, _, body) = fetch(port, "/webclient/img_detail/1/", &[]);
    let page = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(
        page.contains("window.INITIAL_REQUEST_PARAMS[\"IMAGES\"] = \"1\";")
            && !page.contains("id=\"viewer\""),
        "{page}"
    );
    // iviewer's image data: imgData with no ROIs.
    let data = json_of(port, "/iviewer/image_data/1/");
    assert_eq!(
        (data["id"].as_u64(), &data["roi_count"]),
        (Some(1), &serde_json::json!(0))
    );
    assert_eq!(
        json_of(port, "/webgateway/open_with/"),
        serde_json::json!({"open_with_options": []})
    );
    // The demo's folder is the image's dataset (the thumbnail strip's test is
    // `iviewers_thumbnail_strip_finds_the_images_dataset_and_its_thumbnails`).
    let paths = json_of(port, "/webclient/api/paths_to_object/?image=1");
    let types: Vec<&str> = paths["paths"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["experimenter", "dataset", "image"], "{paths}");
    assert_eq!(paths["paths"][0][1]["id"], data["meta"]["datasetId"]);
}

/// OMERO.iviewer's views about ROIs, time, wells and intensities answer as for an
/// image with none of them, in its views' JSON shapes, instead of 404; what it may not
/// save is refused in the shapes it shows.
#[test]
fn iviewers_views_answer_as_for_an_image_without_rois_time_or_well() {
    let site = demo_site(1);
    site.ok(&["start"]);
    let port = site.port;
    let img = json_of(port, "/webgateway/imgData/1/");
    assert_eq!(img["perms"]["canAnnotate"], true, "{img}");
    let (size_z, size_t) = (
        img["size"]["z"].as_u64().unwrap(),
        img["size"]["t"].as_u64().unwrap(),
    );
    let delta = json_of(port, "/iviewer/image_data/1/delta_t/");
    assert_eq!(delta["image_id"], "1", "{delta}");
    assert_eq!(delta["delta_t_unit_symbol"], serde_json::Value::Null);
    assert_eq!(
        delta["delta_t"].as_array().unwrap().len(),
        if size_t > 1 { size_t as usize } else { 0 }
    );
    assert_eq!(
        json_of(port, "/iviewer/rois_by_plane/1/0/0/"),
        serde_json::json!({"data": [], "meta": {"totalCount": 0}})
    );
    let counts = json_of(port, "/iviewer/plane_shape_counts/1/");
    assert_eq!(
        counts["data"].as_array().unwrap().len(),
        size_z as usize,
        "{counts}"
    );
    assert!(counts["data"][0].as_array().unwrap().iter().all(|c| c == 0));
    assert_eq!(counts["data"][0].as_array().unwrap().len(), size_t as usize);
    let (status, _, body) = fetch(port, "/iviewer/plane_shape_counts/99/", &[]);
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));

    // The values around (10, 3), read from the file: 51 columns from x 0, 51 rows.
    let intensity = json_of(port, "/iviewer/get_intensity/?image=1&x=10&y=3&z=0&t=0&c=0");
    assert_eq!(intensity["count"], 51 * 51, "{}", intensity["count"]);
    let (min, max) = (
        img["channels"][0]["window"]["min"].as_f64().unwrap(),
        img["channels"][0]["window"]["max"].as_f64().unwrap(),
    );
    let pixels = intensity["pixels"].as_object().unwrap();
    assert_eq!(pixels.len(), 51 * 51);
    assert!(pixels.values().all(|p| {
        let v = p["0"].as_f64().unwrap();
        v >= min && v <= max
    }));
    assert!(pixels.values().any(|p| p["0"].as_f64().unwrap() > min));
    assert_eq!(
        json_of(port, "/iviewer/get_intensity/?image=1&x=10")["error"],
        "Mandatory params are: image, x, y, c, z and t"
    );
    assert_eq!(
        json_of(port, "/iviewer/shape_stats/?ids=&z=0&t=0"),
        serde_json::json!({})
    );
    assert_eq!(
        json_of(port, "/iviewer/well_images/?id=4"),
        serde_json::json!({"data": [], "meta": {"totalCount": 0}})
    );
    let refused = body_of(&post_form(port, "/iviewer/persist_rois/", "{}")).to_string();
    assert!(
        refused.contains("\"errors\"") && refused.contains("read-only"),
        "{refused}"
    );
    let refused = json_of(port, "/iviewer/save_projection/?image=1&projection=intmax");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("cannot be saved"),
        "{refused}"
    );
}

/// What OMERO.iviewer's thumbnail strip follows: `paths_to_object` to the image's
/// dataset (imgData's `meta.datasetId` must name the same one), then that dataset's
/// images from the JSON API, then `webclient/render_thumbnail/` for each.
#[test]
fn iviewers_thumbnail_strip_finds_the_images_dataset_and_its_thumbnails() {
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    std::fs::create_dir_all(repository.join("exp1")).unwrap();
    narrow_png(&repository.join("top.png"), 1, 0, 200);
    narrow_png(&repository.join("exp1/b.png"), 1, 0, 200);
    narrow_png(&repository.join("exp1/a.png"), 1, 0, 200);
    site.ok(&["start"]);
    let port = site.port;
    let datasets = json_of(port, "/api/v0/m/datasets/");
    let did = datasets["data"][0]["@id"].as_u64().unwrap();
    let images = json_of(
        port,
        &format!("/api/v0/m/datasets/{did}/images/?offset=0&limit=10"),
    );
    assert_eq!(images["meta"]["totalCount"], 2, "{images}");
    let b = images["data"][1]["@id"].as_u64().unwrap();
    assert_eq!(images["data"][1]["Name"], "b.png");

    let meta = &json_of(port, &format!("/iviewer/image_data/{b}/"))["meta"];
    assert_eq!(meta["datasetId"], did, "{meta}");
    assert_eq!(meta["datasetName"], "exp1");
    assert_eq!(meta["projectId"], serde_json::Value::Null);
    assert_eq!(
        json_of(port, &format!("/webgateway/imgData/{b}/"))["meta"]["datasetId"],
        did
    );

    let paths = json_of(
        port,
        &format!("/webclient/api/paths_to_object/?image={b}&page_size=10"),
    );
    assert_eq!(
        paths,
        serde_json::json!({"paths": [[
            {"type": "experimenter", "id": 0},
            {"type": "dataset", "id": did, "childCount": 2},
            {"type": "image", "id": b},
        ]]})
    );
    // A page of one: b is second by name, on page 2.
    let paged = json_of(
        port,
        &format!("/webclient/api/paths_to_object/?image={b}&page_size=1"),
    );
    assert_eq!(paged["paths"][0][1]["childIndex"], 1, "{paged}");
    assert_eq!(paged["paths"][0][1]["childPage"], 2);
    let top = json_of(port, "/api/v0/m/images/")["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["Name"] == "top.png")
        .unwrap()["@id"]
        .as_u64()
        .unwrap();
    assert_eq!(
        json_of(
            port,
            &format!("/webclient/api/paths_to_object/?image={top}")
        )["paths"][0][1],
        serde_json::json!({"type": "orphaned", "id": 0})
    );
    assert_eq!(
        json_of(port, "/webclient/api/paths_to_object/?image=99999"),
        serde_json::json!({"paths": []})
    );
    let (status, _, _) = fetch(port, "/webclient/api/paths_to_object/?image=x", &[]);
    assert_eq!(status, 400);

    let (status, headers, body) = fetch(port, &format!("/webclient/render_thumbnail/{b}/"), &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("image/jpeg"));
    assert!(body.starts_with(&[0xff, 0xd8]));

    // No ROI or shape exists: OMERO's 404 naming what it could not find.
    for (path, message) in [
        ("/iviewer/roi/5/page_data/", "Could not find roi: 5"),
        ("/iviewer/shape/6/page_data/", "Could not find shape: 6"),
        ("/iviewer/roi/5/image_data/", "Could not find roi: 5"),
    ] {
        let (status, _, body) = fetch(port, path, &[]);
        assert_eq!(status, 404, "{path}");
        assert_eq!(String::from_utf8_lossy(&body).trim(), message, "{path}");
    }
}

/// A Python with numpy and the real `tifffile` (PyPI): the bench's peer venv when it
/// has them, else a venv of its own in `~/.cache/omero-webctl/tifffile-venv`, made
/// once with pip. None (the test skips; under CI=true it fails) when neither works.
fn tifffile_python(test: &str) -> Option<std::path::PathBuf> {
    let cache = support::cache_dir();
    let works = |python: &std::path::Path| {
        std::process::Command::new(python)
            .args(["-c", "import numpy, tifffile"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let own = cache.join("tifffile-venv");
    for venv in [cache.join("peer-venv"), own.clone()] {
        if works(&venv.join("bin/python")) {
            return Some(venv.join("bin/python"));
        }
    }
    let made = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&own)
        .status()
        .is_ok_and(|s| s.success())
        && std::process::Command::new(own.join("bin/pip"))
            .args(["install", "-q", "numpy", "tifffile"])
            .status()
            .is_ok_and(|s| s.success());
    if made && works(&own.join("bin/python")) {
        return Some(own.join("bin/python"));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: no Python with numpy and tifffile ({} could not be made); CI=true requires it",
        own.display()
    );
    eprintln!("{test}: skipped, no Python with numpy and tifffile");
    None
}

/// Files written by tifffile's own ImageJ writer (`imwrite(imagej=True)`): a 16-bit
/// composite Z stack with per-channel LUTs, display ranges (`Ranges`), calibration
/// and Z spacing, and a single-channel file whose range is `min=`/`max=` in its
/// description. The gateway opens them as ImageJ does: the LUTs colour the channels
/// and the ranges are the default windows.
#[test]
fn imagej_files_written_by_tifffile_keep_their_luts_ranges_and_calibration() {
    let test = "imagej_files_written_by_tifffile_keep_their_luts_ranges_and_calibration";
    let Some(python) = tifffile_python(test) else {
        return;
    };
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    std::fs::create_dir_all(&repository).unwrap();
    let script = r#"
import sys, numpy as np, tifffile
ramp = np.arange(256, dtype='uint8')
magenta = np.zeros((3, 256), 'uint8'); magenta[0] = ramp; magenta[2] = ramp
own = np.zeros((3, 256), 'uint8'); own[0] = ramp; own[1] = 255 - ramp
data = np.zeros((2, 2, 16, 32), 'uint16')
data[:, 0] = np.arange(32, dtype='uint16') * 100
data[:, 1] = 250
tifffile.imwrite(sys.argv[1] + '/a-composite.tif', data, imagej=True, resolution=(4.0, 4.0),
    metadata={'axes': 'ZCYX', 'mode': 'composite', 'unit': 'um', 'spacing': 2.5,
              'LUTs': [magenta, own], 'Ranges': (100.0, 3000.0, 0.0, 500.0)})
tifffile.imwrite(sys.argv[1] + '/b-single.tif', np.full((16, 32), 1000, 'uint16'), imagej=True,
    metadata={'min': 500.0, 'max': 2000.0})
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(&repository)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    site.ok(&["start"]);
    let port = site.port;
    let ids: Vec<(String, u64)> = json_of(port, "/api/v0/m/images/")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["Name"].as_str().unwrap().to_string(),
                i["@id"].as_u64().unwrap(),
            )
        })
        .collect();
    let id = |name: &str| ids.iter().find(|(n, _)| n == name).unwrap().1;
    let (composite, single) = (id("a-composite.tif"), id("b-single.tif"));

    let img = json_of(port, &format!("/webgateway/imgData/{composite}/"));
    assert_eq!(img["size"]["z"], 2, "{img}");
    assert_eq!(img["size"]["c"], 2);
    assert_eq!(img["meta"]["pixelsType"], "uint16");
    assert_eq!(img["pixel_size"]["x"].as_f64(), Some(0.25), "{img}");
    assert_eq!(img["pixel_size"]["z"].as_f64(), Some(2.5));
    // The magenta ramp is its colour; the other table reports the colour it ends on.
    assert_eq!(img["channels"][0]["color"], "FF00FF", "{img}");
    assert_eq!(img["channels"][1]["color"], "FF0000");
    // The windows are the file's display ranges, not the data's min/max.
    let window = |c: usize| {
        (
            img["channels"][c]["window"]["start"].as_f64().unwrap(),
            img["channels"][c]["window"]["end"].as_f64().unwrap(),
        )
    };
    assert_eq!(window(0), (100.0, 3000.0), "{img}");
    assert_eq!(window(1), (0.0, 500.0));
    assert_eq!(img["channels"][0]["window"]["max"].as_f64(), Some(3100.0));
    // The centre pixel: 1600 of 100..3000 through magenta (≈ 132, 0, 132), plus 250 of
    // 0..500 through the file's own table (≈ 128, 127, 0).
    assert_near(
        centre_colour(port, &format!("/webgateway/render_image/{composite}/0/0/")),
        [255, 127, 132],
        "the file's tables and ranges",
    );

    // One channel: the description's min/max is the window (1000 of 500..2000 is a
    // third of the way up).
    let img = json_of(port, &format!("/webgateway/imgData/{single}/"));
    assert_eq!(
        img["channels"][0]["window"]["start"].as_f64(),
        Some(500.0),
        "{img}"
    );
    assert_eq!(img["channels"][0]["window"]["end"].as_f64(), Some(2000.0));
    let (status, _, jpeg) = fetch(
        port,
        &format!("/webgateway/render_image/{single}/0/0/"),
        &[],
    );
    assert_eq!(status, 200);
    let (width, height, channels, pixels) = support::decode_jpeg(&jpeg);
    assert_eq!(channels, 1, "a grey JPEG");
    let centre = pixels[((height / 2) * width + width / 2) as usize];
    assert!(
        (centre as i32 - 85).abs() <= 4,
        "the description's range: {centre}"
    );
}
