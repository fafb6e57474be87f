//! OMERO's rendering of a plane to 8-bit RGB or grey, and its JPEG encoding.
//!
//! The settings follow OMERO's defaults (`RenderSettings::defaults`) and its query
//! parameters (`parse_query`: `c`, `m`, `p`, `q`, `maps`, `z`, `t`, `region`, `tile`). The
//! maths follow OMERO's renderer: a linear window maps each channel to 0–255 (rounding as
//! its quantizer does), an optional reverse map inverts it, and in the colour model every
//! active channel adds `value × colour / 255` into R, G and B, clamped at 255. In the
//! greyscale model the first active channel is drawn in grey.
//!
//! The pipeline is ordered for speed: read only the region, project, resize while still
//! 16-bit, and only then apply the window to the (small) result, then encode with
//! libjpeg-turbo.

use std::cell::RefCell;

use fast_image_resize as fr;
use serde_json::Value;

use super::sampling::Sampling;
pub use super::source::Region;
use super::source::{ImageMeta, ImageSource, Plane, SourceError};

/// OMERO's JPEG quality when the request has no `q`.
pub const DEFAULT_QUALITY: f32 = 0.85;
/// Tile edge when `tile=` gives none.
pub const DEFAULT_TILE_SIZE: u32 = 512;
/// OMERO's `omero.pixeldata.max_tile_length` default: larger tile edges are cut to this.
pub const MAX_TILE_SIZE: u32 = 1024;
/// Longest query string accepted.
pub const MAX_QUERY_LEN: usize = 32 * 1024;

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
    fn parse(name: &str) -> Option<Projection> {
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

fn check_index(what: &str, value: u32, size: u32) -> Result<(), BadRequest> {
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

fn bad(message: impl Into<String>) -> BadRequest {
    BadRequest(message.into())
}

/// A request value quoted in an error message: printable ASCII only, and short, so an
/// error body never carries markup or control characters back.
fn echo(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() && !"<>&\"'`".contains(c) || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if value.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

/// Splits and URL-decodes a query string (`+` is a space); a repeated key keeps its last
/// value, as Django's `request.GET[key]` does.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, BadRequest> {
    if query.len() > MAX_QUERY_LEN {
        return Err(bad("query string too long"));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let (k, v) = (url_decode(k)?, url_decode(v)?);
        pairs.retain(|(key, _)| *key != k);
        pairs.push((k, v));
    }
    Ok(pairs)
}

fn url_decode(s: &str) -> Result<String, BadRequest> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    // Like Python's unquote: a stray % stays as it is.
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad("query string is not valid UTF-8"))
}

/// One entry of `c` as OMERO's `_split_channel_info` reads `[-]index[|start:end][$colour]`:
/// an entry whose index is not an integer is dropped, a window that does not parse is
/// no window, and the colour is kept as text (a hex colour or a LUT name).
#[derive(Debug, Clone, PartialEq)]
struct ChannelArg {
    /// 1-based; negative means listed but off.
    index: i64,
    window: Option<(f64, f64)>,
    color: Option<String>,
}

fn split_channel_info(value: &str) -> Vec<ChannelArg> {
    value
        .split(',')
        .filter_map(|entry| {
            let (head, rest) = match entry.split_once('|') {
                Some((h, r)) => (h, Some(r)),
                None => (entry, None),
            };
            // A colour may follow the index directly ("1$FF0000") or the window.
            let (index_text, mut color) = match head.trim().split_once('$') {
                Some((i, c)) => (i, Some(c.to_string())),
                None => (head.trim(), None),
            };
            let index: i64 = index_text.trim().parse().ok()?;
            let mut window = None;
            if let Some(rest) = rest {
                let rest = rest.trim();
                let window_text = match rest.split_once('$') {
                    Some((w, c)) => {
                        color = Some(c.to_string());
                        w
                    }
                    None => rest,
                };
                window = window_text.split_once(':').and_then(|(s, e)| {
                    let s: f64 = s.trim().parse().ok()?;
                    let e: f64 = e.trim().parse().ok()?;
                    (s.is_finite() && e.is_finite()).then_some((s, e))
                });
            }
            Some(ChannelArg {
                index,
                window,
                color,
            })
        })
        .collect()
}

