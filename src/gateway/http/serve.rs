//! Every request's way in: the access guard, then the view its `Route` names; and the
//! small response helpers the views share.

use std::sync::Arc;

use bytes::Bytes;

use super::conditional::Conditional;
use super::routes::{Route, route};
use super::webclient::favicon;
use crate::gateway::Gateway;
use crate::gateway::query::query_pairs;
use crate::gateway::repository::ImageEntry;
use crate::http_app::{self as app, Request, Response};

/// Largest form body read (rendering settings are a few hundred bytes).
const MAX_FORM_BODY: usize = 64 * 1024;

/// A POST's urlencoded body as text, or the 413/400 for one too large or cut off.
async fn form_body(request: Request) -> Result<String, Response> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(request.into_body(), MAX_FORM_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(String::from_utf8_lossy(&collected.to_bytes()).into_owned()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(app::text(
            413,
            format!("form body over {MAX_FORM_BODY} bytes\n"),
        )),
        Err(e) => Err(app::text(400, format!("reading the form body: {e}\n"))),
    }
}

tokio::task_local! {
    /// The image the guard looked up for this request (access control on): the
    /// view's `lookup` of the same ID takes it instead of a second trip to the
    /// blocking pool. The file is judged again where it is opened.
    pub(in crate::gateway) static GUARD_LOOKED_UP: Option<ImageEntry>;
    /// The logged-in user this request renders for (access control on): their own
    /// rendering settings come before the owner's (`rdefs`). `None` with access
    /// control off, for the public user and for nobody: they see the owner's.
    pub(in crate::gateway) static RDEF_USER: Option<String>;
}

/// The logged-in user of the request being served (`RDEF_USER`), if any; none off
/// the request's task (the blocking pool, the publisher).
pub(in crate::gateway) fn rdef_user() -> Option<String> {
    RDEF_USER.try_with(Clone::clone).ok().flatten()
}

impl Gateway {
    /// Every request: the access guard (`http::guard`), then the view.
    pub(in crate::gateway) async fn serve(self: Arc<Self>, request: Request) -> Response {
        let untrusted_header = self.remote_user_note(&request);
        let mut response = match self.admit(&request).await {
            Ok(mut admitted) => {
                let private = admitted.private;
                let looked_up = admitted.entry.take();
                let rdef_user = match &admitted.viewer {
                    crate::gateway::auth::Viewer::User { name, .. } => Some(name.clone()),
                    _ => None,
                };
                let mut response = RDEF_USER
                    .scope(
                        rdef_user,
                        GUARD_LOOKED_UP.scope(looked_up, self.serve_as(request, admitted)),
                    )
                    .await;
                if private {
                    crate::gateway::http::guard::make_private(&mut response);
                }
                response
            }
            Err(refused) => refused,
        };
        if let Some(note) = untrusted_header
            && response.extensions().get::<app::LogNote>().is_none()
        {
            response.extensions_mut().insert(note);
        }
        response
    }

