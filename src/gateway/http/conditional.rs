//! Conditional requests: every image response carries ETag/Last-Modified, and a
//! request whose If-None-Match (or, without it, If-Modified-Since) matches gets 304.

use std::time::SystemTime;

use bytes::Bytes;

use crate::gateway::cache::{self, CacheKey};
use crate::gateway::repository::ImageEntry;
use crate::http_app::{self as app, Request, Response};

/// ETag and Last-Modified of a response derived from a source file.
pub(in crate::gateway) struct Validator {
    pub(in crate::gateway) etag: String,
    pub(in crate::gateway) modified: SystemTime,
}

impl Validator {
    /// The same tag the thumbnail cache uses: image, file version, variant, and our
    /// version (a new renderer must not be answered with a 304).
    pub(in crate::gateway) fn of(entry: &ImageEntry, variant: &str) -> Validator {
        Validator {
            etag: cache::etag(&CacheKey::new(entry, variant)),
            modified: entry.modified,
        }
    }
}

pub(in crate::gateway) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The request's If-None-Match / If-Modified-Since.
pub(in crate::gateway) struct Conditional {
    pub(in crate::gateway) if_none_match: Option<String>,
    pub(in crate::gateway) if_modified_since: Option<SystemTime>,
}

impl Conditional {
    pub(in crate::gateway) fn from_request(request: &Request) -> Conditional {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Conditional {
            if_none_match: header("if-none-match"),
            if_modified_since: header("if-modified-since")
                .and_then(|v| httpdate::parse_http_date(&v).ok()),
        }
    }

    /// RFC 9110: If-None-Match wins over If-Modified-Since.
    pub(in crate::gateway) fn matches(&self, v: &Validator) -> bool {
        match (&self.if_none_match, self.if_modified_since) {
            (Some(tags), _) => cache::etag_matches(tags, &v.etag),
            (None, Some(since)) => unix_secs(v.modified) <= unix_secs(since),
            (None, None) => false,
        }
    }
}

pub(in crate::gateway) fn not_modified(v: &Validator) -> Response {
    hyper::Response::builder()
        .status(304)
        .header("ETag", &v.etag)
        .header("Last-Modified", httpdate::fmt_http_date(v.modified))
        .body(app::full(Bytes::new()))
        .expect("valid response")
}

pub(in crate::gateway) fn jpeg_response(jpeg: Bytes, v: &Validator) -> Response {
    hyper::Response::builder()
        .status(200)
        .header("Content-Type", "image/jpeg")
        .header("ETag", &v.etag)
        .header("Last-Modified", httpdate::fmt_http_date(v.modified))
        .header("Cache-Control", "private, max-age=0, must-revalidate")
        .body(app::full(jpeg))
        .expect("valid response")
}