/// omero-py's `splitHTMLColor`: RGB, RGBA, RRGGBB or RRGGBBAA hex digits (no `#`);
/// anything else is no colour.
pub fn split_html_color(text: &str) -> Option<[u8; 4]> {
    let digits: Vec<u8> = text
        .chars()
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()?;
    let wide: Vec<u8> = match digits.len() {
        3 | 4 => digits.iter().flat_map(|&d| [d, d]).collect(),
        6 | 8 => digits,
        _ => return None,
    };
    let byte = |i: usize| wide[2 * i] * 16 + wide[2 * i + 1];
    let alpha = if wide.len() == 8 { byte(3) } else { 255 };
    Some([byte(0), byte(1), byte(2), alpha])
}

/// OMERO's `_get_inverted_enabled`: per `maps` entry, whether `inverted` (or the
/// deprecated `reverse`) is enabled; an entry without either means "not inverted".
/// JSON that does not parse, or entries that are not objects, make the whole `maps`
/// ignored (`None`), as OMERO logs and carries on.
fn inverted_flags(value: &str) -> Option<Vec<bool>> {
    let json: Value = serde_json::from_str(value).ok()?;
    json.as_array()?
        .iter()
        .map(|entry| {
            let map = entry.as_object()?;
            let m = match map.get("inverted") {
                Some(Value::Null) | None => map.get("reverse"),
                found => found,
            };
            match m {
                None | Some(Value::Null) => Some(false),
                Some(Value::Object(m)) => Some(
                    matches!(m.get("enabled"), Some(Value::Bool(true)))
                        || matches!(m.get("enabled"), Some(Value::String(s)) if s == "true"),
                ),
                Some(_) => None,
            }
        })
        .collect()
}

/// omero-py's `set_active_channels` for the entries of `c`: a channel is on exactly
/// when its positive index is listed; only channels that are on take a window, colour
/// (or LUT) and inversion; and — OMERO's pairing — those come from the k-th entry of
/// `c` for the k-th image channel that `c` mentions, counting in channel order. Entries
/// for channels the image does not have are ignored.
fn apply_channel_args(
    channels: &mut [ChannelSettings],
    args: &[ChannelArg],
    inversions: Option<&[bool]>,
) {
    let mut k = 0;
    for (c, ch) in channels.iter_mut().enumerate() {
        let one_based = c as i64 + 1;
        ch.active = args.iter().any(|a| a.index == one_based);
        if ch.active {
            if let Some(&inverted) = inversions.and_then(|flags| flags.get(k)) {
                ch.inverted = inverted;
            }
            let arg = &args[k];
            if let Some((start, end)) = arg.window {
                ch.start = start;
                ch.end = end;
            }
            match arg.color.as_deref() {
                None | Some("") => {}
                Some(lut) if lut.ends_with(".lut") => ch.lut = Some(lut.to_string()),
                Some(text) => {
                    if let Some([r, g, b, a]) = split_html_color(text) {
                        ch.color = [r, g, b];
                        ch.alpha = a;
                        ch.lut = None;
                        ch.file_lut = None;
                    } else if let Some(lut) = super::lut::find_imagej_name(text) {
                        // ImageJ's menu names ("Fire", "3-3-2 RGB", "Red/Green"): the
                        // table OMERO keeps under its file name.
                        ch.lut = Some(lut.name.to_string());
                    }
                }
            }
        }
        if args.iter().any(|a| a.index.abs() == one_based) {
            k += 1;
        }
    }
}

