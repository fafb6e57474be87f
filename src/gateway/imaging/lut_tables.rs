//! The rest of OMERO's lookup-table list (ImageJ's, Fiji's WCIF, NCSA PalEdit and
//! Janelia tables that OMERO's server ships), generated here, never copied from
//! those files. Each is a few control points, interpolated linearly over 0–255, or a
//! rule. ImageJ's built-in "fire" and "ice" use ImageJ's own 32 control points and the
//! "*_hot" tables, "hilo", "red-green" and "glasbey" their defining rules; the others
//! have their table's shape (the colours it runs through, in order), not its exact
//! entries. `lut.rs` has grays, 3-3-2 RGB, spectrum and cool.

/// A control point: (index 0–255, [r, g, b]).
pub type Stop = (u8, [u8; 3]);

/// Linear interpolation through `stops` (sorted by index, first at 0, last at 255).
pub fn ramp(stops: &[Stop], i: u8) -> [u8; 3] {
    let i = i as f32;
    for pair in stops.windows(2) {
        let ((a, ca), (b, cb)) = (pair[0], pair[1]);
        if i <= b as f32 {
            let f = if b == a {
                0.0
            } else {
                (i - a as f32) / (b as f32 - a as f32)
            };
            let mix = |x: u8, y: u8| (x as f32 + (y as f32 - x as f32) * f).round() as u8;
            return [mix(ca[0], cb[0]), mix(ca[1], cb[1]), mix(ca[2], cb[2])];
        }
    }
    stops.last().map(|s| s.1).unwrap_or([0, 0, 0])
}

/// ImageJ's 32-step control tables (fire, ice), interpolated to 256 as ImageJ does.
fn interpolate32(r: &[u8; 32], g: &[u8; 32], b: &[u8; 32], i: u8) -> [u8; 3] {
    let scale = 32.0 / 256.0;
    let x = i as f32 * scale;
    let i1 = x.floor() as usize;
    let i2 = (i1 + 1).min(31);
    let f = x - i1 as f32;
    let mix = |t: &[u8; 32]| ((1.0 - f) * t[i1] as f32 + f * t[i2] as f32) as u8;
    [mix(r), mix(g), mix(b)]
}

const FIRE_R: [u8; 32] = [
    0, 0, 1, 25, 49, 73, 98, 122, 146, 162, 173, 184, 195, 207, 217, 229, 240, 252, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
];
const FIRE_G: [u8; 32] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 35, 57, 79, 101, 117, 133, 147, 161, 175, 190, 205,
    219, 234, 248, 255, 255, 255, 255,
];
const FIRE_B: [u8; 32] = [
    0, 61, 96, 130, 165, 192, 220, 227, 210, 181, 151, 122, 93, 64, 35, 5, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 35, 98, 160, 223, 255,
];
const ICE_R: [u8; 32] = [
    0, 0, 0, 0, 0, 0, 19, 29, 50, 48, 79, 112, 134, 158, 186, 201, 217, 229, 242, 250, 250, 250,
    250, 251, 250, 250, 250, 250, 251, 251, 243, 230,
];
const ICE_G: [u8; 32] = [
    156, 165, 176, 184, 190, 196, 193, 184, 171, 162, 146, 125, 107, 93, 81, 87, 92, 97, 95, 93,
    93, 90, 85, 69, 64, 54, 47, 35, 19, 0, 4, 0,
];
const ICE_B: [u8; 32] = [
    140, 147, 158, 166, 170, 176, 209, 220, 234, 225, 236, 246, 250, 251, 250, 250, 245, 230, 230,
    222, 202, 180, 163, 142, 123, 114, 106, 94, 84, 64, 26, 27,
];

/// A "hot" table towards `color`: black, then the channels rising one after another
/// in the order of their share of `color`, then white (Fiji's WCIF *_hot tables).
fn hot(order: [usize; 3], i: u8) -> [u8; 3] {
    let mut rgb = [0u8; 3];
    // 0..=255 spread over the three rises, so 255 is white.
    let x = i as u32 * 768 / 255;
    for (step, &channel) in order.iter().enumerate() {
        let start = step as u32 * 256;
        rgb[channel] = x.saturating_sub(start).min(255) as u8;
    }
    rgb
}

/// Glasbey-like distinct colours: index 0 black, then hues by the golden angle with
/// alternating lightness, so neighbouring labels never look alike.
fn glasbey(i: u8) -> [u8; 3] {
    if i == 0 {
        return [0, 0, 0];
    }
    let hue = (i as f32 * 0.618_034).fract();
    let value = [1.0, 0.7, 0.85][i as usize % 3];
    let saturation = [1.0, 0.6, 0.85][(i as usize / 3) % 3];
    hsv(hue, saturation, value)
}

