//! Zooming big images in the viewer: tiles are loaded, never the full plane, and no
//! full-resolution tile below half scale.

use super::*;

/// The render_image_region tiles among `requests`, as (column, row).
fn tiles_requested(requests: &[String], id: u32) -> Vec<(u32, u32)> {
    let marker = format!("/webgateway/render_image_region/{id}/0/0/?tile=0,");
    requests
        .iter()
        .filter_map(|u| u.split_once(&marker))
        .map(|(_, rest)| {
            let fields: Vec<u32> = rest
                .split('&')
                .next()
                .unwrap()
                .split(',')
                .map(|f| f.parse().unwrap())
                .collect();
            assert_eq!(fields[2..], [512, 512], "{rest}");
            (fields[0], fields[1])
        })
        .collect()
}

/// The 512 px tiles of the 2048×1536 image that a view of `vw`×`vh` screen pixels at
/// `scale`, centred on (`cx`, `cy`), shows.
fn tiles_in_view(vw: f64, vh: f64, scale: f64, cx: f64, cy: f64) -> Vec<(u32, u32)> {
    let span = |centre: f64, screen: f64, size: f64| {
        let lo = (centre - screen / 2.0 / scale).clamp(0.0, size);
        let hi = (centre + screen / 2.0 / scale).clamp(0.0, size);
        (lo / 512.0).floor() as u32..=((hi - 1.0) / 512.0).floor() as u32
    };
    let mut tiles = Vec::new();
    for row in span(cy, vh, 1536.0) {
        for column in span(cx, vw, 2048.0) {
            tiles.push((column, row));
        }
    }
    tiles
}

#[test]
fn zooming_a_big_image_loads_tiles_never_the_full_plane() {
    let Some(chromium) = chromium("zooming_a_big_image_loads_tiles_never_the_full_plane") else {
        return;
    };
    let site = site_with(
        &[
            "--images",
            "1",
            "--size",
            "128",
            "--channels",
            "1",
            "--z",
            "1",
        ],
        true,
    );
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, DESKTOP);
    browser.open(&url(&site, "/webclient/img_detail/2/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    // The first view: one thumbnail scaled to the window, at most 1024 px.
    let first: Vec<String> = browser
        .requests
        .iter()
        .filter(|u| u.contains("/webgateway/"))
        .cloned()
        .collect();
    assert_eq!(first.len(), 1, "{first:#?}");
    let side: u32 = first[0]
        .split("/render_thumbnail/2/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a thumbnail: {}", first[0]));
    assert!((256..=1024).contains(&side), "{side}");
    let (status, _, jpeg) = support::fetch(
        site.port,
        first[0]
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}"))
            .as_deref()
            .unwrap(),
        &[],
    );
    assert_eq!(status, 200);
    assert!(jpeg.len() < 300_000, "overview of {} bytes", jpeg.len());

    // Zooming in with the keyboard: tiles, never render_image.
    for _ in 0..4 {
        browser.press("+");
    }
    assert!(browser.wait_for(
        "parseInt(document.getElementById('zoom-value').textContent) >= 100",
        LONG
    ));
    assert!(browser.wait_for(
        "document.getElementById('viewer').dataset.pending === '0' && document.querySelectorAll('#stage img.tile').length > 0 && [...document.querySelectorAll('#stage img.tile')].every(t => t.complete && t.naturalWidth > 0)",
        LONG
    ));
    assert!(
        !tiles_requested(&browser.requests, 2).is_empty(),
        "{:#?}",
        browser.requests
    );
    let full_plane: Vec<&String> = browser
        .requests
        .iter()
        .filter(|u| u.contains("/render_image/2/"))
        .collect();
    assert!(full_plane.is_empty(), "{full_plane:#?}");
    shot(&mut browser, "viewer-big-zoomed");
    assert_clean(&mut browser, "zoomed viewer");

    // A view at 1:1 from its URL loads exactly the tiles in view, each at most 512 px.
    browser.open("about:blank");
    browser.clear();
    browser.open(&url(&site, "/webclient/img_detail/2/?zm=100&x=1024&y=768"));
    assert!(browser.wait_for(
        "document.getElementById('viewer').dataset.pending === '0' && document.querySelectorAll('#stage img.tile').length > 0",
        LONG
    ));
    let view = browser.eval("[document.getElementById('viewport').clientWidth, document.getElementById('viewport').clientHeight]");
    let expected = tiles_in_view(number(&view[0]), number(&view[1]), 1.0, 1024.0, 768.0);
    let mut requested = tiles_requested(&browser.requests, 2);
    requested.sort_by_key(|&(column, row)| (row, column));
    assert_eq!(requested, expected);
    assert!(requested.len() < 12, "the whole plane in tiles");
    for (column, row) in &requested {
        let (status, _, jpeg) = support::fetch(
            site.port,
            &format!("/webgateway/render_image_region/2/0/0/?tile=0,{column},{row},512,512"),
            &[],
        );
        assert_eq!(status, 200);
        let (w, h, _, _) = support::decode_jpeg(&jpeg);
        assert_eq!((w, h), (512, 512));
    }

    // Dragging to the left edge loads the tiles that come into view, and only those.
    browser.clear();
    let start = browser.eval("(() => { const r = document.getElementById('viewport').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()");
    let (x, y) = (number(&start[0]), number(&start[1]));
    browser.drag((x, y), (x + 600.0, y), 6);
    assert!(
        browser.wait_for("location.search.includes('x=424&')", LONG),
        "{}",
        browser.eval("location.search")
    );
    assert!(browser.wait_for(
        "document.getElementById('viewer').dataset.pending === '0'",
        LONG
    ));
    let mut newly = tiles_requested(&browser.requests, 2);
    newly.sort_by_key(|&(column, row)| (row, column));
    let now: Vec<(u32, u32)> = tiles_in_view(number(&view[0]), number(&view[1]), 1.0, 424.0, 768.0)
        .into_iter()
        .filter(|tile| !expected.contains(tile))
        .collect();
    assert!(!now.is_empty());
    assert_eq!(newly, now);
    assert!(
        !browser
            .requests
            .iter()
            .any(|u| u.contains("/render_image/2/"))
    );
    shot(&mut browser, "viewer-big-panned");
    assert_clean(&mut browser, "panned viewer");
}

