//! Windowing (the linear map of each channel to 0–255) and mixing the active channels
//! into RGB, as OMERO's renderer and quantizer do.

use super::super::lut;
use super::ChannelSettings;
use super::ycc::YccPlanes;

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
    /// The output so far: grey bytes, RGB pixels, or the JPEG encoder's Y, Cb and Cr
    /// planes (see [`Mixer::mix_to_ycc`]).
    grey: Option<Vec<u8>>,
    rgb: Vec<[u8; 3]>,
    ycc: Option<YccPlanes>,
}

/// What a [`Mixer`] made: grey bytes or interleaved RGB, or Y, Cb and Cr planes.
pub(super) enum Mixed {
    Pixels(Vec<u8>),
    Ycc(YccPlanes),
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
            ycc: None,
        }
    }

    /// Mixes into `planes` instead of RGB when this mix is the default one computed
    /// per pixel (each channel an opaque primary of its own component, windows
    /// computed, not looked up): its windowed rows are converted as they are, with no
    /// RGB plane in between. Otherwise the planes are dropped and the mix stays RGB.
    pub(super) fn mix_to_ycc(&mut self, planes: YccPlanes) {
        let computed = self
            .windows
            .iter()
            .all(|w| matches!(w, Window::Computed(_)));
        if self.lit.is_some() && computed && self.grey.is_none() {
            self.rgb = Vec::new();
            self.ycc = Some(planes);
        }
    }

    /// The mixed output: grey bytes or interleaved RGB, or the planes.
    pub(super) fn into_output(self) -> Mixed {
        match (self.grey, self.ycc) {
            (Some(grey), _) => Mixed::Pixels(grey),
            (None, Some(planes)) => Mixed::Ycc(planes),
            // The same buffer, its pixels seen as bytes (no copy).
            (None, None) => Mixed::Pixels(self.rgb.into_flattened()),
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
                let rows = [source(0), source(1), source(2)];
                match &mut self.ycc {
                    Some(planes) => planes.push_rows(rows),
                    None => interleave(rows, &mut self.rgb),
                }
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

/// Appends the pixels of three component rows (all the same length), interleaved:
/// with SSSE3's byte shuffles 16 pixels at a time where the processor has them (the
/// byte-at-a-time loop took as long as windowing the three channels).
fn interleave(rows: [&[u8]; 3], out: &mut Vec<[u8; 3]>) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("ssse3") {
        // SAFETY: the processor has just been found to support SSSE3.
        return unsafe { interleave_ssse3(rows, out) };
    }
    let [r, g, b] = rows;
    out.extend(r.iter().zip(g).zip(b).map(|((&r, &g), &b)| [r, g, b]));
}

/// For each of the 3 output vectors of 16 pixels (48 bytes), the shuffle that places
/// each component's bytes: output byte j is component j % 3 of pixel j / 3; 0x80
/// writes zero (another component's byte, or'd in from its own shuffle).
const INTERLEAVE_MASKS: [[[u8; 16]; 3]; 3] = {
    let mut masks = [[[0x80u8; 16]; 3]; 3];
    let mut j = 0;
    while j < 48 {
        masks[j / 16][j % 3][j % 16] = (j / 3) as u8;
        j += 1;
    }
    masks
};

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
fn interleave_ssse3(rows: [&[u8]; 3], out: &mut Vec<[u8; 3]>) {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_or_si128, _mm_shuffle_epi8, _mm_storeu_si128,
    };
    let load = |bytes: &[u8; 16]| {
        // SAFETY: an unaligned load of the 16 bytes of `bytes`.
        unsafe { _mm_loadu_si128(bytes.as_ptr().cast::<__m128i>()) }
    };
    let n = rows.iter().map(|r| r.len()).min().unwrap_or(0);
    let masks = INTERLEAVE_MASKS.map(|part| part.map(|m| load(&m)));
    out.reserve(n);
    let start = out.len();
    let spare = &mut out.spare_capacity_mut()[..n];
    let mut blocks = spare.chunks_exact_mut(16);
    for (k, block) in (&mut blocks).enumerate() {
        let [r, g, b] = rows.map(|row| load(row[16 * k..][..16].try_into().expect("16 bytes")));
        let to = block.as_mut_ptr().cast::<u8>();
        for (part, [mr, mg, mb]) in masks.iter().enumerate() {
            let bytes = _mm_or_si128(
                _mm_or_si128(_mm_shuffle_epi8(r, *mr), _mm_shuffle_epi8(g, *mg)),
                _mm_shuffle_epi8(b, *mb),
            );
            // SAFETY: an unaligned store of bytes 16·part to 16·part + 15 of `block`,
            // 16 pixels of 3 bytes.
            unsafe { _mm_storeu_si128(to.add(16 * part).cast::<__m128i>(), bytes) };
        }
    }
    let done = n - blocks.into_remainder().len();
    for (i, pixel) in spare.iter_mut().enumerate().skip(done) {
        pixel.write([rows[0][i], rows[1][i], rows[2][i]]);
    }
    // SAFETY: all n spare pixels were written above, by blocks and then one by one.
    unsafe { out.set_len(start + n) };
}

