//! Parts and smaller versions of a plane: regions and what they read, thumbnails from
//! sampled rows, downscaling, lower resolution levels, and the render limits.

use super::*;

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
    // Big-endian (Motorola) 16-bit samples: swapped as they are picked.
    let motorola = d.path().join("big-endian.tif");
    write_big_endian_tiff16(&motorola, w, h, &gray16(7));
    {
        // Its samples read as written (the tiff crate's decoder, not our row reads).
        let src = open(&motorola, &Limits::default()).unwrap();
        let region = Region {
            x: 5,
            y: 9,
            width: 3,
            height: 2,
        };
        let plane = &src.read_planes(0, &[0], 0, Some(region)).unwrap()[0];
        let written = gray16(7);
        let expected: Vec<u16> = [9usize, 10]
            .iter()
            .flat_map(|&y| written[y * w as usize + 5..][..3].to_vec())
            .collect();
        assert_eq!(plane.data, expected);
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
    for path in [&paged, &rgb16, &gray8, &motorola, &packed] {
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

/// A one-page, one-strip 16-bit grey TIFF in big-endian byte order, written by hand
/// (the tiff crate's encoder writes the machine's order only).
fn write_big_endian_tiff16(path: &Path, w: u32, h: u32, data: &[u16]) {
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    let entries = 9u16;
    let pixels_at = 8 + 2 + 12 * entries as u32 + 4;
    let tags: [(u16, u16, u32); 9] = [
        (256, LONG, w),         // ImageWidth
        (257, LONG, h),         // ImageLength
        (258, SHORT, 16),       // BitsPerSample
        (259, SHORT, 1),        // Compression: none
        (262, SHORT, 1),        // PhotometricInterpretation: black is zero
        (273, LONG, pixels_at), // StripOffsets
        (277, SHORT, 1),        // SamplesPerPixel
        (278, LONG, h),         // RowsPerStrip
        (279, LONG, w * h * 2), // StripByteCounts
    ];
    let mut bytes = b"MM\0\x2a".to_vec();
    bytes.extend(8u32.to_be_bytes());
    bytes.extend(entries.to_be_bytes());
    for (tag, kind, value) in tags {
        bytes.extend(tag.to_be_bytes());
        bytes.extend(kind.to_be_bytes());
        bytes.extend(1u32.to_be_bytes());
        match kind {
            // A SHORT sits in the first two bytes of the value field.
            SHORT => bytes.extend([(value as u16).to_be_bytes(), [0, 0]].concat()),
            _ => bytes.extend(value.to_be_bytes()),
        }
    }
    bytes.extend(0u32.to_be_bytes()); // no next page
    assert_eq!(bytes.len() as u32, pixels_at);
    bytes.extend(data.iter().flat_map(|v| v.to_be_bytes()));
    std::fs::write(path, bytes).unwrap();
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
    // Read with pread, to count the bytes (a mapped file's rows are read in place).
    beyond_mapping(&path);
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
