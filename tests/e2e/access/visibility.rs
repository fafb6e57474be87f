//! Who sees which image: every route family answers exactly the allowed viewers, and an
//! image one may not see answers as a missing one.

use super::*;

/// The route families the guard covers; `{id}` is the image. `public` says whether
/// the documented public filter lets the public user open it.
const FAMILIES: &[(&str, bool)] = &[
    ("/webgateway/render_thumbnail/{id}/", true),
    ("/webgateway/render_thumbnail/{id}/48/", true),
    ("/webgateway/render_birds_eye_view/{id}/", true),
    ("/webgateway/render_image/{id}/0/0/", true),
    (
        "/webgateway/render_image_region/{id}/0/0/?region=0,0,32,32",
        true,
    ),
    ("/webgateway/render_split_channel/{id}/0/0/", true),
    ("/webgateway/render_row_plot/{id}/0/0/10/", true),
    ("/webgateway/histogram_json/{id}/channel/0/", true),
    ("/webgateway/imgData/{id}/", true),
    ("/webgateway/get_thumbnail/{id}/", true),
    ("/webgateway/get_image_rdefs_json/{id}/", true),
    ("/webclient/img_detail/{id}/", true),
    ("/webclient/render_image_download/{id}/?format=png", true),
    ("/api/v0/m/images/{id}/", true),
    ("/webgateway/archived_files/download/{id}/", false),
    ("/webgateway/archived_files/download/?image={id}", false),
];

#[test]
fn every_route_family_answers_exactly_the_viewers_allowed_to_see_the_image() {
    let nginx = nginx_available("the access matrix's nginx column");
    let site = three_group_site(&format!(
        "\"omero.web.public.enabled\" = true\n\"omero.web.public.url_filter\" = '{PUBLIC_FILTER}'\n"
    ));
    add_user(&site, "alice", "pw-a", &["labA"]);
    add_user(&site, "bob", "pw-b", &["labB"]);
    add_user(&site, "root-of-all", "pw-r", &["labA", "labB", "public"]);
    site.ok(&["start"]);
    let port = site.port;
    let all = login(port, "sessionid", "root-of-all", "pw-r");
    let images = ids_by_group(port, &all);
    let viewers = [
        ("alice", Some(login(port, "sessionid", "alice", "pw-a"))),
        ("bob", Some(login(port, "sessionid", "bob", "pw-b"))),
        // The public user is whoever comes without a session.
        ("public", None),
    ];
    let mut cells = 0;
    for (family, public_ok) in FAMILIES {
        for (group, id) in &images {
            let path = family.replace("{id}", &id.to_string());
            for (viewer, cookie) in &viewers {
                let headers: Vec<(&str, &str)> = cookie
                    .as_deref()
                    .map(|c| vec![("Cookie", c)])
                    .unwrap_or_default();
                let (status, _, body) = fetch(port, &path, &headers);
                let allowed = match *viewer {
                    "alice" => group == "labA",
                    "bob" => group == "labB",
                    _ => group == "public" && *public_ok,
                };
                assert_eq!(
                    (200..300).contains(&status),
                    allowed,
                    "{viewer} on {group}'s image: {path} answered {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                );
                cells += 1;
            }
        }
    }
    assert_eq!(cells, FAMILIES.len() * 9);

    // Batches and listings only ever hold what the viewer sees.
    let id_of = |g: &str| images.iter().find(|(group, _)| group == g).unwrap().1;
    let (a, b, p) = (id_of("labA"), id_of("labB"), id_of("public"));
    let batch = format!("/webgateway/get_thumbnails/?id={a}&id={b}&id={p}");
    for (viewer, cookie, expected) in [
        ("alice", viewers[0].1.as_deref(), vec![a]),
        ("bob", viewers[1].1.as_deref(), vec![b]),
        ("public", None, vec![p]),
    ] {
        let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("Cookie", c)]).unwrap_or_default();
        let (status, _, body) = fetch(port, &batch, &headers);
        assert_eq!(status, 200);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut got: Vec<u64> = json
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.is_string())
            .map(|(k, _)| k.parse().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, expected, "{viewer}: {json}");
        let (_, _, body) = fetch(port, "/api/v0/m/images/", &headers);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let listed: Vec<u64> = json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["@id"].as_u64().unwrap())
            .collect();
        assert_eq!(listed, expected, "{viewer}'s API listing");
        let (_, _, page) = fetch(port, "/webclient/", &headers);
        let page = String::from_utf8_lossy(&page);
        assert!(page.contains("1 image"), "{viewer}'s gallery: {page}");
    }
    // The webclient's thumbnail answers an image one may not see as a missing one:
    // the placeholder.
    let missing = fetch(
        port,
        "/webclient/render_thumbnail/999999/",
        &[("Cookie", &all)],
    )
    .2;
    let alice = viewers[0].1.as_deref().unwrap();
    assert_eq!(
        fetch(
            port,
            &format!("/webclient/render_thumbnail/{b}/"),
            &[("Cookie", alice)]
        )
        .2,
        missing
    );
    assert_ne!(
        fetch(
            port,
            &format!("/webclient/render_thumbnail/{a}/"),
            &[("Cookie", alice)]
        )
        .2,
        missing
    );

    if !nginx {
        return;
    }
    // nginx's published path: only the public image is published, so only it is
    // served without the pool; the others go to the pool and its guard.
    let http = free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);
    let published = site.root().join("var/cache/published/t");
    assert!(
        wait_until(LONG, || published.join(format!("{p}.jpg")).is_file()),
        "the public thumbnail is published: {}",
        site.log()
    );
    // Give the publisher time for more passes: the others must stay unpublished.
    std::thread::sleep(Duration::from_secs(3));
    for id in [a, b] {
        assert!(!published.join(format!("{id}.jpg")).exists());
    }
    for (group, id) in &images {
        for app in ["webgateway", "webclient"] {
            let path = format!("/{app}/render_thumbnail/{id}/");
            let (status, headers, body) = fetch(http, &path, &[]);
            if group == "public" {
                assert_eq!(status, 200, "{path}");
                assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
            } else {
                // The pool answered: to the public user (this URL is one the filter
                // allows) another group's image is one that is not there.
                // (the webclient's thumbnail: its placeholder).
                let (direct, _, direct_body) = fetch(port, &path, &[]);
                assert!(
                    !(200..300).contains(&status) || (app == "webclient" && body == missing),
                    "{group}'s {path} through nginx: {status}"
                );
                assert_eq!((status, body), (direct, direct_body), "{group}'s {path}");
            }
        }
    }
}