/// Outputs of at least this many pixels are windowed through a table of every 16-bit
/// value's result (64 KiB, built once per channel): one load per pixel instead of the
/// arithmetic, which the profile of a whole 2048² plane put at a fifth of the request.
/// Smaller outputs (thumbnails) compute each pixel, cheaper than filling the table;
/// so do integer windows on a processor with AVX2, where the arithmetic is cheaper
/// than the lookup (a whole 2048² plane's three channels: 3.4 ms against 5.5 ms).
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
        let vectorised = IntegerWindow::of(ch).is_some() && super::has_avx2();
        if pixels < WINDOW_TABLE_FROM_PIXELS || vectorised {
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
    if let Some(window) = IntegerWindow::of(ch) {
        window.apply_fastest(src, out);
    } else if end <= start {
        // An empty window is a threshold at its start.
        for (o, &x) in out.iter_mut().zip(src) {
            *o = if (x as f64) < start { 0 } else { 255 };
        }
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

/// The usual window, integer bounds s < e, in exact integer arithmetic: round-half-up
/// of 255·(x − s)/w with w = e − s, that is floor((510·a + w) / 2w) for
/// a = clamp(x, s, e) − s, computed as (a·K + 2^(k−1)) >> k with K = ⌈255·2^k / w⌉
/// and 2^k ≥ 2w². Exact: a·K/2^k overshoots 255·a/w by less than a/2^k ≤ w/2^k ≤
/// 1/2w, while (510·a + w)/2w, a multiple of 1/2w, lies at least 1/2w below the next
/// integer. K < 2^26 fits 32 bits, so each product is one 32 × 32 → 64-bit multiply,
/// which vectorises (float-to-byte conversion does not, and cost 4× as much).
struct IntegerWindow {
    start: u16,
    end: u16,
    scale: u32,
    shift: u32,
}

impl IntegerWindow {
    fn of(ch: &ChannelSettings) -> Option<IntegerWindow> {
        let bound =
            |v: f64| (v.fract() == 0.0 && (0.0..=u16::MAX as f64).contains(&v)).then_some(v as u16);
        let (start, end) = (bound(ch.start)?, bound(ch.end)?);
        (start < end).then(|| IntegerWindow::new(start, end))
    }

    fn new(start: u16, end: u16) -> IntegerWindow {
        let w = (end - start) as u64;
        let shift = 64 - (2 * w * w - 1).leading_zeros();
        let scale = (255u64 << shift).div_ceil(w);
        IntegerWindow {
            start,
            end,
            scale: u32::try_from(scale).expect("K < 2^26"),
            shift,
        }
    }

    /// With AVX2 where the processor has it (a whole-plane render with computed
    /// windows: 12.8 ms built for the SSE2 baseline, 7.3 ms for AVX2, measured with
    /// the earlier formula, whose factor did not fit 32 bits).
    fn apply_fastest(&self, src: &[u16], out: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if super::has_avx2() {
            // SAFETY: the processor has just been found to support AVX2.
            return unsafe { self.apply_avx2(src, out) };
        }
        self.apply(src, out);
    }

    #[inline(always)]
    fn apply(&self, src: &[u16], out: &mut [u8]) {
        let (start, end, scale, shift) = (self.start, self.end, self.scale as u64, self.shift);
        let half = 1u64 << (shift - 1);
        for (o, &x) in out.iter_mut().zip(src) {
            let a = (x.clamp(start, end) - start) as u64;
            *o = ((a * scale + half) >> shift) as u8;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn apply_avx2(&self, src: &[u16], out: &mut [u8]) {
        self.apply(src, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::imaging::channel_colors::WHITE;

    /// The multiply-shift division equals plain integer division, on the portable and
    /// the fastest path: for every window width up to 600 (at shifting starts) and
    /// powers of two ± 1, over the window and just outside it, and for a spread of wide
    /// windows, including the widest, over every 16-bit value.
    #[test]
    fn integer_quantization_is_exact() {
        let expected = |x: u16, s: u16, e: u16| {
            let w = (e - s) as u64;
            let a = x.clamp(s, e) as u64 - s as u64;
            ((510 * a + w) / (2 * w)) as u8
        };
        let check = |s: u16, e: u16, src: &[u16]| {
            let window = IntegerWindow::new(s, e);
            let (mut portable, mut fastest) = (vec![0u8; src.len()], vec![0u8; src.len()]);
            window.apply(src, &mut portable);
            window.apply_fastest(src, &mut fastest);
            for ((&x, &p), &f) in src.iter().zip(&portable).zip(&fastest) {
                let want = expected(x, s, e);
                assert_eq!((p, f), (want, want), "window {s}:{e}, x={x}");
            }
        };
        let every: Vec<u16> = (0..=u16::MAX).collect();
        let mut windows: Vec<(u16, u16)> = (1..=600u16).map(|w| (w * 97 % 4000, w)).collect();
        windows.extend(
            (1..16)
                .flat_map(|j| [(1u16 << j) - 1, 1 << j, (1 << j) + 1])
                .map(|w| (0, w)),
        );
        windows.extend((1..16).map(|j| (65535 - (1u16 << j), 1 << j)));
        for (s, w) in windows {
            let e = s + w;
            let near: Vec<u16> = (s.saturating_sub(2)..=e.saturating_add(2)).collect();
            check(s, e, &near);
        }
        let mut seed = 0x9e37_79b9_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u16
        };
        let mut wide = vec![
            (0, 65535),
            (1, 65535),
            (0, 65534),
            (12345, 54321),
            (3, 40000),
            (0, 46341),
        ];
        wide.extend((0..24).map(|_| {
            let (a, b) = (next(), next());
            let start = a.min(b).min(u16::MAX - 1);
            (start, a.max(b).max(start + 1))
        }));
        for (s, e) in wide {
            check(s, e, &every);
        }
    }

    /// Interleaving with byte shuffles gives what the byte-at-a-time loop gives, for
    /// every length around the 16-pixel blocks, appended after earlier pixels.
    #[test]
    fn interleaving_matches_the_plain_loop() {
        for n in 0..100usize {
            let rows: Vec<Vec<u8>> = (0..3u8)
                .map(|c| {
                    (0..n)
                        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(c * 85))
                        .collect()
                })
                .collect();
            let mut out = vec![[1, 2, 3]];
            interleave([&rows[0], &rows[1], &rows[2]], &mut out);
            let mut expected = vec![[1, 2, 3]];
            expected.extend((0..n).map(|i| [rows[0][i], rows[1][i], rows[2][i]]));
            assert_eq!(out, expected, "{n} pixels");
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
