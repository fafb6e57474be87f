//! OMERO's rendering-settings views over the per-image store (`rdefs`):
//! `saveImgRDef/<id>/`, `getImgRDef/`, `copyImgRDef/`, `resetRDef/`,
//! `applyOwnersRDef/` and `get_image_rdefs_json/<id>/`, with OMERO's answers
//! (`true`/`false`, `{"rdef": …}`, the IDs done, `{"rdefs": […]}`). With access
//! control off there is one "user", whose settings are the owner's; with it on a
//! logged-in user saves, resets and pastes their own set (`rdefs`), and
//! `applyOwnersRDef` copies the owner's over theirs, as OMERO's
//! `resetDefaultsByOwnerInSet`. The clipboard is the site's.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::gateway::http::webgateway::img_data::{jsonp_error, jsonp_response, typed};
use crate::gateway::imaging::channel_colors::html_color;
use crate::gateway::imaging::render::{Model, RenderSettings};
use crate::gateway::imaging::source::ImageMeta;
use crate::gateway::query::render_query;
use crate::gateway::query::{encode, query_pairs};
use crate::gateway::rdefs::Clipboard;
use crate::http_app::{self as app, Response};

/// A window bound as OMERO prints it: an integer when it is one.
fn bound(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// The `c` parameter of `settings`: `[-]index|start:end$RRGGBB` (or the lut name).
pub fn channel_param(settings: &RenderSettings) -> String {
    settings
        .channels
        .iter()
        .enumerate()
        .map(|(i, ch)| {
            let colour = ch.lut.clone().unwrap_or_else(|| html_color(ch.color));
            format!(
                "{}{}|{}:{}${colour}",
                if ch.active { "" } else { "-" },
                i + 1,
                bound(ch.start),
                bound(ch.end)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The stored query for `settings`: every channel, the model, the inversions, the
/// default plane (0-based, as `render_query::parse_query` reads `z`/`t`).
fn stored_query(settings: &RenderSettings) -> String {
    let maps: Vec<Value> = settings
        .channels
        .iter()
        .map(|ch| json!({"inverted": {"enabled": ch.inverted}}))
        .collect();
    format!(
        "c={}&m={}&maps={}&z={}&t={}",
        encode(&channel_param(settings)),
        if settings.model == Model::Greyscale {
            "g"
        } else {
            "c"
        },
        encode(&Value::Array(maps).to_string()),
        settings.z,
        settings.t
    )
}

/// One rendering definition as omero-py's `getAllRenderingDefs` gives it; `user` is
/// whose own set it is (none: the owner's). Our users have no numeric IDs: the
/// owner's `omeName` says who.
fn rdef_json(id: u64, settings: &RenderSettings, user: Option<&str>) -> Value {
    let channels: Vec<Value> = settings
        .channels
        .iter()
        .map(|ch| {
            let mut c = json!({
                "active": ch.active,
                "start": ch.start,
                "end": ch.end,
                "color": html_color(ch.color),
                "inverted": ch.inverted,
                "reverseIntensity": ch.inverted,
                "family": "linear",
                "coefficient": 1.0,
                "rgb": {"red": ch.color[0], "green": ch.color[1], "blue": ch.color[2]},
            });
            if let Some(lut) = &ch.lut {
                c["lut"] = json!(lut);
            }
            c
        })
        .collect();
    json!({
        "id": id,
        "owner": {"id": 0, "firstName": "", "lastName": "", "omeName": user.unwrap_or("")},
        "z": settings.z,
        "t": settings.t,
        "model": if settings.model == Model::Greyscale { "greyscale" } else { "rgb" },
        "c": channels,
    })
}

/// Form fields: the query string's, else (for a POST without `c` there, as OMERO's
/// views read it) the body's.
fn fields(query: &str, body: &str) -> Vec<(String, String)> {
    let mut pairs = query_pairs(query);
    pairs.extend(query_pairs(body));
    pairs
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn ids(pairs: &[(String, String)], key: &str) -> Vec<u64> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .filter_map(|(_, v)| v.trim().parse().ok())
        .collect()
}

/// The render query of `pairs` (c, m, maps, p, z, t) re-encoded, for `parse_query`.
fn render_query_of(pairs: &[(String, String)]) -> String {
    ["c", "m", "maps", "p"]
        .iter()
        .filter_map(|k| first(pairs, k).map(|v| format!("{k}={}", encode(v))))
        .collect::<Vec<_>>()
        .join("&")
}

impl Gateway {
    /// The image's metadata, or the response for a missing/unreadable one.
    async fn meta_of(self: &Arc<Self>, id: u64) -> Result<ImageMeta, Response> {
        let (_, source) = self.open_image(id).await?;
        Ok(source.meta().clone())
    }

    /// `saveImgRDef/<id>/` (POST): `c` (required, each channel with window and colour),
    /// `m`, `maps`, `z`/`t` (1-based) become the image's saved settings; `true`, or
    /// `false` for an image that is not there, as OMERO answers.
    pub(in crate::gateway) async fn save_rdef(
        self: Arc<Self>,
        id: u64,
        query: &str,
        body: &str,
        viewer: &crate::gateway::auth::Viewer,
    ) -> Response {
        let pairs = if query_pairs(query).iter().any(|(k, _)| k == "c") {
            query_pairs(query)
        } else {
            fields("", body)
        };
        let callback = first(&query_pairs(query), "callback").map(str::to_string);
        let Some(c) = first(&pairs, "c") else {
            return app::text(400, "Rendering settings must specify channels as c\n");
        };
        // OMERO's validate_rdef_query: every channel listed needs a window and colour.
        for spec in c.split(',') {
            let spec = spec.trim();
            if !spec.contains('|') || !spec.contains(':') {
                return app::text(400, "Must specify window for each channel\n");
            }
            if !spec.contains('$') {
                return app::text(400, "Must specify color for each channel\n");
            }
        }
        let (entry, source) = match self.open_image(id).await {
            Ok(opened) => opened,
            Err(_) => return jsonp_response(&json!(false), callback.as_deref()),
        };
        // What imgData's perms promised: OMERO's server refuses a viewer who may only
        // read (the public user) with a security violation.
        if !self.may_save_settings(viewer, &entry) {
            return typed(
                403,
                "application/json",
                serde_json::to_vec(&json!({
                    "error": "You may not save rendering settings of this image: log in as a member of the group that owns it."
                }))
                .expect("JSON"),
            );
        }
        let meta = source.meta().clone();
        let mut settings = match render_query::parse_query(&render_query_of(&pairs), &meta) {
            Ok(request) => request.settings,
            Err(e) => return app::text(400, format!("{e}\n")),
        };
        // Saved defaults start from what is saved now: a request without z keeps it.
        let current = self.saved_settings(id, &meta);
        settings.z = current.z;
        settings.t = current.t;
        for (key, size, slot) in [
            ("z", meta.size_z, &mut settings.z),
            ("t", meta.size_t, &mut settings.t),
        ] {
            if let Some(v) = first(&pairs, key).and_then(|v| v.trim().parse::<u32>().ok()) {
                if v == 0 || v > size {
                    return app::text(400, format!("{key}={v} is out of range: 1 to {size}\n"));
                }
                *slot = v - 1;
            }
        }
        if let Err(e) = self.save_settings(id, &settings).await {
            return app::text(500, format!("{e}\n"));
        }
        jsonp_response(&json!(true), callback.as_deref())
    }

    /// Stores `settings` for image `id` (the logged-in user's own set, else the
    /// owner's) and, for the owner's, drops the published thumbnail drawn with
    /// the old ones (the next request, or the publisher, renders the new one).
    async fn save_settings(
        self: &Arc<Self>,
        id: u64,
        settings: &RenderSettings,
    ) -> std::io::Result<()> {
        let gateway = self.clone();
        let query = stored_query(settings);
        let user = crate::gateway::http::serve::rdef_user();
        crate::http_app::blocking::spawn_blocking(
            format!("image {id} (save settings)"),
            move || {
                match user {
                    // A user's own set: the owner's published thumbnail stays.
                    Some(user) => gateway.rdefs.save_user(id, &user, &query)?,
                    None => {
                        gateway.rdefs.save(id, &query)?;
                        gateway.unpublish(id);
                    }
                }
                Ok(())
            },
        )
        .await
        .map_err(std::io::Error::other)?
    }

    fn unpublish(&self, id: u64) {
        let _ = std::fs::remove_file(self.published.path(id));
    }

    /// `get_image_rdefs_json/<id>/`: the image's one rendering definition (the saved
    /// one, else the imported defaults), as `{"rdefs": [...]}`.
    pub(in crate::gateway) async fn image_rdefs(self: Arc<Self>, id: u64, query: &str) -> Response {
        let callback = first(&query_pairs(query), "callback").map(str::to_string);
        let Some(_) = self.lookup(id).await else {
            return jsonp_response(
                &json!({"error": format!("No image with id {id}")}),
                callback.as_deref(),
            );
        };
        match self.meta_of(id).await {
            Ok(meta) => {
                // The owner's (or the imported defaults), then every user's own, as
                // OMERO's getAllRenderingDefs lists every user's definition.
                let owners = render_query::parse_query(&self.rdefs.query(id), &meta)
                    .map(|request| request.settings)
                    .unwrap_or_else(|_| RenderSettings::defaults(&meta));
                let mut rdefs = vec![rdef_json(id, &owners, None)];
                for (user, query) in self.rdefs.user_queries(id) {
                    if let Ok(request) = render_query::parse_query(&query, &meta) {
                        rdefs.push(rdef_json(id, &request.settings, Some(&user)));
                    }
                }
                jsonp_response(&json!({"rdefs": rdefs}), callback.as_deref())
            }
            Err(_) => jsonp_response(
                &json!({"error": "Failed to retrieve rdefs"}),
                callback.as_deref(),
            ),
        }
    }

    /// `resetRDef/` and `applyOwnersRDef/` (POST `toids`, `to_type=image`): back to
    /// the imported defaults, or to the owner's. A logged-in user's own set becomes
    /// those; without users the saved set is the owner's, so only reset changes it. Answers the IDs done, as OMERO's service does.
    pub(in crate::gateway) async fn reset_rdefs(
        self: Arc<Self>,
        to_owners: bool,
        body: &str,
    ) -> Response {
        let pairs = fields("", body);
        let to_type = first(&pairs, "to_type").unwrap_or("image").to_lowercase();
        let toids = ids(&pairs, "toids");
        if toids.is_empty() {
            return app::text(
                404,
                "Need to specify objects in request, E.g. ?totype=dataset&toids=1&toids=2\n",
            );
        }
        if to_type != "image" {
            return jsonp_error(&format!(
                "to_type {to_type} is not supported here: only image"
            ));
        }
        let mut done = Vec::new();
        for id in toids {
            if self.lookup(id).await.is_none() {
                continue;
            }
            if let Some(user) = crate::gateway::http::serve::rdef_user() {
                // A user's own set: the imported defaults (""), or a copy of the
                // owner's query as it is, so the thumbnail's version is the owner's too.
                let gateway = self.clone();
                let saved = crate::http_app::blocking::spawn_blocking(
                    format!("image {id} (reset {user}'s settings)"),
                    move || {
                        let query = if to_owners {
                            gateway.rdefs.query(id)
                        } else {
                            String::new()
                        };
                        gateway.rdefs.save_user(id, &user, &query)
                    },
                )
                .await;
                if let Ok(Err(e)) = saved {
                    return app::text(500, format!("{e}\n"));
                }
            } else if !to_owners {
                let gateway = self.clone();
                let removed = crate::http_app::blocking::spawn_blocking(
                    format!("image {id} (reset settings)"),
                    move || {
                        let removed = gateway.rdefs.remove(id);
                        gateway.unpublish(id);
                        removed
                    },
                )
                .await;
                if let Ok(Err(e)) = removed {
                    return app::text(500, format!("{e}\n"));
                }
            }
            done.push(id);
        }
        jsonp_response(&json!(done), None)
    }

    /// `copyImgRDef/`: GET `fromid` (or `c`… settings) fills the clipboard; POST
    /// `toids` pastes it (or `fromid`) onto those images. Answers `true` for a copy,
    /// `{"true": [ids], "false": [ids]}` for a paste, as OMERO's `applySettingsToSet`.
    pub(in crate::gateway) async fn copy_rdef(
        self: Arc<Self>,
        is_post: bool,
        query: &str,
        body: &str,
    ) -> Response {
        let get = query_pairs(query);
        let post = fields("", body);
        let field = |key: &str| {
            first(&get, key)
                .or_else(|| first(&post, key))
                .map(str::to_string)
        };
        let toids = ids(&post, "toids");
        let fromid = first(&get, "fromid").and_then(|v| v.parse::<u64>().ok());
        if let Some(fromid) = fromid.filter(|_| toids.is_empty()) {
            return match self.rdefs.set_clipboard(&Clipboard::FromId(fromid)) {
                Ok(()) => jsonp_response(&json!(true), None),
                Err(e) => app::text(500, format!("{e}\n")),
            };
        }
        let mut given = None;
        if let Some(c) = field("c") {
            let mut rdef = json!({"c": c});
            for key in ["m", "z", "t", "pixel_range", "maps"] {
                if let Some(v) = field(key) {
                    rdef[key] = json!(v);
                }
            }
            if let Some(image) = field("imageId").and_then(|v| v.parse::<u64>().ok()) {
                rdef["imageId"] = json!(image);
            }
            if !is_post || field("store").is_some() {
                return match self.rdefs.set_clipboard(&Clipboard::Rdef(rdef)) {
                    Ok(()) => jsonp_response(&json!(true), None),
                    Err(e) => app::text(500, format!("{e}\n")),
                };
            }
            given = Some(rdef);
        }
        if !is_post {
            return hyper::Response::builder()
                .status(405)
                .header("Allow", "POST")
                .body(app::full(""))
                .expect("valid response");
        }
        // What to paste: the settings given, else the source image's, else the
        // clipboard's.
        let source = match (given, fromid) {
            (Some(rdef), _) => Some(Clipboard::Rdef(rdef)),
            (None, Some(id)) => Some(Clipboard::FromId(id)),
            (None, None) => self.rdefs.clipboard(),
        };
        let Some(source) = source else {
            return jsonp_response(&json!(false), None);
        };
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        for id in toids {
            match self.pasted_settings(&source, id).await {
                Some(settings) if self.save_settings(id, &settings).await.is_ok() => ok.push(id),
                _ => failed.push(id),
            }
        }
        jsonp_response(&json!({"true": ok, "false": failed}), None)
    }

    /// The clipboard's settings applied to image `target`: an image's saved settings
    /// (when the channel counts match, as OMERO requires), or a query's.
    async fn pasted_settings(
        self: &Arc<Self>,
        source: &Clipboard,
        target: u64,
    ) -> Option<RenderSettings> {
        let meta = self.meta_of(target).await.ok()?;
        match source {
            Clipboard::FromId(from) => {
                let from_meta = self.meta_of(*from).await.ok()?;
                if from_meta.size_c != meta.size_c {
                    return None;
                }
                let settings = self.saved_settings(*from, &from_meta);
                render_query::parse_query(&stored_query(&settings), &meta)
                    .ok()
                    .map(|r| r.settings)
            }
            Clipboard::Rdef(rdef) => {
                let pairs: Vec<(String, String)> = ["c", "m", "maps"]
                    .iter()
                    .filter_map(|k| {
                        rdef.get(*k)
                            .and_then(Value::as_str)
                            .map(|v| (k.to_string(), v.to_string()))
                    })
                    .collect();
                let mut settings = render_query::parse_query(&render_query_of(&pairs), &meta)
                    .ok()?
                    .settings;
                let current = self.saved_settings(target, &meta);
                settings.z = current.z;
                settings.t = current.t;
                Some(settings)
            }
        }
    }

    /// `getImgRDef/`: the clipboard as OMERO's session holds it, `{"rdef": …}` (null
    /// when empty); an image on the clipboard is given as its settings.
    pub(in crate::gateway) async fn clipboard_rdef(self: Arc<Self>, query: &str) -> Response {
        let callback = first(&query_pairs(query), "callback").map(str::to_string);
        let rdef = match self.rdefs.clipboard() {
            None => Value::Null,
            Some(Clipboard::Rdef(rdef)) => rdef,
            Some(Clipboard::FromId(id)) => match self.meta_of(id).await {
                Ok(meta) => {
                    let settings = self.saved_settings(id, &meta);
                    let maps: Vec<Value> = settings
                        .channels
                        .iter()
                        .map(|ch| json!({"inverted": {"enabled": ch.inverted}, "quantization": {"coefficient": 1.0, "family": "linear"}}))
                        .collect();
                    json!({
                        "c": channel_param(&settings),
                        "m": if settings.model == Model::Greyscale { "g" } else { "c" },
                        "pixel_range": format!("0:{}", meta.pixel_type.max_value()),
                        "maps": maps,
                    })
                }
                Err(_) => Value::Null,
            },
        };
        jsonp_response(&json!({"rdef": rdef}), callback.as_deref())
    }
}
