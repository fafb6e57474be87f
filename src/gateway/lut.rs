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
//! Every other name falls back to the channel's colour, as OMERO does for a table its
//! server does not have.

use std::sync::OnceLock;

/// A 256-entry colour table: the rendered (0–255) value of a channel picks an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lut {
    pub name: &'static str,
    /// Red, green and blue components, indexed by the rendered value.
    pub rgb: [[u8; 256]; 3],
}

impl Lut {
    fn from_fn(name: &'static str, entry: impl Fn(u8) -> [u8; 3]) -> Lut {
        let mut rgb = [[0u8; 256]; 3];
        for i in 0..=255u8 {
            let [r, g, b] = entry(i);
            rgb[0][i as usize] = r;
            rgb[1][i as usize] = g;
            rgb[2][i as usize] = b;
        }
        Lut { name, rgb }
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
        vec![
            Lut::from_fn("grays.lut", |i| [i, i, i]),
            Lut::from_fn("3-3-2_rgb.lut", |i| {
                [i & 0xe0, (i << 3) & 0xe0, (i << 6) & 0xc0]
            }),
            Lut::from_fn("spectrum.lut", |i| hue_to_rgb(i as f32 / 255.0)),
            Lut::from_fn("cool.lut", |i| [i, 255 - i, 255]),
        ]
    })
}

/// The table for a channel's `lut` name. As OMERO's server, the match is on the exact
/// name against lower-case file names, so "Cool.lut" is not found.
pub fn find(name: &str) -> Option<&'static Lut> {
    all().iter().find(|lut| lut.name == name)
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
        assert!(find("fire.lut").is_none());
    }
}
