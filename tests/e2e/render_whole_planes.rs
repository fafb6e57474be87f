//! Whole-plane renders pinned to the bytes the gateway produced before the fused
//! per-row pipeline (issue 26): the pixels handed to the JPEG encoder and the JPEG
//! itself, as CRC-32 and length, for several images and settings. The expected values
//! were printed by this test against the earlier, plane-at-a-time renderer (commit
//! 2708623), so any change in the output — one pixel, one byte — fails here.

use omero_webctl::gateway::demo::{DemoOptions, write_demo_images};
use omero_webctl::gateway::imaging::encode::encode_jpeg;
use omero_webctl::gateway::imaging::render::{OutputSize, RenderLimits, render_rgb};
use omero_webctl::gateway::imaging::source::{Limits, open};
use omero_webctl::gateway::query::render_query::parse_query;

/// (demo image: size, channels; query; CRC-32 and length of the rendered pixels;
/// CRC-32 and length of its JPEG).
type Case = ((u32, u32), &'static str, (u32, usize), (u32, usize));

const CASES: &[Case] = &[
    // The defaults: red, green, blue straight into place, 4:2:0 at q 0.85.
    ((257, 3), "", (3332566966, 198147), (1810564339, 4687)),
    // Colours that are not primaries, integer windows, q 0.9 (4:4:4).
    (
        (257, 3),
        "c=1|100:2000$FF8000,2|50:900$00FFFF,3|0:65535$8040C0&q=0.9",
        (2950327477, 198147),
        (194740055, 19229),
    ),
    // Fractional windows, an inverted channel, alpha below 255, clamping sums.
    (
        (257, 4),
        "c=1|100.5:1500.25$FFFFFF80,2|0:3000$FF0000,3|10:400$FFFF00,4|0:800$00FF00\
         &maps=[{\"inverted\":{\"enabled\":true}},{},{},{}]",
        (397492837, 198147),
        (277021563, 18762),
    ),
    // Lookup tables (the gateway's and ImageJ's menu name), a threshold window.
    (
        (257, 3),
        "c=1|0:1200$cool.lut,2|700:700$Fire,-3",
        (1365525371, 198147),
        (2256521798, 6869),
    ),
    // The same primary twice: the second adds into a component already written.
    (
        (257, 3),
        "c=1|0:3000$FF0000,2|0:3000$FF0000,3|0:3000$0000FF",
        (1338031363, 198147),
        (2451357419, 4529),
    ),
    // Greyscale model: grey pixels, grey JPEG.
    (
        (257, 3),
        "c=2|30:2500$FF0000&m=g",
        (3444302274, 66049),
        (258764813, 4752),
    ),
    // One channel: greyscale by default.
    ((130, 1), "", (2867002540, 16900), (4278410809, 1138)),
    // A region of a larger plane, odd sizes.
    (
        (512, 3),
        "region=13,7,301,155&c=1|0:4000$FF0000,2|0:4000$00FF00,3|0:4000$0000FF",
        (238746861, 139965),
        (3789641628, 4840),
    ),
    // A lower resolution tile is resized, not whole: still pinned.
    (
        (2048, 2),
        "tile=1,0,0,512,512",
        (3747346575, 786432),
        (2771892019, 34520),
    ),
];

#[test]
fn whole_plane_renders_are_bit_identical_to_the_plane_at_a_time_renderer() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for ((size, channels), query, pixels, jpeg) in CASES {
        let file = dir.path().join(format!("{size}-{channels}.ome.tiff"));
        if !file.exists() {
            let opts = DemoOptions {
                images: 1,
                size: *size,
                channels: *channels,
                z: 1,
                seed: 26,
            };
            let sub = dir.path().join(format!("{size}-{channels}"));
            let written = write_demo_images(&sub, &opts, &mut |_, _| {}).unwrap();
            std::fs::rename(&written[0], &file).unwrap();
        }
        let source = open(&file, &Limits::default()).unwrap();
        let request = parse_query(query, source.meta()).unwrap();
        let image = render_rgb(
            source.as_ref(),
            &request,
            OutputSize::Native,
            &RenderLimits::default(),
        )
        .unwrap();
        let encoded = encode_jpeg(&image, request.settings.quality).unwrap();
        let got_pixels = (crc32fast::hash(&image.pixels), image.pixels.len());
        let got_jpeg = (crc32fast::hash(&encoded), encoded.len());
        if (got_pixels, got_jpeg) != (*pixels, *jpeg) {
            failures.push(format!(
                "{size}² × {channels} {query:?}: pixels {got_pixels:?} (pinned {pixels:?}), \
                 JPEG {got_jpeg:?} (pinned {jpeg:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
