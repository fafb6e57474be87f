//! Reading uncompressed, stripped TIFF pages row by row, with `pread` or from a kept
//! mapping of the file (`mapped`), so that a region or a sample of a plane reads only
//! the rows it needs.

use std::fs::File;
use std::io::BufReader;

use super::mapped::MappedFile;
use super::tiff::TiffSource;
use super::{PixelType, Plane, Region, SourceError, invalid, io_error};
use crate::gateway::imaging::sampling::Sampling;

/// Where the rows of an uncompressed, stripped page lie in the file: enough to read any
/// row of it with one `pread`.
pub(super) struct StripTable {
    offsets: Vec<u64>,
    byte_counts: Vec<u64>,
    rows_per_strip: u32,
    /// Samples in separate planes of strips (`RR…GG…BB…`) rather than interleaved.
    planar: bool,
    big_endian: bool,
}

impl TiffSource {
    /// `channels` of (z, t) (checked by the caller), a page at a time: `read_page` gets
    /// a page's IFD and the samples wanted of it, and returns one plane per sample in
    /// that order. Channels that share a page (RGB samples) are read from it together.
    pub(super) fn read_by_page(
        &self,
        z: u32,
        channels: &[u32],
        t: u32,
        mut read_page: impl FnMut(u32, &[usize]) -> Result<Vec<Plane>, SourceError>,
    ) -> Result<Vec<Plane>, SourceError> {
        let n = self.layout.channels as u32;
        let mut out: Vec<Option<Plane>> = vec![None; channels.len()];
        for i in 0..channels.len() {
            if out[i].is_some() {
                continue;
            }
            let page_channel = channels[i] / n;
            let wanted: Vec<usize> = (i..channels.len())
                .filter(|&j| channels[j] / n == page_channel && out[j].is_none())
                .collect();
            let samples: Vec<usize> = wanted.iter().map(|&j| (channels[j] % n) as usize).collect();
            let planes = read_page(self.map.ifd(z, page_channel, t), &samples)?;
            for (j, plane) in wanted.into_iter().zip(planes) {
                out[j] = Some(plane);
            }
        }
        Ok(out
            .into_iter()
            .map(|p| p.expect("every channel read"))
            .collect())
    }

    /// Page `ifd`'s strip table, or `None` when its rows cannot be read directly
    /// (compressed, tiled or predicted data, and WhiteIsZero samples, which the decoder
    /// inverts: those are decoded whole, so every path reads the same values).
    pub(super) fn strip_table(
        &self,
        decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
        ifd: u32,
    ) -> Result<Option<StripTable>, SourceError> {
        use tiff::tags::Tag;
        let path = &self.path;
        let planar = self.seek_page(decoder, ifd)?;
        let fail = |e: tiff::TiffError| invalid(path, format!("page {ifd}: {e}"));
        let compression = decoder.find_tag_unsigned::<u16>(Tag::Compression);
        let predictor = decoder.find_tag_unsigned::<u16>(Tag::Predictor);
        let photometric = decoder.find_tag_unsigned::<u16>(Tag::PhotometricInterpretation);
        if !matches!(compression, Ok(None | Some(1)))
            || !matches!(predictor, Ok(None | Some(1)))
            // 0: WhiteIsZero.
            || matches!(photometric, Ok(Some(0)) | Err(_))
            || decoder.get_chunk_type() != tiff::decoder::ChunkType::Strip
        {
            return Ok(None);
        }
        let offsets = decoder.get_tag_u64_vec(Tag::StripOffsets).map_err(fail)?;
        let byte_counts = decoder
            .get_tag_u64_vec(Tag::StripByteCounts)
            .map_err(fail)?;
        let height = self.layout.height;
        let rows_per_strip = match decoder.find_tag_unsigned::<u32>(Tag::RowsPerStrip) {
            Ok(Some(rows)) if rows > 0 => rows.min(height),
            Ok(_) => height,
            Err(e) => return Err(fail(e)),
        };
        let planes = if planar { self.layout.samples } else { 1 };
        let needed = height.div_ceil(rows_per_strip) as usize * planes;
        if offsets.len() < needed || byte_counts.len() < needed {
            return Err(invalid(
                path,
                format!(
                    "page {ifd}: {needed} strips expected, {} listed",
                    offsets.len()
                ),
            ));
        }
        Ok(Some(StripTable {
            offsets,
            byte_counts,
            rows_per_strip,
            planar,
            big_endian: decoder.byte_order() == tiff::tags::ByteOrder::BigEndian,
        }))
    }

