//! `render_row_plot` / `render_col_plot`: omero-py's line-profile GIFs.
//!
//! As `renderRowLinePlotGif`: a palette image the size of the plane, transparent
//! (index 0) everywhere, a white marker line (index 2) along the chosen row or column,
//! and per active channel a profile in that channel's colour (index 3, 4, …). Each
//! profile value is `(v − min) × (range − 1) / max`, with min/max the channel's pixel
//! range over the image and range the plane's height (row plots, drawn upwards from the
//! bottom) or width (column plots, drawn rightwards); a channel whose max is 0 has no
//! profile, and later channels take its palette slot, as in omero-py. Consecutive
//! values are joined by a segment, as PIL's `line` draws them.

use super::render::RenderSettings;
use super::source::{ImageSource, Region, SourceError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Row,
    Column,
}

const TRANSPARENT: u8 = 0;
const FOREGROUND: u8 = 2;

/// A palette image: one byte per pixel, row-major.
struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn put(&mut self, x: i64, y: i64, index: u8) {
        if (0..self.width as i64).contains(&x) && (0..self.height as i64).contains(&y) {
            self.pixels[(y as usize) * self.width as usize + x as usize] = index;
        }
    }

    /// An axis-parallel segment `line_width` pixels thick (PIL widens a line across its
    /// direction, about its centre).
    fn segment(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), line_width: u32, index: u8) {
        let before = (line_width as i64 - 1) / 2;
        let after = line_width as i64 / 2;
        let (xa, xb) = (x0.min(x1), x0.max(x1));
        let (ya, yb) = (y0.min(y1), y0.max(y1));
        let vertical = x0 == x1;
        for x in xa..=xb {
            for y in ya..=yb {
                if vertical {
                    for dx in -before..=after {
                        self.put(x + dx, y, index);
                    }
                } else {
                    for dy in -before..=after {
                        self.put(x, y + dy, index);
                    }
                }
            }
        }
    }
}

/// Draws the plot of `position` (a row or column) at plane (z, t), with the active
/// channels and colours of `settings`.
pub fn line_plot_gif(
    source: &dyn ImageSource,
    settings: &RenderSettings,
    axis: Axis,
    (z, t): (u32, u32),
    position: u32,
    line_width: u32,
) -> Result<Vec<u8>, SourceError> {
    let meta = source.meta();
    let (width, height) = (meta.size_x, meta.size_y);
    let line_width = line_width.max(1);
    let mut canvas = Canvas {
        width,
        height,
        pixels: vec![TRANSPARENT; width as usize * height as usize],
    };
    let active: Vec<u32> = (0..meta.size_c)
        .filter(|&c| settings.channels[c as usize].active)
        .collect();
    // Palette: transparent, black (background), white (marker), the channel colours.
    let mut palette: Vec<[u8; 3]> = vec![[0, 0, 0], [0, 0, 0], [255, 255, 255]];
    palette.extend(active.iter().map(|&c| settings.channels[c as usize].color));

    let (extent, region) = match axis {
        Axis::Row => (
            height,
            Region {
                x: 0,
                y: position,
                width,
                height: 1,
            },
        ),
        Axis::Column => (
            width,
            Region {
                x: position,
                y: 0,
                width: 1,
                height,
            },
        ),
    };
    let lines = if active.is_empty() {
        Vec::new()
    } else {
        source.read_planes(z, &active, t, Some(region))?
    };
    match axis {
        Axis::Row => canvas.segment(
            (0, position as i64),
            (width as i64, position as i64),
            line_width,
            FOREGROUND,
        ),
        Axis::Column => canvas.segment(
            (position as i64, 0),
            (position as i64, height as i64),
            line_width,
            FOREGROUND,
        ),
    }
    let base = height as i64 - 1;
    let mut slot = 0u8;
    for (line, &c) in lines.iter().zip(&active) {
        let channel = &meta.channels[c as usize];
        if channel.max == 0 {
            continue;
        }
        let scale = (extent as f64 - 1.0) / channel.max as f64;
        // PIL truncates float coordinates towards zero.
        let values: Vec<i64> = line
            .data
            .iter()
            .map(|&v| ((v as f64 - channel.min as f64) * scale) as i64)
            .collect();
        let index = FOREGROUND + 1 + slot;
        slot += 1;
        let mut last = values[0];
        for (i, &v) in values.iter().enumerate() {
            let i = i as i64;
            match axis {
                Axis::Row => canvas.segment((i, base - last), (i, base - v), line_width, index),
                Axis::Column => canvas.segment((last, i), (v, i), line_width, index),
            }
            last = v;
        }
    }
    Ok(encode_gif(&canvas, &palette, TRANSPARENT))
}

