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

mod channels;
mod gallery;
mod iviewer;
mod planes;
mod tiles;

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
