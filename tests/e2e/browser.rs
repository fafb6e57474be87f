//! The webclient in a real headless Chromium: the gallery and the viewer at desktop,
//! narrow-window and phone sizes, with no console errors; a grey image stays grey
//! after a Z move; a URL with view state reproduces the view; zooming a big image
//! loads tiles, never the full plane. Screenshots go to target/browser-artefacts/.

use crate::support;
use crate::support::browser;

use std::time::Duration;

use browser::{Browser, DESKTOP, NARROW, PHONE, Screen, artefacts_dir, chromium};
use serde_json::Value;
use support::{TestSite, wait_until};

const LONG: Duration = Duration::from_secs(60);

/// True once the viewer has nothing in flight and its overview shows.
const VIEW_SETTLED: &str = "(() => { const v = document.getElementById('viewer'); const o = document.getElementById('overview'); return v !== null && o !== null && v.dataset.pending === '0' && o.complete && o.naturalWidth > 0; })()";

/// A 2048×1536 RGB PNG (a "big" image: more than the viewer's overview on a side).
fn write_big_png(path: &std::path::Path) {
    let (w, h) = (2048u32, 1536u32);
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            // Cells on a gradient: something to see when zoomed.
            let (cx, cy) = ((x % 256) as i32 - 128, (y % 256) as i32 - 128);
            let cell = if cx * cx + cy * cy < 90 * 90 { 120 } else { 0 };
            rgb.extend_from_slice(&[
                (x / 8) as u8,
                (cell + y / 16).min(255) as u8,
                ((x + y) / 16) as u8,
            ]);
        }
    }
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&rgb)
        .unwrap();
}

/// A site with `demo` images and, if asked, the big PNG (the last ID), not started.
fn site_with(demo: &[&str], big: bool) -> TestSite {
    let site = TestSite::with_demo(
        2,
        "\"omero.web.wsgi_worker_class\" = \"gthread\"\n\"omero.web.wsgi_threads\" = 4\n",
        demo,
    );
    if big {
        write_big_png(&site.root().join("var/repository/zz-big-2048x1536.png"));
    }
    site
}

fn url(site: &TestSite, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", site.port)
}

