//! ImageJ files: calibration, lookup tables and display ranges, also as written by Python's
//! tifffile.

use super::*;

#[test]
fn imagej_calibration_gives_pixel_size_and_z_spacing() {
    // An ImageJ hyperstack as ImageJ (and tifffile's imagej=True writer) lays it out:
    // 2 slices, `unit=\u00B5m` escaped, XResolution/YResolution 4 pixels per micron,
    // `spacing=2.5`.
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    std::fs::create_dir_all(&repository).unwrap();
    let file = std::fs::File::create(repository.join("calibrated.tif")).unwrap();
    let mut tiff = tiff::encoder::TiffEncoder::new(std::io::BufWriter::new(file)).unwrap();
    for slice in 0..2u8 {
        let mut image = tiff
            .new_image::<tiff::encoder::colortype::Gray8>(16, 8)
            .unwrap();
        image
            .encoder()
            .write_tag(
                tiff::tags::Tag::ImageDescription,
                "ImageJ=1.54f\nimages=2\nslices=2\nunit=\\u00B5m\nspacing=2.5\nloop=false\n",
            )
            .unwrap();
        image.resolution(
            tiff::tags::ResolutionUnit::None,
            tiff::encoder::Rational { n: 4, d: 1 },
        );
        image.write_data(&[slice * 100; 16 * 8]).unwrap();
    }
    drop(tiff);
    site.ok(&["start"]);
    let img = json_of(site.port, "/webgateway/imgData/1/");
    assert_eq!(img["size"]["z"], 2, "{img}");
    assert_eq!(img["pixel_size"]["x"].as_f64(), Some(0.25), "{img}");
    assert_eq!(img["pixel_size"]["y"].as_f64(), Some(0.25));
    assert_eq!(img["pixel_size"]["z"].as_f64(), Some(2.5));
    // The viewer shows the calibration (and so its scale bar).
    let (_, _, page) = fetch(site.port, "/webclient/img_detail/1/", &[]);
    assert!(String::from_utf8_lossy(&page).contains("0.25 µm/px"));
}

/// A composite ImageJ hyperstack of two 8-bit channels with its LUTs in the IJMetadata
/// tags, laid out as ImageJ and tifffile's ImageJ writer lay them out (little-endian
/// file: the magic reads `JIJI`, the LUT type `stul`): channel 1 magenta (a ramp),
/// channel 2 a table of its own (i ↦ (i, 255 − i, 0)). Channel 1 is black, channel 2
/// a flat 128.
fn write_imagej_luts(path: &std::path::Path) {
    let int = |v: &[u8; 4]| u32::from_be_bytes(*v).to_le_bytes();
    let mut metadata = int(b"IJIJ").to_vec();
    metadata.extend(int(b"luts"));
    metadata.extend(2u32.to_le_bytes());
    let mut counts = vec![metadata.len() as u32];
    let tables: [[Vec<u8>; 3]; 2] = [
        [(0..=255).collect(), vec![0; 256], (0..=255).collect()],
        [(0..=255).collect(), (0..=255).rev().collect(), vec![0; 256]],
    ];
    for table in &tables {
        counts.push(768);
        for component in table {
            metadata.extend(component);
        }
    }
    let file = std::fs::File::create(path).unwrap();
    let mut tiff = tiff::encoder::TiffEncoder::new(std::io::BufWriter::new(file)).unwrap();
    for (page, value) in [0u8, 128].into_iter().enumerate() {
        let mut image = tiff
            .new_image::<tiff::encoder::colortype::Gray8>(16, 8)
            .unwrap();
        image
            .encoder()
            .write_tag(
                tiff::tags::Tag::ImageDescription,
                "ImageJ=1.54f\nimages=2\nchannels=2\nmode=composite\nhyperstack=true\n",
            )
            .unwrap();
        if page == 0 {
            image
                .encoder()
                .write_tag(tiff::tags::Tag::Unknown(50838), counts.as_slice())
                .unwrap();
            image
                .encoder()
                .write_tag(tiff::tags::Tag::Unknown(50839), metadata.as_slice())
                .unwrap();
        }
        image.write_data(&[value; 16 * 8]).unwrap();
    }
}

