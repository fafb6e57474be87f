//! Nearest-neighbour sampling of a plane: the first pass of the SuperSampling resize
//! that makes thumbnails. Done while reading, it lets a source read only the rows it
//! keeps (a 95-px thumbnail of a 2048² plane keeps 380 of its 2048 rows), instead of
//! the whole plane that the resize would then mostly skip.
//!
//! The positions are fast_image_resize's own (`ResizeAlg::Nearest`: the source pixel
//! under the centre of each output pixel, rows found by a running sum), so the result
//! is exactly what its SuperSampling would have sampled from the whole plane.

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

    #[test]
    fn positions_stay_inside_the_area() {
        let s = Sampling::nearest(3, 3, 3, 3);
        assert_eq!(s.columns, [0, 1, 2]);
        assert_eq!(s.rows, [0, 1, 2]);
        let s = Sampling::nearest(10, 10, 1, 1);
        assert_eq!((s.columns[0], s.rows[0]), (5, 5));
    }
}