fn hsv(h: f32, s: f32, v: f32) -> [u8; 3] {
    let h6 = h * 6.0;
    let f = h6 - h6.floor();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match h6 as u32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    let byte = |x: f32| (x * 255.0).round() as u8;
    [byte(r), byte(g), byte(b)]
}

/// Equal bands of flat colours.
fn bands(colors: &[[u8; 3]], i: u8) -> [u8; 3] {
    colors[i as usize * colors.len() / 256]
}

const K: [u8; 3] = [0, 0, 0];
const W: [u8; 3] = [255, 255, 255];
const R: [u8; 3] = [255, 0, 0];
const G: [u8; 3] = [0, 255, 0];
const B: [u8; 3] = [0, 0, 255];
const C: [u8; 3] = [0, 255, 255];
const M: [u8; 3] = [255, 0, 255];
const Y: [u8; 3] = [255, 255, 0];

/// One table: its directory on OMERO's server, its file name, its entry for index i.
pub type Generated = (&'static str, &'static str, fn(u8) -> [u8; 3]);

/// Every table `lut.rs` does not define.
pub fn generated() -> Vec<Generated> {
    vec![
        ("/luts/ncsa_paledit/", "16_colors.lut", |i| {
            bands(
                &[
                    K,
                    [1, 1, 171],
                    [1, 1, 224],
                    [0, 110, 255],
                    [1, 171, 255],
                    [1, 224, 255],
                    [1, 255, 255],
                    [0, 255, 173],
                    [0, 255, 0],
                    [171, 255, 1],
                    [224, 255, 1],
                    [255, 255, 0],
                    [255, 200, 0],
                    [255, 146, 0],
                    [255, 73, 0],
                    [255, 0, 0],
                ],
                i,
            )
        }),
        ("/luts/ncsa_paledit/", "5_ramps.lut", |i| {
            let within = (i % 51) as u16 * 5;
            let v = within.min(255) as u8;
            match i / 51 {
                0 => [v, 0, 0],
                1 => [0, v, 0],
                2 => [0, 0, v],
                3 => [v, v, 0],
                _ => [v, v, v],
            }
        }),
        ("/luts/ncsa_paledit/", "6_shades.lut", |i| {
            let v = ((i % 43) as u16 * 6).min(255) as u8;
            match i / 43 {
                0 => [v, 0, 0],
                1 => [0, v, 0],
                2 => [0, 0, v],
                3 => [v, v, 0],
                4 => [0, v, v],
                _ => [v, 0, v],
            }
        }),
        ("/luts/ncsa_paledit/", "blue_orange_icb.lut", |i| {
            ramp(
                &[
                    (0, [0, 0, 130]),
                    (64, B),
                    (128, W),
                    (192, [255, 140, 0]),
                    (255, [130, 40, 0]),
                ],
                i,
            )
        }),
        ("/luts/ncsa_paledit/", "brgbcmyw.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (36, B),
                    (73, R),
                    (109, G),
                    (146, B),
                    (182, C),
                    (219, M),
                    (237, Y),
                    (255, W),
                ],
                i,
            )
        }),
        ("/luts/wcif/", "cyan_hot.lut", |i| hot([2, 1, 0], i)),
        ("/luts/ncsa_paledit/", "edges.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (32, B),
                    (64, C),
                    (96, K),
                    (128, G),
                    (160, K),
                    (192, Y),
                    (224, R),
                    (255, W),
                ],
                i,
            )
        }),
        ("/luts/", "fire.lut", |i| {
            interpolate32(&FIRE_R, &FIRE_G, &FIRE_B, i)
        }),
        ("/luts/ncsa_paledit/", "gem.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (64, [0, 60, 140]),
                    (128, [60, 160, 120]),
                    (192, [230, 200, 80]),
                    (255, W),
                ],
                i,
            )
        }),
        ("/luts/", "glasbey.lut", glasbey),
        ("/luts/", "glasbey_inverted.lut", |i| {
            if i == 0 { W } else { glasbey(i) }
        }),
        ("/luts/", "glow.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (96, [160, 30, 0]),
                    (176, [255, 150, 0]),
                    (224, [255, 230, 60]),
                    (255, W),
                ],
                i,
            )
        }),
        ("/luts/wcif/", "green_fire_blue.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (64, [0, 80, 140]),
                    (128, [0, 180, 120]),
                    (192, [160, 230, 40]),
                    (255, W),
                ],
                i,
            )
        }),
        // ImageJ's HiLo: grey, with the lowest value blue and the highest red.
        ("/luts/wcif/", "hilo.lut", |i| match i {
            0 => B,
            255 => R,
            v => [v, v, v],
        }),
        ("/luts/wcif/", "ica.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (64, [90, 0, 140]),
                    (128, [0, 120, 255]),
                    (160, G),
                    (192, Y),
                    (224, R),
                    (255, W),
                ],
                i,
            )
        }),
        ("/luts/wcif/", "ica2.lut", |i| {
            ramp(&[(0, [0, 0, 60]), (64, B), (128, G), (192, Y), (255, R)], i)
        }),
        ("/luts/wcif/", "ica3.lut", |i| {
            ramp(
                &[(0, K), (85, [0, 100, 255]), (170, [255, 120, 0]), (255, W)],
                i,
            )
        }),
        ("/luts/", "ice.lut", |i| {
            interpolate32(&ICE_R, &ICE_G, &ICE_B, i)
        }),
        ("/luts/wcif/", "magenta_hot.lut", |i| hot([0, 2, 1], i)),
        ("/luts/wcif/", "orange_hot.lut", |i| {
            let [r, g, b] = hot([0, 1, 2], i);
            [r, (g as u16 * 3 / 4 + b as u16 / 4) as u8, b]
        }),
        ("/luts/ncsa_paledit/", "phase.lut", |i| {
            ramp(&[(0, R), (64, Y), (128, G), (192, B), (255, R)], i)
        }),
        ("/luts/", "physics.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (48, B),
                    (96, C),
                    (144, G),
                    (192, Y),
                    (240, R),
                    (255, W),
                ],
                i,
            )
        }),
        ("/luts/janelia/", "pup_br.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (96, [60, 0, 160]),
                    (176, [220, 40, 120]),
                    (255, [255, 220, 200]),
                ],
                i,
            )
        }),
        ("/luts/janelia/", "pup_nr.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (96, [0, 40, 160]),
                    (176, [200, 80, 200]),
                    (255, [255, 230, 255]),
                ],
                i,
            )
        }),
        ("/luts/wcif/", "rainbow_rgb.lut", |i| {
            ramp(&[(0, R), (64, Y), (128, G), (192, C), (255, B)], i)
        }),
        // ImageJ's Red/Green: red falling to black, then green rising.
        ("/luts/", "red-green.lut", |i| {
            if i < 128 {
                [255 - i * 2, 0, 0]
            } else {
                [0, (i - 128) * 2 + 1, 0]
            }
        }),
        ("/luts/wcif/", "red_hot.lut", |i| hot([0, 1, 2], i)),
        ("/luts/ncsa_paledit/", "royal.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (64, [80, 0, 160]),
                    (128, [200, 40, 160]),
                    (192, [255, 200, 60]),
                    (255, W),
                ],
                i,
            )
        }),
        ("/luts/ncsa_paledit/", "sepia.lut", |i| {
            ramp(&[(0, K), (128, [150, 100, 60]), (255, [255, 240, 210])], i)
        }),
        ("/luts/ncsa_paledit/", "smart.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (40, B),
                    (80, C),
                    (120, G),
                    (160, Y),
                    (200, R),
                    (230, M),
                    (255, W),
                ],
                i,
            )
        }),
        ("/luts/ncsa_paledit/", "thal.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (64, [120, 0, 0]),
                    (128, [255, 80, 0]),
                    (192, [255, 200, 0]),
                    (255, W),
                ],
                i,
            )
        }),
        ("/luts/ncsa_paledit/", "thallium.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (64, [0, 0, 160]),
                    (128, [0, 160, 160]),
                    (192, [200, 200, 0]),
                    (255, W),
                ],
                i,
            )
        }),
        ("/luts/", "thermal.lut", |i| {
            ramp(
                &[
                    (0, K),
                    (64, [80, 0, 140]),
                    (128, [220, 40, 40]),
                    (192, [255, 170, 0]),
                    (255, [255, 255, 200]),
                ],
                i,
            )
        }),
        ("/luts/ncsa_paledit/", "unionjack.lut", |i| {
            ramp(&[(0, B), (120, W), (136, W), (255, R)], i)
        }),
        // Yellow first: red and green rise together, then blue.
        ("/luts/wcif/", "yellow_hot.lut", |i| {
            let x = i as u16 * 2;
            let rg = x.min(255) as u8;
            [rg, rg, x.saturating_sub(255).min(255) as u8]
        }),
    ]
}
