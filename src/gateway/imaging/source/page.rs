//! Decoded pages: one TIFF page, or a whole PNG/JPEG, with its samples together.

use super::{Plane, Region};

/// The samples of one stored page, widened to u16: interleaved (`RGBRGB…`) or planar
/// (`RR…GG…BB…`).
pub(super) struct Page {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) samples: usize,
    pub(super) planar: bool,
    pub(super) data: Vec<u16>,
}

impl Page {
    /// Sample `s` as a plane, cropped to `region` if given. A single-sample page without
    /// a crop hands its buffer over without copying.
    pub(super) fn into_channel(self, s: usize, region: Option<Region>) -> Plane {
        let full = Region {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        };
        let r = region.unwrap_or(full);
        if self.samples == 1 && r == full {
            return Plane {
                width: self.width,
                height: self.height,
                data: self.data,
            };
        }
        self.channel(s, r)
    }

    /// The samples under `r`, as a page of their own.
    pub(super) fn crop(&self, r: Region) -> Page {
        if self.samples == 1 || !self.planar {
            let n = self.samples;
            let mut data = Vec::with_capacity(r.pixel_count() as usize * n);
            let w = self.width as usize;
            for row in r.y as usize..(r.y + r.height) as usize {
                let first = row * w + r.x as usize;
                data.extend_from_slice(&self.data[first * n..(first + r.width as usize) * n]);
            }
            return Page {
                width: r.width,
                height: r.height,
                samples: n,
                planar: self.planar,
                data,
            };
        }
        let mut data = Vec::with_capacity(r.pixel_count() as usize * self.samples);
        for s in 0..self.samples {
            data.extend(self.channel(s, r).data);
        }
        Page {
            width: r.width,
            height: r.height,
            samples: self.samples,
            planar: true,
            data,
        }
    }

    pub(super) fn channel(&self, s: usize, r: Region) -> Plane {
        let w = self.width as usize;
        let mut data = Vec::with_capacity(r.pixel_count() as usize);
        for row in r.y as usize..(r.y + r.height) as usize {
            let first = row * w + r.x as usize;
            let last = first + r.width as usize;
            if self.samples == 1 {
                data.extend_from_slice(&self.data[first..last]);
            } else if self.planar {
                let base = s * w * self.height as usize;
                data.extend_from_slice(&self.data[base + first..base + last]);
            } else {
                let n = self.samples;
                data.extend(
                    self.data[first * n..last * n]
                        .iter()
                        .skip(s)
                        .step_by(n)
                        .copied(),
                );
            }
        }
        Plane {
            width: r.width,
            height: r.height,
            data,
        }
    }

    /// (min, max) of sample `s` over the whole page.
    pub(super) fn range(&self, s: usize) -> (u16, u16) {
        let fold = |(lo, hi): (u16, u16), &v: &u16| (lo.min(v), hi.max(v));
        let start = (u16::MAX, 0);
        if self.samples == 1 {
            self.data.iter().fold(start, fold)
        } else if self.planar {
            let n = self.width as usize * self.height as usize;
            self.data[s * n..(s + 1) * n].iter().fold(start, fold)
        } else {
            self.data
                .iter()
                .skip(s)
                .step_by(self.samples)
                .fold(start, fold)
        }
    }
}

pub(super) fn widen(bytes: &[u8]) -> Vec<u16> {
    bytes.iter().map(|&b| b as u16).collect()
}

/// Folds a page's sample ranges into the channels' running (min, max).
pub(super) fn merge_range(stats: &mut (u16, u16), (lo, hi): (u16, u16)) {
    stats.0 = stats.0.min(lo);
    stats.1 = stats.1.max(hi);
}
