//! libjpeg-turbo's own RGB → YCbCr conversion (`jccolor.c`) and its 2×2 chroma
//! downsampling (`jcsample.c`, `h2v2_downsample`), done as windowed rows are mixed: a
//! whole colour plane then reaches the JPEG encoder as its Y, Cb and Cr planes
//! (`tj3CompressFromYUVPlanes8`), with no RGB plane written and read again in between.
//! The encoder's input is bit for bit what it computes from the RGB plane itself, so
//! the JPEG is the same bytes (`render::tests`, and the fuzzer's `image_file` check,
//! compare it with `encode_jpeg` of the RGB image).

use std::mem::MaybeUninit;

/// Fixed-point weights as `jccolor.c` has them: FIX(x) = x·2^16 rounded.
const fn fix(x: f64) -> i32 {
    (x * 65536.0 + 0.5) as i32
}
const Y_R: i32 = fix(0.29900);
const Y_G: i32 = fix(0.58700);
const Y_B: i32 = fix(0.11400);
const CB_R: i32 = fix(0.16874);
const CB_G: i32 = fix(0.33126);
const HALF: i32 = fix(0.5);
const CR_G: i32 = fix(0.41869);
const CR_B: i32 = fix(0.08131);
const ONE_HALF: i32 = 1 << 15;
/// 128 in the chroma planes, plus `ONE_HALF - 1` (`jccolor.c`'s rounding of Cb and Cr).
const CBCR_OFFSET: i32 = (128 << 16) + ONE_HALF - 1;

/// The chroma subsampling of the planes (libjpeg-turbo's 4:2:0 or 4:4:4, as
/// [`super::super::encode::encode_jpeg`] picks by quality).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chroma {
    Half,
    Full,
}

/// Y, Cb and Cr planes of a `width` × `height` image, each grown a row at a time (no
/// zero-filling first).
pub(crate) struct YccPlanes {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) chroma: Chroma,
    pub(crate) y: Vec<u8>,
    pub(crate) cb: Vec<u8>,
    pub(crate) cr: Vec<u8>,
    rows: usize,
    /// Full-resolution Cb and Cr of the even row waiting for its odd partner, then of
    /// the odd row (4:2:0).
    pending: Vec<u8>,
}

impl YccPlanes {
    /// Planes for an image whose sides are whole JPEG blocks (multiples of 16 for 4:2:0,
    /// of 8 for 4:4:4), so that the encoder pads nothing; `None` otherwise.
    pub(crate) fn new(width: usize, height: usize, chroma: Chroma) -> Option<YccPlanes> {
        let block = match chroma {
            Chroma::Half => 16,
            Chroma::Full => 8,
        };
        if width == 0
            || height == 0
            || !width.is_multiple_of(block)
            || !height.is_multiple_of(block)
        {
            return None;
        }
        let (chroma_len, pending) = match chroma {
            Chroma::Half => (width / 2 * (height / 2), vec![0; 4 * width]),
            Chroma::Full => (width * height, Vec::new()),
        };
        Some(YccPlanes {
            width,
            height,
            chroma,
            y: Vec::with_capacity(width * height),
            cb: Vec::with_capacity(chroma_len),
            cr: Vec::with_capacity(chroma_len),
            rows: 0,
            pending,
        })
    }

    /// Converts rows of R, G and B (each a whole number of rows, the same length).
    pub(crate) fn push_rows(&mut self, [r, g, b]: [&[u8]; 3]) {
        let w = self.width;
        for ((r, g), b) in r
            .chunks_exact(w)
            .zip(g.chunks_exact(w))
            .zip(b.chunks_exact(w))
        {
            assert!(self.rows < self.height, "more rows than the image has");
            match self.chroma {
                Chroma::Full => {
                    let out = [&mut self.y, &mut self.cb, &mut self.cr].map(|p| spare(p, w));
                    convert_row([r, g, b], out);
                    for plane in [&mut self.y, &mut self.cb, &mut self.cr] {
                        // SAFETY: `convert_row` wrote the w spare bytes after each plane.
                        unsafe { plane.set_len(plane.len() + w) };
                    }
                }
                Chroma::Half => {
                    let odd_row = !self.rows.is_multiple_of(2);
                    let row = &mut self.pending[odd_row as usize * 2 * w..][..2 * w];
                    let (cb, cr) = row.split_at_mut(w);
                    // SAFETY: `convert_row` writes only values.
                    let (cb, cr) = unsafe { (as_uninit(cb), as_uninit(cr)) };
                    convert_row([r, g, b], [spare(&mut self.y, w), cb, cr]);
                    // SAFETY: `convert_row` wrote the w spare bytes after Y.
                    unsafe { self.y.set_len(self.y.len() + w) };
                    if odd_row {
                        let (even, odd) = self.pending.split_at(2 * w);
                        let (even_cb, even_cr) = even.split_at(w);
                        let (odd_cb, odd_cr) = odd.split_at(w);
                        for (plane, even, odd) in [
                            (&mut self.cb, even_cb, odd_cb),
                            (&mut self.cr, even_cr, odd_cr),
                        ] {
                            downsample_rows(even, odd, spare(plane, w / 2));
                            // SAFETY: `downsample_rows` wrote the w/2 spare bytes.
                            unsafe { plane.set_len(plane.len() + w / 2) };
                        }
                    }
                }
            }
            self.rows += 1;
        }
    }
}

