//! ImageJ's colour tables and display ranges, read from a TIFF as ImageJ reads them.
//!
//! ImageJ keeps a hyperstack's per-channel LUTs in its private tags: IJMetadata
//! (50839, bytes) holds a header and the entries, IJMetadataByteCounts (50838) the
//! length of each. The header is the magic `IJIJ` and one (type, count) pair per kind
//! of entry, as 32-bit integers in the file's byte order (so a little-endian file
//! says `JIJI` and `stul` for `luts`); the entries follow in the header's order. A
//! LUT entry is 768 bytes: 256 reds, 256 greens, 256 blues.
//!
//! The `ranges` entry holds each channel's display range (min, max) as 64-bit floats;
//! a single-channel file keeps its range as `min=`/`max=` in the description instead.
//!
//! A table that is a ramp from black to one colour (ImageJ's Red, Green, Magenta,
//! Grays… of a composite) is that colour, which OMERO's colour model draws exactly;
//! any other (Fire, a custom table) is drawn through the table itself.

/// One table: red, green and blue components, indexed by the rendered value.
pub type Table = [[u8; 256]; 3];

const MAGIC: u32 = u32::from_be_bytes(*b"IJIJ");
const LUTS: u32 = u32::from_be_bytes(*b"luts");
const RANGES: u32 = u32::from_be_bytes(*b"rang");
/// Bytes of one LUT entry.
const LUT_BYTES: usize = 768;

/// The IJMetadata tag (bytes).
pub const METADATA_TAG: u16 = 50839;
/// The IJMetadataByteCounts tag (one length per entry, the header first).
pub const BYTE_COUNTS_TAG: u16 = 50838;

/// What the gateway takes from IJMetadata: the LUTs, in channel order, and the
/// display ranges (`ranges`: min, max per channel, as doubles), which ImageJ applies
/// when it opens the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImagejMetadata {
    pub tables: Vec<Table>,
    pub ranges: Vec<(f64, f64)>,
}

/// IJMetadata's `metadata` bytes with `counts` (IJMetadataByteCounts). Anything
/// malformed gives nothing rather than an error: the image is still readable without
/// its colours and ranges.
pub fn parse(metadata: &[u8], counts: &[u32], little_endian: bool) -> ImagejMetadata {
    let mut found = ImagejMetadata::default();
    for (kind, entry) in entries(metadata, counts, little_endian) {
        if kind == LUTS && entry.len() == LUT_BYTES {
            let mut table = [[0u8; 256]; 3];
            for (component, bytes) in table.iter_mut().zip(entry.chunks_exact(256)) {
                component.copy_from_slice(bytes);
            }
            found.tables.push(table);
        } else if kind == RANGES && entry.len() % 16 == 0 {
            let double = |b: &[u8]| {
                let bytes: [u8; 8] = b.try_into().expect("chunks of 8");
                if little_endian {
                    f64::from_le_bytes(bytes)
                } else {
                    f64::from_be_bytes(bytes)
                }
            };
            found.ranges = entry
                .chunks_exact(16)
                .map(|pair| (double(&pair[..8]), double(&pair[8..])))
                .collect();
        }
    }
    found
}

/// IJMetadata's entries as (type, bytes), in the header's order; those before
/// anything malformed.
fn entries<'a>(metadata: &'a [u8], counts: &[u32], little_endian: bool) -> Vec<(u32, &'a [u8])> {
    let int = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = metadata.get(at..at + 4)?.try_into().ok()?;
        Some(if little_endian {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        })
    };
    let (Some(MAGIC), Some(&header_len)) = (int(0), counts.first()) else {
        return Vec::new();
    };
    let header_len = header_len as usize;
    if header_len < 4 || header_len > metadata.len() {
        return Vec::new();
    }
    // (type, count) pairs after the magic; entries follow the header, one length each.
    let mut entry_lengths = counts[1..].iter().map(|&n| n as usize);
    let mut offset = header_len;
    let mut found = Vec::new();
    let mut at = 4;
    while at + 8 <= header_len {
        let (Some(kind), Some(count)) = (int(at), int(at + 4)) else {
            break;
        };
        at += 8;
        for _ in 0..count {
            let Some(len) = entry_lengths.next() else {
                return found;
            };
            let Some(entry) = metadata.get(offset..offset.saturating_add(len)) else {
                return found;
            };
            offset += len;
            found.push((kind, entry));
        }
    }
    found
}

