//! OMERO.web's webclient views: the login page without sessions, the gallery, the
//! image viewer, error pages, the favicon and the static files.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::conditional::{Conditional, Validator, not_modified, unix_secs};
use super::serve::{html, redirect};
use crate::gateway::imaging::render;
use crate::gateway::imaging::source::ImageMeta;
use crate::gateway::query::query_pairs;
use crate::gateway::repository::ImageEntry;
use crate::gateway::{Gateway, static_files};
use crate::http_app::{self as app, Response};

pub mod pages;

impl Gateway {
    /// OMERO's login URL on a site without sessions: GET shows that no login is
    /// needed (200, as OMERO's form page is), POST goes where OMERO's successful login
    /// would: the `url` parameter when it stays on this site, else the webclient.
    pub(in crate::gateway) fn login(&self, is_post: bool, query: &str) -> Response {
        let pairs = query_pairs(query);
        let next = pairs
            .iter()
            .find(|(k, _)| k == "url")
            // Only a path on this site: never an open redirect.
            .and_then(|(_, v)| crate::gateway::http::login::local_target(v))
            .unwrap_or_else(|| format!("{}/webclient/", self.config.prefix));
        if is_post {
            return redirect(&next);
        }
        html(pages::login_page(
            &self.config.prefix,
            &self.config.static_url,
            &next,
        ))
    }
    /// A styled HTML error page with a way back to the gallery.
    pub(in crate::gateway) fn error_page(&self, status: u16, message: &str) -> Response {
        hyper::Response::builder()
            .status(status)
            .header("Content-Type", "text/html; charset=utf-8")
            .body(app::full(pages::error_page(
                &self.config.prefix,
                &self.config.static_url,
                status,
                message,
            )))
            .expect("valid response")
    }
    pub(in crate::gateway) fn gallery(
        &self,
        query: &str,
        viewer: &crate::gateway::auth::Viewer,
    ) -> Response {
        let pairs = query_pairs(query);
        let param = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let page = param("page").and_then(|v| v.parse().ok()).unwrap_or(1);
        let images = self.gallery_order(viewer);
        html(pages::gallery(
            &self.config.prefix,
            &self.config.static_url,
            &images,
            &pages::GalleryQuery {
                page,
                page_size: self.config.page_size,
                filter: param("q").unwrap_or(""),
                thumbnail_version: &|id| self.thumbnail_version(id),
            },
        ))
    }
    /// The current version of image `id`'s default thumbnail (`thumbnail_version`).
    pub(in crate::gateway) fn thumbnail_version(&self, id: u64) -> Option<String> {
        let entry = self.repository.get(id)?;
        Some(crate::gateway::thumbnail_version::of(
            &entry,
            &self.viewer_query(id),
        ))
    }
    /// The project and dataset `entry` sits in (its folders).
    pub(in crate::gateway) fn parents(
        &self,
        entry: &ImageEntry,
    ) -> crate::gateway::parents::Parents {
        let relative = entry
            .path
            .strip_prefix(self.repository.root())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| entry.name.clone());
        crate::gateway::parents::Parents::of(&relative)
    }
    /// Every image as (ID, path inside the repository), in the gallery's order: by
    /// path, case-insensitively, so `exp1/cell.tif` and `exp2/cell.tif` are told apart
    /// and listed as a file browser lists them.
    pub(in crate::gateway) fn gallery_order(
        &self,
        viewer: &crate::gateway::auth::Viewer,
    ) -> Vec<(u64, String)> {
        let root = self.repository.root().to_path_buf();
        let mut images: Vec<(u64, String)> = self
            .repository
            .list()
            .into_iter()
            .filter(|e| viewer.sees(crate::gateway::auth::owning_group(&root, &e.path)))
            .map(|e| {
                let relative = e
                    .path
                    .strip_prefix(&root)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or(e.name);
                (e.id, relative)
            })
            .collect();
        images.sort_by(|a, b| {
            a.1.to_lowercase()
                .cmp(&b.1.to_lowercase())
                .then(a.1.cmp(&b.1))
                .then(a.0.cmp(&b.0))
        });
        images
    }
    /// The images before and after `id` in the gallery's order, and the gallery page
    /// that lists it.
    pub(in crate::gateway) fn neighbours(
        &self,
        id: u64,
        viewer: &crate::gateway::auth::Viewer,
    ) -> pages::Neighbours {
        let ids: Vec<u64> = self.gallery_order(viewer).iter().map(|e| e.0).collect();
        let Some(position) = ids.iter().position(|&i| i == id) else {
            return pages::Neighbours {
                gallery_page: 1,
                ..Default::default()
            };
        };
        pages::Neighbours {
            previous: position.checked_sub(1).map(|p| ids[p]),
            next: ids.get(position + 1).copied(),
            gallery_page: position / self.config.page_size.max(1) + 1,
        }
    }
    pub(in crate::gateway) async fn viewer(
        self: Arc<Self>,
        id: u64,
        viewer: crate::gateway::auth::Viewer,
    ) -> Response {
        let Some(entry) = self.lookup(id).await else {
            return self.error_page(404, &format!("There is no image with ID {id}."));
        };
        let gateway = self.clone();
        let neighbours =
            crate::http_app::blocking::spawn_blocking("gallery neighbours", move || {
                gateway.neighbours(id, &viewer)
            })
            .await
            .unwrap_or_default();
        let source = match self.clone().source(&entry).await {
            Ok(source) => source,
            Err(e) => {
                return hyper::Response::builder()
                    .status(404)
                    .header("Content-Type", "text/html; charset=utf-8")
                    .body(app::full(pages::image_error_page(
                        &self.config.prefix,
                        &self.config.static_url,
                        404,
                        &format!("Image {id} ({}) cannot be read: {e}", entry.name),
                        Some(&neighbours),
                    )))
                    .expect("valid response");
            }
        };
        let meta = source.meta();
        let defaults = self.saved_settings(id, meta);
        let type_max = meta.pixel_type.max_value() as u32;
        let channels = channel_views(meta, &defaults)
            .into_iter()
            .zip(&meta.channels)
            .map(|(c, m)| {
                // An empty range (a constant channel) gets the pixel type's.
                let (min, max) = if m.min < m.max {
                    (m.min as u32, m.max as u32)
                } else {
                    (0, type_max)
                };
                pages::ViewerChannel {
                    index: c.index,
                    label: viewer_channel_label(&c.label, m, c.index),
                    color: c.color,
                    start: c.start,
                    end: c.end,
                    min,
                    max,
                    active: c.active,
                    file_lut: defaults
                        .channels
                        .get(c.index - 1)
                        .is_some_and(|s| s.file_lut.is_some()),
                }
            })
            .collect();
        html(pages::viewer(
            &self.config.prefix,
            &self.config.static_url,
            &pages::ViewerPage {
                id,
                name: &entry.name,
                width: meta.size_x,
                height: meta.size_y,
                size_z: meta.size_z,
                size_t: meta.size_t,
                default_z: defaults.z,
                default_t: defaults.t,
                color_model: defaults.model == render::Model::Color,
                pixel_size_um: meta.physical_size_um[0].filter(|p| *p > 0.0),
                channels,
                neighbours,
                thumbnail_version: crate::gateway::thumbnail_version::of(
                    &entry,
                    &self.viewer_query(id),
                ),
                levels: render::resolution_levels(meta),
            },
        ))
    }
    pub(in crate::gateway) fn static_file(
        &self,
        relative: &str,
        conditional: &Conditional,
    ) -> Response {
        let Some(path) = static_files::resolve(&self.config.static_root, relative) else {
            return app::text(404, "Not Found\n");
        };
        // Only a regular file (a FIFO planted in static_root must not hang a thread).
        let mut bytes = Vec::new();
        let read = crate::fsutil::open_regular(&path)
            .and_then(|mut file| std::io::Read::read_to_end(&mut file, &mut bytes));
        if read.is_err() {
            return app::text(404, "Not Found\n");
        }
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let validator = Validator {
            etag: format!("\"s-{:x}-{:x}\"", bytes.len(), unix_secs(modified)),
            modified,
        };
        if conditional.matches(&validator) {
            return not_modified(&validator);
        }
        hyper::Response::builder()
            .status(200)
            .header("Content-Type", static_files::content_type(&path))
            .header("ETag", &validator.etag)
            .header("Last-Modified", httpdate::fmt_http_date(validator.modified))
            .body(app::full(bytes))
            .expect("valid response")
    }
    /// OMERO's webclient answers a missing thumbnail with a placeholder image.
    pub(in crate::gateway) fn placeholder(&self) -> Response {
        hyper::Response::builder()
            .status(200)
            .header("Content-Type", "image/jpeg")
            .body(app::full(self.placeholder.clone()))
            .expect("valid response")
    }
}