fn shot(browser: &mut Browser, name: &str) {
    let path = artefacts_dir().join(format!("{name}.png"));
    browser.screenshot(&path);
    eprintln!("screenshot: {}", path.display());
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

/// No console error, uncaught exception or failed load since the last clear.
fn assert_clean(browser: &mut Browser, page: &str) {
    browser.pump();
    assert!(browser.errors.is_empty(), "{page}: {:#?}", browser.errors);
    let failed: Vec<_> = browser.failed_responses();
    assert!(failed.is_empty(), "{page}: {failed:#?}");
}

fn check_gallery_and_viewer(
    chromium: &std::path::Path,
    site: &TestSite,
    screen: Screen,
    name: &str,
) {
    let mut browser = Browser::launch(chromium, screen);
    browser.open(&url(site, "/webclient/"));
    // The page is laid out at the device's width (on a phone thanks to the viewport
    // meta tag), nothing sticks out sideways, every thumbnail and dimension line loads.
    assert_eq!(
        number(&browser.eval("window.innerWidth")),
        screen.width as f64,
        "{name}"
    );
    assert!(
        browser.wait_for(
            "[...document.querySelectorAll('.gallery img')].every(i => i.complete && i.naturalWidth > 0) && [...document.querySelectorAll('.gallery .dims')].every(d => d.textContent.includes(' ch'))",
            LONG
        ),
        "{name}: gallery did not load"
    );
    assert!(
        number(&browser.eval("document.documentElement.scrollWidth")) <= screen.width as f64,
        "{name}: the gallery is wider than the screen"
    );
    let dims = browser.eval("document.querySelector('.gallery li:last-child .dims').textContent");
    assert_eq!(dims, "2048 × 1536 · 3 ch", "{name}");
    // Long names stay on one line; the full name is on hover.
    let name_height = number(
        &browser.eval("document.querySelector('.gallery .name').getBoundingClientRect().height"),
    );
    assert!(name_height < 20.0, "{name}: name wraps ({name_height} px)");
    assert_eq!(
        browser.eval("document.querySelector('.gallery li:last-child').title"),
        "zz-big-2048x1536.png"
    );
    shot(&mut browser, &format!("gallery-{name}"));
    assert_clean(&mut browser, &format!("gallery at {name}"));

    // The big image in the viewer: aspect ratio kept, controls on screen.
    let big_id = browser.eval(
        "document.querySelector('.gallery li:last-child a').href.match(/img_detail\\/(\\d+)/)[1]",
    );
    let big_id = big_id.as_str().unwrap().to_string();
    browser.open(&url(site, &format!("/webclient/img_detail/{big_id}/")));
    assert!(
        browser.wait_for(VIEW_SETTLED, LONG),
        "{name}: viewer did not load"
    );
    let rect = browser.eval("(() => { const r = document.getElementById('overview').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()");
    let [left, _top, w, h] = [0, 1, 2, 3].map(|i| number(&rect[i]));
    assert!(
        ((w / h) - 2048.0 / 1536.0).abs() < 0.01,
        "{name}: image shown {w}×{h}, not 4:3"
    );
    assert!(
        left >= -0.5 && left + w <= screen.width as f64 + 0.5,
        "{name}: image off screen: {rect}"
    );
    let controls = browser.eval("(() => { const r = document.querySelector('.controls').getBoundingClientRect(); return [r.left, r.right]; })()");
    assert!(
        number(&controls[0]) >= 0.0 && number(&controls[1]) <= screen.width as f64,
        "{name}: controls off screen: {controls}"
    );
    assert!(number(&browser.eval("document.documentElement.scrollWidth")) <= screen.width as f64);
    shot(&mut browser, &format!("viewer-{name}"));
    assert_clean(&mut browser, &format!("viewer at {name}"));
}

#[test]
fn gallery_and_viewer_work_at_desktop_narrow_and_phone_sizes() {
    let Some(chromium) = chromium("gallery_and_viewer_work_at_desktop_narrow_and_phone_sizes")
    else {
        return;
    };
    let site = site_with(
        &[
            "--images",
            "3",
            "--size",
            "256",
            "--channels",
            "2",
            "--z",
            "3",
        ],
        true,
    );
    // A long name that must not wrap over several lines.
    std::fs::rename(
        site.root().join("var/repository/demo/demo-002.ome.tiff"),
        site.root().join("var/repository/demo/demo-002 a very long name of a confocal stack, fixed cells, 60x oil, channel 1 and 2.ome.tiff"),
    )
    .unwrap();
    site.ok(&["start"]);
    for (screen, name) in [(DESKTOP, "1280"), (NARROW, "390"), (PHONE, "phone")] {
        check_gallery_and_viewer(&chromium, &site, screen, name);
    }
}

#[test]
fn a_grey_z_stack_stays_grey_after_a_z_move() {
    let Some(chromium) = chromium("a_grey_z_stack_stays_grey_after_a_z_move") else {
        return;
    };
    let site = site_with(
        &[
            "--images",
            "1",
            "--size",
            "256",
            "--channels",
            "1",
            "--z",
            "5",
        ],
        false,
    );
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, DESKTOP);
    browser.open(&url(&site, "/webclient/img_detail/1/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_eq!(
        browser.eval("document.getElementById('z-value').textContent"),
        "3 / 5"
    );
    browser.clear();
    browser.press("ArrowUp");
    assert!(browser.wait_for(
        "document.getElementById('z-value').textContent === '4 / 5' && location.search.includes('z=4')",
        LONG
    ));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    // The request for the new plane asks for greyscale…
    let plane: Vec<String> = browser
        .requests
        .iter()
        .filter(|u| u.contains("/webgateway/render_image/1/3/0/"))
        .cloned()
        .collect();
    assert_eq!(plane.len(), 1, "{:#?}", browser.requests);
    assert!(plane[0].contains("m=g"), "{}", plane[0]);
    // …and every pixel the browser shows is grey (and not all black).
    let pixels = browser.eval("(() => { const img = document.getElementById('overview'); const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0); const d = g.getImageData(0, 0, c.width, c.height).data; let coloured = 0, lit = 0; for (let i = 0; i < d.length; i += 4) { if (d[i] !== d[i + 1] || d[i + 1] !== d[i + 2]) coloured++; if (d[i] > 16) lit++; } return [coloured, lit, d.length / 4]; })()");
    assert_eq!(number(&pixels[0]), 0.0, "coloured pixels: {pixels}");
    assert!(number(&pixels[1]) > 100.0, "a black image: {pixels}");
    assert_eq!(number(&pixels[2]), 256.0 * 256.0);
    // The channel's swatch says grey, not the channel's colour.
    assert_eq!(
        browser.eval("getComputedStyle(document.querySelector('.swatch')).backgroundImage"),
        "linear-gradient(90deg, rgb(0, 0, 0), rgb(255, 255, 255))"
    );
    // Down again with the other key, and no T control for one timepoint.
    browser.press("ArrowDown");
    assert!(browser.wait_for(
        "document.getElementById('z-value').textContent === '3 / 5'",
        LONG
    ));
    assert_eq!(browser.eval("document.getElementById('t') === null"), true);
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    shot(&mut browser, "viewer-grey-z-stack");
    assert_clean(&mut browser, "grey viewer");
}

#[test]
fn a_url_with_view_state_reproduces_the_view() {
    let Some(chromium) = chromium("a_url_with_view_state_reproduces_the_view") else {
        return;
    };
    let site = site_with(
        &[
            "--images",
            "2",
            "--size",
            "256",
            "--channels",
            "3",
            "--z",
            "3",
        ],
        false,
    );
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, DESKTOP);
    let state =
        "c=1|100:2000$00FF00,-2|0:500$FF0000,3|50:900$0000FF&m=c&z=1&t=1&zm=200&x=100&y=120";
    browser.open(&url(&site, &format!("/webclient/img_detail/2/?{state}")));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let controls = browser.eval(
        "[...document.querySelectorAll('li.channel')].map(li => [li.querySelector('.channel-active').checked, li.querySelector('.channel-color').value, li.querySelector('.window-start').value, li.querySelector('.window-end').value])",
    );
    assert_eq!(
        controls,
        serde_json::json!([
            [true, "#00ff00", "100", "2000"],
            [false, "#ff0000", "0", "500"],
            [true, "#0000ff", "50", "900"]
        ])
    );
    assert_eq!(
        browser.eval("document.querySelector('input[name=model]:checked').value"),
        "c"
    );
    assert_eq!(
        browser.eval("document.getElementById('z-value').textContent"),
        "1 / 3"
    );
    assert_eq!(
        browser.eval("document.getElementById('zoom-value').textContent"),
        "200 %"
    );
    // The plane rendered is the one the URL names, with its channels.
    let render = browser
        .requests
        .iter()
        .find(|u| u.contains("/webgateway/render_image/2/"))
        .cloned()
        .expect("a render request");
    assert!(render.contains("/render_image/2/0/0/?"), "{render}");
    let query = render.split_once('?').unwrap().1;
    assert!(
        browser::query_value(query, "c").as_deref()
            == Some("1|100:2000$00FF00,-2|0:500$FF0000,3|50:900$0000FF")
            && browser::query_value(query, "m").as_deref() == Some("c"),
        "{render}"
    );
    // Zoomed 2× around (100, 120): that image point is at the viewport's centre.
    let centre = browser.eval("(() => { const v = document.getElementById('viewport').getBoundingClientRect(); const o = document.getElementById('overview').getBoundingClientRect(); return [(v.left + v.width / 2 - o.left) / o.width * 256, (v.top + v.height / 2 - o.top) / o.height * 256, o.width]; })()");
    assert!(
        (number(&centre[0]) - 100.0).abs() < 1.0 && (number(&centre[1]) - 120.0).abs() < 1.0,
        "{centre}"
    );
    assert!((number(&centre[2]) - 512.0).abs() < 1.0, "{centre}");
    // A scale bar from the pixel size (0.325 µm): its length matches its label.
    let bar = browser.eval("[document.querySelector('#scalebar .bar').getBoundingClientRect().width, document.querySelector('.scalebar-label').textContent, document.getElementById('scalebar').hidden]");
    let label = bar[1].as_str().unwrap();
    let micrometres: f64 = label
        .strip_suffix(" µm")
        .unwrap_or_else(|| panic!("{label}"))
        .parse()
        .unwrap();
    assert!(
        (number(&bar[0]) - micrometres * 2.0 / 0.325).abs() < 1.0,
        "{bar}"
    );
    assert_eq!(bar[2], false);

    // The address bar keeps the state; the share link, opened afresh, shows the same.
    assert!(browser.wait_for("location.search.includes('zm=200')", LONG));
    let shared = browser.eval("document.getElementById('share-link').href");
    let shared = shared.as_str().unwrap().to_string();
    for part in [
        "m=c",
        "z=1",
        "t=1",
        "zm=200",
        "x=100",
        "y=120",
        "-2|0:500$FF0000",
    ] {
        assert!(shared.contains(part), "{part} missing from {shared}");
    }
    browser.open("about:blank");
    browser.open(&shared);
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let again = browser.eval(
        "[...document.querySelectorAll('li.channel')].map(li => [li.querySelector('.channel-active').checked, li.querySelector('.channel-color').value, li.querySelector('.window-start').value, li.querySelector('.window-end').value])",
    );
    assert_eq!(again, controls);
    assert_eq!(
        browser.eval("document.getElementById('zoom-value').textContent"),
        "200 %"
    );
    shot(&mut browser, "viewer-url-state");
    assert_clean(&mut browser, "viewer with URL state");

    // "reset" goes back to the image's defaults: every channel on, fit to the window.
    browser.eval("window.__leaving = true; document.getElementById('reset-view').click()");
    assert!(browser.wait_for(
        "window.__leaving !== true && document.readyState === 'complete'",
        LONG
    ));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_eq!(
        browser.eval("[...document.querySelectorAll('.channel-active')].map(c => c.checked)"),
        serde_json::json!([true, true, true])
    );
    assert!(browser.wait_for("!location.search.includes('zm=')", LONG));
    assert_ne!(
        browser.eval("document.getElementById('zoom-value').textContent"),
        "200 %"
    );
}

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

