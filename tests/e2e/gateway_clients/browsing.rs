//! Folders as OMERO's projects and datasets: same-named files told apart, the filter and the
//! order, the JSON API's shape, a big image's resolution levels.

use super::*;

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
