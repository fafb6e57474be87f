//! TIFF sources: the page layout, how pages map to (z, c, t), and reading planes
//! and regions page by page (see `strips` for the direct reads of uncompressed strips).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::imagej::{imagej_calibration, imagej_description_range, imagej_metadata, parse_imagej};
use super::mapped::{self, MappedFile};
use super::ome_xml::{MAX_OME_PLANES, parse_ome_xml};
use super::page::{Page, merge_range, widen};
use super::strips::RowsFrom;
use super::{
    ChannelMeta, ImageMeta, ImageSource, Limits, PixelType, Plane, Region, SourceError,
    check_limit, file_name, invalid, io_error, open_file, unsupported,
};
use crate::gateway::imaging::sampling::Sampling;

/// How the pages of a TIFF file map to (z, c, t).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PlaneMap {
    /// The three letters after "XY" of the OME DimensionOrder; the first varies fastest.
    pub(super) order: [u8; 3],
    pub(super) size_z: u32,
    /// Channels that have pages of their own (SizeC divided by the samples per page).
    pub(super) page_channels: u32,
    pub(super) size_t: u32,
    /// IFD of each plane index, when OME TiffData elements say so; else plane index = IFD.
    pub(super) ifds: Option<Vec<u32>>,
}

impl PlaneMap {
    pub(super) fn plane_index(&self, z: u32, c: u32, t: u32) -> u64 {
        let mut index = 0u64;
        let mut stride = 1u64;
        for &dim in &self.order {
            let (pos, size) = match dim {
                b'Z' => (z, self.size_z),
                b'C' => (c, self.page_channels),
                _ => (t, self.size_t),
            };
            index += pos as u64 * stride;
            stride = stride.saturating_mul(size as u64);
        }
        index
    }

    pub(super) fn ifd(&self, z: u32, c_page: u32, t: u32) -> u32 {
        let index = self.plane_index(z, c_page, t);
        match &self.ifds {
            Some(table) => table[index as usize],
            None => index as u32,
        }
    }
}

/// SizeC: channels per page × samples per page, if it fits a u32 (an ImageJ
/// hyperstack of pages with thousands of samples can pass it once the pixel limit is
/// raised past 2^32).
fn channel_count(page_channels: u32, samples: usize) -> Option<u32> {
    u32::try_from(page_channels as u64 * samples as u64).ok()
}

pub(super) fn parse_order(order: &str) -> Option<[u8; 3]> {
    let bytes = order.as_bytes();
    if bytes.len() != 5 || &bytes[..2] != b"XY" {
        return None;
    }
    let rest = [bytes[2], bytes[3], bytes[4]];
    let mut sorted = rest;
    sorted.sort_unstable();
    (&sorted == b"CTZ").then_some(rest)
}

/// The sample layout shared by every page of the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct TiffLayout {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) pixel_type: PixelType,
    /// Samples stored per pixel.
    pub(super) samples: usize,
    /// Samples used as channels: alpha is dropped.
    pub(super) channels: usize,
}

fn tiff_layout(
    path: &Path,
    decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
) -> Result<TiffLayout, SourceError> {
    use tiff::ColorType;
    let (width, height) = decoder.dimensions().map_err(|e| invalid(path, e))?;
    let color = decoder
        .colortype()
        .map_err(|e| unsupported(path, format!("TIFF colour type: {e}")))?;
    let (bits, samples, channels) = match color {
        ColorType::Gray(b) => (b, 1, 1),
        ColorType::GrayA(b) => (b, 2, 1),
        ColorType::RGB(b) => (b, 3, 3),
        ColorType::RGBA(b) => (b, 4, 3),
        ColorType::Multiband {
            bit_depth,
            num_samples,
        } => (bit_depth, num_samples as usize, num_samples as usize),
        other => return Err(unsupported(path, format!("TIFF colour type {other:?}"))),
    };
    let pixel_type = match bits {
        8 => PixelType::U8,
        16 => PixelType::U16,
        b => return Err(unsupported(path, format!("{b}-bit TIFF samples"))),
    };
    // Signed and floating-point samples would need their own windows; refuse them.
    if let Ok(Some(format)) = decoder.find_tag_unsigned::<u16>(tiff::tags::Tag::SampleFormat)
        && format != 1
    {
        return Err(unsupported(
            path,
            "signed or floating-point TIFF samples (only unsigned 8/16-bit)",
        ));
    }
    if width == 0 || height == 0 {
        return Err(invalid(path, "zero-sized TIFF page"));
    }
    Ok(TiffLayout {
        width,
        height,
        pixel_type,
        samples,
        channels,
    })
}

