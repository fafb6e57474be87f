//! OMERO's render query parameters (`c`, `m`, `p`, `q`, `maps`, `z`, `t`, `region`,
//! `tile`) read into a `RenderRequest`, and `render_jpeg`, a query's plane rendered
//! to JPEG: what every image view and the thumbnail publisher do.

use serde_json::Value;

use super::strict_query_pairs;
use crate::gateway::imaging::lut;
use crate::gateway::imaging::render::{
    BadRequest, ChannelSettings, DEFAULT_TILE_SIZE, MAX_TILE_SIZE, Model, Projection, Region,
    RenderRequest, check_index, resolution_levels,
};
use crate::gateway::imaging::source::ImageMeta;

/// Longest query string accepted.
pub const MAX_QUERY_LEN: usize = 32 * 1024;

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

/// The query's pairs, decoded by the gateway's one decoder (`gateway::query`; bytes
/// that are not UTF-8 are a 400 here); a repeated key keeps its last value, as
/// Django's `request.GET[key]` does.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, BadRequest> {
    if query.len() > MAX_QUERY_LEN {
        return Err(bad("query string too long"));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in strict_query_pairs(query).map_err(|e| bad(e.to_string()))? {
        pairs.retain(|(key, _)| *key != k);
        pairs.push((k, v));
    }
    Ok(pairs)
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
                    } else if let Some(lut) = lut::find_imagej_name(text) {
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

/// Renders a plane (or region) of `source` as the query asks, to JPEG: the work behind
/// every image route, and behind the thumbnails published ahead of requests.
pub(in crate::gateway) fn render_query_to_jpeg(
    source: &dyn crate::gateway::imaging::source::ImageSource,
    query: &str,
    z: Option<u32>,
    t: Option<u32>,
    region_required: bool,
    size: crate::gateway::imaging::render::OutputSize,
    limits: &crate::gateway::imaging::render::RenderLimits,
) -> Result<Vec<u8>, RenderFailure> {
    let mut request =
        parse_query(query, source.meta()).map_err(|e| RenderFailure::BadRequest(e.0))?;
    request
        .set_plane(z, t, source.meta())
        .map_err(|e| RenderFailure::BadRequest(e.0))?;
    if region_required && request.region.is_none() {
        return Err(RenderFailure::BadRequest(
            "tile or region argument required".into(),
        ));
    }
    crate::gateway::imaging::render::render_jpeg(source, &request, size, limits).map_err(
        |e| match e {
            crate::gateway::imaging::render::RenderError::Invalid(m)
            | crate::gateway::imaging::render::RenderError::TooLarge(m) => {
                RenderFailure::BadRequest(m)
            }
            other => RenderFailure::Failed(other.to_string()),
        },
    )
}

#[derive(Debug)]
pub(in crate::gateway) enum RenderFailure {
    BadRequest(String),
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ImageMeta {
        ImageMeta {
            name: "m".into(),
            size_x: 10,
            size_y: 10,
            size_z: 1,
            size_c: 1,
            size_t: 1,
            pixel_type: crate::gateway::imaging::source::PixelType::U8,
            channels: Vec::new(),
            physical_size_um: [None; 3],
            rgb: false,
        }
    }

    /// The render parameters go through the one decoder: `%+1` is not an escape (the
    /// error quotes `% 1`, not a control character), bytes that are not UTF-8 are
    /// a 400, and a repeated key keeps its last value.
    #[test]
    fn render_parameters_use_the_one_decoder() {
        let err = parse_query("q=%+1", &meta()).unwrap_err();
        assert!(err.0.contains("invalid q \"% 1\""), "{err}");
        let err = parse_query("m=%FF", &meta()).unwrap_err();
        assert_eq!(err.0, "query string is not valid UTF-8");
        let request = parse_query("q=0.5&q=%30%2E25", &meta()).unwrap();
        assert_eq!(request.settings.quality, 0.25);
        assert_eq!(
            parse_query("m=%67", &meta()).unwrap().settings.model,
            Model::Greyscale
        );
    }
}
