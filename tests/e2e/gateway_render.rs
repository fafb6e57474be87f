//! The gateway's image pipeline on small images written here: pixel values in, expected
//! bytes out.

use std::path::{Path, PathBuf};

use omero_webctl::fuzz_checks::WholePlanes;
use omero_webctl::gateway::demo::{DemoOptions, write_demo_images};
use omero_webctl::gateway::http::render_query::parse_query;
use omero_webctl::gateway::imaging::encode::encode_jpeg;
use omero_webctl::gateway::imaging::render::{
    BadRequest, ChannelSettings, Model, OutputSize, Projection, Region, RenderError, RenderLimits,
    RenderRequest, RenderSettings, Rendered, render_rgb,
};
use omero_webctl::gateway::imaging::source::{
    ChannelMeta, ImageMeta, ImageSource, Limits, PixelType, SourceError, open,
    open_with_known_meta, parse_ome_xml,
};
use tiff::encoder::{TiffEncoder, colortype};
use tiff::tags::Tag;

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

fn write_tiff8(path: &Path, w: u32, h: u32, pages: &[Vec<u8>]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = TiffEncoder::new(std::io::BufWriter::new(file)).unwrap();
    for page in pages {
        enc.write_image::<colortype::Gray8>(w, h, page).unwrap();
    }
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

fn rgb_at(img: &Rendered, i: usize) -> [u8; 3] {
    assert_eq!(img.channels, 3);
    [
        img.pixels[3 * i],
        img.pixels[3 * i + 1],
        img.pixels[3 * i + 2],
    ]
}

// ---------------------------------------------------------------------------------------
// Windowing, colours, models, maps

#[test]
fn window_maps_values_as_omero_quantizer() {
    let d = dir();
    let src = row_image(d.path(), &[0, 99, 100, 150, 200, 299, 300, 5000]);
    let img = render(src.as_ref(), "c=1|100:300&m=g");
    assert_eq!(img.channels, 1);
    // 255·(x − 100)/200, rounded half up: 150 → 63.75 → 64, 200 → 127.5 → 128.
    assert_eq!(img.pixels, vec![0, 0, 0, 64, 128, 254, 255, 255]);
}

#[test]
fn default_window_is_the_channel_range() {
    let d = dir();
    let src = row_image(d.path(), &[1000, 1100, 3000]);
    let meta = src.meta();
    assert_eq!((meta.channels[0].min, meta.channels[0].max), (1000, 3000));
    let img = render(src.as_ref(), "");
    // A single channel renders in greyscale by default.
    assert_eq!(img.pixels, vec![0, 13, 255]);
}

#[test]
fn red_channel_lights_only_red_and_colours_add_with_clamp() {
    let d = dir();
    let src = channels_image(d.path(), 2, 1, &[vec![100, 50], vec![100, 0], vec![60, 0]]);
    let img = render(src.as_ref(), "c=1|0:100$FF0000,-2,-3&m=c");
    assert_eq!(rgb_at(&img, 0), [255, 0, 0]);
    assert_eq!(rgb_at(&img, 1), [128, 0, 0]);

    // Red + green = yellow; a third channel in red saturates at 255.
    let img = render(
        src.as_ref(),
        "c=1|0:100$FF0000,2|0:100$00FF00,3|0:100$FF0000&m=c",
    );
    assert_eq!(rgb_at(&img, 0), [255, 255, 0]);
    assert_eq!(rgb_at(&img, 1), [128, 0, 0]);

    // A non-primary colour scales the value: 255·128/255 = 128, truncated products.
    let img = render(src.as_ref(), "c=1|0:100$808080,-2,-3&m=c");
    assert_eq!(rgb_at(&img, 0), [128, 128, 128]);
    assert_eq!(rgb_at(&img, 1), [64, 64, 64]); // 128·128/255 = 64.25
}

#[test]
fn greyscale_model_draws_the_first_active_channel() {
    let d = dir();
    let src = channels_image(d.path(), 1, 1, &[vec![10], vec![50], vec![90]]);
    let img = render(src.as_ref(), "c=-1|0:100,2|0:100$FF0000,3|0:100$00FF00&m=g");
    assert_eq!(img.channels, 1);
    assert_eq!(img.pixels, vec![128]); // channel 2: 255·50/100 = 127.5 → 128
}

#[test]
fn inverted_and_reverse_maps_reverse_intensities() {
    let d = dir();
    let src = channels_image(d.path(), 2, 1, &[vec![0, 100], vec![25, 100]]);
    let q = "c=1|0:100$FF0000,2|0:100$00FF00&m=c&maps=";
    let img = render(
        src.as_ref(),
        &format!("{q}[{{\"inverted\":{{\"enabled\":true}}}},{{}}]"),
    );
    assert_eq!(rgb_at(&img, 0), [255, 64, 0]);
    assert_eq!(rgb_at(&img, 1), [0, 255, 0]);
    // URL-encoded, deprecated "reverse", string "true", and a map for channel 2 only.
    let img = render(
        src.as_ref(),
        &format!("{q}%5B%7B%7D%2C%7B%22reverse%22%3A%7B%22enabled%22%3A%22true%22%7D%7D%5D"),
    );
    assert_eq!(rgb_at(&img, 0), [0, 191, 0]);
    assert_eq!(rgb_at(&img, 1), [255, 0, 0]);
}

#[test]
fn alpha_dims_and_luts_replace_the_colour() {
    let d = dir();
    let src = channels_image(d.path(), 3, 1, &[vec![0, 50, 100], vec![0, 0, 0]]);
    // RRGGBBAA: the channel's value × alpha / 255, truncated (100 → 255 → 128).
    let img = render(src.as_ref(), "c=1|0:100$FF000080&m=c");
    assert_eq!(rgb_at(&img, 2), [128, 0, 0]);
    assert_eq!(rgb_at(&img, 1), [64, 0, 0]);
    // A LUT the gateway has: cool runs from cyan (0) to magenta (255).
    let img = render(src.as_ref(), "c=1|0:100$cool.lut&m=c");
    assert_eq!(rgb_at(&img, 0), [0, 255, 255]);
    assert_eq!(rgb_at(&img, 2), [255, 0, 255]);
    // One it does not have: OMERO's fallback, the channel's colour (red by default).
    let img = render(src.as_ref(), "c=1|0:100$nothing.lut&m=c");
    assert_eq!(rgb_at(&img, 2), [255, 0, 0]);
}

#[test]
fn reversed_projection_ranges_are_not_renderable() {
    let d = dir();
    let src = stack(d.path());
    let req = parse_query("p=intmax|2:1", src.meta()).unwrap();
    let err = render_rgb(
        src.as_ref(),
        &req,
        OutputSize::Native,
        &RenderLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::Unrenderable(_)), "{err:?}");
}

#[test]
fn no_active_channel_renders_black() {
    let d = dir();
    let src = channels_image(d.path(), 2, 2, &[vec![5; 4], vec![9; 4]]);
    let img = render(src.as_ref(), "c=-1,-2&m=c");
    assert_eq!((img.width, img.height, img.channels), (2, 2, 3));
    assert!(img.pixels.iter().all(|&p| p == 0));
}

// ---------------------------------------------------------------------------------------
// Projection, regions, sizes

fn stack(dir: &Path) -> Box<dyn ImageSource> {
    // Three Z sections of a 2×1 plane: pixel 0 = 10, 40, 31; pixel 1 = 200, 100, 0.
    let path = dir.join("stack.tif");
    write_tiff16(
        &path,
        2,
        1,
        &[vec![10, 200], vec![40, 100], vec![31, 0]],
        None,
    );
    open(&path, &Limits::default()).unwrap()
}

