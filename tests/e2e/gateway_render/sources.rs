//! Reading image files: Bio-Formats OME-XML, OME-TIFF channels and orders, ImageJ
//! hyperstacks, RGB TIFF, PNG and JPEG, decompression bombs, the demo images.

use super::*;

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
// Whole rows are read a run of strips at a time

/// Read calls this thread has made so far (`syscr`, pread included).
fn thread_read_calls() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A little-endian 16-bit greyscale TIFF written by hand, its directory first and its
/// strips of `rows_per_strip` rows stored in the file in `order` (strip indices).
fn tiff_with_strip_order(
    path: &Path,
    w: u32,
    h: u32,
    rows_per_strip: u32,
    order: &[usize],
    data: &[u16],
) {
    let strips = h.div_ceil(rows_per_strip) as usize;
    assert!(
        strips >= 2,
        "the offsets must be an array, not an inline value"
    );
    let strip_bytes = |i: usize| {
        let rows = rows_per_strip.min(h - i as u32 * rows_per_strip);
        rows * w * 2
    };
    let entries: u32 = 9;
    let arrays = 8 + 2 + entries * 12 + 4;
    let pixels_at = arrays + 8 * strips as u32;
    let mut offsets = vec![0u32; strips];
    let mut at = pixels_at;
    for &i in order {
        offsets[i] = at;
        at += strip_bytes(i);
    }
    let mut b: Vec<u8> = b"II\x2a\x00".to_vec();
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&(entries as u16).to_le_bytes());
    let n = strips as u32;
    for (tag, ty, count, value) in [
        (256u16, 4u16, 1u32, w),     // ImageWidth
        (257, 4, 1, h),              // ImageLength
        (258, 3, 1, 16),             // BitsPerSample
        (259, 3, 1, 1),              // Compression: none
        (262, 3, 1, 1),              // BlackIsZero
        (273, 4, n, arrays),         // StripOffsets
        (277, 3, 1, 1),              // SamplesPerPixel
        (278, 4, 1, rows_per_strip), // RowsPerStrip
        (279, 4, n, arrays + 4 * n), // StripByteCounts
    ] {
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
    assert_eq!(b.len() as u32, arrays);
    for &offset in &offsets {
        b.extend_from_slice(&offset.to_le_bytes());
    }
    for i in 0..strips {
        b.extend_from_slice(&strip_bytes(i).to_le_bytes());
    }
    for &i in order {
        let first = i * (rows_per_strip * w) as usize;
        let count = strip_bytes(i) as usize / 2;
        for v in &data[first..first + count] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

/// `w`×`h` 16-bit pixels, pseudo-random from `seed`.
fn grey16(w: u32, h: u32, seed: u32) -> Vec<u16> {
    pseudo_random((w * h) as usize, seed)
        .map(|v| v as u16)
        .collect()
}

/// The orders the layout tests store `strips` strips in, each named: in file order,
/// reversed, and shuffled (the i-th stored is strip `i * step % strips`).
fn strip_orders(strips: usize, step: usize) -> [(&'static str, Vec<usize>); 3] {
    let in_order: Vec<usize> = (0..strips).collect();
    let reversed: Vec<usize> = in_order.iter().rev().copied().collect();
    let shuffled: Vec<usize> = (0..strips).map(|i| (i * step) % strips).collect();
    [
        ("in order", in_order),
        ("reversed", reversed),
        ("shuffled", shuffled),
    ]
}

/// [`tiff_with_strip_order`] with the strips stored in order.
fn tiff_with_strips_in_order(path: &Path, w: u32, h: u32, rows_per_strip: u32, data: &[u16]) {
    let order: Vec<usize> = (0..h.div_ceil(rows_per_strip) as usize).collect();
    tiff_with_strip_order(path, w, h, rows_per_strip, &order, data);
}

#[test]
fn whole_rows_are_read_a_run_of_strips_at_a_time_wherever_the_strips_lie() {
    let d = dir();
    // Strips of 2 rows × 4 KiB: each as large as a buffered reader's buffer, so a read
    // per strip would show as 64 read calls.
    let (w, h, rps) = (2048u32, 128u32, 2u32);
    let data = grey16(w, h, 11);
    let strips = h.div_ceil(rps) as usize;
    for (name, order) in strip_orders(strips, 7) {
        let path = d.path().join(format!("{}.tif", name.replace(' ', "-")));
        tiff_with_strip_order(&path, w, h, rps, &order, &data);
        let src = open(&path, &Limits::default()).unwrap();
        let calls = thread_read_calls();
        let planes = src.read_planes(0, &[0], 0, None).unwrap();
        let calls = thread_read_calls() - calls;
        assert!(planes[0].data == data, "{name}: the whole plane differs");
        // Whole rows of a region, starting and ending inside a strip.
        let region = Region {
            x: 0,
            y: 5,
            width: w,
            height: 100,
        };
        let part = src.read_planes(0, &[0], 0, Some(region)).unwrap();
        assert!(
            part[0].data[..] == data[5 * w as usize..105 * w as usize],
            "{name}: the region's rows differ"
        );
        // The strips back to back in the file are one read (plus the directory's).
        if name == "in order" {
            assert!(calls < 16, "{name}: {calls} read calls for {strips} strips");
        }
        // The same pixels a render of the whole plane shows.
        let req = RenderRequest::defaults(src.meta());
        let limits = RenderLimits::default();
        let direct = render_rgb(src.as_ref(), &req, OutputSize::Native, &limits).unwrap();
        let whole = render_rgb(
            &WholePlanes(src.as_ref()),
            &req,
            OutputSize::Native,
            &limits,
        )
        .unwrap();
        assert!(direct.pixels == whole.pixels, "{name}: the render differs");
    }
}

#[test]
fn a_file_cut_inside_its_strips_fails_a_whole_plane_cleanly() {
    let d = dir();
    let (w, h, rps) = (512u32, 64u32, 8u32);
    let data = grey16(w, h, 12);
    let path = d.path().join("cut.tif");
    tiff_with_strips_in_order(&path, w, h, rps, &data);
    let src = open(&path, &Limits::default()).unwrap();
    // The directory is at the front: the open still works, half the pixels are gone.
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - (w * h) as u64).unwrap();
    let err = src.read_planes(0, &[0], 0, None).unwrap_err();
    assert!(err.to_string().contains("page 0 is truncated"), "{err}");
    let req = RenderRequest::defaults(src.meta());
    let err = render_rgb(
        src.as_ref(),
        &req,
        OutputSize::Native,
        &RenderLimits::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("page 0 is truncated"), "{err}");
}

/// Thumbnails read their sampled rows from a mapping of the file kept between reads.
/// The file cut between two thumbnails: the next one maps it at its new length and
/// fails cleanly as truncated, never rendering zeros; restored, the file gives the
/// thumbnail it gave before.
#[test]
fn a_file_cut_after_its_rows_were_mapped_fails_the_next_thumbnail_and_never_renders_zeros() {
    use std::os::unix::fs::FileExt;
    let d = dir();
    let (w, h, rps) = (2048u32, 512u32, 16u32);
    let data = grey16(w, h, 12);
    let path = d.path().join("cut.tif");
    tiff_with_strips_in_order(&path, w, h, rps, &data);
    let src = open(&path, &Limits::default()).unwrap();
    let req = RenderRequest::defaults(src.meta());
    let thumbnail = || {
        let size = OutputSize::Fit {
            max_w: 95,
            max_h: 95,
        };
        render_rgb(src.as_ref(), &req, size, &RenderLimits::default())
    };
    let before = thumbnail().unwrap();
    let original = std::fs::read(&path).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Cut in the last quarter of the rows, 100 bytes into a page.
    let cut = (original.len() as u64 * 3 / 4) / 4096 * 4096 + 100;
    file.set_len(cut).unwrap();
    let err = thumbnail().unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    file.write_all_at(&original[cut as usize..], cut).unwrap();
    let after = thumbnail().unwrap();
    assert_eq!(after.pixels, before.pixels);
}

/// Whole-plane bands are handed over from the file's mapping where they lie. The file
/// cut while the bands are read (in the first band's visit): at a page boundary, the
/// later bands' pages raise SIGBUS (the handler gives zeros and marks the mapping); one
/// byte short, the last page's tail reads as zero with no signal. Either way the read
/// fails, never returning the zeros as pixels.
#[test]
fn a_file_cut_while_its_mapped_bands_are_read_fails_the_read() {
    let d = dir();
    let (w, h, rps) = (2048u32, 256u32, 8u32);
    let data = grey16(w, h, 16);
    for (name, cut_at) in [
        (
            "at a page boundary",
            (|len: u64| len / 2 / 4096 * 4096) as fn(u64) -> u64,
        ),
        ("one byte short, inside the last page", |len: u64| len - 1),
    ] {
        let path = d.path().join("cut.tif");
        tiff_with_strips_in_order(&path, w, h, rps, &data);
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(
            cut_at(len) % 4096 == 0,
            name.starts_with("at a page"),
            "{name}: where the cut falls"
        );
        let src = open(&path, &Limits::default()).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let (mut bands, mut sum) = (0, 0u64);
        let read = src.read_row_bands(0, &[0], 0, src.meta().full_region(), 16, &mut |band| {
            if bands == 0 {
                file.set_len(cut_at(len)).unwrap();
            }
            bands += 1;
            // Every pixel looked at, as the mixer does.
            sum += band[0].iter().map(|&v| v as u64).sum::<u64>();
        });
        assert_eq!(
            bands,
            h / 16,
            "{name}: every band was handed over (sum {sum})"
        );
        let err = read.expect_err(name);
        assert!(err.to_string().contains("cut short"), "{name}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// Whole rows in bands: what a native-size render mixes as it reads

/// Every band `read_row_bands` hands over, joined per channel; checks that each band
/// holds a whole number of the region's rows, `band_rows` of them except the last.
fn joined_bands(
    src: &dyn ImageSource,
    channels: &[u32],
    region: Region,
    band_rows: u32,
) -> Vec<Vec<u16>> {
    let width = region.width as usize;
    let mut joined = vec![Vec::new(); channels.len()];
    let mut rows = Vec::new();
    src.read_row_bands(0, channels, 0, region, band_rows, &mut |band| {
        assert_eq!(band.len(), channels.len(), "one slice per channel");
        assert_eq!(band[0].len() % width, 0, "whole rows");
        for (all, slice) in joined.iter_mut().zip(band) {
            assert_eq!(slice.len(), band[0].len(), "every channel the same rows");
            all.extend_from_slice(slice);
        }
        rows.push(band[0].len() / width);
    })
    .unwrap();
    let (last, full) = rows.split_last().expect("at least one band");
    assert!(
        full.iter().all(|&r| r == band_rows as usize) && (1..=band_rows as usize).contains(last),
        "bands of {band_rows} rows: {rows:?}"
    );
    assert_eq!(rows.iter().sum::<usize>(), region.height as usize);
    joined
}

#[test]
fn row_bands_cross_strips_in_any_order_down_to_an_odd_bottom_edge() {
    let d = dir();
    // 37 rows (odd) in strips of 5: the last strip has 2 rows.
    let (w, h, rps) = (64u32, 37u32, 5u32);
    let data = grey16(w, h, 13);
    let strips = h.div_ceil(rps) as usize;
    let rows = |y: u32, height: u32| Region {
        x: 0,
        y,
        width: w,
        height,
    };
    for (name, order) in strip_orders(strips, 3) {
        let path = d
            .path()
            .join(format!("bands-{}.tif", name.replace(' ', "-")));
        tiff_with_strip_order(&path, w, h, rps, &order, &data);
        let src = open(&path, &Limits::default()).unwrap();
        // The whole page, rows starting and ending inside strips, the bottom row alone,
        // the first rows.
        for region in [rows(0, h), rows(3, 30), rows(36, 1), rows(0, 6)] {
            let expected =
                &data[(region.y * w) as usize..((region.y + region.height) * w) as usize];
            for band_rows in [1, 4, 5, 7, 16, 64] {
                let got = joined_bands(src.as_ref(), &[0], region, band_rows);
                assert!(
                    got[0] == expected,
                    "{name}, {region:?} in bands of {band_rows}: the rows differ"
                );
            }
        }
        // A region narrower than the page goes through the decoder, in bands all the same.
        let narrow = Region {
            x: 1,
            y: 2,
            width: 61,
            height: 35,
        };
        let whole = src.read_planes(0, &[0], 0, Some(narrow)).unwrap();
        assert!(
            joined_bands(src.as_ref(), &[0], narrow, 4)[0] == whole[0].data,
            "{name}"
        );
    }
}

/// Read calls the source makes before each band `read_row_bands` hands over (the
/// directory's before the first), leaving out this test's own reads of /proc (`own`,
/// a read of the counter and the next one's, measured back to back); and the bands
/// joined.
fn reads_before_each_band(src: &dyn ImageSource, band_rows: u32) -> (Vec<u64>, Vec<u16>) {
    let region = src.meta().full_region();
    let first = thread_read_calls();
    let own = thread_read_calls() - first;
    let mut before_band = Vec::new();
    let mut last = thread_read_calls();
    let mut joined = Vec::new();
    src.read_row_bands(0, &[0], 0, region, band_rows, &mut |band| {
        before_band.push(thread_read_calls() - last - own);
        joined.extend_from_slice(band[0]);
        last = thread_read_calls();
    })
    .unwrap();
    (before_band, joined)
}

#[test]
fn row_bands_are_read_a_band_at_a_time_one_read_per_run_of_strips() {
    let d = dir();
    let (w, h, rps) = (2048u32, 128u32, 2u32);
    let data = grey16(w, h, 14);
    let path = d.path().join("in-order.tif");
    tiff_with_strips_in_order(&path, w, h, rps, &data);
    beyond_mapping(&path);
    let src = open(&path, &Limits::default()).unwrap();
    let (before_band, joined) = reads_before_each_band(src.as_ref(), 4);
    assert_eq!(before_band.len(), 32);
    assert!(joined == data, "the bands differ from the page");
    // Each band is read just before it is handed over, not sliced out of a whole plane.
    assert!(
        before_band.iter().all(|&n| n >= 1),
        "reads before each band: {before_band:?}"
    );
    // Two strips back to back per band: one read each (plus the directory's).
    let calls: u64 = before_band.iter().sum();
    assert!(
        (32..32 + 16).contains(&calls),
        "{calls} read calls for 32 bands: {before_band:?}"
    );
}

/// A file the gateway maps: each band that lies in one run of the file is handed over
/// where it lies, with no read call (and no copy); one whose strips lie apart is read.
#[test]
fn row_bands_of_a_mapped_file_are_handed_over_in_place_where_they_lie_in_one_run() {
    let d = dir();
    let (w, h, rps) = (2048u32, 128u32, 2u32);
    let data = grey16(w, h, 15);
    let path = d.path().join("in-order.tif");
    tiff_with_strips_in_order(&path, w, h, rps, &data);
    let src = open(&path, &Limits::default()).unwrap();
    let (before_band, joined) = reads_before_each_band(src.as_ref(), 4);
    assert!(joined == data, "the bands differ from the page");
    assert_eq!(before_band.len(), 32);
    assert!(
        before_band[1..].iter().all(|&n| n == 0),
        "read calls before each band: {before_band:?}"
    );
    // Strips swapped in pairs: each band's two strips lie back to back, but in the
    // wrong order for one run: read, one call per strip.
    let swapped: Vec<usize> = (0..(h / rps) as usize).map(|s| s ^ 1).collect();
    let path = d.path().join("swapped.tif");
    tiff_with_strip_order(&path, w, h, rps, &swapped, &data);
    let src = open(&path, &Limits::default()).unwrap();
    let (before_band, joined) = reads_before_each_band(src.as_ref(), 4);
    assert!(joined == data, "the bands differ from the page");
    assert!(
        before_band[1..].iter().all(|&n| n == 2),
        "read calls before each band: {before_band:?}"
    );
}

#[test]
fn row_bands_of_several_pages_and_interleaved_samples_match_the_planes() {
    let d = dir();
    // Three 16-bit pages 1000 wide (the encoder's strips hold a few rows each), odd height.
    let (w, h) = (1000u32, 41u32);
    let pages: Vec<Vec<u16>> = (0..3).map(|c| grey16(w, h, 20 + c)).collect();
    let src = channels_image(d.path(), w, h, &pages);
    let region = Region {
        x: 0,
        y: 1,
        width: w,
        height: 39,
    };
    let planes = src.read_planes(0, &[2, 0], 0, Some(region)).unwrap();
    let got = joined_bands(src.as_ref(), &[2, 0], region, 3);
    assert!(got[0] == planes[0].data && got[1] == planes[1].data);

    // Interleaved 8-bit RGB in strips of 2 rows: one read serves the three channels.
    let path = d.path().join("rgb-bands.tif");
    let (w, h) = (67u32, 41u32);
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut enc = TiffEncoder::new(file).unwrap();
        let data: Vec<u8> = pseudo_random((w * h * 3) as usize, 30)
            .map(|v| v as u8)
            .collect();
        let mut image = enc.new_image::<colortype::RGB8>(w, h).unwrap();
        image.rows_per_strip(2).unwrap();
        image.write_data(&data).unwrap();
    }
    let src = open(&path, &Limits::default()).unwrap();
    let region = src.meta().full_region();
    let planes = src.read_planes(0, &[2, 0, 1], 0, None).unwrap();
    let got = joined_bands(src.as_ref(), &[2, 0, 1], region, 5);
    for (i, plane) in planes.iter().enumerate() {
        assert!(got[i] == plane.data, "channel {i} differs");
    }
    // And the render through bands is the one from whole planes.
    let req = RenderRequest::defaults(src.meta());
    let limits = RenderLimits::default();
    let banded = render_rgb(src.as_ref(), &req, OutputSize::Native, &limits).unwrap();
    let whole = render_rgb(
        &WholePlanes(src.as_ref()),
        &req,
        OutputSize::Native,
        &limits,
    )
    .unwrap();
    assert!(banded.pixels == whole.pixels, "the render differs");
}

/// Sizes whose product overflows 64 bits (Z·C·T = (2^32 − 1)² · 2^16 in OME-XML, 2^66 in
/// ImageJ) are refused or read as what the file holds, never wrapped into a small count
/// that passes the checks (or, in a build with overflow checks, a panic).
#[test]
fn sizes_whose_product_overflows_are_not_wrapped() {
    let (huge, channels) = (u32::MAX, 1u32 << 16);
    let d = dir();
    // OME-XML with TiffData: too many planes declared.
    let xml = format!(
        "<OME><Image><Pixels SizeX=\"1\" SizeY=\"1\" SizeZ=\"{huge}\" SizeC=\"{channels}\" \
         SizeT=\"{huge}\" Type=\"uint16\"><TiffData IFD=\"0\"/></Pixels></Image></OME>"
    );
    let err = parse_ome_xml(&xml).unwrap_err().to_string();
    assert!(err.contains("planes declared; too many"), "{err}");
    // OME-XML without TiffData: more pixels than any limit (the count saturated, and
    // said so).
    let path = d.path().join("huge.ome.tif");
    let xml = xml.replace("<TiffData IFD=\"0\"/>", "");
    write_tiff16(&path, 1, 1, &[vec![7]], Some(&xml));
    let err = open(&path, &Limits::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains(&format!("declares {} or more pixels", u64::MAX)),
        "{err}"
    );
    // Without a pixel limit: more pages needed than the file's one.
    let unlimited = Limits {
        max_pixels: u64::MAX,
        ..Limits::default()
    };
    let err = open(&path, &unlimited).err().expect("refused").to_string();
    assert!(
        err.contains(&format!(
            "needs {} or more pages but the file has 1",
            u64::MAX
        )),
        "{err}"
    );
    // A TiffData whose IFD + PlaneCount passes the last IFD number there can be.
    let xml = format!(
        "<OME><Image><Pixels SizeX=\"1\" SizeY=\"1\" SizeZ=\"2\" SizeC=\"1\" SizeT=\"1\" \
         Type=\"uint16\"><TiffData IFD=\"{}\" PlaneCount=\"2\"/></Pixels></Image></OME>",
        u32::MAX
    );
    let err = parse_ome_xml(&xml).unwrap_err().to_string();
    assert!(err.contains("past the last IFD"), "{err}");
    // ImageJ sizes that do not multiply to the page count: a plain Z stack.
    let path = d.path().join("huge-imagej.tif");
    let huge = 1u32 << 22;
    let description =
        format!("ImageJ=1.54f\nimages=1\nchannels={huge}\nslices={huge}\nframes={huge}\n");
    write_tiff16(&path, 1, 1, &[vec![7]], Some(&description));
    let source = open(&path, &Limits::default()).unwrap();
    let meta = source.meta();
    assert_eq!((meta.size_z, meta.size_c, meta.size_t), (1, 1, 1));
    assert_eq!(source.plane(0, 0, 0).unwrap().data, vec![7]);
}

/// A description that declares more channels than any image has is refused before a
/// channel list is built for them (SizeC = 2^32 − 1 would be a list of about 200 GiB).
#[test]
fn ome_xml_declaring_billions_of_channels_is_refused() {
    let xml = format!(
        "<OME><Image><Pixels SizeX=\"1\" SizeY=\"1\" SizeZ=\"1\" SizeC=\"{}\" SizeT=\"1\" \
         Type=\"uint16\"/></Image></OME>",
        u32::MAX
    );
    let err = parse_ome_xml(&xml).unwrap_err().to_string();
    assert!(err.contains("more than 65536 channels"), "{err}");
    // 65536 is still read.
    let xml = xml.replace(&u32::MAX.to_string(), "65536");
    assert_eq!(parse_ome_xml(&xml).unwrap().channels.len(), 65536);
}

/// `<TiffData/>` maps every plane; repeated, it must not cost planes × elements (a
/// million planes, a thousand elements: a billion steps in every open).
#[test]
fn repeated_tiff_data_elements_are_bounded() {
    let planes = 1u32 << 20;
    let xml = |elements: usize| {
        format!(
            "<OME><Image><Pixels SizeX=\"1\" SizeY=\"1\" SizeZ=\"{planes}\" SizeC=\"1\" \
             SizeT=\"1\" Type=\"uint16\">{}</Pixels></Image></OME>",
            "<TiffData/>".repeat(elements)
        )
    };
    // Four times over is read (later elements win, as they would in OMERO's reader)...
    let ome = parse_ome_xml(&xml(4)).unwrap();
    assert_eq!(ome.plane_ifds.map(|t| t.len()), Some(planes as usize));
    // ... a fifth time is refused.
    let err = parse_ome_xml(&xml(5)).unwrap_err().to_string();
    assert!(
        err.contains("TiffData elements map more than 4194304 planes in all"),
        "{err}"
    );
}
