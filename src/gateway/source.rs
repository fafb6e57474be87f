//! Reading images for the gateway: TIFF (plain, multi-page, ImageJ and OME-TIFF), PNG and
//! JPEG, recognised by their first bytes rather than by their file names.
//!
//! Opening an image reads its metadata and scans every plane once for each channel's
//! global min/max (what OMERO keeps as StatsInfo and uses as the default window). Planes
//! are then read lazily from the file on each request, so a source holds only its
//! metadata: memory stays bounded by the planes a request is using. Every pixel comes out
//! as `u16` (8-bit data widened) so that one rendering path serves both depths.

use std::fmt::Display;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sampling::Sampling;

/// Sample type of the stored pixels (what OMERO calls the pixels type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PixelType {
    U8,
    U16,
}

impl PixelType {
    /// The largest value of the type: the top of the default window when a channel's
    /// statistics give a zero-width range.
    pub fn max_value(self) -> u16 {
        match self {
            PixelType::U8 => u8::MAX as u16,
            PixelType::U16 => u16::MAX,
        }
    }

    /// OMERO's name for the type, as `imgData` reports it.
    pub fn omero_name(self) -> &'static str {
        match self {
            PixelType::U8 => "uint8",
            PixelType::U16 => "uint16",
        }
    }
}

/// One channel's metadata. `min`/`max` are the channel's global pixel range over all
/// planes, computed when the image is opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMeta {
    pub name: Option<String>,
    pub color: Option<[u8; 3]>,
    pub emission_nm: Option<f64>,
    pub min: u16,
    pub max: u16,
    /// The file's own colour table (an ImageJ LUT that is no plain colour ramp), 256
    /// reds, greens and blues: drawn instead of the colour unless a request sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lut: Option<Vec<u8>>,
    /// The display range the file keeps for the channel (ImageJ's `ranges`, or its
    /// `min=`/`max=`): the window ImageJ opens it with, and so the imported default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_range: Option<(f64, f64)>,
}

impl ChannelMeta {
    /// The file's colour table as rendering uses it.
    pub fn lut_table(&self) -> Option<super::imagej_luts::Table> {
        let bytes = self.lut.as_deref()?;
        let mut table = [[0u8; 256]; 3];
        for (component, chunk) in table.iter_mut().zip(bytes.chunks_exact(256)) {
            component.copy_from_slice(chunk);
        }
        (bytes.len() == 768).then_some(table)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub name: String,
    pub size_x: u32,
    pub size_y: u32,
    pub size_z: u32,
    pub size_c: u32,
    pub size_t: u32,
    pub pixel_type: PixelType,
    pub channels: Vec<ChannelMeta>,
    /// PhysicalSizeX/Y/Z in micrometres, when the OME metadata gives them.
    #[serde(default)]
    pub physical_size_um: [Option<f64>; 3],
    /// The channels are the samples of RGB(A) pages (Bio-Formats' `isRGB`): shown as
    /// the file is, not windowed per channel.
    #[serde(default)]
    pub rgb: bool,
}

impl ImageMeta {
    /// x·y·z·c·t, the figure [`Limits::max_pixels`] bounds.
    pub fn pixel_count(&self) -> u64 {
        [self.size_z, self.size_c, self.size_t]
            .iter()
            .fold(self.size_x as u64 * self.size_y as u64, |n, &s| {
                n.saturating_mul(s as u64)
            })
    }

    /// The whole XY plane as a region.
    pub fn full_region(&self) -> Region {
        Region {
            x: 0,
            y: 0,
            width: self.size_x,
            height: self.size_y,
        }
    }

    /// `region` (or the whole plane), checked to be non-empty and inside the plane.
    fn check_region(&self, region: Option<Region>) -> Result<Region, SourceError> {
        let r = region.unwrap_or(self.full_region());
        if r.width > 0 && r.height > 0 && r.fits(self.size_x, self.size_y) {
            return Ok(r);
        }
        Err(SourceError::RegionOutside {
            x: r.x,
            y: r.y,
            width: r.width,
            height: r.height,
            size_x: self.size_x,
            size_y: self.size_y,
        })
    }

    fn check_planes(&self, z: u32, channels: &[u32], t: u32) -> Result<(), SourceError> {
        channels.iter().try_for_each(|&c| self.check_plane(z, c, t))
    }

    fn check_plane(&self, z: u32, c: u32, t: u32) -> Result<(), SourceError> {
        if z < self.size_z && c < self.size_c && t < self.size_t {
            return Ok(());
        }
        Err(SourceError::PlaneOutOfRange {
            z,
            c,
            t,
            size_z: self.size_z,
            size_c: self.size_c,
            size_t: self.size_t,
        })
    }
}

/// A rectangle of a plane, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Region {
    pub fn pixel_count(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    /// True when the region lies inside a `width`×`height` plane.
    pub fn fits(&self, width: u32, height: u32) -> bool {
        self.x as u64 + self.width as u64 <= width as u64
            && self.y as u64 + self.height as u64 <= height as u64
    }
}

/// One plane of one channel, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u16>,
}

impl Plane {
    /// A copy of `region`.
    ///
    /// # Panics
    /// If `region` is not inside the plane ([`Region::fits`]).
    pub fn crop(&self, region: Region) -> Plane {
        assert!(
            region.fits(self.width, self.height),
            "crop outside the plane"
        );
        let mut data = Vec::with_capacity(region.pixel_count() as usize);
        let (w, x, rw) = (
            self.width as usize,
            region.x as usize,
            region.width as usize,
        );
        for row in region.y as usize..(region.y + region.height) as usize {
            data.extend_from_slice(&self.data[row * w + x..row * w + x + rw]);
        }
        Plane {
            width: region.width,
            height: region.height,
            data,
        }
    }
}

/// An opened image. Implementations are cheap to hold: planes are read on demand.
pub trait ImageSource: Send + Sync {
    fn meta(&self) -> &ImageMeta;

    /// Plane (z, c, t) (0-based) of the whole XY extent.
    fn plane(&self, z: u32, c: u32, t: u32) -> Result<Plane, SourceError>;

    /// Several channels of one (z, t), cropped to `region` if given. Sources that store
    /// channels together (RGB TIFF pages, PNG, JPEG) override this to decode once.
    fn read_planes(
        &self,
        z: u32,
        channels: &[u32],
        t: u32,
        region: Option<Region>,
    ) -> Result<Vec<Plane>, SourceError> {
        let r = self.meta().check_region(region)?;
        let whole = r == self.meta().full_region();
        channels
            .iter()
            .map(|&c| {
                let plane = self.plane(z, c, t)?;
                Ok(if whole { plane } else { plane.crop(r) })
            })
            .collect()
    }