/// `p`: `name[|start:end]`. As omero-py, an unknown name renders as `normal`, a range
/// that does not parse means every Z, and a range is clipped to the Z planes (the T
/// count under `ia=1`, where omero-py swaps the two).
fn parse_projection(value: &str, z_count: u32) -> (Projection, Option<(i64, i64)>) {
    let (name, range) = match value.split_once('|') {
        Some((n, r)) => (n, Some(r)),
        None => (value, None),
    };
    let projection = Projection::parse(name).unwrap_or(Projection::Normal);
    let range = range.and_then(|r| {
        let (s, e) = r.split_once(':')?;
        if e.contains(':') {
            return None;
        }
        let (s, e): (i64, i64) = (s.trim().parse().ok()?, e.trim().parse().ok()?);
        Some((s.max(0), e.min(z_count as i64 - 1)))
    });
    (projection, range)
}

fn parse_quality(value: &str) -> Result<f32, BadRequest> {
    match value.trim().parse::<f32>() {
        Ok(q) if (0.0..=1.0).contains(&q) => Ok(q),
        _ => Err(bad(format!(
            "invalid q \"{}\": JPEG quality must be a number from 0 to 1",
            echo(value)
        ))),
    }
}

fn parse_plane_index(what: &str, value: &str, size: u32) -> Result<u32, BadRequest> {
    let v: u32 = value.trim().parse().map_err(|_| {
        bad(format!(
            "invalid {what} \"{}\": expected a plane index",
            echo(value)
        ))
    })?;
    check_index(what, v, size)?;
    Ok(v)
}

/// Clips a region to the image; refuses one that starts outside it.
fn clip_region(x: u64, y: u64, w: u64, h: u64, meta: &ImageMeta) -> Result<Region, BadRequest> {
    if x >= meta.size_x as u64 || y >= meta.size_y as u64 {
        return Err(bad(format!(
            "region starts at {x},{y}, outside the {}x{} image",
            meta.size_x, meta.size_y
        )));
    }
    Ok(Region {
        x: x as u32,
        y: y as u32,
        width: w.min(meta.size_x as u64 - x) as u32,
        height: h.min(meta.size_y as u64 - y) as u32,
    })
}

fn parse_region(value: &str, meta: &ImageMeta) -> Result<Region, BadRequest> {
    let malformed = || bad(format!("malformed region argument, region={}", echo(value)));
    let fields: Vec<u64> = value
        .split(',')
        .map(|f| f.trim().parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| malformed())?;
    let [x, y, w, h] = fields[..] else {
        return Err(malformed());
    };
    if w == 0 || h == 0 {
        return Err(malformed());
    }
    clip_region(x, y, w, h, meta)
}

/// `tile=level,x,y[,w,h]`: x and y count tiles of the level, whose pixels are 2^level
/// full-resolution pixels on a side. Images up to [`LEVELS_ABOVE`] have level 0 only,
/// as OMERO answers for images without a pyramid. Returns the full-resolution region
/// and the downsampling factor.
fn parse_tile(value: &str, meta: &ImageMeta) -> Result<(Region, u32), BadRequest> {
    let malformed = || bad(format!("malformed tile argument, tile={}", echo(value)));
    let fields: Vec<&str> = value.split(',').map(str::trim).collect();
    if fields.len() < 3 {
        return Err(malformed());
    }
    let level: i64 = fields[0].parse().map_err(|_| malformed())?;
    let index = |f: &str| f.parse::<u64>().map_err(|_| malformed());
    let (tx, ty) = (index(fields[1])?, index(fields[2])?);
    let (mut w, mut h) = (DEFAULT_TILE_SIZE as i64, DEFAULT_TILE_SIZE as i64);
    if fields.len() > 4 {
        let size = |f: &str| f.parse::<i64>().map_err(|_| malformed());
        // As OMERO: a size ≤ 0 means the default, and sizes are capped.
        for (slot, f) in [(&mut w, fields[3]), (&mut h, fields[4])] {
            let v = size(f)?;
            *slot = if v <= 0 {
                DEFAULT_TILE_SIZE as i64
            } else {
                v.min(MAX_TILE_SIZE as i64)
            };
        }
    }
    if level < 0 {
        return Err(bad(format!("Invalid resolution level {level} < 0")));
    }
    let levels = resolution_levels(meta);
    if level > 0 && levels == 1 {
        return Err(bad(format!(
            "Invalid resolution level {level}, non pyramid file"
        )));
    }
    if level >= levels as i64 {
        // OMERO's words (and its trailing space).
        return Err(bad(format!(
            "Invalid resolution level, {level} > number of available levels {} ",
            levels - 1
        )));
    }
    let factor = 1u64 << level;
    let (w, h) = (w as u64 * factor, h as u64 * factor);
    let region =
        clip_region(tx.saturating_mul(w), ty.saturating_mul(h), w, h, meta).map_err(|_| {
            let at_level = if level > 0 {
                format!(" at level {level}")
            } else {
                String::new()
            };
            bad(format!(
                "tile {tx},{ty} of {}x{}{at_level} is outside the {}x{} image",
                w / factor,
                h / factor,
                meta.size_x,
                meta.size_y
            ))
        })?;
    Ok((region, factor as u32))
}

