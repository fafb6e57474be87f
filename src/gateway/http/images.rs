//! Finding, opening and rendering a request's image: the steps every image view
//! shares (the access guard's lookup, the worker's cache of open sources, the viewer's
//! saved settings, JPEG rendering on the blocking pool).

use std::sync::Arc;

use super::serve::{GUARD_LOOKED_UP, rdef_user};
use crate::gateway::Gateway;
use crate::gateway::imaging::render;
use crate::gateway::imaging::source::{ImageMeta, ImageSource};
use crate::gateway::query::render_query::{self, RenderFailure, render_query_to_jpeg};
use crate::gateway::repository::ImageEntry;
use crate::http_app::{self as app, Response};

impl Gateway {
    /// `Repository::get` on the blocking pool (an unknown ID may trigger a rescan).
    /// The image's entry and source, opened, or the 404 OMERO's views answer for a
    /// missing or unreadable one.
    pub(in crate::gateway) async fn open_image(
        self: &Arc<Self>,
        id: u64,
    ) -> Result<(ImageEntry, Arc<dyn ImageSource>), Response> {
        let Some(entry) = self.lookup(id).await else {
            return Err(app::text(404, "Image not found\n"));
        };
        let source = self
            .clone()
            .source(&entry)
            .await
            .map_err(|e| app::text(404, format!("Failed to open image: {e}\n")))?;
        Ok((entry, source))
    }
    pub(in crate::gateway) async fn lookup(self: &Arc<Self>, id: u64) -> Option<ImageEntry> {
        let from_guard = GUARD_LOOKED_UP
            .try_with(|entry| entry.clone().filter(|e| e.id == id))
            .ok()
            .flatten();
        if from_guard.is_some() {
            return from_guard;
        }
        let gateway = self.clone();
        crate::http_app::blocking::spawn_blocking(format!("image {id} (lookup)"), move || {
            gateway.repository.get(id)
        })
        .await
        .ok()
        .flatten()
    }
    /// Parses the query against the image and renders on the blocking pool.
    pub(in crate::gateway) async fn render(
        self: Arc<Self>,
        entry: &ImageEntry,
        query: String,
        z: Option<u32>,
        t: Option<u32>,
        region_required: bool,
        size: render::OutputSize,
    ) -> Result<Vec<u8>, RenderFailure> {
        let source = self
            .clone()
            .source(entry)
            .await
            .map_err(RenderFailure::Failed)?;
        let limits = self.config.render_limits();
        let query = crate::gateway::rdefs::over_saved(&query, &self.viewer_query(entry.id));
        crate::http_app::blocking::spawn_blocking(
            format!("image {} (render)", entry.id),
            move || {
                render_query_to_jpeg(
                    source.as_ref(),
                    &query,
                    z,
                    t,
                    region_required,
                    size,
                    &limits,
                )
            },
        )
        .await
        .unwrap_or_else(|e| Err(RenderFailure::Failed(format!("rendering panicked: {e}"))))
    }
    /// An opened image, from the worker's small cache of sources (opening computes
    /// each channel's min/max, so it is worth keeping).
    pub(in crate::gateway) async fn source(
        self: Arc<Self>,
        entry: &ImageEntry,
    ) -> Result<Arc<dyn ImageSource>, String> {
        let fingerprint = (entry.id, entry.size, entry.modified);
        if let Some(source) = self.sources.lock().expect("sources lock").get(&fingerprint) {
            return Ok(source);
        }
        let path = entry.path.clone();
        let mut limits = self.config.source_limits();
        limits.within = Some(self.repository.canonical_root());
        let opened = crate::http_app::blocking::spawn_blocking(
            format!("image {} (open)", entry.id),
            move || crate::gateway::imaging::source::open(&path, &limits),
        )
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| self.without_server_paths(&e.to_string()))?;
        let source: Arc<dyn ImageSource> = Arc::from(opened);
        self.sources
            .lock()
            .expect("sources lock")
            .put(fingerprint, source.clone());
        Ok(source)
    }
    /// The saved render query this request's viewer sees image `id` with: their own
    /// (a logged-in user's), else the owner's, else "" (`rdefs::RdefStore::query_for`).
    pub(in crate::gateway) fn viewer_query(&self, id: u64) -> String {
        self.rdefs.query_for(id, rdef_user().as_deref())
    }
    /// Whether this request's viewer renders image `id` otherwise than its owner: a
    /// set of their own that is not a copy of the owner's.
    pub(in crate::gateway) fn has_own_settings(&self, id: u64) -> bool {
        rdef_user()
            .and_then(|user| self.rdefs.user_query(id, &user))
            .is_some_and(|own| own != self.rdefs.query(id))
    }
    /// Image `id`'s rendering settings as this request's viewer saved them
    /// (`saveImgRDef`), else the owner's, else its imported defaults: what the viewer
    /// and imgData start from.
    pub(in crate::gateway) fn saved_settings(
        &self,
        id: u64,
        meta: &ImageMeta,
    ) -> render::RenderSettings {
        render_query::parse_query(&self.viewer_query(id), meta)
            .map(|request| request.settings)
            .unwrap_or_else(|_| render::RenderSettings::defaults(meta))
    }
    /// An error message as clients may see it: the source's errors name the file by
    /// its absolute path (right for the log), but pages and JSON show only the path
    /// inside the repository, never where the server keeps it.
    pub(in crate::gateway) fn without_server_paths(&self, message: &str) -> String {
        // The canonical root (what entries' paths start with) and the configured one.
        let mut message = message.to_string();
        for root in [self.repository.root(), self.config.repository.as_path()] {
            let root = root.display().to_string();
            let root = root.trim_end_matches('/');
            if !root.is_empty() {
                message = message
                    .replace(&format!("{root}/"), "")
                    .replace(root, "the repository");
            }
        }
        message
    }
}