    /// Several channels of one (z, t) within `region`, sampled at `sampling`'s
    /// positions (offsets into the region): the first pass of a thumbnail's resize.
    /// Sources that can read only the sampled rows (uncompressed TIFF strips) override
    /// this; the others read the region whole and sample it.
    fn read_planes_sampled(
        &self,
        z: u32,
        channels: &[u32],
        t: u32,
        region: Region,
        sampling: &Sampling,
    ) -> Result<Vec<Plane>, SourceError> {
        let planes = self.read_planes(z, channels, t, Some(region))?;
        Ok(planes.iter().map(|p| sampling.apply(p)).collect())
    }
}

/// Bounds on what `open` agrees to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest declared x·y·z·c·t; anything larger is refused before decoding, so a
    /// small file that declares a huge image (a decompression bomb) costs nothing.
    pub max_pixels: u64,
    /// The repository (canonical) every opened file must lie beneath, judged on the
    /// opened descriptor: a link swapped in between the check and the open is refused.
    pub within: Option<PathBuf>,
}

impl Default for Limits {
    fn default() -> Self {
        // 1 Gi pixels: 2 GiB of 16-bit data at most, in any one image.
        Limits {
            max_pixels: 1 << 30,
            within: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("{path}: not a TIFF, PNG or JPEG file")]
    UnknownFormat { path: String },
    #[error("{path}: unsupported image: {message}")]
    Unsupported { path: String, message: String },
    #[error(
        "{path}: image declares {pixels} pixels, more than the limit of {max}; refusing to decode it"
    )]
    TooLarge { path: String, pixels: u64, max: u64 },
    #[error("{path}: invalid image: {message}")]
    Invalid { path: String, message: String },
    #[error("invalid OME-XML: {0}")]
    OmeXml(String),
    #[error("region {x},{y},{width},{height} is not inside the {size_x}x{size_y} plane")]
    RegionOutside {
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        size_x: u32,
        size_y: u32,
    },
    #[error(
        "plane z={z} c={c} t={t} is outside the image (SizeZ={size_z}, SizeC={size_c}, SizeT={size_t})"
    )]
    PlaneOutOfRange {
        z: u32,
        c: u32,
        t: u32,
        size_z: u32,
        size_c: u32,
        size_t: u32,
    },
}

