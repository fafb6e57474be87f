//! OME-XML in a TIFF's ImageDescription: dimensions, order, channels and pixel sizes.

use super::tiff::{PlaneMap, parse_order};
use super::{SourceError, one_line};

/// What an OME-XML description says about the first image in it.
#[derive(Debug, Clone, PartialEq)]
pub struct OmeImage {
    pub name: Option<String>,
    pub size_x: u32,
    pub size_y: u32,
    pub size_z: u32,
    pub size_c: u32,
    pub size_t: u32,
    /// e.g. "XYZCT": after X and Y, the dimension that varies fastest comes first.
    pub dimension_order: String,
    /// OME's pixel type name ("uint8", "uint16", "float", …).
    pub pixel_type: String,
    /// One entry per channel (a channel with SamplesPerPixel=3 counts three times).
    pub channels: Vec<OmeChannel>,
    /// Channels as planes count them: the Channel elements, where an RGB channel
    /// (SamplesPerPixel=3) is one plane but three of SizeC.
    pub plane_channels: u32,
    /// Plane index (in DimensionOrder over SizeZ, `plane_channels`, SizeT) → IFD, when
    /// TiffData elements give the layout; `None` means IFD i holds plane i.
    pub plane_ifds: Option<Vec<Option<u32>>>,
    /// The file names TiffData elements refer to (`UUID FileName`). More than one means
    /// a multi-file image.
    pub files: Vec<String>,
    /// PhysicalSizeX/Y/Z converted to micrometres (OME's default unit is µm).
    pub physical_size_um: [Option<f64>; 3],
}

/// A length in `unit` as micrometres, for the units OME allows for pixel sizes that
/// microscopy uses; `None` for others (OMERO gives null when it cannot convert).
pub fn length_in_um(value: f64, unit: &str) -> Option<f64> {
    let factor = match unit {
        "µm" | "μm" | "um" | "micron" => 1.0,
        "nm" => 1e-3,
        "pm" => 1e-6,
        "Å" | "angstrom" => 1e-4,
        "mm" => 1e3,
        "cm" => 1e4,
        "m" => 1e6,
        _ => return None,
    };
    value.is_finite().then_some(value * factor)
}

#[derive(Debug, Clone, PartialEq)]
pub struct OmeChannel {
    pub name: Option<String>,
    pub color: Option<[u8; 3]>,
    pub emission_nm: Option<f64>,
}

/// OME stores a colour as one signed 32-bit integer holding RGBA, red in the top byte.
pub fn ome_color_rgb(value: i32) -> [u8; 3] {
    let bits = value as u32;
    [(bits >> 24) as u8, (bits >> 16) as u8, (bits >> 8) as u8]
}

/// Inverse of [`ome_color_rgb`], with an opaque alpha.
pub fn ome_color_value(rgb: [u8; 3]) -> i32 {
    (((rgb[0] as u32) << 24) | ((rgb[1] as u32) << 16) | ((rgb[2] as u32) << 8) | 0xff) as i32
}

/// The most planes (TIFF pages, or planes an OME-XML description declares) an image may
/// have: a guard against absurd counts of tiny planes that the pixel limit lets through.
pub(super) const MAX_OME_PLANES: u64 = 1 << 20;

/// The most channels (SizeC) an OME-XML description may declare: a channel list is
/// built for each before any file is read, so a few bytes of XML must not ask for
/// billions (real images have a few, hyperspectral ones some thousands).
const MAX_OME_CHANNELS: u32 = 1 << 16;

/// The most plane mappings all TiffData elements may make together: each real plane is
/// mapped once (at most `MAX_OME_PLANES`); overlapping elements are read as OMERO's
/// reader reads them, later ones winning, but `<TiffData/>` repeated (each maps every
/// plane) must not cost planes × elements.
const MAX_TIFF_DATA_MAPPINGS: u64 = 4 * MAX_OME_PLANES;

