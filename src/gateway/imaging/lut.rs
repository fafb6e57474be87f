//! Lookup tables for `c=…$name.lut`, the way iviewer asks for them.
//!
//! OMERO's server loads the `.lut` files of its script repository (ImageJ's and Fiji's
//! tables) and keys them by lower-cased file name; a channel whose table is not among
//! them is drawn in its colour instead. We ship a few tables, generated here from
//! their defining formulas rather than copied from those files:
//!
//! * `grays.lut`: the identity ramp.
//! * `3-3-2_rgb.lut`: ImageJ's "3-3-2 RGB", the index's bits read as RRRGGGBB.
//! * `spectrum.lut`: the hue circle at full saturation and brightness, hue = index/255
//!   (ImageJ builds its "Spectrum" the same way).
//! * `cool.lut`: a linear cyan-to-magenta ramp (R = i, G = 255 − i, B = 255). The
//!   shape of OMERO's NCSA "cool" table, not its exact entries.
//!
//! and the rest of OMERO's list from `lut_tables`. Every other name falls back to the
//! channel's colour, as OMERO does for a table its server does not have.

use std::sync::OnceLock;

/// A 256-entry colour table: the rendered (0–255) value of a channel picks an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lut {
    /// The directory OMERO's server keeps it in (`/luts/`, `/luts/wcif/`…).
    pub path: &'static str,
    pub name: &'static str,
    /// Red, green and blue components, indexed by the rendered value.
    pub rgb: [[u8; 256]; 3],
}

impl Lut {
    fn from_fn(path: &'static str, name: &'static str, entry: impl Fn(u8) -> [u8; 3]) -> Lut {
        let mut rgb = [[0u8; 256]; 3];
        for i in 0..=255u8 {
            let [r, g, b] = entry(i);
            rgb[0][i as usize] = r;
            rgb[1][i as usize] = g;
            rgb[2][i as usize] = b;
        }
        Lut { path, name, rgb }
    }
}

/// Hue (0–1) at full saturation and brightness to RGB, rounding each component as
/// java.awt.Color.HSBtoRGB does (`(int)(x * 255 + 0.5)`).
fn hue_to_rgb(hue: f32) -> [u8; 3] {
    let h = (hue - hue.floor()) * 6.0;
    let f = h - h.floor();
    let byte = |x: f32| (x * 255.0 + 0.5) as u8;
    let (one, falling, rising) = (255u8, byte(1.0 - f), byte(f));
    match h as u32 {
        0 => [one, rising, 0],
        1 => [falling, one, 0],
        2 => [0, one, rising],
        3 => [0, falling, one],
        4 => [rising, 0, one],
        _ => [one, 0, falling],
    }
}

/// The tables this gateway has, by the names OMERO's server knows them.
pub fn all() -> &'static [Lut] {
    static TABLES: OnceLock<Vec<Lut>> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut tables = vec![
            Lut::from_fn("/luts/", "grays.lut", |i| [i, i, i]),
            Lut::from_fn("/luts/", "3-3-2_rgb.lut", |i| {
                [i & 0xe0, (i << 3) & 0xe0, (i << 6) & 0xc0]
            }),
            Lut::from_fn("/luts/", "spectrum.lut", |i| hue_to_rgb(i as f32 / 255.0)),
            Lut::from_fn("/luts/ncsa_paledit/", "cool.lut", |i| [i, 255 - i, 255]),
        ];
        tables.extend(
            super::lut_tables::generated()
                .into_iter()
                .map(|(path, name, entry)| Lut::from_fn(path, name, entry)),
        );
        // OMERO lists them by name, case-insensitively.
        tables.sort_by_key(|lut| lut.name.to_lowercase());
        tables
    })
}

/// The table for a channel's `lut` name. As OMERO's server, the match is on the exact
/// name against lower-case file names, so "Cool.lut" is not found.
pub fn find(name: &str) -> Option<&'static Lut> {
    all().iter().find(|lut| lut.name == name)
}