/// Error messages stay on one line (they end up in log lines and HTTP bodies).
fn one_line(message: impl Display) -> String {
    message
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// How a file is named in errors, which reach HTTP bodies and the log: its file name
/// only (never the absolute repository path), control characters (ANSI escapes
/// included) shown as `?`.
pub(crate) fn shown(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn io_error(path: &Path, err: impl Display) -> SourceError {
    SourceError::Io {
        path: shown(path),
        message: one_line(err),
    }
}

fn invalid(path: &Path, message: impl Display) -> SourceError {
    SourceError::Invalid {
        path: shown(path),
        message: one_line(message),
    }
}

fn unsupported(path: &Path, message: impl Display) -> SourceError {
    SourceError::Unsupported {
        path: shown(path),
        message: one_line(message),
    }
}

/// Opens an image file to read: a regular file (judged on the descriptor), and with
/// `limits.within`, one whose descriptor resolves beneath that directory.
fn open_file(path: &Path, limits: &Limits) -> Result<File, SourceError> {
    hang_if_told(path);
    match &limits.within {
        Some(root) => crate::fsutil::open_regular_beneath(path, root),
        None => crate::fsutil::open_regular(path),
    }
    .map_err(|e| io_error(path, e))
}

/// Test-only fault: with the test routes on (`OMEROWEBCTL_TEST_ROUTES=1`) and
/// `OMEROWEBCTL_TEST_HANG_OPEN` naming this file, the open never returns, as one on a
/// hung network filesystem does. The pool's answer to that is what tests check.
/// The environment is read once per process: every image open passes here.
fn hang_if_told(path: &Path) {
    static TOLD: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    let told = TOLD.get_or_init(|| {
        std::env::var_os("OMEROWEBCTL_TEST_HANG_OPEN")
            .filter(|_| std::env::var(super::TEST_ROUTES_ENV).as_deref() == Ok("1"))
    });
    if told.is_some() && path.file_name() == told.as_deref() {
        loop {
            std::thread::park();
        }
    }
}

fn check_limit(path: &Path, pixels: u64, limits: &Limits) -> Result<(), SourceError> {
    if pixels > limits.max_pixels {
        return Err(SourceError::TooLarge {
            path: shown(path),
            pixels,
            max: limits.max_pixels,
        });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Tiff,
    Png,
    Jpeg,
}

fn sniff(head: &[u8]) -> Option<Format> {
    match head {
        [b'I', b'I', 42 | 43, 0, ..] | [b'M', b'M', 0, 42 | 43, ..] => Some(Format::Tiff),
        [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', ..] => Some(Format::Png),
        [0xff, 0xd8, 0xff, ..] => Some(Format::Jpeg),
        _ => None,
    }
}

/// Opens an image by content (magic bytes): TIFF/BigTIFF, PNG or JPEG.
pub fn open(path: &Path, limits: &Limits) -> Result<Box<dyn ImageSource>, SourceError> {
    open_inner(path, limits, None)
}

/// Opens like [`open`], but for a TIFF takes each channel's min/max from `known` (the
/// metadata this file gave before, kept by the caller with the file's size and mtime)
/// instead of scanning every plane again, provided the dimensions, channel count and
/// pixel type still match; otherwise it scans as `open` does.
pub fn open_with_known_meta(
    path: &Path,
    limits: &Limits,
    known: &ImageMeta,
) -> Result<Box<dyn ImageSource>, SourceError> {
    open_inner(path, limits, Some(known))
}

fn open_inner(
    path: &Path,
    limits: &Limits,
    known: Option<&ImageMeta>,
) -> Result<Box<dyn ImageSource>, SourceError> {
    let mut head = [0u8; 8];
    let mut file = open_file(path, limits)?;
    let n = read_up_to(&mut file, &mut head).map_err(|e| io_error(path, e))?;
    match sniff(&head[..n]) {
        Some(Format::Tiff) => Ok(Box::new(TiffSource::open(path, limits, known)?)),
        Some(Format::Png) => Ok(Box::new(DecodedSource::open(path, limits, Format::Png)?)),
        Some(Format::Jpeg) => Ok(Box::new(DecodedSource::open(path, limits, Format::Jpeg)?)),
        None => Err(SourceError::UnknownFormat { path: shown(path) }),
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Decoded pages: one TIFF page, or a whole PNG/JPEG, with its samples together.

/// The samples of one stored page, widened to u16: interleaved (`RGBRGB…`) or planar
/// (`RR…GG…BB…`).
struct Page {
    width: u32,
    height: u32,
    samples: usize,
    planar: bool,
    data: Vec<u16>,
}

impl Page {
    /// Sample `s` as a plane, cropped to `region` if given. A single-sample page without
    /// a crop hands its buffer over without copying.
    fn into_channel(self, s: usize, region: Option<Region>) -> Plane {
        let full = Region {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        };
        let r = region.unwrap_or(full);
        if self.samples == 1 && r == full {
            return Plane {
                width: self.width,
                height: self.height,
                data: self.data,
            };
        }
        self.channel(s, r)
    }

    /// The samples under `r`, as a page of their own.
    fn crop(&self, r: Region) -> Page {
        if self.samples == 1 || !self.planar {
            let n = self.samples;
            let mut data = Vec::with_capacity(r.pixel_count() as usize * n);
            let w = self.width as usize;
            for row in r.y as usize..(r.y + r.height) as usize {
                let first = row * w + r.x as usize;
                data.extend_from_slice(&self.data[first * n..(first + r.width as usize) * n]);
            }
            return Page {
                width: r.width,
                height: r.height,
                samples: n,
                planar: self.planar,
                data,
            };
        }
        let mut data = Vec::with_capacity(r.pixel_count() as usize * self.samples);
        for s in 0..self.samples {
            data.extend(self.channel(s, r).data);
        }
        Page {
            width: r.width,
            height: r.height,
            samples: self.samples,
            planar: true,
            data,
        }
    }

    fn channel(&self, s: usize, r: Region) -> Plane {
        let w = self.width as usize;
        let mut data = Vec::with_capacity(r.pixel_count() as usize);
        for row in r.y as usize..(r.y + r.height) as usize {
            let first = row * w + r.x as usize;
            let last = first + r.width as usize;
            if self.samples == 1 {
                data.extend_from_slice(&self.data[first..last]);
            } else if self.planar {
                let base = s * w * self.height as usize;
                data.extend_from_slice(&self.data[base + first..base + last]);
            } else {
                let n = self.samples;
                data.extend(
                    self.data[first * n..last * n]
                        .iter()
                        .skip(s)
                        .step_by(n)
                        .copied(),
                );
            }
        }
        Plane {
            width: r.width,
            height: r.height,
            data,
        }
    }

    /// (min, max) of sample `s` over the whole page.
    fn range(&self, s: usize) -> (u16, u16) {
        let fold = |(lo, hi): (u16, u16), &v: &u16| (lo.min(v), hi.max(v));
        let start = (u16::MAX, 0);
        if self.samples == 1 {
            self.data.iter().fold(start, fold)
        } else if self.planar {
            let n = self.width as usize * self.height as usize;
            self.data[s * n..(s + 1) * n].iter().fold(start, fold)
        } else {
            self.data
                .iter()
                .skip(s)
                .step_by(self.samples)
                .fold(start, fold)
        }
    }
}

fn widen(bytes: &[u8]) -> Vec<u16> {
    bytes.iter().map(|&b| b as u16).collect()
}

/// Folds a page's sample ranges into the channels' running (min, max).
fn merge_range(stats: &mut (u16, u16), (lo, hi): (u16, u16)) {
    stats.0 = stats.0.min(lo);
    stats.1 = stats.1.max(hi);
}

// ---------------------------------------------------------------------------------------
// TIFF

/// How the pages of a TIFF file map to (z, c, t).
#[derive(Debug, Clone, PartialEq)]
struct PlaneMap {
    /// The three letters after "XY" of the OME DimensionOrder; the first varies fastest.
    order: [u8; 3],
    size_z: u32,
    /// Channels that have pages of their own (SizeC divided by the samples per page).
    page_channels: u32,
    size_t: u32,
    /// IFD of each plane index, when OME TiffData elements say so; else plane index = IFD.
    ifds: Option<Vec<u32>>,
}

impl PlaneMap {
    fn plane_index(&self, z: u32, c: u32, t: u32) -> u64 {
        let mut index = 0u64;
        let mut stride = 1u64;
        for &dim in &self.order {
            let (pos, size) = match dim {
                b'Z' => (z, self.size_z),
                b'C' => (c, self.page_channels),
                _ => (t, self.size_t),
            };
            index += pos as u64 * stride;
            stride *= size as u64;
        }
        index
    }

    fn ifd(&self, z: u32, c_page: u32, t: u32) -> u32 {
        let index = self.plane_index(z, c_page, t);
        match &self.ifds {
            Some(table) => table[index as usize],
            None => index as u32,
        }
    }
}

fn parse_order(order: &str) -> Option<[u8; 3]> {
    let bytes = order.as_bytes();
    if bytes.len() != 5 || &bytes[..2] != b"XY" {
        return None;
    }
    let rest = [bytes[2], bytes[3], bytes[4]];
    let mut sorted = rest;
    sorted.sort_unstable();
    (&sorted == b"CTZ").then_some(rest)
}

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
const MAX_OME_PLANES: u64 = 1 << 20;

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
        channel_elements += 1;
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
        channel_samples += samples;
        for _ in 0..samples {
            channels.push(entry.clone());
        }
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
    let planes = size_z as u64 * plane_channels as u64 * size_t as u64;
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
                table[index as usize] = Some(ifd.unwrap_or(0) + k as u32);
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

/// ImageJ writes hyperstacks as pages in CZT order with `channels=`, `slices=` and
/// `frames=` lines in the ImageDescription.
fn parse_imagej(description: &str) -> Option<(u32, u32, u32)> {
    if !description.starts_with("ImageJ=") {
        return None;
    }
    let field = |key: &str| {
        description.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().parse::<u32>().ok())?
        })
    };
    let c = field("channels").unwrap_or(1).max(1);
    let z = field("slices").unwrap_or(1).max(1);
    let t = field("frames").unwrap_or(1).max(1);
    Some((z, c, t))
}

/// The LUTs and display ranges in the current page's ImageJ tags (none when they are
/// absent or malformed).
fn imagej_metadata<R: std::io::Read + std::io::Seek>(
    decoder: &mut tiff::decoder::Decoder<R>,
) -> super::imagej_luts::ImagejMetadata {
    use super::imagej_luts::{BYTE_COUNTS_TAG, METADATA_TAG, parse};
    let metadata = decoder.get_tag_u8_vec(tiff::tags::Tag::Unknown(METADATA_TAG));
    let counts = decoder.get_tag_u32_vec(tiff::tags::Tag::Unknown(BYTE_COUNTS_TAG));
    match (metadata, counts) {
        (Ok(metadata), Ok(counts)) => parse(
            &metadata,
            &counts,
            decoder.byte_order() == tiff::tags::ByteOrder::LittleEndian,
        ),
        _ => Default::default(),
    }
}

/// The one display range of an ImageJ file without per-channel ranges: `min=` and
/// `max=` in its description, which ImageJ applies to every channel.
fn imagej_description_range(description: &str) -> Option<(f64, f64)> {
    let field = |key: &str| {
        description
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let (min, max) = (field("min")?, field("max")?);
    (min < max).then_some((min, max))
}

/// ImageJ's calibration, as Bio-Formats reads it: `unit=` (ImageJ writes µ as
/// `\u00B5`), the pixel size from XResolution (pixels per unit; ImageJ's pixels are
/// square, so it serves for Y too) and `spacing=` for Z. None without a known unit.
fn imagej_calibration(description: &str, pixel_width: Option<f64>) -> [Option<f64>; 3] {
    if !description.starts_with("ImageJ=") {
        return [None; 3];
    }
    let field = |key: &str| {
        description.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let Some(unit) = field("unit").map(|u| u.replace("\\u00B5", "µ")) else {
        return [None; 3];
    };
    let xy = pixel_width.and_then(|w| length_in_um(w, &unit));
    let z = field("spacing")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|s| length_in_um(s, &unit));
    [xy, xy, z]
}

/// The sample layout shared by every page of the image.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TiffLayout {
    width: u32,
    height: u32,
    pixel_type: PixelType,
    /// Samples stored per pixel.
    samples: usize,
    /// Samples used as channels: alpha is dropped.
    channels: usize,
}

fn tiff_layout(
    path: &Path,
    decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
) -> Result<TiffLayout, SourceError> {
    use tiff::ColorType;
    let (width, height) = decoder.dimensions().map_err(|e| invalid(path, e))?;
    let color = decoder
        .colortype()
        .map_err(|e| unsupported(path, format!("TIFF colour type: {e}")))?;
    let (bits, samples, channels) = match color {
        ColorType::Gray(b) => (b, 1, 1),
        ColorType::GrayA(b) => (b, 2, 1),
        ColorType::RGB(b) => (b, 3, 3),
        ColorType::RGBA(b) => (b, 4, 3),
        ColorType::Multiband {
            bit_depth,
            num_samples,
        } => (bit_depth, num_samples as usize, num_samples as usize),
        other => return Err(unsupported(path, format!("TIFF colour type {other:?}"))),
    };
    let pixel_type = match bits {
        8 => PixelType::U8,
        16 => PixelType::U16,
        b => return Err(unsupported(path, format!("{b}-bit TIFF samples"))),
    };
    // Signed and floating-point samples would need their own windows; refuse them.
    if let Ok(Some(format)) = decoder.find_tag_unsigned::<u16>(tiff::tags::Tag::SampleFormat)
        && format != 1
    {
        return Err(unsupported(
            path,
            "signed or floating-point TIFF samples (only unsigned 8/16-bit)",
        ));
    }
    if width == 0 || height == 0 {
        return Err(invalid(path, "zero-sized TIFF page"));
    }
    Ok(TiffLayout {
        width,
        height,
        pixel_type,
        samples,
        channels,
    })
}

struct TiffSource {
    path: PathBuf,
    /// Each page read opens the file again: checked as the first open was.
    limits: Limits,
    meta: ImageMeta,
    layout: TiffLayout,
    map: PlaneMap,
}

impl TiffSource {
    /// Decoder limits for reading pages of `layout` (`None`: just the directories).
    fn decoder_limits(layout: Option<&TiffLayout>) -> tiff::decoder::Limits {
        let mut limits = tiff::decoder::Limits::default();
        // OME-XML descriptions of big datasets exceed tiff's 1 MiB default.
        limits.ifd_value_size = 64 << 20;
        let Some(layout) = layout else {
            return limits;
        };
        // One whole page must fit; its size was already checked against Limits.
        let page_bytes = layout.width as usize * layout.height as usize * layout.samples * 2;
        limits.decoding_buffer_size = limits.decoding_buffer_size.max(page_bytes);
        limits
    }

    fn decoder(
        path: &Path,
        within: &Limits,
        limits: tiff::decoder::Limits,
    ) -> Result<tiff::decoder::Decoder<BufReader<File>>, SourceError> {
        let file = open_file(path, within)?;
        tiff::decoder::Decoder::new(BufReader::new(file))
            .map(|d| d.with_limits(limits))
            .map_err(|e| invalid(path, e))
    }

    fn open(
        path: &Path,
        limits: &Limits,
        known: Option<&ImageMeta>,
    ) -> Result<TiffSource, SourceError> {
        let mut decoder = Self::decoder(path, limits, Self::decoder_limits(None))?;
        let layout = tiff_layout(path, &mut decoder)?;
        let page_pixels = layout.width as u64 * layout.height as u64;
        check_limit(path, page_pixels * layout.channels as u64, limits)?;
        let description = decoder
            .get_tag_ascii_string(tiff::tags::Tag::ImageDescription)
            .ok();
        let imagej = match description.as_deref() {
            Some(d) if d.starts_with("ImageJ=") => imagej_metadata(&mut decoder),
            _ => Default::default(),
        };
        // Units per pixel along X (XResolution is pixels per unit), for ImageJ's
        // calibration.
        let pixel_width = match decoder.find_tag(tiff::tags::Tag::XResolution) {
            Ok(Some(tiff::decoder::ifd::Value::Rational(n, d))) if n > 0 && d > 0 => {
                Some(d as f64 / n as f64)
            }
            _ => None,
        };

        // Count the pages that share the first page's layout; a trailing page of another
        // size (a preview, a label) ends the image. The running pixel count is checked as
        // we go, so a file with a million IFDs is refused early.
        let mut pages = 1u64;
        while decoder.more_images() {
            if decoder.next_image().is_err() {
                break;
            }
            match tiff_layout(path, &mut decoder) {
                Ok(l) if l == layout => pages += 1,
                _ => break,
            }
            check_limit(path, pages * page_pixels * layout.channels as u64, limits)?;
            if pages > MAX_OME_PLANES {
                return Err(unsupported(
                    path,
                    format!("more than {MAX_OME_PLANES} pages"),
                ));
            }
        }

        let mut name = file_name(path);
        let ome = match description.as_deref() {
            Some(d) if d.contains("<OME") => Some(parse_ome_xml(d).map_err(|e| match e {
                SourceError::OmeXml(m) => invalid(path, format!("OME-XML: {m}")),
                other => other,
            })?),
            _ => None,
        };
        let mut physical_size_um = [None; 3];
        let (map, channels) = if let Some(ome) = ome {
            physical_size_um = ome.physical_size_um;
            check_limit(
                path,
                ome.size_x as u64
                    * ome.size_y as u64
                    * ome.size_z as u64
                    * ome.size_c as u64
                    * ome.size_t as u64,
                limits,
            )?;
            // One named file is this one (whatever it is called now); several are a
            // multi-file image, of which we would see only a part.
            if ome.files.len() > 1 {
                return Err(unsupported(
                    path,
                    format!("multi-file OME-TIFF (planes in {} files)", ome.files.len()),
                ));
            }
            if (ome.size_x, ome.size_y) != (layout.width, layout.height) {
                return Err(invalid(
                    path,
                    format!(
                        "OME-XML says {}×{} but the TIFF pages are {}×{}",
                        ome.size_x, ome.size_y, layout.width, layout.height
                    ),
                ));
            }
            let expected = match ome.pixel_type.as_str() {
                "uint8" => PixelType::U8,
                "uint16" => PixelType::U16,
                other => return Err(unsupported(path, format!("OME pixel type {other}"))),
            };
            if expected != layout.pixel_type {
                return Err(invalid(path, "OME-XML pixel type differs from the TIFF's"));
            }
            if ome.plane_channels as usize * layout.channels != ome.size_c as usize {
                return Err(invalid(
                    path,
                    format!(
                        "SizeC={} does not match {} planes per Z/T of {} samples each",
                        ome.size_c, ome.plane_channels, layout.channels
                    ),
                ));
            }
            let page_channels = ome.plane_channels;
            let ifds = match &ome.plane_ifds {
                None => None,
                Some(table) => {
                    let missing = table.iter().position(Option::is_none);
                    if let Some(index) = missing {
                        return Err(invalid(
                            path,
                            format!("OME-XML maps no IFD to plane {index}"),
                        ));
                    }
                    Some(table.iter().map(|ifd| ifd.unwrap_or(0)).collect())
                }
            };
            let map = PlaneMap {
                order: parse_order(&ome.dimension_order).expect("validated"),
                size_z: ome.size_z,
                page_channels,
                size_t: ome.size_t,
                ifds,
            };
            if let Some(n) = ome.name.as_ref().filter(|n| !n.is_empty()) {
                name = n.clone();
            }
            let channels = ome
                .channels
                .into_iter()
                .map(|c| ChannelMeta {
                    name: c.name,
                    color: c.color,
                    emission_nm: c.emission_nm,
                    min: 0,
                    max: 0,
                    lut: None,
                    display_range: None,
                })
                .collect();
            (map, channels)
        } else {
            if let Some(d) = description.as_deref() {
                physical_size_um = imagej_calibration(d, pixel_width);
            }
            let (z, c, t) = match description.as_deref().and_then(parse_imagej) {
                Some((z, c, t)) if z as u64 * c as u64 * t as u64 == pages => (z, c, t),
                // A plain multi-page TIFF is a Z stack.
                _ => (pages as u32, 1, 1),
            };
            let map = PlaneMap {
                order: if c > 1 { *b"CZT" } else { *b"ZCT" },
                size_z: z,
                page_channels: c,
                size_t: t,
                ifds: None,
            };
            let count = c as usize * layout.channels;
            // ImageJ's LUTs, one per channel of a grey hyperstack: a ramp is the
            // channel's colour, any other table is drawn as it is.
            let tables = if layout.channels == 1 && imagej.tables.len() == count {
                imagej.tables
            } else {
                Vec::new()
            };
            // Display ranges: one per channel, else the description's for all.
            let ranges: Vec<Option<(f64, f64)>> = if imagej.ranges.len() == count {
                imagej
                    .ranges
                    .iter()
                    .map(|&(lo, hi)| {
                        (lo.is_finite() && hi.is_finite() && lo < hi).then_some((lo, hi))
                    })
                    .collect()
            } else {
                let whole = description
                    .as_deref()
                    .filter(|d| d.starts_with("ImageJ="))
                    .and_then(imagej_description_range);
                vec![whole; count]
            };
            let channels = (0..count)
                .map(|i| {
                    let table = tables.get(i);
                    let ramp = table.and_then(super::imagej_luts::ramp_color);
                    ChannelMeta {
                        name: None,
                        color: ramp.or(table.map(super::imagej_luts::top_color)),
                        emission_nm: None,
                        min: 0,
                        max: 0,
                        lut: table.filter(|_| ramp.is_none()).map(|t| t.concat()),
                        display_range: ranges[i],
                    }
                })
                .collect();
            (map, channels)
        };

        let needed = map.size_z as u64 * map.page_channels as u64 * map.size_t as u64;
        let highest = match &map.ifds {
            Some(table) => table.iter().max().map_or(0, |&m| m as u64 + 1),
            None => needed,
        };
        if highest > pages {
            return Err(invalid(
                path,
                format!("the metadata needs {highest} pages but the file has {pages}"),
            ));
        }

        let mut source = TiffSource {
            path: path.to_path_buf(),
            limits: limits.clone(),
            meta: ImageMeta {
                name,
                size_x: layout.width,
                size_y: layout.height,
                size_z: map.size_z,
                size_c: map.page_channels * layout.channels as u32,
                size_t: map.size_t,
                pixel_type: layout.pixel_type,
                channels,
                physical_size_um,
                rgb: layout.channels >= 3,
            },
            layout,
            map,
        };
        let m = &source.meta;
        match known {
            Some(k)
                if (
                    k.size_x,
                    k.size_y,
                    k.size_z,
                    k.size_c,
                    k.size_t,
                    k.pixel_type,
                ) == (
                    m.size_x,
                    m.size_y,
                    m.size_z,
                    m.size_c,
                    m.size_t,
                    m.pixel_type,
                ) =>
            {
                for (channel, old) in source.meta.channels.iter_mut().zip(&k.channels) {
                    (channel.min, channel.max) = (old.min, old.max);
                }
            }
            _ => source.compute_stats()?,
        }
        Ok(source)
    }

    /// Scans every page once for its channels' global min/max (OMERO's StatsInfo).
    fn compute_stats(&mut self) -> Result<(), SourceError> {
        let n = self.layout.channels;
        let mut stats = vec![(u16::MAX, 0u16); self.meta.size_c as usize];
        let mut decoder = self.page_decoder()?;
        for t in 0..self.map.size_t {
            for cp in 0..self.map.page_channels {
                for z in 0..self.map.size_z {
                    let page = self.read_page(&mut decoder, self.map.ifd(z, cp, t))?;
                    for s in 0..n {
                        merge_range(&mut stats[cp as usize * n + s], page.range(s));
                    }
                }
            }
        }
        for (channel, (lo, hi)) in self.meta.channels.iter_mut().zip(stats) {
            channel.min = lo;
            channel.max = hi;
        }
        Ok(())
    }

    fn page_decoder(&self) -> Result<tiff::decoder::Decoder<BufReader<File>>, SourceError> {
        Self::decoder(
            &self.path,
            &self.limits,
            Self::decoder_limits(Some(&self.layout)),
        )
    }

    /// Moves the decoder to page `ifd`, checks it matches the first page, and says
    /// whether its samples are stored in separate planes.
    fn seek_page(
        &self,
        decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
        ifd: u32,
    ) -> Result<bool, SourceError> {
        let path = &self.path;
        decoder
            .seek_to_image(ifd as usize)
            .map_err(|e| invalid(path, format!("page {ifd}: {e}")))?;
        if tiff_layout(path, decoder)? != self.layout {
            return Err(invalid(
                path,
                format!("page {ifd} differs from the first page"),
            ));
        }
        Ok(matches!(
            decoder.find_tag_unsigned::<u16>(tiff::tags::Tag::PlanarConfiguration),
            Ok(Some(2))
        ))
    }

    /// The part of page `ifd` under `region`. A small region decodes only the strips or
    /// tiles it touches, so a 512² tile of a large plane does not read the whole plane.
    fn read_page_region(
        &self,
        decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
        ifd: u32,
        region: Region,
    ) -> Result<Page, SourceError> {
        let page_pixels = self.layout.width as u64 * self.layout.height as u64;
        if region.pixel_count() * 2 > page_pixels {
            let page = self.read_page(decoder, ifd)?;
            return Ok(if region == self.meta.full_region() {
                page
            } else {
                page.crop(region)
            });
        }
        let path = &self.path;
        let planar = self.seek_page(decoder, ifd)?;
        let fail = |e: tiff::TiffError| invalid(path, format!("page {ifd}: {e}"));
        let (cw, ch) = decoder.chunk_dimensions();
        if cw == 0 || ch == 0 {
            return Err(invalid(
                path,
                format!("page {ifd}: zero-sized strips or tiles"),
            ));
        }
        let total = match decoder.get_chunk_type() {
            tiff::decoder::ChunkType::Strip => decoder.strip_count(),
            tiff::decoder::ChunkType::Tile => decoder.tile_count(),
        }
        .map_err(fail)?;
        let across = self.layout.width.div_ceil(cw);
        let per_plane = across * self.layout.height.div_ceil(ch);
        let samples = self.layout.samples;
        // Samples per pixel inside one chunk, and how many planes of chunks there are.
        let (chunk_samples, planes) = if planar { (1, samples) } else { (samples, 1) };
        let (rw, rh) = (region.width as usize, region.height as usize);
        let mut data = vec![0u16; rw * rh * samples];
        let (x0, y0) = (region.x, region.y);
        let (x1, y1) = (x0 + region.width, y0 + region.height);
        for plane in 0..planes {
            for cy in y0 / ch..=(y1 - 1) / ch {
                for cx in x0 / cw..=(x1 - 1) / cw {
                    let index = plane as u32 * per_plane + cy * across + cx;
                    if index >= total {
                        return Err(invalid(path, format!("page {ifd}: missing strip or tile")));
                    }
                    let (dw, dh) = decoder.chunk_data_dimensions(index);
                    let chunk = match decoder.read_chunk(index).map_err(fail)? {
                        tiff::decoder::DecodingResult::U8(v) => widen(&v),
                        tiff::decoder::DecodingResult::U16(v) => v,
                        _ => return Err(unsupported(path, "TIFF sample type")),
                    };
                    let (ox, oy) = (cx * cw, cy * ch);
                    let (c0, c1) = (x0.max(ox), x1.min(ox + dw));
                    let len = (c1 - c0) as usize * chunk_samples;
                    for row in y0.max(oy)..y1.min(oy + dh) {
                        let from = (((row - oy) * dw + (c0 - ox)) as usize) * chunk_samples;
                        let pixel = (row - y0) as usize * rw + (c0 - x0) as usize;
                        let to = plane * rw * rh + pixel * chunk_samples;
                        let src = chunk
                            .get(from..from + len)
                            .ok_or_else(|| invalid(path, format!("page {ifd} is truncated")))?;
                        data[to..to + len].copy_from_slice(src);
                    }
                }
            }
        }
        Ok(Page {
            width: region.width,
            height: region.height,
            samples,
            planar,
            data,
        })
    }

    fn read_page(
        &self,
        decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
        ifd: u32,
    ) -> Result<Page, SourceError> {
        let path = &self.path;
        let planar = self.seek_page(decoder, ifd)?;
        let mut result = match self.layout.pixel_type {
            PixelType::U8 => tiff::decoder::DecodingResult::U8(Vec::new()),
            PixelType::U16 => tiff::decoder::DecodingResult::U16(Vec::new()),
        };
        decoder
            .read_image_to_buffer(&mut result)
            .map_err(|e| invalid(path, format!("page {ifd}: {e}")))?;
        let data = match result {
            tiff::decoder::DecodingResult::U8(v) => widen(&v),
            tiff::decoder::DecodingResult::U16(v) => v,
            _ => return Err(unsupported(path, "TIFF sample type")),
        };
        let expected = self.layout.width as usize * self.layout.height as usize;
        if data.len() < expected * self.layout.samples {
            return Err(invalid(path, format!("page {ifd} is truncated")));
        }
        Ok(Page {
            width: self.layout.width,
            height: self.layout.height,
            samples: self.layout.samples,
            planar,
            data,
        })
    }
}

/// Where the rows of an uncompressed, stripped page lie in the file: enough to read any
/// row of it with one `pread`.
struct StripTable {
    offsets: Vec<u64>,
    byte_counts: Vec<u64>,
    rows_per_strip: u32,
    /// Samples in separate planes of strips (`RR…GG…BB…`) rather than interleaved.
    planar: bool,
    big_endian: bool,
}

impl TiffSource {
    /// `channels` of (z, t) (checked by the caller), a page at a time: `read_page` gets
    /// a page's IFD and the samples wanted of it, and returns one plane per sample in
    /// that order. Channels that share a page (RGB samples) are read from it together.
    fn read_by_page(
        &self,
        z: u32,
        channels: &[u32],
        t: u32,
        mut read_page: impl FnMut(u32, &[usize]) -> Result<Vec<Plane>, SourceError>,
    ) -> Result<Vec<Plane>, SourceError> {
        let n = self.layout.channels as u32;
        let mut out: Vec<Option<Plane>> = vec![None; channels.len()];
        for i in 0..channels.len() {
            if out[i].is_some() {
                continue;
            }
            let page_channel = channels[i] / n;
            let wanted: Vec<usize> = (i..channels.len())
                .filter(|&j| channels[j] / n == page_channel && out[j].is_none())
                .collect();
            let samples: Vec<usize> = wanted.iter().map(|&j| (channels[j] % n) as usize).collect();
            let planes = read_page(self.map.ifd(z, page_channel, t), &samples)?;
            for (j, plane) in wanted.into_iter().zip(planes) {
                out[j] = Some(plane);
            }
        }
        Ok(out
            .into_iter()
            .map(|p| p.expect("every channel read"))
            .collect())
    }

    /// Page `ifd`'s strip table, or `None` when its rows cannot be read directly
    /// (compressed, tiled or predicted data: those are decoded whole).
    fn strip_table(
        &self,
        decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
        ifd: u32,
    ) -> Result<Option<StripTable>, SourceError> {
        use tiff::tags::Tag;
        let path = &self.path;
        let planar = self.seek_page(decoder, ifd)?;
        let fail = |e: tiff::TiffError| invalid(path, format!("page {ifd}: {e}"));
        let compression = decoder.find_tag_unsigned::<u16>(Tag::Compression);
        let predictor = decoder.find_tag_unsigned::<u16>(Tag::Predictor);
        if !matches!(compression, Ok(None | Some(1)))
            || !matches!(predictor, Ok(None | Some(1)))
            || decoder.get_chunk_type() != tiff::decoder::ChunkType::Strip
        {
            return Ok(None);
        }
        let offsets = decoder.get_tag_u64_vec(Tag::StripOffsets).map_err(fail)?;
        let byte_counts = decoder
            .get_tag_u64_vec(Tag::StripByteCounts)
            .map_err(fail)?;
        let height = self.layout.height;
        let rows_per_strip = match decoder.find_tag_unsigned::<u32>(Tag::RowsPerStrip) {
            Ok(Some(rows)) if rows > 0 => rows.min(height),
            Ok(_) => height,
            Err(e) => return Err(fail(e)),
        };
        let planes = if planar { self.layout.samples } else { 1 };
        let needed = height.div_ceil(rows_per_strip) as usize * planes;
        if offsets.len() < needed || byte_counts.len() < needed {
            return Err(invalid(
                path,
                format!(
                    "page {ifd}: {needed} strips expected, {} listed",
                    offsets.len()
                ),
            ));
        }
        Ok(Some(StripTable {
            offsets,
            byte_counts,
            rows_per_strip,
            planar,
            big_endian: decoder.byte_order() == tiff::tags::ByteOrder::BigEndian,
        }))
    }

    /// Samples `samples` of page `ifd` at `sampling`'s rows and columns of `region`,
    /// reading from the file just the sampled rows (each row's span of the region).
    fn read_sampled_rows(
        &self,
        file: &File,
        ifd: u32,
        table: &StripTable,
        samples: &[usize],
        region: Region,
        sampling: &Sampling,
    ) -> Result<Vec<Plane>, SourceError> {
        use std::os::unix::fs::FileExt;
        let path = &self.path;
        let layout = &self.layout;
        let bytes = match layout.pixel_type {
            PixelType::U8 => 1,
            PixelType::U16 => 2,
        };
        // Samples per pixel within one strip's rows.
        let stride = if table.planar { 1 } else { layout.samples };
        let row_bytes = layout.width as u64 * (stride * bytes) as u64;
        let span = region.width as usize * stride * bytes;
        let strips_per_plane = layout.height.div_ceil(table.rows_per_strip) as usize;
        let mut buffer = vec![0u8; span];
        // Byte offset of each sampled column's first sample within a row's span.
        let columns: Vec<usize> = sampling
            .columns
            .iter()
            .map(|&x| x as usize * stride * bytes)
            .collect();
        let mut planes: Vec<Vec<u16>> = samples
            .iter()
            .map(|_| Vec::with_capacity(sampling.columns.len() * sampling.rows.len()))
            .collect();
        // Interleaved samples share one read per row; planar ones are read each alone.
        let reads: Vec<Option<usize>> = if table.planar {
            samples.iter().map(|&s| Some(s)).collect()
        } else {
            vec![None]
        };
        for read in reads {
            for &row in &sampling.rows {
                let y = region.y + row;
                let strip =
                    read.unwrap_or(0) * strips_per_plane + (y / table.rows_per_strip) as usize;
                let within = (y % table.rows_per_strip) as u64 * row_bytes
                    + region.x as u64 * (stride * bytes) as u64;
                if within + span as u64 > table.byte_counts[strip] {
                    return Err(invalid(path, format!("page {ifd}: strip {strip} is short")));
                }
                file.read_exact_at(&mut buffer, table.offsets[strip] + within)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => {
                            invalid(path, format!("page {ifd} is truncated"))
                        }
                        _ => io_error(path, e),
                    })?;
                for (i, &s) in samples.iter().enumerate() {
                    if read.is_some_and(|r| r != s) {
                        continue;
                    }
                    let lane = if table.planar { 0 } else { s };
                    gather(
                        &buffer,
                        &columns,
                        lane * bytes,
                        bytes,
                        table.big_endian,
                        &mut planes[i],
                    );
                }
            }
        }
        Ok(planes
            .into_iter()
            .map(|data| Plane {
                width: sampling.width(),
                height: sampling.height(),
                data,
            })
            .collect())
    }
}

/// Appends the samples at `columns` (+ `lane`) of one row's bytes to `out`, widened to
/// u16; one loop per sample format, so that each is a plain gather.
fn gather(
    row: &[u8],
    columns: &[usize],
    lane: usize,
    bytes: usize,
    big_endian: bool,
    out: &mut Vec<u16>,
) {
    let at = |x: usize| x + lane;
    match (bytes, big_endian) {
        (1, _) => out.extend(columns.iter().map(|&x| row[at(x)] as u16)),
        (_, false) => out.extend(
            columns
                .iter()
                .map(|&x| u16::from_le_bytes([row[at(x)], row[at(x) + 1]])),
        ),
        (_, true) => out.extend(
            columns
                .iter()
                .map(|&x| u16::from_be_bytes([row[at(x)], row[at(x) + 1]])),
        ),
    }
}

impl ImageSource for TiffSource {
    fn meta(&self) -> &ImageMeta {
        &self.meta
    }

    fn plane(&self, z: u32, c: u32, t: u32) -> Result<Plane, SourceError> {
        self.meta.check_plane(z, c, t)?;
        let n = self.layout.channels as u32;
        let mut decoder = self.page_decoder()?;
        let page = self.read_page(&mut decoder, self.map.ifd(z, c / n, t))?;
        Ok(page.into_channel((c % n) as usize, None))
    }

    fn read_planes(
        &self,
        z: u32,
        channels: &[u32],
        t: u32,
        region: Option<Region>,
    ) -> Result<Vec<Plane>, SourceError> {
        self.meta.check_planes(z, channels, t)?;
        let region = self.meta.check_region(region)?;
        let mut decoder = self.page_decoder()?;
        self.read_by_page(z, channels, t, |ifd, samples| {
            let page = self.read_page_region(&mut decoder, ifd, region)?;
            // A page that serves one channel hands its buffer over.
            if let [only] = samples[..] {
                return Ok(vec![page.into_channel(only, None)]);
            }
            let whole = Region {
                x: 0,
                y: 0,
                width: page.width,
                height: page.height,
            };
            Ok(samples.iter().map(|&s| page.channel(s, whole)).collect())
        })
    }

    fn read_planes_sampled(
        &self,
        z: u32,
        channels: &[u32],
        t: u32,
        region: Region,
        sampling: &Sampling,
    ) -> Result<Vec<Plane>, SourceError> {
        self.meta.check_planes(z, channels, t)?;
        let region = self.meta.check_region(Some(region))?;
        let mut decoder = self.page_decoder()?;
        let file = decoder
            .inner()
            .get_ref()
            .try_clone()
            .map_err(|e| io_error(&self.path, e))?;
        self.read_by_page(z, channels, t, |ifd, samples| {
            match self.strip_table(&mut decoder, ifd)? {
                Some(table) => {
                    self.read_sampled_rows(&file, ifd, &table, samples, region, sampling)
                }
                None => {
                    let page = self.read_page_region(&mut decoder, ifd, region)?;
                    let whole = Region {
                        x: 0,
                        y: 0,
                        width: page.width,
                        height: page.height,
                    };
                    Ok(samples
                        .iter()
                        .map(|&s| sampling.apply(&page.channel(s, whole)))
                        .collect())
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// PNG and JPEG: one plane of one or three channels, decoded whole.

struct DecodedSource {
    path: PathBuf,
    format: Format,
    limits: Limits,
    meta: ImageMeta,
}

impl DecodedSource {
    fn open(path: &Path, limits: &Limits, format: Format) -> Result<DecodedSource, SourceError> {
        let page = decode_whole(path, format, limits)?;
        let channels = (0..page.channels)
            .map(|s| {
                let (min, max) = page.page.range(s);
                ChannelMeta {
                    name: None,
                    color: None,
                    emission_nm: None,
                    min,
                    max,
                    lut: None,
                    display_range: None,
                }
            })
            .collect::<Vec<_>>();
        let pixel_type = page.pixel_type;
        Ok(DecodedSource {
            path: path.to_path_buf(),
            format,
            limits: limits.clone(),
            meta: ImageMeta {
                name: file_name(path),
                size_x: page.page.width,
                size_y: page.page.height,
                size_z: 1,
                size_c: channels.len() as u32,
                size_t: 1,
                pixel_type,
                channels,
                physical_size_um: [None; 3],
                rgb: page.channels >= 3,
            },
        })
    }
}

impl ImageSource for DecodedSource {
    fn meta(&self) -> &ImageMeta {
        &self.meta
    }

    fn plane(&self, z: u32, c: u32, t: u32) -> Result<Plane, SourceError> {
        self.meta.check_plane(z, c, t)?;
        let whole = decode_whole(&self.path, self.format, &self.limits)?;
        Ok(whole.page.into_channel(c as usize, None))
    }

    fn read_planes(
        &self,
        z: u32,
        channels: &[u32],
        t: u32,
        region: Option<Region>,
    ) -> Result<Vec<Plane>, SourceError> {
        self.meta.check_planes(z, channels, t)?;
        let region = self.meta.check_region(region)?;
        let whole = decode_whole(&self.path, self.format, &self.limits)?;
        Ok(channels
            .iter()
            .map(|&c| whole.page.channel(c as usize, region))
            .collect())
    }
}

struct Decoded {
    page: Page,
    /// Samples that are channels (alpha is not).
    channels: usize,
    pixel_type: PixelType,
}

fn decode_whole(path: &Path, format: Format, limits: &Limits) -> Result<Decoded, SourceError> {
    let file = open_file(path, limits)?;
    let reader = BufReader::new(file);
    match format {
        Format::Png => decode_png(path, reader, limits),
        Format::Jpeg => decode_jpeg(path, reader, limits),
        Format::Tiff => unreachable!("TIFF pages are read by TiffSource"),
    }
}

fn decode_png(
    path: &Path,
    reader: BufReader<File>,
    limits: &Limits,
) -> Result<Decoded, SourceError> {
    let mut decoder = png::Decoder::new(reader);
    // Palette → RGB, low bit depths → 8 bits, tRNS → alpha; 16-bit stays 16-bit.
    decoder.set_transformations(png::Transformations::EXPAND);
    let (width, height, channels) = {
        let info = decoder.read_header_info().map_err(|e| invalid(path, e))?;
        let channels = match info.color_type {
            png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => 1,
            _ => 3,
        };
        (info.width, info.height, channels)
    };
    check_limit(path, width as u64 * height as u64 * channels, limits)?;
    // Room for the largest expanded form (RGBA, 16 bits), plus the decoder's own buffers.
    decoder.set_limits(png::Limits {
        bytes: (width as usize * height as usize * 8).saturating_add(1 << 20),
    });
    let mut reader = decoder.read_info().map_err(|e| invalid(path, e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| invalid(path, "PNG too large"))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(|e| invalid(path, e))?;
    buf.truncate(frame.buffer_size());
    let (samples, channels) = match frame.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        png::ColorType::Indexed => return Err(unsupported(path, "unexpanded PNG palette")),
    };
    let (pixel_type, data) = match frame.bit_depth {
        png::BitDepth::Eight => (PixelType::U8, widen(&buf)),
        png::BitDepth::Sixteen => (
            PixelType::U16,
            buf.chunks_exact(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .collect(),
        ),
        other => return Err(unsupported(path, format!("PNG bit depth {other:?}"))),
    };
    let page = Page {
        width,
        height,
        samples,
        planar: false,
        data,
    };
    Ok(Decoded {
        page,
        channels,
        pixel_type,
    })
}

fn decode_jpeg(
    path: &Path,
    reader: BufReader<File>,
    limits: &Limits,
) -> Result<Decoded, SourceError> {
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .set_max_width(u16::MAX as usize)
        .set_max_height(u16::MAX as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(reader, options);
    decoder.decode_headers().map_err(|e| invalid(path, e))?;
    let info = decoder
        .info()
        .ok_or_else(|| invalid(path, "no JPEG header"))?;
    let (width, height) = (info.width as u32, info.height as u32);
    let channels = if info.components == 1 { 1 } else { 3 };
    check_limit(path, width as u64 * height as u64 * channels, limits)?;
    let grey = matches!(decoder.input_colorspace(), Some(ColorSpace::Luma));
    let out = if grey {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    decoder.set_options(options.jpeg_set_out_colorspace(out));
    let pixels = decoder.decode().map_err(|e| invalid(path, e))?;
    let samples = if grey { 1 } else { 3 };
    if pixels.len() < width as usize * height as usize * samples {
        return Err(invalid(path, "JPEG decoded short"));
    }
    Ok(Decoded {
        page: Page {
            width,
            height,
            samples,
            planar: false,
            data: widen(&pixels),
        },
        channels: samples,
        pixel_type: PixelType::U8,
    })
}