/// The first `n` spare bytes of `out` (reserved here), to be written and then counted
/// with `set_len`: the planes are never zero-filled first.
fn spare(out: &mut Vec<u8>, n: usize) -> &mut [MaybeUninit<u8>] {
    out.reserve(n);
    &mut out.spare_capacity_mut()[..n]
}

/// Initialised bytes seen as bytes to overwrite.
///
/// # Safety
/// Only initialised values may be written through the result (`MaybeUninit::uninit()`
/// written there would leave `bytes` uninitialised).
unsafe fn as_uninit(bytes: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: MaybeUninit<u8> has u8's layout; the caller writes only values.
    unsafe { &mut *(bytes as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// Y, Cb and Cr of each pixel of one row: the first 16·k pixels with AVX2 where the
/// processor has it (see `simd`), the rest one at a time.
fn convert_row(rgb: [&[u8]; 3], [y, cb, cr]: [&mut [MaybeUninit<u8>]; 3]) {
    let n = rgb[0].len();
    assert!(rgb.iter().all(|c| c.len() == n) && [&y, &cb, &cr].iter().all(|p| p.len() == n));
    #[cfg(target_arch = "x86_64")]
    let done = if super::has_avx2() {
        // SAFETY: the processor has AVX2, and every slice holds n values.
        unsafe { simd::convert(rgb, [y.as_mut_ptr(), cb.as_mut_ptr(), cr.as_mut_ptr()], n) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for i in done..n {
        let p = [rgb[0][i], rgb[1][i], rgb[2][i]];
        y[i].write(luma(p));
        cb[i].write(blue_chroma(p));
        cr[i].write(red_chroma(p));
    }
}

/// Two full-resolution chroma rows to one of half the width: the mean of each 2×2
/// square with `h2v2_downsample`'s bias, 1 and 2 alternately.
fn downsample_rows(even: &[u8], odd: &[u8], out: &mut [MaybeUninit<u8>]) {
    let n = out.len();
    assert!(even.len() == 2 * n && odd.len() == 2 * n);
    #[cfg(target_arch = "x86_64")]
    let done = if super::has_avx2() {
        // SAFETY: the processor has AVX2; the rows hold 2n values and `out` n.
        unsafe { simd::downsample(even, odd, out.as_mut_ptr(), n) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (i, out) in out.iter_mut().enumerate().skip(done) {
        let square = [even[2 * i], even[2 * i + 1], odd[2 * i], odd[2 * i + 1]];
        let sum: u16 = square.map(u16::from).iter().sum();
        out.write(((sum + 1 + (i as u16 & 1)) >> 2) as u8);
    }
}

#[inline(always)]
fn luma([r, g, b]: [u8; 3]) -> u8 {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    ((Y_R * r + Y_G * g + Y_B * b + ONE_HALF) >> 16) as u8
}

#[inline(always)]
fn blue_chroma([r, g, b]: [u8; 3]) -> u8 {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    ((HALF * b - CB_R * r - CB_G * g + CBCR_OFFSET) >> 16) as u8
}

#[inline(always)]
fn red_chroma([r, g, b]: [u8; 3]) -> u8 {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    ((HALF * r - CR_G * g - CR_B * b + CBCR_OFFSET) >> 16) as u8
}

/// The conversion and downsampling with AVX2, 16 pixels at a time, in the integer
/// arithmetic of the portable code (libjpeg-turbo's `jccolext-avx2.asm` does the same):
/// each weighted sum is two `pmaddwd`s of (R, G) and (B, G) pairs, with G's weight in
/// Y split across them (a 16-bit factor holds at most 32767) and the ½ weights as
/// shifts. The sums are the same integers, so the bytes are the same.
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::*;

    /// Weights for `pmaddwd` of an (a, b) pair of 16-bit lanes: a × first + b × second.
    const fn pair(first: i32, second: i32) -> i32 {
        assert!(-32768 <= first && first < 32768 && -32768 <= second && second < 32768);
        (first as u16 as u32 | ((second as u16 as u32) << 16)) as i32
    }
    /// The part of Y's G weight taken with B.
    const Y_G_WITH_B: i32 = 1 << 14;
    const Y_RG: i32 = pair(Y_R, Y_G - Y_G_WITH_B);
    const Y_BG: i32 = pair(Y_B, Y_G_WITH_B);
    const CB_RG: i32 = pair(-CB_R, -CB_G);
    const CR_BG: i32 = pair(-CR_B, -CR_G);
    const _: () = assert!(HALF == 1 << 15, "½ is a shift by 15");

    /// Converts the first 16·⌊n/16⌋ pixels; returns how many.
    ///
    /// # Safety
    /// AVX2; each of `rgb` holds `n` values and each output has room for `n`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn convert(
        rgb: [&[u8]; 3],
        [y, cb, cr]: [*mut MaybeUninit<u8>; 3],
        n: usize,
    ) -> usize {
        let blocks = n / 16;
        let (y_rg, y_bg) = (_mm256_set1_epi32(Y_RG), _mm256_set1_epi32(Y_BG));
        let (cb_rg, cr_bg) = (_mm256_set1_epi32(CB_RG), _mm256_set1_epi32(CR_BG));
        let one_half = _mm256_set1_epi32(ONE_HALF);
        let offset = _mm256_set1_epi32(CBCR_OFFSET);
        let low_halves = _mm256_set1_epi32(0xffff);
        // Y, Cb and Cr of 8 pixels from their (R, G) and (B, G) pairs, as 32-bit lanes.
        let sums = |rg: __m256i, bg: __m256i| {
            let y = _mm256_add_epi32(_mm256_madd_epi16(rg, y_rg), _mm256_madd_epi16(bg, y_bg));
            let y = _mm256_srli_epi32::<16>(_mm256_add_epi32(y, one_half));
            let blue = _mm256_slli_epi32::<15>(_mm256_and_si256(bg, low_halves));
            let cb = _mm256_add_epi32(_mm256_madd_epi16(rg, cb_rg), blue);
            let cb = _mm256_srli_epi32::<16>(_mm256_add_epi32(cb, offset));
            let red = _mm256_slli_epi32::<15>(_mm256_and_si256(rg, low_halves));
            let cr = _mm256_add_epi32(_mm256_madd_epi16(bg, cr_bg), red);
            let cr = _mm256_srli_epi32::<16>(_mm256_add_epi32(cr, offset));
            [y, cb, cr]
        };
        for at in (0..blocks).map(|block| block * 16) {
            // SAFETY: at + 16 ≤ n, the length of each row.
            let load = |c: &[u8]| unsafe {
                _mm256_cvtepu8_epi16(_mm_loadu_si128(c.as_ptr().add(at).cast()))
            };
            let (r, g, b) = (load(rgb[0]), load(rgb[1]), load(rgb[2]));
            // Pixels 0–3 and 8–11 (`lo`), 4–7 and 12–15 (`hi`): unpacking and packing
            // work within each 128-bit lane, so the packs put them back in order.
            let lo = sums(_mm256_unpacklo_epi16(r, g), _mm256_unpacklo_epi16(b, g));
            let hi = sums(_mm256_unpackhi_epi16(r, g), _mm256_unpackhi_epi16(b, g));
            for ((out, lo), hi) in [y, cb, cr].into_iter().zip(lo).zip(hi) {
                let words = _mm256_packus_epi32(lo, hi);
                let bytes = _mm_packus_epi16(
                    _mm256_castsi256_si128(words),
                    _mm256_extracti128_si256::<1>(words),
                );
                // SAFETY: at + 16 ≤ n, the room in each output.
                unsafe { _mm_storeu_si128(out.add(at).cast(), bytes) };
            }
        }
        blocks * 16
    }

    /// Downsamples the first 16·⌊n/16⌋ outputs; returns how many.
    ///
    /// # Safety
    /// AVX2; `even` and `odd` hold 2n values and `out` has room for n.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn downsample(
        even: &[u8],
        odd: &[u8],
        out: *mut MaybeUninit<u8>,
        n: usize,
    ) -> usize {
        let blocks = n / 16;
        let ones = _mm256_set1_epi8(1);
        // 1 for even outputs, 2 for odd ones.
        let bias = _mm256_set1_epi32(1 | (2 << 16));
        for at in (0..blocks).map(|block| block * 16) {
            // SAFETY: 2·at + 32 ≤ 2n, the length of each row.
            let pairs = |row: &[u8]| unsafe {
                let bytes = _mm256_loadu_si256(row.as_ptr().add(2 * at).cast());
                _mm256_maddubs_epi16(bytes, ones)
            };
            let sums = _mm256_add_epi16(_mm256_add_epi16(pairs(even), pairs(odd)), bias);
            let means = _mm256_srli_epi16::<2>(sums);
            // The pack works within lanes: quadwords 0 and 2 hold the 16 bytes.
            let packed = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi16(means, means));
            // SAFETY: at + 16 ≤ n, the room in `out`.
            unsafe { _mm_storeu_si128(out.add(at).cast(), _mm256_castsi256_si128(packed)) };
        }
        blocks * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formulas a pixel at a time, and the downsampling a plane at a time.
    fn pixel_at_a_time(rgb: [&[u8]; 3], width: usize, chroma: Chroma) -> [Vec<u8>; 3] {
        let n = rgb[0].len();
        let plane = |f: fn([u8; 3]) -> u8| -> Vec<u8> {
            (0..n)
                .map(|i| f([rgb[0][i], rgb[1][i], rgb[2][i]]))
                .collect()
        };
        let (y, cb, cr) = (plane(luma), plane(blue_chroma), plane(red_chroma));
        if chroma == Chroma::Full {
            return [y, cb, cr];
        }
        let half = |plane: Vec<u8>| -> Vec<u8> {
            let rows = plane.chunks_exact(2 * width);
            rows.flat_map(|rows| {
                let (even, odd) = rows.split_at(width);
                (0..width / 2).map(move |i| {
                    let sum = even[2 * i] as u16 + even[2 * i + 1] as u16;
                    let sum = sum + odd[2 * i] as u16 + odd[2 * i + 1] as u16;
                    ((sum + 1 + (i as u16 & 1)) >> 2) as u8
                })
            })
            .collect()
        };
        [y, half(cb), half(cr)]
    }

    /// The planes (built with AVX2 where the processor has it) equal the formulas taken
    /// a pixel at a time, for widths with and without a tail after the 16-pixel blocks,
    /// pushed in two uneven parts, over pixels that include 0 and 255 in every
    /// component.
    #[test]
    fn planes_equal_the_formulas_a_pixel_at_a_time() {
        let mut seed = 0x2545_f491_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            match seed % 8 {
                0 => 0,
                1 => 255,
                _ => (seed >> 8) as u8,
            }
        };
        for (width, height, chroma) in [
            (16, 16, Chroma::Half),
            (48, 32, Chroma::Half),
            (2064, 16, Chroma::Half),
            (8, 8, Chroma::Full),
            (24, 8, Chroma::Full),
            (2056, 16, Chroma::Full),
        ] {
            let rgb: Vec<Vec<u8>> = (0..3)
                .map(|_| (0..width * height).map(|_| next()).collect())
                .collect();
            let rgb = [&rgb[0][..], &rgb[1][..], &rgb[2][..]];
            let mut planes = YccPlanes::new(width, height, chroma).unwrap();
            let split = width * (height / 2 + 1);
            planes.push_rows(rgb.map(|c| &c[..split]));
            planes.push_rows(rgb.map(|c| &c[split..]));
            let [y, cb, cr] = pixel_at_a_time(rgb, width, chroma);
            let what = format!("{width}×{height} {chroma:?}");
            assert_eq!(planes.y, y, "Y of {what}");
            assert_eq!(planes.cb, cb, "Cb of {what}");
            assert_eq!(planes.cr, cr, "Cr of {what}");
        }
    }
}
