//! libjpeg-turbo's own RGB → YCbCr conversion (`jccolor.c`) and its 2×2 chroma
//! downsampling (`jcsample.c`, `h2v2_downsample`), done as windowed rows are mixed: a
//! whole colour plane then reaches the JPEG encoder as its Y, Cb and Cr planes
//! (`tj3CompressFromYUV8`), with no RGB plane written and read again in between. The
//! encoder's input is bit for bit what it computes from the RGB plane itself, so the
//! JPEG is the same bytes (tested against libjpeg-turbo's own conversion and encode).

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

/// Y, Cb and Cr planes of a `width` × `height` image, one after the other with no row
/// padding (TurboJPEG's YUV layout with alignment 1), filled a row at a time.
pub(crate) struct YccPlanes {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) chroma: Chroma,
    planes: Vec<u8>,
    rows: usize,
    /// Full-resolution Cb and Cr of the even row waiting for its odd partner (4:2:0).
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
        if width == 0 || height == 0 || !width.is_multiple_of(block) || !height.is_multiple_of(block) {
            return None;
        }
        let chroma_len = match chroma {
            Chroma::Half => width / 2 * (height / 2),
            Chroma::Full => width * height,
        };
        Some(YccPlanes {
            width,
            height,
            chroma,
            planes: Vec::with_capacity(width * height + 2 * chroma_len),
            rows: 0,
            pending: Vec::new(),
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
            self.push_row([r, g, b]);
        }
    }

    fn push_row(&mut self, rgb: [&[u8]; 3]) {
        let (w, h) = (self.width, self.height);
        assert!(self.rows < h, "more rows than the image has");
        let y_len = w * h;
        let chroma_len = (self.planes.capacity() - y_len) / 2;
        // Y, Cb and Cr rows at their places in the planes, which grow to full size on
        // the first row (zeros, overwritten row by row).
        if self.planes.is_empty() {
            self.planes.resize(y_len + 2 * chroma_len, 0);
        }
        let (y_plane, chroma_planes) = self.planes.split_at_mut(y_len);
        let (cb_plane, cr_plane) = chroma_planes.split_at_mut(chroma_len);
        let y_row = &mut y_plane[self.rows * w..][..w];
        match self.chroma {
            Chroma::Full => {
                let cb = &mut cb_plane[self.rows * w..][..w];
                let cr = &mut cr_plane[self.rows * w..][..w];
                convert(rgb, y_row, cb, cr);
            }
            Chroma::Half => {
                self.pending.resize(4 * w, 0);
                let (even, odd) = self.pending.split_at_mut(2 * w);
                let (cb, cr) = if self.rows.is_multiple_of(2) {
                    even.split_at_mut(w)
                } else {
                    odd.split_at_mut(w)
                };
                convert(rgb, y_row, cb, cr);
                if self.rows % 2 == 1 {
                    let half = w / 2;
                    let at = self.rows / 2 * half;
                    let (even_cb, even_cr) = even.split_at(w);
                    let (odd_cb, odd_cr) = odd.split_at(w);
                    downsample([even_cb, odd_cb], &mut cb_plane[at..][..half]);
                    downsample([even_cr, odd_cr], &mut cr_plane[at..][..half]);
                }
            }
        }
        self.rows += 1;
    }

    /// The three planes, once every row has been pushed.
    pub(crate) fn into_planes(self) -> Vec<u8> {
        assert_eq!(self.rows, self.height, "every row converted");
        self.planes
    }
}

/// One row of RGB to Y, Cb and Cr, as `jccolor.c` computes it.
fn convert(rgb: [&[u8]; 3], y: &mut [u8], cb: &mut [u8], cr: &mut [u8]) {
    #[inline(always)]
    fn each([r, g, b]: [&[u8]; 3], y: &mut [u8], cb: &mut [u8], cr: &mut [u8]) {
        let n = y.len();
        let (r, g, b, cb, cr) = (&r[..n], &g[..n], &b[..n], &mut cb[..n], &mut cr[..n]);
        for i in 0..n {
            let (r, g, b) = (r[i] as i32, g[i] as i32, b[i] as i32);
            y[i] = ((Y_R * r + Y_G * g + Y_B * b + ONE_HALF) >> 16) as u8;
            cb[i] = ((HALF * b - CB_R * r - CB_G * g + CBCR_OFFSET) >> 16) as u8;
            cr[i] = ((HALF * r - CR_G * g - CR_B * b + CBCR_OFFSET) >> 16) as u8;
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn each_avx2(rgb: [&[u8]; 3], y: &mut [u8], cb: &mut [u8], cr: &mut [u8]) {
        each(rgb, y, cb, cr)
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has just been found to support AVX2.
        return unsafe { each_avx2(rgb, y, cb, cr) };
    }
    each(rgb, y, cb, cr)
}

/// Two full-resolution chroma rows to one of half the width: the mean of each 2×2
/// square with `h2v2_downsample`'s bias, 1 and 2 alternately.
fn downsample([even, odd]: [&[u8]; 2], out: &mut [u8]) {
    #[inline(always)]
    fn each([even, odd]: [&[u8]; 2], out: &mut [u8]) {
        let n = out.len();
        let (even, odd) = (&even[..2 * n], &odd[..2 * n]);
        for i in 0..n {
            let sum = even[2 * i] as u16
                + even[2 * i + 1] as u16
                + odd[2 * i] as u16
                + odd[2 * i + 1] as u16;
            out[i] = ((sum + 1 + (i as u16 & 1)) >> 2) as u8;
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn each_avx2(rows: [&[u8]; 2], out: &mut [u8]) {
        each(rows, out)
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has just been found to support AVX2.
        return unsafe { each_avx2([even, odd], out) };
    }
    each([even, odd], out)
}
