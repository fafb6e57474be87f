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
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sampling::Sampling;

mod decoded;
mod imagej;
mod mapped;
pub use mapped::{MAX_MAPPED_FILE, release_kept_mappings};
mod ome_xml;
mod page;
mod strips;
mod tiff;

use decoded::DecodedSource;
use tiff::TiffSource;

pub use ome_xml::{
    OmeChannel, OmeImage, length_in_um, ome_color_rgb, ome_color_value, parse_ome_xml,
};

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
        product(&[
            self.size_x,
            self.size_y,
            self.size_z,
            self.size_c,
            self.size_t,
        ])
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

    /// Several channels of one (z, t) within `region`, handed to `visit` a band of
    /// rows at a time, top to bottom: one slice per channel (in `channels`' order) of
    /// the band's rows of the region, at most `band_rows` rows each. A render mixes
    /// each band while it is in the cache instead of holding whole planes. Sources
    /// that read rows directly (uncompressed TIFF strips as wide as the region)
    /// override this; the others read the planes whole and hand them over in bands.
    fn read_row_bands(
        &self,
        z: u32,
        channels: &[u32],
        t: u32,
        region: Region,
        band_rows: u32,
        visit: &mut dyn FnMut(&[&[u16]]),
    ) -> Result<(), SourceError> {
        let planes = self.read_planes(z, channels, t, Some(region))?;
        in_row_bands(&planes, band_rows, visit);
        Ok(())
    }
}

/// Hands `planes` (all of one size) to `visit` a band of at most `band_rows` rows at a
/// time, as [`ImageSource::read_row_bands`] does.
pub fn in_row_bands(planes: &[Plane], band_rows: u32, visit: &mut dyn FnMut(&[&[u16]])) {
    let Some(first) = planes.first() else {
        return;
    };
    let band = first.width as usize * band_rows.max(1) as usize;
    let total = first.data.len();
    let mut slices: Vec<&[u16]> = Vec::with_capacity(planes.len());
    let mut start = 0;
    while start < total {
        let end = (start + band).min(total);
        slices.clear();
        slices.extend(planes.iter().map(|p| &p.data[start..end]));
        visit(&slices);
        start = end;
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
        "{path}: image declares {} pixels, more than the limit of {max}; refusing to decode it",
        at_least(*pixels)
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
            .filter(|_| std::env::var(crate::gateway::TEST_ROUTES_ENV).as_deref() == Ok("1"))
    });
    if told.is_some() && path.file_name() == told.as_deref() {
        loop {
            std::thread::park();
        }
    }
}

/// The product of declared sizes, saturating at u64::MAX: a few u32 sizes multiply past
/// u64, and a wrapped product would be a small count that passes every limit.
pub(super) fn product(sizes: &[u32]) -> u64 {
    sizes
        .iter()
        .fold(1u64, |n, &size| n.saturating_mul(size as u64))
}

/// A count from a product of declared sizes, which saturates at u64::MAX: that stands
/// for any count at least that large, and is shown so.
fn at_least(count: u64) -> String {
    if count == u64::MAX {
        format!("{count} or more")
    } else {
        count.to_string()
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
