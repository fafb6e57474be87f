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

pub use super::source::Region;
use super::source::{ImageMeta, ImageSource, Plane, SourceError};

/// OMERO's JPEG quality when the request has no `q`.
pub const DEFAULT_QUALITY: f32 = 0.85;
/// Tile edge when `tile=` gives none.
pub const DEFAULT_TILE_SIZE: u32 = 512;
/// OMERO's `omero.pixeldata.max_tile_length` default: larger tile edges are cut to this.
pub const MAX_TILE_SIZE: u32 = 1024;
/// Longest `maps` JSON accepted (after URL decoding).
pub const MAX_MAPS_JSON: usize = 16 * 1024;
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
    pub inverted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenderSettings {
    /// One entry per channel of the image.
    pub channels: Vec<ChannelSettings>,
    pub model: Model,
    pub projection: Projection,
    /// Inclusive Z range of a projection; `None` means every Z.
    pub projection_range: Option<(u32, u32)>,
    pub z: u32,
    pub t: u32,
    /// JPEG quality, 0–1.
    pub quality: f32,
}

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const WHITE: [u8; 3] = [255, 255, 255];

impl RenderSettings {
    /// OMERO's `resetDefaults`: the colour model for 2–7 channels, else greyscale; the
    /// first three channels active; the channel's stored colour, else one from its
    /// emission wavelength (white for channels without one when others have one), else
    /// red/green/blue by index; the window is the channel's global min/max (the pixel
    /// type's range when that is empty); Z in the middle, T = 0, quality 0.85.
    pub fn defaults(meta: &ImageMeta) -> RenderSettings {
        let any_emission = meta.channels.iter().any(|c| c.emission_nm.is_some());
        let channels = meta
            .channels
            .iter()
            .enumerate()
            .map(|(i, ch)| {
                let color = match (ch.color, any_emission, ch.emission_nm) {
                    (Some(c), _, _) => c,
                    (None, true, Some(w)) if w < 500.0 => BLUE,
                    (None, true, Some(w)) if w < 560.0 => GREEN,
                    (None, true, Some(_)) => RED,
                    (None, true, None) => WHITE,
                    (None, false, _) => [RED, GREEN, BLUE][i.min(2)],
                };
                let (start, end) = if ch.min < ch.max {
                    (ch.min as f64, ch.max as f64)
                } else {
                    (0.0, meta.pixel_type.max_value() as f64)
                };
                ChannelSettings {
                    active: i < 3,
                    start,
                    end,
                    color,
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
}

impl RenderRequest {
    /// The image's default rendering of the whole plane.
    pub fn defaults(meta: &ImageMeta) -> RenderRequest {
        RenderRequest {
            settings: RenderSettings::defaults(meta),
            region: None,
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

/// One entry of `c`: `[-]index[|start:end][$RRGGBB]`.
#[derive(Debug, Clone, PartialEq)]
struct ChannelArg {
    /// 0-based channel.
    channel: usize,
    active: bool,
    window: Option<(f64, f64)>,
    color: Option<[u8; 3]>,
}

fn parse_color(raw: &str, index: &str) -> Result<[u8; 3], BadRequest> {
    let hex = raw.trim().trim_start_matches('#');
    if hex.to_ascii_lowercase().ends_with(".lut") {
        return Err(bad(format!(
            "lookup tables are not supported (channel {index} in c asks for \"{}\")",
            echo(raw)
        )));
    }
    let digits: Option<Vec<u8>> = hex
        .chars()
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect();
    match digits.as_deref() {
        Some([r, g, b]) => Ok([r * 17, g * 17, b * 17]),
        Some([r1, r2, g1, g2, b1, b2]) => Ok([r1 * 16 + r2, g1 * 16 + g2, b1 * 16 + b2]),
        _ => Err(bad(format!(
            "invalid colour \"{}\" for channel {index} in c: expected RRGGBB",
            echo(raw)
        ))),
    }
}

fn parse_c(value: &str, meta: &ImageMeta) -> Result<Vec<ChannelArg>, BadRequest> {
    let entries: Vec<&str> = value.split(',').collect();
    if entries.len() > meta.size_c as usize {
        return Err(bad(format!(
            "c lists {} channels but the image has {}",
            entries.len(),
            meta.size_c
        )));
    }
    let usage = "expected [-]index[|start:end][$RRGGBB], e.g. c=1|100:505$0000FF,-2";
    entries
        .into_iter()
        .map(|entry| {
            let (head, rest) = match entry.split_once('|') {
                Some((h, r)) => (h, Some(r)),
                None => (entry, None),
            };
            // A colour may follow the index directly ("1$FF0000") or the window.
            let (index_text, mut color_text) = match head.split_once('$') {
                Some((i, c)) => (i.trim(), Some(c)),
                None => (head.trim(), None),
            };
            let index: i64 = index_text
                .parse()
                .map_err(|_| bad(format!("invalid channel \"{}\" in c: {usage}", echo(entry))))?;
            if index == 0 || index.unsigned_abs() > meta.size_c as u64 {
                return Err(bad(format!(
                    "channel {index} in c is out of range: the image has channels 1 to {}",
                    meta.size_c
                )));
            }
            let mut window = None;
            if let Some(rest) = rest {
                let window_text = match rest.split_once('$') {
                    Some((w, c)) => {
                        color_text = Some(c);
                        w
                    }
                    None => rest,
                };
                let parsed = window_text.split_once(':').and_then(|(s, e)| {
                    let s: f64 = s.trim().parse().ok()?;
                    let e: f64 = e.trim().parse().ok()?;
                    (s.is_finite() && e.is_finite()).then_some((s, e))
                });
                match parsed {
                    Some(w) => window = Some(w),
                    None => {
                        return Err(bad(format!(
                            "invalid window \"{}\" for channel {index} in c: expected start:end",
                            echo(window_text)
                        )));
                    }
                }
            }
            let color = match color_text {
                Some(c) => Some(parse_color(c, index_text)?),
                None => None,
            };
            Ok(ChannelArg {
                channel: (index.unsigned_abs() - 1) as usize,
                active: index > 0,
                window,
                color,
            })
        })
        .collect()
}

/// `maps`: one JSON object per `c` entry (or per channel without `c`), whose
/// `inverted` (or the deprecated `reverse`) `{"enabled": …}` reverses the intensities.
/// Other maps (quantization families) are accepted and ignored.
fn parse_maps(value: &str, slots: usize) -> Result<Vec<Option<bool>>, BadRequest> {
    if value.len() > MAX_MAPS_JSON {
        return Err(bad(format!(
            "maps JSON is too large (more than {MAX_MAPS_JSON} bytes)"
        )));
    }
    let failed = || bad("Failed to parse maps JSON");
    let json: Value = serde_json::from_str(value).map_err(|_| failed())?;
    let list = json.as_array().ok_or_else(failed)?;
    if list.len() > slots {
        return Err(bad(format!(
            "Number of \"maps\" ({}) is more than the number of channels ({slots})",
            list.len()
        )));
    }
    list.iter()
        .map(|entry| match entry {
            Value::Null => Ok(None),
            Value::Object(map) => {
                let Some(m) = map.get("inverted").or_else(|| map.get("reverse")) else {
                    return Ok(Some(false));
                };
                let enabled = m.get("enabled");
                Ok(Some(
                    matches!(enabled, Some(Value::Bool(true)))
                        || matches!(enabled, Some(Value::String(s)) if s == "true"),
                ))
            }
            _ => Err(failed()),
        })
        .collect()
}

fn parse_projection(
    value: &str,
    meta: &ImageMeta,
) -> Result<(Projection, Option<(u32, u32)>), BadRequest> {
    let (name, range) = match value.split_once('|') {
        Some((n, r)) => (n, Some(r)),
        None => (value, None),
    };
    let projection = Projection::parse(name.trim()).ok_or_else(|| {
        bad(format!(
            "invalid projection \"{}\": expected normal, intmax, intmean or intsum",
            echo(name)
        ))
    })?;
    let range = match range {
        None => None,
        Some(r) => {
            let parsed = r.split_once(':').and_then(|(s, e)| {
                Some((s.trim().parse::<u32>().ok()?, e.trim().parse::<u32>().ok()?))
            });
            let (start, end) = parsed.ok_or_else(|| {
                bad(format!(
                    "invalid projection range \"{}\": expected start:end (0-based Z)",
                    echo(r)
                ))
            })?;
            if start > end || end >= meta.size_z {
                return Err(bad(format!(
                    "projection range {start}:{end} is outside Z 0 to {}",
                    meta.size_z - 1
                )));
            }
            Some((start, end))
        }
    };
    Ok((projection, range))
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

/// `tile=level,x,y[,w,h]`: x and y count tiles. This gateway serves full resolution only
/// (level 0), as OMERO does for images without a pyramid.
fn parse_tile(value: &str, meta: &ImageMeta) -> Result<Region, BadRequest> {
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
    if level > 0 {
        return Err(bad(format!(
            "Invalid resolution level {level}, non pyramid file"
        )));
    }
    let (w, h) = (w as u64, h as u64);
    clip_region(tx.saturating_mul(w), ty.saturating_mul(h), w, h, meta).map_err(|_| {
        bad(format!(
            "tile {tx},{ty} of {w}x{h} is outside the {}x{} image",
            meta.size_x, meta.size_y
        ))
    })
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

    let c_args = match get("c") {
        Some(v) => Some(parse_c(v, meta)?),
        None => None,
    };
    if let Some(args) = &c_args {
        // As OMERO's setActiveChannels: listed channels with a positive index are
        // active; every other channel is off.
        for ch in &mut s.channels {
            ch.active = false;
        }
        for arg in args {
            let ch = &mut s.channels[arg.channel];
            ch.active |= arg.active;
            if let Some((start, end)) = arg.window {
                ch.start = start;
                ch.end = end;
            }
            if let Some(color) = arg.color {
                ch.color = color;
            }
        }
    }
    if let Some(v) = get("maps") {
        // Map i belongs to the i-th entry of c (OMERO's pairing), or to channel i.
        let targets: Vec<usize> = match &c_args {
            Some(args) => args.iter().map(|a| a.channel).collect(),
            None => (0..s.channels.len()).collect(),
        };
        for (slot, inverted) in parse_maps(v, targets.len())?.into_iter().enumerate() {
            if let Some(inv) = inverted {
                s.channels[targets[slot]].inverted = inv;
            }
        }
    }
    match get("m") {
        None => {}
        Some("g") => s.model = Model::Greyscale,
        Some("c") => s.model = Model::Color,
        Some(other) => {
            return Err(bad(format!(
                "invalid m \"{}\": Query parameter \"m\" must have value either \"g\" or \"c\"",
                echo(other)
            )));
        }
    }
    if let Some(v) = get("p") {
        (s.projection, s.projection_range) = parse_projection(v, meta)?;
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
        (Some(tile), _) if !tile.is_empty() => Some(parse_tile(tile, meta)?),
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
    let (width, height) = output_size(region, out)?;
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
        Projection::Normal => source.read_planes(s.z, &active, s.t, Some(region))?,
        p => {
            let (z0, z1) = s.projection_range.unwrap_or((0, meta.size_z - 1));
            if z0 > z1 || z1 >= meta.size_z {
                return Err(RenderError::Invalid(format!(
                    "projection range {z0}:{z1} is outside Z 0 to {}",
                    meta.size_z - 1
                )));
            }
            project(source, &active, s.t, region, p, (z0, z1))?
        }
    };
    let planes = planes
        .into_iter()
        .map(|plane| resize(plane, width, height))
        .collect::<Result<Vec<_>, _>>()?;

    let n = out_pixels as usize;
    let mut scratch = vec![0u8; n];
    if out_channels == 1 {
        let ch = &s.channels[active[0] as usize];
        quantize(&planes[0].data, ch, &mut scratch);
        return Ok(Rendered {
            width,
            height,
            channels: 1,
            pixels: scratch,
        });
    }
    // Additive mixing into planar R, G, B; saturating adds clamp at 255 as OMERO does.
    let mut rgb = [vec![0u8; n], vec![0u8; n], vec![0u8; n]];
    let mut touched = [false; 3];
    for (plane, &c) in planes.iter().zip(&active) {
        let ch = &s.channels[c as usize];
        // A pure primary colour into a component nothing has written yet (the default
        // red/green/blue case) is quantized straight into place.
        let primary = match ch.color {
            [255, 0, 0] => Some(0),
            [0, 255, 0] => Some(1),
            [0, 0, 255] => Some(2),
            _ => None,
        };
        if let Some(k) = primary.filter(|&k| !touched[k]) {
            quantize(&plane.data, ch, &mut rgb[k]);
            touched[k] = true;
            continue;
        }
        quantize(&plane.data, ch, &mut scratch);
        for (k, (component, &weight)) in rgb.iter_mut().zip(&ch.color).enumerate() {
            add_weighted(component, &scratch, weight);
            touched[k] |= weight > 0;
        }
    }
    let mut pixels = vec![0u8; n * 3];
    for (px, ((&r, &g), &b)) in pixels
        .chunks_exact_mut(3)
        .zip(rgb[0].iter().zip(&rgb[1]).zip(&rgb[2]))
    {
        px.copy_from_slice(&[r, g, b]);
    }
    Ok(Rendered {
        width,
        height,
        channels: 3,
        pixels,
    })
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

/// `acc += value × weight / 255`, saturating at 255 (OMERO truncates the product).
fn add_weighted(acc: &mut [u8], values: &[u8], weight: u8) {
    match weight {
        0 => {}
        255 => {
            for (a, &v) in acc.iter_mut().zip(values) {
                *a = a.saturating_add(v);
            }
        }
        w => {
            for (a, &v) in acc.iter_mut().zip(values) {
                *a = a.saturating_add((v as u16 * w as u16 / 255) as u8);
            }
        }
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
