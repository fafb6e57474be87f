//! OMERO's rendering of a plane to 8-bit RGB or grey (JPEG encoding: `encode`).
//!
//! The settings follow OMERO's defaults (`RenderSettings::defaults`) and its query
//! parameters (`c`, `m`, `p`, `q`, `maps`, `z`, `t`, `region`, `tile`, read by
//! `gateway::query::render_query`). The maths follow OMERO's renderer: a linear window maps each channel to 0–255 (rounding as
//! its quantizer does), an optional reverse map inverts it, and in the colour model every
//! active channel adds `value × colour / 255` into R, G and B, clamped at 255. In the
//! greyscale model the first active channel is drawn in grey.
//!
//! The pipeline is ordered for speed: read only the region, project, resize while still
//! 16-bit, and only then apply the window to the (small) result, then encode with
//! libjpeg-turbo (`encode`). A native-size render reads a band of rows of every channel
//! at a time and mixes it straight into the encoder's input, holding no whole planes
//! (`ImageSource::read_row_bands`). Windowing and mixing are in `mix`; for a JPEG
//! (`render_jpeg`), a default colour render whose sides are whole JPEG blocks is mixed
//! into the encoder's Y, Cb and Cr planes (`ycc`) rather than RGB.

use std::cell::RefCell;

use fast_image_resize as fr;

use super::sampling::Sampling;
pub use super::source::Region;
use super::source::{ImageMeta, ImageSource, Plane, SourceError, in_row_bands};

mod mix;
pub(crate) mod ycc;

use mix::{Mixed, Mixer};
use ycc::YccPlanes;

/// OMERO's JPEG quality when the request has no `q`.
pub const DEFAULT_QUALITY: f32 = 0.85;
/// Tile edge when `tile=` gives none.
pub const DEFAULT_TILE_SIZE: u32 = 512;
/// OMERO's `omero.pixeldata.max_tile_length` default: larger tile edges are cut to this.
pub const MAX_TILE_SIZE: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Greyscale,
    Color,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    Normal,
    IntMax,
    IntMean,
    IntSum,
}

impl Projection {
    pub(crate) fn parse(name: &str) -> Option<Projection> {
        Some(match name {
            "normal" => Projection::Normal,
            "intmax" => Projection::IntMax,
            "intmean" => Projection::IntMean,
            "intsum" => Projection::IntSum,
            _ => return None,
        })
    }
}

/// One channel's rendering: whether it is drawn, its input window, colour and whether
/// its intensities are reversed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSettings {
    pub active: bool,
    pub start: f64,
    pub end: f64,
    pub color: [u8; 3],
    /// The colour's alpha (`RRGGBBAA`): below 255 it dims the channel, as OMERO's
    /// renderer premultiplies it.
    pub alpha: u8,
    /// A lookup table name (`cool.lut`) drawn instead of the colour when the gateway
    /// has that table (see `lut`).
    pub lut: Option<String>,
    /// The file's own table (an ImageJ LUT), drawn instead of the colour until a
    /// request sets a colour or a named table.
    pub file_lut: Option<Box<super::imagej_luts::Table>>,
    pub inverted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenderSettings {
    /// One entry per channel of the image.
    pub channels: Vec<ChannelSettings>,
    pub model: Model,
    pub projection: Projection,
    /// Inclusive Z range of a projection, already clipped to the image; `None` means
    /// every Z. A range that ends before it starts cannot be rendered (OMERO: 404).
    pub projection_range: Option<(i64, i64)>,
    /// `ia=1`: OMERO's inverted axis, under which omero-py reports SizeT as SizeZ.
    pub inverted_axis: bool,
    pub z: u32,
    pub t: u32,
    /// JPEG quality, 0–1.
    pub quality: f32,
}

