//! Synthetic microscopy for a fresh install: multi-channel 16-bit OME-TIFF files that
//! look like fluorescence images (a dim uneven background with shot noise, and "cells":
//! nuclei, cytoplasm, puncta and membranes in different channels, in focus at different
//! depths). The same seed gives the same files, byte for byte.

use std::f32::consts::TAU;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tiff::encoder::{TiffEncoder, colortype};
use tiff::tags::Tag;

use super::imaging::source::ome_color_value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// How many image files to write.
    pub images: usize,
    /// Width and height of every plane.
    pub size: u32,
    /// Channels per image (1–8).
    pub channels: u32,
    /// Z sections per image.
    pub z: u32,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            images: 12,
            size: 512,
            channels: 3,
            z: 5,
            seed: 1,
        }
    }
}

/// The stains the demo channels imitate: name, emission (nm), colour.
const STAINS: [(&str, f64, [u8; 3]); 8] = [
    ("DAPI", 461.0, [0, 0, 255]),
    ("GFP", 509.0, [0, 255, 0]),
    ("mCherry", 610.0, [255, 0, 0]),
    ("Cy5", 670.0, [255, 0, 255]),
    ("CFP", 475.0, [0, 255, 255]),
    ("YFP", 527.0, [255, 255, 0]),
    ("Cy3", 570.0, [255, 128, 0]),
    ("Cy7", 776.0, [255, 255, 255]),
];

/// Writes `opts.images` files named `demo-001.ome.tiff`, … into `dir` (created if
/// needed), each atomically (temp file + rename). `progress(done, total)` is called
/// after each file. Returns the paths written.
pub fn write_demo_images(
    dir: &Path,
    opts: &DemoOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> io::Result<Vec<PathBuf>> {
    if opts.size == 0 || opts.z == 0 || !(1..=STAINS.len() as u32).contains(&opts.channels) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "demo images need a size and Z of at least 1 and 1 to {} channels",
                STAINS.len()
            ),
        ));
    }
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::with_capacity(opts.images);
    for index in 0..opts.images {
        let name = format!("demo-{:03}", index + 1);
        let path = dir.join(format!("{name}.ome.tiff"));
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.ome.tiff."))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        {
            let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            write_one(&mut out, &name, index, opts)?;
            out.flush()?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        written.push(path);
        progress(index + 1, opts.images);
    }
    File::open(dir)?.sync_all()?;
    Ok(written)
}

