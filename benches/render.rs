//! Benchmark: the gateway's image pipeline on one core.
//!
//! * cold thumbnails: read a 2048² 16-bit plane from an uncompressed OME-TIFF (in the
//!   page cache), render the 96-px thumbnail, encode the JPEG; against a plain copy of
//!   the same plane measured in the same run;
//! * `render_image` of the whole 2048² three-channel plane, against the JPEG encode of
//!   the rendered plane alone (the ceiling); each "+ JPEG" row is `render_jpeg`, what
//!   the gateway runs (a default colour render reaches the encoder as Y, Cb and Cr
//!   planes, so it skips the encoder's own colour conversion that the ceiling counts);
//! * `render_image` of a 512² three-channel 16-bit image (read, window + colour, JPEG),
//!   against the JPEG encode alone.
//!
//! Run: `cargo bench --bench render`. Prints a Markdown table; figures are per core
//! (one thread), the median of several rounds. The allocator is tuned as a worker
//! should be (`pool::allocator::tune_allocator`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use fast_image_resize as fr;
use omero_webctl::gateway::demo::{DemoOptions, write_demo_images};
use omero_webctl::gateway::imaging::encode::encode_jpeg;
use omero_webctl::gateway::imaging::render::{
    OutputSize, RenderLimits, RenderRequest, render_jpeg, render_rgb,
};
use omero_webctl::gateway::imaging::sampling::Sampling;
use omero_webctl::gateway::imaging::source::{ImageSource, Limits, open};
use omero_webctl::pool::allocator::tune_allocator;

const ROUNDS: usize = 7;
const ROUND_TIME: Duration = Duration::from_millis(300);

/// Median seconds per call of `f` over a few timed rounds.
fn measure(mut f: impl FnMut()) -> f64 {
    f();
    let mut per_call = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < ROUND_TIME {
            f();
            n += 1;
        }
        per_call.push(start.elapsed().as_secs_f64() / n as f64);
    }
    per_call.sort_by(f64::total_cmp);
    per_call[ROUNDS / 2]
}

fn row(step: &str, seconds: f64, baseline: Option<f64>) {
    let ratio = baseline.map_or("—".to_string(), |b| format!("{:.2}", seconds / b));
    println!(
        "| {step} | {:.3} ms | {:.0} | {ratio} |",
        seconds * 1e3,
        1.0 / seconds
    );
}

/// The whole-plane rows: the rendered plane's JPEG encode alone (the ceiling), the
/// render, and render + JPEG. Returns (encode alone, render + JPEG) in seconds.
fn whole_plane(source: &dyn ImageSource, limits: &RenderLimits) -> (f64, f64) {
    // --- render_image of the whole 2048² 3-channel plane (the perf bench's whole-plane
    // row), against libjpeg-turbo's encode of the same rendered plane alone: the
    // ceiling of any whole-plane render.
    let whole_req = RenderRequest::defaults(source.meta());
    let whole = render_rgb(source, &whole_req, OutputSize::Native, limits).unwrap();
    let whole_encode = measure(|| {
        black_box(encode_jpeg(&whole, whole_req.settings.quality).unwrap());
    });
    row(
        "baseline: JPEG encode of the whole 2048² RGB plane alone, q 0.85",
        whole_encode,
        None,
    );
    // The two ways a whole plane is read, side by side: the TIFF decoder a page at a
    // time (how every plane was read before strip runs), and whole rows read a run of
    // strips at a time (what `read_planes` does for uncompressed strips).
    row(
        "read 3 planes of 2048² through the TIFF decoder",
        measure(|| {
            for c in 0..3 {
                black_box(source.plane(0, c, 0).unwrap());
            }
        }),
        Some(whole_encode),
    );
    row(
        "read 3 planes of 2048² a run of strips at a time",
        measure(|| {
            black_box(source.read_planes(0, &[0, 1, 2], 0, None).unwrap());
        }),
        Some(whole_encode),
    );
    row(
        "render the whole 2048² × 3 channels (read + window + colour)",
        measure(|| {
            black_box(render_rgb(source, &whole_req, OutputSize::Native, limits).unwrap());
        }),
        Some(whole_encode),
    );
    row(
        "render the whole 2048² × 3 channels to RGB, then JPEG (no Y, Cb, Cr planes)",
        measure(|| {
            let img = render_rgb(source, &whole_req, OutputSize::Native, limits).unwrap();
            black_box(encode_jpeg(&img, whole_req.settings.quality).unwrap());
        }),
        Some(whole_encode),
    );
    let whole_image = measure(|| {
        black_box(render_jpeg(source, &whole_req, OutputSize::Native, limits).unwrap());
    });
    row(
        "**render_image, the whole 2048² × 3 channels + JPEG**",
        whole_image,
        Some(whole_encode),
    );
    (whole_encode, whole_image)
}

