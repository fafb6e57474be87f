//! The one check every request passes before dispatch: who is asking (session
//! cookie, else the public user on an allowed URL, else nobody), OMERO's answers for
//! a request that needs a login, and the image IDs the viewer may not see.

use std::sync::Arc;

use super::routes::{Route, route};
use crate::gateway::Gateway;
use crate::gateway::auth::{Viewer, owning_group};
use crate::gateway::query::query_pairs;
use crate::http_app::{self as app, Request, Response};

/// What the guard lets through.
pub struct Admitted {
    pub viewer: Viewer,
    /// The query with the IDs of images the viewer may not see taken out.
    pub query: String,
    /// Whether the answer depends on who asked: then no shared cache may keep it.
    pub private: bool,
    /// The image the route is about, as the guard looked it up to judge it: the view
    /// uses it instead of a second lookup (see `http::images`, `Gateway::lookup`).
    pub entry: Option<crate::gateway::repository::ImageEntry>,
}

/// The request's cookies, as name → value.
pub fn cookie<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Routes anyone may open: the login itself (the webclient's and the JSON API's,
/// with the API's index, token and servers, which omero-web does not guard either),
/// static files, health, nothing-there.
fn open(route: &Route) -> bool {
    if let Route::Api(path) = route {
        return matches!(
            path.as_str(),
            "" | "v0" | "v0/token" | "v0/servers" | "v0/login"
        );
    }
    matches!(
        route,
        Route::Root
            | Route::Health
            | Route::Favicon
            | Route::Static(_)
            | Route::Login
            | Route::Logout
            | Route::GatewayIndex
            | Route::Luts
            | Route::LutsPng
            | Route::NotFound
    )
}

/// The image a route is about, if one.
fn image_of(route: &Route) -> Option<u64> {
    match *route {
        Route::Viewer(id)
        | Route::Thumbnail { id, .. }
        | Route::RenderImage { id, .. }
        | Route::RenderRegion { id, .. }
        | Route::ImgData { id, .. }
        | Route::GetThumbnail { id, .. }
        | Route::BirdsEye { id, .. }
        | Route::SplitChannel { id, .. }
        | Route::LinePlot { id, .. }
        | Route::Histogram { id, .. }
        | Route::RenderDownload { id, .. }
        | Route::Download(Some(id))
        | Route::SaveRdef(id)
        | Route::ImageRdefs(id)
        | Route::Rois(id)
        | Route::IviewerImageData(id)
        | Route::IviewerDeltaT(id)
        | Route::IviewerRoisByPlane(id)
        | Route::IviewerPlaneShapeCounts(id) => Some(id),
        _ => None,
    }
}

/// Query and form fields that name images (get_thumbnails' `id`, zips' `image`, the
/// rendering-settings views' `fromid`/`imageId`/`toids`, OMERO.iviewer's `images`).
const IMAGE_FIELDS: [&str; 6] = ["id", "image", "fromid", "imageId", "toids", "images"];

impl Gateway {
    /// Whether nginx may serve this image's published thumbnail.
    pub(in crate::gateway) fn publishable(
        &self,
        entry: &crate::gateway::repository::ImageEntry,
    ) -> bool {
        crate::gateway::auth::publishable_entry(
            &self.access,
            self.repository.root(),
            &self.config.prefix,
            entry,
        )
    }

    /// Whether `viewer` sees image `id` (a missing image is not seen).
    pub(in crate::gateway) fn viewer_sees(&self, viewer: &Viewer, id: u64) -> bool {
        if *viewer == Viewer::Everyone {
            return true;
        }
        self.repository
            .get(id)
            .is_some_and(|entry| self.may_see_entry(viewer, &entry))
    }

    /// Whether `viewer` sees the image in `entry` (already looked up: no file access).
    pub(in crate::gateway) fn may_see_entry(
        &self,
        viewer: &Viewer,
        entry: &crate::gateway::repository::ImageEntry,
    ) -> bool {
        *viewer == Viewer::Everyone
            || viewer.sees(owning_group(self.repository.root(), &entry.path))
    }

    /// Whether `viewer` may save the rendering settings of the image in `entry`.
    pub(in crate::gateway) fn may_save_settings(
        &self,
        viewer: &Viewer,
        entry: &crate::gateway::repository::ImageEntry,
    ) -> bool {
        viewer.may_save_settings(owning_group(self.repository.root(), &entry.path))
    }

    /// `text` (a query or form body) without the image IDs `viewer` may not see.
    /// Other fields are kept byte for byte.
    pub(in crate::gateway) fn screen_fields(&self, viewer: &Viewer, text: &str) -> String {
        if *viewer == Viewer::Everyone {
            return text.to_string();
        }
        text.split('&')
            .filter(|pair| {
                let decoded = query_pairs(pair);
                let Some((key, value)) = decoded.first() else {
                    return true;
                };
                if !IMAGE_FIELDS.contains(&key.as_str()) {
                    return true;
                }
                // `toids=1,2` as well as `toids=1&toids=2`: every ID must be visible.
                value.split(',').filter(|v| !v.trim().is_empty()).all(|v| {
                    v.trim()
                        .parse()
                        .is_ok_and(|id| self.viewer_sees(viewer, id))
                })
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The guard: admits the request as some viewer, or answers it.
    pub(in crate::gateway) async fn admit(
        self: &Arc<Self>,
        request: &Request,
    ) -> Result<Admitted, Response> {
        let query = request.uri().query().unwrap_or("").to_string();
        let access = &self.access;
        if !access.is_on() {
            return Ok(Admitted {
                viewer: Viewer::Everyone,
                query,
                private: false,
                entry: None,
            });
        }
        let path = request.uri().path().to_string();
        let route = match path.strip_prefix(&self.config.prefix) {
            Some("") => Route::Root,
            Some(local) => route(local, &self.config.static_url),
            // Outside the prefix only static files and the favicon are served.
            None => Route::Static(String::new()),
        };
        let session = cookie(request, &access.config.cookie.name).map(str::to_string);
        // Ignored (and logged by `remote_user_note`) from an untrusted address.
        let remote_user = self.remote_user_of(request).ok().flatten();
        let gateway = self.clone();
        let method = request.method().as_str().to_string();
        let is_open = open(&route);
        let image = image_of(&route);
        // One trip to the blocking pool for the session, the store and the image (files).
        let (viewer, sees, query, entry) =
            match crate::http_app::blocking::spawn_blocking("access check", move || {
                let viewer = match remote_user {
                    // The front logged the user in: any source's groups, else none.
                    Some(name) => Viewer::User {
                        groups: gateway.access.groups_of(&name).unwrap_or_default(),
                        name,
                    },
                    None => gateway.viewer_of(session.as_deref(), &method, &path)?,
                };
                if is_open || viewer == Viewer::Nobody {
                    return Ok::<_, String>((viewer, true, query, None));
                }
                // A missing image is not seen either.
                let entry = image.and_then(|id| gateway.repository.get(id));
                let sees = image.is_none()
                    || entry
                        .as_ref()
                        .is_some_and(|e| gateway.may_see_entry(&viewer, e));
                let query = gateway.screen_fields(&viewer, &query);
                Ok((viewer, sees, query, entry))
            })
            .await
            .unwrap_or(Ok((Viewer::Nobody, false, String::new(), None)))
            {
                Ok(checked) => checked,
                Err(e) => return Err(store_unavailable(format!("Cannot check the session: {e}"))),
            };
        if is_open {
            // Static files and health are the same for everyone.
            let private = !matches!(route, Route::Static(_) | Route::Favicon | Route::Health);
            return Ok(Admitted {
                viewer,
                query,
                private,
                entry: None,
            });
        }
        if viewer == Viewer::Nobody {
            return Err(self.not_logged_in(request, &route));
        }
        if !sees {
            return Err(self.not_visible(&route));
        }
        Ok(Admitted {
            viewer,
            query,
            private: true,
            entry,
        })
    }

    /// The log line for a remote-user header from an untrusted address (the first).
    pub(in crate::gateway) fn remote_user_note(&self, request: &Request) -> Option<app::LogNote> {
        self.remote_user_of(request)
            .err()
            .map(|message| app::LogNote {
                logger: "omeroweb.webclient.decorators",
                message,
            })
    }

    fn remote_user_of(&self, request: &Request) -> Result<Option<String>, String> {
        let header = &self.access.config.remote_user_header;
        if header.is_empty() {
            return Ok(None);
        }
        let value = request
            .headers()
            .get(header.as_str())
            .and_then(|v| v.to_str().ok());
        let peer = request.extensions().get::<app::PeerAddr>().map(|p| p.0);
        self.access.remote_user(value, peer)
    }

    /// Who asks: the session's user (while the user exists), else the public user on
    /// a URL the filter allows, else nobody. Reads files: call off the runtime thread.
    /// An error only when the session store cannot be asked.
    fn viewer_of(&self, session: Option<&str>, method: &str, path: &str) -> Result<Viewer, String> {
        let access = &self.access;
        let session = match session {
            Some(id) => access.sessions.get(id)?,
            None => None,
        };
        if let Some(session) = session {
            // A deleted user's sessions end with them.
            if let Some(groups) = access.groups_of(&session.user) {
                return Ok(Viewer::User {
                    groups,
                    name: session.user,
                });
            }
        }
        if access.public_allows(method, path) {
            return Ok(Viewer::Public);
        }
        Ok(Viewer::Nobody)
    }

    /// OMERO's `login_required` for a request without a login: 403 for XHR, a JSON
    /// 403 from the JSON API, else a redirect to the login page with `url=`.
    fn not_logged_in(&self, request: &Request, route: &Route) -> Response {
        let xhr = request
            .headers()
            .get("x-requested-with")
            .is_some_and(|v| v.as_bytes() == b"XMLHttpRequest");
        if xhr {
            return hyper::Response::builder()
                .status(403)
                .header("Content-Type", "text/html; charset=utf-8")
                .body(app::full(""))
                .expect("valid response");
        }
        if matches!(route, Route::Api(_)) {
            return crate::gateway::http::webgateway::img_data::typed(
                403,
                "application/json",
                br#"{"message": "Not logged in"}"#.to_vec(),
            );
        }
        let target = match request.uri().query() {
            Some(q) => format!("{}?{q}", request.uri().path()),
            None => request.uri().path().to_string(),
        };
        hyper::Response::builder()
            .status(302)
            .header(
                "Location",
                format!(
                    "{}/webclient/login/?url={}",
                    self.config.prefix,
                    crate::gateway::query::encode(&target)
                ),
            )
            .header("Vary", "Cookie")
            .body(app::full(""))
            .expect("valid response")
    }

    /// An image the viewer may not see is answered as one that is not there (OMERO's
    /// queries do not find it either): the webclient's thumbnails get their
    /// placeholder, the rest a 404.
    fn not_visible(&self, route: &Route) -> Response {
        match route {
            Route::Thumbnail {
                webclient: true, ..
            } => self.placeholder(),
            _ => app::text(404, "Image not found\n"),
        }
    }
}

/// The answer when the session store (Redis) cannot be asked: 503, with the reason
/// in the site's log. Never a guess at who is asking.
pub fn store_unavailable(message: String) -> Response {
    let mut response = app::text(
        503,
        "The session store is not available: try again later.\n",
    );
    response.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static("5"),
    );
    response.extensions_mut().insert(crate::http_app::LogNote {
        logger: "omeroweb.webclient.decorators",
        message,
    });
    response
}

/// Marks an answer given to a known viewer as theirs alone. An answer that already
/// keeps itself from shared caches (`private`, `no-store`: the login page's
/// `private, no-store`) keeps its own, stricter words.
pub fn make_private(response: &mut Response) {
    let headers = response.headers_mut();
    let already_private = headers
        .get_all(hyper::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|directive| {
            let directive = directive.trim();
            directive.eq_ignore_ascii_case("private") || directive.eq_ignore_ascii_case("no-store")
        });
    if !already_private {
        headers.insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("private"),
        );
    }
    headers.append(
        hyper::header::VARY,
        hyper::header::HeaderValue::from_static("Cookie"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_control(before: Option<&'static str>) -> (String, String) {
        let mut response = app::text(200, "x");
        if let Some(value) = before {
            response.headers_mut().insert(
                hyper::header::CACHE_CONTROL,
                hyper::header::HeaderValue::from_static(value),
            );
        }
        make_private(&mut response);
        let header = |name| {
            let values: Vec<&str> = response
                .headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            values.join(" | ")
        };
        (
            header(hyper::header::CACHE_CONTROL),
            header(hyper::header::VARY),
        )
    }

    #[test]
    fn a_known_viewers_answer_is_private_and_keeps_stricter_words_of_its_own() {
        assert_eq!(cache_control(None), ("private".into(), "Cookie".into()));
        assert_eq!(
            cache_control(Some("public, max-age=86400")).0,
            "private",
            "a shared cache must not keep a viewer's answer"
        );
        assert_eq!(
            cache_control(Some("private, no-store")).0,
            "private, no-store",
            "the login page stays out of every cache"
        );
        assert_eq!(
            cache_control(Some("No-Store")).0,
            "No-Store",
            "directives are case-insensitive"
        );
        assert_eq!(
            cache_control(Some("private, max-age=0, must-revalidate")).0,
            "private, max-age=0, must-revalidate"
        );
    }
}