fn to_io(e: tiff::TiffError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Mixes the seed and an index into a well-spread 64-bit seed (splitmix64 finaliser).
fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn write_one<W: Write + io::Seek>(
    out: &mut W,
    name: &str,
    index: usize,
    opts: &DemoOptions,
) -> io::Result<()> {
    let scene = Scene::new(opts, mix(opts.seed, index as u64 + 1));
    // Alternate the two plane orders OMERO files commonly use.
    let z_first = index.is_multiple_of(2);
    let order = if z_first { "XYZCT" } else { "XYCZT" };
    let xml = ome_xml(name, opts, order);
    let planes: Vec<(u32, u32)> = if z_first {
        (0..opts.channels)
            .flat_map(|c| (0..opts.z).map(move |z| (z, c)))
            .collect()
    } else {
        (0..opts.z)
            .flat_map(|z| (0..opts.channels).map(move |c| (z, c)))
            .collect()
    };
    let mut encoder = TiffEncoder::new(out).map_err(to_io)?;
    let row_bytes = opts.size as usize * 2;
    // Strips of about 1 MiB: few reads per plane for the gateway.
    let rows_per_strip = ((1 << 20) / row_bytes).clamp(1, opts.size as usize) as u32;
    for (i, &(z, c)) in planes.iter().enumerate() {
        let data = scene.plane(z, c);
        let mut image = encoder
            .new_image::<colortype::Gray16>(opts.size, opts.size)
            .map_err(to_io)?;
        image.rows_per_strip(rows_per_strip).map_err(to_io)?;
        if i == 0 {
            image
                .encoder()
                .write_tag(Tag::ImageDescription, xml.as_str())
                .map_err(to_io)?;
        }
        image.write_data(&data).map_err(to_io)?;
    }
    Ok(())
}

fn ome_xml(name: &str, opts: &DemoOptions, order: &str) -> String {
    let mut xml = String::new();
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(
        "<OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.openmicroscopy.org/Schemas/OME/2016-06 \
         http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd\" \
         Creator=\"omero-webctl demo\">",
    );
    xml.push_str(&format!(
        "<Image ID=\"Image:0\" Name=\"{name}\"><Pixels ID=\"Pixels:0\" \
         DimensionOrder=\"{order}\" Type=\"uint16\" SizeX=\"{s}\" SizeY=\"{s}\" \
         SizeZ=\"{z}\" SizeC=\"{c}\" SizeT=\"1\" BigEndian=\"false\" \
         PhysicalSizeX=\"0.325\" PhysicalSizeY=\"0.325\" PhysicalSizeZ=\"1.0\">",
        s = opts.size,
        z = opts.z,
        c = opts.channels
    ));
    for (c, (stain, emission, rgb)) in STAINS.iter().take(opts.channels as usize).enumerate() {
        xml.push_str(&format!(
            "<Channel ID=\"Channel:0:{c}\" Name=\"{stain}\" SamplesPerPixel=\"1\" \
             Color=\"{}\" EmissionWavelength=\"{emission}\" \
             EmissionWavelengthUnit=\"nm\"/>",
            ome_color_value(*rgb)
        ));
    }
    xml.push_str(&format!(
        "<TiffData IFD=\"0\" PlaneCount=\"{}\"/></Pixels></Image></OME>",
        opts.z * opts.channels
    ));
    xml
}

/// One cell of the scene.
struct Cell {
    x: f32,
    y: f32,
    /// Cell radius in pixels.
    radius: f32,
    /// Nucleus radii (an ellipse) and its orientation.
    nucleus: (f32, f32, f32),
    /// Depth of best focus, in Z sections.
    focus: f32,
    brightness: f32,
    /// Puncta as (dx, dy, depth offset).
    puncta: Vec<(f32, f32, f32)>,
}

struct Scene {
    size: u32,
    depth: u32,
    seed: u64,
    cells: Vec<Cell>,
    /// Illumination: brighter in the middle, as through a real objective.
    background: f32,
}

impl Scene {
    fn new(opts: &DemoOptions, seed: u64) -> Scene {
        let mut rng = fastrand::Rng::with_seed(seed);
        let size = opts.size as f32;
        // About one cell per 60×60 pixels, with a little random spread.
        let count = ((size / 60.0).powi(2) * (0.7 + 0.6 * rng.f32()))
            .round()
            .max(3.0) as usize;
        let scale = (size / 512.0).clamp(0.25, 4.0);
        let cells = (0..count)
            .map(|_| {
                let radius = (14.0 + 10.0 * rng.f32()) * scale.max(0.5);
                let n = radius * (0.45 + 0.1 * rng.f32());
                Cell {
                    x: rng.f32() * size,
                    y: rng.f32() * size,
                    radius,
                    nucleus: (n * (1.0 + 0.3 * rng.f32()), n, rng.f32() * TAU),
                    focus: rng.f32() * (opts.z.max(1) - 1) as f32,
                    brightness: 0.5 + rng.f32(),
                    puncta: (0..3 + rng.usize(..6))
                        .map(|_| {
                            let a = rng.f32() * TAU;
                            let d = radius * (0.4 + 0.5 * rng.f32());
                            (d * a.cos(), d * a.sin(), rng.f32() * 2.0 - 1.0)
                        })
                        .collect(),
                }
            })
            .collect();
        Scene {
            size: opts.size,
            depth: opts.z,
            seed,
            cells,
            background: 90.0 + 30.0 * rng.f32(),
        }
    }

    /// Plane (z, c) as 16-bit samples.
    fn plane(&self, z: u32, c: u32) -> Vec<u16> {
        let n = self.size as usize;
        let mut signal = vec![0f32; n * n];
        let sigma_z = (self.depth as f32 / 4.0).max(1.0);
        for (i, cell) in self.cells.iter().enumerate() {
            let dz = (z as f32 - cell.focus) / sigma_z;
            let focus = (-0.5 * dz * dz).exp();
            match c {
                0 => self.nucleus(&mut signal, cell, 5000.0 * cell.brightness * focus),
                1 => self.cytoplasm(&mut signal, cell, 1500.0 * cell.brightness * focus),
                2 => {
                    for &(dx, dy, dzp) in &cell.puncta {
                        let dz = (z as f32 - cell.focus - dzp * sigma_z) / (sigma_z * 0.6);
                        let amp = 3500.0 * cell.brightness * (-0.5 * dz * dz).exp();
                        self.spot(&mut signal, cell.x + dx, cell.y + dy, 1.6, amp);
                    }
                }
                3 => self.membrane(&mut signal, cell, 1800.0 * cell.brightness * focus),
                _ => {
                    // Further channels: a blob offset from every other cell, per channel.
                    if (i as u32 + c).is_multiple_of(2) {
                        let a = c as f32;
                        let (x, y) = (
                            cell.x + cell.radius * 0.5 * a.cos(),
                            cell.y + cell.radius * 0.5 * a.sin(),
                        );
                        self.spot(&mut signal, x, y, cell.radius * 0.35, 2500.0 * focus);
                    }
                }
            }
        }
        let mut rng = fastrand::Rng::with_seed(mix(self.seed, ((1000 + z as u64) << 8) | c as u64));
        let half = n as f32 / 2.0;
        let mut out = Vec::with_capacity(n * n);
        for (i, &s) in signal.iter().enumerate() {
            let (x, y) = ((i % n) as f32 - half, (i / n) as f32 - half);
            let vignette = 1.0 - 0.3 * (x * x + y * y) / (half * half * 2.0);
            let mean = self.background * vignette + s;
            // Shot noise (∝ √signal) and camera read noise, roughly Gaussian.
            let gauss = rng.f32() + rng.f32() + rng.f32() - 1.5;
            let v = mean + gauss * 2.0 * (mean.sqrt() + 3.0);
            out.push(v.clamp(0.0, 65535.0) as u16);
        }
        out
    }

    /// Adds `f(dx, dy)` over the square of half-width `reach` around (cx, cy).
    fn stamp(&self, signal: &mut [f32], cx: f32, cy: f32, reach: f32, f: impl Fn(f32, f32) -> f32) {
        let n = self.size as i64;
        let (x0, x1) = ((cx - reach).floor() as i64, (cx + reach).ceil() as i64);
        let (y0, y1) = ((cy - reach).floor() as i64, (cy + reach).ceil() as i64);
        for y in y0.max(0)..y1.min(n) {
            for x in x0.max(0)..x1.min(n) {
                let v = f(x as f32 - cx, y as f32 - cy);
                signal[(y * n + x) as usize] += v;
            }
        }
    }

    fn spot(&self, signal: &mut [f32], cx: f32, cy: f32, sigma: f32, amp: f32) {
        let k = -0.5 / (sigma * sigma);
        self.stamp(signal, cx, cy, 3.0 * sigma, |dx, dy| {
            amp * ((dx * dx + dy * dy) * k).exp()
        });
    }

    fn nucleus(&self, signal: &mut [f32], cell: &Cell, amp: f32) {
        let (a, b, angle) = cell.nucleus;
        let (sin, cos) = angle.sin_cos();
        self.stamp(signal, cell.x, cell.y, a * 1.5, |dx, dy| {
            let u = (dx * cos + dy * sin) / a;
            let v = (-dx * sin + dy * cos) / b;
            let r2 = u * u + v * v;
            // A flat-topped blob with a soft edge, like a stained nucleus.
            amp / (1.0 + (8.0 * (r2 - 1.0)).exp())
        });
    }

    fn cytoplasm(&self, signal: &mut [f32], cell: &Cell, amp: f32) {
        let r = cell.radius;
        let hole = cell.nucleus.1 * 0.9;
        self.stamp(signal, cell.x, cell.y, r * 1.2, |dx, dy| {
            let d = (dx * dx + dy * dy).sqrt();
            let body = 1.0 / (1.0 + ((d - r) / 2.0).exp());
            let nucleus = 1.0 / (1.0 + ((d - hole) / 1.5).exp());
            amp * body * (1.0 - 0.8 * nucleus)
        });
    }

    fn membrane(&self, signal: &mut [f32], cell: &Cell, amp: f32) {
        let r = cell.radius;
        self.stamp(signal, cell.x, cell.y, r + 6.0, |dx, dy| {
            let d = (dx * dx + dy * dy).sqrt() - r;
            amp * (-0.5 * d * d / 2.0).exp()
        });
    }
}
