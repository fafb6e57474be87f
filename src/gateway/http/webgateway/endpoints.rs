//! The webgateway/webclient views beyond render_thumbnail/render_image: imgData with
//! keys and JSONP, get_thumbnail(s), render_split_channel, the line plots,
//! histogram_json and render_image_download, each in OMERO.web's shape (see
//! `omeroweb/webgateway/views.py`).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::gateway::http::serve::blocking;
use crate::gateway::http::webgateway::img_data::{self, jsonp_error, jsonp_response, typed};
use crate::gateway::imaging::plots::{self, Axis};
use crate::gateway::imaging::render::{self, OutputSize, Rendered};
use crate::gateway::imaging::source::ImageSource;
use crate::gateway::imaging::{encode, split};
use crate::gateway::query::query_pairs;
use crate::gateway::query::render_query;
use crate::gateway::query::render_query::RenderFailure;
use crate::http_app::{self as app, Response};

/// The last value of a query parameter, as Django's `request.GET[key]`.
fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn data_uri(jpeg: &[u8]) -> String {
    format!("data:image/jpeg;base64,{}", base64(jpeg))
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Gateway {
    /// An opened image and the request's rendering settings, or the response OMERO
    /// gives when the image is missing (404).
    async fn prepared(
        self: &Arc<Self>,
        id: u64,
        query: &str,
    ) -> Result<(Arc<dyn ImageSource>, render::RenderRequest), Response> {
        let (_, source) = self.open_image(id).await?;
        let query = crate::gateway::rdefs::over_saved(query, &self.viewer_query(id));
        let request = render_query::parse_query(&query, source.meta())
            .map_err(|e| app::text(400, format!("{e}\n")))?;
        Ok((source, request))
    }

    /// `imgData/<id>/[<key>/]` (webgateway) and `[<share>/]imgData/<id>/` (webclient).
    pub(in crate::gateway) async fn img_data(
        self: Arc<Self>,
        id: u64,
        key: Option<String>,
        query: &str,
        viewer: &crate::gateway::auth::Viewer,
    ) -> Response {
        let pairs = query_pairs(query);
        let callback = last(&pairs, "callback");
        let Some(entry) = self.lookup(id).await else {
            // The view returns HttpResponseNotFound, which jsonp passes through.
            return typed(
                404,
                "text/html; charset=utf-8",
                format!("Image:{id} not found").into_bytes(),
            );
        };
        let source = match self.clone().source(&entry).await {
            Ok(s) => s,
            Err(e) => return jsonp_error(&format!("Failed to open image: {e}")),
        };
        let value = self.img_data_for(viewer, &entry, source.meta());
        let value = match key {
            None => value,
            Some(key) => match img_data::select_key(value, &key) {
                Ok(v) => v,
                Err(message) => return jsonp_error(&message),
            },
        };
        jsonp_response(&value, callback)
    }

    /// imgData of `entry` as `viewer` sees it (its saved settings, whether it may save
    /// them): webgateway's `imgData` and OMERO.iviewer's `image_data` answer it.
    pub(in crate::gateway) fn img_data_for(
        &self,
        viewer: &crate::gateway::auth::Viewer,
        entry: &crate::gateway::repository::ImageEntry,
        meta: &crate::gateway::imaging::source::ImageMeta,
    ) -> serde_json::Value {
        img_data::img_data_json(
            entry.id,
            entry,
            meta,
            &self.saved_settings(entry.id, meta),
            self.may_save_settings(viewer, entry),
            &self.parents(entry),
        )
    }

    /// `get_thumbnail/<id>/[<w>/[<h>/]]`: the thumbnail as a JSON string holding a data
    /// URI. A missing image is OMERO's Http404 inside `jsonp`, so a 500 JSON error; the
    /// webclient variant answers with its placeholder instead.
    pub(in crate::gateway) async fn get_thumbnail(
        self: Arc<Self>,
        id: u64,
        w: Option<u32>,
        h: Option<u32>,
        webclient: bool,
        query: &str,
    ) -> Response {
        let pairs = query_pairs(query);
        let callback = last(&pairs, "callback");
        let jpeg = match self.lookup(id).await {
            Some(entry) => self.thumbnail_jpeg(&entry, w, h, "").await.ok(),
            None => None,
        };
        match jpeg {
            Some(jpeg) => jsonp_response(&json!(data_uri(&jpeg)), callback),
            None if webclient => jsonp_response(&json!(data_uri(&self.placeholder)), callback),
            None => jsonp_error("Failed to render thumbnail"),
        }
    }

    /// `get_thumbnails/[<w>/]?id=1&id=2…`: `{id: data URI or null}`. IDs must be
    /// integers (else a 500 from `jsonp`), duplicates count once, and more than
    /// `omero.web.thumbnails_batch` of them is refused as OMERO refuses it.
    /// `get_thumbnails/`: every asked ID gets its data URI, or null when the image is
    /// missing or not one `viewer` may see (OMERO's thumbnail set finds neither).
    pub(in crate::gateway) async fn get_thumbnails(
        self: Arc<Self>,
        w: Option<u32>,
        query: &str,
        viewer: &crate::gateway::auth::Viewer,
    ) -> Response {
        let pairs = query_pairs(query);
        let callback = last(&pairs, "callback");
        let mut ids: Vec<u64> = Vec::new();
        for (_, raw) in pairs.iter().filter(|(k, _)| k == "id") {
            match raw.trim().parse::<i64>() {
                Ok(id) if id >= 0 => ids.push(id as u64),
                Ok(_) => {}
                Err(_) => {
                    return jsonp_error(&format!(
                        "invalid literal for int() with base 10: '{raw}'"
                    ));
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let batch = self.config.thumbnails_batch;
        if ids.len() > 1 && ids.len() > batch {
            return typed(
                500,
                "text/javascript",
                format!("Max {batch} thumbnails at a time.").into_bytes(),
            );
        }
        // The default size (OMERO's own default when w is absent) comes from the cache.
        let size = w.filter(|&w| w != crate::gateway::cache::DEFAULT_THUMBNAIL_SIZE);
        let mut map = serde_json::Map::new();
        for id in ids {
            let jpeg = match self.lookup(id).await {
                Some(entry) if self.may_see_entry(viewer, &entry) => {
                    self.thumbnail_jpeg(&entry, size, None, "").await.ok()
                }
                _ => None,
            };
            map.insert(
                id.to_string(),
                jpeg.map_or(Value::Null, |j| json!(data_uri(&j))),
            );
        }
        jsonp_response(&Value::Object(map), callback)
    }

    /// `render_split_channel/<id>/<z>/<t>/`.
    pub(in crate::gateway) async fn split_channel(
        self: Arc<Self>,
        id: u64,
        z: u32,
        t: u32,
        query: &str,
    ) -> Response {
        let (source, mut request) = match self.prepared(id, query).await {
            Ok(p) => p,
            Err(response) => return response,
        };
        if let Err(e) = request.set_plane(Some(z), Some(t), source.meta()) {
            return app::text(404, format!("{e}\n"));
        }
        // omero-py's renderSplitChannel: q, or 0.9.
        let quality = if last(&query_pairs(query), "q").is_some() {
            request.settings.quality
        } else {
            0.9
        };
        let limits = self.config.render_limits();
        blocking(
            format!("image {id} (split channels)"),
            move || match split::render_split_channel(source.as_ref(), &request, &limits) {
                Ok(image) => match encode::encode_jpeg(&image, quality) {
                    Ok(jpeg) => typed(200, "image/jpeg", jpeg),
                    Err(e) => app::text(404, format!("{e}\n")),
                },
                Err(e) => app::text(404, format!("{e}\n")),
            },
        )
        .await
    }

    /// `render_row_plot/<id>/<z>/<t>/<y>/[<w>/]` and `render_col_plot/…/<x>/[<w>/]`.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::gateway) async fn line_plot(
        self: Arc<Self>,
        id: u64,
        (z, t): (u32, u32),
        position: u32,
        width: Option<u32>,
        axis: Axis,
        query: &str,
    ) -> Response {
        let (source, request) = match self.prepared(id, query).await {
            Ok(p) => p,
            Err(response) => return response,
        };
        let meta = source.meta();
        let limit = match axis {
            Axis::Row => meta.size_y,
            Axis::Column => meta.size_x,
        };
        if z >= meta.size_z || t >= meta.size_t || position >= limit {
            // The raw pixel store raises, and the view lets it through: a server error.
            return app::text(
                500,
                format!("plane z={z} t={t} line {position} is outside the image\n"),
            );
        }
        // OMERO: a width of 0 (or none) is 1.
        let line_width = width.filter(|&w| w > 0).unwrap_or(1);
        blocking(
            format!("image {id} (line plot)"),
            move || match plots::line_plot_gif(
                source.as_ref(),
                &request.settings,
                axis,
                (z, t),
                position,
                line_width,
            ) {
                Ok(gif) => typed(200, "image/gif", gif),
                Err(e) => app::text(500, format!("{e}\n")),
            },
        )
        .await
    }

    /// `histogram_json/<id>/channel/<c>/?theZ=&theT=&bins=`: `{"data": [counts]}` over
    /// the channel's whole pixel range, as OMERO's raw pixel store bins it.
    pub(in crate::gateway) async fn histogram(
        self: Arc<Self>,
        id: u64,
        channel: u32,
        query: &str,
    ) -> Response {
        let pairs = query_pairs(query);
        // Django's int(): a value that is not an integer is a server error.
        let int = |key: &str, default: i64| -> Result<i64, String> {
            match last(&pairs, key) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid literal for int() with base 10: '{v}'\n")),
            }
        };
        let (the_z, the_t, bins) = match (int("theZ", 0), int("theT", 0), int("bins", 256)) {
            (Ok(z), Ok(t), Ok(b)) => (z, t, b),
            (Err(m), _, _) | (_, Err(m), _) | (_, _, Err(m)) => return app::text(500, m),
        };
        let (_, source) = match self.open_image(id).await {
            Ok(opened) => opened,
            Err(response) => return response,
        };
        let meta = source.meta();
        if the_z >= meta.size_z as i64 || the_t >= meta.size_t as i64 || channel >= meta.size_c {
            return app::text(404, "Not Found\n");
        }
        if the_z < 0 || the_t < 0 || bins <= 0 || bins > 1 << 16 {
            let body = json!({"error": format!("invalid histogram request: theZ={the_z} theT={the_t} bins={bins}")});
            return typed(
                400,
                "application/json",
                serde_json::to_vec(&body).expect("JSON"),
            );
        }
        blocking(format!("image {id} (histogram)"), move || {
            let plane = match source.plane(the_z as u32, channel, the_t as u32) {
                Ok(p) => p,
                Err(e) => return app::text(500, format!("{e}\n")),
            };
            let stats = &source.meta().channels[channel as usize];
            let data = histogram_counts(
                &plane.data,
                stats.min as f64,
                stats.max as f64,
                bins as usize,
            );
            typed(
                200,
                "application/json",
                serde_json::to_vec(&json!({"data": data})).expect("JSON"),
            )
        })
        .await
    }

    /// webclient `render_image_download/<id>/[<z>/[<t>/]]?format=jpeg|png|tif`: the
    /// rendered JPEG, converted (from the JPEG, as OMERO converts it) for png and tif,
    /// as an attachment named after the image.
    pub(in crate::gateway) async fn render_download(
        self: Arc<Self>,
        id: u64,
        z: Option<u32>,
        t: Option<u32>,
        query: &str,
    ) -> Response {
        let Some(entry) = self.lookup(id).await else {
            return app::text(404, "Image not found\n");
        };
        let format = last(&query_pairs(query), "format")
            .unwrap_or("jpeg")
            .to_string();
        let jpeg = match self
            .clone()
            .render(&entry, query.to_string(), z, t, false, OutputSize::Native)
            .await
        {
            Ok(jpeg) => jpeg,
            Err(RenderFailure::BadRequest(m)) => return app::text(400, format!("{m}\n")),
            Err(RenderFailure::Failed(m)) => return app::text(404, format!("{m}\n")),
        };
        let name = format!(
            "{}.{}",
            crate::gateway::http::download::attachment_name(&entry.name),
            format
        );
        blocking(format!("image {id} (render download)"), move || {
            let body = match format.as_str() {
                "png" | "tif" => match convert_jpeg(&jpeg, &format) {
                    Ok(bytes) => bytes,
                    Err(e) => return app::text(500, format!("{e}\n")),
                },
                _ => jpeg,
            };
            hyper::Response::builder()
                .status(200)
                .header("Content-Type", crate::gateway::http::download::CONTENT_TYPE)
                .header("Content-Length", body.len())
                .header(
                    "Content-Disposition",
                    crate::gateway::http::download::content_disposition(&name),
                )
                .body(app::full(Bytes::from(body)))
                .expect("valid response")
        })
        .await
    }
}

/// OMERO's raw-pixel-store binning: `bins` bins over [min, max + 1), a value v in bin
/// ⌊(v − min) / ((max − min + 1) / bins)⌋, moved up one when the bins are narrower than
/// one value (so the top value lands in the top bin); values outside are not counted.
pub fn histogram_counts(values: &[u16], min: f64, max: f64, bins: usize) -> Vec<u64> {
    let mut counts = vec![0u64; bins];
    let bin_range = (max - min + 1.0) / bins as f64;
    for &v in values {
        let mut bin = ((v as f64 - min) / bin_range).floor() as i64;
        if bin > 0 && bin_range < 1.0 {
            bin += 1;
        }
        if (0..bins as i64).contains(&bin) {
            counts[bin as usize] += 1;
        }
    }
    counts
}

/// Decodes a rendered JPEG and writes it as PNG or TIFF.
fn convert_jpeg(jpeg: &[u8], format: &str) -> Result<Vec<u8>, String> {
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        std::io::Cursor::new(jpeg),
        DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB),
    );
    let pixels = decoder
        .decode()
        .map_err(|e| format!("decoding the rendered JPEG: {e}"))?;
    let info = decoder
        .info()
        .ok_or("decoding the rendered JPEG: no header")?;
    let image = Rendered {
        width: info.width as u32,
        height: info.height as u32,
        channels: 3,
        pixels,
    };
    match format {
        "png" => encode_png(&image),
        _ => encode_tiff(&image),
    }
}