impl RenderSettings {
    /// OMERO's `resetDefaults`: the colour model for 2–7 channels, else greyscale; the
    /// first three channels active; colours by `channel_colors::default_color`; the
    /// window is the channel's global min/max (the pixel type's range when that is
    /// empty, and for an RGB file), or the display range the file keeps (ImageJ's); Z in the middle, T = 0, quality 0.85.
    pub fn defaults(meta: &ImageMeta) -> RenderSettings {
        let channels = meta
            .channels
            .iter()
            .enumerate()
            .map(|(i, ch)| {
                let color = super::channel_colors::default_color(meta, i);
                // An 8-bit RGB file (a photo, a stained section) is shown as the file
                // is: windowing each sample to its own min/max would shift its colours.
                let (start, end) = if meta.rgb {
                    (0.0, meta.pixel_type.max_value() as f64)
                } else if let Some(range) = ch.display_range {
                    // The file's own display range (ImageJ's), as ImageJ opens it.
                    range
                } else if ch.min < ch.max {
                    (ch.min as f64, ch.max as f64)
                } else {
                    (0.0, meta.pixel_type.max_value() as f64)
                };
                ChannelSettings {
                    active: i < 3,
                    start,
                    end,
                    color,
                    alpha: 255,
                    lut: None,
                    file_lut: ch.lut_table().map(Box::new),
                    inverted: false,
                }
            })
            .collect();
        RenderSettings {
            channels,
            model: if (2..=7).contains(&meta.size_c) {
                Model::Color
            } else {
                Model::Greyscale
            },
            projection: Projection::Normal,
            projection_range: None,
            inverted_axis: false,
            z: meta.size_z / 2,
            t: 0,
            quality: DEFAULT_QUALITY,
        }
    }
}

/// What to render: the settings and, for `render_image_region`, the region.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderRequest {
    pub settings: RenderSettings,
    pub region: Option<Region>,
    /// Full-resolution pixels per output pixel along each axis for a native-size
    /// render: 2^level of a `tile` at a lower resolution level (see
    /// [`resolution_levels`]), else 1.
    pub downsample: u32,
}

/// Images whose longest side is above this have lower resolution levels, each half
/// the one before, down to the first at most this size: computed from full
/// resolution on request (files carry no pyramids), so that a viewer between fit and
/// 100 % loads tiles of the level it shows instead of magnifying an overview.
pub const LEVELS_ABOVE: u32 = 1024;

/// How many resolution levels `tile=` accepts for this image (level 0 is full
/// resolution): 1 up to [`LEVELS_ABOVE`], then one more per halving.
pub fn resolution_levels(meta: &ImageMeta) -> u32 {
    let mut side = meta.size_x.max(meta.size_y);
    let mut levels = 1;
    while side > LEVELS_ABOVE {
        side = side.div_ceil(2);
        levels += 1;
    }
    levels
}

impl RenderRequest {
    /// The image's default rendering of the whole plane.
    pub fn defaults(meta: &ImageMeta) -> RenderRequest {
        RenderRequest {
            settings: RenderSettings::defaults(meta),
            region: None,
            downsample: 1,
        }
    }

    /// Applies the `<z>/<t>` of a URL path (0-based); `None` keeps the query's or the
    /// default plane.
    pub fn set_plane(
        &mut self,
        z: Option<u32>,
        t: Option<u32>,
        meta: &ImageMeta,
    ) -> Result<(), BadRequest> {
        if let Some(z) = z {
            check_index("z", z, meta.size_z)?;
            self.settings.z = z;
        }
        if let Some(t) = t {
            check_index("t", t, meta.size_t)?;
            self.settings.t = t;
        }
        Ok(())
    }
}

pub(crate) fn check_index(what: &str, value: u32, size: u32) -> Result<(), BadRequest> {
    if value < size {
        Ok(())
    } else {
        Err(BadRequest(format!(
            "{what}={value} is out of range: the image has {size} (0 to {})",
            size.saturating_sub(1)
        )))
    }
}

/// A 400 answer, with OMERO's wording where OMERO has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

// ---------------------------------------------------------------------------------------
// Rendering

/// The size of the rendered image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputSize {
    /// One output pixel per region pixel.
    Native,
    /// Scaled (up or down) to fit inside the box with the aspect ratio kept: a
    /// thumbnail's longest side is the box's.
    Fit { max_w: u32, max_h: u32 },
    /// Exactly this size, aspect ratio not kept (`render_thumbnail/<id>/<w>/<h>/`).
    Exact { width: u32, height: u32 },
}

/// Bounds on one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// Largest output (width × height) rendered.
    pub max_output_pixels: u64,
    /// Most active channels rendered at once.
    pub max_channels: u32,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits {
            max_output_pixels: 8192 * 8192,
            max_channels: 16,
        }
    }
}