pub(super) struct TiffSource {
    pub(super) path: PathBuf,
    /// Each page read opens the file again: checked as the first open was.
    limits: Limits,
    meta: ImageMeta,
    pub(super) layout: TiffLayout,
    pub(super) map: PlaneMap,
}

impl TiffSource {
    /// Decoder limits for reading pages of `layout` (`None`: just the directories).
    fn decoder_limits(layout: Option<&TiffLayout>) -> tiff::decoder::Limits {
        let mut limits = tiff::decoder::Limits::default();
        // OME-XML descriptions of big datasets exceed tiff's 1 MiB default.
        limits.ifd_value_size = 64 << 20;
        let Some(layout) = layout else {
            return limits;
        };
        // One whole page must fit; its size was already checked against Limits.
        let page_bytes = (layout.width as usize)
            .saturating_mul(layout.height as usize)
            .saturating_mul(layout.samples * 2);
        limits.decoding_buffer_size = limits.decoding_buffer_size.max(page_bytes);
        limits
    }

    fn decoder(
        path: &Path,
        within: &Limits,
        limits: tiff::decoder::Limits,
    ) -> Result<tiff::decoder::Decoder<BufReader<File>>, SourceError> {
        let file = open_file(path, within)?;
        tiff::decoder::Decoder::new(BufReader::new(file))
            .map(|d| d.with_limits(limits))
            .map_err(|e| invalid(path, e))
    }