#[test]
fn projections_over_a_known_stack() {
    let d = dir();
    let src = stack(d.path());
    assert_eq!(src.meta().size_z, 3, "a plain multi-page TIFF is a Z stack");
    let px = |q: &str| render(src.as_ref(), &format!("c=1|0:255&m=g&{q}")).pixels;
    assert_eq!(px("p=intmax"), vec![40, 200]);
    assert_eq!(px("p=intmean"), vec![27, 100]); // 81/3 = 27; means truncate
    assert_eq!(px("p=intsum"), vec![81, 255]); // 300 is above the window
    assert_eq!(px("p=intmax|0:1"), vec![40, 200]);
    assert_eq!(px("p=intsum|1:2"), vec![71, 100]);
    assert_eq!(px("p=normal&z=2"), vec![31, 0]);
    // Default Z is the middle section.
    assert_eq!(px("p=normal"), vec![40, 100]);
}

#[test]
fn intsum_clamps_at_the_pixel_type_maximum() {
    let d = dir();
    let path = d.path().join("stack8.tif");
    write_tiff8(&path, 1, 1, &[vec![200], vec![100]]);
    let src = open(&path, &Limits::default()).unwrap();
    assert_eq!(src.meta().pixel_type, PixelType::U8);
    // Summing u8 planes stays in u8: 300 → 255, which is the top of the window 0:255.
    let img = render(src.as_ref(), "c=1|0:510&m=g&p=intsum");
    assert_eq!(img.pixels, vec![128]); // 255 in 0:510 → 127.5 → 128
}

fn gradient(dir: &Path, w: u32, h: u32) -> Box<dyn ImageSource> {
    let path = dir.join("gradient.tif");
    let data: Vec<u16> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x + 10 * y) as u16))
        .collect();
    write_tiff16(&path, w, h, &[data], None);
    open(&path, &Limits::default()).unwrap()
}

#[test]
fn region_crops_the_plane() {
    let d = dir();
    let src = gradient(d.path(), 8, 5);
    let img = render(src.as_ref(), "c=1|0:255&m=g&region=2,1,3,2");
    assert_eq!((img.width, img.height), (3, 2));
    assert_eq!(img.pixels, vec![12, 13, 14, 22, 23, 24]);
    // A region past the edge is clipped to the image.
    let img = render(src.as_ref(), "c=1|0:255&m=g&region=6,3,10,10");
    assert_eq!((img.width, img.height), (2, 2));
    assert_eq!(img.pixels, vec![36, 37, 46, 47]);
    // Tiles count in tiles of the given size.
    let img = render(src.as_ref(), "c=1|0:255&m=g&tile=0,1,1,4,2");
    assert_eq!((img.width, img.height), (4, 2));
    assert_eq!(img.pixels, vec![24, 25, 26, 27, 34, 35, 36, 37]);
}

#[test]
fn small_regions_read_only_their_strips() {
    let d = dir();
    // 64×40, strips of 3 rows: a small region is assembled from the strips it touches.
    let (w, h) = (64u32, 40u32);
    let path = d.path().join("strips.tif");
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut enc = TiffEncoder::new(file).unwrap();
        let data: Vec<u16> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x + 100 * y) as u16))
            .collect();
        let mut image = enc.new_image::<colortype::Gray16>(w, h).unwrap();
        image.rows_per_strip(3).unwrap();
        image.write_data(&data).unwrap();
    }
    let src = open(&path, &Limits::default()).unwrap();
    let region = Region {
        x: 10,
        y: 7,
        width: 9,
        height: 11,
    };
    let plane = &src.read_planes(0, &[0], 0, Some(region)).unwrap()[0];
    assert_eq!((plane.width, plane.height), (9, 11));
    for (i, &v) in plane.data.iter().enumerate() {
        let (x, y) = (10 + i as u32 % 9, 7 + i as u32 / 9);
        assert_eq!(v as u32, x + 100 * y, "at {x},{y}");
    }
    // The same through the whole-plane path agrees.
    let full = src.plane(0, 0, 0).unwrap();
    assert_eq!(full.crop(region), *plane);

    // Interleaved RGB in strips of 2 rows.
    let path = d.path().join("rgb-strips.tif");
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut enc = TiffEncoder::new(file).unwrap();
        let data: Vec<u8> = (0..20u32 * 20)
            .flat_map(|i| [(i % 20) as u8, (i / 20) as u8, 7])
            .collect();
        let mut image = enc.new_image::<colortype::RGB8>(20, 20).unwrap();
        image.rows_per_strip(2).unwrap();
        image.write_data(&data).unwrap();
    }
    let src = open(&path, &Limits::default()).unwrap();
    let region = Region {
        x: 3,
        y: 5,
        width: 4,
        height: 3,
    };
    let planes = src.read_planes(0, &[1, 0, 2], 0, Some(region)).unwrap();
    assert_eq!(planes[0].data, vec![5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7]);
    assert_eq!(planes[1].data, vec![3, 4, 5, 6, 3, 4, 5, 6, 3, 4, 5, 6]);
    assert_eq!(planes[2].data, vec![7; 12]);

    let outside = Region {
        x: 18,
        y: 0,
        width: 4,
        height: 1,
    };
    let err = src.read_planes(0, &[0], 0, Some(outside)).unwrap_err();
    assert!(matches!(err, SourceError::RegionOutside { .. }), "{err}");
}

#[test]
fn thumbnails_keep_the_aspect_ratio() {
    let d = dir();
    let cases = [
        (
            (300, 150),
            OutputSize::Fit {
                max_w: 96,
                max_h: 96,
            },
            (96, 48),
        ),
        (
            (150, 300),
            OutputSize::Fit {
                max_w: 96,
                max_h: 96,
            },
            (48, 96),
        ),
        (
            (40, 20),
            OutputSize::Fit {
                max_w: 96,
                max_h: 96,
            },
            (96, 48),
        ), // scaled up
        (
            (300, 150),
            OutputSize::Fit {
                max_w: 64,
                max_h: 200,
            },
            (64, 32),
        ),
        (
            (300, 150),
            OutputSize::Exact {
                width: 50,
                height: 70,
            },
            (50, 70),
        ),
        ((300, 150), OutputSize::Native, (300, 150)),
    ];
    for ((w, h), out, expected) in cases {
        let src = gradient(d.path(), w, h);
        let req = RenderRequest::defaults(src.meta());
        let img = render_rgb(src.as_ref(), &req, out, &RenderLimits::default()).unwrap();
        assert_eq!((img.width, img.height), expected, "{w}x{h} {out:?}");
        assert_eq!(img.pixels.len(), (expected.0 * expected.1) as usize);
    }
}

#[test]
fn downscaling_averages_in_16_bit_before_the_window() {
    let d = dir();
    // 64×64, vertical stripes two pixels wide. Left half: 1000/3000, right half:
    // 2000/6000. Shrunk to 8×8 and windowed 1000:3000:
    // - the left half averages to 2000 → 128 (no aliasing to 0 or 255);
    // - the right half averages to 4000 → 255 in 16 bits first; windowing first would
    //   have averaged 128 and 255 to about 191.
    let path = d.path().join("stripes.tif");
    let data: Vec<u16> = (0..64 * 64)
        .map(|i| {
            let (x, high) = (i % 64, (i % 64) / 2 % 2 == 1);
            match (x < 32, high) {
                (true, false) => 1000,
                (true, true) => 3000,
                (false, false) => 2000,
                (false, true) => 6000,
            }
        })
        .collect();
    write_tiff16(&path, 64, 64, &[data], None);
    let src = open(&path, &Limits::default()).unwrap();
    let req = parse_query("c=1|1000:3000&m=g", src.meta()).unwrap();
    let out = OutputSize::Fit { max_w: 8, max_h: 8 };
    let img = render_rgb(src.as_ref(), &req, out, &RenderLimits::default()).unwrap();
    assert_eq!((img.width, img.height), (8, 8));
    for row in img.pixels.chunks(8) {
        for &p in &row[..3] {
            assert!((120..=136).contains(&p), "left {row:?}");
        }
        for &p in &row[5..] {
            assert_eq!(p, 255, "right {row:?}");
        }
    }
}

