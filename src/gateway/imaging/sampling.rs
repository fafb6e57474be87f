//! Nearest-neighbour sampling of a plane: the first pass of the SuperSampling resize
//! that makes thumbnails. Done while reading, it lets a source read only the rows it
//! keeps (a 95-px thumbnail of a 2048² plane keeps 380 of its 2048 rows), instead of
//! the whole plane that the resize would then mostly skip.
//!
//! The positions are fast_image_resize's own (`ResizeAlg::Nearest`: the source pixel
//! under the centre of each output pixel, rows found by a running sum), so the result
//! is exactly what its SuperSampling would have sampled from the whole plane.
//!
//! The second pass, the box filter from the sample to the output, is done here too
//! when an axis shrinks by a power of two (a thumbnail whose shape matches its
//! image's samples exactly 4× its size): `box_columns` and `box_rows` give the same
//! pixels as fast_image_resize's box convolution, a few times faster (the
//! convolution was a fifth of a fresh thumbnail's time).

use super::source::Plane;

/// Which columns and rows of a `width`×`height` area are kept (offsets into the area).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampling {
    pub columns: Vec<u32>,
    pub rows: Vec<u32>,
}

impl Sampling {
    /// Nearest-neighbour positions taking a `src_w`×`src_h` area to `dst_w`×`dst_h`.
    ///
    /// # Panics
    /// If any size is zero.
    pub fn nearest(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> Sampling {
        assert!(
            src_w > 0 && src_h > 0 && dst_w > 0 && dst_h > 0,
            "empty sampling"
        );
        let x_scale = src_w as f64 / dst_w as f64;
        let x_start = x_scale * 0.5;
        let columns = (0..dst_w)
            .map(|x| ((x_start + x_scale * x as f64) as u32).min(src_w - 1))
            .collect();
        // Rows as fast_image_resize steps through them: a running sum, not a product
        // (the two can differ in the last bit, and so pick another row).
        let y_scale = src_h as f64 / dst_h as f64;
        let mut y = y_scale * 0.5;
        let mut rows = Vec::with_capacity(dst_h as usize);
        for _ in 0..dst_h {
            rows.push((y as u32).min(src_h - 1));
            y += y_scale;
        }
        Sampling { columns, rows }
    }

    pub fn width(&self) -> u32 {
        self.columns.len() as u32
    }

    pub fn height(&self) -> u32 {
        self.rows.len() as u32
    }

    /// The sampled plane of a whole plane (its size is the area sampled).
    pub fn apply(&self, plane: &Plane) -> Plane {
        let w = plane.width as usize;
        let mut data = Vec::with_capacity(self.columns.len() * self.rows.len());
        for &y in &self.rows {
            let row = &plane.data[y as usize * w..(y as usize + 1) * w];
            data.extend(self.columns.iter().map(|&x| row[x as usize]));
        }
        Plane {
            width: self.width(),
            height: self.height(),
            data,
        }
    }
}

/// `from / to` when it is a power of two from 2 to 2^15 (so that a sum of that many
/// 16-bit values fits a `u32`).
fn power_of_two_ratio(from: u32, to: u32) -> Option<usize> {
    (to > 0 && from.is_multiple_of(to))
        .then(|| (from / to) as usize)
        .filter(|&k| k.is_power_of_two() && (2..=1 << 15).contains(&k))
}

/// The mean of `k` 16-bit values from their sum, rounded half up: what
/// fast_image_resize's fixed point gives for weights of exactly 1/`k` (a power of
/// two): each weight is 2^30 at a precision of 30 + log2 `k` bits, and the sum starts
/// at half of the last bit.
fn rounded_mean(sum: u32, k: usize) -> u16 {
    ((sum + (k as u32 >> 1)) >> k.trailing_zeros()) as u16
}

/// `plane`'s columns box-filtered down to `width`, when that divides its width by a
/// power of two: each output is the rounded mean of its `k` inputs, exactly what
/// fast_image_resize's box convolution (`ResizeAlg::Convolution(FilterType::Box)`, as
/// its SuperSampling's last step runs it) computes for that axis. `None` for any
/// other ratio (that convolution weighs some inputs otherwise).
pub fn box_columns(plane: &Plane, width: u32) -> Option<Plane> {
    let k = power_of_two_ratio(plane.width, width)?;
    // Rows are `width × k` long, so groups of `k` never straddle two rows. A group
    // size known when compiling unrolls the sums (4× faster than a loop over `k`).
    let data = match k {
        2 => column_means::<2>(&plane.data),
        4 => column_means::<4>(&plane.data),
        8 => column_means::<8>(&plane.data),
        _ => plane
            .data
            .chunks_exact(k)
            .map(|group| rounded_mean(group.iter().map(|&v| v as u32).sum(), k))
            .collect(),
    };
    Some(Plane {
        width,
        height: plane.height,
        data,
    })
}

/// The rounded mean of each group of `K` values.
fn column_means<const K: usize>(data: &[u16]) -> Vec<u16> {
    data.chunks_exact(K)
        .map(|group| rounded_mean(group.iter().map(|&v| v as u32).sum(), K))
        .collect()
}

/// `plane`'s rows box-filtered down to `height` when that divides its height by a
/// power of two: the vertical counterpart of `box_columns` (fast_image_resize filters
/// columns first, then rows; so must callers).
pub fn box_rows(plane: &Plane, height: u32) -> Option<Plane> {
    let k = power_of_two_ratio(plane.height, height)?;
    let w = plane.width as usize;
    let mut sums = vec![0u32; w];
    let mut data = Vec::with_capacity(w * height as usize);
    for rows in plane.data.chunks_exact(w * k) {
        sums.fill(0);
        for row in rows.chunks_exact(w) {
            for (sum, &v) in sums.iter_mut().zip(row) {
                *sum += v as u32;
            }
        }
        data.extend(sums.iter().map(|&sum| rounded_mean(sum, k)));
    }
    Some(Plane {
        width: plane.width,
        height,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fast_image_resize as fr;

    /// fast_image_resize's nearest-neighbour resize of `plane` to `w`×`h`.
    fn reference(plane: &Plane, w: u32, h: u32) -> Vec<u16> {
        let src = fr::images::TypedImageRef::<fr::pixels::U16>::new(
            plane.width,
            plane.height,
            bytemuck::cast_slice(&plane.data),
        )
        .unwrap();
        let mut dst = fr::images::TypedImage::<fr::pixels::U16>::new(w, h);
        let options = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Nearest);
        fr::Resizer::new()
            .resize_typed(&src, &mut dst, &options)
            .unwrap();
        bytemuck::cast_slice(dst.pixels()).to_vec()
    }

    #[test]
    fn picks_the_pixels_fast_image_resize_picks() {
        // Every pixel distinct, so a different position shows as a different value.
        for (sw, sh, dw, dh) in [
            (2048, 2048, 380, 380),
            (2048, 1536, 383, 287),
            (1000, 333, 97, 31),
            (517, 1201, 60, 143),
            (7, 5, 3, 2),
        ] {
            let plane = Plane {
                width: sw,
                height: sh,
                data: (0..sw * sh).map(|i| (i % 65521) as u16).collect(),
            };
            let sampled = Sampling::nearest(sw, sh, dw, dh).apply(&plane);
            assert_eq!((sampled.width, sampled.height), (dw, dh));
            assert_eq!(
                sampled.data,
                reference(&plane, dw, dh),
                "{sw}x{sh} -> {dw}x{dh}"
            );
        }
    }

    /// fast_image_resize's box convolution of `plane` to `w`×`h`.
    fn box_reference(plane: &Plane, w: u32, h: u32) -> Vec<u16> {
        let src = fr::images::TypedImageRef::<fr::pixels::U16>::new(
            plane.width,
            plane.height,
            bytemuck::cast_slice(&plane.data),
        )
        .unwrap();
        let mut dst = fr::images::TypedImage::<fr::pixels::U16>::new(w, h);
        let options =
            fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Box));
        fr::Resizer::new()
            .resize_typed(&src, &mut dst, &options)
            .unwrap();
        bytemuck::cast_slice(dst.pixels()).to_vec()
    }

