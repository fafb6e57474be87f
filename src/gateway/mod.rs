//! The application the workers serve. For now: the health route, the root redirect,
//! and (only when `OMEROWEBCTL_TEST_ROUTES=1`) slow routes that tests and benchmarks
//! use to hold requests in flight. The image gateway proper grows here.

pub mod cache;
pub mod download;
pub mod repository;
pub mod demo;
pub mod render;
pub mod source;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

use crate::pool::app::{self, App, Request, Response, ResponseFuture};
use crate::pool::spec::WorkerSpec;

pub mod pages;
pub mod static_files;

/// Environment switch for the test-only routes under `/__webctl/test/`.
pub const TEST_ROUTES_ENV: &str = "OMEROWEBCTL_TEST_ROUTES";

pub struct Gateway {
    prefix: String,
    test_routes: bool,
}

/// Builds the application for a worker; an error here is a boot failure.
pub fn boot(spec: &WorkerSpec) -> Result<Arc<dyn App>, String> {
    if spec.repository.exists() && !spec.repository.is_dir() {
        return Err(format!(
            "image repository {} is not a directory (omero.web.repository)",
            spec.repository.display()
        ));
    }
    Ok(Arc::new(Gateway {
        prefix: spec.prefix.clone().unwrap_or_default(),
        test_routes: std::env::var(TEST_ROUTES_ENV).as_deref() == Ok("1"),
    }))
}

impl App for Gateway {
    fn handle(&self, request: Request) -> ResponseFuture {
        let path = request.uri().path().to_string();
        let Some(local) = path.strip_prefix(&self.prefix) else {
            return Box::pin(async { app::text(404, "Not Found\n") });
        };
        let local = if local.is_empty() { "/" } else { local }.to_string();
        let prefix = self.prefix.clone();
        let test_routes = self.test_routes;
        Box::pin(async move {
            match local.as_str() {
                "/" => redirect(&format!("{prefix}/webclient/")),
                "/__webctl/health" => app::text(200, "ok\n"),
                other if test_routes && other.starts_with("/__webctl/test/") => {
                    test_route(other).await
                }
                _ => app::text(404, "Not Found\n"),
            }
        })
    }
}

fn redirect(location: &str) -> Response {
    hyper::Response::builder()
        .status(302)
        .header("Location", location)
        .body(app::full(Bytes::new()))
        .expect("valid redirect")
}

/// `/__webctl/test/sleep/<ms>/` answers after `ms`; `/__webctl/test/stream/<ms>/`
/// streams ten chunks spread over `ms` (a long download in miniature).
async fn test_route(path: &str) -> Response {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ms: Option<u64> = parts.get(3).and_then(|s| s.parse().ok());
    match (parts.get(2), ms) {
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
            let body = http_body_util::StreamBody::new(tokio_stream_from(rx)).boxed();
            hyper::Response::builder()
                .status(200)
                .header("Content-Type", "text/plain")
                .body(body)
                .expect("valid response")
        }
        _ => app::text(404, "Not Found\n"),
    }
}

/// A `Stream` over an mpsc receiver (what tokio-stream's wrapper does, in a few lines).
fn tokio_stream_from<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static
where
    T: Send + 'static,
{
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