/// 8-bit pixels, row-major: grey (`channels == 1`) or interleaved RGB (`channels == 3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub pixels: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The request does not fit the image (a client error).
    #[error("{0}")]
    Invalid(String),
    /// The request is beyond a bound of [`RenderLimits`] (a client error).
    #[error("{0}")]
    TooLarge(String),
    /// Settings OMERO's renderer refuses, which its gateway answers with a 404 (for
    /// example a projection range that ends before it starts).
    #[error("{0}")]
    Unrenderable(String),
    #[error("resizing failed: {0}")]
    Resize(String),
    #[error("JPEG encoding failed: {0}")]
    Encode(String),
}

fn output_size(region: Region, out: OutputSize) -> Result<(u32, u32), RenderError> {
    match out {
        OutputSize::Native => Ok((region.width, region.height)),
        OutputSize::Exact { width, height } if width > 0 && height > 0 => Ok((width, height)),
        OutputSize::Fit { max_w, max_h } if max_w > 0 && max_h > 0 => {
            let scale =
                (max_w as f64 / region.width as f64).min(max_h as f64 / region.height as f64);
            let w = (region.width as f64 * scale)
                .round()
                .clamp(1.0, max_w as f64);
            let h = (region.height as f64 * scale)
                .round()
                .clamp(1.0, max_h as f64);
            Ok((w as u32, h as u32))
        }
        _ => Err(RenderError::Invalid("output size must not be zero".into())),
    }
}

/// Renders `req` from `source` to 8-bit grey or RGB.
pub fn render_rgb(
    source: &dyn ImageSource,
    req: &RenderRequest,
    out: OutputSize,
    limits: &RenderLimits,
) -> Result<Rendered, RenderError> {
    match render(source, req, out, limits, false)? {
        Rendering::Pixels(image) => Ok(image),
        Rendering::Ycc(_) => unreachable!("planes only when asked for"),
    }
}

/// Renders `req` from `source` and encodes it as a JPEG at the request's quality: the
/// same bytes as [`super::encode::encode_jpeg`] of [`render_rgb`]'s image, but a
/// default colour render whose sides are whole JPEG blocks goes to the encoder as Y, Cb
/// and Cr planes converted as its rows are mixed (a whole 2048² plane: no 12 MiB RGB
/// plane written and read again, and no colour conversion in the encoder).
pub fn render_jpeg(
    source: &dyn ImageSource,
    req: &RenderRequest,
    out: OutputSize,
    limits: &RenderLimits,
) -> Result<Vec<u8>, RenderError> {
    let quality = req.settings.quality;
    match render(source, req, out, limits, true)? {
        Rendering::Pixels(image) => super::encode::encode_jpeg(&image, quality),
        Rendering::Ycc(planes) => super::encode::encode_jpeg_ycc(planes, quality),
    }
}

/// A render's output: pixels, or the JPEG encoder's planes.
enum Rendering {
    Pixels(Rendered),
    Ycc(YccPlanes),
}