/// The colour at the centre of a rendered JPEG.
fn centre_colour(port: u16, path: &str) -> [u8; 3] {
    let (status, _, jpeg) = fetch(port, path, &[]);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&jpeg));
    // Planar: all reds, then greens, then blues.
    let (width, height, channels, pixels) = support::decode_jpeg(&jpeg);
    assert_eq!(channels, 3, "{path}");
    let plane = (width * height) as usize;
    let at = ((height / 2) * width + width / 2) as usize;
    [0, 1, 2].map(|k| pixels[k * plane + at] as u8)
}

fn assert_near(found: [u8; 3], expected: [u8; 3], what: &str) {
    assert!(
        found
            .iter()
            .zip(expected)
            .all(|(&f, e)| (f as i32 - e as i32).abs() <= 6),
        "{what}: {found:?}, expected about {expected:?}"
    );
}

#[test]
fn imagej_luts_colour_their_channels_and_imagej_lut_names_are_accepted() {
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    std::fs::create_dir_all(&repository).unwrap();
    write_imagej_luts(&repository.join("composite.tif"));
    site.ok(&["start"]);
    let port = site.port;

    let img = json_of(port, "/webgateway/imgData/1/");
    assert_eq!(img["size"]["c"], 2, "{img}");
    // The ramp is its colour; the other table reports the colour it ends on.
    assert_eq!(img["channels"][0]["color"], "FF00FF", "{img}");
    assert_eq!(img["channels"][1]["color"], "FF0000", "{img}");

    // Drawn through the file's table: 128 ↦ (128, 127, 0), channel 1 adds nothing.
    assert_near(
        centre_colour(port, "/webgateway/render_image/1/0/0/"),
        [128, 127, 0],
        "the file's table",
    );
    // A colour asked for replaces the table.
    assert_near(
        centre_colour(
            port,
            "/webgateway/render_image/1/0/0/?c=1|0:255$FF0000,2|0:255$00FF00&m=c",
        ),
        [0, 128, 0],
        "an explicit colour",
    );
    // ImageJ's menu names are OMERO's tables: "Red/Green" is red-green.lut.
    let by_file = centre_colour(
        port,
        "/webgateway/render_image/1/0/0/?c=-1|0:255,2|0:255$red-green.lut&m=c",
    );
    let by_menu_name = centre_colour(
        port,
        "/webgateway/render_image/1/0/0/?c=-1|0:255,2|0:255$Red/Green&m=c",
    );
    assert_eq!(by_menu_name, by_file);
    assert_ne!(
        by_file,
        centre_colour(
            port,
            "/webgateway/render_image/1/0/0/?c=-1|0:255,2|0:255&m=c"
        )
    );

    // The viewer keeps the table: it sends no colour for that channel.
    let (_, _, page) = fetch(port, "/webclient/img_detail/1/", &[]);
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("data-index=\"2\" data-start=\"0\" data-end=\"255\" data-color=\"FF0000\" data-file-lut=\"1\""),
        "{page}"
    );
}