#[test]
fn an_image_one_may_not_see_answers_exactly_as_a_missing_one() {
    let site = three_group_site("");
    add_user(&site, "alice", "pw-a", &["labA"]);
    add_user(&site, "admin", "pw-admin", &["labA", "labB", "public"]);
    site.ok(&["start"]);
    let port = site.port;
    let all = ids_by_group(port, &login(port, "sessionid", "admin", "pw-admin"));
    let id_of = |group: &str| all.iter().find(|(g, _)| g == group).unwrap().1;
    let (mine, denied) = (id_of("labA"), id_of("labB"));
    let missing = (1..)
        .map(|n| denied + n)
        .find(|n| all.iter().all(|(_, id)| id != n))
        .unwrap();
    let alice = login(port, "sessionid", "alice", "pw-a");
    let cookie = [("Cookie", alice.as_str())];
    // The answer with the asked-for IDs written as ID: only then are two answers
    // about different IDs comparable.
    let answer = |path: String, ids: &[u64]| {
        let (status, headers, body) = fetch(port, &path, &cookie);
        let mut body = String::from_utf8_lossy(&body).into_owned();
        for id in ids {
            body = body.replace(&id.to_string(), "ID");
        }
        (
            status,
            header(&headers, "content-type").map(str::to_string),
            body,
        )
    };
    for (family, _) in FAMILIES {
        let at = |id: u64| family.replace("{id}", &id.to_string());
        let shown = answer(at(mine), &[mine]);
        assert!((200..300).contains(&shown.0), "{family}: {}", shown.0);
        assert_eq!(
            answer(at(denied), &[denied]),
            answer(at(missing), &[missing]),
            "{family}: denied vs missing"
        );
    }
    // Batches: a denied ID is null where a missing one is, as OMERO's thumbnail set
    // does not find either.
    let (status, _, body) = fetch(
        port,
        &format!("/webgateway/get_thumbnails/?id={mine}&id={denied}&id={missing}"),
        &cookie,
    );
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json[mine.to_string()].is_string(), "{json}");
    assert_eq!(json[denied.to_string()], serde_json::Value::Null, "{json}");
    assert_eq!(json[missing.to_string()], serde_json::Value::Null, "{json}");
    assert_eq!(json.as_object().unwrap().len(), 3, "{json}");
    // Zips: OMERO's query finds neither, so a mix zips what is found, and nothing
    // found is the same error either way.
    // (The file's own bytes are compared as they are: only error texts name IDs.)
    let zip = |ids: &[u64], written_as_id: &[u64]| {
        let query: Vec<String> = ids.iter().map(|id| format!("image={id}")).collect();
        answer(
            format!("/webgateway/archived_files/download/?{}", query.join("&")),
            written_as_id,
        )
    };
    let with_denied = zip(&[mine, denied], &[]);
    assert_eq!(with_denied.0, 200, "{:.200}", with_denied.2);
    assert!(
        with_denied == zip(&[mine, missing], &[]),
        "a mix with a denied ID differs from one with a missing ID"
    );
    let none_found = zip(&[denied], &[denied]);
    assert_eq!(none_found, zip(&[missing], &[missing]));
    assert!(none_found.2.contains("Images not found"), "{none_found:?}");
}
