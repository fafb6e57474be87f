//! Rendering as OMERO's clients ask for it: RGB and grey photos, settings saved per image,
//! reset, copied and followed by thumbnails, OMERO's lookup tables.

use super::*;

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
