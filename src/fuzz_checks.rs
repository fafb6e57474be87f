//! What each fuzz target (`fuzz/fuzz_targets/`) checks of one input. The checks live in
//! the library so that every input a fuzzer once broke us with is replayed by
//! `tests/e2e/fuzz_regressions.rs` in each `cargo test`, with the very same code.
//!
//! Each check feeds untrusted bytes to one of our parsers. A parser may refuse the
//! input (that is its job), but must never panic, and what it accepts must survive a
//! round trip through what we write: a value we store reads back the same, a config we
//! save parses to the same properties.

use std::path::PathBuf;

use crate::config::{Config, import, omero_xml, registry, wsgi_args};
use crate::gateway::imaging::encode;
use crate::gateway::imaging::render::{self, OutputSize, RenderLimits};
use crate::gateway::imaging::source::{
    self, ChannelMeta, ImageMeta, ImageSource, Limits, PixelType,
};
use crate::gateway::query::render_query;
use crate::nginx;
use crate::pool::protocol;
use crate::site::{Site, SiteKind};

/// A check of one fuzz input.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name.
pub const TARGETS: &[(&str, Check)] = &[
    ("property_value", property_value),
    ("wsgi_args", wsgi_args),
    ("config_file", config_file),
    ("nginx_values", nginx_values),
    ("render_query", render_query),
    ("image_file", image_file),
    ("control_request", control_request),
];

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The first byte picks a property of the registry; the rest is its raw value.
pub fn property_value(data: &[u8]) {
    let Some((&pick, raw)) = data.split_first() else {
        return;
    };
    let prop = &registry::PROPERTIES[pick as usize % registry::PROPERTIES.len()];
    let raw = text(raw);
    let Ok(value) = prop.parse(&raw) else {
        return;
    };
    let again = prop.parse(&value.to_raw());
    assert_eq!(
        again.as_ref().ok(),
        Some(&value),
        "{}: {raw:?} read back as {again:?}",
        prop.key
    );
    let from_toml = prop.parse_toml(&prop.to_toml(&value));
    assert_eq!(
        from_toml.as_ref().ok(),
        Some(&value),
        "{}: {raw:?} through TOML became {from_toml:?}",
        prop.key
    );
}

/// `omero.web.wsgi_args`, as the embedded pool and as Gunicorn read it; what is
/// accepted also applies to the settings.
pub fn wsgi_args(data: &[u8]) {
    let raw = text(data);
    if let Ok(args) = wsgi_args::parse(&raw) {
        let site = Site::with_kind("/nonexistent/omero-web-fuzz", SiteKind::Embedded);
        let empty = Config::from_text(&site, site.toml_config_file(), String::new(), None)
            .expect("an empty config is valid");
        let mut settings = empty.settings();
        args.apply(&mut settings);
        let _ = args.no_effect_note();
    }
    let _ = wsgi_args::parse_for_gunicorn(&raw);
}