/// A Python with numpy and the real `tifffile` (PyPI): the bench's peer venv when it
/// has them, else a venv of its own in `~/.cache/omero-webctl/tifffile-venv`, made
/// once with pip. None (the test skips; under CI=true it fails) when neither works.
fn tifffile_python(test: &str) -> Option<std::path::PathBuf> {
    let cache = support::cache_dir();
    let works = |python: &std::path::Path| {
        std::process::Command::new(python)
            .args(["-c", "import numpy, tifffile"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let own = cache.join("tifffile-venv");
    for venv in [cache.join("peer-venv"), own.clone()] {
        if works(&venv.join("bin/python")) {
            return Some(venv.join("bin/python"));
        }
    }
    let made = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&own)
        .status()
        .is_ok_and(|s| s.success())
        && std::process::Command::new(own.join("bin/pip"))
            .args(["install", "-q", "numpy", "tifffile"])
            .status()
            .is_ok_and(|s| s.success());
    if made && works(&own.join("bin/python")) {
        return Some(own.join("bin/python"));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: no Python with numpy and tifffile ({} could not be made); CI=true requires it",
        own.display()
    );
    eprintln!("{test}: skipped, no Python with numpy and tifffile");
    None
}

/// Files written by tifffile's own ImageJ writer (`imwrite(imagej=True)`): a 16-bit
/// composite Z stack with per-channel LUTs, display ranges (`Ranges`), calibration
/// and Z spacing, and a single-channel file whose range is `min=`/`max=` in its
/// description. The gateway opens them as ImageJ does: the LUTs colour the channels
/// and the ranges are the default windows.
#[test]
fn imagej_files_written_by_tifffile_keep_their_luts_ranges_and_calibration() {
    let test = "imagej_files_written_by_tifffile_keep_their_luts_ranges_and_calibration";
    let Some(python) = tifffile_python(test) else {
        return;
    };
    let site = TestSite::new(1);
    let repository = site.root().join("var/repository");
    std::fs::create_dir_all(&repository).unwrap();
    let script = r#"
import sys, numpy as np, tifffile
ramp = np.arange(256, dtype='uint8')
magenta = np.zeros((3, 256), 'uint8'); magenta[0] = ramp; magenta[2] = ramp
own = np.zeros((3, 256), 'uint8'); own[0] = ramp; own[1] = 255 - ramp
data = np.zeros((2, 2, 16, 32), 'uint16')
data[:, 0] = np.arange(32, dtype='uint16') * 100
data[:, 1] = 250
tifffile.imwrite(sys.argv[1] + '/a-composite.tif', data, imagej=True, resolution=(4.0, 4.0),
    metadata={'axes': 'ZCYX', 'mode': 'composite', 'unit': 'um', 'spacing': 2.5,
              'LUTs': [magenta, own], 'Ranges': (100.0, 3000.0, 0.0, 500.0)})
tifffile.imwrite(sys.argv[1] + '/b-single.tif', np.full((16, 32), 1000, 'uint16'), imagej=True,
    metadata={'min': 500.0, 'max': 2000.0})
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(&repository)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    site.ok(&["start"]);
    let port = site.port;
    let ids: Vec<(String, u64)> = json_of(port, "/api/v0/m/images/")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["Name"].as_str().unwrap().to_string(),
                i["@id"].as_u64().unwrap(),
            )
        })
        .collect();
    let id = |name: &str| ids.iter().find(|(n, _)| n == name).unwrap().1;
    let (composite, single) = (id("a-composite.tif"), id("b-single.tif"));

    let img = json_of(port, &format!("/webgateway/imgData/{composite}/"));
    assert_eq!(img["size"]["z"], 2, "{img}");
    assert_eq!(img["size"]["c"], 2);
    assert_eq!(img["meta"]["pixelsType"], "uint16");
    assert_eq!(img["pixel_size"]["x"].as_f64(), Some(0.25), "{img}");
    assert_eq!(img["pixel_size"]["z"].as_f64(), Some(2.5));
    // The magenta ramp is its colour; the other table reports the colour it ends on.
    assert_eq!(img["channels"][0]["color"], "FF00FF", "{img}");
    assert_eq!(img["channels"][1]["color"], "FF0000");
    // The windows are the file's display ranges, not the data's min/max.
    let window = |c: usize| {
        (
            img["channels"][c]["window"]["start"].as_f64().unwrap(),
            img["channels"][c]["window"]["end"].as_f64().unwrap(),
        )
    };
    assert_eq!(window(0), (100.0, 3000.0), "{img}");
    assert_eq!(window(1), (0.0, 500.0));
    assert_eq!(img["channels"][0]["window"]["max"].as_f64(), Some(3100.0));
    // The centre pixel: 1600 of 100..3000 through magenta (≈ 132, 0, 132), plus 250 of
    // 0..500 through the file's own table (≈ 128, 127, 0).
    assert_near(
        centre_colour(port, &format!("/webgateway/render_image/{composite}/0/0/")),
        [255, 127, 132],
        "the file's tables and ranges",
    );

    // One channel: the description's min/max is the window (1000 of 500..2000 is a
    // third of the way up).
    let img = json_of(port, &format!("/webgateway/imgData/{single}/"));
    assert_eq!(
        img["channels"][0]["window"]["start"].as_f64(),
        Some(500.0),
        "{img}"
    );
    assert_eq!(img["channels"][0]["window"]["end"].as_f64(), Some(2000.0));
    let (status, _, jpeg) = fetch(
        port,
        &format!("/webgateway/render_image/{single}/0/0/"),
        &[],
    );
    assert_eq!(status, 200);
    let (width, height, channels, pixels) = support::decode_jpeg(&jpeg);
    assert_eq!(channels, 1, "a grey JPEG");
    let centre = pixels[((height / 2) * width + width / 2) as usize];
    assert!(
        (centre as i32 - 85).abs() <= 4,
        "the description's range: {centre}"
    );
}