    pub(in crate::gateway) async fn serve_as(
        self: Arc<Self>,
        request: Request,
        admitted: crate::gateway::http::guard::Admitted,
    ) -> Response {
        let path = request.uri().path().to_string();
        let crate::gateway::http::guard::Admitted { viewer, query, .. } = admitted;
        let login_request = |request: &Request| crate::gateway::http::login::LoginRequest {
            is_post: request.method() == hyper::Method::POST,
            query: query.clone(),
            body: String::new(),
            csrf_cookie: crate::gateway::http::guard::cookie(request, "csrftoken")
                .map(str::to_string),
            csrf_header: request
                .headers()
                .get("x-csrftoken")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            session_cookie: crate::gateway::http::guard::cookie(
                request,
                &self.access.config.cookie.name,
            )
            .map(str::to_string),
            client: request.extensions().get::<app::ClientAddr>().map(|c| c.0),
        };
        let mut login = login_request(&request);
        // The batch views answer an image the viewer may not see exactly as a missing
        // one (OMERO's queries find neither), so they read the IDs as asked and judge
        // each themselves; the guard's screened query would leave the hidden ones out.
        let asked_query = request.uri().query().unwrap_or("").to_string();
        let conditional = Conditional::from_request(&request);
        let is_post = request.method() == hyper::Method::POST;
        let json_body = request
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim_start().starts_with("application/json"));
        // Absolute URLs in API answers name the host the client used, as Django's
        // build_absolute_uri does.
        let host = request
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '"']))
            .unwrap_or("localhost")
            .to_string();
        // The few views that read a form body (OMERO's POSTs); others never wait for
        // one.
        let wants_body = is_post && {
            let p = request.uri().path();
            [
                "saveImgRDef/",
                "copyImgRDef/",
                "resetRDef/",
                "applyOwnersRDef/",
                "webclient/login/",
                "webclient/logout/",
                "api/v0/login/",
            ]
            .iter()
            .any(|view| p.contains(view))
        };
        let body = if wants_body {
            match form_body(request).await {
                Ok(body) => body,
                Err(response) => return response,
            }
        } else {
            String::new()
        };
        // Form fields naming images the viewer may not see are dropped, as in the query.
        let body = self.screen_fields(&viewer, &body);
        login.body = body.clone();
        let Some(local) = path.strip_prefix(&self.config.prefix) else {
            // Outside the prefix: the pages link the static files at `static_url`, an
            // absolute path as Django's STATIC_URL is, and browsers ask the root for
            // the favicon.
            if let Some(rest) = path.strip_prefix(&self.config.static_url) {
                return self.static_file(rest, &conditional);
            }
            if path == "/favicon.ico" {
                return favicon(&conditional);
            }
            return app::text(404, "Not Found\n");
        };
        let local = if local.is_empty() { "/" } else { local };
        match route(local, &self.config.static_url) {
            Route::Root => redirect(&format!("{}/webclient/", self.config.prefix)),
            Route::Health => app::text(200, "ok\n"),
            Route::Favicon => favicon(&conditional),
            // Listing and opening files can be slow (a rescan, a network filesystem):
            // never on the worker's runtime thread, where heartbeats run.
            Route::Gallery => {
                // The versioned thumbnail URLs are the viewer's own (their settings).
                let user = rdef_user();
                blocking("gallery", move || {
                    RDEF_USER.sync_scope(user, || self.gallery(&query, &viewer))
                })
                .await
            }
            Route::Login if self.access.is_on() => self.login_view(login, &viewer).await,
            Route::Login => self.login(is_post, &query),
            Route::Logout if self.access.is_on() => self.logout_view(login).await,
            // Without access control there is no session to end: on to the gallery.
            Route::Logout => redirect(&format!("{}/webclient/", self.config.prefix)),
            // The same body and type as OMERO's view: monitors compare both.
            Route::KeepalivePing => hyper::Response::builder()
                .status(200)
                .header("Content-Type", "text/plain")
                .body(app::full("OK"))
                .expect("valid response"),
            Route::Viewer(id) => match self.clone().iviewer_as_viewer(id, query.clone()).await {
                Some(page) => page,
                None => self.viewer(id, viewer).await,
            },
            Route::Thumbnail {
                id,
                w,
                h,
                webclient,
            } => {
                self.thumbnail(id, w, h, webclient, &query, &conditional)
                    .await
            }
            Route::RenderImage { id, z, t } => {
                self.render_image(id, z, t, &query, &conditional, false)
                    .await
            }
            Route::RenderRegion { id, z, t } => {
                self.render_image(id, Some(z), Some(t), &query, &conditional, true)
                    .await
            }
            Route::ImgData { id, key } => self.img_data(id, key, &query, &viewer).await,
            Route::GetThumbnail {
                id,
                w,
                h,
                webclient,
            } => self.get_thumbnail(id, w, h, webclient, &query).await,
            Route::GetThumbnails { w } => self.get_thumbnails(w, &asked_query, &viewer).await,
            // OMERO's render_birds_eye_view is render_thumbnail with w = size.
            Route::BirdsEye { id, size } => {
                self.thumbnail(id, size, None, false, &query, &conditional)
                    .await
            }
            Route::SplitChannel { id, z, t } => self.split_channel(id, z, t, &query).await,
            Route::LinePlot {
                id,
                z,
                t,
                position,
                width,
                axis,
            } => {
                self.line_plot(id, (z, t), position, width, axis, &query)
                    .await
            }
            Route::Histogram { id, channel } => self.histogram(id, channel, &query).await,
            Route::RenderDownload { id, z, t } => self.render_download(id, z, t, &query).await,
            Route::Download(id) => {
                blocking(format!("download {id:?}"), move || {
                    self.download(id, &asked_query, &viewer)
                })
                .await
            }
            Route::SaveRdef(id) if is_post => self.save_rdef(id, &query, &body, &viewer).await,
            Route::ImageRdefs(id) => self.image_rdefs(id, &query).await,
            Route::Luts => {
                let pairs = query_pairs(&query);
                let param = |key: &str| {
                    pairs
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str())
                };
                crate::gateway::http::webgateway::img_data::jsonp_response(
                    &crate::gateway::imaging::lut::list_json(param("rgb") == Some("true")),
                    param("callback"),
                )
            }
            Route::Api(path) if path == "v0/token" => self.api_token(&login),
            Route::Api(path) if path == "v0/login" && is_post && self.access.is_on() => {
                self.api_login(login, json_body, &viewer).await
            }
            Route::Api(path) => {
                let pairs = query_pairs(&query);
                let param = |key: &str| {
                    pairs
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.to_string())
                };
                let (limit, offset) = (param("limit"), param("offset"));
                let base = format!("http://{host}{}", self.config.prefix);
                let gateway = self.clone();
                blocking("api", move || {
                    let images = gateway.gallery_order(&viewer);
                    let request = crate::gateway::http::api::ApiRequest {
                        path: &path,
                        base: &base,
                        limit: limit.as_deref(),
                        offset: offset.as_deref(),
                        post: is_post,
                    };
                    match crate::gateway::http::api::answer(&request, &images) {
                        Some((status, body)) => crate::gateway::http::webgateway::img_data::typed(
                            status,
                            "application/json",
                            serde_json::to_vec(&body).expect("JSON"),
                        ),
                        None => app::text(404, "There is no page at this address.\n"),
                    }
                })
                .await
            }
            Route::Iviewer => blocking("iviewer page", move || self.iviewer_index(&query)).await,
            Route::IviewerImageData(id) => self.iviewer_image_data(id, &viewer).await,
            Route::IviewerDeltaT(id) => self.iviewer_delta_t(id).await,
            Route::IviewerRoisByPlane(id) => self.iviewer_no_rois(id, false).await,
            Route::IviewerPlaneShapeCounts(id) => self.iviewer_no_rois(id, true).await,
            Route::IviewerIntensity => self.iviewer_intensity(&query).await,
            Route::IviewerShapeStats => crate::gateway::http::iviewer::views::shape_stats(&query),
            Route::IviewerWellImages => crate::gateway::http::iviewer::views::well_images(&query),
            Route::IviewerReadOnly(view) => crate::gateway::http::iviewer::views::read_only(view),
            Route::IviewerRoiLookup(kind, id) => {
                crate::gateway::http::iviewer::views::no_such_roi(kind, id)
            }
            Route::OpenWith => crate::gateway::http::iviewer::open_with(),
            Route::PathsToObject => {
                let gateway = self.clone();
                blocking("paths to object", move || {
                    gateway.paths_to_object(&query_pairs(&query), &viewer)
                })
                .await
            }
            Route::GatewayIndex => hyper::Response::builder()
                .status(200)
                .header("Content-Type", "text/html; charset=utf-8")
                .body(app::full("Welcome to webgateway"))
                .expect("valid response"),
            // OMERO's list of the image's ROIs: none here (no ROI store), and 404 for
            // an image that is not there.
            Route::Rois(id) => match self.lookup(id).await {
                Some(_) => crate::gateway::http::webgateway::img_data::jsonp_response(
                    &serde_json::json!([]),
                    query_pairs(&query)
                        .iter()
                        .find(|(k, _)| k == "callback")
                        .map(|(_, v)| v.as_str()),
                ),
                None => app::text(404, "Image not found\n"),
            },
            Route::LutsPng => hyper::Response::builder()
                .status(200)
                .header("Content-Type", "image/png")
                .body(app::full(crate::gateway::imaging::lut::png()))
                .expect("valid response"),
            Route::ClipboardRdef => self.clipboard_rdef(&query).await,
            Route::CopyRdef => self.copy_rdef(is_post, &query, &body).await,
            Route::ResetRdef { to_owners } if is_post => self.reset_rdefs(to_owners, &body).await,
            // OMERO's require_POST.
            Route::SaveRdef(_) | Route::ResetRdef { .. } => hyper::Response::builder()
                .status(405)
                .header("Allow", "POST")
                .body(app::full(Bytes::new()))
                .expect("valid response"),
            Route::Static(rest) => self.static_file(&rest, &conditional),
            Route::NotFound => self.error_page(404, "There is no page at this address."),
        }
    }
}

/// Runs a handler that touches the filesystem on the blocking pool, counted under
/// `label` (what it works on, as the operator names it: never a file path).
pub(in crate::gateway) async fn blocking(
    label: impl Into<String>,
    handler: impl FnOnce() -> Response + Send + 'static,
) -> Response {
    crate::http_app::blocking::spawn_blocking(label, handler)
        .await
        .unwrap_or_else(|e| app::text(500, format!("internal error: {e}\n")))
}

pub(in crate::gateway) fn html(body: String) -> Response {
    hyper::Response::builder()
        .status(200)
        .header("Content-Type", "text/html; charset=utf-8")
        .body(app::full(body))
        .expect("valid response")
}

pub(in crate::gateway) fn empty(status: u16) -> Response {
    hyper::Response::builder()
        .status(status)
        .body(app::full(Bytes::new()))
        .expect("valid response")
}

pub(in crate::gateway) fn redirect(location: &str) -> Response {
    hyper::Response::builder()
        .status(302)
        .header("Location", location)
        .body(app::full(Bytes::new()))
        .expect("valid redirect")
}