    pub(super) fn open(
        path: &Path,
        limits: &Limits,
        known: Option<&ImageMeta>,
    ) -> Result<TiffSource, SourceError> {
        let mut decoder = Self::decoder(path, limits, Self::decoder_limits(None))?;
        let layout = tiff_layout(path, &mut decoder)?;
        // Saturating: 32-bit sides and 16-bit sample counts multiply past u64.
        let page_pixels = layout.width as u64 * layout.height as u64;
        let page_values = page_pixels.saturating_mul(layout.channels as u64);
        check_limit(path, page_values, limits)?;
        let description = decoder
            .get_tag_ascii_string(tiff::tags::Tag::ImageDescription)
            .ok();
        let imagej = match description.as_deref() {
            Some(d) if d.starts_with("ImageJ=") => imagej_metadata(&mut decoder),
            _ => Default::default(),
        };
        // Units per pixel along X (XResolution is pixels per unit), for ImageJ's
        // calibration.
        let pixel_width = match decoder.find_tag(tiff::tags::Tag::XResolution) {
            Ok(Some(tiff::decoder::ifd::Value::Rational(n, d))) if n > 0 && d > 0 => {
                Some(d as f64 / n as f64)
            }
            _ => None,
        };

        // Count the pages that share the first page's layout; a trailing page of another
        // size (a preview, a label) ends the image. The running pixel count is checked as
        // we go, so a file with a million IFDs is refused early.
        let mut pages = 1u64;
        while decoder.more_images() {
            if decoder.next_image().is_err() {
                break;
            }
            match tiff_layout(path, &mut decoder) {
                Ok(l) if l == layout => pages += 1,
                _ => break,
            }
            check_limit(path, pages.saturating_mul(page_values), limits)?;
            if pages > MAX_OME_PLANES {
                return Err(unsupported(
                    path,
                    format!("more than {MAX_OME_PLANES} pages"),
                ));
            }
        }

        let mut name = file_name(path);
        let ome = match description.as_deref() {
            Some(d) if d.contains("<OME") => Some(parse_ome_xml(d).map_err(|e| match e {
                SourceError::OmeXml(m) => invalid(path, format!("OME-XML: {m}")),
                other => other,
            })?),
            _ => None,
        };
        let mut physical_size_um = [None; 3];
        let (map, channels) = if let Some(ome) = ome {
            physical_size_um = ome.physical_size_um;
            check_limit(
                path,
                super::product(&[ome.size_x, ome.size_y, ome.size_z, ome.size_c, ome.size_t]),
                limits,
            )?;
            // One named file is this one (whatever it is called now); several are a
            // multi-file image, of which we would see only a part.
            if ome.files.len() > 1 {
                return Err(unsupported(
                    path,
                    format!("multi-file OME-TIFF (planes in {} files)", ome.files.len()),
                ));
            }
            if (ome.size_x, ome.size_y) != (layout.width, layout.height) {
                return Err(invalid(
                    path,
                    format!(
                        "OME-XML says {}×{} but the TIFF pages are {}×{}",
                        ome.size_x, ome.size_y, layout.width, layout.height
                    ),
                ));
            }
            let expected = match ome.pixel_type.as_str() {
                "uint8" => PixelType::U8,
                "uint16" => PixelType::U16,
                other => return Err(unsupported(path, format!("OME pixel type {other}"))),
            };
            if expected != layout.pixel_type {
                return Err(invalid(path, "OME-XML pixel type differs from the TIFF's"));
            }
            if ome.plane_channels as usize * layout.channels != ome.size_c as usize {
                return Err(invalid(
                    path,
                    format!(
                        "SizeC={} does not match {} planes per Z/T of {} samples each",
                        ome.size_c, ome.plane_channels, layout.channels
                    ),
                ));
            }
            let page_channels = ome.plane_channels;
            let ifds = match &ome.plane_ifds {
                None => None,
                Some(table) => {
                    let missing = table.iter().position(Option::is_none);
                    if let Some(index) = missing {
                        return Err(invalid(
                            path,
                            format!("OME-XML maps no IFD to plane {index}"),
                        ));
                    }
                    Some(table.iter().map(|ifd| ifd.unwrap_or(0)).collect())
                }
            };
            let map = PlaneMap {
                order: parse_order(&ome.dimension_order).expect("validated"),
                size_z: ome.size_z,
                page_channels,
                size_t: ome.size_t,
                ifds,
            };
            if let Some(n) = ome.name.as_ref().filter(|n| !n.is_empty()) {
                name = n.clone();
            }
            let channels = ome
                .channels
                .into_iter()
                .map(|c| ChannelMeta {
                    name: c.name,
                    color: c.color,
                    emission_nm: c.emission_nm,
                    min: 0,
                    max: 0,
                    lut: None,
                    display_range: None,
                })
                .collect();
            (map, channels)
        } else {
            if let Some(d) = description.as_deref() {
                physical_size_um = imagej_calibration(d, pixel_width);
            }
            let (z, c, t) = match description.as_deref().and_then(parse_imagej) {
                Some((z, c, t)) if super::product(&[z, c, t]) == pages => (z, c, t),
                // A plain multi-page TIFF is a Z stack.
                _ => (pages as u32, 1, 1),
            };
            let map = PlaneMap {
                order: if c > 1 { *b"CZT" } else { *b"ZCT" },
                size_z: z,
                page_channels: c,
                size_t: t,
                ifds: None,
            };
            let count = c as usize * layout.channels;
            // ImageJ's LUTs, one per channel of a grey hyperstack: a ramp is the
            // channel's colour, any other table is drawn as it is.
            let tables = if layout.channels == 1 && imagej.tables.len() == count {
                imagej.tables
            } else {
                Vec::new()
            };
            // Display ranges: one per channel, else the description's for all.
            let ranges: Vec<Option<(f64, f64)>> = if imagej.ranges.len() == count {
                imagej
                    .ranges
                    .iter()
                    .map(|&(lo, hi)| {
                        (lo.is_finite() && hi.is_finite() && lo < hi).then_some((lo, hi))
                    })
                    .collect()
            } else {
                let whole = description
                    .as_deref()
                    .filter(|d| d.starts_with("ImageJ="))
                    .and_then(imagej_description_range);
                vec![whole; count]
            };
            let channels = (0..count)
                .map(|i| {
                    let table = tables.get(i);
                    let ramp = table.and_then(super::super::imagej_luts::ramp_color);
                    ChannelMeta {
                        name: None,
                        color: ramp.or(table.map(super::super::imagej_luts::top_color)),
                        emission_nm: None,
                        min: 0,
                        max: 0,
                        lut: table.filter(|_| ramp.is_none()).map(|t| t.concat()),
                        display_range: ranges[i],
                    }
                })
                .collect();
            (map, channels)
        };

        let needed = super::product(&[map.size_z, map.page_channels, map.size_t]);
        let highest = match &map.ifds {
            Some(table) => table.iter().max().map_or(0, |&m| m as u64 + 1),
            None => needed,
        };
        if highest > pages {
            return Err(invalid(
                path,
                format!(
                    "the metadata needs {} pages but the file has {pages}",
                    super::at_least(highest)
                ),
            ));
        }

        let size_c = channel_count(map.page_channels, layout.channels).ok_or_else(|| {
            invalid(
                path,
                format!(
                    "{} channels of {} samples each is more channels than can be counted",
                    map.page_channels, layout.channels
                ),
            )
        })?;
        let mut source = TiffSource {
            path: path.to_path_buf(),
            limits: limits.clone(),
            meta: ImageMeta {
                name,
                size_x: layout.width,
                size_y: layout.height,
                size_z: map.size_z,
                size_c,
                size_t: map.size_t,
                pixel_type: layout.pixel_type,
                channels,
                physical_size_um,
                rgb: layout.channels >= 3,
            },
            layout,
            map,
        };
        let m = &source.meta;
        match known {
            Some(k)
                if (
                    k.size_x,
                    k.size_y,
                    k.size_z,
                    k.size_c,
                    k.size_t,
                    k.pixel_type,
                ) == (
                    m.size_x,
                    m.size_y,
                    m.size_z,
                    m.size_c,
                    m.size_t,
                    m.pixel_type,
                ) =>
            {
                for (channel, old) in source.meta.channels.iter_mut().zip(&k.channels) {
                    (channel.min, channel.max) = (old.min, old.max);
                }
            }
            _ => source.compute_stats()?,
        }
        Ok(source)
    }