#[test]
fn render_limits_refuse_big_outputs_and_many_channels() {
    let d = dir();
    let src = channels_image(d.path(), 4, 4, &[vec![1; 16], vec![2; 16], vec![3; 16]]);
    let req = parse_query("c=1,2,3&m=c", src.meta()).unwrap();
    let small = RenderLimits {
        max_output_pixels: 15,
        max_channels: 8,
    };
    let err = render_rgb(src.as_ref(), &req, OutputSize::Native, &small).unwrap_err();
    assert!(matches!(err, RenderError::TooLarge(_)), "{err}");
    assert!(
        err.to_string().contains("larger than the limit of 15"),
        "{err}"
    );
    let two = RenderLimits {
        max_output_pixels: 100,
        max_channels: 2,
    };
    let err = render_rgb(src.as_ref(), &req, OutputSize::Native, &two).unwrap_err();
    assert!(err.to_string().contains("3 active channels"), "{err}");
    // Greyscale draws one channel, so the same settings pass.
    let grey = parse_query("c=1,2,3&m=g", src.meta()).unwrap();
    render_rgb(src.as_ref(), &grey, OutputSize::Native, &two).unwrap();
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

#[test]
fn default_settings_follow_omero() {
    const R: [u8; 3] = [255, 0, 0];
    const G: [u8; 3] = [0, 255, 0];
    const B: [u8; 3] = [0, 0, 255];
    const W: [u8; 3] = [255, 255, 255];
    // omero-blitz's importer: a lone channel grey, the others red, green, blue by
    // index % 3 (ChannelProcessor.setSingleChannel, setDefaultChannelColor).
    const GREY: [u8; 3] = [128, 128, 128];
    let plain = |n: usize| (0..n).map(|_| ch(None, None, 10, 20)).collect::<Vec<_>>();
    // (channels, expected model, expected colours, expected active flags)
    type Case = (Vec<ChannelMeta>, Model, Vec<[u8; 3]>, Vec<bool>);
    let cases: Vec<Case> = vec![
        (plain(1), Model::Greyscale, vec![GREY], vec![true]),
        (plain(2), Model::Color, vec![R, G], vec![true, true]),
        (
            plain(4),
            Model::Color,
            vec![R, G, B, R],
            vec![true, true, true, false],
        ),
        (
            plain(7),
            Model::Color,
            vec![R, G, B, R, G, B, R],
            vec![true, true, true, false, false, false, false],
        ),
        (
            plain(8),
            Model::Greyscale,
            vec![R, G, B, R, G, B, R, G],
            vec![true, true, true, false, false, false, false, false],
        ),
        // Emission: < 500 blue, 500–560 green, ≥ 560 red; none → white when others have it.
        (
            vec![
                ch(None, Some(461.0), 0, 1),
                ch(None, Some(499.9), 0, 1),
                ch(None, Some(500.0), 0, 1),
                ch(None, Some(559.0), 0, 1),
                ch(None, Some(560.0), 0, 1),
                ch(None, None, 0, 1),
            ],
            Model::Color,
            vec![B, B, G, G, R, W],
            vec![true, true, true, false, false, false],
        ),
        // A stored colour wins over the emission.
        (
            vec![
                ch(Some([1, 2, 3]), Some(461.0), 0, 1),
                ch(None, Some(610.0), 0, 1),
            ],
            Model::Color,
            vec![[1, 2, 3], R],
            vec![true, true],
        ),
    ];
    for (channels, model, colors, active) in cases {
        let n = channels.len();
        let s = RenderSettings::defaults(&meta_with(channels, 5));
        assert_eq!(s.model, model, "{n} channels");
        let got: Vec<[u8; 3]> = s.channels.iter().map(|c| c.color).collect();
        assert_eq!(got, colors, "{n} channels");
        let got: Vec<bool> = s.channels.iter().map(|c| c.active).collect();
        assert_eq!(got, active, "{n} channels");
        assert_eq!((s.z, s.t, s.quality), (2, 0, 0.85));
        assert_eq!(s.projection, Projection::Normal);
    }
}

#[test]
fn default_window_is_min_max_or_the_type_range_when_empty() {
    let meta = meta_with(vec![ch(None, None, 100, 900), ch(None, None, 7, 7)], 1);
    let s = RenderSettings::defaults(&meta);
    assert_eq!((s.channels[0].start, s.channels[0].end), (100.0, 900.0));
    assert_eq!((s.channels[1].start, s.channels[1].end), (0.0, 65535.0));
    let mut meta8 = meta;
    meta8.pixel_type = PixelType::U8;
    let s = RenderSettings::defaults(&meta8);
    assert_eq!((s.channels[1].start, s.channels[1].end), (0.0, 255.0));
}

// ---------------------------------------------------------------------------------------
// Query parsing

fn three_channels() -> ImageMeta {
    let mut m = meta_with(
        vec![
            ch(None, None, 0, 100),
            ch(None, None, 0, 200),
            ch(None, None, 0, 300),
        ],
        5,
    );
    m.size_x = 1000;
    m.size_y = 800;
    m.size_t = 2;
    m
}

fn chan(active: bool, start: f64, end: f64, color: [u8; 3], inverted: bool) -> ChannelSettings {
    ChannelSettings {
        active,
        start,
        end,
        color,
        alpha: 255,
        lut: None,
        file_lut: None,
        inverted,
    }
}

#[test]
fn parse_valid_queries() {
    let meta = three_channels();
    let r = parse_query("c=1|100:505$0000FF,-2,3|620:3879$FF0000", &meta).unwrap();
    assert_eq!(
        r.settings.channels,
        vec![
            chan(true, 100.0, 505.0, [0, 0, 255], false),
            chan(false, 0.0, 200.0, [0, 255, 0], false),
            chan(true, 620.0, 3879.0, [255, 0, 0], false),
        ]
    );
    // Partial lists switch the others off; %-encoding and a colour right after the index.
    let r = parse_query("c=2%7C1.5%3A2.5%24abc", &meta).unwrap();
    let active: Vec<bool> = r.settings.channels.iter().map(|c| c.active).collect();
    assert_eq!(active, vec![false, true, false]);
    assert_eq!(
        r.settings.channels[1],
        chan(true, 1.5, 2.5, [0xaa, 0xbb, 0xcc], false)
    );
    let r = parse_query("c=3$00ff00", &meta).unwrap();
    assert_eq!(r.settings.channels[2].color, [0, 255, 0]);

    let r = parse_query("m=g&p=intmax|1:3&q=0.5&z=4&t=1&foo=bar", &meta).unwrap();
    assert_eq!(r.settings.model, Model::Greyscale);
    assert_eq!(r.settings.projection, Projection::IntMax);
    assert_eq!(r.settings.projection_range, Some((1, 3)));
    assert_eq!(
        (r.settings.quality, r.settings.z, r.settings.t),
        (0.5, 4, 1)
    );
    assert_eq!(r.region, None);

    for (p, expected) in [
        ("normal", Projection::Normal),
        ("intmean", Projection::IntMean),
        ("intsum", Projection::IntSum),
    ] {
        let r = parse_query(&format!("p={p}"), &meta).unwrap();
        assert_eq!(
            (r.settings.projection, r.settings.projection_range),
            (expected, None)
        );
    }
    for q in ["0", "1", "0.85", "1.0"] {
        parse_query(&format!("q={q}"), &meta).unwrap();
    }

    let region = |q: &str| parse_query(q, &meta).unwrap().region;
    let rect = |x, y, width, height| {
        Some(Region {
            x,
            y,
            width,
            height,
        })
    };
    assert_eq!(region("region=10,20,30,40"), rect(10, 20, 30, 40));
    assert_eq!(region("region=990,790,30,40"), rect(990, 790, 10, 10));
    assert_eq!(region("tile=0,1,1"), rect(512, 512, 488, 288));
    assert_eq!(region("tile=0,0,0,256,128"), rect(0, 0, 256, 128));
    assert_eq!(region("tile=0,0,0,4096,0"), rect(0, 0, 1000, 512)); // capped, defaulted
    assert_eq!(region("tile=0,0,0&region=1,1,1,1"), rect(0, 0, 512, 512)); // tile wins
    assert_eq!(region("region="), None);

    // maps pair as omero-py's set_active_channels pairs them: the k-th map goes to the
    // k-th channel that c mentions, in channel order, so with c=3,1 the first map is
    // channel 1's.
    let r = parse_query(
        "c=3,1&maps=[{\"inverted\":{\"enabled\":true}},{\"quantization\":{\"family\":\"linear\"}}]",
        &meta,
    )
    .unwrap();
    let inv: Vec<bool> = r.settings.channels.iter().map(|c| c.inverted).collect();
    assert_eq!(inv, vec![true, false, false]);

    // Path z/t overrides.
    let mut r = parse_query("z=1", &meta).unwrap();
    r.set_plane(Some(3), None, &meta).unwrap();
    assert_eq!((r.settings.z, r.settings.t), (3, 0));
    assert!(r.set_plane(None, Some(2), &meta).is_err());
}

#[test]
fn parse_invalid_queries_with_messages() {
    let meta = three_channels();
    let cases: &[(&str, &str)] = &[
        (
            "q=1.5",
            "invalid q \"1.5\": JPEG quality must be a number from 0 to 1",
        ),
        ("q=-0.1", "JPEG quality must be a number from 0 to 1"),
        ("q=high", "JPEG quality must be a number from 0 to 1"),
        ("q=NaN", "JPEG quality must be a number from 0 to 1"),
        ("z=5", "z=5 is out of range: the image has 5 (0 to 4)"),
        ("t=x", "invalid t \"x\": expected a plane index"),
        ("region=1,2,3", "malformed region argument, region=1,2,3"),
        (
            "region=a,b,c,d",
            "malformed region argument, region=a,b,c,d",
        ),
        ("region=-1,0,5,5", "malformed region argument"),
        ("region=0,0,0,5", "malformed region argument"),
        (
            "region=1000,0,5,5",
            "region starts at 1000,0, outside the 1000x800 image",
        ),
        (
            "region=%3Cscript%3E",
            "malformed region argument, region=?script?",
        ),
        ("tile=0,1", "malformed tile argument, tile=0,1"),
        ("tile=0,x,1", "malformed tile argument, tile=0,x,1"),
        ("tile=1,0,0", "Invalid resolution level 1, non pyramid file"),
        ("tile=-1,0,0", "Invalid resolution level -1 < 0"),
        (
            "tile=0,2,0",
            "tile 2,0 of 512x512 is outside the 1000x800 image",
        ),
        ("c=%FF", "query string is not valid UTF-8"),
    ];
    for (query, message) in cases {
        match parse_query(query, &meta) {
            Ok(r) => panic!("{query} was accepted: {r:?}"),
            Err(BadRequest(m)) => assert!(m.contains(message), "{query}: got {m:?}"),
        }
    }
    let huge = format!("c=1,2,3,1,-2,{}", "1,".repeat(20_000));
    let err = parse_query(&huge, &meta).unwrap_err();
    assert!(err.0.contains("query string too long"), "{err}");
}

/// What OMERO's `_get_prepared_image` and omero-py accept and how they read it: nothing
/// here is a 400 there, so nothing is one here.
#[test]
fn lenient_queries_read_as_omero_reads_them() {
    let meta = three_channels();
    let parse = |q: &str| {
        parse_query(q, &meta)
            .unwrap_or_else(|e| panic!("{q} refused: {e}"))
            .settings
    };
    let active = |q: &str| -> Vec<bool> { parse(q).channels.iter().map(|c| c.active).collect() };
    // More entries than channels, unknown and zero indexes: ignored.
    assert_eq!(active("c=1,2,3,1"), vec![true, true, true]);
    assert_eq!(active("c=4,2,9"), vec![false, true, false]);
    assert_eq!(active("c=0"), vec![false, false, false]);
    // Entries that are not integers are dropped; an empty c turns everything off.
    assert_eq!(active("c=x,3"), vec![false, false, true]);
    assert_eq!(active("c=1,,2"), vec![true, true, false]);
    assert_eq!(active("c="), vec![false, false, false]);
    // Windows that do not parse leave the default window.
    for q in ["c=1|100", "c=1|a:b", "c=1|0:nan"] {
        let s = parse(q);
        assert_eq!(
            (s.channels[0].start, s.channels[0].end),
            (0.0, 100.0),
            "{q}"
        );
    }
    // Colours: RGB, RGBA, RRGGBB, RRGGBBAA; anything else keeps the colour.
    let colour = |q: &str| {
        let c = &parse(q).channels[0];
        (c.color, c.alpha, c.lut.clone())
    };
    assert_eq!(colour("c=1$f0a"), ([0xff, 0, 0xaa], 255, None));
    assert_eq!(colour("c=1$f0a8"), ([0xff, 0, 0xaa], 0x88, None));
    assert_eq!(colour("c=1|0:1$00FF0080"), ([0, 255, 0], 0x80, None));
    assert_eq!(colour("c=1|0:1$GG0000"), ([255, 0, 0], 255, None));
    assert_eq!(colour("c=1|0:1$#00FF00"), ([255, 0, 0], 255, None));
    assert_eq!(
        colour("c=1|0:1$cool.lut"),
        ([255, 0, 0], 255, Some("cool.lut".to_string()))
    );
    // A second entry for the same channel is never read: only the first counts.
    assert_eq!(
        colour("c=1$cool.lut,1$00FF00").2,
        Some("cool.lut".to_string())
    );
    // Inactive entries change nothing but still count for the pairing.
    let s = parse("c=-1|5:6$00FF00,2|7:8");
    assert_eq!(s.channels[0], chan(false, 0.0, 100.0, [255, 0, 0], false));
    assert_eq!(s.channels[1], chan(true, 7.0, 8.0, [0, 255, 0], false));
    // Unknown m keeps the default model; unknown p renders as normal.
    assert_eq!(parse("m=x").model, Model::Color);
    assert_eq!(parse("p=max").projection, Projection::Normal);
    // Projection ranges: unparsable → every Z; clipped to the Z planes (to the T
    // count under ia=1); reversed ones are kept, for the renderer to refuse.
    let range = |q: &str| parse(q).projection_range;
    assert_eq!(range("p=intmax|5-9"), None);
    assert_eq!(range("p=intmax|3"), None);
    assert_eq!(range("p=intmax|-2:9"), Some((0, 4)));
    assert_eq!(range("p=intmax|3:1"), Some((3, 1)));
    assert_eq!(range("p=intmax|0:9&ia=1"), Some((0, 1)));
    assert!(parse("ia=1").inverted_axis);
    assert!(!parse("ia=0").inverted_axis);
    // maps: ignored without c and when it does not parse; more maps than channels and
    // entries without a map are fine.
    let inverted =
        |q: &str| -> Vec<bool> { parse(q).channels.iter().map(|c| c.inverted).collect() };
    let on = "{\"inverted\":{\"enabled\":true}}";
    assert_eq!(inverted(&format!("maps=[{on}]")), vec![false, false, false]);
    for bad in ["[{", "{}", "[1]", "[null]"] {
        assert_eq!(
            inverted(&format!("c=1&maps={bad}")),
            vec![false, false, false]
        );
    }
    assert_eq!(
        inverted(&format!(
            "c=1,2&maps=[{on},{{\"reverse\":{{\"enabled\":\"true\"}}}},{on},{on}]"
        )),
        vec![true, true, false]
    );
}

// ---------------------------------------------------------------------------------------
// Sources

/// Shaped as Bio-Formats writes it: schema 2016-06, TiffData per plane with a UUID naming
/// the file, signed colours, units.
const BIOFORMATS_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Creator="OME Bio-Formats 6.14.0" UUID="urn:uuid:7e1c3a0e-0000-4000-8000-000000000001" xsi:schemaLocation="http://www.openmicroscopy.org/Schemas/OME/2016-06 http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd">
  <Instrument ID="Instrument:0"><Objective ID="Objective:0" NominalMagnification="63.0"/></Instrument>
  <Image ID="Image:0" Name="HeLa_fixed.czi #1">
    <AcquisitionDate>2023-05-04T10:11:12</AcquisitionDate>
    <Pixels BigEndian="false" DimensionOrder="XYCZT" ID="Pixels:0" Interleaved="false" PhysicalSizeX="0.1" PhysicalSizeXUnit="µm" PhysicalSizeY="0.1" PhysicalSizeYUnit="µm" SignificantBits="16" SizeC="2" SizeT="1" SizeX="4" SizeY="3" SizeZ="2" Type="uint16">
      <Channel Color="-16776961" EmissionWavelength="520.0" EmissionWavelengthUnit="nm" ID="Channel:0:0" Name="AF488" SamplesPerPixel="1"><LightPath/></Channel>
      <Channel Color="16711935" ID="Channel:0:1" Name="Hoechst" SamplesPerPixel="1"><LightPath/></Channel>
      <TiffData FirstC="0" FirstT="0" FirstZ="0" IFD="0" PlaneCount="1"><UUID FileName="HeLa.ome.tif">urn:uuid:7e1c3a0e-0000-4000-8000-000000000001</UUID></TiffData>
      <TiffData FirstC="1" FirstT="0" FirstZ="0" IFD="1" PlaneCount="1"><UUID FileName="HeLa.ome.tif">urn:uuid:7e1c3a0e-0000-4000-8000-000000000001</UUID></TiffData>
      <TiffData FirstC="0" FirstT="0" FirstZ="1" IFD="3" PlaneCount="1"><UUID FileName="HeLa.ome.tif">urn:uuid:7e1c3a0e-0000-4000-8000-000000000001</UUID></TiffData>
      <TiffData FirstC="1" FirstT="0" FirstZ="1" IFD="2" PlaneCount="1"><UUID FileName="HeLa.ome.tif">urn:uuid:7e1c3a0e-0000-4000-8000-000000000001</UUID></TiffData>
      <Plane TheC="0" TheT="0" TheZ="0"/>
    </Pixels>
  </Image>
  <StructuredAnnotations/>
</OME>"#;

#[test]
fn parses_bioformats_ome_xml() {
    let ome = parse_ome_xml(BIOFORMATS_XML).unwrap();
    // PhysicalSizeX/Y in µm, no Z given.
    assert_eq!(ome.physical_size_um, [Some(0.1), Some(0.1), None]);
    let in_nm = BIOFORMATS_XML.replace(
        "PhysicalSizeX=\"0.1\" PhysicalSizeXUnit=\"µm\"",
        "PhysicalSizeX=\"250\" PhysicalSizeXUnit=\"nm\"",
    );
    let ome_nm = parse_ome_xml(&in_nm).unwrap();
    assert!((ome_nm.physical_size_um[0].unwrap() - 0.25).abs() < 1e-12);
    assert_eq!(ome.name.as_deref(), Some("HeLa_fixed.czi #1"));
    assert_eq!(
        (ome.size_x, ome.size_y, ome.size_z, ome.size_c, ome.size_t),
        (4, 3, 2, 2, 1)
    );
    assert_eq!(ome.dimension_order, "XYCZT");
    assert_eq!(ome.pixel_type, "uint16");
    assert_eq!(ome.channels[0].name.as_deref(), Some("AF488"));
    // -16776961 = 0xFF0000FF: red, opaque. 16711935 = 0x00FF00FF: green.
    assert_eq!(ome.channels[0].color, Some([255, 0, 0]));
    assert_eq!(ome.channels[0].emission_nm, Some(520.0));
    assert_eq!(ome.channels[1].color, Some([0, 255, 0]));
    assert_eq!(ome.channels[1].emission_nm, None);
    // XYCZT plane index = c + 2·z.
    assert_eq!(
        ome.plane_ifds,
        Some(vec![Some(0), Some(1), Some(3), Some(2)])
    );
    assert_eq!(ome.files, vec!["HeLa.ome.tif".to_string()]);
    assert_eq!(ome.plane_channels, 2);

    // And the file itself, renamed: pages reordered by TiffData.
    let d = dir();
    let path = d.path().join("renamed.ome.tiff");
    let pages: Vec<Vec<u16>> = (0..4u16).map(|i| vec![i * 100; 12]).collect();
    write_tiff16(&path, 4, 3, &pages, Some(BIOFORMATS_XML));
    let src = open(&path, &Limits::default()).unwrap();
    let meta = src.meta();
    assert_eq!(meta.name, "HeLa_fixed.czi #1");
    assert_eq!((meta.size_z, meta.size_c, meta.size_t), (2, 2, 1));
    assert_eq!(src.plane(0, 1, 0).unwrap().data[0], 100);
    assert_eq!(src.plane(1, 0, 0).unwrap().data[0], 300);
    assert_eq!(src.plane(1, 1, 0).unwrap().data[0], 200);
    assert_eq!((meta.channels[1].min, meta.channels[1].max), (100, 200));
    assert!(matches!(
        src.plane(2, 0, 0),
        Err(SourceError::PlaneOutOfRange { .. })
    ));
}

#[test]
fn refuses_bad_ome_xml() {
    let cases = [
        ("<OME><Image/></OME>", "no Pixels element"),
        ("<not xml", "invalid OME-XML"),
        (
            "<OME><Image><Pixels SizeX=\"1\" SizeY=\"1\" SizeZ=\"0\" SizeC=\"1\" SizeT=\"1\" Type=\"uint8\"/></Image></OME>",
            "SizeZ=\"0\" is not a positive integer",
        ),
        (
            "<OME><Image><Pixels SizeX=\"1\" SizeY=\"1\" SizeZ=\"1\" SizeC=\"1\" SizeT=\"1\" Type=\"uint8\" DimensionOrder=\"XYZZT\"/></Image></OME>",
            "unknown DimensionOrder",
        ),
    ];
    for (xml, message) in cases {
        let err = parse_ome_xml(xml).unwrap_err().to_string();
        assert!(err.contains(message), "{xml}: {err}");
        assert!(!err.contains('\n'));
    }
}

#[test]
fn ome_tiff_channels_orders_and_multi_file() {
    let d = dir();
    // XYZCT with 2 Z and 2 channels: pages are (z0,c0) (z1,c0) (z0,c1) (z1,c1).
    let path = d.path().join("zct.ome.tif");
    let xml = ome_description(
        2,
        2,
        2,
        &[
            ("DAPI", Some(65535), Some(461.0)),
            ("GFP", None, Some(509.0)),
        ],
        "XYZCT",
    );
    let pages: Vec<Vec<u16>> = (1..=4u16).map(|i| vec![i; 4]).collect();
    write_tiff16(&path, 2, 2, &pages, Some(&xml));
    let src = open(&path, &Limits::default()).unwrap();
    let meta = src.meta();
    assert_eq!(meta.name, "test image");
    assert_eq!(meta.channels[0].name.as_deref(), Some("DAPI"));
    assert_eq!(meta.channels[0].color, Some([0, 0, 255]));
    assert_eq!(meta.channels[1].emission_nm, Some(509.0));
    assert_eq!(src.plane(1, 0, 0).unwrap().data, vec![2; 4]);
    assert_eq!(src.plane(0, 1, 0).unwrap().data, vec![3; 4]);
    let both = src.read_planes(1, &[1, 0], 0, None).unwrap();
    assert_eq!((both[0].data[0], both[1].data[0]), (4, 2));

    // Two different files named in TiffData: a multi-file image, refused.
    let multi = BIOFORMATS_XML.replacen("HeLa.ome.tif", "other.ome.tif", 1);
    let path = d.path().join("multi.ome.tif");
    let pages: Vec<Vec<u16>> = (0..4u16).map(|i| vec![i; 12]).collect();
    write_tiff16(&path, 4, 3, &pages, Some(&multi));
    let err = open(&path, &Limits::default()).err().unwrap().to_string();
    assert!(err.contains("multi-file OME-TIFF"), "{err}");

    // Metadata needing more pages than the file has.
    let path = d.path().join("short.ome.tif");
    write_tiff16(&path, 2, 2, &[vec![0; 4]], Some(&xml));
    let err = open(&path, &Limits::default()).err().unwrap().to_string();
    assert!(err.contains("needs 4 pages but the file has 1"), "{err}");
}

#[test]
fn known_metadata_skips_the_statistics_scan() {
    let d = dir();
    let src = row_image(d.path(), &[10, 20, 30]);
    let mut known = src.meta().clone();
    assert_eq!((known.channels[0].min, known.channels[0].max), (10, 30));
    // Stored statistics are used as they are (here deliberately different)…
    known.channels[0].min = 0;
    let path = d.path().join("row.tif");
    let again = open_with_known_meta(&path, &Limits::default(), &known).unwrap();
    assert_eq!(again.meta().channels[0].min, 0);
    // …unless the file no longer matches them: then it is scanned again.
    known.size_x = 4;
    let again = open_with_known_meta(&path, &Limits::default(), &known).unwrap();
    assert_eq!(again.meta().channels[0].min, 10);
}

#[test]
fn rgb_ome_tiff_counts_planes_per_channel_element() {
    // One RGB channel (three samples per pixel) and two Z sections in XYCZT order: the
    // planes are indexed by Channel element, so page z holds Z section z.
    let xml = "<OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\"><Image ID=\"Image:0\" Name=\"rgb\">\
        <Pixels ID=\"Pixels:0\" DimensionOrder=\"XYCZT\" Type=\"uint8\" SizeX=\"2\" SizeY=\"1\" SizeZ=\"2\" SizeC=\"3\" SizeT=\"1\">\
        <Channel ID=\"Channel:0:0\" SamplesPerPixel=\"3\"/>\
        <TiffData FirstZ=\"1\" IFD=\"0\" PlaneCount=\"1\"/><TiffData FirstZ=\"0\" IFD=\"1\" PlaneCount=\"1\"/>\
        </Pixels></Image></OME>";
    let ome = parse_ome_xml(xml).unwrap();
    assert_eq!((ome.size_c, ome.plane_channels), (3, 1));
    assert_eq!(ome.plane_ifds, Some(vec![Some(1), Some(0)]));
    let d = dir();
    let path = d.path().join("rgb.ome.tif");
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut enc = TiffEncoder::new(file).unwrap();
        let mut first = enc.new_image::<colortype::RGB8>(2, 1).unwrap();
        first
            .encoder()
            .write_tag(Tag::ImageDescription, xml)
            .unwrap();
        first.write_data(&[1, 2, 3, 4, 5, 6]).unwrap();
        enc.write_image::<colortype::RGB8>(2, 1, &[11, 12, 13, 14, 15, 16])
            .unwrap();
    }
    let src = open(&path, &Limits::default()).unwrap();
    let m = src.meta();
    assert_eq!((m.size_z, m.size_c, m.pixel_type), (2, 3, PixelType::U8));
    assert_eq!(src.plane(0, 2, 0).unwrap().data, vec![13, 16]);
    assert_eq!(src.plane(1, 0, 0).unwrap().data, vec![1, 4]);
    let planes = src.read_planes(0, &[0, 1], 0, None).unwrap();
    assert_eq!((planes[0].data[1], planes[1].data[0]), (14, 12));
}

