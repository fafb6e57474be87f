//! What access control costs (issue 24's figure): a second site with the same demo
//! images, access control on, its images the public group's (so nginx publishes
//! their thumbnails) and one logged-in member, measured in turns with the main
//! site (access control off) so that a busy moment of the shared machine falls on
//! both alike. Rows: fresh thumbnails (every request renders; the guard's session
//! and group check on top), the pool's cached thumbnail (where the check is the
//! largest share of the work), and the published path (nginx alone: the guard is
//! never asked).

use std::process::Command;

use crate::common::{BenchSite, ab_with_cookie, free_port};
use crate::{Plan, Row, row, wait_for};

/// The member's session cookie (`sessionid=…`), from a real login (the JSON API's:
/// token, then login with the token in `X-CSRFToken`).
fn login(port: u16, user: &str, password: &str) -> String {
    let jar = tempfile::NamedTempFile::new().unwrap();
    let jar_path = jar.path().to_str().unwrap();
    let curl = |args: &[&str]| -> String {
        let out = Command::new("curl")
            .args(["-sS", "-b", jar_path, "-c", jar_path])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "curl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let token: serde_json::Value =
        serde_json::from_str(&curl(&[&format!("http://127.0.0.1:{port}/api/v0/token/")])).unwrap();
    let token = token["data"].as_str().unwrap().to_string();
    let answer = curl(&[
        "-H",
        &format!("X-CSRFToken: {token}"),
        "--data",
        &format!("server=1&username={user}&password={password}"),
        &format!("http://127.0.0.1:{port}/api/v0/login/"),
    ]);
    assert!(answer.contains("\"success\":true"), "login: {answer}");
    let jar_text = std::fs::read_to_string(jar.path()).unwrap();
    let session = jar_text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields.len() == 7 && fields[5] == "sessionid").then(|| fields[6].to_string())
        })
        .next()
        .expect("a session cookie in curl's jar");
    format!("sessionid={session}")
}

/// A site like `main`'s (same images, workers), access control on: its images
/// moved into the public group's folder, the public user allowed all but webadmin
/// (nginx publishes a thumbnail only when both its URLs are allowed), one member
/// logged in. Returns the site, its nginx port and the member's cookie.
pub fn site_with_access(plan: &Plan) -> (BenchSite, u16, String) {
    let site = BenchSite::new(&format!(
        "\"omero.web.wsgi_workers\" = {}\n\"omero.web.wsgi_worker_class\" = \"sync\"\n\"omero.web.public.enabled\" = true\n\"omero.web.public.url_filter\" = '^/(?!webadmin)'\n",
        plan.workers
    ));
    site.ctl(&[
        "demo",
        "--images",
        &plan.images.to_string(),
        "--size",
        &plan.image_size.to_string(),
        "--channels",
        "3",
        "--z",
        "1",
    ]);
    let repository = site.path().join("var/repository");
    std::fs::rename(repository.join("demo"), repository.join("public")).unwrap();
    let mut add = Command::new(crate::common::BIN)
        .arg("--omerodir")
        .arg(site.path())
        .args([
            "user",
            "add",
            "member",
            "--group",
            "public",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin.take().unwrap().write_all(b"bench-pw\n").unwrap();
    assert!(add.wait().unwrap().success(), "user add");
    let http = free_port();
    site.ctl(&["start"]);
    site.ctl(&["nginx", "start", "--http", &http.to_string()]);
    let published = site.path().join("var/cache/published/t");
    wait_for("the access site's published thumbnails", || {
        (1..=plan.images).all(|id| published.join(format!("{id}.jpg")).is_file())
    });
    let cookie = login(site.port, "member", "bench-pw");
    (site, http, cookie)
}

/// The rows: each case on the main site (`off`: pool port, nginx port) and on the
/// access site (`on`), in turns, medians of `runs`.
pub fn rows(plan: &Plan, off: (u16, u16), on: (u16, u16), cookie: &str) -> Vec<Row> {
    let runs = plan.runs.max(3);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut out = Vec::new();
    // (case, path, through nginx?, requests, concurrency, what limits it)
    let cases: [(&str, &str, bool, u32, u32, &'static str); 3] = [
        (
            "access control: fresh 95-px thumbnails, a logged-in member, -c 4",
            "/webgateway/render_thumbnail/1/95/",
            false,
            plan.cold_n,
            4,
            "render per request; the guard's session and group check on top",
        ),
        (
            "access control: the pool's cached thumbnail, a logged-in member, -c 100",
            "/webclient/render_thumbnail/1/1/",
            false,
            plan.fast_n,
            100,
            "the guard's check is a large share of a cached answer",
        ),
        (
            "access control: render_thumbnail through nginx (published, public image)",
            "/webgateway/render_thumbnail/1/",
            true,
            plan.fast_n,
            100,
            "nginx alone: the guard is never asked",
        ),
    ];
    for (case, path, via_nginx, n, c, limit) in cases {
        let (mut without, mut with) = (Vec::new(), Vec::new());
        let pick = |ports: (u16, u16)| if via_nginx { ports.1 } else { ports.0 };
        // The published path is the public user's: no cookie, as a browser of a
        // public site comes.
        let session = (!via_nginx).then_some(cookie);
        for _ in 0..runs {
            without.push(ab_with_cookie(pick(off), path, n, c, None));
            with.push(ab_with_cookie(pick(on), path, n, c, session));
        }
        let (without, with) = (median(without), median(with));
        out.push(row(
            case,
            Some(with),
            None,
            "req/s",
            Some(with / without),
            "access off",
            limit,
        ));
    }
    out
}
