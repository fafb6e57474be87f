//! OMERO.iviewer's requests of the gateway: served when installed, its views for an image
//! without ROIs, time or well, its thumbnail strip.

use super::*;

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
