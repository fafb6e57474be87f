//! The application the workers serve: an OMERO.web-compatible image gateway over the
//! local repository (reading and rendering images in `imaging`, the views in `http`),
//! plus the health route and, only when `OMEROWEBCTL_TEST_ROUTES=1`, slow routes that
//! tests and benchmarks use to hold requests in flight.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::http_app::{self as app, App, Request, Response, ResponseFuture};
use crate::site::Site;
use imaging::{encode, render, source};

pub mod app_factory;
pub mod auth;
pub mod cache;
pub mod demo;
pub mod http;
pub mod imaging;
pub mod parents;
pub mod published;
pub mod query;
pub mod rdefs;
pub mod repository;
pub mod static_files;
pub mod thumbnail_version;

/// Environment switch for the test-only routes under `/__webctl/test/`.
pub const TEST_ROUTES_ENV: &str = "OMEROWEBCTL_TEST_ROUTES";

/// What the gateway needs from the settings, passed to every worker in its spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayConfig {
    /// `omero.web.prefix` without a trailing slash ("" at the root).
    pub prefix: String,
    pub static_url: String,
    pub static_root: PathBuf,
    pub repository: PathBuf,
    /// Where the repository's ID index lives (var/): outside the image store, and
    /// not under the cache, so clearing the cache cannot renumber images.
    pub index_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub chunk_size: usize,
    pub maximum_multifile_download_size: u64,
    pub page_size: usize,
    pub downloads_allowed: bool,
    pub max_output_pixels: u64,
    pub max_image_pixels: u64,
    /// `omero.web.thumbnails_batch`: most IDs one get_thumbnails request may ask for.
    #[serde(default = "default_thumbnails_batch")]
    pub thumbnails_batch: usize,
    /// Publish default thumbnails for nginx (`published::Published`).
    #[serde(default)]
    pub published_thumbnails: bool,
    /// Users, sessions and the public user (`auth`); off without a user store.
    #[serde(default)]
    pub access: auth::AccessConfig,
    /// `omero.web.viewer.view` names OMERO.iviewer: `img_detail` opens it (when the
    /// site has it installed).
    pub iviewer_is_the_viewer: bool,
}

fn default_thumbnails_batch() -> usize {
    50
}

impl GatewayConfig {
    pub fn from_settings(settings: &Settings) -> GatewayConfig {
        GatewayConfig {
            prefix: settings.prefix.clone().unwrap_or_default(),
            static_url: settings.static_url.clone(),
            static_root: settings.static_root.clone(),
            repository: settings.repository.clone(),
            index_dir: Site::new(&settings.site_root).var_dir(),
            cache_dir: Site::new(&settings.site_root).cache_dir(),
            chunk_size: settings.chunk_size as usize,
            maximum_multifile_download_size: settings.maximum_multifile_download_size,
            page_size: settings.page_size as usize,
            downloads_allowed: settings.downloads_allowed(),
            max_output_pixels: settings.render_max_output_pixels,
            max_image_pixels: settings.render_max_image_pixels,
            thumbnails_batch: settings.thumbnails_batch as usize,
            published_thumbnails: settings.published_thumbnails,
            access: auth::AccessConfig::from_settings(settings),
            iviewer_is_the_viewer: settings.viewer_view == http::iviewer::VIEWER_VIEW,
        }
    }

    pub(crate) fn render_limits(&self) -> render::RenderLimits {
        render::RenderLimits {
            max_output_pixels: self.max_output_pixels,
            max_channels: 16,
        }
    }

    pub(crate) fn source_limits(&self) -> source::Limits {
        source::Limits {
            max_pixels: self.max_image_pixels,
            // Set by the gateway to the repository as scanned.
            within: None,
        }
    }
}

/// A few opened images per worker, most recently used last.
pub(crate) struct SourceCache {
    capacity: usize,
    order: VecDeque<(u64, u64, SystemTime)>,
    map: HashMap<(u64, u64, SystemTime), Arc<dyn source::ImageSource>>,
}

impl SourceCache {
    fn new(capacity: usize) -> SourceCache {
        SourceCache {
            capacity,
            order: VecDeque::new(),
            map: HashMap::new(),
        }
    }

    pub(crate) fn get(
        &mut self,
        key: &(u64, u64, SystemTime),
    ) -> Option<Arc<dyn source::ImageSource>> {
        let found = self.map.get(key).cloned()?;
        self.order.retain(|k| k != key);
        self.order.push_back(*key);
        Some(found)
    }

