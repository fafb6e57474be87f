//! Windowing (the linear map of each channel to 0–255) and mixing the active channels
//! into RGB, as OMERO's renderer and quantizer do.

use super::super::lut;
use super::ChannelSettings;

/// What one active channel adds into R, G and B for each windowed value: a LUT the
/// gateway has (or the file's own) replaces the colour and is added without alpha, as
/// OMERO's renderer does; otherwise `value × colour / 255`, truncated, then scaled by
/// alpha / 255 when alpha is below 255, truncated again.
pub(super) struct ChannelMix {
    contribution: Box<[[u8; 256]; 3]>,
    /// The component an opaque pure primary colour (red, green or blue) lights alone:
    /// its contribution is the windowed value itself.
    primary: Option<usize>,
}

impl ChannelMix {
    pub(super) fn new(ch: &ChannelSettings) -> ChannelMix {
        let table = match ch.lut.as_deref().and_then(lut::find) {
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

/// Windows every active channel and mixes it into interleaved RGB (or, in the
/// greyscale model, windows the one channel into grey), a band of rows at a time,
/// appending to the buffer the JPEG encoder reads: that output is the only full-plane
/// buffer, and each band of it is written while the band's rows are in the cache. The
/// output grows by `Vec::extend` from iterators of known length, which write straight
/// into the reserved memory: it is never zeroed first. Sums saturate at 255 as OMERO's
/// renderer clamps them.
pub(super) struct Mixer<'a> {
    width: usize,
    windows: Vec<Window<'a>>,
    mixes: Vec<ChannelMix>,
    /// For each of R, G and B, the one channel that lights it, when every channel is an
    /// opaque primary of its own component (the default case): the windowed rows are
    /// then interleaved as they are.
    lit: Option<[Option<usize>; 3]>,
    /// Windowed rows of one strip, every channel's.
    windowed: Vec<u8>,
    /// What an unlit component reads: zero values (grown to the largest band) and
    /// their table, all zeros, or zero windowed rows of a strip.
    blank: Vec<u16>,
    dark: Box<[u8; 65536]>,
    unlit: Vec<u8>,
    /// The output so far: grey bytes, or RGB pixels.
    grey: Option<Vec<u8>>,
    rgb: Vec<[u8; 3]>,
}

impl<'a> Mixer<'a> {
    /// A mixer of `active` channels' bands into an output of `pixels` pixels
    /// `width` wide: grey (the first channel alone) or RGB.
    pub(super) fn new(
        active: &[u32],
        channels: &'a [ChannelSettings],
        grey: bool,
        width: usize,
        pixels: usize,
    ) -> Mixer<'a> {
        let active = if grey { &active[..1] } else { active };
        let windows = active
            .iter()
            .map(|&c| Window::new(&channels[c as usize], pixels))
            .collect();
        let mixes: Vec<ChannelMix> = if grey {
            Vec::new()
        } else {
            active
                .iter()
                .map(|&c| ChannelMix::new(&channels[c as usize]))
                .collect()
        };
        let mut lit = [None; 3];
        let own_primaries = !grey
            && mixes
                .iter()
                .enumerate()
                .all(|(i, m)| m.primary.is_some_and(|k| lit[k].replace(i).is_none()));
        Mixer {
            width,
            windows,
            mixes,
            lit: own_primaries.then_some(lit),
            windowed: Vec::new(),
            blank: Vec::new(),
            dark: Box::new([0; 65536]),
            unlit: Vec::new(),
            grey: grey.then(|| Vec::with_capacity(pixels)),
            rgb: Vec::with_capacity(if grey { 0 } else { pixels }),
        }
    }

    /// The mixed output: grey bytes or interleaved RGB.
    pub(super) fn into_pixels(self) -> Vec<u8> {
        match self.grey {
            Some(grey) => grey,
            // The same buffer, its pixels seen as bytes (no copy).
            None => self.rgb.into_flattened(),
        }
    }

    /// Mixes one band (a slice of rows per active channel, all the same length, a
    /// whole number of rows) onto the end of the output.
    pub(super) fn mix_band(&mut self, band: &[&[u16]]) {
        let span = band[0].len();
        if let Some(grey) = &mut self.grey {
            // The window writes straight into the encoder's input.
            let start = grey.len();
            grey.resize(start + span, 0);
            self.windows[0].apply(band[0], &mut grey[start..]);
            return;
        }
        // Large default renders: each component is its channel's table looked up at
        // the 16-bit value, with no windowed rows in between.
        if let Some(lit) = self.lit {
            let tables: Option<Vec<&[u8; 65536]>> = self
                .windows
                .iter()
                .map(|w| match w {
                    Window::Table(t) => t[..].try_into().ok(),
                    Window::Computed(_) => None,
                })
                .collect();
            if let Some(tables) = tables {
                if self.blank.len() < span {
                    self.blank.resize(span, 0);
                }
                let (blank, dark) = (&self.blank[..span], &*self.dark);
                let source = |k: usize| lit[k].map_or((blank, dark), |i| (band[i], tables[i]));
                let ((r, tr), (g, tg), (b, tb)) = (source(0), source(1), source(2));
                self.rgb.extend(
                    r.iter()
                        .zip(g)
                        .zip(b)
                        .map(|((&r, &g), &b)| [tr[r as usize], tg[g as usize], tb[b as usize]]),
                );
                return;
            }
        }
        let strip = self.width * STRIP_ROWS;
        self.windowed.resize(strip * self.windows.len(), 0);
        self.unlit.resize(strip, 0);
        for first in (0..span).step_by(strip) {
            let span = strip.min(span - first);
            for (i, window) in self.windows.iter().enumerate() {
                let row = &mut self.windowed[i * strip..][..span];
                window.apply(&band[i][first..first + span], row);
            }
            let strip_of = |i: usize| &self.windowed[i * strip..][..span];
            if let Some(lit) = self.lit {
                let source = |k: usize| lit[k].map_or(&self.unlit[..span], strip_of);
                let (r, g, b) = (source(0), source(1), source(2));
                self.rgb
                    .extend(r.iter().zip(g).zip(b).map(|((&r, &g), &b)| [r, g, b]));
                continue;
            }
            // Sums of every channel's contribution, from black.
            let start = self.rgb.len();
            self.rgb.resize(start + span, [0; 3]);
            let out = &mut self.rgb[start..];
            for (i, mix) in self.mixes.iter().enumerate() {
                let [tr, tg, tb] = &*mix.contribution;
                for (px, &v) in out.iter_mut().zip(strip_of(i)) {
                    let v = v as usize;
                    px[0] = px[0].saturating_add(tr[v]);
                    px[1] = px[1].saturating_add(tg[v]);
                    px[2] = px[2].saturating_add(tb[v]);
                }
            }
        }
    }
}

/// Outputs of at least this many pixels are windowed through a table of every 16-bit
/// value's result (64 KiB, built once per channel): one load per pixel instead of the
/// arithmetic, which the profile of a whole 2048² plane put at a fifth of the request.
/// Smaller outputs (thumbnails) compute each pixel, cheaper than filling the table.
const WINDOW_TABLE_FROM_PIXELS: usize = 1 << 18;

/// One channel's window (and reverse map) as [`quantize`] applies it, either computed
/// per pixel or looked up in a table made by `quantize` itself, so both give the same
/// bytes.
pub(super) enum Window<'a> {
    Computed(&'a ChannelSettings),
    Table(Box<[u8]>),
}

impl<'a> Window<'a> {
    pub(super) fn new(ch: &'a ChannelSettings, pixels: usize) -> Window<'a> {
        if pixels < WINDOW_TABLE_FROM_PIXELS {
            return Window::Computed(ch);
        }
        let every_value: Vec<u16> = (0..=u16::MAX).collect();
        let mut table = vec![0u8; every_value.len()].into_boxed_slice();
        quantize(&every_value, ch, &mut table);
        Window::Table(table)
    }

    pub(super) fn apply(&self, src: &[u16], out: &mut [u8]) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::imaging::channel_colors::WHITE;

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
}
