//! The viewer's rendering controls: channels, model, windows typed or set by auto, the
//! histogram, saved settings, and a long channel strip.

use super::*;

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