/// The table ImageJ shows under `name` in its Image › Lookup Tables menu ("Fire",
/// "3-3-2 RGB", "Red/Green", "Cyan Hot", "16 colors"): OMERO's file name is the menu
/// name in lower case, spaces as `_`, `/` as `-`, with `.lut` (a `.lut` suffix given
/// is accepted too).
pub fn find_imagej_name(name: &str) -> Option<&'static Lut> {
    let stem = name.trim().strip_suffix(".lut").unwrap_or(name.trim());
    if stem.is_empty() {
        return None;
    }
    let file = format!(
        "{}.lut",
        stem.to_lowercase().replace(' ', "_").replace('/', "-")
    );
    all().iter().find(|lut| lut.name == file)
}

/// OMERO's `LUTS_IN_PNG`: the tables of the static `luts_10.png` that older viewers
/// index by `png_index`, in that image's order.
const LUTS_IN_PNG: [&str; 39] = [
    "/luts/ncsa_paledit/16_colors.lut",
    "/luts/3-3-2_rgb.lut",
    "/luts/ncsa_paledit/5_ramps.lut",
    "/luts/ncsa_paledit/6_shades.lut",
    "/luts/ncsa_paledit/blue_orange_icb.lut",
    "/luts/ncsa_paledit/brgbcmyw.lut",
    "/luts/ncsa_paledit/cool.lut",
    "/luts/wcif/cyan_hot.lut",
    "/luts/ncsa_paledit/edges.lut",
    "/luts/fire.lut",
    "/luts/ncsa_paledit/gem.lut",
    "/luts/glasbey.lut",
    "/luts/glasbey_inverted.lut",
    "/luts/glow.lut",
    "/luts/grays.lut",
    "/luts/wcif/green_fire_blue.lut",
    "/luts/wcif/hilo.lut",
    "/luts/wcif/ica.lut",
    "/luts/wcif/ica2.lut",
    "/luts/wcif/ica3.lut",
    "/luts/ice.lut",
    "/luts/wcif/magenta_hot.lut",
    "/luts/wcif/orange_hot.lut",
    "/luts/ncsa_paledit/phase.lut",
    "/luts/physics.lut",
    "/luts/janelia/pup_br.lut",
    "/luts/janelia/pup_nr.lut",
    "/luts/wcif/rainbow_rgb.lut",
    "/luts/red-green.lut",
    "/luts/wcif/red_hot.lut",
    "/luts/ncsa_paledit/royal.lut",
    "/luts/ncsa_paledit/sepia.lut",
    "/luts/ncsa_paledit/smart.lut",
    "/luts/spectrum.lut",
    "/luts/ncsa_paledit/thal.lut",
    "/luts/ncsa_paledit/thallium.lut",
    "/luts/thermal.lut",
    "/luts/ncsa_paledit/unionjack.lut",
    "/luts/wcif/yellow_hot.lut",
];

/// `webgateway/luts/` as OMERO answers it: each table's `id`, `path`, `name`, `size`
/// (an ImageJ binary table's 768 bytes), `png_index` (in `LUTS_IN_PNG`, -1 if not
/// there) and `png_index_new` (its row in `luts_png`), plus both lists; `rgb=true`
/// adds each table's 256 [r, g, b] entries.
pub fn list_json(with_rgb: bool) -> serde_json::Value {
    let mut png_luts: Vec<String> = LUTS_IN_PNG.iter().map(|s| s.to_string()).collect();
    png_luts.push("gradient.png".into());
    let mut all_luts = Vec::new();
    let luts: Vec<serde_json::Value> = all()
        .iter()
        .enumerate()
        .map(|(i, lut)| {
            let full = format!("{}{}", lut.path, lut.name);
            let png_index = LUTS_IN_PNG
                .iter()
                .position(|p| *p == full)
                .map_or(-1, |p| p as i64);
            all_luts.push(full);
            let mut entry = serde_json::json!({
                "id": i + 1,
                "path": lut.path,
                "name": lut.name,
                "size": 768,
                "png_index": png_index,
                "png_index_new": i,
            });
            if with_rgb {
                entry["rgb"] = (0..256)
                    .map(|v| serde_json::json!([lut.rgb[0][v], lut.rgb[1][v], lut.rgb[2][v]]))
                    .collect();
            }
            entry
        })
        .collect();
    all_luts.push("gradient.png".into());
    serde_json::json!({"luts": luts, "png_luts": png_luts, "png_luts_new": all_luts})
}

