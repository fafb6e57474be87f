//! The gallery and the pages around the viewer in Chromium: desktop, narrow and phone sizes,
//! filters and pages, error pages, and everything under a URL prefix.

use super::*;

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