/// A single-frame GIF89a with a global palette and one transparent index.
fn encode_gif(canvas: &Canvas, palette: &[[u8; 3]], transparent: u8) -> Vec<u8> {
    // The palette size is a power of two from 4 (2 bits) to 256 entries.
    let bits = (1..=8u8)
        .find(|&b| (1usize << b) >= palette.len())
        .unwrap_or(8)
        .max(2);
    let mut out = Vec::with_capacity(canvas.pixels.len() / 4 + 1024);
    out.extend_from_slice(b"GIF89a");
    out.extend_from_slice(&(canvas.width as u16).to_le_bytes());
    out.extend_from_slice(&(canvas.height as u16).to_le_bytes());
    // Global colour table present, 8-bit colour resolution, its size.
    out.push(0x80 | 0x70 | (bits - 1));
    out.push(0); // background colour index
    out.push(0); // pixel aspect ratio
    for i in 0..(1usize << bits) {
        out.extend_from_slice(&palette.get(i).copied().unwrap_or([0, 0, 0]));
    }
    // Graphic control extension: the transparent index.
    out.extend_from_slice(&[0x21, 0xF9, 0x04, 0x01, 0, 0, transparent, 0]);
    // Image descriptor: the whole screen, no local palette, not interlaced.
    out.push(0x2C);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(canvas.width as u16).to_le_bytes());
    out.extend_from_slice(&(canvas.height as u16).to_le_bytes());
    out.push(0);
    out.push(bits);
    let data = weezl::encode::Encoder::new(weezl::BitOrder::Lsb, bits)
        .encode(&canvas.pixels)
        .expect("palette indexes fit the code size");
    for block in data.chunks(255) {
        out.push(block.len() as u8);
        out.extend_from_slice(block);
    }
    out.push(0);
    out.push(0x3B);
    out
}

/// A decoded single-frame GIF: (width, height, palette, transparent index, pixels).
pub type DecodedGif = (u32, u32, Vec<[u8; 3]>, Option<u8>, Vec<u8>);

/// Decodes what [`encode_gif`] writes (tests and the compatibility suite read plots
/// back with it).
pub fn decode_gif(bytes: &[u8]) -> Option<DecodedGif> {
    let u16_at = |i: usize| Some(u16::from_le_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]) as u32);
    if !bytes.starts_with(b"GIF89a") && !bytes.starts_with(b"GIF87a") {
        return None;
    }
    let (width, height) = (u16_at(6)?, u16_at(8)?);
    let packed = *bytes.get(10)?;
    let mut i = 13;
    let mut palette = Vec::new();
    if packed & 0x80 != 0 {
        for _ in 0..(1usize << ((packed & 7) + 1)) {
            palette.push([*bytes.get(i)?, *bytes.get(i + 1)?, *bytes.get(i + 2)?]);
            i += 3;
        }
    }
    let mut transparent = None;
    loop {
        match *bytes.get(i)? {
            0x21 => {
                let label = *bytes.get(i + 1)?;
                i += 2;
                if label == 0xF9 && *bytes.get(i + 1)? & 1 == 1 {
                    transparent = Some(*bytes.get(i + 4)?);
                }
                while *bytes.get(i)? != 0 {
                    i += *bytes.get(i)? as usize + 1;
                }
                i += 1;
            }
            0x2C => {
                i += 10;
                let code_size = *bytes.get(i)?;
                i += 1;
                let mut data = Vec::new();
                while *bytes.get(i)? != 0 {
                    let n = *bytes.get(i)? as usize;
                    data.extend_from_slice(bytes.get(i + 1..i + 1 + n)?);
                    i += n + 1;
                }
                let pixels = weezl::decode::Decoder::new(weezl::BitOrder::Lsb, code_size)
                    .decode(&data)
                    .ok()?;
                return Some((width, height, palette, transparent, pixels));
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_round_trips() {
        let canvas = Canvas {
            width: 5,
            height: 3,
            pixels: vec![0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 0, 0, 4, 4, 4],
        };
        let palette = [[0, 0, 0], [1, 2, 3], [255, 255, 255], [9, 9, 9], [7, 7, 7]];
        let gif = encode_gif(&canvas, &palette, 0);
        let (w, h, pal, transparent, pixels) = decode_gif(&gif).unwrap();
        assert_eq!((w, h, transparent), (5, 3, Some(0)));
        assert_eq!(pal.len(), 8);
        assert_eq!(&pal[..5], &palette);
        assert_eq!(pixels, canvas.pixels);
    }

    #[test]
    fn wide_segments_widen_across_their_direction() {
        let mut canvas = Canvas {
            width: 5,
            height: 5,
            pixels: vec![0; 25],
        };
        canvas.segment((0, 2), (5, 2), 3, 1);
        let rows: Vec<&[u8]> = canvas.pixels.chunks(5).collect();
        assert_eq!(rows[0], &[0; 5]);
        assert_eq!(rows[1], &[1; 5]);
        assert_eq!(rows[3], &[1; 5]);
        assert_eq!(rows[4], &[0; 5]);
    }
}