/// One channel as the viewer page shows it.
pub(in crate::gateway) struct ChannelView {
    index: usize,
    label: String,
    color: String,
    start: u32,
    end: u32,
    active: bool,
}

pub(in crate::gateway) fn channel_views(
    meta: &ImageMeta,
    settings: &render::RenderSettings,
) -> Vec<ChannelView> {
    meta.channels
        .iter()
        .zip(&settings.channels)
        .enumerate()
        .map(|(i, (m, s))| ChannelView {
            index: i + 1,
            label: crate::gateway::http::webgateway::img_data::channel_label(m, i),
            color: crate::gateway::imaging::channel_colors::html_color(s.color),
            start: s.start as u32,
            end: s.end as u32,
            active: s.active,
        })
        .collect()
}

/// The viewer's name for a channel: imgData's label (OMERO's), except that a channel
/// with neither a name nor a wavelength, which OMERO labels with its 0-based index, is
/// "Channel n" (1-based, as the `c` parameter counts).
pub(in crate::gateway) fn viewer_channel_label(
    label: &str,
    meta: &crate::gateway::imaging::source::ChannelMeta,
    index: usize,
) -> String {
    let named = meta.name.as_deref().is_some_and(|n| !n.trim().is_empty());
    if named || meta.emission_nm.is_some() {
        label.to_string()
    } else {
        format!("Channel {index}")
    }
}