/// Parses a `render_image`/`render_image_region`/`render_thumbnail` query string (the
/// part after `?`, still URL-encoded) against the image it is for. Unknown keys are
/// ignored; every known one is validated.
pub fn parse_query(query: &str, meta: &ImageMeta) -> Result<RenderRequest, BadRequest> {
    let pairs = query_pairs(query)?;
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let mut request = RenderRequest::defaults(meta);
    let s = &mut request.settings;

    // The order follows OMERO's `_get_prepared_image`, which is lenient: what it cannot
    // use it ignores. `maps` only counts together with `c`.
    if let Some(c) = get("c") {
        let args = split_channel_info(c);
        let inversions = get("maps").and_then(inverted_flags);
        apply_channel_args(&mut s.channels, &args, inversions.as_deref());
    }
    match get("m") {
        Some("g") => s.model = Model::Greyscale,
        Some("c") => s.model = Model::Color,
        _ => {}
    }
    s.inverted_axis = get("ia") == Some("1");
    if let Some(v) = get("p") {
        let z_count = if s.inverted_axis {
            meta.size_t
        } else {
            meta.size_z
        };
        (s.projection, s.projection_range) = parse_projection(v, z_count);
    }
    if let Some(v) = get("q") {
        s.quality = parse_quality(v)?;
    }
    if let Some(v) = get("z") {
        s.z = parse_plane_index("z", v, meta.size_z)?;
    }
    if let Some(v) = get("t") {
        s.t = parse_plane_index("t", v, meta.size_t)?;
    }
    // As OMERO: a non-empty tile wins over region.
    request.region = match (get("tile"), get("region")) {
        (Some(tile), _) if !tile.is_empty() => {
            let (region, downsample) = parse_tile(tile, meta)?;
            request.downsample = downsample;
            Some(region)
        }
        (_, Some(region)) if !region.is_empty() => Some(parse_region(region, meta)?),
        _ => None,
    };
    Ok(request)
}

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
        return Ok(Rendered {
            width,
            height,
            channels: out_channels,
            pixels: vec![0; out_pixels as usize * out_channels as usize],
        });
    }

    let planes = match s.projection {
        Projection::Normal => match supersampled_size(region, width, height) {
            // Only the rows and columns SuperSampling's first pass keeps are read.
            Some((sw, sh)) => {
                let sampling = Sampling::nearest(region.width, region.height, sw, sh);
                source.read_planes_sampled(s.z, &active, s.t, region, &sampling)?
            }
            None => source.read_planes(s.z, &active, s.t, Some(region))?,
        },
        p => {
            let (z0, z1) = s.projection_range.unwrap_or((0, meta.size_z as i64 - 1));
            if z0 > z1 || z0 < 0 || z1 >= meta.size_z as i64 {
                return Err(RenderError::Unrenderable(format!(
                    "projection range {z0}:{z1} is not within Z 0 to {}",
                    meta.size_z - 1
                )));
            }
            project(source, &active, s.t, region, p, (z0 as u32, z1 as u32))?
        }
    };
    let planes = planes
        .into_iter()
        .map(|plane| resize(plane, width, height))
        .collect::<Result<Vec<_>, _>>()?;

    if out_channels == 1 {
        // The window writes straight into the encoder's input.
        let mut pixels = vec![0u8; out_pixels as usize];
        Window::new(&s.channels[active[0] as usize], pixels.len())
            .apply(&planes[0].data, &mut pixels);
        return Ok(Rendered {
            width,
            height,
            channels: 1,
            pixels,
        });
    }
    let mixes: Vec<ChannelMix> = active
        .iter()
        .map(|&c| ChannelMix::new(&s.channels[c as usize]))
        .collect();
    let pixels = mix_rows(&planes, &active, &s.channels, &mixes, width as usize);
    Ok(Rendered {
        width,
        height,
        channels: 3,
        pixels,
    })
}