    /// Samples `samples` of page `ifd` at `sampling`'s rows and columns of `region`,
    /// reading from the file just the sampled rows (each row's span of the region).
    pub(super) fn read_sampled_rows(
        &self,
        from: &RowsFrom,
        ifd: u32,
        table: &StripTable,
        samples: &[usize],
        region: Region,
        sampling: &Sampling,
    ) -> Result<Vec<Plane>, SourceError> {
        let path = &self.path;
        let layout = &self.layout;
        let bytes = match layout.pixel_type {
            PixelType::U8 => 1,
            PixelType::U16 => 2,
        };
        // Samples per pixel within one strip's rows.
        let stride = if table.planar { 1 } else { layout.samples };
        let row_bytes = layout.width as u64 * (stride * bytes) as u64;
        let span = region.width as usize * stride * bytes;
        let strips_per_plane = layout.height.div_ceil(table.rows_per_strip) as usize;
        // The row's span, read into 16-bit words: 16-bit samples are then picked
        // whole, one load each (a third of the time of assembling them from bytes).
        let mut words = vec![0u16; span.div_ceil(2)];
        let mut unaligned: Vec<u16> = Vec::new();
        // Index of each sampled column's first sample within a row's span.
        let columns: Vec<usize> = sampling
            .columns
            .iter()
            .map(|&x| x as usize * stride)
            .collect();
        let mut planes: Vec<Vec<u16>> = samples
            .iter()
            .map(|_| Vec::with_capacity(sampling.columns.len() * sampling.rows.len()))
            .collect();
        // Interleaved samples share one read per row; planar ones are read each alone.
        let reads: Vec<Option<usize>> = if table.planar {
            samples.iter().map(|&s| Some(s)).collect()
        } else {
            vec![None]
        };
        for read in reads {
            // Where sampled row `row` starts in the file.
            let locate = |row: u32| {
                let y = region.y + row;
                let strip =
                    read.unwrap_or(0) * strips_per_plane + (y / table.rows_per_strip) as usize;
                let within = (y % table.rows_per_strip) as u64 * row_bytes
                    + region.x as u64 * (stride * bytes) as u64;
                if within + span as u64 > table.byte_counts[strip] {
                    return Err(invalid(path, format!("page {ifd}: strip {strip} is short")));
                }
                table.offsets[strip].checked_add(within).ok_or_else(|| {
                    invalid(
                        path,
                        format!("page {ifd}: strip {strip} lies beyond any file"),
                    )
                })
            };
            for &row in &sampling.rows {
                let at = locate(row)?;
                let truncated = || invalid(path, format!("page {ifd} is truncated"));
                let row: &[u8] = match from {
                    RowsFrom::Mapped(mapped) => usize::try_from(at)
                        .ok()
                        .and_then(|at| mapped.bytes().get(at..at.checked_add(span)?))
                        .ok_or_else(truncated)?,
                    RowsFrom::File(file) => {
                        let buffer = &mut bytemuck::cast_slice_mut::<u16, u8>(&mut words)[..span];
                        self.read_at(file, ifd, at, buffer)?;
                        buffer
                    }
                };
                // 16-bit samples are picked from words; a mapped row at an odd offset is
                // copied into aligned words first.
                let row_words: &[u16] = if bytes == 2 {
                    match bytemuck::try_cast_slice(row) {
                        Ok(aligned) => aligned,
                        Err(_) => {
                            unaligned.clear();
                            unaligned.extend(
                                row.chunks_exact(2)
                                    .map(|pair| u16::from_ne_bytes([pair[0], pair[1]])),
                            );
                            &unaligned
                        }
                    }
                } else {
                    &[]
                };
                for (i, &s) in samples.iter().enumerate() {
                    if read.is_some_and(|r| r != s) {
                        continue;
                    }
                    let lane = if table.planar { 0 } else { s };
                    if bytes == 2 {
                        gather_words(row_words, &columns, lane, table.big_endian, &mut planes[i]);
                    } else {
                        gather(row, &columns, lane, 1, false, &mut planes[i]);
                    }
                }
            }
        }
        Ok(planes
            .into_iter()
            .map(|data| Plane {
                width: sampling.width(),
                height: sampling.height(),
                data,
            })
            .collect())
    }
}

