//! What monitors and the viewer's pages meet: the login and keep-alive pings, an unreadable
//! image's error page, the API's server list, versioned thumbnail URLs.

use super::*;

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