/// A config file: the first byte picks the format (our TOML, OMERO's config.xml or
/// `key=value` import lines). A file we accept is saved and read again to the same
/// properties.
pub fn config_file(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let body = text(body);
    match pick % 3 {
        0 | 1 => {
            let kind = if pick % 3 == 0 {
                SiteKind::Embedded
            } else {
                SiteKind::OmeroWeb
            };
            let site = Site::with_kind("/nonexistent/omero-web-fuzz", kind);
            let path: PathBuf = match kind {
                SiteKind::Embedded => site.toml_config_file(),
                SiteKind::OmeroWeb => site.omero_config_file(),
            };
            let Ok(config) = Config::from_text(&site, path.clone(), body.clone(), None) else {
                return;
            };
            let _ = config.settings();
            let saved = config.to_text();
            let again = Config::from_text(&site, path, saved.clone(), None)
                .unwrap_or_else(|e| panic!("our own output is refused: {e}\n{saved}"));
            assert_eq!(
                again.set_entries(),
                config.set_entries(),
                "properties changed on save:\n{body:?}\n---\n{saved}"
            );
        }
        _ => {
            let _ = import::parse_key_value_lines(&body);
            if let Ok((xml, entries)) = omero_xml::OmeroXml::parse(&body, None) {
                let saved = xml.to_text();
                let (_, again) = omero_xml::OmeroXml::parse(&saved, None)
                    .unwrap_or_else(|e| panic!("our config.xml is refused: {e:?}\n{saved}"));
                let pairs = |e: &[omero_xml::Entry]| {
                    e.iter()
                        .map(|e| (e.key.clone(), e.value.clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(pairs(&again), pairs(&entries), "{saved}");
            }
        }
    }
}

/// The values that go into nginx configs: server names, body sizes and the extra
/// directives (one line each); extra directives we accept must have the same block
/// structure in `nginx -t`'s reading (`nginx::differential`).
pub fn nginx_values(data: &[u8]) {
    let raw = text(data);
    let _ = nginx::validate_server_name(&raw);
    let _ = nginx::validate_max_body_size(&raw);
    let site = std::path::Path::new("/srv/omero-web");
    let lines: Vec<String> = raw.split('\n').map(str::to_string).collect();
    // What we accept, nginx must read with the same block structure (`nginx -t`).
    let built = nginx::differential::lines_from(data);
    for lines in [lines, built] {
        if nginx::validate_extra_config(&lines, site).is_ok()
            && let Some(nginx::differential::Verdict::Differs(said)) =
                nginx::differential::compare_with_nginx(&lines)
        {
            panic!("accepted {lines:?}, but nginx reads another structure: {said}");
        }
    }
}

/// A render query (`c`, `m`, `maps`, `region`, `tile`, `p`, `q`, …) against a
/// 3-channel 16-bit 1000×700 image with 5 Z and 2 T: what is accepted stays inside
/// the image.
pub fn render_query(data: &[u8]) {
    let meta = fuzz_meta();
    let query = text(data);
    let Ok(request) = render_query::parse_query(&query, &meta) else {
        return;
    };
    assert_eq!(request.settings.channels.len(), 3, "{query}");
    if let Some(r) = request.region {
        assert!(
            r.width > 0 && r.height > 0 && r.fits(meta.size_x, meta.size_y),
            "{query}: region {r:?} outside the image"
        );
    }
}

fn fuzz_meta() -> ImageMeta {
    let channel = |color| ChannelMeta {
        name: None,
        color: Some(color),
        emission_nm: None,
        min: 10,
        max: 4000,
        lut: None,
        display_range: None,
    };
    ImageMeta {
        name: "fuzz".into(),
        size_x: 1000,
        size_y: 700,
        size_z: 5,
        size_c: 3,
        size_t: 2,
        pixel_type: PixelType::U16,
        channels: vec![
            channel([255, 0, 0]),
            channel([0, 255, 0]),
            channel([0, 0, 255]),
        ],
        physical_size_um: [None; 3],
        rgb: false,
    }
}

/// A file in the repository (TIFF, OME-TIFF, PNG, JPEG or anything else): opened
/// within small limits, a thumbnail and a full render made of what opens. A thumbnail
/// from sampled rows equals the one made from whole planes, and the gateway's JPEG of
/// the full render equals the encode of its pixels.
pub fn image_file(data: &[u8]) {
    let dir = std::env::temp_dir().join(format!("omero-webctl-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("input.ome.tiff");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    // Small limits: the fuzzer must find bugs, not the size of memory.
    let limits = Limits {
        max_pixels: 1 << 20,
        within: None,
    };
    let Ok(image) = source::open(&path, &limits) else {
        return;
    };
    let meta = image.meta();
    assert!(meta.pixel_count() <= limits.max_pixels, "{meta:?}");
    let request = render::RenderRequest::defaults(meta);
    let render_limits = RenderLimits::default();
    let thumbnail = OutputSize::Fit {
        max_w: 32,
        max_h: 32,
    };
    let direct = render::render_rgb(image.as_ref(), &request, thumbnail, &render_limits);
    let whole = render::render_rgb(
        &WholePlanes(image.as_ref()),
        &request,
        thumbnail,
        &render_limits,
    );
    if let (Ok(direct), Ok(whole)) = (&direct, &whole) {
        assert!(direct.pixels == whole.pixels, "the sampled read differs");
    }
    if let Ok(img) =
        render::render_rgb(image.as_ref(), &request, OutputSize::Native, &render_limits)
    {
        // The gateway's JPEG (by way of Y, Cb and Cr planes where it can) is the
        // encode of that image, at 4:2:0 and at 4:4:4.
        for quality in [0.85, 0.95] {
            let mut request = request.clone();
            request.settings.quality = quality;
            let encoded = encode::encode_jpeg(&img, quality);
            let rendered =
                render::render_jpeg(image.as_ref(), &request, OutputSize::Native, &render_limits);
            if let (Ok(encoded), Ok(rendered)) = (&encoded, &rendered) {
                assert!(
                    encoded == rendered,
                    "render_jpeg differs from encode_jpeg at {quality}"
                );
            }
        }
    }
}

/// A source seen through `meta` and `plane` alone: the trait's defaults read whole
/// planes, the reference for sources that read sampled rows directly (here and in
/// `tests/e2e/gateway_render/regions.rs`).
pub struct WholePlanes<'a>(pub &'a dyn ImageSource);

impl ImageSource for WholePlanes<'_> {
    fn meta(&self) -> &ImageMeta {
        self.0.meta()
    }
    fn plane(&self, z: u32, c: u32, t: u32) -> Result<source::Plane, source::SourceError> {
        self.0.plane(z, c, t)
    }
}

/// One line from a control-socket client: what the master accepts is a request that
/// serialises and reads back the same.
pub fn control_request(data: &[u8]) {
    let line = text(data);
    if let Ok(request) = protocol::parse_request(&line) {
        let json = serde_json::to_string(&request).expect("requests serialise");
        assert_eq!(protocol::parse_request(&json).ok(), Some(request), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_takes_empty_and_simple_input() {
        for (name, check) in TARGETS {
            for input in [&b""[..], b"\x00", b"a=b", b"omero.web.debug"] {
                check(input);
            }
            assert!(!name.is_empty());
        }
    }
}