#[test]
fn imagej_hyperstacks_use_czt_order() {
    let d = dir();
    let path = d.path().join("ij.tif");
    let desc = "ImageJ=1.54f\nimages=6\nchannels=2\nslices=3\nhyperstack=true\nmode=composite\n";
    let pages: Vec<Vec<u16>> = (0..6u16).map(|i| vec![i]).collect();
    write_tiff16(&path, 1, 1, &pages, Some(desc));
    let src = open(&path, &Limits::default()).unwrap();
    let m = src.meta();
    assert_eq!((m.size_z, m.size_c, m.size_t), (3, 2, 1));
    assert_eq!(src.plane(2, 1, 0).unwrap().data, vec![5]);
    assert_eq!(src.plane(1, 0, 0).unwrap().data, vec![2]);
}

#[test]
fn rgb_tiff_png_and_jpeg_sources() {
    let d = dir();
    // RGB TIFF: three channels.
    let path = d.path().join("rgb.tif");
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut enc = TiffEncoder::new(file).unwrap();
        enc.write_image::<colortype::RGB8>(2, 1, &[10, 20, 30, 40, 50, 60])
            .unwrap();
    }
    let src = open(&path, &Limits::default()).unwrap();
    let m = src.meta();
    assert_eq!((m.size_c, m.pixel_type), (3, PixelType::U8));
    assert_eq!(src.plane(0, 1, 0).unwrap().data, vec![20, 50]);
    assert_eq!((m.channels[2].min, m.channels[2].max), (30, 60));
    // Three channels, no metadata: red, green, blue, so the picture comes back.
    let img = render(src.as_ref(), "c=1|0:255,2|0:255,3|0:255");
    assert_eq!(img.pixels, vec![10, 20, 30, 40, 50, 60]);

    // 16-bit grey PNG (big-endian samples).
    let path = d.path().join("grey16.png");
    write_png(
        &path,
        2,
        1,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        &[0x12, 0x34, 0xff, 0xfe],
    );
    let src = open(&path, &Limits::default()).unwrap();
    assert_eq!(src.meta().pixel_type, PixelType::U16);
    assert_eq!(src.plane(0, 0, 0).unwrap().data, vec![0x1234, 0xfffe]);

    // RGBA PNG: alpha dropped.
    let path = d.path().join("rgba.png");
    write_png(
        &path,
        1,
        1,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        &[1, 2, 3, 4],
    );
    let src = open(&path, &Limits::default()).unwrap();
    assert_eq!(src.meta().size_c, 3);
    let planes = src.read_planes(0, &[2, 0], 0, None).unwrap();
    assert_eq!((planes[0].data[0], planes[1].data[0]), (3, 1));

    // JPEG: written by our encoder, read back (lossy, so approximately).
    let flat = Rendered {
        width: 16,
        height: 8,
        channels: 1,
        pixels: vec![77; 128],
    };
    let path = d.path().join("grey.jpg");
    std::fs::write(&path, encode_jpeg(&flat, 0.9).unwrap()).unwrap();
    let src = open(&path, &Limits::default()).unwrap();
    assert_eq!(
        (src.meta().size_x, src.meta().size_y, src.meta().size_c),
        (16, 8, 1)
    );
    let p = src.plane(0, 0, 0).unwrap();
    assert!(
        p.data.iter().all(|&v| (75..=79).contains(&v)),
        "{:?}",
        p.data
    );

    // Not an image at all.
    let path = d.path().join("notes.tif");
    std::fs::write(&path, "hello").unwrap();
    let err = open(&path, &Limits::default()).err().unwrap().to_string();
    assert!(err.ends_with("not a TIFF, PNG or JPEG file"), "{err}");
}