fn render(
    source: &dyn ImageSource,
    req: &RenderRequest,
    out: OutputSize,
    limits: &RenderLimits,
    for_jpeg: bool,
) -> Result<Rendering, RenderError> {
    let meta = source.meta();
    let s = &req.settings;
    if s.channels.len() != meta.size_c as usize {
        return Err(RenderError::Invalid(format!(
            "settings for {} channels, but the image has {}",
            s.channels.len(),
            meta.size_c
        )));
    }
    if s.t >= meta.size_t || (s.projection == Projection::Normal && s.z >= meta.size_z) {
        return Err(RenderError::Invalid(format!(
            "plane z={} t={} is outside the image (SizeZ={}, SizeT={})",
            s.z, s.t, meta.size_z, meta.size_t
        )));
    }
    let region = req.region.unwrap_or(meta.full_region());
    if region.width == 0 || region.height == 0 || !region.fits(meta.size_x, meta.size_y) {
        return Err(RenderError::Invalid(format!(
            "region {},{},{},{} is not inside the {}x{} image",
            region.x, region.y, region.width, region.height, meta.size_x, meta.size_y
        )));
    }
    let (width, height) = match out {
        // A tile of a lower resolution level: each output pixel is the mean of a
        // square of full-resolution ones (the resize below is area-averaging).
        OutputSize::Native if req.downsample > 1 => (
            region.width.div_ceil(req.downsample),
            region.height.div_ceil(req.downsample),
        ),
        _ => output_size(region, out)?,
    };
    let out_pixels = width as u64 * height as u64;
    if out_pixels > limits.max_output_pixels {
        return Err(RenderError::TooLarge(format!(
            "output of {width}x{height} pixels is larger than the limit of {}",
            limits.max_output_pixels
        )));
    }

    let mut active: Vec<u32> = (0..meta.size_c)
        .filter(|&c| s.channels[c as usize].active)
        .collect();
    if s.model == Model::Greyscale {
        active.truncate(1);
    }
    if active.len() > limits.max_channels as usize {
        return Err(RenderError::TooLarge(format!(
            "{} active channels; at most {} are rendered at once",
            active.len(),
            limits.max_channels
        )));
    }
    let out_channels: u8 = if s.model == Model::Greyscale { 1 } else { 3 };
    if active.is_empty() {
        return Ok(Rendering::Pixels(Rendered {
            width,
            height,
            channels: out_channels,
            pixels: vec![0; out_pixels as usize * out_channels as usize],
        }));
    }

    let mut mixer = Mixer::new(
        &active,
        &s.channels,
        out_channels == 1,
        width as usize,
        out_pixels as usize,
    );
    if for_jpeg && out_channels == 3 {
        let chroma = super::encode::chroma_at(s.quality);
        if let Some(planes) = YccPlanes::new(width as usize, height as usize, chroma) {
            mixer.mix_to_ycc(planes);
        }
    }
    let mut mix = |band: &[&[u16]]| mixer.mix_band(band);
    let band_rows = (BAND_PIXELS / width).max(1);
    // Whole planes still to resize and mix; none when they were mixed as they were read.
    let planes = match s.projection {
        Projection::Normal => match supersampled_size(region, width, height) {
            // Only the rows and columns SuperSampling's first pass keeps are read.
            Some((sw, sh)) => {
                let sampling = Sampling::nearest(region.width, region.height, sw, sh);
                Some(source.read_planes_sampled(s.z, &active, s.t, region, &sampling)?)
            }
            // Native size: the source's rows are mixed a band at a time as they are
            // read, with no whole planes in between.
            None if (width, height) == (region.width, region.height) => {
                source.read_row_bands(s.z, &active, s.t, region, band_rows, &mut mix)?;
                None
            }
            None => Some(source.read_planes(s.z, &active, s.t, Some(region))?),
        },
        p => {
            let (z0, z1) = s.projection_range.unwrap_or((0, meta.size_z as i64 - 1));
            if z0 > z1 || z0 < 0 || z1 >= meta.size_z as i64 {
                return Err(RenderError::Unrenderable(format!(
                    "projection range {z0}:{z1} is not within Z 0 to {}",
                    meta.size_z - 1
                )));
            }
            Some(project(
                source,
                &active,
                s.t,
                region,
                p,
                (z0 as u32, z1 as u32),
            )?)
        }
    };
    if let Some(planes) = planes {
        let planes = planes
            .into_iter()
            .map(|plane| resize(plane, width, height))
            .collect::<Result<Vec<_>, _>>()?;
        in_row_bands(&planes, band_rows, &mut mix);
    }
    Ok(match mixer.into_output() {
        Mixed::Pixels(pixels) => Rendering::Pixels(Rendered {
            width,
            height,
            channels: out_channels,
            pixels,
        }),
        Mixed::Ycc(planes) => Rendering::Ycc(planes),
    })
}

/// Output pixels mixed per band of rows: 256 KiB of each channel's 16-bit rows (64 rows
/// of a 2048-wide plane), so that a band of every channel and its RGB output stay in
/// the L2 cache; larger than 16 rows (64 KiB) for fewer reads, which measured faster.
const BAND_PIXELS: u32 = 1 << 17;

