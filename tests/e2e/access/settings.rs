//! Rendering settings per user: members may save them, the public user may not, each user
//! renders with their own and the published thumbnail stays the owner's.

use super::*;

/// imgData's `perms` tell OMERO.iviewer whether its "Save" works: a member of the
/// owning group may save rendering settings; the public user sees the public image
/// but may not save (refused even where the site lets it POST).
#[test]
fn members_may_save_rendering_settings_and_the_public_user_may_not() {
    let site = three_group_site(&format!(
        "\"omero.web.public.enabled\" = true\n\"omero.web.public.get_only\" = false\n\"omero.web.public.url_filter\" = '{PUBLIC_FILTER}'\n"
    ));
    add_user(&site, "alice", "pw-a", &["labA", "labB", "public"]);
    site.ok(&["start"]);
    let port = site.port;
    let alice = login(port, "sessionid", "alice", "pw-a");
    let images = ids_by_group(port, &alice);
    let id_of = |g: &str| images.iter().find(|(group, _)| group == g).unwrap().1;
    let (lab_a, public) = (id_of("labA"), id_of("public"));
    let perms = |id: u64, cookie: Option<&str>| {
        let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("Cookie", c)]).unwrap_or_default();
        let (status, _, body) = request(
            port,
            "GET",
            &format!("/webgateway/imgData/{id}/"),
            &headers,
            "",
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json["perms"].clone()
    };
    let save = |id: u64, cookie: Option<&str>| {
        let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("Cookie", c)]).unwrap_or_default();
        let (status, _, body) = request(
            port,
            "POST",
            &format!("/webgateway/saveImgRDef/{id}/"),
            &headers,
            "c=1%7C5%3A60%24FF0000%2C2%7C0%3A90%2400FF00&m=c",
        );
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    for id in [lab_a, public] {
        assert_eq!(
            perms(id, Some(&alice))["canAnnotate"],
            true,
            "alice on {id}"
        );
        assert_eq!(
            save(id, Some(&alice)),
            (200, "true".to_string()),
            "alice on {id}"
        );
    }
    let public_perms = perms(public, None);
    assert_eq!(public_perms["canAnnotate"], false, "{public_perms}");
    assert_eq!(public_perms["canEdit"], false, "{public_perms}");
    let before = std::fs::read_dir(site.root().join("var/rdefs"))
        .map(|d| d.count())
        .unwrap_or(0);
    let (status, body) = save(public, None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not save rendering settings"), "{body}");
    // Alice's saved window is still what she sees (her own set: the public user sees
    // the owner's, see the per-user test below).
    let (_, _, rdef) = request(
        port,
        "GET",
        &format!("/webgateway/imgData/{public}/"),
        &[("Cookie", &alice)],
        "",
    );
    let rdef: serde_json::Value = serde_json::from_slice(&rdef).unwrap();
    assert_eq!(rdef["channels"][0]["window"]["start"], 5.0, "{rdef}");
    assert_eq!(rdef["channels"][0]["window"]["end"], 60.0, "{rdef}");
    let after = std::fs::read_dir(site.root().join("var/rdefs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(before, after);
}

#[test]
fn each_user_renders_with_their_own_settings_and_the_published_thumbnail_stays_the_owners() {
    let site = three_group_site(&format!(
        "\"omero.web.public.enabled\" = true\n\"omero.web.public.url_filter\" = '{PUBLIC_FILTER}'\n"
    ));
    add_user(&site, "alice", "pw-a", &["labA", "labB", "public"]);
    add_user(&site, "bob", "pw-b", &["labA", "labB", "public"]);
    site.ok(&["start"]);
    let port = site.port;
    let alice = login(port, "sessionid", "alice", "pw-a");
    let bob = login(port, "sessionid", "bob", "pw-b");
    let images = ids_by_group(port, &alice);
    let id = images.iter().find(|(g, _)| g == "public").unwrap().1;
    let get = |path: &str, cookie: Option<&str>| {
        let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("Cookie", c)]).unwrap_or_default();
        let (status, _, body) = request(port, "GET", path, &headers, "");
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        body
    };
    let post = |path: &str, cookie: &str, body: &str| {
        let (status, _, answer) = request(port, "POST", path, &[("Cookie", cookie)], body);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&answer));
        String::from_utf8_lossy(&answer).into_owned()
    };
    let window = |cookie: Option<&str>| {
        let json: serde_json::Value =
            serde_json::from_slice(&get(&format!("/webgateway/imgData/{id}/"), cookie)).unwrap();
        let w = &json["channels"][0]["window"];
        (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap())
    };
    let render = |cookie: Option<&str>| get(&format!("/webgateway/render_image/{id}/0/0/"), cookie);
    let thumb = |cookie: Option<&str>| get(&format!("/webgateway/render_thumbnail/{id}/"), cookie);
    // The version in the gallery's thumbnail URL (`?v=`), as a user's browser keeps it.
    let version = |cookie: &str| {
        let page = String::from_utf8(get("/webclient/", Some(cookie))).unwrap();
        let marker = format!("render_thumbnail/{id}/?v=");
        let start = page.find(&marker).expect("the image's thumbnail URL") + marker.len();
        page[start..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
    };
    let owners_version = version(&bob);

    // The owner's rendering (the imported defaults): the public user's thumbnail is
    // published for nginx.
    let defaults = window(None);
    let owners_render = render(None);
    let owners_thumb = thumb(None);
    let published = site.root().join(format!("var/cache/published/t/{id}.jpg"));
    assert!(
        wait_until(LONG, || published.is_file()),
        "the public thumbnail is published: {}",
        site.log()
    );
    let published_bytes = std::fs::read(&published).unwrap();

    // Alice saves a window: hers alone.
    let saved = post(
        &format!("/webgateway/saveImgRDef/{id}/"),
        &alice,
        "c=1%7C5%3A60%24FF0000%2C2%7C0%3A90%2400FF00&m=c",
    );
    assert_eq!(saved, "true");
    assert_eq!(window(Some(&alice)), (5.0, 60.0));
    assert_eq!(window(Some(&bob)), defaults, "bob sees the owner's");
    assert_eq!(window(None), defaults, "the public user sees the owner's");
    let alice_render = render(Some(&alice));
    assert_ne!(alice_render, owners_render);
    assert_eq!(render(Some(&bob)), owners_render);
    let alice_thumb = thumb(Some(&alice));
    assert_ne!(alice_thumb, owners_thumb);
    assert_eq!(thumb(Some(&bob)), owners_thumb);
    assert_ne!(
        version(&alice),
        owners_version,
        "alice's thumbnail URL is her own"
    );
    assert_eq!(version(&bob), owners_version);

    // Bob saves his own; each sees theirs.
    let saved = post(
        &format!("/webgateway/saveImgRDef/{id}/"),
        &bob,
        "c=1%7C0%3A20%240000FF%2C2%7C0%3A30%24FF00FF&m=c",
    );
    assert_eq!(saved, "true");
    assert_eq!(window(Some(&bob)), (0.0, 20.0));
    assert_eq!(window(Some(&alice)), (5.0, 60.0));
    let bob_render = render(Some(&bob));
    assert_ne!(bob_render, alice_render);
    assert_ne!(bob_render, owners_render);
    assert_eq!(render(Some(&alice)), alice_render);
    let bob_thumb = thumb(Some(&bob));
    assert_ne!(bob_thumb, alice_thumb);
    assert_ne!(bob_thumb, owners_thumb);
    assert_eq!(thumb(None), owners_thumb);
    // Every user's set is listed, as OMERO's getAllRenderingDefs.
    let listed: serde_json::Value = serde_json::from_slice(&get(
        &format!("/webgateway/get_image_rdefs_json/{id}/"),
        Some(&alice),
    ))
    .unwrap();
    let names: Vec<&str> = listed["rdefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["owner"]["omeName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["", "alice", "bob"], "{listed}");
    assert_eq!(listed["rdefs"][2]["c"][0]["end"], 20.0, "{listed}");
    // The published thumbnail (nginx, no pool) stays the owner's.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(std::fs::read(&published).unwrap(), published_bytes);

    // applyOwnersRDef brings bob back to the owner's; alice keeps hers.
    let done = post(
        "/webgateway/applyOwnersRDef/",
        &bob,
        &format!("toids={id}&to_type=image"),
    );
    assert_eq!(done, format!("[{id}]"));
    assert_eq!(window(Some(&bob)), defaults);
    assert_eq!(render(Some(&bob)), owners_render);
    assert_eq!(thumb(Some(&bob)), owners_thumb);
    assert_eq!(version(&bob), owners_version);
    assert_eq!(window(Some(&alice)), (5.0, 60.0));
    // resetRDef takes alice's own set back to the imported defaults.
    let done = post(
        "/webgateway/resetRDef/",
        &alice,
        &format!("toids={id}&to_type=image"),
    );
    assert_eq!(done, format!("[{id}]"));
    assert_eq!(window(Some(&alice)), defaults);
    assert_eq!(render(Some(&alice)), owners_render);
}