fn main() {
    tune_allocator();
    let dir = tempfile::tempdir().unwrap();
    let write = |sub: &str, size: u32, channels: u32| {
        let opts = DemoOptions {
            images: 1,
            size,
            channels,
            z: 1,
            seed: 7,
        };
        write_demo_images(&dir.path().join(sub), &opts, &mut |_, _| {}).unwrap()[0].clone()
    };
    let big3 = write("big3", 2048, 3);
    let limits = Limits::default();
    let render_limits = RenderLimits::default();
    // `cargo bench --bench render -- whole-plane`: those rows alone (for a profiler).
    if std::env::args().any(|a| a == "whole-plane") {
        println!("| step (one core) | time per call | calls/s | × baseline |");
        println!("| --- | ---: | ---: | ---: |");
        let source3 = open(&big3, &limits).unwrap();
        let (encode, image) = whole_plane(source3.as_ref(), &render_limits);
        println!();
        println!(
            "whole 2048² plane: {:.2} of its encode-alone ceiling (target 0.6)",
            encode / image
        );
        return;
    }
    let big = write("big", 2048, 1);
    let small = write("small", 512, 3);

    println!("| step (one core) | time per call | calls/s | × baseline |");
    println!("| --- | ---: | ---: | ---: |");

    // --- thumbnails from a 2048² plane
    let source = open(&big, &limits).unwrap();
    let plane = source.plane(0, 0, 0).unwrap();
    let copy = measure(|| {
        black_box(plane.data.clone());
    });
    row("baseline: copy a 2048² u16 plane (8 MiB)", copy, None);
    row(
        "open the 2048² OME-TIFF (metadata + min/max scan)",
        measure(|| {
            black_box(open(&big, &limits).unwrap());
        }),
        Some(copy),
    );
    row(
        "read the 2048² plane (uncompressed TIFF decode)",
        measure(|| {
            black_box(source.plane(0, 0, 0).unwrap());
        }),
        Some(copy),
    );
    for (name, alg) in [
        (
            "resize only: 2048² → 96², SuperSampling(Box, 4) (used)",
            fr::ResizeAlg::SuperSampling(fr::FilterType::Box, 4),
        ),
        (
            "resize only: 2048² → 96², Box convolution",
            fr::ResizeAlg::Convolution(fr::FilterType::Box),
        ),
    ] {
        let src = fr::images::TypedImageRef::<fr::pixels::U16>::new(
            2048,
            2048,
            bytemuck::cast_slice(&plane.data),
        )
        .unwrap();
        let mut dst = fr::images::TypedImage::<fr::pixels::U16>::new(96, 96);
        let mut resizer = fr::Resizer::new();
        let options = fr::ResizeOptions::new().resize_alg(alg);
        row(
            name,
            measure(|| resizer.resize_typed(&src, &mut dst, &options).unwrap()),
            Some(copy),
        );
    }
    let thumb = RenderRequest::defaults(source.meta());
    let fit = OutputSize::Fit {
        max_w: 96,
        max_h: 96,
    };
    let cold = measure(|| {
        black_box(render_jpeg(source.as_ref(), &thumb, fit, &render_limits).unwrap());
    });
    row(
        "**cold thumbnail 96 px: read 2048² + render + JPEG**",
        cold,
        Some(copy),
    );

    // The perf bench's cold case: a 95-px thumbnail of a 3-channel 2048² image.
    let source3 = open(&big3, &limits).unwrap();
    let thumb3 = RenderRequest::defaults(source3.meta());
    let fit95 = OutputSize::Fit {
        max_w: 95,
        max_h: 95,
    };
    row(
        "read 3 planes of 2048² (uncompressed TIFF)",
        measure(|| {
            black_box(source3.read_planes(0, &[0, 1, 2], 0, None).unwrap());
        }),
        Some(copy),
    );
    // What a 95-px thumbnail reads: SuperSampling's first pass, 380² of the 2048².
    let sampling = Sampling::nearest(2048, 2048, 380, 380);
    row(
        "read 3 planes sampled to 380² (the rows a 95-px thumbnail uses)",
        measure(|| {
            black_box(
                source3
                    .read_planes_sampled(0, &[0, 1, 2], 0, source3.meta().full_region(), &sampling)
                    .unwrap(),
            );
        }),
        Some(copy),
    );
    let cold3 = measure(|| {
        black_box(render_jpeg(source3.as_ref(), &thumb3, fit95, &render_limits).unwrap());
    });
    row(
        "**cold thumbnail 95 px, 3 channels of 2048²: read + render + JPEG**",
        cold3,
        Some(copy),
    );

    let (whole_encode, whole_image) = whole_plane(source3.as_ref(), &render_limits);

    // --- render_image of 512², three channels
    let source = open(&small, &limits).unwrap();
    let req = RenderRequest::defaults(source.meta());
    let rendered = render_rgb(source.as_ref(), &req, OutputSize::Native, &render_limits).unwrap();
    assert_eq!(rendered.channels, 3);
    let encode = measure(|| {
        black_box(encode_jpeg(&rendered, req.settings.quality).unwrap());
    });
    row("baseline: JPEG encode of a 512² RGB, q 0.85", encode, None);
    row(
        "read 3 planes of 512² (uncompressed TIFF)",
        measure(|| {
            black_box(source.read_planes(0, &[0, 1, 2], 0, None).unwrap());
        }),
        Some(encode),
    );
    row(
        "render 512² × 3 channels (read + window + colour)",
        measure(|| {
            black_box(
                render_rgb(source.as_ref(), &req, OutputSize::Native, &render_limits).unwrap(),
            );
        }),
        Some(encode),
    );
    row(
        "render 512² × 3 channels to RGB, then JPEG (no Y, Cb, Cr planes)",
        measure(|| {
            let img =
                render_rgb(source.as_ref(), &req, OutputSize::Native, &render_limits).unwrap();
            black_box(encode_jpeg(&img, req.settings.quality).unwrap());
        }),
        Some(encode),
    );
    let image = measure(|| {
        black_box(render_jpeg(source.as_ref(), &req, OutputSize::Native, &render_limits).unwrap());
    });
    row(
        "**render_image 512² × 3 channels + JPEG**",
        image,
        Some(encode),
    );
    println!();
    println!(
        "cold thumbnails: {:.0}/s per core (target about 1,000); render_image: {:.0}/s per core (target about 500)",
        1.0 / cold,
        1.0 / image
    );
    println!(
        "whole 2048² plane: {:.2} of its encode-alone ceiling (target 0.6)",
        whole_encode / whole_image
    );
}