/// Z projection of the active channels over `z0..=z1`, within `region`. Sums clamp at
/// the pixel type's maximum and means truncate, as OMERO's projection service does.
fn project(
    source: &dyn ImageSource,
    active: &[u32],
    t: u32,
    region: Region,
    projection: Projection,
    (z0, z1): (u32, u32),
) -> Result<Vec<Plane>, RenderError> {
    let n = region.pixel_count() as usize;
    let type_max = source.meta().pixel_type.max_value() as u32;
    let mut acc: Vec<Vec<u32>> = vec![vec![0; n]; active.len()];
    for z in z0..=z1 {
        let planes = source.read_planes(z, active, t, Some(region))?;
        for (sums, plane) in acc.iter_mut().zip(&planes) {
            if projection == Projection::IntMax {
                for (a, &v) in sums.iter_mut().zip(&plane.data) {
                    *a = (*a).max(v as u32);
                }
            } else {
                for (a, &v) in sums.iter_mut().zip(&plane.data) {
                    *a += v as u32;
                }
            }
        }
    }
    let count = z1 - z0 + 1;
    Ok(acc
        .into_iter()
        .map(|sums| Plane {
            width: region.width,
            height: region.height,
            data: sums
                .into_iter()
                .map(|v| match projection {
                    Projection::IntMean => (v / count) as u16,
                    _ => v.min(type_max) as u16,
                })
                .collect(),
        })
        .collect())
}

thread_local! {
    // A resizer keeps scratch buffers between calls; one per thread avoids reallocating.
    static RESIZER: RefCell<fr::Resizer> = RefCell::new(fr::Resizer::new());
}

/// How much SuperSampling over-samples before its final filter: the nearest-neighbour
/// first pass reads `SUPERSAMPLE`² source pixels per output pixel.
const SUPERSAMPLE: u8 = 4;

/// The size SuperSampling first samples a `region` to on its way to `width`×`height`,
/// or `None` when `resize` takes it there in one step. It mirrors fast_image_resize's
/// rule (two steps only when the sample would still be over 1.2× `SUPERSAMPLE` times
/// the output), so resizing the sample gives exactly what resizing the whole did.
fn supersampled_size(region: Region, width: u32, height: u32) -> Option<(u32, u32)> {
    let (w, h) = (region.width as f64, region.height as f64);
    let shrink = (w / width as f64).min(h / height as f64);
    let factor = shrink / SUPERSAMPLE as f64;
    (shrink >= 2.0 && factor > 1.2)
        .then(|| ((w / factor).round() as u32, (h / factor).round() as u32))
}

/// Resizes a 16-bit plane (before windowing, so precision is kept and the LUT runs on the
/// small result).
fn resize(plane: Plane, width: u32, height: u32) -> Result<Plane, RenderError> {
    if (plane.width, plane.height) == (width, height) {
        return Ok(plane);
    }
    let shrink = (plane.width as f64 / width as f64).min(plane.height as f64 / height as f64);
    let two_steps = shrink >= 2.0 && shrink / SUPERSAMPLE as f64 > 1.2;
    if shrink >= 1.0 && !two_steps {
        // One box convolution, columns then rows (a thumbnail's sample, or a plane
        // under twice its output): axes shrunk by a power of two are averaged here.
        return box_convolution(plane, width, height);
    }
    fast_image_resize(&plane, width, height, shrink)
}

/// fast_image_resize's box convolution of `plane` to `width`×`height` (no axis
/// growing), an axis at a time, as it does it: each axis shrunk by a power of two by
/// `Sampling`'s exact equivalent, any other by fast_image_resize itself.
fn box_convolution(plane: Plane, width: u32, height: u32) -> Result<Plane, RenderError> {
    let plane = if plane.width == width {
        plane
    } else if let Some(narrowed) = super::sampling::box_columns(&plane, width) {
        narrowed
    } else {
        fast_image_resize(&plane, width, plane.height, 1.0)?
    };
    if plane.height == height {
        return Ok(plane);
    }
    match super::sampling::box_rows(&plane, height) {
        Some(done) => Ok(done),
        None => fast_image_resize(&plane, width, height, 1.0),
    }
}

/// fast_image_resize's resize, its algorithm chosen by `shrink` (the smaller of the
/// two axes' reductions).
fn fast_image_resize(
    plane: &Plane,
    width: u32,
    height: u32,
    shrink: f64,
) -> Result<Plane, RenderError> {
    let src = fr::images::TypedImageRef::<fr::pixels::U16>::new(
        plane.width,
        plane.height,
        bytemuck::cast_slice(&plane.data),
    )
    .map_err(|e| RenderError::Resize(e.to_string()))?;
    let mut dst = fr::images::TypedImage::<fr::pixels::U16>::new(width, height);
    let algorithm = if shrink >= 2.0 {
        // Large reductions (thumbnails): nearest-neighbour to a few times the target,
        // then a box filter — close to a full box filter's look at a tenth of its cost.
        fr::ResizeAlg::SuperSampling(fr::FilterType::Box, SUPERSAMPLE)
    } else if shrink >= 1.0 {
        fr::ResizeAlg::Convolution(fr::FilterType::Box)
    } else {
        fr::ResizeAlg::Convolution(fr::FilterType::Bilinear)
    };
    let options = fr::ResizeOptions::new().resize_alg(algorithm);
    RESIZER
        .with(|r| r.borrow_mut().resize_typed(&src, &mut dst, &options))
        .map_err(|e| RenderError::Resize(e.to_string()))?;
    Ok(Plane {
        width,
        height,
        data: bytemuck::cast_slice(dst.pixels()).to_vec(),
    })
}

