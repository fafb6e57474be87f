//! libjpeg-turbo's own RGB → YCbCr conversion (`jccolor.c`) and its 2×2 chroma
//! downsampling (`jcsample.c`, `h2v2_downsample`), done as windowed rows are mixed: a
//! whole colour plane then reaches the JPEG encoder as its Y, Cb and Cr planes
//! (`tj3CompressFromYUVPlanes8`), with no RGB plane written and read again in between.
//! The encoder's input is bit for bit what it computes from the RGB plane itself, so
//! the JPEG is the same bytes (`render::tests`, and the fuzzer's `image_file` check,
//! compare it with `encode_jpeg` of the RGB image).

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
    pub(crate) fn push_rows(&mut self, rgb: [&[u8]; 3]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has just been found to support AVX2.
            return unsafe { self.push_rows_avx2(rgb) };
        }
        self.push_rows_portable(rgb)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn push_rows_avx2(&mut self, rgb: [&[u8]; 3]) {
        self.push_rows_portable(rgb)
    }

    #[inline(always)]
    fn push_rows_portable(&mut self, [r, g, b]: [&[u8]; 3]) {
        let w = self.width;
        for ((r, g), b) in r
            .chunks_exact(w)
            .zip(g.chunks_exact(w))
            .zip(b.chunks_exact(w))
        {
            assert!(self.rows < self.height, "more rows than the image has");
            let pixels = || r.iter().zip(g).zip(b).map(|((&r, &g), &b)| [r, g, b]);
            append(&mut self.y, w, pixels().map(luma));
            match self.chroma {
                Chroma::Full => {
                    append(&mut self.cb, w, pixels().map(blue_chroma));
                    append(&mut self.cr, w, pixels().map(red_chroma));
                }
                Chroma::Half => {
                    let odd_row = !self.rows.is_multiple_of(2);
                    let row = &mut self.pending[odd_row as usize * 2 * w..][..2 * w];
                    let (cb, cr) = row.split_at_mut(w);
                    for ((cb, cr), p) in cb.iter_mut().zip(cr.iter_mut()).zip(pixels()) {
                        (*cb, *cr) = (blue_chroma(p), red_chroma(p));
                    }
                    if odd_row {
                        let (even, odd) = self.pending.split_at(2 * w);
                        let (even_cb, even_cr) = even.split_at(w);
                        let (odd_cb, odd_cr) = odd.split_at(w);
                        append(&mut self.cb, w / 2, downsampled(even_cb, odd_cb));
                        append(&mut self.cr, w / 2, downsampled(even_cr, odd_cr));
                    }
                }
            }
            self.rows += 1;
        }
    }
}

/// Appends the `n` values of `values` (exactly n) to `out` where they will stay, with
/// no zero-filling first; inlined, so that the loop is compiled with the caller's
/// AVX2 (`Vec::extend` is not inlined, and ran in scalar code).
#[inline(always)]
fn append(out: &mut Vec<u8>, n: usize, values: impl Iterator<Item = u8>) {
    out.reserve(n);
    let start = out.len();
    let spare = &mut out.spare_capacity_mut()[..n];
    let mut written = 0;
    for (slot, value) in spare.iter_mut().zip(values) {
        slot.write(value);
        written += 1;
    }
    assert_eq!(written, n, "as many values as promised");
    // SAFETY: the first n spare bytes were all written just above.
    unsafe { out.set_len(start + n) };
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

/// Two full-resolution chroma rows to one of half the width: the mean of each 2×2
/// square with `h2v2_downsample`'s bias, 1 and 2 alternately.
#[inline(always)]
fn downsampled<'a>(even: &'a [u8], odd: &'a [u8]) -> impl Iterator<Item = u8> + 'a {
    even.chunks_exact(2)
        .zip(odd.chunks_exact(2))
        .enumerate()
        .map(|(i, (e, o))| {
            let sum = e[0] as u16 + e[1] as u16 + o[0] as u16 + o[1] as u16;
            ((sum + 1 + (i as u16 & 1)) >> 2) as u8
        })
}