    /// Noise over the whole 16-bit range, the extremes included (rounding at the top
    /// and overflow show there).
    fn noise(width: u32, height: u32) -> Plane {
        let mut data: Vec<u16> = (0..width * height)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u16)
            .collect();
        data[..(width as usize).min(8)].fill(u16::MAX);
        data[width as usize..][..(width as usize).min(8)].fill(0);
        Plane {
            width,
            height,
            data,
        }
    }

    #[test]
    fn box_filters_by_powers_of_two_as_fast_image_resize_does() {
        for (sw, sh, dw, dh) in [
            (380, 380, 95, 95),
            (384, 288, 96, 72),
            (8, 6, 4, 3),
            (512, 64, 32, 4),
            (512, 64, 64, 8),
            (32768, 2, 1, 1),
            (2, 65536, 1, 2),
        ] {
            let plane = noise(sw, sh);
            let narrowed = box_columns(&plane, dw).unwrap();
            assert_eq!(
                narrowed.data,
                box_reference(&plane, dw, sh),
                "columns {sw}x{sh} -> {dw}"
            );
            let both = box_rows(&narrowed, dh).unwrap();
            assert_eq!((both.width, both.height), (dw, dh));
            assert_eq!(
                both.data,
                box_reference(&plane, dw, dh),
                "{sw}x{sh} -> {dw}x{dh}"
            );
            let lowered = box_rows(&plane, dh).unwrap();
            assert_eq!(
                lowered.data,
                box_reference(&plane, sw, dh),
                "rows {sw}x{sh} -> {dh}"
            );
        }
    }

    #[test]
    fn box_filters_only_powers_of_two() {
        let plane = noise(384, 300);
        // 3×, 1.5×, no change, 2^16× and growing are left to fast_image_resize.
        assert!(box_columns(&plane, 128).is_none());
        assert!(box_columns(&plane, 256).is_none());
        assert!(box_columns(&plane, 384).is_none());
        assert!(box_columns(&plane, 768).is_none());
        assert!(box_rows(&plane, 100).is_none());
        assert!(box_rows(&plane, 0).is_none());
        assert!(box_rows(&noise(1, 1 << 16), 1).is_none());
        assert_eq!(box_rows(&plane, 75).unwrap().height, 75);
    }

    #[test]
    fn positions_stay_inside_the_area() {
        let s = Sampling::nearest(3, 3, 3, 3);
        assert_eq!(s.columns, [0, 1, 2]);
        assert_eq!(s.rows, [0, 1, 2]);
        let s = Sampling::nearest(10, 10, 1, 1);
        assert_eq!((s.columns[0], s.rows[0]), (5, 5));
    }
}