/// What one active channel adds into R, G and B for each windowed value: a LUT the
/// gateway has (or the file's own) replaces the colour and is added without alpha, as
/// OMERO's renderer does; otherwise `value × colour / 255`, truncated, then scaled by
/// alpha / 255 when alpha is below 255, truncated again.
struct ChannelMix {
    contribution: Box<[[u8; 256]; 3]>,
    /// The component an opaque pure primary colour (red, green or blue) lights alone:
    /// its contribution is the windowed value itself.
    primary: Option<usize>,
}

impl ChannelMix {
    fn new(ch: &ChannelSettings) -> ChannelMix {
        let table = match ch.lut.as_deref().and_then(super::lut::find) {
            Some(lut) => Some(&lut.rgb),
            None => ch.file_lut.as_deref(),
        };
        let mut contribution = Box::new([[0u8; 256]; 3]);
        if let Some(table) = table {
            *contribution = *table;
            return ChannelMix {
                contribution,
                primary: None,
            };
        }
        for (component, &weight) in contribution.iter_mut().zip(&ch.color) {
            for (v, slot) in component.iter_mut().enumerate() {
                let colored = v as u32 * weight as u32 / 255;
                *slot = if ch.alpha < 255 {
                    (colored * ch.alpha as u32 / 255) as u8
                } else {
                    colored as u8
                };
            }
        }
        let primary = match (ch.color, ch.alpha) {
            ([255, 0, 0], 255) => Some(0),
            ([0, 255, 0], 255) => Some(1),
            ([0, 0, 255], 255) => Some(2),
            _ => None,
        };
        ChannelMix {
            contribution,
            primary,
        }
    }
}

/// Rows of the interleaved RGB output rendered together: the windowed rows of every
/// channel for one strip stay in the L1/L2 cache while they are mixed.
const STRIP_ROWS: usize = 16;

