//! What OMERO's own clients and monitors ask of an embedded site (issue 23): the
//! health-check URLs, the viewer's error pages, the published thumbnails' caching.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;

use support::{TestSite, fetch, header};

mod browsing;
mod imagej;
mod iviewer;
mod monitoring;
mod rendering;

/// A raw POST with a form body: the whole response as text.
fn post_form(port: u16, path: &str, form: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn demo_site(images: u32) -> TestSite {
    TestSite::with_demo(1, "", &["--images", &images.to_string(), "--size", "64"])
}

/// Writes an 8-bit PNG (`channels` 1 = grey, 3 = RGB) whose samples span only
/// `low..=high`.
fn narrow_png(path: &std::path::Path, channels: usize, low: u8, high: u8) {
    let (w, h) = (32u32, 16u32);
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(if channels == 3 {
        png::ColorType::Rgb
    } else {
        png::ColorType::Grayscale
    });
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    let data: Vec<u8> = (0..(w * h) as usize * channels)
        .map(|i| low + (i % (high - low + 1) as usize) as u8)
        .collect();
    writer.write_image_data(&data).unwrap();
}

fn json_of(port: u16, path: &str) -> serde_json::Value {
    let (status, _, body) = fetch(port, path, &[]);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The body of a response `post_form` returned.
fn body_of(response: &str) -> &str {
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("")
}