/// Whether this processor has AVX2, for the loops of `mix` and `ycc` that have an
/// AVX2 version (the answer is cached by the standard library).
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

#[cfg(test)]
mod tests {
    use super::*;
    use mix::Window;

    /// `render_jpeg` gives the bytes `encode_jpeg` gives of `render_rgb`'s image: by way
    /// of Y, Cb and Cr planes for a default colour render whose sides are whole JPEG
    /// blocks (when windows are computed: small images, or AVX2), of RGB for anything else (sides
    /// of 8 at 4:2:0, 50 px, a swapped colour, greyscale), at 4:2:0 and 4:4:4.
    #[test]
    fn jpegs_through_colour_planes_are_the_bytes_of_the_rgb_encode() {
        use crate::gateway::imaging::encode::encode_jpeg;
        use crate::gateway::imaging::source::{ChannelMeta, ImageMeta, PixelType};
        /// Three 16-bit channels of noise over gradients, every plane made on request.
        struct Synthetic(ImageMeta);
        impl ImageSource for Synthetic {
            fn meta(&self) -> &ImageMeta {
                &self.0
            }
            fn plane(&self, _z: u32, c: u32, _t: u32) -> Result<Plane, SourceError> {
                let (w, h) = (self.0.size_x, self.0.size_y);
                let mut seed = 0x9e37_79b9_u32 ^ (c + 1).wrapping_mul(0x85eb_ca6b);
                let data = (0..w * h)
                    .map(|i| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        let (x, y) = (i % w, i / w);
                        (x * 700 + y * 300 * (c + 1) + seed % 6000) as u16
                    })
                    .collect();
                Ok(Plane {
                    width: w,
                    height: h,
                    data,
                })
            }
        }
        let mut planes_used = 0;
        for size in [64u32, 40, 50] {
            let channel = |max: u16| ChannelMeta {
                name: None,
                color: None,
                emission_nm: None,
                min: 0,
                max,
                lut: None,
                display_range: None,
            };
            let source = Synthetic(ImageMeta {
                name: "synthetic".into(),
                size_x: size,
                size_y: size,
                size_z: 1,
                size_c: 3,
                size_t: 1,
                pixel_type: PixelType::U16,
                channels: vec![channel(50_000), channel(60_000), channel(65_535)],
                physical_size_um: [None; 3],
                rgb: false,
            });
            let limits = RenderLimits::default();
            for (quality, region, tweak) in [
                (0.85, None, ""),
                (0.95, None, ""),
                (
                    0.85,
                    Some(Region {
                        x: 8,
                        y: 16,
                        width: 32,
                        height: 16,
                    }),
                    "",
                ),
                (0.85, None, "swap"),
                (0.95, None, "grey"),
            ] {
                let mut req = RenderRequest::defaults(source.meta());
                req.settings.quality = quality;
                req.region = region;
                match tweak {
                    "swap" => req.settings.channels[0].color = [0, 255, 0],
                    "grey" => req.settings.model = Model::Greyscale,
                    _ => {}
                }
                let case = format!("{size}² at {quality}, {region:?} {tweak}");
                let (w, h) = region.map_or((size, size), |r| (r.width, r.height));
                let block = if quality < 0.9 { 16 } else { 8 };
                // The planes need every window computed, by the rule the renderer uses.
                let computed = req
                    .settings
                    .channels
                    .iter()
                    .all(|ch| matches!(Window::new(ch, (w * h) as usize), Window::Computed(_)));
                let by_planes = tweak.is_empty() && w % block == 0 && h % block == 0 && computed;
                let rendered = render(&source, &req, OutputSize::Native, &limits, true);
                assert_eq!(
                    matches!(rendered.unwrap(), Rendering::Ycc(_)),
                    by_planes,
                    "{case}"
                );
                planes_used += by_planes as u32;
                let rgb = render_rgb(&source, &req, OutputSize::Native, &limits).unwrap();
                let expected = encode_jpeg(&rgb, quality).unwrap();
                let got = render_jpeg(&source, &req, OutputSize::Native, &limits).unwrap();
                assert!(got == expected, "{case}: the JPEGs differ");
            }
        }
        assert_eq!(planes_used, 6);
    }

    /// Resizing the nearest-neighbour sample gives exactly what SuperSampling gives
    /// from the whole plane, for every size where the sample is taken.
    #[test]
    fn resizing_the_sample_equals_supersampling_the_whole_plane() {
        let mut sampled_cases = 0;
        for (sw, sh, dw, dh) in [
            (2048, 2048, 95, 95),
            (2048, 1536, 96, 72),
            (700, 530, 64, 48),
            (1000, 97, 40, 4),
            (300, 300, 60, 60),   // shrink 5: just over 1.2 × 4
            (300, 300, 150, 150), // shrink 2: one step
        ] {
            let plane = Plane {
                width: sw,
                height: sh,
                data: (0..sw * sh)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 16) as u16)
                    .collect(),
            };
            let region = Region {
                x: 0,
                y: 0,
                width: sw,
                height: sh,
            };
            let whole = resize(plane.clone(), dw, dh).unwrap();
            let Some((tw, th)) = supersampled_size(region, dw, dh) else {
                continue;
            };
            sampled_cases += 1;
            let sample = Sampling::nearest(sw, sh, tw, th).apply(&plane);
            let from_sample = resize(sample, dw, dh).unwrap();
            assert_eq!(from_sample, whole, "{sw}x{sh} -> {dw}x{dh} via {tw}x{th}");
        }
        assert_eq!(sampled_cases, 5);
    }

    /// fast_image_resize's resize as `resize` chose it before the box filter of
    /// `sampling` took the power-of-two reductions over.
    fn fast_image_resize_alone(plane: &Plane, width: u32, height: u32) -> Vec<u16> {
        let src = fr::images::TypedImageRef::<fr::pixels::U16>::new(
            plane.width,
            plane.height,
            bytemuck::cast_slice(&plane.data),
        )
        .unwrap();
        let mut dst = fr::images::TypedImage::<fr::pixels::U16>::new(width, height);
        let shrink = (plane.width as f64 / width as f64).min(plane.height as f64 / height as f64);
        let algorithm = if shrink >= 2.0 {
            fr::ResizeAlg::SuperSampling(fr::FilterType::Box, SUPERSAMPLE)
        } else if shrink >= 1.0 {
            fr::ResizeAlg::Convolution(fr::FilterType::Box)
        } else {
            fr::ResizeAlg::Convolution(fr::FilterType::Bilinear)
        };
        let options = fr::ResizeOptions::new().resize_alg(algorithm);
        fr::Resizer::new()
            .resize_typed(&src, &mut dst, &options)
            .unwrap();
        bytemuck::cast_slice(dst.pixels()).to_vec()
    }

    /// Every kind of resize gives what fast_image_resize alone gives: power-of-two
    /// reductions on both axes, on one, on neither, two-step SuperSampling, growing.
    #[test]
    fn resize_equals_fast_image_resize_alone() {
        for (sw, sh, dw, dh) in [
            (380, 380, 95, 95),   // a 95-px thumbnail's sample: 4× on both axes
            (384, 287, 96, 72),   // 4× across, not down
            (381, 288, 95, 72),   // 4× down only
            (200, 150, 100, 75),  // 2×
            (300, 300, 100, 100), // 3×: one convolution, no power of two
            (640, 480, 40, 30),   // 16×: two steps (nearest first)
            (150, 150, 100, 100), // under 2×
            (100, 80, 150, 120),  // growing
            (100, 400, 25, 300),  // 4× across while the other axis shrinks less
        ] {
            let plane = Plane {
                width: sw,
                height: sh,
                data: (0..sw * sh)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 16) as u16)
                    .collect(),
            };
            let ours = resize(plane.clone(), dw, dh).unwrap();
            assert_eq!((ours.width, ours.height), (dw, dh));
            assert_eq!(
                ours.data,
                fast_image_resize_alone(&plane, dw, dh),
                "{sw}x{sh} -> {dw}x{dh}"
            );
        }
    }
}
