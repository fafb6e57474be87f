//! `render_split_channel`: omero-py's `renderSplitChannelImage`.
//!
//! A white canvas laid out by `splitChannelDims` (greyscale model: one panel per
//! channel; colour model: one more for the merge), with `SPLIT_BORDER` pixels around
//! panels. Each active channel is rendered alone in the request's model into its slot
//! (an inactive channel leaves its slot white), then the active channels together in
//! colour go into the next slot. Panels that fall outside the canvas are cut off, as
//! PIL's paste cuts them. OMERO writes each channel's label (and "merged") on its panel
//! in a PIL bitmap font; these panels carry no text.

use super::render::{
    Model, OutputSize, RenderError, RenderLimits, RenderRequest, Rendered, render_rgb,
};
use super::source::{ImageMeta, ImageSource};

/// The gap omero-py's `splitChannelDims` leaves around each panel.
pub const SPLIT_BORDER: u32 = 2;

/// One layout of omero-py's `splitChannelDims`: a grid of `panels` panels, as square
/// as possible, with `border` pixels around each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitLayout {
    pub width: u32,
    pub height: u32,
    pub gridx: u32,
    pub gridy: u32,
}

impl SplitLayout {
    pub fn new(meta: &ImageMeta, panels: u32) -> SplitLayout {
        // rows = round(√n); columns = rows, or one more when √n is above rows.
        let root = (panels as f64).sqrt();
        let gridy = root.round() as u32;
        let gridx = if root > gridy as f64 {
            gridy + 1
        } else {
            gridy
        };
        SplitLayout {
            width: meta.size_x * gridx + SPLIT_BORDER * (gridx + 1),
            height: meta.size_y * gridy + SPLIT_BORDER * (gridy + 1),
            gridx,
            gridy,
        }
    }

    /// The greyscale layout (one panel per channel) or the colour one (plus a merged
    /// panel).
    pub fn for_model(meta: &ImageMeta, model: Model) -> SplitLayout {
        match model {
            Model::Greyscale => SplitLayout::new(meta, meta.size_c),
            Model::Color => SplitLayout::new(meta, meta.size_c + 1),
        }
    }
}

pub fn render_split_channel(
    source: &dyn ImageSource,
    request: &RenderRequest,
    limits: &RenderLimits,
) -> Result<Rendered, RenderError> {
    let meta = source.meta();
    let layout = SplitLayout::for_model(meta, request.settings.model);
    let pixels = layout.width as u64 * layout.height as u64;
    if pixels > limits.max_output_pixels {
        return Err(RenderError::TooLarge(format!(
            "a split view of {}x{} pixels is larger than the limit of {}",
            layout.width, layout.height, limits.max_output_pixels
        )));
    }
    let mut canvas = Rendered {
        width: layout.width,
        height: layout.height,
        channels: 3,
        pixels: vec![255; pixels as usize * 3],
    };
    let (mut px, mut py, mut column) = (SPLIT_BORDER, SPLIT_BORDER, 0);
    // The whole plane, whatever region the query gave.
    let mut whole = request.clone();
    whole.region = None;
    for c in 0..meta.size_c as usize {
        if request.settings.channels[c].active {
            let mut alone = whole.clone();
            for (i, ch) in alone.settings.channels.iter_mut().enumerate() {
                ch.active = i == c;
            }
            paste(
                &mut canvas,
                &render_rgb(source, &alone, OutputSize::Native, limits)?,
                px,
                py,
            );
        }
        column += 1;
        if column < layout.gridx {
            px += meta.size_x + SPLIT_BORDER;
        } else {
            column = 0;
            px = SPLIT_BORDER;
            py += meta.size_y + SPLIT_BORDER;
        }
    }
    let mut merged = whole;
    merged.settings.model = Model::Color;
    paste(
        &mut canvas,
        &render_rgb(source, &merged, OutputSize::Native, limits)?,
        px,
        py,
    );
    Ok(canvas)
}

/// Copies `panel` (grey or RGB) into the RGB canvas at (x, y), clipped to the canvas.
fn paste(canvas: &mut Rendered, panel: &Rendered, x: u32, y: u32) {
    for row in 0..panel.height {
        let cy = y + row;
        if cy >= canvas.height {
            break;
        }
        for col in 0..panel.width {
            let cx = x + col;
            if cx >= canvas.width {
                break;
            }
            let src = (row * panel.width + col) as usize * panel.channels as usize;
            let rgb = if panel.channels == 1 {
                [panel.pixels[src]; 3]
            } else {
                [
                    panel.pixels[src],
                    panel.pixels[src + 1],
                    panel.pixels[src + 2],
                ]
            };
            let dst = (cy * canvas.width + cx) as usize * 3;
            canvas.pixels[dst..dst + 3].copy_from_slice(&rgb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_layouts_follow_split_channel_dims() {
        let meta = |c: u32| ImageMeta {
            name: "m".into(),
            size_x: 10,
            size_y: 20,
            size_z: 1,
            size_c: c,
            size_t: 1,
            pixel_type: super::super::source::PixelType::U8,
            channels: Vec::new(),
            physical_size_um: [None; 3],
            rgb: false,
        };
        // (panels) → (gridx, gridy): 1→1×1, 2→2×1, 3→2×2, 4→2×2, 5→3×2, 7→3×3.
        for (n, grid) in [
            (1, (1, 1)),
            (2, (2, 1)),
            (3, (2, 2)),
            (4, (2, 2)),
            (5, (3, 2)),
            (7, (3, 3)),
        ] {
            let l = SplitLayout::new(&meta(1), n);
            assert_eq!((l.gridx, l.gridy), grid, "{n} panels");
        }
        let l = SplitLayout::new(&meta(3), 4);
        assert_eq!((l.width, l.height), (10 * 2 + 2 * 3, 20 * 2 + 2 * 3));
    }
}
