//! The gateway's image pipeline on small images written here: pixel values in, expected
//! bytes out.

use std::path::{Path, PathBuf};

use omero_webctl::fuzz_checks::WholePlanes;
use omero_webctl::gateway::demo::{DemoOptions, write_demo_images};
use omero_webctl::gateway::imaging::encode::encode_jpeg;
use omero_webctl::gateway::imaging::render::{
    BadRequest, ChannelSettings, Model, OutputSize, Projection, Region, RenderError, RenderLimits,
    RenderRequest, RenderSettings, Rendered, render_rgb,
};
use omero_webctl::gateway::imaging::source::{
    ChannelMeta, ImageMeta, ImageSource, Limits, PixelType, SourceError, open,
    open_with_known_meta, parse_ome_xml,
};
use omero_webctl::gateway::query::render_query::parse_query;
use tiff::encoder::{TiffEncoder, colortype};
use tiff::tags::Tag;

mod queries;
mod regions;
mod rendering;
mod sources;

// ---------------------------------------------------------------------------------------
// Writers for test images

/// A 16-bit greyscale TIFF, one page per plane, with an optional ImageDescription.
fn write_tiff16(path: &Path, w: u32, h: u32, pages: &[Vec<u16>], description: Option<&str>) {
    // Real OME-TIFFs carry UTF-8 ("µm") in the ASCII tag; the tiff encoder refuses it, so
    // "µ" is written as two placeholder bytes and patched in afterwards.
    let description = description.map(|d| d.replace('µ', "~~"));
    {
        let file = std::fs::File::create(path).unwrap();
        let mut enc = TiffEncoder::new(std::io::BufWriter::new(file)).unwrap();
        for (i, page) in pages.iter().enumerate() {
            let mut image = enc.new_image::<colortype::Gray16>(w, h).unwrap();
            if let (0, Some(d)) = (i, &description) {
                image
                    .encoder()
                    .write_tag(Tag::ImageDescription, d.as_str())
                    .unwrap();
            }
            image.write_data(page).unwrap();
        }
    }
    let mut bytes = std::fs::read(path).unwrap();
    for i in 0..bytes.len().saturating_sub(1) {
        if &bytes[i..i + 2] == b"~~" {
            bytes[i..i + 2].copy_from_slice("µ".as_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// An OME-TIFF description for a 16-bit image with the given channels.
fn ome_description(
    w: u32,
    h: u32,
    z: u32,
    channels: &[(&str, Option<i32>, Option<f64>)],
    order: &str,
) -> String {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\">\
         <Image ID=\"Image:0\" Name=\"test image\"><Pixels ID=\"Pixels:0\" DimensionOrder=\"{order}\" \
         Type=\"uint16\" SizeX=\"{w}\" SizeY=\"{h}\" SizeZ=\"{z}\" SizeC=\"{}\" SizeT=\"1\">",
        channels.len()
    );
    for (i, (name, color, emission)) in channels.iter().enumerate() {
        xml.push_str(&format!("<Channel ID=\"Channel:0:{i}\" Name=\"{name}\""));
        if let Some(c) = color {
            xml.push_str(&format!(" Color=\"{c}\""));
        }
        if let Some(e) = emission {
            xml.push_str(&format!(" EmissionWavelength=\"{e}\""));
        }
        xml.push_str(" SamplesPerPixel=\"1\"/>");
    }
    xml.push_str("<TiffData/></Pixels></Image></OME>");
    xml
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A one-row 16-bit image with the given values.
fn row_image(dir: &Path, values: &[u16]) -> Box<dyn ImageSource> {
    let path = dir.join("row.tif");
    write_tiff16(&path, values.len() as u32, 1, &[values.to_vec()], None);
    open(&path, &Limits::default()).unwrap()
}

/// A w×h OME-TIFF with one page per channel (Z = 1), each page given.
fn channels_image(dir: &Path, w: u32, h: u32, pages: &[Vec<u16>]) -> Box<dyn ImageSource> {
    let path = dir.join("channels.ome.tif");
    let names: Vec<(&str, Option<i32>, Option<f64>)> =
        pages.iter().map(|_| ("ch", None, None)).collect();
    let xml = ome_description(w, h, 1, &names, "XYZCT");
    write_tiff16(&path, w, h, pages, Some(&xml));
    open(&path, &Limits::default()).unwrap()
}

fn render(source: &dyn ImageSource, query: &str) -> Rendered {
    let req = parse_query(query, source.meta()).unwrap();
    render_rgb(source, &req, OutputSize::Native, &RenderLimits::default()).unwrap()
}

// ---------------------------------------------------------------------------------------
// Default settings (performance.md §1.4)

fn meta_with(channels: Vec<ChannelMeta>, size_z: u32) -> ImageMeta {
    ImageMeta {
        name: "m".into(),
        size_x: 10,
        size_y: 10,
        size_z,
        size_c: channels.len() as u32,
        size_t: 1,
        pixel_type: PixelType::U16,
        channels,
        physical_size_um: [None; 3],
        rgb: false,
    }
}

fn ch(color: Option<[u8; 3]>, emission: Option<f64>, min: u16, max: u16) -> ChannelMeta {
    ChannelMeta {
        name: None,
        color,
        emission_nm: emission,
        min,
        max,
        lut: None,
        display_range: None,
    }
}

/// Deterministic pixel noise for the sampled-read and strip-run tests.
fn pseudo_random(n: usize, seed: u32) -> impl Iterator<Item = u32> {
    (0..n as u32).map(move |i| {
        let x = i.wrapping_mul(2_654_435_761).wrapping_add(seed);
        (x ^ (x >> 13)).wrapping_mul(1_274_126_177) >> 7
    })
}

/// Makes `path` (a TIFF) longer than the gateway maps (`MAX_MAPPED_FILE`), sparsely: its
/// rows are then read with `pread`, whose calls and bytes a test can count, where a
/// mapped file is read with neither.
pub fn beyond_mapping(path: &Path) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(omero_webctl::gateway::imaging::source::MAX_MAPPED_FILE + 1)
        .unwrap();
}
