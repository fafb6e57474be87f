//! Access control of the embedded gateway (issue 24): local users and groups, OMERO's
//! login and logout, sessions shared by every worker, the public user, and the guard
//! on every route, nginx's published thumbnails included. Real pool, real HTTP.

use crate::support;
use crate::support::browser;
use crate::support::slapd;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use support::{
    Headers, TestSite, add_user, csrf, fetch, free_port, header, login, login_with,
    nginx_available, request, set_cookie, wait_until,
};

mod clients;
mod directory;
mod sessions;
mod settings;
mod users;
mod visibility;

const LONG: Duration = Duration::from_secs(60);

/// OMERO's documented filter for a public site (a negative lookahead: no downloads,
/// no webadmin, no logout or annotating as the public user).
const PUBLIC_FILTER: &str = r"^/(?!webadmin|webclient/(action|logout|annotate_(file|tag|comment|rating|map)|tag_image|attach_to_(share|field)|publish|save_(rdef|annotations))|webgateway/(archived_files|download_as))";

/// A JSON API client's login as omero-web's docs show it: `token/` for the CSRF
/// token (and its cookie), then a POST to `login/` with the token in `X-CSRFToken`.
/// The status, headers and JSON answer, and the `Cookie` value to send from then on.
fn api_login(port: u16, user: &str, password: &str) -> (u16, Headers, serde_json::Value, String) {
    let (status, headers, body) = request(port, "GET", "/api/v0/token/", &[], "");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let token: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let token = token["data"].as_str().unwrap().to_string();
    assert_eq!(set_cookie(&headers, "csrftoken").as_deref(), Some(&*token));
    let cookie = format!("csrftoken={token}");
    let (status, headers, body) = request(
        port,
        "POST",
        "/api/v0/login/",
        &[("Cookie", &cookie), ("X-CSRFToken", &token)],
        &format!("server=1&username={user}&password={password}"),
    );
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("{status}: {}", String::from_utf8_lossy(&body)));
    let cookie = match set_cookie(&headers, "sessionid") {
        Some(session) => format!("{cookie}; sessionid={session}"),
        None => cookie,
    };
    (status, headers, json, cookie)
}

/// A site whose repository holds one image of group labA, one of labB and one of the
/// public group (moved out of the demo directory before the pool starts).
fn three_group_site(extra_config: &str) -> TestSite {
    let site = TestSite::with_demo(
        2,
        extra_config,
        &[
            "--images",
            "3",
            "--size",
            "128",
            "--channels",
            "2",
            "--z",
            "2",
        ],
    );
    let repo = site.root().join("var/repository");
    for (n, group) in [(1, "labA"), (2, "labB"), (3, "public")] {
        std::fs::create_dir_all(repo.join(group)).unwrap();
        std::fs::rename(
            repo.join(format!("demo/demo-00{n}.ome.tiff")),
            repo.join(format!("{group}/{group}-image.ome.tiff")),
        )
        .unwrap();
    }
    site
}

/// Image IDs by group, as a member of every group lists them through the JSON API.
fn ids_by_group(port: u16, cookie: &str) -> Vec<(String, u64)> {
    let (status, _, body) = request(port, "GET", "/api/v0/m/images/", &[("Cookie", cookie)], "");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut ids: Vec<(String, u64)> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| {
            let name = image["Name"].as_str().unwrap();
            let group = name.split('-').next().unwrap().to_string();
            (group, image["@id"].as_u64().unwrap())
        })
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 3, "{json}");
    ids
}
