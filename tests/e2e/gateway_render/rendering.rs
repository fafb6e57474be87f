//! Rendering a plane: windows, colours, models, inversion, lookup tables, projections,
//! OMERO's default settings, and the JPEG encoder's modes.

use super::*;

fn write_tiff8(path: &Path, w: u32, h: u32, pages: &[Vec<u8>]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = TiffEncoder::new(std::io::BufWriter::new(file)).unwrap();
    for page in pages {
        enc.write_image::<colortype::Gray8>(w, h, page).unwrap();
    }
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