/// Parses an OME-XML ImageDescription (any schema version: elements are matched by
/// local name) for the first Image's Pixels.
pub fn parse_ome_xml(xml: &str) -> Result<OmeImage, SourceError> {
    let err = |m: &str| SourceError::OmeXml(one_line(m));
    let doc = roxmltree::Document::parse(xml).map_err(|e| SourceError::OmeXml(one_line(e)))?;
    let image = doc
        .descendants()
        .find(|n| n.tag_name().name() == "Image")
        .ok_or_else(|| err("no Image element"))?;
    let pixels = image
        .children()
        .find(|n| n.tag_name().name() == "Pixels")
        .ok_or_else(|| err("no Pixels element in the Image"))?;
    let size = |name: &str| -> Result<u32, SourceError> {
        let raw = pixels
            .attribute(name)
            .ok_or_else(|| err(&format!("Pixels has no {name}")))?;
        match raw.trim().parse::<u32>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(err(&format!(
                "Pixels {name}=\"{raw}\" is not a positive integer"
            ))),
        }
    };
    let (size_x, size_y) = (size("SizeX")?, size("SizeY")?);
    let (size_z, size_c, size_t) = (size("SizeZ")?, size("SizeC")?, size("SizeT")?);
    if size_c > MAX_OME_CHANNELS {
        return Err(err(&format!(
            "Pixels SizeC=\"{size_c}\": more than {MAX_OME_CHANNELS} channels"
        )));
    }
    let dimension_order = pixels.attribute("DimensionOrder").unwrap_or("XYZCT");
    if parse_order(dimension_order).is_none() {
        return Err(err(&format!(
            "unknown DimensionOrder \"{dimension_order}\""
        )));
    }
    let pixel_type = pixels
        .attribute("Type")
        .ok_or_else(|| err("Pixels has no Type"))?
        .to_string();

    let mut channels = Vec::new();
    let (mut channel_elements, mut channel_samples) = (0u32, 0u32);
    for ch in pixels
        .children()
        .filter(|n| n.tag_name().name() == "Channel")
    {
        channel_elements = channel_elements.saturating_add(1);
        let samples = ch
            .attribute("SamplesPerPixel")
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(1)
            .clamp(1, 4);
        let entry = OmeChannel {
            name: ch.attribute("Name").map(str::to_string),
            color: ch
                .attribute("Color")
                .and_then(|c| c.trim().parse::<i64>().ok())
                // Writers use both the signed and the unsigned spelling of the same bits.
                .map(|c| ome_color_rgb(c as u32 as i32)),
            emission_nm: ch
                .attribute("EmissionWavelength")
                .and_then(|w| w.trim().parse::<f64>().ok())
                .filter(|w| w.is_finite() && *w > 0.0),
        };
        channel_samples = channel_samples.saturating_add(samples);
        // Never more entries than SizeC, however many Channel elements there are.
        let room = (size_c as usize).saturating_sub(channels.len());
        channels.extend(std::iter::repeat_n(entry, (samples as usize).min(room)));
    }
    channels.truncate(size_c as usize);
    while channels.len() < size_c as usize {
        channels.push(OmeChannel {
            name: None,
            color: None,
            emission_nm: None,
        });
    }

    // An RGB channel (SamplesPerPixel=3) is three of SizeC but one plane: planes are
    // counted per Channel element when those account for every sample.
    let plane_channels = if channel_elements > 0 && channel_samples == size_c {
        channel_elements
    } else {
        size_c
    };
    let planes = super::product(&[size_z, plane_channels, size_t]);
    let tiff_data: Vec<_> = pixels
        .children()
        .filter(|n| n.tag_name().name() == "TiffData")
        .collect();
    let mut files: Vec<String> = Vec::new();
    let plane_ifds = if tiff_data.is_empty() {
        None
    } else {
        if planes > MAX_OME_PLANES {
            return Err(err(&format!("{planes} planes declared; too many")));
        }
        let mut table = vec![None; planes as usize];
        let mut mappings = 0u64;
        let order = PlaneMap {
            order: parse_order(dimension_order).expect("checked above"),
            size_z,
            page_channels: plane_channels,
            size_t,
            ifds: None,
        };
        for td in tiff_data {
            let num = |name: &str| -> Result<Option<u32>, SourceError> {
                match td.attribute(name) {
                    None => Ok(None),
                    Some(v) => v
                        .trim()
                        .parse::<u32>()
                        .map(Some)
                        .map_err(|_| err(&format!("TiffData {name}=\"{v}\" is not a number"))),
                }
            };
            // Bio-Formats names the file each plane is in, even in single-file images.
            if let Some(file) = td
                .children()
                .find(|n| n.tag_name().name() == "UUID")
                .and_then(|u| u.attribute("FileName"))
                && !files.iter().any(|f| f == file)
            {
                files.push(file.to_string());
            }
            let ifd = num("IFD")?;
            let first = [num("FirstZ")?, num("FirstC")?, num("FirstT")?];
            let explicit = ifd.is_some() || first.iter().any(Option::is_some);
            let count = match num("PlaneCount")? {
                Some(n) => n as u64,
                None if explicit => 1,
                None => planes,
            };
            let [fz, fc, ft] = first.map(|v| v.unwrap_or(0));
            if fz >= size_z || fc >= plane_channels || ft >= size_t {
                return Err(err("TiffData refers to a plane outside SizeZ/SizeC/SizeT"));
            }
            let start = order.plane_index(fz, fc, ft);
            for k in 0..count {
                let index = start + k;
                if index >= planes {
                    return Err(err("TiffData PlaneCount runs past the last plane"));
                }
                mappings += 1;
                if mappings > MAX_TIFF_DATA_MAPPINGS {
                    return Err(err(&format!(
                        "TiffData elements map more than {MAX_TIFF_DATA_MAPPINGS} planes in all"
                    )));
                }
                let ifd = (ifd.unwrap_or(0) as u64 + k)
                    .try_into()
                    .map_err(|_| err("TiffData IFD + PlaneCount runs past the last IFD"))?;
                table[index as usize] = Some(ifd);
            }
        }
        Some(table)
    };

    let physical = |axis: &str| {
        let value: f64 = pixels
            .attribute(format!("PhysicalSize{axis}").as_str())?
            .trim()
            .parse()
            .ok()?;
        let unit = pixels
            .attribute(format!("PhysicalSize{axis}Unit").as_str())
            .unwrap_or("µm");
        length_in_um(value, unit.trim())
    };
    Ok(OmeImage {
        physical_size_um: [physical("X"), physical("Y"), physical("Z")],
        name: image.attribute("Name").map(str::to_string),
        size_x,
        size_y,
        size_z,
        size_c,
        size_t,
        dimension_order: dimension_order.to_string(),
        pixel_type,
        channels,
        plane_channels,
        plane_ifds,
        files,
    })
}