    /// Scans every page once for its channels' global min/max (OMERO's StatsInfo).
    fn compute_stats(&mut self) -> Result<(), SourceError> {
        let n = self.layout.channels;
        let mut stats = vec![(u16::MAX, 0u16); self.meta.size_c as usize];
        let mut decoder = self.page_decoder()?;
        for t in 0..self.map.size_t {
            for cp in 0..self.map.page_channels {
                for z in 0..self.map.size_z {
                    let page = self.read_page(&mut decoder, self.map.ifd(z, cp, t))?;
                    for s in 0..n {
                        merge_range(&mut stats[cp as usize * n + s], page.range(s));
                    }
                }
            }
        }
        for (channel, (lo, hi)) in self.meta.channels.iter_mut().zip(stats) {
            channel.min = lo;
            channel.max = hi;
        }
        Ok(())
    }

    fn page_decoder(&self) -> Result<tiff::decoder::Decoder<BufReader<File>>, SourceError> {
        Self::decoder(
            &self.path,
            &self.limits,
            Self::decoder_limits(Some(&self.layout)),
        )
    }

    /// Moves the decoder to page `ifd`, checks it matches the first page, and says
    /// whether its samples are stored in separate planes.
    pub(super) fn seek_page(
        &self,
        decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
        ifd: u32,
    ) -> Result<bool, SourceError> {
        let path = &self.path;
        decoder
            .seek_to_image(ifd as usize)
            .map_err(|e| invalid(path, format!("page {ifd}: {e}")))?;
        if tiff_layout(path, decoder)? != self.layout {
            return Err(invalid(
                path,
                format!("page {ifd} differs from the first page"),
            ));
        }
        Ok(matches!(
            decoder.find_tag_unsigned::<u16>(tiff::tags::Tag::PlanarConfiguration),
            Ok(Some(2))
        ))
    }

