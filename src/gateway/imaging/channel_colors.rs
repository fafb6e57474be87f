//! The colour a channel gets when its file gives none: OMERO's rule (the server's
//! `ColorsFactory`) as the rendering defaults apply it. A wavelength decides the band:
//! below 500 nm blue, below 560 nm green, else red. The emission wavelength counts, and
//! where the file has none, the wavelength a well-known dye or protein in the channel's
//! name stands for ("DAPI", "GFP", "mCherry"…), which is how microscopists name them.
//! Without either: red, green, blue by index (modulo 3), as OMERO does, and white when other
//! channels have a wavelength (so the unknown one does not pose as a known band).
//! A lone channel without a colour in its file is grey (128, 128, 128), wavelength or
//! not: OMERO's importer gives a single-channel image that colour
//! (`ChannelProcessor.setSingleChannel`, `ColorsFactory.newGreyColor`, omero-blitz).

use super::source::{ChannelMeta, ImageMeta};

pub const RED: [u8; 3] = [255, 0, 0];
pub const GREEN: [u8; 3] = [0, 255, 0];
pub const BLUE: [u8; 3] = [0, 0, 255];
pub const WHITE: [u8; 3] = [255, 255, 255];
/// A lone channel's colour (OMERO's `newGreyColor`).
pub const GREY: [u8; 3] = [128, 128, 128];

/// Names microscopists give channels, lower case, and the emission (nm) they stand
/// for. Longer names first where one contains another ("cy5.5" before "cy5").
const NAME_HINTS: &[(&str, f64)] = &[
    ("dapi", 461.0),
    ("hoechst", 461.0),
    ("bfp", 450.0),
    ("cfp", 475.0),
    ("alexa 405", 421.0),
    ("alexa405", 421.0),
    ("egfp", 507.0),
    ("gfp", 510.0),
    ("fitc", 519.0),
    ("alexa 488", 519.0),
    ("alexa488", 519.0),
    ("af488", 519.0),
    ("yfp", 527.0),
    ("cy3", 570.0),
    ("tritc", 572.0),
    ("alexa 555", 565.0),
    ("alexa555", 565.0),
    ("alexa 568", 603.0),
    ("alexa568", 603.0),
    ("rfp", 584.0),
    ("mcherry", 610.0),
    ("texas red", 615.0),
    ("alexa 594", 617.0),
    ("alexa594", 617.0),
    ("cy5.5", 694.0),
    ("cy5", 670.0),
    ("alexa 647", 665.0),
    ("alexa647", 665.0),
    ("af647", 665.0),
];

/// The wavelength a channel name hints at, if it names a known dye or protein.
pub fn name_hint_nm(name: &str) -> Option<f64> {
    let name = name.to_lowercase();
    NAME_HINTS
        .iter()
        .find(|(hint, _)| name.contains(hint))
        .map(|&(_, nm)| nm)
}

/// The wavelength that decides a channel's colour: its emission, else its name's hint.
fn wavelength(channel: &ChannelMeta) -> Option<f64> {
    channel
        .emission_nm
        .or_else(|| channel.name.as_deref().and_then(name_hint_nm))
}

fn band(nm: f64) -> [u8; 3] {
    if nm < 500.0 {
        BLUE
    } else if nm < 560.0 {
        GREEN
    } else {
        RED
    }
}

/// `RRGGBB`, upper-case hex, as OMERO's `getHtml` writes a colour (imgData, the
/// saved settings' `c=` and the viewers read it back with `render_query`).
pub fn html_color(rgb: [u8; 3]) -> String {
    format!("{:02X}{:02X}{:02X}", rgb[0], rgb[1], rgb[2])
}

/// Channel `index`'s default colour in `meta` (see the module's rule).
pub fn default_color(meta: &ImageMeta, index: usize) -> [u8; 3] {
    let channel = &meta.channels[index];
    if let Some(color) = channel.color {
        return color;
    }
    // The samples of an RGB file are red, green and blue whatever else is known.
    if meta.rgb {
        return [RED, GREEN, BLUE][index.min(2)];
    }
    if meta.channels.len() == 1 {
        return GREY;
    }
    if let Some(nm) = wavelength(channel) {
        return band(nm);
    }
    if meta.channels.iter().any(|c| wavelength(c).is_some()) {
        return WHITE;
    }
    [RED, GREEN, BLUE][index % 3]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::imaging::source::PixelType;

    #[test]
    fn html_colors_are_six_upper_case_hex_digits() {
        assert_eq!(html_color([255, 0, 0]), "FF0000");
        assert_eq!(html_color([10, 171, 0]), "0AAB00");
        assert_eq!(html_color(GREY), "808080");
    }

    fn channel(name: Option<&str>, emission_nm: Option<f64>) -> ChannelMeta {
        ChannelMeta {
            name: name.map(str::to_string),
            color: None,
            emission_nm,
            min: 0,
            max: 100,
            lut: None,
            display_range: None,
        }
    }

    fn image(channels: Vec<ChannelMeta>, rgb: bool) -> ImageMeta {
        ImageMeta {
            name: "x".into(),
            size_x: 1,
            size_y: 1,
            size_z: 1,
            size_c: channels.len() as u32,
            size_t: 1,
            pixel_type: PixelType::U8,
            channels,
            physical_size_um: [None; 3],
            rgb,
        }
    }

    fn colors(meta: &ImageMeta) -> Vec<[u8; 3]> {
        (0..meta.channels.len())
            .map(|i| default_color(meta, i))
            .collect()
    }

    #[test]
    fn names_hint_at_wavelengths_and_wavelengths_pick_the_band() {
        let meta = image(
            vec![
                channel(Some("GFP"), None),
                channel(Some("DAPI"), None),
                channel(Some("ch3 mCherry"), None),
                channel(Some("Alexa 647 phalloidin"), None),
            ],
            false,
        );
        assert_eq!(colors(&meta), [GREEN, BLUE, RED, RED]);
        // The emission wavelength wins over a name.
        let meta = image(
            vec![channel(Some("GFP"), Some(450.0)), channel(None, None)],
            false,
        );
        assert_eq!(colors(&meta), [BLUE, WHITE]);
        assert_eq!(name_hint_nm("Cy5.5"), Some(694.0));
        assert_eq!(name_hint_nm("brightfield"), None);
    }

    #[test]
    fn without_hints_red_green_blue_by_index() {
        let three = image(vec![channel(None, None); 3], false);
        assert_eq!(colors(&three), [RED, GREEN, BLUE]);
        let five = image(vec![channel(None, None); 5], false);
        assert_eq!(colors(&five), [RED, GREEN, BLUE, RED, GREEN]);
        // A lone channel is grey, whatever its name or wavelength says (OMERO's
        // importer).
        let lone = image(vec![channel(Some("brightfield"), None)], false);
        assert_eq!(colors(&lone), [GREY]);
        let lone_gfp = image(vec![channel(Some("GFP"), Some(510.0))], false);
        assert_eq!(colors(&lone_gfp), [GREY]);
        // An RGB file's samples are red, green, blue even if a name hints otherwise.
        let rgb = image(vec![channel(Some("GFP"), None); 3], true);
        assert_eq!(colors(&rgb), [RED, GREEN, BLUE]);
        // A colour in the file wins over everything.
        let mut stored = image(vec![channel(Some("GFP"), None)], false);
        stored.channels[0].color = Some([1, 2, 3]);
        assert_eq!(colors(&stored), [[1, 2, 3]]);
    }
}
