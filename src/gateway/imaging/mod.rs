//! The gateway's imaging layer: reading images (`source`), rendering them as OMERO does
//! (`render`, `split`, `plots`), JPEG encoding (`encode`), sampling for thumbnails
//! (`sampling`) and the colours and LUTs channels are drawn in.
//!
//! It knows files and pixels, not requests: nothing here names the HTTP layer
//! (`gateway::http`), the gateway's handlers, users or sessions (`tests/e2e/architecture.rs`
//! checks this), so the same code serves a handler, the thumbnail publisher, the fuzz
//! checks and the benchmarks.

pub mod channel_colors;
pub mod encode;
pub mod imagej_luts;
pub mod lut;
pub mod lut_tables;
pub mod plots;
pub mod render;
pub mod sampling;
pub mod source;
pub mod split;