    pub(crate) fn put(
        &mut self,
        key: (u64, u64, SystemTime),
        source: Arc<dyn source::ImageSource>,
    ) {
        // A newer version of the same image replaces the old one.
        self.order.retain(|k| {
            let stale = k.0 == key.0 && *k != key;
            if stale {
                self.map.remove(k);
            }
            !stale
        });
        if self.map.insert(key, source).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

pub struct Gateway {
    config: GatewayConfig,
    repository: repository::Repository,
    cache: cache::ThumbnailCache,
    published: published::Published,
    rdefs: rdefs::RdefStore,
    sources: Mutex<SourceCache>,
    placeholder: Bytes,
    access: auth::Access,
}

/// The gateway as the pool serves it (an `Arc`, so handlers can outlive one call),
/// with the test-only routes in front.
struct GatewayApp {
    gateway: Arc<Gateway>,
    test_routes: bool,
    /// Test-only fault (with the test routes on and `OMEROWEBCTL_TEST_FAIL_BEHIND_PROXY=1`):
    /// a release that passes every readiness check on its own bind and answers 500 to
    /// whatever comes through a proxy (`X-Forwarded-For`), as a release broken behind
    /// nginx does; what a health window must catch after a switch.
    fail_behind_proxy: bool,
}

/// Builds the application for a worker; an error here is a boot failure.
pub fn boot(config: GatewayConfig) -> Result<Arc<dyn App>, String> {
    if config.repository.exists() && !config.repository.is_dir() {
        return Err(format!(
            "image repository {} is not a directory (omero.web.repository)",
            config.repository.display()
        ));
    }
    std::fs::create_dir_all(&config.repository).map_err(|e| {
        format!(
            "cannot create the image repository {}: {e}",
            config.repository.display()
        )
    })?;
    let repository =
        repository::Repository::open(&config.repository, &config.index_dir).map_err(|e| {
            format!(
                "cannot read the image repository {}: {e}",
                config.repository.display()
            )
        })?;
    let cache = cache::ThumbnailCache::new(&config.cache_dir.join("thumbnails"));
    Ok(Arc::new(GatewayApp {
        gateway: Arc::new(Gateway {
            placeholder: placeholder_jpeg(),
            repository,
            cache,
            published: published::Published::new(&config.cache_dir),
            rdefs: rdefs::RdefStore::new(&config.index_dir),
            sources: Mutex::new(SourceCache::new(16)),
            access: auth::Access::new(config.access.clone()),
            config,
        }),
        test_routes: std::env::var(TEST_ROUTES_ENV).as_deref() == Ok("1"),
        fail_behind_proxy: std::env::var(TEST_ROUTES_ENV).as_deref() == Ok("1")
            && std::env::var("OMEROWEBCTL_TEST_FAIL_BEHIND_PROXY").as_deref() == Ok("1"),
    }))
}

/// The one line saying where this worker keeps sessions, when it matters: access
/// control is on, or the site's properties name Redis (understood or not).
pub fn sessions_note(access: &auth::AccessConfig) -> Option<String> {
    let on = !access.store.as_os_str().is_empty() && access.store.exists();
    let redis = matches!(access.session_place, auth::sessions::SessionPlace::Redis(_));
    (on || redis || access.session_problem.is_some()).then(|| {
        access
            .session_place
            .describe(access.session_problem.as_deref())
    })
}

/// A light grey 96×96 JPEG for the webclient's missing thumbnails.
fn placeholder_jpeg() -> Bytes {
    let image = render::Rendered {
        width: 96,
        height: 96,
        channels: 1,
        pixels: vec![200; 96 * 96],
    };
    Bytes::from(encode::encode_jpeg(&image, 0.85).unwrap_or_default())
}

impl App for GatewayApp {
    fn handle(&self, request: Request) -> ResponseFuture {
        let gateway = self.gateway.clone();
        let test_routes = self.test_routes;
        if self.fail_behind_proxy && request.headers().contains_key("x-forwarded-for") {
            return Box::pin(async { app::text(500, "test fault: failing behind the proxy\n") });
        }
        Box::pin(async move {
            let path = request.uri().path();
            if test_routes && let Some(rest) = path.strip_prefix("/__webctl/test/") {
                let rest = rest.to_string();
                return test_route(&rest, request).await;
            }
            gateway.serve(request).await
        })
    }
}

/// `sleep/<ms>/` answers after `ms`; `stream/<ms>/` streams ten chunks spread over
/// `ms` (a long download in miniature); `echo/` reads the whole request body and says
/// how many bytes came.
async fn test_route(path: &str, request: Request) -> Response {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ms: Option<u64> = parts.get(1).and_then(|s| s.parse().ok());
    match (parts.first(), ms) {
        (Some(&"echo"), None) => match request.into_body().collect().await {
            Ok(body) => app::text(200, format!("received {} bytes\n", body.to_bytes().len())),
            Err(e) => app::text(400, format!("body: {e}\n")),
        },
        (Some(&"sleep"), Some(ms)) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            app::text(200, format!("slept {ms} ms\n"))
        }
        (Some(&"stream"), Some(ms)) => {
            let (tx, rx) =
                tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(2);
            tokio::spawn(async move {
                for i in 0..10 {
                    tokio::time::sleep(Duration::from_millis(ms / 10)).await;
                    let chunk = Bytes::from(format!("chunk {i}\n"));
                    if tx.send(Ok(hyper::body::Frame::data(chunk))).await.is_err() {
                        return;
                    }
                }
            });
            let body = http_body_util::StreamBody::new(stream_from(rx)).boxed();
            hyper::Response::builder()
                .status(200)
                .header("Content-Type", "text/plain")
                .body(body)
                .expect("valid response")
        }
        _ => app::text(404, "Not Found\n"),
    }
}

/// A `Stream` over an mpsc receiver.
fn stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