fn write_png(
    path: &Path,
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    enc.write_header().unwrap().write_image_data(data).unwrap();
}

/// A minimal little-endian TIFF whose single page declares `w`×`h` 16-bit pixels but
/// carries only a few bytes: what a decompression bomb looks like before decoding.
fn bomb_tiff(path: &Path, w: u32, h: u32) {
    let mut b: Vec<u8> = b"II\x2a\x00".to_vec();
    b.extend_from_slice(&8u32.to_le_bytes());
    let entries: [(u16, u16, u32, u32); 7] = [
        (256, 4, 1, w),   // ImageWidth (LONG)
        (257, 4, 1, h),   // ImageLength
        (258, 3, 1, 16),  // BitsPerSample
        (259, 3, 1, 8),   // Compression: Deflate
        (262, 3, 1, 1),   // BlackIsZero
        (273, 4, 1, 200), // StripOffsets
        (279, 4, 1, 16),  // StripByteCounts
    ];
    b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, ty, count, value) in entries {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        if ty == 3 {
            b.extend_from_slice(&(value as u16).to_le_bytes());
            b.extend_from_slice(&[0, 0]);
        } else {
            b.extend_from_slice(&value.to_le_bytes());
        }
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    b.resize(216, 0);
    std::fs::write(path, b).unwrap();
}