/// Where sampled rows are read from: a mapping of the file (no call, no copy; the
/// caller checks afterwards that it was not cut: `TiffSource::unless_cut`), or the
/// file itself with `pread`.
pub(super) enum RowsFrom<'a> {
    Mapped(&'a MappedFile),
    File(&'a File),
}

/// One page of a band read: its strip table and the wanted channels it stores.
pub(super) struct PageRows {
    ifd: u32,
    table: StripTable,
    /// The page's samples that are wanted, each read into its own buffer.
    samples: Vec<usize>,
}

/// The pages that store a band read's channels, and for each channel (in the order
/// asked) its page (an index into `pages`) and its buffer within that page.
pub(super) struct RowPages {
    pages: Vec<PageRows>,
    placed: Vec<(usize, usize)>,
}

impl TiffSource {
    /// Whether some page of `pages` can be read where it lies in a mapping of the file
    /// (else mapping it would only cost a kept slot).
    pub(super) fn any_rows_usable_in_place(&self, pages: &RowPages) -> bool {
        pages
            .pages
            .iter()
            .any(|page| self.rows_usable_in_place(&page.table))
    }

    /// Samples `samples` of page `ifd` within `rows` (whole rows: the region spans the
    /// page's width), read with one `pread` per run of strips that lie back to back in
    /// the file (see [`TiffSource::read_rows_into`]).
    pub(super) fn read_whole_rows(
        &self,
        file: &File,
        ifd: u32,
        table: &StripTable,
        samples: &[usize],
        rows: std::ops::Range<u32>,
    ) -> Result<Vec<Plane>, SourceError> {
        let (width, height) = (self.layout.width, rows.end - rows.start);
        let mut out: Vec<Vec<u16>> = samples.iter().map(|_| Vec::new()).collect();
        self.read_rows_into(file, ifd, table, samples, rows, &mut Vec::new(), &mut out)?;
        Ok(out
            .into_iter()
            .map(|data| Plane {
                width,
                height,
                data,
            })
            .collect())
    }

    /// The pages that store `channels` of (z, t), each with its strip table and the
    /// samples wanted of it; `None` when any of them cannot be read row by row
    /// (compressed, tiled or predicted data).
    pub(super) fn row_pages(
        &self,
        decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
        z: u32,
        channels: &[u32],
        t: u32,
    ) -> Result<Option<RowPages>, SourceError> {
        let n = self.layout.channels as u32;
        let mut pages: Vec<(u32, PageRows)> = Vec::new();
        // For each channel, its page (an index into `pages`) and buffer within it.
        let mut placed = Vec::with_capacity(channels.len());
        for &c in channels {
            let page_channel = c / n;
            let at = match pages.iter().position(|(pc, _)| *pc == page_channel) {
                Some(at) => at,
                None => {
                    let ifd = self.map.ifd(z, page_channel, t);
                    let Some(table) = self.strip_table(decoder, ifd)? else {
                        return Ok(None);
                    };
                    let samples = Vec::new();
                    pages.push((
                        page_channel,
                        PageRows {
                            ifd,
                            table,
                            samples,
                        },
                    ));
                    pages.len() - 1
                }
            };
            let samples = &mut pages[at].1.samples;
            samples.push((c % n) as usize);
            placed.push((at, samples.len() - 1));
        }
        Ok(Some(RowPages {
            pages: pages.into_iter().map(|(_, p)| p).collect(),
            placed,
        }))
    }

    /// Rows `rows` of `pages` handed to `visit` at most `band_rows` at a time, one
    /// slice per channel in the order `placed` gives (from [`TiffSource::row_pages`]).
    /// Each band is read into small buffers reused from band to band, so that its rows
    /// are still in the cache when `visit` mixes them: no whole planes are held.
    pub(super) fn read_row_bands_of(
        &self,
        file: &File,
        mapped: Option<&MappedFile>,
        RowPages { pages, placed }: &RowPages,
        rows: std::ops::Range<u32>,
        band_rows: u32,
        visit: &mut dyn FnMut(&[&[u16]]),
    ) -> Result<(), SourceError> {
        let mut buffers: Vec<Vec<Vec<u16>>> = pages
            .iter()
            .map(|p| p.samples.iter().map(|_| Vec::new()).collect())
            .collect();
        let mut raw = Vec::new();
        let mut y = rows.start;
        while y < rows.end {
            let last = rows.end.min(y.saturating_add(band_rows.max(1)));
            // Per page, its samples' rows as they lie in the mapped file (no copy), or
            // None: then they are read into the page's buffers.
            let mut in_place: Vec<Option<Vec<&[u16]>>> = Vec::with_capacity(pages.len());
            for (page, out) in pages.iter().zip(&mut buffers) {
                let band = y..last;
                let borrowed = mapped.and_then(|mapped| {
                    page.samples
                        .iter()
                        .map(|&s| {
                            let strip_plane = if page.table.planar { s } else { 0 };
                            self.mapped_rows(
                                mapped,
                                page.ifd,
                                &page.table,
                                strip_plane,
                                band.clone(),
                            )
                        })
                        .collect::<Option<Vec<_>>>()
                });
                if borrowed.is_none() {
                    self.read_rows_into(
                        file,
                        page.ifd,
                        &page.table,
                        &page.samples,
                        band,
                        &mut raw,
                        out,
                    )?;
                }
                in_place.push(borrowed);
            }
            let slices: Vec<&[u16]> = placed
                .iter()
                .map(|&(page, k)| match &in_place[page] {
                    Some(borrowed) => borrowed[k],
                    None => &buffers[page][k][..],
                })
                .collect();
            visit(&slices);
            y = last;
        }
        Ok(())
    }

    /// Fills `out` (one buffer per sample of `samples`) with rows `rows` of page `ifd`,
    /// replacing what they held, read with one `pread` per run of strips that lie back
    /// to back in the file — straight into the buffer when a strip holds one sample of
    /// 16 bits, else through `raw` and widened. A file cut short fails as truncated;
    /// strips in any order are read where they lie.
    #[allow(clippy::too_many_arguments)]
    fn read_rows_into(
        &self,
        file: &File,
        ifd: u32,
        table: &StripTable,
        samples: &[usize],
        rows: std::ops::Range<u32>,
        raw: &mut Vec<u8>,
        out: &mut [Vec<u16>],
    ) -> Result<(), SourceError> {
        let layout = &self.layout;
        let bytes = match layout.pixel_type {
            PixelType::U8 => 1,
            PixelType::U16 => 2,
        };
        let stride = if table.planar { 1 } else { layout.samples };
        let row_bytes = layout.width as usize * stride * bytes;
        let height = (rows.end - rows.start) as usize;
        let pixels = layout.width as usize * height;
        if stride == 1 && bytes == 2 {
            // One sample of 16 bits per strip row: the file's bytes are the plane's.
            for (&s, data) in samples.iter().zip(out.iter_mut()) {
                let strip_plane = if table.planar { s } else { 0 };
                // Buffers reused band to band are zeroed only where they grow.
                data.resize(pixels, 0);
                let dest: &mut [u8] = bytemuck::cast_slice_mut(&mut data[..]);
                self.read_strip_runs(file, ifd, table, strip_plane, rows.clone(), row_bytes, dest)?;
                // Only a file in the other byte order needs a pass over the rows.
                if table.big_endian != cfg!(target_endian = "big") {
                    for v in data.iter_mut() {
                        *v = v.swap_bytes();
                    }
                }
            }
            return Ok(());
        }
        // 8-bit or interleaved samples: the rows' bytes, then each sample widened.
        let every_column: Vec<usize> = (0..layout.width as usize)
            .map(|x| x * stride * bytes)
            .collect();
        raw.resize(row_bytes * height, 0);
        for data in out.iter_mut() {
            data.clear();
            data.reserve(pixels);
        }
        let reads: Vec<Option<usize>> = if table.planar {
            samples.iter().map(|&s| Some(s)).collect()
        } else {
            vec![None]
        };
        for read in reads {
            let strip_plane = read.unwrap_or(0);
            self.read_strip_runs(file, ifd, table, strip_plane, rows.clone(), row_bytes, raw)?;
            for (i, &s) in samples.iter().enumerate() {
                if read.is_some_and(|r| r != s) {
                    continue;
                }
                let lane = if table.planar { 0 } else { s };
                for row in raw.chunks_exact(row_bytes) {
                    gather(
                        row,
                        &every_column,
                        lane * bytes,
                        bytes,
                        table.big_endian,
                        &mut out[i],
                    );
                }
            }
        }
        Ok(())
    }

    /// Fills `dest` with `rows` of strip plane `strip_plane` (`row_bytes` each), one
    /// `pread` per run of strips that follow each other in the file.
    #[allow(clippy::too_many_arguments)]
    fn read_strip_runs(
        &self,
        file: &File,
        ifd: u32,
        table: &StripTable,
        strip_plane: usize,
        rows: std::ops::Range<u32>,
        row_bytes: usize,
        dest: &mut [u8],
    ) -> Result<(), SourceError> {
        let mut filled = 0;
        for (at, len) in self.strip_runs(ifd, table, strip_plane, rows, row_bytes)? {
            self.read_at(file, ifd, at, &mut dest[filled..filled + len])?;
            filled += len;
        }
        Ok(())
    }

    /// `into.len()` bytes of page `ifd`'s rows at `at`, with one `pread`; a file that
    /// ends before them fails as truncated.
    fn read_at(&self, file: &File, ifd: u32, at: u64, into: &mut [u8]) -> Result<(), SourceError> {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(into, at).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                invalid(&self.path, format!("page {ifd} is truncated"))
            }
            _ => io_error(&self.path, e),
        })
    }

    /// Where `rows` of strip plane `strip_plane` (`row_bytes` each) lie in the file, in
    /// row order: (offset, length) runs, strips that follow each other in the file
    /// making one run.
    fn strip_runs(
        &self,
        ifd: u32,
        table: &StripTable,
        strip_plane: usize,
        rows: std::ops::Range<u32>,
        row_bytes: usize,
    ) -> Result<Vec<(u64, usize)>, SourceError> {
        let path = &self.path;
        let rps = table.rows_per_strip;
        let strips_per_plane = self.layout.height.div_ceil(rps) as usize;
        let mut runs: Vec<(u64, usize)> = Vec::new();
        let mut y = rows.start;
        while y < rows.end {
            let strip_row = y / rps;
            let last = ((strip_row + 1) * rps).min(rows.end);
            let strip = strip_plane * strips_per_plane + strip_row as usize;
            let within = (y - strip_row * rps) as u64 * row_bytes as u64;
            let len = (last - y) as usize * row_bytes;
            if within + len as u64 > table.byte_counts[strip] {
                return Err(invalid(path, format!("page {ifd}: strip {strip} is short")));
            }
            let at = table.offsets[strip].checked_add(within).ok_or_else(|| {
                invalid(
                    path,
                    format!("page {ifd}: strip {strip} lies beyond any file"),
                )
            })?;
            match runs.last_mut() {
                Some((start, n)) if start.checked_add(*n as u64) == Some(at) => *n += len,
                _ => runs.push((at, len)),
            }
            y = last;
        }
        Ok(runs)
    }

    /// Whether a page's rows can be used where they lie in the file: one 16-bit sample
    /// per pixel of a strip row, in the machine's byte order.
    fn rows_usable_in_place(&self, table: &StripTable) -> bool {
        matches!(self.layout.pixel_type, PixelType::U16)
            && (table.planar || self.layout.samples == 1)
            && table.big_endian == cfg!(target_endian = "big")
    }

    /// `rows` of strip plane `strip_plane` borrowed from `mapped` as they lie in the
    /// file: when they hold one 16-bit sample per pixel in the machine's byte order,
    /// in one run, at an even address. `None` otherwise (they are then read).
    fn mapped_rows<'m>(
        &self,
        mapped: &'m MappedFile,
        ifd: u32,
        table: &StripTable,
        strip_plane: usize,
        rows: std::ops::Range<u32>,
    ) -> Option<&'m [u16]> {
        if !self.rows_usable_in_place(table) {
            return None;
        }
        let row_bytes = self.layout.width as usize * 2;
        let runs = self
            .strip_runs(ifd, table, strip_plane, rows, row_bytes)
            .ok()?;
        let [(at, len)] = runs[..] else {
            return None;
        };
        let start = usize::try_from(at).ok()?;
        let bytes = mapped.bytes().get(start..start.checked_add(len)?)?;
        bytemuck::try_cast_slice(bytes).ok()
    }
}