    /// The part of page `ifd` under `region`. A small region decodes only the strips or
    /// tiles it touches, so a 512² tile of a large plane does not read the whole plane.
    fn read_page_region(
        &self,
        decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
        ifd: u32,
        region: Region,
    ) -> Result<Page, SourceError> {
        let page_pixels = self.layout.width as u64 * self.layout.height as u64;
        if region.pixel_count() * 2 > page_pixels {
            let page = self.read_page(decoder, ifd)?;
            return Ok(if region == self.meta.full_region() {
                page
            } else {
                page.crop(region)
            });
        }
        let path = &self.path;
        let planar = self.seek_page(decoder, ifd)?;
        let fail = |e: tiff::TiffError| invalid(path, format!("page {ifd}: {e}"));
        let (cw, ch) = decoder.chunk_dimensions();
        if cw == 0 || ch == 0 {
            return Err(invalid(
                path,
                format!("page {ifd}: zero-sized strips or tiles"),
            ));
        }
        let total = match decoder.get_chunk_type() {
            tiff::decoder::ChunkType::Strip => decoder.strip_count(),
            tiff::decoder::ChunkType::Tile => decoder.tile_count(),
        }
        .map_err(fail)?;
        let across = self.layout.width.div_ceil(cw);
        let per_plane = across * self.layout.height.div_ceil(ch);
        let samples = self.layout.samples;
        // Samples per pixel inside one chunk, and how many planes of chunks there are.
        let (chunk_samples, planes) = if planar { (1, samples) } else { (samples, 1) };
        let (rw, rh) = (region.width as usize, region.height as usize);
        let mut data = vec![0u16; rw * rh * samples];
        let (x0, y0) = (region.x, region.y);
        let (x1, y1) = (x0 + region.width, y0 + region.height);
        for plane in 0..planes {
            for cy in y0 / ch..=(y1 - 1) / ch {
                for cx in x0 / cw..=(x1 - 1) / cw {
                    let index = plane as u32 * per_plane + cy * across + cx;
                    if index >= total {
                        return Err(invalid(path, format!("page {ifd}: missing strip or tile")));
                    }
                    let (dw, dh) = decoder.chunk_data_dimensions(index);
                    let chunk = match decoder.read_chunk(index).map_err(fail)? {
                        tiff::decoder::DecodingResult::U8(v) => widen(&v),
                        tiff::decoder::DecodingResult::U16(v) => v,
                        _ => return Err(unsupported(path, "TIFF sample type")),
                    };
                    let (ox, oy) = (cx * cw, cy * ch);
                    let (c0, c1) = (x0.max(ox), x1.min(ox + dw));
                    let len = (c1 - c0) as usize * chunk_samples;
                    for row in y0.max(oy)..y1.min(oy + dh) {
                        let from = (((row - oy) * dw + (c0 - ox)) as usize) * chunk_samples;
                        let pixel = (row - y0) as usize * rw + (c0 - x0) as usize;
                        let to = plane * rw * rh + pixel * chunk_samples;
                        let src = chunk
                            .get(from..from + len)
                            .ok_or_else(|| invalid(path, format!("page {ifd} is truncated")))?;
                        data[to..to + len].copy_from_slice(src);
                    }
                }
            }
        }
        Ok(Page {
            width: region.width,
            height: region.height,
            samples,
            planar,
            data,
        })
    }

    fn read_page(
        &self,
        decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
        ifd: u32,
    ) -> Result<Page, SourceError> {
        let path = &self.path;
        let planar = self.seek_page(decoder, ifd)?;
        let mut result = match self.layout.pixel_type {
            PixelType::U8 => tiff::decoder::DecodingResult::U8(Vec::new()),
            PixelType::U16 => tiff::decoder::DecodingResult::U16(Vec::new()),
        };
        decoder
            .read_image_to_buffer(&mut result)
            .map_err(|e| invalid(path, format!("page {ifd}: {e}")))?;
        let data = match result {
            tiff::decoder::DecodingResult::U8(v) => widen(&v),
            tiff::decoder::DecodingResult::U16(v) => v,
            _ => return Err(unsupported(path, "TIFF sample type")),
        };
        let expected = self.layout.width as usize * self.layout.height as usize;
        if data.len() < expected * self.layout.samples {
            return Err(invalid(path, format!("page {ifd} is truncated")));
        }
        Ok(Page {
            width: self.layout.width,
            height: self.layout.height,
            samples: self.layout.samples,
            planar,
            data,
        })
    }
}

impl ImageSource for TiffSource {
    fn meta(&self) -> &ImageMeta {
        &self.meta
    }

    fn plane(&self, z: u32, c: u32, t: u32) -> Result<Plane, SourceError> {
        self.meta.check_plane(z, c, t)?;
        let n = self.layout.channels as u32;
        let mut decoder = self.page_decoder()?;
        let page = self.read_page(&mut decoder, self.map.ifd(z, c / n, t))?;
        Ok(page.into_channel((c % n) as usize, None))
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
        let mut decoder = self.page_decoder()?;
        // Whole rows of uncompressed strips are read with a `pread` per run of strips,
        // not through the decoder (which reads and converts a strip at a time).
        let whole_rows = region.x == 0 && region.width == self.layout.width;
        let file = decoder
            .inner()
            .get_ref()
            .try_clone()
            .map_err(|e| io_error(&self.path, e))?;
        self.read_by_page(z, channels, t, |ifd, samples| {
            if whole_rows && let Some(table) = self.strip_table(&mut decoder, ifd)? {
                let rows = region.y..region.y + region.height;
                return self.read_whole_rows(&file, ifd, &table, samples, rows);
            }
            let page = self.read_page_region(&mut decoder, ifd, region)?;
            // A page that serves one channel hands its buffer over.
            if let [only] = samples[..] {
                return Ok(vec![page.into_channel(only, None)]);
            }
            let whole = Region {
                x: 0,
                y: 0,
                width: page.width,
                height: page.height,
            };
            Ok(samples.iter().map(|&s| page.channel(s, whole)).collect())
        })
    }

