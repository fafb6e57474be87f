//! Moving through Z and T in the viewer, and a URL's view state: grey stays grey, one plane
//! loaded at a time, keys, wheel and pinch.

use super::*;

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