/// `webgateway/luts_png/`: 256 px wide, 10 rows per table in `all()`'s order, then
/// 10 rows of the channel sliders' gradient (black, opaque fading to transparent over
/// the first 180 px), RGBA, as OMERO draws it.
pub fn png() -> Vec<u8> {
    let tables = all();
    let height = 10 * (tables.len() + 1);
    let mut pixels = Vec::with_capacity(256 * height * 4);
    for lut in tables {
        for _ in 0..10 {
            for v in 0..256 {
                pixels.extend_from_slice(&[lut.rgb[0][v], lut.rgb[1][v], lut.rgb[2][v], 255]);
            }
        }
    }
    for _ in 0..10 {
        for x in 0..256usize {
            // numpy.linspace(255, 0, 180) as uint8 (truncated).
            let alpha = if x < 180 {
                (255.0 - 255.0 * x as f64 / 179.0) as u8
            } else {
                0
            };
            pixels.extend_from_slice(&[0, 0, 0, alpha]);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, 256, height as u32);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&pixels))
        .expect("encoding a PNG in memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_their_formulas() {
        let grays = find("grays.lut").unwrap();
        assert_eq!(grays.rgb[0][200], 200);
        let bits = find("3-3-2_rgb.lut").unwrap();
        // 0b101_011_10: red 101, green 011, blue 10.
        let i = 0b1010_1110usize;
        assert_eq!(
            [bits.rgb[0][i], bits.rgb[1][i], bits.rgb[2][i]],
            [0b1010_0000, 0b0110_0000, 0b1000_0000]
        );
        let spectrum = find("spectrum.lut").unwrap();
        assert_eq!(
            [spectrum.rgb[0][0], spectrum.rgb[1][0], spectrum.rgb[2][0]],
            [255, 0, 0]
        );
        assert_eq!(
            [
                spectrum.rgb[0][85],
                spectrum.rgb[1][85],
                spectrum.rgb[2][85]
            ],
            [0, 255, 0]
        );
        let cool = find("cool.lut").unwrap();
        assert_eq!(
            [cool.rgb[0][0], cool.rgb[1][0], cool.rgb[2][0]],
            [0, 255, 255]
        );
        assert_eq!(
            [cool.rgb[0][255], cool.rgb[1][255], cool.rgb[2][255]],
            [255, 0, 255]
        );
        assert!(find("Cool.lut").is_none());
        assert!(find("nothing.lut").is_none());
        // OMERO's whole list (39 tables), sorted by name.
        assert_eq!(all().len(), 39);
        assert_eq!(all()[0].name, "16_colors.lut");
        let fire = find("fire.lut").unwrap();
        assert_eq!([fire.rgb[0][0], fire.rgb[1][0], fire.rgb[2][0]], [0, 0, 0]);
        assert_eq!(
            [fire.rgb[0][255], fire.rgb[1][255], fire.rgb[2][255]],
            [255, 255, 255]
        );
        let hilo = find("hilo.lut").unwrap();
        assert_eq!(
            [
                hilo.rgb[0][0],
                hilo.rgb[2][0],
                hilo.rgb[0][255],
                hilo.rgb[2][255]
            ],
            [0, 255, 255, 0]
        );
        let red_hot = find("red_hot.lut").unwrap();
        assert_eq!(
            [red_hot.rgb[0][85], red_hot.rgb[1][85], red_hot.rgb[2][255]],
            [255, 0, 255]
        );
    }
}