#[test]
fn error_pages_are_styled_and_lead_back() {
    let Some(chromium) = chromium("error_pages_are_styled_and_lead_back") else {
        return;
    };
    let site = site_with(
        &[
            "--images",
            "1",
            "--size",
            "64",
            "--channels",
            "1",
            "--z",
            "1",
        ],
        false,
    );
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, PHONE);
    browser.open(&url(&site, "/webclient/img_detail/999/"));
    assert_eq!(
        browser.eval("document.querySelector('.error h2').textContent"),
        "404 · Not found"
    );
    browser.eval("document.querySelector('.error a').click()");
    assert!(browser.wait_for(
        "location.pathname === '/webclient/' && document.readyState === 'complete'",
        LONG
    ));
    browser.open(&url(&site, "/no/such/page/"));
    assert!(browser.wait_for("document.querySelector('.error a') !== null", LONG));
    shot(&mut browser, "error-page-phone");
}

/// The render_image requests for image `id` since the last clear, decoded `c` and `m`.
fn render_states(browser: &Browser, id: u32) -> Vec<(String, String)> {
    let marker = format!("/webgateway/render_image/{id}/");
    browser
        .requests
        .iter()
        .filter(|u| u.contains(&marker))
        .map(|u| {
            let query = u.split_once('?').map(|(_, q)| q).unwrap_or("");
            (
                browser::query_value(query, "c").unwrap_or_default(),
                browser::query_value(query, "m").unwrap_or_default(),
            )
        })
        .collect()
}

/// Sets an input's value as a user would and fires the event the viewer listens to.
fn set_input(browser: &mut Browser, selector: &str, value: &str, event: &str) {
    browser.eval(&format!(
        "(() => {{ const e = document.querySelector({selector:?}); e.value = {value:?}; e.dispatchEvent(new Event({event:?}, {{bubbles: true}})); }})()"
    ));
}

#[test]
fn channel_controls_model_and_neighbours_drive_the_viewer() {
    let Some(chromium) = chromium("channel_controls_model_and_neighbours_drive_the_viewer") else {
        return;
    };
    let site = site_with(
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
        false,
    );
    site.append_config("\"omero.web.page_size\" = 2\n");
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, DESKTOP);
    browser.open(&url(&site, "/webclient/img_detail/3/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let (c0, m0) = render_states(&browser, 3).pop().expect("a render");
    assert_eq!(m0, "c");
    let defaults: Vec<String> = c0.split(',').map(str::to_string).collect();
    assert_eq!(defaults.len(), 2, "{c0}");
    assert!(
        defaults[0].starts_with("1|") && defaults[1].starts_with("2|"),
        "{c0}"
    );

    // Channel 2 off.
    browser.clear();
    browser.eval("document.querySelectorAll('.channel-active')[1].click()");
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let (c, _) = render_states(&browser, 3).pop().expect("a render");
    assert_eq!(c, format!("{},-{}", defaults[0], defaults[1]));
    // Channel 1's window end and colour.
    browser.clear();
    set_input(&mut browser, "li.channel .window-end", "1000", "input");
    set_input(&mut browser, "li.channel .window-start", "100", "input");
    set_input(
        &mut browser,
        "li.channel .channel-color",
        "#ffaa00",
        "input",
    );
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let (c, m) = render_states(&browser, 3).pop().expect("a render");
    assert_eq!(c.split(',').next().unwrap(), "1|100:1000$FFAA00");
    assert_eq!(m, "c");
    assert_eq!(
        browser.eval("document.querySelector('li.channel .window-value').textContent"),
        "100–1000"
    );
    // A start above the end is held at the end.
    set_input(&mut browser, "li.channel .window-start", "5000", "input");
    assert_eq!(
        browser.eval("document.querySelector('li.channel .window-value').textContent"),
        "1000–1000"
    );
    // Greyscale.
    browser.clear();
    browser.eval("document.querySelector('input[name=model][value=g]').click()");
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_eq!(render_states(&browser, 3).pop().expect("a render").1, "g");
    assert!(browser.wait_for("location.search.includes('m=g')", LONG));
    assert_eq!(
        browser.eval("getComputedStyle(document.querySelector('.channel-color')).display"),
        "none"
    );
    shot(&mut browser, "viewer-channel-controls");
    assert_clean(&mut browser, "viewer controls");

    // Image 3 is on gallery page 2 (two a page); previous leads to image 2.
    assert!(
        browser
            .eval("document.getElementById('to-gallery').href")
            .as_str()
            .unwrap()
            .ends_with("/webclient/?page=2")
    );
    assert_eq!(
        browser.eval("document.getElementById('next-image')"),
        Value::Null
    );
    // A URL from elsewhere with a lookup table: the window applies, the channel keeps
    // its colour; channel 2, not listed, is off.
    browser.open(&url(
        &site,
        "/webclient/img_detail/3/?c=1|200:900$cool.lut&m=c",
    ));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let colour = defaults[0].rsplit('$').next().unwrap().to_lowercase();
    assert_eq!(
        browser.eval("[...document.querySelectorAll('li.channel')].map(li => [li.querySelector('.channel-active').checked, li.querySelector('.channel-color').value, li.querySelector('.window-value').textContent])"),
        serde_json::json!([[true, format!("#{colour}"), "200–900"], [false, format!("#{}", defaults[1].rsplit('$').next().unwrap().to_lowercase()), defaults[1].split('|').nth(1).unwrap().split('$').next().unwrap().replace(':', "–")]])
    );
    browser.eval("document.getElementById('prev-image').click()");
    assert!(browser.wait_for(
        "location.pathname === '/webclient/img_detail/2/' && document.readyState === 'complete'",
        LONG
    ));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_clean(&mut browser, "previous image");
}

#[test]
fn gallery_filters_pages_and_serves_dense_thumbnails_to_a_phone() {
    let Some(chromium) = chromium("gallery_filters_pages_and_serves_dense_thumbnails_to_a_phone")
    else {
        return;
    };
    let site = site_with(
        &[
            "--images",
            "5",
            "--size",
            "64",
            "--channels",
            "1",
            "--z",
            "1",
        ],
        false,
    );
    site.append_config("\"omero.web.page_size\" = 2\n");
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, PHONE);
    browser.open(&url(&site, "/webclient/"));
    assert_eq!(
        browser.eval("document.querySelector('.summary').textContent"),
        "5 images · page 1 of 3"
    );
    // Three device pixels per CSS pixel: the 2x thumbnails are the ones loaded.
    assert!(browser.wait_for(
        "[...document.querySelectorAll('.gallery img')].every(i => i.complete && i.currentSrc.includes('/render_thumbnail/size/192/'))",
        LONG
    ));
    let (status, _, jpeg) =
        support::fetch(site.port, "/webclient/render_thumbnail/size/192/1/", &[]);
    assert_eq!(status, 200);
    assert_eq!(support::decode_jpeg(&jpeg).0, 192);
    // The filter, then the next page of what it found.
    browser.eval("document.querySelector('.filter input').value = 'demo-00'; document.querySelector('.filter').submit()");
    assert!(browser.wait_for(
        "location.search === '?q=demo-00' && document.readyState === 'complete' && document.querySelector('.summary') !== null",
        LONG
    ));
    assert_eq!(
        browser.eval("document.querySelector('.summary').textContent"),
        "5 images of 5 · page 1 of 3"
    );
    browser.eval("document.querySelector('.pager a[rel=next]').click()");
    assert!(browser.wait_for(
        "location.search === '?page=2&q=demo-00' && document.readyState === 'complete'",
        LONG
    ));
    assert_eq!(
        browser.eval("[...document.querySelectorAll('.gallery .name')].map(n => n.textContent)"),
        serde_json::json!(["demo-003.ome.tiff", "demo-004.ome.tiff"])
    );
    browser.eval("document.querySelector('.filter input').value = '005'; document.querySelector('.filter').submit()");
    assert!(browser.wait_for(
        "location.search === '?q=005' && document.readyState === 'complete'",
        LONG
    ));
    assert_eq!(
        browser.eval("[...document.querySelectorAll('.gallery .name')].map(n => n.textContent)"),
        serde_json::json!(["demo-005.ome.tiff"])
    );
    shot(&mut browser, "gallery-filtered-phone");
    assert_clean(&mut browser, "filtered gallery");
}