/// Windows every active channel and mixes it into interleaved RGB a strip of rows at a
/// time, straight into the buffer the JPEG encoder reads: the only full-plane buffer
/// is that output. Sums saturate at 255 as OMERO's renderer clamps them.
fn mix_rows(
    planes: &[Plane],
    active: &[u32],
    channels: &[ChannelSettings],
    mixes: &[ChannelMix],
    width: usize,
) -> Vec<u8> {
    let height = planes[0].data.len() / width;
    let mut pixels = vec![0u8; width * height * 3];
    // The default case, each channel an opaque primary of its own component: the
    // windowed rows are interleaved as they are.
    let mut lit = [None; 3];
    let own_primaries = mixes
        .iter()
        .enumerate()
        .all(|(i, m)| m.primary.is_some_and(|k| lit[k].replace(i).is_none()));
    let windows: Vec<Window> = active
        .iter()
        .map(|&c| Window::new(&channels[c as usize], pixels.len() / 3))
        .collect();
    // Large default renders: each component is its channel's table looked up at the
    // 16-bit value, written in place, with no windowed rows in between.
    let tables: Option<Vec<&[u8; 65536]>> = windows
        .iter()
        .map(|w| match w {
            Window::Table(t) => t[..].try_into().ok(),
            Window::Computed(_) => None,
        })
        .collect();
    if let (true, Some(tables)) = (own_primaries, tables) {
        let dark = [0u8; 65536];
        let no_plane = vec![0u16; width * STRIP_ROWS];
        for (strip, out) in pixels.chunks_mut(width * 3 * STRIP_ROWS).enumerate() {
            let first = strip * STRIP_ROWS * width;
            let span = out.len() / 3;
            let source = |k: usize| {
                lit[k].map_or((&no_plane[..span], &dark), |i| {
                    (&planes[i].data[first..first + span], tables[i])
                })
            };
            let ((r, tr), (g, tg), (b, tb)) = (source(0), source(1), source(2));
            for (px, ((&r, &g), &b)) in out.chunks_exact_mut(3).zip(r.iter().zip(g).zip(b)) {
                px.copy_from_slice(&[tr[r as usize], tg[g as usize], tb[b as usize]]);
            }
        }
        return pixels;
    }
    let mut windowed = vec![0u8; width * STRIP_ROWS * mixes.len()];
    let zeros = vec![0u8; width * STRIP_ROWS];
    for (strip, out) in pixels.chunks_mut(width * 3 * STRIP_ROWS).enumerate() {
        let rows = out.len() / (width * 3);
        let first = strip * STRIP_ROWS * width;
        let span = rows * width;
        for (i, (plane, window)) in planes.iter().zip(&windows).enumerate() {
            let row = &mut windowed[i * width * STRIP_ROWS..][..span];
            window.apply(&plane.data[first..first + span], row);
        }
        let strip_of = |i: usize| &windowed[i * width * STRIP_ROWS..][..span];
        if own_primaries {
            let source = |k: usize| lit[k].map_or(&zeros[..span], strip_of);
            let (r, g, b) = (source(0), source(1), source(2));
            for (px, ((&r, &g), &b)) in out.chunks_exact_mut(3).zip(r.iter().zip(g).zip(b)) {
                px.copy_from_slice(&[r, g, b]);
            }
            continue;
        }
        for (i, mix) in mixes.iter().enumerate() {
            let [tr, tg, tb] = &*mix.contribution;
            for (px, &v) in out.chunks_exact_mut(3).zip(strip_of(i)) {
                let v = v as usize;
                px[0] = px[0].saturating_add(tr[v]);
                px[1] = px[1].saturating_add(tg[v]);
                px[2] = px[2].saturating_add(tb[v]);
            }
        }
    }
    pixels
}

/// Outputs of at least this many pixels are windowed through a table of every 16-bit
/// value's result (64 KiB, built once per channel): one load per pixel instead of the
/// arithmetic, which the profile of a whole 2048² plane put at a fifth of the request.
/// Smaller outputs (thumbnails) compute each pixel, cheaper than filling the table.
const WINDOW_TABLE_FROM_PIXELS: usize = 1 << 18;

/// One channel's window (and reverse map) as [`quantize`] applies it, either computed
/// per pixel or looked up in a table made by `quantize` itself, so both give the same
/// bytes.
enum Window<'a> {
    Computed(&'a ChannelSettings),
    Table(Box<[u8]>),
}