#[test]
fn refuses_decompression_bombs() {
    let d = dir();
    let path = d.path().join("bomb.tif");
    bomb_tiff(&path, 100_000, 100_000);
    let err = open(&path, &Limits::default()).err().expect("refused");
    assert!(matches!(err, SourceError::TooLarge { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("declares 10000000000 pixels, more than the limit of 1073741824"),
        "{message}"
    );

    // Limits apply to every format, counting all planes.
    let small = Limits {
        max_pixels: 100,
        ..Limits::default()
    };
    let path = d.path().join("z.tif");
    write_tiff16(&path, 8, 8, &[vec![0; 64], vec![0; 64]], None);
    let fits = Limits {
        max_pixels: 128,
        ..Limits::default()
    };
    assert!(open(&path, &fits).is_ok());
    assert!(matches!(
        open(&path, &small),
        Err(SourceError::TooLarge { .. })
    ));
    let path = d.path().join("big.png");
    write_png(
        &path,
        11,
        10,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &[0; 110],
    );
    assert!(matches!(
        open(&path, &small),
        Err(SourceError::TooLarge { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// JPEG encoding

#[test]
fn jpeg_encoding_modes() {
    let rgb = Rendered {
        width: 32,
        height: 16,
        channels: 3,
        pixels: (0..32 * 16 * 3).map(|i| (i % 251) as u8).collect(),
    };
    let header = |bytes: &[u8]| turbojpeg::read_header(bytes).unwrap();
    let h = header(&encode_jpeg(&rgb, 0.85).unwrap());
    assert_eq!(
        (h.width, h.height, h.subsamp),
        (32, 16, turbojpeg::Subsamp::Sub2x2)
    );
    let h = header(&encode_jpeg(&rgb, 0.95).unwrap());
    assert_eq!(h.subsamp, turbojpeg::Subsamp::None);
    let grey = Rendered {
        width: 8,
        height: 8,
        channels: 1,
        pixels: vec![200; 64],
    };
    let h = header(&encode_jpeg(&grey, 0.85).unwrap());
    assert_eq!(h.subsamp, turbojpeg::Subsamp::Gray);
    let bad = Rendered {
        width: 8,
        height: 8,
        channels: 3,
        pixels: vec![0; 10],
    };
    assert!(encode_jpeg(&bad, 0.85).is_err());
}

// ---------------------------------------------------------------------------------------
// Demo images

#[test]
fn demo_images_round_trip_and_are_deterministic() {
    let d = dir();
    let opts = DemoOptions {
        images: 2,
        size: 96,
        channels: 4,
        z: 3,
        seed: 42,
    };
    let mut calls = Vec::new();
    let paths = write_demo_images(d.path(), &opts, &mut |done, total| {
        calls.push((done, total))
    })
    .unwrap();
    assert_eq!(calls, vec![(1, 2), (2, 2)]);
    assert_eq!(paths.len(), 2);
    let leftovers: Vec<PathBuf> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !paths.contains(p))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    for path in &paths {
        let src = open(path, &Limits::default()).unwrap();
        let m = src.meta();
        assert_eq!(
            (m.size_x, m.size_y, m.size_z, m.size_c, m.size_t),
            (96, 96, 3, 4, 1)
        );
        assert_eq!(m.pixel_type, PixelType::U16);
        let names: Vec<&str> = m
            .channels
            .iter()
            .map(|c| c.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["DAPI", "GFP", "mCherry", "Cy5"]);
        assert_eq!(m.channels[0].color, Some([0, 0, 255]));
        assert_eq!(m.channels[2].emission_nm, Some(610.0));
        for c in &m.channels {
            // A background near 100 and bright structures above it.
            assert!(c.min < 200 && c.max > 1000, "{c:?}");
        }
        // Default rendering works: colour, first three channels.
        let req = RenderRequest::defaults(m);
        assert_eq!(req.settings.model, Model::Color);
        let img = render_rgb(
            src.as_ref(),
            &req,
            OutputSize::Fit {
                max_w: 48,
                max_h: 48,
            },
            &RenderLimits::default(),
        )
        .unwrap();
        assert_eq!((img.width, img.height, img.channels), (48, 48, 3));
        assert!(img.pixels.iter().any(|&p| p > 100));
    }
    // The two plane orders hold the same kind of data: both files read back sensibly
    // above; and the same seed writes identical bytes.
    let again = tempfile::tempdir().unwrap();
    let paths2 = write_demo_images(again.path(), &opts, &mut |_, _| {}).unwrap();
    for (a, b) in paths.iter().zip(&paths2) {
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    }
    let other = DemoOptions {
        seed: 43,
        ..opts.clone()
    };
    let different = tempfile::tempdir().unwrap();
    let paths3 = write_demo_images(different.path(), &other, &mut |_, _| {}).unwrap();
    assert_ne!(
        std::fs::read(&paths[0]).unwrap(),
        std::fs::read(&paths3[0]).unwrap()
    );
}

// ---------------------------------------------------------------------------------------
// Thumbnails read only the rows they sample

/// Bytes this thread has read from files so far (`rchar`, pread included).
fn thread_bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn pseudo_random(n: usize, seed: u32) -> impl Iterator<Item = u32> {
    (0..n as u32).map(move |i| {
        let x = i.wrapping_mul(2_654_435_761).wrapping_add(seed);
        (x ^ (x >> 13)).wrapping_mul(1_274_126_177) >> 7
    })
}

#[test]
fn thumbnails_from_sampled_rows_equal_thumbnails_from_whole_planes() {
    let d = dir();
    let (w, h) = (700u32, 530u32);
    let gray16 = |seed| -> Vec<u16> {
        pseudo_random((w * h) as usize, seed)
            .map(|v| v as u16)
            .collect()
    };
    // Pages of one channel each, in strips of 5 rows.
    let paged = d.path().join("paged.tif");
    {
        let mut enc = TiffEncoder::new(std::fs::File::create(&paged).unwrap()).unwrap();
        for seed in 1..=3 {
            let mut image = enc.new_image::<colortype::Gray16>(w, h).unwrap();
            image.rows_per_strip(5).unwrap();
            image.write_data(&gray16(seed)).unwrap();
        }
    }
    // Interleaved RGB, 16-bit, in strips of 3 rows.
    let rgb16 = d.path().join("rgb16.tif");
    {
        let data: Vec<u16> = pseudo_random((w * h * 3) as usize, 9)
            .map(|v| v as u16)
            .collect();
        let mut enc = TiffEncoder::new(std::fs::File::create(&rgb16).unwrap()).unwrap();
        let mut image = enc.new_image::<colortype::RGB16>(w, h).unwrap();
        image.rows_per_strip(3).unwrap();
        image.write_data(&data).unwrap();
    }
    // 8-bit, a row a strip.
    let gray8 = d.path().join("gray8.tif");
    {
        let data: Vec<u8> = pseudo_random((w * h) as usize, 4)
            .map(|v| v as u8)
            .collect();
        let mut enc = TiffEncoder::new(std::fs::File::create(&gray8).unwrap()).unwrap();
        let mut image = enc.new_image::<colortype::Gray8>(w, h).unwrap();
        image.rows_per_strip(1).unwrap();
        image.write_data(&data).unwrap();
    }
    // Compressed strips cannot be read a row at a time: decoded whole, then sampled.
    let packed = d.path().join("packbits.tif");
    {
        // Packbits: the encoder's one codec that needs no optional feature.
        let mut enc = TiffEncoder::new(std::fs::File::create(&packed).unwrap())
            .unwrap()
            .with_compression(tiff::encoder::Compression::Packbits);
        enc.write_image::<colortype::Gray16>(w, h, &gray16(5))
            .unwrap();
    }

    let fit = |n| OutputSize::Fit { max_w: n, max_h: n };
    for path in [&paged, &rgb16, &gray8, &packed] {
        let src = open(path, &Limits::default()).unwrap();
        let reference = WholePlanes(src.as_ref());
        for (query, size) in [
            ("", fit(95)),
            ("", fit(40)),
            ("", fit(300)), // one resize step: no sampling
            ("region=13,27,600,480", fit(64)),
            ("m=g&region=100,3,599,527", fit(50)),
        ] {
            let mut req = parse_query(query, src.meta()).unwrap();
            if src.meta().size_c == 3 && query.is_empty() {
                req = parse_query(
                    "c=1|0:40000$FF0000,2|100:60000$00FF00,3|0:65535$0000FF",
                    src.meta(),
                )
                .unwrap();
            }
            let limits = RenderLimits::default();
            let direct = render_rgb(src.as_ref(), &req, size, &limits).unwrap();
            let whole = render_rgb(&reference, &req, size, &limits).unwrap();
            assert_eq!(
                (direct.width, direct.height),
                (whole.width, whole.height),
                "{path:?} {query} {size:?}"
            );
            assert!(
                direct.pixels == whole.pixels,
                "{path:?} {query} {size:?}: the sampled read differs"
            );
        }
    }
}

#[test]
fn a_thumbnail_of_a_large_plane_reads_a_fraction_of_it() {
    let d = dir();
    let (w, h) = (2048u32, 2048u32);
    let path = d.path().join("large.tif");
    let data: Vec<u16> = pseudo_random((w * h) as usize, 3)
        .map(|v| v as u16)
        .collect();
    write_tiff16(&path, w, h, &[data], None);
    let src = open(&path, &Limits::default()).unwrap();
    let req = RenderRequest::defaults(src.meta());
    let plane_bytes = w as u64 * h as u64 * 2;

    let before = thread_bytes_read();
    let thumb = render_rgb(
        src.as_ref(),
        &req,
        OutputSize::Fit {
            max_w: 95,
            max_h: 95,
        },
        &RenderLimits::default(),
    )
    .unwrap();
    let thumbnail_read = thread_bytes_read() - before;
    assert_eq!((thumb.width, thumb.height), (95, 95));
    // 380 of the 2048 rows are sampled: under a fifth of the plane (plus the directory).
    assert!(
        thumbnail_read < plane_bytes / 5,
        "a 95-px thumbnail read {thumbnail_read} bytes of a {plane_bytes}-byte plane"
    );

    // A full-size render reads the whole plane, as it must.
    let before = thread_bytes_read();
    render_rgb(
        src.as_ref(),
        &req,
        OutputSize::Native,
        &RenderLimits::default(),
    )
    .unwrap();
    assert!(thread_bytes_read() - before >= plane_bytes);
}

#[test]
fn a_truncated_file_fails_a_sampled_thumbnail_cleanly() {
    let d = dir();
    let path = d.path().join("cut.tif");
    let data: Vec<u16> = pseudo_random(1024 * 1024, 8).map(|v| v as u16).collect();
    write_tiff16(&path, 1024, 1024, &[data], None);
    let src = open(&path, &Limits::default()).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(1024 * 1024).unwrap(); // half of the pixel data is gone
    let req = RenderRequest::defaults(src.meta());
    let size = OutputSize::Fit {
        max_w: 95,
        max_h: 95,
    };
    let err = render_rgb(src.as_ref(), &req, size, &RenderLimits::default()).unwrap_err();
    // (The encoder writes the directory after the pixels, so the cut takes it too.)
    assert!(err.to_string().contains("invalid image"), "{err}");
}

/// A 2048×2 image: constant 2×2 blocks of 40·block along the first 16 columns.
fn blocks(dir: &Path) -> Box<dyn ImageSource> {
    let path = dir.join("blocks.tif");
    let data: Vec<u16> = (0..2u32)
        .flat_map(|_| (0..2048u32).map(|x| if x < 16 { 40 * (x / 2) as u16 } else { 0 }))
        .collect();
    write_tiff16(&path, 2048, 2, &[data], None);
    open(&path, &Limits::default()).unwrap()
}

#[test]
fn tiles_of_lower_resolution_levels_average_full_resolution_squares() {
    let d = dir();
    let src = blocks(d.path());
    assert_eq!(
        omero_webctl::gateway::imaging::render::resolution_levels(src.meta()),
        2
    );
    // Level 0: full resolution.
    let img = render(src.as_ref(), "c=1|0:255&m=g&tile=0,0,0,4,4");
    assert_eq!((img.width, img.height), (4, 2));
    assert_eq!(img.pixels, vec![0, 0, 40, 40, 0, 0, 40, 40]);
    // Level 1: half resolution, each pixel a 2×2 square; tile indices count level pixels.
    let img = render(src.as_ref(), "c=1|0:255&m=g&tile=1,0,0,4,4");
    assert_eq!((img.width, img.height), (4, 1));
    assert_eq!(img.pixels, vec![0, 40, 80, 120]);
    let img = render(src.as_ref(), "c=1|0:255&m=g&tile=1,1,0,4,4");
    assert_eq!(img.pixels, vec![160, 200, 240, 255]);
    // The last tile of the level is clipped at the image's edge.
    let img = render(src.as_ref(), "c=1|0:255&m=g&tile=1,3,0,300,300");
    assert_eq!((img.width, img.height), (124, 1));
    // Beyond the last level, and beyond the level's extent: OMERO's 400s.
    let err = parse_query("tile=2,0,0", src.meta()).unwrap_err();
    assert_eq!(
        err.0,
        "Invalid resolution level, 2 > number of available levels 1 "
    );
    let err = parse_query("tile=1,4,0,256,256", src.meta()).unwrap_err();
    assert!(err.0.contains("at level 1 is outside"), "{err}");
}
