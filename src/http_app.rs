//! The HTTP application seam: request in, response out. The pool hosts an `App`; the
//! gateway is one, built by its [`AppFactory`] (which the CLI passes to the pool).
//! Neither depends on the other, both depend on this. The pool knows HTTP
//! connections, concurrency and recycling; the application only turns a request into
//! a response. CPU-heavy and filesystem work belongs on the blocking pool
//! ([`blocking::spawn_blocking`], which counts it), so it never stalls the worker's
//! accept loop or heartbeats, and a job stuck on a hung filesystem is seen.

pub mod blocking;
mod factory;
pub mod forwarded;

pub use factory::{AppConfig, AppFactory, AppNote, NoteSink};

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Request = hyper::Request<hyper::body::Incoming>;
pub type Response = hyper::Response<Body>;
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

pub trait App: Send + Sync + 'static {
    fn handle(&self, request: Request) -> ResponseFuture;
}

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A plain-text response.
pub fn text(status: u16, body: impl Into<Bytes>) -> Response {
    hyper::Response::builder()
        .status(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(full(body))
        .expect("static response parts are valid")
}

/// The client's address as the pool saw it (after trusted proxies' X-Forwarded-For),
/// put in every request's extensions for applications that count per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The address the connection came from (a proxy's, when there is one), which
/// [`ClientAddr`] may have replaced with the forwarded client's.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::IpAddr);

/// A warning the application asks the pool to write to the site's log for a
/// response (the application has no log of its own): put in the response's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogNote {
    pub logger: &'static str,
    pub message: String,
}