/// The colour a table ramps to from black (each component within one level of
/// `i · colour / 255`), or `None` for any other table.
pub fn ramp_color(table: &Table) -> Option<[u8; 3]> {
    let top = [table[0][255], table[1][255], table[2][255]];
    let linear = table.iter().zip(top).all(|(component, end)| {
        component.iter().enumerate().all(|(i, &v)| {
            let expected = i as f64 * end as f64 / 255.0;
            (v as f64 - expected).abs() <= 1.0
        })
    });
    linear.then_some(top)
}

/// The colour a table ends on, as the channel's colour where one is asked for (imgData,
/// the viewer's swatch) while the table draws it.
pub fn top_color(table: &Table) -> [u8; 3] {
    [table[0][255], table[1][255], table[2][255]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IJMetadata as tifffile's ImageJ writer lays it out: an `info` entry, then LUTs.
    fn metadata(tables: &[Table], little_endian: bool) -> (Vec<u8>, Vec<u32>) {
        let int = |v: u32| {
            if little_endian {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let info: Vec<u8> = "x=1".encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        let mut bytes = int(MAGIC).to_vec();
        bytes.extend(int(u32::from_be_bytes(*b"info")));
        bytes.extend(int(1));
        bytes.extend(int(LUTS));
        bytes.extend(int(tables.len() as u32));
        let mut counts = vec![bytes.len() as u32, info.len() as u32];
        bytes.extend(&info);
        for table in tables {
            counts.push(LUT_BYTES as u32);
            for component in table {
                bytes.extend(component);
            }
        }
        (bytes, counts)
    }

    fn ramp(color: [u8; 3]) -> Table {
        let mut table = [[0u8; 256]; 3];
        for (component, end) in table.iter_mut().zip(color) {
            for (i, v) in component.iter_mut().enumerate() {
                *v = (i * end as usize / 255) as u8;
            }
        }
        table
    }

    #[test]
    fn tables_are_read_in_either_byte_order_and_ramps_are_colours() {
        let mut fire = ramp([255, 255, 255]);
        fire[2][200] = 0;
        for little_endian in [true, false] {
            let (bytes, counts) = metadata(&[ramp([255, 0, 255]), fire], little_endian);
            let tables = parse(&bytes, &counts, little_endian).tables;
            assert_eq!(tables.len(), 2);
            assert_eq!(ramp_color(&tables[0]), Some([255, 0, 255]));
            assert_eq!(ramp_color(&tables[1]), None);
            assert_eq!(tables[1], fire);
            assert_eq!(top_color(&tables[1]), [255, 255, 255]);
        }
    }

    #[test]
    fn malformed_metadata_gives_no_tables() {
        let (bytes, counts) = metadata(&[ramp([0, 255, 0])], true);
        let none = ImagejMetadata::default();
        assert_eq!(parse(&bytes, &counts, false), none, "wrong byte order");
        assert_eq!(parse(&bytes[..40], &counts, true), none, "cut short");
        assert_eq!(parse(&bytes, &counts[..2], true), none, "counts missing");
        assert_eq!(parse(b"", &[], true), none);
    }

    #[test]
    fn display_ranges_are_read_as_min_max_pairs() {
        for little_endian in [true, false] {
            let int = |v: u32| {
                if little_endian {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                }
            };
            let double = |v: f64| {
                if little_endian {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                }
            };
            let mut bytes = int(MAGIC).to_vec();
            bytes.extend(int(RANGES));
            bytes.extend(int(1));
            for v in [10.0, 200.0, 0.0, 4095.5] {
                bytes.extend(double(v));
            }
            let found = parse(&bytes, &[12, 32], little_endian);
            assert_eq!(found.ranges, [(10.0, 200.0), (0.0, 4095.5)]);
            assert!(found.tables.is_empty());
        }
    }
}