/// Appends the 16-bit samples at `columns` (+ `lane`) of one row to `out`, in the
/// machine's byte order (`big_endian`: the file's).
fn gather_words(row: &[u16], columns: &[usize], lane: usize, big_endian: bool, out: &mut Vec<u16>) {
    let row = &row[lane..];
    if big_endian {
        out.extend(columns.iter().map(|&x| u16::from_be(row[x])));
    } else {
        out.extend(columns.iter().map(|&x| u16::from_le(row[x])));
    }
}

/// Appends the samples at `columns` (+ `lane`) of one row's bytes to `out`, widened to
/// u16; one loop per sample format, so that each is a plain gather.
fn gather(
    row: &[u8],
    columns: &[usize],
    lane: usize,
    bytes: usize,
    big_endian: bool,
    out: &mut Vec<u16>,
) {
    let at = |x: usize| x + lane;
    match (bytes, big_endian) {
        (1, _) => out.extend(columns.iter().map(|&x| row[at(x)] as u16)),
        (_, false) => out.extend(
            columns
                .iter()
                .map(|&x| u16::from_le_bytes([row[at(x)], row[at(x) + 1]])),
        ),
        (_, true) => out.extend(
            columns
                .iter()
                .map(|&x| u16::from_be_bytes([row[at(x)], row[at(x) + 1]])),
        ),
    }
}