/// The favicon: a cell (a green disc with a nucleus) on OMERO blue, drawn here and
/// served as an ICO holding one 32×32 PNG.
pub(in crate::gateway) fn favicon_ico() -> &'static [u8] {
    static ICO: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ICO.get_or_init(|| {
        const SIDE: u32 = 32;
        let mut rgba = Vec::with_capacity((SIDE * SIDE * 4) as usize);
        for y in 0..SIDE {
            for x in 0..SIDE {
                let (dx, dy) = (x as f32 - 15.5, y as f32 - 15.5);
                let r = (dx * dx + dy * dy).sqrt();
                let (nx, ny) = (x as f32 - 13.0, y as f32 - 14.0);
                let nucleus = (nx * nx + ny * ny).sqrt();
                let pixel = if nucleus < 5.0 {
                    [0x3d, 0x7b, 0xff, 0xff]
                } else if r < 12.5 {
                    [0x46, 0xc8, 0x5a, 0xff]
                } else {
                    [0x29, 0x43, 0x5c, 0xff]
                };
                rgba.extend_from_slice(&pixel);
            }
        }
        let mut png_bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut png_bytes, SIDE, SIDE);
            encoder.set_color(png::ColorType::Rgba);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().expect("PNG header in memory");
            writer.write_image_data(&rgba).expect("PNG data in memory");
        }
        // ICONDIR (reserved, type 1 = icon, one image) and its ICONDIRENTRY.
        let mut ico = vec![0, 0, 1, 0, 1, 0];
        ico.extend_from_slice(&[SIDE as u8, SIDE as u8, 0, 0, 1, 0, 32, 0]);
        ico.extend_from_slice(&(png_bytes.len() as u32).to_le_bytes());
        ico.extend_from_slice(&22u32.to_le_bytes());
        ico.extend_from_slice(&png_bytes);
        ico
    })
}

pub(in crate::gateway) fn favicon(conditional: &Conditional) -> Response {
    let bytes = favicon_ico();
    let validator = Validator {
        etag: format!("\"favicon-{:08x}\"", crc32fast::hash(bytes)),
        modified: SystemTime::UNIX_EPOCH,
    };
    if conditional.matches(&validator) {
        return not_modified(&validator);
    }
    hyper::Response::builder()
        .status(200)
        .header("Content-Type", "image/x-icon")
        .header("ETag", &validator.etag)
        .header("Cache-Control", "public, max-age=86400")
        .body(app::full(Bytes::from_static(bytes)))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn favicon_is_an_ico_holding_a_png() {
        let ico = favicon_ico();
        assert_eq!(&ico[..6], &[0, 0, 1, 0, 1, 0]);
        assert_eq!(&ico[22..30], b"\x89PNG\r\n\x1a\n");
        let len = u32::from_le_bytes(ico[14..18].try_into().unwrap()) as usize;
        assert_eq!(ico.len(), 22 + len);
    }

    #[test]
    fn viewer_names_unnamed_channels_from_one() {
        let channel = crate::gateway::imaging::source::ChannelMeta {
            name: None,
            color: None,
            emission_nm: None,
            min: 0,
            max: 1,
            lut: None,
            display_range: None,
        };
        assert_eq!(viewer_channel_label("0", &channel, 1), "Channel 1");
        let named = crate::gateway::imaging::source::ChannelMeta {
            name: Some("DAPI".into()),
            ..channel
        };
        assert_eq!(viewer_channel_label("DAPI", &named, 1), "DAPI");
    }
}