/// A 64×48 8-bit OME-TIFF of one unnamed channel over 3 timepoints: plane t is a
/// bright square at x = 16·t (so each timepoint looks different).
fn write_time_series(path: &std::path::Path) {
    use tiff::encoder::{TiffEncoder, colortype};
    use tiff::tags::Tag;
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\"><Image ID=\"Image:0\" Name=\"series\"><Pixels ID=\"Pixels:0\" DimensionOrder=\"XYZCT\" Type=\"uint8\" SizeX=\"64\" SizeY=\"48\" SizeZ=\"1\" SizeC=\"1\" SizeT=\"3\" BigEndian=\"false\"><Channel ID=\"Channel:0:0\" SamplesPerPixel=\"1\"/><TiffData IFD=\"0\" PlaneCount=\"3\"/></Pixels></Image></OME>";
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = TiffEncoder::new(std::io::BufWriter::new(file)).unwrap();
    for t in 0..3u32 {
        let plane: Vec<u8> = (0..48u32)
            .flat_map(|y| {
                (0..64u32).map(move |x| {
                    if (16 * t..16 * t + 16).contains(&x) && (16..32).contains(&y) {
                        250
                    } else {
                        10
                    }
                })
            })
            .collect();
        let mut image = encoder.new_image::<colortype::Gray8>(64, 48).unwrap();
        if t == 0 {
            image
                .encoder()
                .write_tag(Tag::ImageDescription, xml)
                .unwrap();
        }
        image.write_data(&plane).unwrap();
    }
}

