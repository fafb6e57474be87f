//! ImageJ hyperstacks: the dimensions, LUTs, display ranges and calibration ImageJ
//! writes in its ImageDescription and tags.

use super::length_in_um;

/// ImageJ writes hyperstacks as pages in CZT order with `channels=`, `slices=` and
/// `frames=` lines in the ImageDescription.
pub(super) fn parse_imagej(description: &str) -> Option<(u32, u32, u32)> {
    if !description.starts_with("ImageJ=") {
        return None;
    }
    let field = |key: &str| {
        description.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().parse::<u32>().ok())?
        })
    };
    let c = field("channels").unwrap_or(1).max(1);
    let z = field("slices").unwrap_or(1).max(1);
    let t = field("frames").unwrap_or(1).max(1);
    Some((z, c, t))
}

/// The LUTs and display ranges in the current page's ImageJ tags (none when they are
/// absent or malformed).
pub(super) fn imagej_metadata<R: std::io::Read + std::io::Seek>(
    decoder: &mut tiff::decoder::Decoder<R>,
) -> super::super::imagej_luts::ImagejMetadata {
    use super::super::imagej_luts::{BYTE_COUNTS_TAG, METADATA_TAG, parse};
    let metadata = decoder.get_tag_u8_vec(tiff::tags::Tag::Unknown(METADATA_TAG));
    let counts = decoder.get_tag_u32_vec(tiff::tags::Tag::Unknown(BYTE_COUNTS_TAG));
    match (metadata, counts) {
        (Ok(metadata), Ok(counts)) => parse(
            &metadata,
            &counts,
            decoder.byte_order() == tiff::tags::ByteOrder::LittleEndian,
        ),
        _ => Default::default(),
    }
}

/// The one display range of an ImageJ file without per-channel ranges: `min=` and
/// `max=` in its description, which ImageJ applies to every channel.
pub(super) fn imagej_description_range(description: &str) -> Option<(f64, f64)> {
    let field = |key: &str| {
        description
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let (min, max) = (field("min")?, field("max")?);
    (min < max).then_some((min, max))
}

/// ImageJ's calibration, as Bio-Formats reads it: `unit=` (ImageJ writes µ as
/// `\u00B5`), the pixel size from XResolution (pixels per unit; ImageJ's pixels are
/// square, so it serves for Y too) and `spacing=` for Z. None without a known unit.
pub(super) fn imagej_calibration(description: &str, pixel_width: Option<f64>) -> [Option<f64>; 3] {
    if !description.starts_with("ImageJ=") {
        return [None; 3];
    }
    let field = |key: &str| {
        description.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let Some(unit) = field("unit").map(|u| u.replace("\\u00B5", "µ")) else {
        return [None; 3];
    };
    let xy = pixel_width.and_then(|w| length_in_um(w, &unit));
    let z = field("spacing")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|s| length_in_um(s, &unit));
    [xy, xy, z]
}