    fn read_row_bands(
        &self,
        z: u32,
        channels: &[u32],
        t: u32,
        region: Region,
        band_rows: u32,
        visit: &mut dyn FnMut(&[&[u16]]),
    ) -> Result<(), SourceError> {
        self.meta.check_planes(z, channels, t)?;
        let region = self.meta.check_region(Some(region))?;
        if region.x == 0 && region.width == self.layout.width {
            let mut decoder = self.page_decoder()?;
            if let Some(pages) = self.row_pages(&mut decoder, z, channels, t)? {
                let file = decoder.inner().get_ref();
                let rows = region.y..region.y + region.height;
                let mapping = self
                    .any_rows_usable_in_place(&pages)
                    .then(|| mapped::kept_mapping(file))
                    .flatten();
                let read = self.read_row_bands_of(
                    file,
                    mapping.as_deref(),
                    &pages,
                    rows,
                    band_rows,
                    visit,
                );
                self.unless_cut(mapping.as_ref(), file)?;
                return read;
            }
        }
        // Narrower regions, compressed or tiled pages: decoded whole, then in bands.
        let planes = self.read_planes(z, channels, t, Some(region))?;
        super::in_row_bands(&planes, band_rows, visit);
        Ok(())
    }

    fn read_planes_sampled(
        &self,
        z: u32,
        channels: &[u32],
        t: u32,
        region: Region,
        sampling: &Sampling,
    ) -> Result<Vec<Plane>, SourceError> {
        self.meta.check_planes(z, channels, t)?;
        let region = self.meta.check_region(Some(region))?;
        let mut decoder = self.page_decoder()?;
        let file = decoder
            .inner()
            .get_ref()
            .try_clone()
            .map_err(|e| io_error(&self.path, e))?;
        // Mapped on the first page that has rows to read (never for compressed files).
        let mut mapping: Option<Option<Arc<MappedFile>>> = None;
        let planes = self.read_by_page(z, channels, t, |ifd, samples| {
            match self.strip_table(&mut decoder, ifd)? {
                Some(table) => {
                    let from = match mapping.get_or_insert_with(|| mapped::kept_mapping(&file)) {
                        Some(mapped) => RowsFrom::Mapped(mapped),
                        None => RowsFrom::File(&file),
                    };
                    self.read_sampled_rows(&from, ifd, &table, samples, region, sampling)
                }
                None => {
                    let page = self.read_page_region(&mut decoder, ifd, region)?;
                    let whole = Region {
                        x: 0,
                        y: 0,
                        width: page.width,
                        height: page.height,
                    };
                    Ok(samples
                        .iter()
                        .map(|&s| sampling.apply(&page.channel(s, whole)))
                        .collect())
                }
            }
        });
        self.unless_cut(mapping.flatten().as_ref(), &file)?;
        planes
    }
}

impl TiffSource {
    /// A file cut under its mapping read as zeros past its new end (a later page's
    /// directory may have failed to parse for it): the read fails, as a short `pread`
    /// fails, whatever it returned, and the next one maps the file as it is now.
    fn unless_cut(
        &self,
        mapping: Option<&Arc<MappedFile>>,
        file: &File,
    ) -> Result<(), SourceError> {
        match mapping {
            Some(mapped) if mapped.is_cut() || !mapped.still_whole(file) => {
                mapped::forget(mapped);
                Err(invalid(
                    &self.path,
                    "the file was cut short while it was read",
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_counts_past_u32_are_none() {
        assert_eq!(channel_count(3, 1), Some(3));
        assert_eq!(channel_count(1 << 16, 65535), Some((1 << 16) * 65535));
        assert_eq!(channel_count(65537, 65535), Some(u32::MAX));
        assert_eq!(channel_count(65538, 65535), None);
        assert_eq!(channel_count(u32::MAX, 2), None);
    }
}