#[test]
fn time_series_steps_with_the_keys_and_wheel_and_pinch_zoom() {
    let Some(chromium) = chromium("time_series_steps_with_the_keys_and_wheel_and_pinch_zoom")
    else {
        return;
    };
    let site = TestSite::new(1);
    std::fs::create_dir_all(site.root().join("var/repository")).unwrap();
    write_time_series(&site.root().join("var/repository/series.ome.tiff"));
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, NARROW);
    browser.open(&url(&site, "/webclient/img_detail/1/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    // One channel without name or wavelength: "Channel 1", not OMERO's "0".
    assert_eq!(
        browser.eval("document.querySelector('li.channel .label').textContent"),
        "Channel 1"
    );
    assert_eq!(
        browser.eval("document.querySelector('.controls .dims').textContent"),
        "64 × 48 px · 1 Z-plane · 3 timepoints · 1 channel"
    );
    assert_eq!(browser.eval("document.getElementById('z') === null"), true);
    assert_eq!(
        browser.eval("document.getElementById('t-value').textContent"),
        "1 / 3"
    );
    browser.clear();
    browser.press("ArrowRight");
    browser.press("ArrowRight");
    browser.press("ArrowRight");
    assert!(browser.wait_for(
        "document.getElementById('t-value').textContent === '3 / 3' && location.search.includes('t=3')",
        LONG
    ));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert!(
        browser
            .requests
            .iter()
            .any(|u| u.contains("/webgateway/render_image/1/0/2/?") && u.contains("m=g")),
        "{:#?}",
        browser.requests
    );
    browser.press("ArrowLeft");
    assert!(browser.wait_for(
        "document.getElementById('t-value').textContent === '2 / 3'",
        LONG
    ));
    // The wheel zooms in around the pointer.
    let before = browser.eval("parseInt(document.getElementById('zoom-value').textContent)");
    let at = browser.eval("(() => { const r = document.getElementById('viewport').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()");
    browser.call(
        "Input.dispatchMouseEvent",
        serde_json::json!({"type": "mouseWheel", "x": number(&at[0]), "y": number(&at[1]), "deltaX": 0, "deltaY": -100}),
    );
    assert!(browser.wait_for(
        &format!(
            "parseInt(document.getElementById('zoom-value').textContent) > {before} && location.search.includes('zm=')"
        ),
        LONG
    ));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    shot(&mut browser, "viewer-time-series-390");
    assert_clean(&mut browser, "time series");

    // On a phone, two fingers spread apart zoom in.
    drop(browser);
    let mut browser = Browser::launch(&chromium, PHONE);
    browser.open(&url(&site, "/webclient/img_detail/1/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let before = browser.eval("parseInt(document.getElementById('zoom-value').textContent)");
    let at = browser.eval("(() => { const r = document.getElementById('viewport').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()");
    browser.pinch((number(&at[0]), number(&at[1])), 60.0, 180.0, 6);
    assert!(browser.wait_for(
        &format!(
            "parseInt(document.getElementById('zoom-value').textContent) >= 2 * {before} && location.search.includes('zm=')"
        ),
        LONG
    ), "{}", browser.eval("document.getElementById('zoom-value').textContent"));
    assert_clean(&mut browser, "time series");
}

#[test]
fn under_a_prefix_every_request_stays_under_it_and_succeeds() {
    let Some(chromium) = chromium("under_a_prefix_every_request_stays_under_it_and_succeeds")
    else {
        return;
    };
    let site = site_with(
        &[
            "--images",
            "2",
            "--size",
            "64",
            "--channels",
            "2",
            "--z",
            "2",
        ],
        true,
    );
    site.append_config("\"omero.web.prefix\" = \"/omero\"\n");
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, DESKTOP);
    browser.open(&url(&site, "/omero/webclient/"));
    assert!(browser.wait_for(
        "[...document.querySelectorAll('.gallery img')].every(i => i.complete && i.naturalWidth > 0) && [...document.querySelectorAll('.gallery .dims')].every(d => d.textContent.includes(' ch'))",
        LONG
    ));
    assert_eq!(
        browser.eval("getComputedStyle(document.querySelector('header')).display"),
        "flex",
        "the stylesheet did not load"
    );
    browser.eval("document.querySelector('.gallery li:last-child a').click()");
    assert!(browser.wait_for(
        "location.pathname.startsWith('/omero/webclient/img_detail/') && document.readyState === 'complete'",
        LONG
    ));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    browser.press("+");
    browser.press("+");
    browser.press("+");
    assert!(browser.wait_for(
        "document.getElementById('viewer').dataset.pending === '0' && document.querySelectorAll('#stage img.tile').length > 0",
        LONG
    ));
    browser.pump();
    let prefix = format!("http://127.0.0.1:{}/omero/", site.port);
    let static_url = format!("http://127.0.0.1:{}/static/", site.port);
    let outside: Vec<&String> = browser
        .requests
        .iter()
        .filter(|u| !u.starts_with(&prefix) && !u.starts_with(&static_url))
        .collect();
    assert!(outside.is_empty(), "{outside:#?}");
    assert!(
        browser
            .requests
            .iter()
            .any(|u| u.starts_with(&format!("{prefix}webgateway/render_image_region/")))
    );
    assert_clean(&mut browser, "under a prefix");
}

#[test]
fn scrubbing_z_loads_one_plane_at_a_time_and_ends_on_the_last() {
    let Some(chromium) = chromium("scrubbing_z_loads_one_plane_at_a_time_and_ends_on_the_last")
    else {
        return;
    };
    let site = site_with(
        &[
            "--images",
            "1",
            "--size",
            "256",
            "--channels",
            "1",
            "--z",
            "20",
        ],
        false,
    );
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, DESKTOP);
    browser.open(&url(&site, "/webclient/img_detail/1/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    browser.clear();
    // A drag over the slider: one input event per plane, faster than any render.
    // (each in a task of its own, as a pointer drag delivers them).
    browser.eval("(async () => { const z = document.getElementById('z'); for (let i = 0; i < 20; i++) { z.value = i; z.dispatchEvent(new Event('input', {bubbles: true})); await new Promise(r => setTimeout(r, 2)); } })()");
    assert!(browser.wait_for(
        "document.getElementById('z-value').textContent === '20 / 20'",
        LONG
    ));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let planes: Vec<&String> = browser
        .requests
        .iter()
        .filter(|u| u.contains("/webgateway/render_image/1/"))
        .collect();
    // One render in flight at a time, each one seen through, none given up half way
    // (a given-up request still costs the server its render).
    assert!(browser.cancelled.is_empty(), "{:#?}", browser.cancelled);
    assert!(planes.len() < 20, "{planes:#?}");
    assert!(
        planes.last().unwrap().contains("/render_image/1/19/0/"),
        "{planes:#?}"
    );
    assert!(
        browser
            .eval("document.getElementById('overview').src")
            .as_str()
            .unwrap()
            .contains("/render_image/1/19/0/")
    );
    assert_clean(&mut browser, "scrubbed Z");
}

/// A grey 8-bit PNG of `w`×`h`: a diagonal ramp.
fn write_grey_png(path: &std::path::Path, w: u32, h: u32) {
    let grey: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).map(move |x| ((x + y) / 32 % 256) as u8))
        .collect();
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&grey)
        .unwrap();
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

/// The viewer's Z line, e.g. "2 / 2".
fn z_shown(browser: &mut Browser) -> Value {
    browser.eval("document.getElementById('z-value').textContent")
}

#[test]
fn a_long_strip_keeps_a_usable_box_greyscale_shows_one_channel_keys_follow_focus_and_the_filter_survives()
 {
    let Some(chromium) = chromium("viewer_fixes_from_issue_23") else {
        return;
    };
    let site = site_with(
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
        false,
    );
    write_grey_png(&site.root().join("var/repository/zz-strip.png"), 8000, 300);
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, DESKTOP);

    // The filter survives opening an image: the viewer's "gallery" link goes back to
    // the filtered page.
    browser.open(&url(&site, "/webclient/?q=strip"));
    assert!(browser.wait_for(
        "document.querySelectorAll('.gallery li').length === 1",
        LONG
    ));
    browser.eval("document.querySelector('.gallery li a').click()");
    assert!(browser.wait_for(
        "location.pathname.includes('/img_detail/') && document.readyState === 'complete'",
        LONG
    ));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));

    // An 8000×300 strip: the box keeps a usable height (the image is fitted into it),
    // and keeps it when zoomed.
    let box_height = || "document.getElementById('viewport').clientHeight";
    let fitted = number(&browser.eval(box_height()));
    assert!(fitted >= 300.0, "the view box is {fitted} px tall");
    browser.eval("document.getElementById('zoom-in').click()");
    browser.eval("document.getElementById('zoom-in').click()");
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_eq!(number(&browser.eval(box_height())), fitted);
    let shown = browser.eval("document.getElementById('overview').getBoundingClientRect().height");
    assert!(
        number(&shown) > 34.0 * 2.0,
        "zoomed strip is {shown} px tall"
    );
    shot(&mut browser, "viewer-strip");
    assert_clean(&mut browser, "strip");

    browser.eval("document.getElementById('to-gallery').click()");
    assert!(browser.wait_for(
        "location.pathname === '/webclient/' && document.readyState === 'complete'",
        LONG
    ));
    assert_eq!(browser.eval("location.search"), "?q=strip");
    assert_eq!(
        browser.eval("document.querySelector('.filter input[name=q]').value"),
        "strip"
    );

    // Greyscale shows one channel, and what is ticked is what is drawn.
    browser.open(&url(&site, "/webclient/img_detail/1/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let ticked = "[...document.querySelectorAll('.channel-active')].map(c => c.checked)";
    assert_eq!(browser.eval(ticked), serde_json::json!([true, true]));
    browser.clear();
    browser.eval("document.querySelector('input[name=model][value=g]').click()");
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_eq!(browser.eval(ticked), serde_json::json!([true, false]));
    let (c, m) = render_states(&browser, 1).pop().expect("a render");
    assert_eq!(m, "g");
    assert!(c.starts_with("1|") && c.contains(",-2|"), "{c}");
    // Ticking channel 2 in greyscale switches to it.
    browser.clear();
    browser.eval("document.querySelectorAll('.channel-active')[1].click()");
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_eq!(browser.eval(ticked), serde_json::json!([false, true]));
    let (c, _) = render_states(&browser, 1).pop().expect("a render");
    assert!(c.starts_with("-1|") && c.contains(",2|"), "{c}");
    // A URL with greyscale and two channels on shows the first.
    browser.open(&url(
        &site,
        "/webclient/img_detail/1/?c=1|0:500$FF0000,2|0:500$00FF00&m=g",
    ));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_eq!(browser.eval(ticked), serde_json::json!([true, false]));

    // Keys work wherever focus is: after ticking a checkbox, and on a window slider
    // (which then does not move too).
    assert_eq!(z_shown(&mut browser), "2 / 2");
    browser.eval("(() => { const c = document.querySelectorAll('.channel-active')[0]; c.focus(); c.click(); c.click(); })()");
    browser.press("ArrowDown");
    assert!(browser.wait_for(
        "document.getElementById('z-value').textContent === '1 / 2'",
        LONG
    ));
    let slider = "document.querySelector('li.channel .window-end')";
    let before = browser.eval(&format!("{slider}.value"));
    browser.eval(&format!("{slider}.focus()"));
    browser.press("ArrowUp");
    assert!(browser.wait_for(
        "document.getElementById('z-value').textContent === '2 / 2'",
        LONG
    ));
    assert_eq!(browser.eval(&format!("{slider}.value")), before);
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_clean(&mut browser, "greyscale and keys");
}

#[test]
fn saved_settings_show_in_a_fresh_viewer_until_reset() {
    let Some(chromium) = chromium("saved_settings_show_in_a_fresh_viewer_until_reset") else {
        return;
    };
    let site = site_with(
        &["--images", "1", "--size", "128", "--channels", "2"],
        false,
    );
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, DESKTOP);
    browser.open(&url(&site, "/webclient/img_detail/1/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let windows =
        "[...document.querySelectorAll('li.channel .window-value')].map(w => w.textContent)";
    let imported = browser.eval(windows);
    set_input(&mut browser, "li.channel .window-end", "300", "input");
    set_input(&mut browser, "li.channel .window-start", "20", "input");
    browser.eval("document.querySelector('input[name=model][value=g]').click()");
    let chosen = browser.eval(windows);
    assert_ne!(chosen, imported);
    browser.eval("document.getElementById('save-rdef').click()");
    assert!(browser.wait_for(
        "document.getElementById('rdef-status').textContent === 'saved'",
        LONG
    ));
    // A fresh page, no view state in the URL: the saved settings.
    browser.open(&url(&site, "/webclient/img_detail/1/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_eq!(browser.eval(windows), chosen);
    assert_eq!(
        browser.eval("document.querySelector('input[name=model]:checked').value"),
        "g"
    );
    assert_clean(&mut browser, "saved settings");
    // Reset to imported: the page reloads with the imported defaults.
    browser.eval("document.getElementById('reset-rdef').click()");
    assert!(browser.wait_for(
        "document.readyState === 'complete' && document.getElementById('rdef-status') !== null && document.getElementById('rdef-status').textContent === '' && document.querySelector('input[name=model]:checked').value === 'c'",
        LONG
    ));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_eq!(browser.eval(windows), imported);
    assert_clean(&mut browser, "reset settings");
}

#[test]
fn windows_can_be_typed_exactly_and_pixels_are_sharp_above_100_percent() {
    let Some(chromium) =
        chromium("windows_can_be_typed_exactly_and_pixels_are_sharp_above_100_percent")
    else {
        return;
    };
    let site = site_with(
        &["--images", "1", "--size", "128", "--channels", "2"],
        false,
    );
    site.ok(&["start"]);
    let mut browser = Browser::launch(&chromium, DESKTOP);
    browser.open(&url(&site, "/webclient/img_detail/1/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let rendering = "getComputedStyle(document.getElementById('overview')).imageRendering";
    // At fit: sharp only if the fitted image is magnified.
    let fit_scale = number(&browser.eval(
        "document.getElementById('overview').getBoundingClientRect().width / 128 * devicePixelRatio",
    ));
    assert_eq!(
        browser.eval(rendering),
        if fit_scale > 1.0 { "pixelated" } else { "auto" }
    );
    browser.open(&url(&site, "/webclient/img_detail/1/?zm=50&x=64&y=64"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_eq!(browser.eval(rendering), "auto");
    browser.open(&url(&site, "/webclient/img_detail/1/?zm=800&x=64&y=64"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_eq!(browser.eval(rendering), "pixelated");

    // A typed window start applies exactly; an end typed below the start is held at
    // the start.
    browser.clear();
    set_input(
        &mut browser,
        "li.channel .window-start-number",
        "123",
        "change",
    );
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let (c, _) = render_states(&browser, 1).pop().expect("a render");
    assert!(c.starts_with("1|123:"), "{c}");
    assert!(
        browser
            .eval("document.querySelector('li.channel .window-value').textContent")
            .as_str()
            .unwrap()
            .starts_with("123–")
    );
    set_input(&mut browser, "li.channel .window-end-number", "7", "change");
    assert_eq!(
        browser.eval("document.querySelector('li.channel .window-value').textContent"),
        "123–123"
    );
    // Junk is refused and the field shows the window again.
    set_input(
        &mut browser,
        "li.channel .window-start-number",
        "",
        "change",
    );
    assert_eq!(
        browser.eval("document.querySelector('li.channel .window-start-number').value"),
        "123"
    );
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    assert_clean(&mut browser, "typed windows");
}

#[test]
fn auto_sets_the_window_from_the_planes_histogram() {
    let Some(chromium) = chromium("auto_sets_the_window_from_the_planes_histogram") else {
        return;
    };
    let site = site_with(
        &["--images", "1", "--size", "128", "--channels", "2"],
        false,
    );
    site.ok(&["start"]);
    // What the window should be: the 0.1th–99.9th percentile of the plane's histogram,
    // whose 256 bins split the channel's range.
    let (_, _, body) = support::fetch(site.port, "/webgateway/imgData/1/", &[]);
    let img: Value = serde_json::from_slice(&body).unwrap();
    let (min, max) = (
        number(&img["channels"][0]["window"]["min"]),
        number(&img["channels"][0]["window"]["max"]),
    );
    let z = img["rdefs"]["defaultZ"].as_u64().unwrap();
    let (_, _, body) = support::fetch(
        site.port,
        &format!("/webgateway/histogram_json/1/channel/0/?theZ={z}&theT=0&bins=256"),
        &[],
    );
    let counts: Vec<f64> = serde_json::from_slice::<Value>(&body).unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(number)
        .collect();
    let total: f64 = counts.iter().sum();
    // The first bin (in `order`) by which more than 0.1 % of the pixels are counted.
    let edge = |order: Vec<usize>| {
        let mut seen = 0.0;
        for i in order {
            seen += counts[i];
            if seen > total * 0.001 {
                return i;
            }
        }
        unreachable!("the counts add up to the total")
    };
    let low = edge((0..counts.len()).collect());
    let high = edge((0..counts.len()).rev().collect());
    let width = (max - min) / 256.0;
    let expected = format!(
        "{}–{}",
        (min + low as f64 * width).floor(),
        (min + (high + 1) as f64 * width).ceil()
    );

    let mut browser = Browser::launch(&chromium, DESKTOP);
    browser.open(&url(&site, "/webclient/img_detail/1/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    browser.clear();
    browser.eval("document.querySelector('li.channel .window-auto').click()");
    assert!(
        browser.wait_for(
            &format!(
                "document.querySelector('li.channel .window-value').textContent === {expected:?}"
            ),
            LONG
        ),
        "window {} not {expected}",
        browser.eval("document.querySelector('li.channel .window-value').textContent")
    );
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    let (c, _) = render_states(&browser, 1).pop().expect("a render");
    assert!(
        c.starts_with(&format!("1|{}$", expected.replace('–', ":"))),
        "{c}"
    );
    assert_clean(&mut browser, "auto window");
}

/// Whether the histogram canvas of the first channel has a bar pixel (opaque #555, the
/// greyscale bar colour) on its bottom row in its right half.
const RIGHT_HALF_BAR: &str = "(() => { const c = document.querySelector('li.channel canvas.histogram'); const d = c.getContext('2d').getImageData(Math.floor(c.width / 2), c.height - 1, c.width - Math.floor(c.width / 2), 1).data; for (let i = 0; i < d.length; i += 4) { if (d[i] === 85 && d[i + 1] === 85 && d[i + 2] === 85 && d[i + 3] === 255) return true; } return false; })()";

#[test]
fn the_histogram_is_drawn_under_the_window_with_a_log_scale() {
    let Some(chromium) = chromium("the_histogram_is_drawn_under_the_window_with_a_log_scale")
    else {
        return;
    };
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    std::fs::create_dir_all(&repository).unwrap();
    // 4090 pixels at 10 and 6 at 200: on a linear scale the bright ones are no bar at
    // all, on a log scale a clear one.
    let mut grey = vec![10u8; 64 * 64];
    for pixel in grey.iter_mut().take(6) {
        *pixel = 200;
    }
    let file = std::fs::File::create(repository.join("dim.png")).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), 64, 64);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&grey)
        .unwrap();
    site.ok(&["start"]);

    let mut browser = Browser::launch(&chromium, DESKTOP);
    browser.open(&url(&site, "/webclient/img_detail/1/"));
    assert!(browser.wait_for(VIEW_SETTLED, LONG));
    // Hidden until asked for (as iviewer's "show histogram"), and nothing fetched.
    assert_eq!(
        browser.eval("document.querySelector('li.channel canvas.histogram').hidden"),
        true
    );
    assert!(
        !browser
            .requests
            .iter()
            .any(|u| u.contains("histogram_json"))
    );

    browser.eval("document.getElementById('histogram-show').click()");
    assert!(browser.wait_for(
        "document.querySelector('li.channel canvas.histogram').dataset.drawn === '1'",
        LONG
    ));
    assert!(
        browser
            .requests
            .iter()
            .any(|u| u.contains("/webgateway/histogram_json/1/channel/0/?theZ=0&theT=0"))
    );
    assert_eq!(
        browser.eval("document.querySelector('li.channel canvas.histogram').dataset.scale"),
        "linear"
    );
    assert_eq!(browser.eval(RIGHT_HALF_BAR), false, "linear scale");
    browser.eval("document.getElementById('histogram-log').click()");
    assert!(browser.wait_for(
        "document.querySelector('li.channel canvas.histogram').dataset.scale === 'log'",
        LONG
    ));
    assert_eq!(browser.eval(RIGHT_HALF_BAR), true, "log scale");
    // The canvas spans the channel's controls.
    assert!(
        number(&browser.eval(
            "document.querySelector('li.channel canvas.histogram').getBoundingClientRect().width"
        )) > 100.0
    );
    shot(&mut browser, "viewer-histogram-log");
    assert_clean(&mut browser, "histogram");
}

/// The OMERO.iviewer release the test installs.
const IVIEWER_WHEEL: &str = "omero_iviewer-0.19.1-py3-none-any.whl";

/// OMERO.iviewer's wheel from the wheel cache (`~/.cache/omero-webctl/wheels`, where
/// `scripts/omeroweb-venv` keeps its wheels), fetched there from PyPI by the OMERO.web
/// venv's pip when missing. None (the test skips; under CI=true it fails) without
/// either.
fn iviewer_wheel(test: &str) -> Option<std::path::PathBuf> {
    let cache = support::cache_dir().join("wheels");
    let wheel = cache.join(IVIEWER_WHEEL);
    if !wheel.is_file()
        && let Some(venv) = support::omeroweb_venv(test)
    {
        let _ = std::process::Command::new(venv.join("bin/pip"))
            .args(["download", "omero-iviewer==0.19.1", "--no-deps", "-d"])
            .arg(&cache)
            .status();
    }
    if wheel.is_file() {
        return Some(wheel);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: no {IVIEWER_WHEEL} in {} and pip could not fetch it; CI=true requires it",
        cache.display()
    );
    eprintln!("{test}: skipped, no {IVIEWER_WHEEL}");
    None
}

/// Installs the wheel's `omero_iviewer` package as the site's `var/apps/omero_iviewer`
/// (unpacked by Python's zipfile, as pip would).
fn install_iviewer(site: &TestSite, wheel: &std::path::Path, python: &std::path::Path) {
    let apps = site.root().join("var/apps");
    std::fs::create_dir_all(&apps).unwrap();
    let status = std::process::Command::new(python)
        .args(["-m", "zipfile", "-e"])
        .arg(wheel)
        .arg(&apps)
        .status()
        .unwrap();
    assert!(status.success(), "unpacking {}", wheel.display());
    assert!(
        apps.join("omero_iviewer/templates/omero_iviewer/index.html")
            .is_file()
    );
}

#[test]
fn omero_iviewers_own_bundle_opens_an_image_from_the_gateway() {
    let Some(chromium) = chromium("omero_iviewers_own_bundle_opens_an_image_from_the_gateway")
    else {
        return;
    };
    let Some(wheel) = iviewer_wheel("omero_iviewers_own_bundle_opens_an_image_from_the_gateway")
    else {
        return;
    };
    let site = site_with(
        &[
            "--images",
            "1",
            "--size",
            "128",
            "--channels",
            "2",
            "--z",
            "3",
        ],
        // Image 2 is a 2048×1536 PNG: resolution levels, so iviewer asks for tiles.
        true,
    );
    let Some(venv) =
        support::omeroweb_venv("omero_iviewers_own_bundle_opens_an_image_from_the_gateway")
    else {
        return;
    };
    install_iviewer(&site, &wheel, &venv.join("bin/python"));
    site.ok(&["start"]);
    // Collected into static_root (omero.web.static_root, var/static) at start, as
    // Django's collectstatic does, so nginx serves them too.
    assert!(
        site.root()
            .join("var/static/omero_iviewer/main.js")
            .is_file(),
        "iviewer's static files were not collected"
    );

    let mut browser = Browser::launch(&chromium, DESKTOP);
    browser.open(&url(&site, "/iviewer/?images=1"));
    // iviewer asks imgData through its own image_data view, then renders the plane
    // with the image's channels.
    assert!(
        browser.wait_for(
            "performance.getEntriesByType('resource').some(r => r.name.includes('/webgateway/render_image/1/1/0/?c=1|'))",
            LONG
        ),
        "{:#?}",
        browser.requests
    );
    assert!(browser.wait_for(
        "document.querySelectorAll('.channel-button-group .channel').length === 2",
        LONG
    ));
    assert!(
        browser
            .requests
            .iter()
            .any(|u| u.contains("/iviewer/image_data/1/"))
    );
    assert_eq!(
        browser.eval("[...document.querySelectorAll('.channel-button-group .channel')].map(b => b.textContent.trim())"),
        serde_json::json!(["DAPI", "GFP"])
    );
    // Turning a channel off renders without it (iviewer leaves inactive channels out
    // of `c`).
    browser.clear();
    browser.eval("document.querySelectorAll('.channel-button-group .channel')[1].click()");
    assert!(
        browser.wait_for(
            "performance.getEntriesByType('resource').some(r => r.name.includes('render_image/1/1/0/?c=1|') && !r.name.includes(',2|'))",
            LONG
        ),
        "{:#?}",
        browser.requests
    );
    shot(&mut browser, "iviewer");

    // Saving: imgData's perms let iviewer enable "Save" (no access control here), a
    // typed window start is saved, and a fresh page opens with it.
    assert!(
        browser.wait_for(
            "document.querySelectorAll('.channel-start').length === 2 && !document.querySelector('.save-settings button').disabled",
            LONG
        ),
        "iviewer's Save stays disabled"
    );
    let (start, end) = {
        let window = browser.eval(
            "[document.querySelectorAll('.channel-start')[0].value, document.querySelectorAll('.channel-end')[0].value]",
        );
        let number = |v: &serde_json::Value| v.as_str().unwrap().trim().parse::<f64>().unwrap();
        (number(&window[0]), number(&window[1]))
    };
    let typed = ((start + end) / 2.0).floor();
    assert!(typed > start && typed < end, "{start}..{end}");
    browser.clear();
    browser.eval(&format!(
        "(() => {{ const s = document.querySelectorAll('.channel-start')[0]; s.value = '{typed}'; s.dispatchEvent(new Event('blur')); }})()"
    ));
    assert!(
        browser.wait_for(
            &format!("performance.getEntriesByType('resource').some(r => r.name.includes('render_image/1/1/0/?c=1|{typed}:'))"),
            LONG
        ),
        "the typed window was not rendered: {:#?}",
        browser.requests
    );
    browser.eval("document.querySelector('.save-settings button').click()");
    let saved = || {
        let (status, body) = site.get("/webgateway/imgData/1/")?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200 && json["channels"][0]["window"]["start"] == typed).then_some(())
    };
    assert!(
        wait_until(LONG, || saved().is_some()),
        "saveImgRDef did not keep start {typed}: {:#?}",
        browser.requests
    );
    assert!(
        browser
            .requests
            .iter()
            .any(|u| u.contains("/webgateway/saveImgRDef/1/")),
        "{:#?}",
        browser.requests
    );
    browser.open(&url(&site, "/iviewer/?images=1"));
    assert!(
        browser.wait_for(
            &format!("performance.getEntriesByType('resource').some(r => r.name.includes('render_image/1/1/0/?c=1|{typed}:'))"),
            LONG
        ),
        "a fresh page does not show the saved window: {:#?}",
        browser.requests
    );
    assert!(browser.wait_for(
        &format!("document.querySelectorAll('.channel-start').length === 2 && parseFloat(document.querySelectorAll('.channel-start')[0].value) === {typed}"),
        LONG
    ));
    browser.pump();
    let failed: Vec<_> = browser
        .failed_responses()
        .into_iter()
        .filter(|r| !r.url.contains("/omero_ms_image_region/"))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");

    // A big image: iviewer reads imgData's levels and loads tiles of a lower level at
    // fit, never the whole plane.
    browser.open(&url(&site, "/iviewer/?images=2"));
    assert!(
        browser.wait_for(
            "performance.getEntriesByType('resource').some(r => r.name.includes('/webgateway/render_image_region/2/0/0/?tile=1,'))",
            LONG
        ),
        "{:#?}",
        browser.requests
    );
    assert!(
        !browser
            .requests
            .iter()
            .any(|u| u.contains("/render_image/2/")),
        "{:#?}",
        browser.requests
    );
    shot(&mut browser, "iviewer-big");
    browser.pump();
    assert!(
        browser
            .errors
            .iter()
            .all(|e| e.contains("omero_ms_image_region")),
        "{:#?}",
        browser.errors
    );
    // The one failure is iviewer's probe for OMERO's image-region microservice, which
    // OMERO.web itself answers with 404 too.
    let failed: Vec<_> = browser
        .failed_responses()
        .into_iter()
        .filter(|r| !r.url.contains("/omero_ms_image_region/"))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

/// The image IDs of a dataset's images by name, from the JSON API.
fn dataset_image_ids(site: &TestSite) -> Vec<(String, u64)> {
    let (status, body) = site.get("/api/v0/m/images/").expect("the JSON API answers");
    assert_eq!(status, 200, "{body}");
    let images: Value = serde_json::from_str(&body).unwrap();
    images["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["Name"].as_str().unwrap().to_string(),
                i["@id"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// OMERO.iviewer's thumbnail strip lists the opened image's dataset (a folder) with
/// the gateway's thumbnails, clicking one opens that image, and its ROI tab loads the
/// (empty) ROI list: no failed request but iviewer's probe of the image-region
/// microservice, which OMERO.web answers 404 too.
#[test]
fn omero_iviewers_thumbnail_strip_and_roi_tab_work_against_the_gateway() {
    let test = "omero_iviewers_thumbnail_strip_and_roi_tab_work_against_the_gateway";
    let Some(chromium) = chromium(test) else {
        return;
    };
    let Some(wheel) = iviewer_wheel(test) else {
        return;
    };
    let Some(venv) = support::omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::new(1);
    let folder = site.root().join("var/repository/exp1");
    std::fs::create_dir_all(&folder).unwrap();
    for name in ["a.png", "b.png", "c.png"] {
        write_grey_png(&folder.join(name), 96, 64);
    }
    write_grey_png(&site.root().join("var/repository/top.png"), 96, 64);
    install_iviewer(&site, &wheel, &venv.join("bin/python"));
    site.ok(&["start"]);
    let ids = dataset_image_ids(&site);
    let id = |name: &str| ids.iter().find(|(n, _)| n == name).unwrap().1;
    let (a, b, c) = (id("a.png"), id("b.png"), id("c.png"));

    let mut browser = Browser::launch(&chromium, DESKTOP);
    browser.open(&url(&site, &format!("/iviewer/?images={b}")));
    // The strip holds the dataset's three images (not the orphan), each thumbnail
    // loaded from the gateway, b's marked as the one shown.
    let strip = "[...document.querySelectorAll('.thumbnail-scroll-panel img[data-id]')]";
    assert!(
        browser.wait_for(
            &format!("{strip}.length === 3 && {strip}.every(i => i.complete && i.naturalWidth > 0 && i.src.includes('/render_thumbnail/'))"),
            LONG
        ),
        "{:#?}",
        browser.requests
    );
    assert_eq!(
        browser.eval(&format!("{strip}.map(i => parseInt(i.dataset.id))")),
        serde_json::json!([a, b, c])
    );
    assert!(browser.wait_for(
        &format!("document.getElementById('img-thumb-{b}').classList.contains('selected')"),
        LONG
    ));
    shot(&mut browser, "iviewer-strip");

    // Clicking a's thumbnail opens a.
    browser.eval(&format!("document.getElementById('img-thumb-{a}').click()"));
    assert!(
        browser.wait_for(
            &format!("performance.getEntriesByType('resource').some(r => r.name.includes('/webgateway/render_image/{a}/'))"),
            LONG
        ),
        "{:#?}",
        browser.requests
    );

    // The ROI tab asks the JSON API for the image's ROIs and gets none.
    browser.eval("document.querySelector('#panel-tabs a[href=\"#rois\"]').click()");
    assert!(
        browser.wait_for(
            &format!("performance.getEntriesByType('resource').some(r => r.name.includes('/api/v0/m/rois/?image={a}'))"),
            LONG
        ),
        "{:#?}",
        browser.requests
    );
    browser.pump();
    assert!(
        browser
            .errors
            .iter()
            .all(|e| e.contains("omero_ms_image_region")),
        "{:#?}",
        browser.errors
    );
    let failed: Vec<_> = browser
        .failed_responses()
        .into_iter()
        .filter(|r| !r.url.contains("/omero_ms_image_region/"))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}
