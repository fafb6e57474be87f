//! OMERO.web's webgateway views: thumbnails, rendered planes and regions, and
//! original-file downloads here; imgData, the rendering-settings views and the
//! other endpoints in the modules below.

use std::sync::Arc;

use bytes::Bytes;

use super::conditional::{Conditional, Validator, jpeg_response, not_modified};
use super::routes::MAX_THUMBNAIL_SIZE;
use super::serve::empty;
use crate::gateway::Gateway;
use crate::gateway::cache::CacheKey;
use crate::gateway::cache::{DEFAULT_THUMBNAIL_SIZE, default_thumbnail_variant};
use crate::gateway::imaging::render;
use crate::gateway::query::render_query::RenderFailure;
use crate::gateway::query::{normalised_query, query_pairs};
use crate::gateway::repository::ImageEntry;
use crate::http_app::{self as app, Response};

pub mod endpoints;
pub mod img_data;
pub mod rdef_views;

impl Gateway {
    pub(in crate::gateway) async fn thumbnail(
        self: Arc<Self>,
        id: u64,
        w: Option<u32>,
        h: Option<u32>,
        webclient: bool,
        query: &str,
        conditional: &Conditional,
    ) -> Response {
        let Some(entry) = self.lookup(id).await else {
            return if webclient {
                self.placeholder()
            } else {
                app::text(404, "Failed to render thumbnail\n")
            };
        };
        if let Some(side) = [w, h]
            .into_iter()
            .flatten()
            .find(|&side| side > MAX_THUMBNAIL_SIZE || side == 0)
        {
            return app::text(
                400,
                format!(
                    "thumbnail size {side} is out of range: allowed 1 to {MAX_THUMBNAIL_SIZE}\n"
                ),
            );
        }
        // `?v=` (the gallery's and viewer's versioned URLs) is no render parameter.
        let (version, query) = crate::gateway::thumbnail_version::split(query);
        let saved = self.viewer_query(id);
        let current =
            version == Some(crate::gateway::thumbnail_version::of(&entry, &saved).as_str());
        let validator = Validator::of(
            &entry,
            &format!("thumb/{w:?}/{h:?}/{}/{saved}", normalised_query(&query)),
        );
        if conditional.matches(&validator) {
            return not_modified(&validator);
        }
        match self.thumbnail_jpeg(&entry, w, h, &query).await {
            Ok(jpeg) if current => {
                let mut response = jpeg_response(jpeg, &validator);
                response.headers_mut().insert(
                    hyper::header::CACHE_CONTROL,
                    hyper::header::HeaderValue::from_static(
                        crate::gateway::thumbnail_version::IMMUTABLE,
                    ),
                );
                response
            }
            Ok(jpeg) => jpeg_response(jpeg, &validator),
            Err(RenderFailure::BadRequest(message)) => app::text(400, format!("{message}\n")),
            Err(RenderFailure::Failed(_)) if webclient => self.placeholder(),
            Err(RenderFailure::Failed(message)) => {
                app::text(404, format!("Failed to render thumbnail: {message}\n"))
            }
        }
    }
    /// A thumbnail's JPEG: the default size from (and into) the disk cache, any other
    /// size rendered fresh, as OMERO's thumbnail service does.
    pub(in crate::gateway) async fn thumbnail_jpeg(
        self: &Arc<Self>,
        entry: &ImageEntry,
        w: Option<u32>,
        h: Option<u32>,
        query: &str,
    ) -> Result<Bytes, RenderFailure> {
        // The shared cache and the published files hold the owner's rendering only: a
        // viewer with settings of their own gets theirs rendered for them alone.
        let cacheable =
            w.is_none() && h.is_none() && query.is_empty() && !self.has_own_settings(entry.id);
        let saved = self.viewer_query(entry.id);
        let key = CacheKey {
            id: entry.id,
            source_size: entry.size,
            source_modified: entry.modified,
            variant: default_thumbnail_variant(&saved),
        };
        if cacheable && let Some(jpeg) = self.cache.get(&key) {
            self.publish(entry, &jpeg, &saved);
            return Ok(jpeg);
        }
        // Longest side = w; both given = that exact size (OMERO's <w>/<h>/ form).
        let size = match (w, h) {
            (None, _) => render::OutputSize::Fit {
                max_w: DEFAULT_THUMBNAIL_SIZE,
                max_h: DEFAULT_THUMBNAIL_SIZE,
            },
            (Some(w), None) => render::OutputSize::Fit { max_w: w, max_h: w },
            (Some(width), Some(height)) => render::OutputSize::Exact { width, height },
        };
        let jpeg = Bytes::from(
            self.clone()
                .render(entry, query.to_string(), None, None, false, size)
                .await?,
        );
        if cacheable {
            // Writing (and any eviction) off the runtime thread; the response does not
            // wait for it.
            let (gateway, cached) = (self.clone(), jpeg.clone());
            crate::http_app::blocking::spawn_blocking("thumbnail cache write", move || {
                let _ = gateway.cache.put(&key, &cached);
            });
            self.publish(entry, &jpeg, &saved);
        }
        Ok(jpeg)
    }
    /// Publishes a default thumbnail for nginx, if that is on and it is not there yet
    /// (off the runtime thread; the response does not wait).
    /// `saved` is the rendering settings it was drawn with: if they changed meanwhile
    /// (a save or reset raced with it), the file goes again rather than stay stale.
    pub(in crate::gateway) fn publish(
        self: &Arc<Self>,
        entry: &ImageEntry,
        jpeg: &Bytes,
        saved: &str,
    ) {
        if !self.config.published_thumbnails
            || !self.publishable(entry)
            || self.published.is_current(entry)
        {
            return;
        }
        let (gateway, entry, jpeg) = (self.clone(), entry.clone(), jpeg.clone());
        let saved = saved.to_string();
        crate::http_app::blocking::spawn_blocking(
            format!("image {} (publish)", entry.id),
            move || {
                let version = crate::gateway::thumbnail_version::of(&entry, &saved);
                let _ = gateway.published.publish(&entry, &jpeg, &version, || {
                    gateway
                        .repository
                        .get(entry.id)
                        .filter(|_| gateway.rdefs.query(entry.id) == saved)
                });
            },
        );
    }
    pub(in crate::gateway) async fn render_image(
        self: Arc<Self>,
        id: u64,
        z: Option<u32>,
        t: Option<u32>,
        query: &str,
        conditional: &Conditional,
        region_required: bool,
    ) -> Response {
        let Some(entry) = self.lookup(id).await else {
            return app::text(404, "Image not found\n");
        };
        let validator = Validator::of(
            &entry,
            &format!(
                "image/{z:?}/{t:?}/{}/{region_required}/{}",
                normalised_query(query),
                self.viewer_query(id)
            ),
        );
        if conditional.matches(&validator) {
            return not_modified(&validator);
        }
        match self
            .clone()
            .render(
                &entry,
                query.to_string(),
                z,
                t,
                region_required,
                render::OutputSize::Native,
            )
            .await
        {
            Ok(jpeg) => jpeg_response(Bytes::from(jpeg), &validator),
            Err(RenderFailure::BadRequest(message)) => app::text(400, format!("{message}\n")),
            Err(RenderFailure::Failed(message)) => app::text(404, format!("{message}\n")),
        }
    }
    /// `archived_files/download/`: one image's file, or a zip of `?image=` IDs. As
    /// OMERO's `getObjects` does, IDs that are missing or that `viewer` may not see
    /// are left out alike; when none is left, OMERO's "Images not found" 500.
    pub(in crate::gateway) fn download(
        &self,
        id: Option<u64>,
        query: &str,
        viewer: &crate::gateway::auth::Viewer,
    ) -> Response {
        if !self.config.downloads_allowed {
            // OMERO: canDownload() false → 404 with an empty body.
            return empty(404);
        }
        let mut ids: Vec<u64> = match id {
            Some(id) => vec![id],
            None => query_pairs(query)
                .iter()
                .filter(|(k, _)| k == "image")
                .filter_map(|(_, v)| v.parse().ok())
                .collect(),
        };
        // Each image once, in the order first asked for: `?image=1&image=1&…` must not
        // turn a short request into an answer as large as the repetitions.
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        if ids.is_empty() {
            return app::text(
                500,
                "No images or wells specified in request. Use ?image=123 or ?well=123\n",
            );
        }
        let entries: Vec<_> = ids
            .iter()
            .filter(|id| self.viewer_sees(viewer, **id))
            .filter_map(|id| self.repository.get(*id))
            .collect();
        if entries.is_empty() {
            // Python's repr of the list of strings OMERO was given.
            let asked: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
            return app::text(
                500,
                format!(
                    "Cannot download archived file because Images not found (ids: [{}])\n",
                    asked.join(", ")
                ),
            );
        }
        if let [entry] = entries.as_slice() {
            return match super::download::stream_file(
                &entry.path,
                Some(&self.repository.canonical_root()),
                self.config.chunk_size,
            ) {
                Ok((len, body)) => hyper::Response::builder()
                    .status(200)
                    .header("Content-Type", "application/force-download")
                    .header("Content-Length", len)
                    .header(
                        "Content-Disposition",
                        super::download::content_disposition(&entry.name),
                    )
                    .body(body)
                    .expect("valid response"),
                // The id and the file's name, not the error's absolute path.
                Err(e) => app::text(
                    500,
                    format!(
                        "Cannot download file (id:{}, {}): {}\n",
                        entry.id,
                        crate::gateway::imaging::source::shown(&entry.path),
                        e.kind()
                    ),
                ),
            };
        }
        let total: u64 = entries.iter().map(|e| e.size).sum();
        if total > self.config.maximum_multifile_download_size {
            let message = super::download::too_large_message(
                total,
                self.config.maximum_multifile_download_size,
            );
            return app::text(403, format!("{message}\n"));
        }
        let members: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        let name = query_pairs(query)
            .into_iter()
            .find(|(k, _)| k == "zipname")
            .map(|(_, v)| format!("{v}.zip"))
            .unwrap_or_else(|| {
                super::download::zip_name(&entries.last().expect("two or more").name, &members)
            });
        let files = entries.into_iter().map(|e| (e.name, e.path)).collect();
        hyper::Response::builder()
            .status(200)
            .header("Content-Type", "application/force-download")
            // Sanitised: `zipname` comes from the query string.
            .header(
                "Content-Disposition",
                super::download::content_disposition(&name),
            )
            .body(super::download::stream_zip(
                files,
                Some(self.repository.canonical_root()),
                self.config.chunk_size,
            ))
            .expect("valid response")
    }
}
