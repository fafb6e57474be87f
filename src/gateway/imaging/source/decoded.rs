//! PNG and JPEG: one plane of one or three channels, decoded whole.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::page::{Page, widen};
use super::{
    ChannelMeta, Format, ImageMeta, ImageSource, Limits, PixelType, Plane, Region, SourceError,
    check_limit, file_name, invalid, open_file, unsupported,
};

pub(super) struct DecodedSource {
    path: PathBuf,
    format: Format,
    limits: Limits,
    meta: ImageMeta,
}

impl DecodedSource {
    pub(super) fn open(
        path: &Path,
        limits: &Limits,
        format: Format,
    ) -> Result<DecodedSource, SourceError> {
        let page = decode_whole(path, format, limits)?;
        let channels = (0..page.channels)
            .map(|s| {
                let (min, max) = page.page.range(s);
                ChannelMeta {
                    name: None,
                    color: None,
                    emission_nm: None,
                    min,
                    max,
                    lut: None,
                    display_range: None,
                }
            })
            .collect::<Vec<_>>();
        let pixel_type = page.pixel_type;
        Ok(DecodedSource {
            path: path.to_path_buf(),
            format,
            limits: limits.clone(),
            meta: ImageMeta {
                name: file_name(path),
                size_x: page.page.width,
                size_y: page.page.height,
                size_z: 1,
                size_c: channels.len() as u32,
                size_t: 1,
                pixel_type,
                channels,
                physical_size_um: [None; 3],
                rgb: page.channels >= 3,
            },
        })
    }
}

impl ImageSource for DecodedSource {
    fn meta(&self) -> &ImageMeta {
        &self.meta
    }

    fn plane(&self, z: u32, c: u32, t: u32) -> Result<Plane, SourceError> {
        self.meta.check_plane(z, c, t)?;
        let whole = decode_whole(&self.path, self.format, &self.limits)?;
        Ok(whole.page.into_channel(c as usize, None))
    }

    fn read_planes(
        &self,
        z: u32,
        channels: &[u32],
        t: u32,
        region: Option<Region>,
    ) -> Result<Vec<Plane>, SourceError> {
        self.meta.check_planes(z, channels, t)?;
        let region = self.meta.check_region(region)?;
        let whole = decode_whole(&self.path, self.format, &self.limits)?;
        Ok(channels
            .iter()
            .map(|&c| whole.page.channel(c as usize, region))
            .collect())
    }
}

struct Decoded {
    page: Page,
    /// Samples that are channels (alpha is not).
    channels: usize,
    pixel_type: PixelType,
}

fn decode_whole(path: &Path, format: Format, limits: &Limits) -> Result<Decoded, SourceError> {
    let file = open_file(path, limits)?;
    let reader = BufReader::new(file);
    match format {
        Format::Png => decode_png(path, reader, limits),
        Format::Jpeg => decode_jpeg(path, reader, limits),
        Format::Tiff => unreachable!("TIFF pages are read by TiffSource"),
    }
}

fn decode_png(
    path: &Path,
    reader: BufReader<File>,
    limits: &Limits,
) -> Result<Decoded, SourceError> {
    let mut decoder = png::Decoder::new(reader);
    // Palette → RGB, low bit depths → 8 bits, tRNS → alpha; 16-bit stays 16-bit.
    decoder.set_transformations(png::Transformations::EXPAND);
    let (width, height, channels) = {
        let info = decoder.read_header_info().map_err(|e| invalid(path, e))?;
        let channels = match info.color_type {
            png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => 1,
            _ => 3,
        };
        (info.width, info.height, channels)
    };
    check_limit(
        path,
        (width as u64 * height as u64).saturating_mul(channels),
        limits,
    )?;
    // Room for the largest expanded form (RGBA, 16 bits), plus the decoder's own buffers.
    decoder.set_limits(png::Limits {
        bytes: (width as usize * height as usize * 8).saturating_add(1 << 20),
    });
    let mut reader = decoder.read_info().map_err(|e| invalid(path, e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| invalid(path, "PNG too large"))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(|e| invalid(path, e))?;
    buf.truncate(frame.buffer_size());
    let (samples, channels) = match frame.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        png::ColorType::Indexed => return Err(unsupported(path, "unexpanded PNG palette")),
    };
    let (pixel_type, data) = match frame.bit_depth {
        png::BitDepth::Eight => (PixelType::U8, widen(&buf)),
        png::BitDepth::Sixteen => (
            PixelType::U16,
            buf.chunks_exact(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .collect(),
        ),
        other => return Err(unsupported(path, format!("PNG bit depth {other:?}"))),
    };
    let page = Page {
        width,
        height,
        samples,
        planar: false,
        data,
    };
    Ok(Decoded {
        page,
        channels,
        pixel_type,
    })
}

fn decode_jpeg(
    path: &Path,
    reader: BufReader<File>,
    limits: &Limits,
) -> Result<Decoded, SourceError> {
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .set_max_width(u16::MAX as usize)
        .set_max_height(u16::MAX as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(reader, options);
    decoder.decode_headers().map_err(|e| invalid(path, e))?;
    let info = decoder
        .info()
        .ok_or_else(|| invalid(path, "no JPEG header"))?;
    let (width, height) = (info.width as u32, info.height as u32);
    let channels = if info.components == 1 { 1 } else { 3 };
    check_limit(
        path,
        (width as u64 * height as u64).saturating_mul(channels),
        limits,
    )?;
    let grey = matches!(decoder.input_colorspace(), Some(ColorSpace::Luma));
    let out = if grey {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    decoder.set_options(options.jpeg_set_out_colorspace(out));
    let pixels = decoder.decode().map_err(|e| invalid(path, e))?;
    let samples = if grey { 1 } else { 3 };
    if pixels.len() < width as usize * height as usize * samples {
        return Err(invalid(path, "JPEG decoded short"));
    }
    Ok(Decoded {
        page: Page {
            width,
            height,
            samples,
            planar: false,
            data: widen(&pixels),
        },
        channels: samples,
        pixel_type: PixelType::U8,
    })
}