/// RGB or grey 8-bit PNG.
pub fn encode_png(image: &Rendered) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(if image.channels == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    });
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| format!("PNG: {e}"))?;
    writer
        .write_image_data(&image.pixels)
        .map_err(|e| format!("PNG: {e}"))?;
    writer.finish().map_err(|e| format!("PNG: {e}"))?;
    Ok(out)
}

fn encode_tiff(image: &Rendered) -> Result<Vec<u8>, String> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut encoder =
        tiff::encoder::TiffEncoder::new(&mut out).map_err(|e| format!("TIFF: {e}"))?;
    encoder
        .write_image::<tiff::encoder::colortype::RGB8>(image.width, image.height, &image.pixels)
        .map_err(|e| format!("TIFF: {e}"))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn histogram_bins_as_omero() {
        // min 0, max 255, 256 bins: one value per bin.
        let values: Vec<u16> = (0..=255).collect();
        assert_eq!(histogram_counts(&values, 0.0, 255.0, 256), vec![1; 256]);
        // min 0, max 127, 256 bins: bins narrower than a value, shifted up by one, so 127
        // lands in bin 255.
        let counts = histogram_counts(&[0, 1, 127], 0.0, 127.0, 256);
        assert_eq!((counts[0], counts[3], counts[255]), (1, 1, 1));
        // Four bins over 0..=99: 25 values each; out-of-range values are not counted.
        let values: Vec<u16> = (0..=120).collect();
        assert_eq!(
            histogram_counts(&values, 0.0, 99.0, 4),
            vec![25, 25, 25, 25]
        );
    }
}