/// The level-`level` tiles among `requests`, as (column, row).
fn level_tiles_requested(requests: &[String], id: u32, level: u32) -> Vec<(u32, u32)> {
    let marker = format!("/render_image_region/{id}/0/0/?tile={level},");
    let mut tiles: Vec<(u32, u32)> = requests
        .iter()
        .filter_map(|u| u.split_once(&marker))
        .map(|(_, rest)| {
            let fields: Vec<u32> = rest
                .split('&')
                .next()
                .unwrap()
                .split(',')
                .map(|f| f.parse().unwrap())
                .collect();
            (fields[0], fields[1])
        })
        .collect();
    tiles.sort_by_key(|&(column, row)| (row, column));
    tiles
}

#[test]
fn a_huge_image_loads_no_full_resolution_tiles_below_half_scale() {
    let Some(chromium) = chromium("a_huge_image_loads_no_full_resolution_tiles_below_half_scale")
    else {
        return;
    };
    let site = TestSite::new(2);
    std::fs::create_dir_all(site.root().join("var/repository")).unwrap();
    // Wide enough that the overview (at most 1024 px) is a quarter of full resolution.
    write_grey_png(&site.root().join("var/repository/wide.png"), 4096, 1024);
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, DESKTOP);
    // At 40 %: between the overview (a quarter of full resolution) and full
    // resolution, the tiles of level 1 (half resolution), never a magnified overview
    // and never the full-resolution tiles (four times the screen's pixels).
    browser.open(&url(&site, "/webclient/img_detail/1/?zm=40&x=2048&y=512"));
    assert!(browser.wait_for(
        "document.getElementById('viewer').dataset.pending === '0' && document.querySelectorAll('#stage img.tile').length > 0 && [...document.querySelectorAll('#stage img.tile')].every(t => t.complete && t.naturalWidth > 0)",
        LONG
    ));
    assert_eq!(
        browser.eval("document.getElementById('zoom-value').textContent"),
        "40 %"
    );
    assert!(
        tiles_requested(&browser.requests, 1).is_empty(),
        "{:#?}",
        browser.requests
    );
    // The level-1 tiles in view: 1024 full-resolution pixels each.
    let view = browser.eval("[document.getElementById('viewport').clientWidth, document.getElementById('viewport').clientHeight]");
    let (vw, vh) = (number(&view[0]), number(&view[1]));
    let span = |centre: f64, screen: f64, size: f64| {
        let lo = (centre - screen / 2.0 / 0.4).clamp(0.0, size);
        let hi = (centre + screen / 2.0 / 0.4).clamp(0.0, size);
        (lo / 1024.0).floor() as u32..=((hi - 1.0) / 1024.0).floor() as u32
    };
    let expected: Vec<(u32, u32)> = span(512.0, vh, 1024.0)
        .flat_map(|row| span(2048.0, vw, 4096.0).map(move |column| (column, row)))
        .collect();
    assert_eq!(level_tiles_requested(&browser.requests, 1, 1), expected);
    // Sharp: no tile is drawn larger than its own pixels.
    assert_eq!(
        browser.eval("[...document.querySelectorAll('#stage img.tile')].every(t => t.dataset.level === '1' && t.naturalWidth >= t.getBoundingClientRect().width * devicePixelRatio - 1)"),
        true
    );
    let (status, _, jpeg) = support::fetch(
        site.port,
        "/webgateway/render_image_region/1/0/0/?tile=1,1,0,512,512",
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(support::decode_jpeg(&jpeg).0, 512);
    shot(&mut browser, "viewer-huge-level-1");
    assert!(
        !browser
            .requests
            .iter()
            .any(|u| u.contains("/render_image/1/"))
    );
    // At 60 %: the tiles in view.
    browser.open(&url(&site, "/webclient/img_detail/1/?zm=60&x=2048&y=512"));
    assert!(browser.wait_for(
        "document.getElementById('viewer').dataset.pending === '0' && document.querySelectorAll('#stage img.tile').length > 0",
        LONG
    ));
    assert!(!tiles_requested(&browser.requests, 1).is_empty());
    assert!(
        !browser
            .requests
            .iter()
            .any(|u| u.contains("/render_image/1/"))
    );
    assert_clean(&mut browser, "huge image");
}