impl<'a> Window<'a> {
    fn new(ch: &'a ChannelSettings, pixels: usize) -> Window<'a> {
        if pixels < WINDOW_TABLE_FROM_PIXELS {
            return Window::Computed(ch);
        }
        let every_value: Vec<u16> = (0..=u16::MAX).collect();
        let mut table = vec![0u8; every_value.len()].into_boxed_slice();
        quantize(&every_value, ch, &mut table);
        Window::Table(table)
    }

    fn apply(&self, src: &[u16], out: &mut [u8]) {
        match self {
            Window::Computed(ch) => quantize(src, ch, out),
            Window::Table(table) => {
                for (o, &x) in out.iter_mut().zip(src) {
                    *o = table[x as usize];
                }
            }
        }
    }
}

/// OMERO's linear quantization of a 16-bit plane through the window [start, end] to
/// 0–255: below the window 0, at or above its end 255, in between
/// round(255·(x − start)/(end − start)) with halves rounded up; then the reverse map if
/// set.
fn quantize(src: &[u16], ch: &ChannelSettings, out: &mut [u8]) {
    let (start, end) = (ch.start, ch.end);
    let integral = |v: f64| v.fract() == 0.0 && (0.0..=u16::MAX as f64).contains(&v);
    if end <= start {
        // An empty window is a threshold at its start.
        for (o, &x) in out.iter_mut().zip(src) {
            *o = if (x as f64) < start { 0 } else { 255 };
        }
    } else if integral(start) && integral(end) {
        quantize_integer(src, start as u32, end as u32, out);
    } else {
        let (start, width) = (start as f32, (end - start) as f32);
        for (o, &x) in out.iter_mut().zip(src) {
            let v = (x as f32 - start) * 255.0 / width + 0.5;
            *o = v.clamp(0.0, 255.0) as u8;
        }
    }
    if ch.inverted {
        for o in out.iter_mut() {
            *o = 255 - *o;
        }
    }
}

/// The usual case, integer window bounds, in exact integer arithmetic that vectorises
/// (float-to-byte conversion does not, and cost 4× as much):
/// floor((510·(x − s) + w) / 2w) with w = e − s, which is round-half-up of 255·(x − s)/w.
/// The division by the constant 2w is a multiply and shift, exact because the numerator
/// stays below 2^25 and 2w below 2^17 (so numerator × 2w < 2^42).
fn quantize_integer(src: &[u16], start: u32, end: u32, out: &mut [u8]) {
    let w = end - start;
    let d = 2 * w as u64;
    let m = (1u64 << 42).div_ceil(d);
    for (o, &x) in out.iter_mut().zip(src) {
        let n = 510 * ((x as u32).clamp(start, end) - start) + w;
        *o = ((n as u64 * m) >> 42) as u8;
    }
}

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
    let src = fr::images::TypedImageRef::<fr::pixels::U16>::new(
        plane.width,
        plane.height,
        bytemuck::cast_slice(&plane.data),
    )
    .map_err(|e| RenderError::Resize(e.to_string()))?;
    let mut dst = fr::images::TypedImage::<fr::pixels::U16>::new(width, height);
    let shrink = (plane.width as f64 / width as f64).min(plane.height as f64 / height as f64);
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

/// Keeps freed memory in the process for the next request instead of handing it back
/// to the kernel after each one, as glibc does by default for blocks from 128 KiB (its
/// dynamic mmap threshold) and for the top of the heap. A render allocates a few MiB
/// and frees them; faulting those pages in again on every request cost about a third of
/// a 512² render in the benchmark. Call once at worker start: it changes the process's
/// allocator settings (blocks up to 32 MiB come from the heap, which is trimmed only
/// above 256 MiB free). Does nothing on other C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's malloc parameters; it is safe to call at any
    // time and takes plain integers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        // One arena: a worker renders on a few threads at most, and only the main
        // arena's free memory at its top goes back fully when `release_free_memory`
        // trims.
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives the memory freed since the last call back to the system. The thresholds
/// above keep freed plane buffers for the next request, which is what makes bursts
/// fast; an idle worker calls this so that it does not keep them (glibc's
/// `malloc_trim`).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

// ---------------------------------------------------------------------------------------
// JPEG

thread_local! {
    // A libjpeg-turbo compressor per thread: set-up costs more than a small thumbnail.
    static COMPRESSOR: RefCell<Option<turbojpeg::Compressor>> = const { RefCell::new(None) };
}

/// Encodes with libjpeg-turbo at `quality` (0–1, as OMERO's `q`): grey for one channel;
/// for colour 4:2:0 chroma below 0.9 (as OMERO's default 0.85 gives) and 4:4:4 from 0.9.
pub fn encode_jpeg(img: &Rendered, quality: f32) -> Result<Vec<u8>, RenderError> {
    let (format, subsamp) = match img.channels {
        1 => (turbojpeg::PixelFormat::GRAY, turbojpeg::Subsamp::Gray),
        3 if quality < 0.9 => (turbojpeg::PixelFormat::RGB, turbojpeg::Subsamp::Sub2x2),
        3 => (turbojpeg::PixelFormat::RGB, turbojpeg::Subsamp::None),
        n => return Err(RenderError::Encode(format!("{n} channels"))),
    };
    let pitch = img.width as usize * img.channels as usize;
    if img.width == 0 || img.height == 0 || img.pixels.len() != pitch * img.height as usize {
        return Err(RenderError::Encode(
            "pixel buffer does not match the size".into(),
        ));
    }
    let q = (quality.clamp(0.0, 1.0) * 100.0).round().clamp(1.0, 100.0) as i32;
    let image = turbojpeg::Image {
        pixels: img.pixels.as_slice(),
        width: img.width as usize,
        pitch,
        height: img.height as usize,
        format,
    };
    let encode_err = |e: turbojpeg::Error| RenderError::Encode(e.to_string());
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(turbojpeg::Compressor::new().map_err(encode_err)?);
        }
        let compressor = slot.as_mut().expect("just set");
        compressor.set_quality(q).map_err(encode_err)?;
        compressor.set_subsamp(subsamp).map_err(encode_err)?;
        compressor.compress_to_vec(image).map_err(encode_err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::channel_colors::WHITE;

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

    /// The multiply-shift division equals plain integer division for every value and a
    /// spread of windows, including the widest.
    #[test]
    fn integer_quantization_is_exact() {
        let windows = [
            (0, 1),
            (0, 255),
            (100, 300),
            (7, 8),
            (1000, 1001),
            (0, 65535),
            (1, 65535),
            (12345, 54321),
            (65534, 65535),
            (3, 40000),
        ];
        let src: Vec<u16> = (0..=u16::MAX).collect();
        let mut out = vec![0u8; src.len()];
        for (s, e) in windows {
            quantize_integer(&src, s, e, &mut out);
            let w = (e - s) as u64;
            for (&x, &got) in src.iter().zip(&out) {
                let a = (x as u64).clamp(s as u64, e as u64) - s as u64;
                let expected = (510 * a + w) / (2 * w);
                assert_eq!(got as u64, expected, "window {s}:{e}, x={x}");
            }
        }
    }

    #[test]
    fn fractional_windows_and_thresholds() {
        let ch = |start: f64, end: f64, inverted: bool| ChannelSettings {
            active: true,
            start,
            end,
            color: WHITE,
            alpha: 255,
            lut: None,
            file_lut: None,
            inverted,
        };
        let src = [0u16, 100, 101, 150, 200, 201];
        let mut out = [0u8; 6];
        quantize(&src, &ch(100.5, 200.5, false), &mut out);
        assert_eq!(out, [0, 0, 1, 126, 254, 255]);
        quantize(&src, &ch(150.0, 150.0, false), &mut out);
        assert_eq!(out, [0, 0, 0, 255, 255, 255]);
        quantize(&src, &ch(150.0, 150.0, true), &mut out);
        assert_eq!(out, [255, 255, 255, 0, 0, 0]);
    }

    #[test]
    fn url_decoding() {
        assert_eq!(url_decode("a+b%7C%24%2c").unwrap(), "a b|$,");
        assert_eq!(url_decode("100%").unwrap(), "100%");
        assert_eq!(url_decode("%zz%4").unwrap(), "%zz%4");
        assert_eq!(url_decode("%C2%B5").unwrap(), "µ");
        assert!(url_decode("%FF").is_err());
    }
}
