//! JPEG encoding of rendered images with libjpeg-turbo.

use std::cell::RefCell;

use super::render::ycc::{Chroma, YccPlanes};
use super::render::{RenderError, Rendered};

thread_local! {
    // A libjpeg-turbo compressor per thread: set-up costs more than a small thumbnail.
    static COMPRESSOR: RefCell<Option<turbojpeg::Compressor>> = const { RefCell::new(None) };
}

/// Encodes with libjpeg-turbo at `quality` (0–1, as OMERO's `q`): grey for one channel;
/// for colour 4:2:0 chroma below 0.9 (as OMERO's default 0.85 gives) and 4:4:4 from 0.9.
pub fn encode_jpeg(img: &Rendered, quality: f32) -> Result<Vec<u8>, RenderError> {
    let (format, subsamp) = match img.channels {
        1 => (turbojpeg::PixelFormat::GRAY, turbojpeg::Subsamp::Gray),
        3 => match chroma_at(quality) {
            Chroma::Half => (turbojpeg::PixelFormat::RGB, turbojpeg::Subsamp::Sub2x2),
            Chroma::Full => (turbojpeg::PixelFormat::RGB, turbojpeg::Subsamp::None),
        },
        n => return Err(RenderError::Encode(format!("{n} channels"))),
    };
    let pitch = img.width as usize * img.channels as usize;
    if img.width == 0 || img.height == 0 || img.pixels.len() != pitch * img.height as usize {
        return Err(RenderError::Encode(
            "pixel buffer does not match the size".into(),
        ));
    }
    let image = turbojpeg::Image {
        pixels: img.pixels.as_slice(),
        width: img.width as usize,
        pitch,
        height: img.height as usize,
        format,
    };
    with_compressor(quality, |compressor| {
        compressor.set_subsamp(subsamp)?;
        compressor.compress_to_vec(image)
    })
}

/// The chroma subsampling [`encode_jpeg`] gives a colour image at `quality`.
pub(crate) fn chroma_at(quality: f32) -> Chroma {
    if quality < 0.9 {
        Chroma::Half
    } else {
        Chroma::Full
    }
}

/// Encodes Y, Cb and Cr planes (converted as libjpeg-turbo converts RGB, subsampled as
/// [`chroma_at`] says for `quality`): the same JPEG as [`encode_jpeg`] of the RGB image.
pub(crate) fn encode_jpeg_ycc(planes: YccPlanes, quality: f32) -> Result<Vec<u8>, RenderError> {
    let (subsamp, chroma_width) = match planes.chroma {
        Chroma::Half => (turbojpeg::Subsamp::Sub2x2, planes.width / 2),
        Chroma::Full => (turbojpeg::Subsamp::None, planes.width),
    };
    if planes.y.len() != planes.width * planes.height {
        return Err(RenderError::Encode("planes do not match the size".into()));
    }
    let image = turbojpeg::YuvPlanesImage {
        y_plane: planes.y.as_slice(),
        u_plane: planes.cb.as_slice(),
        v_plane: planes.cr.as_slice(),
        width: planes.width,
        height: planes.height,
        y_stride: planes.width,
        u_stride: chroma_width,
        v_stride: chroma_width,
        subsamp,
    };
    with_compressor(quality, |compressor| {
        compressor.compress_yuv_planes_to_vec(&image)
    })
}

/// Runs `encode` with this thread's compressor set to `quality` (0–1, as OMERO's `q`).
fn with_compressor(
    quality: f32,
    encode: impl FnOnce(&mut turbojpeg::Compressor) -> turbojpeg::Result<Vec<u8>>,
) -> Result<Vec<u8>, RenderError> {
    let q = (quality.clamp(0.0, 1.0) * 100.0).round().clamp(1.0, 100.0) as i32;
    let encode_err = |e: turbojpeg::Error| RenderError::Encode(e.to_string());
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(turbojpeg::Compressor::new().map_err(encode_err)?);
        }
        let compressor = slot.as_mut().expect("just set");
        compressor.set_quality(q).map_err(encode_err)?;
        encode(compressor).map_err(encode_err)
    })
}
