//! OMERO.iviewer's own bundle (installed from PyPI) against the gateway: an image opened,
//! the thumbnail strip and the ROI tab.

use super::*;

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
