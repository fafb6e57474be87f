//! `imgData` in the shape of OMERO.web's `marshal.imageMarshal`, and the JSON/JSONP
//! answer of its `jsonp` decorator.
//!
//! The key set is OMERO's for an image without tiles, nominal magnification or
//! parents: `id`, `meta`, `perms`, `tiles`, `interpolate`, `size`, `pixel_size`,
//! `init_zoom`, `pixel_range`, `channels`, `split_channel`, `rdefs`. The repository
//! has no projects, datasets or wells, so their fields carry what OMERO gives an
//! image outside them ("Multiple", null, "").

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::gateway::imaging::render::{Model, RenderSettings};
use crate::gateway::imaging::source::{ChannelMeta, ImageMeta};
use crate::gateway::imaging::split::{SPLIT_BORDER, SplitLayout};
use crate::gateway::parents::Parents;
use crate::gateway::repository::ImageEntry;
use crate::http_app::{self as app, Response};

/// OMERO's `omero.client.viewer.initial_zoom_level` and `interpolate_pixels` defaults.
const INITIAL_ZOOM_LEVEL: i64 = 0;
const INTERPOLATE_PIXELS: bool = true;

/// omero-py's `ChannelWrapper.getLabel`: the name if it is not blank, else the emission
/// wavelength (without ".0" when whole), else the 0-based index.
pub fn channel_label(channel: &ChannelMeta, index: usize) -> String {
    if let Some(name) = channel.name.as_deref().filter(|n| !n.trim().is_empty()) {
        return name.to_string();
    }
    match channel.emission_nm {
        Some(w) if w.fract() == 0.0 => format!("{}", w as i64),
        Some(w) => format!("{w}"),
        None => index.to_string(),
    }
}

/// A split layout in imgData's `split_channel` shape.
fn split_layout_json(layout: &SplitLayout) -> Value {
    json!({
        "width": layout.width,
        "height": layout.height,
        "border": SPLIT_BORDER,
        "gridx": layout.gridx,
        "gridy": layout.gridy,
    })
}

/// imgData's `perms` for a viewer who may (or may not) save the image's rendering
/// settings: OMERO.iviewer enables "Save" on `canAnnotate`. Nothing here is deleted or
/// linked, so those stay false.
pub fn perms_json(may_save: bool) -> Value {
    json!({"canAnnotate": may_save, "canEdit": may_save, "canDelete": false, "canLink": false})
}

/// The whole imgData object for an image at `settings`: its saved rendering settings,
/// else its imported defaults; `may_save` whether the asking viewer may save them.
pub fn img_data_json(
    id: u64,
    entry: &ImageEntry,
    meta: &ImageMeta,
    settings: &RenderSettings,
    may_save: bool,
    parents: &Parents,
) -> Value {
    let type_max = meta.pixel_type.max_value();
    let channels: Vec<Value> = meta
        .channels
        .iter()
        .zip(&settings.channels)
        .enumerate()
        .map(|(i, (m, s))| {
            json!({
                "emissionWave": m.emission_nm,
                "label": channel_label(m, i),
                "color": crate::gateway::imaging::channel_colors::html_color(s.color),
                "inverted": s.inverted,
                "reverseIntensity": s.inverted,
                "family": "linear",
                "coefficient": 1.0,
                "window": {
                    "min": m.min as f64,
                    "max": m.max as f64,
                    "start": s.start,
                    "end": s.end,
                },
                "active": s.active,
            })
        })
        .collect();
    let timestamp = entry
        .modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as f64)
        .unwrap_or(0.0);
    let [px, py, pz] = meta.physical_size_um;
    let mut value = json!({
        "id": id,
        "meta": {
            "imageName": entry.name,
            "imageDescription": "",
            "imageAuthor": "",
            "imageArchived": false,
            "projectName": "Multiple",
            "projectId": null,
            "projectDescription": "",
            "datasetName": "Multiple",
            "datasetId": null,
            "datasetDescription": "",
            "wellSampleId": "",
            "wellId": "",
            "imageTimestamp": timestamp,
            "imageId": id,
            "pixelsType": meta.pixel_type.omero_name(),
        },
        "perms": perms_json(may_save),
        "tiles": false,
        "interpolate": INTERPOLATE_PIXELS,
        "size": {"width": meta.size_x, "height": meta.size_y, "z": meta.size_z, "t": meta.size_t, "c": meta.size_c},
        "pixel_size": {"x": px, "y": py, "z": pz},
        "init_zoom": INITIAL_ZOOM_LEVEL,
        "pixel_range": [0, type_max],
        "channels": channels,
        "split_channel": {
            "g": split_layout_json(&SplitLayout::new(meta, meta.size_c)),
            "c": split_layout_json(&SplitLayout::new(meta, meta.size_c + 1)),
        },
        "rdefs": {
            "model": if settings.model == Model::Color { "color" } else { "greyscale" },
            "projection": "normal",
            "defaultZ": settings.z,
            "defaultT": settings.t,
            "invertAxis": false,
        },
    });
    parents.fill_meta(&mut value["meta"]);
    add_resolution_levels(&mut value, meta);
    value
}

/// A big image's resolution levels (`render::resolution_levels`) in OMERO's shape for
/// a pyramid: `tiles`, `tile_size`, `levels`, each level's size in `resolutions` and
/// its scale in `zoomLevelScaling` (level 0 full resolution), so that tiled viewers
/// (OMERO.iviewer) ask for `tile=<level>,…` instead of whole planes.
fn add_resolution_levels(value: &mut Value, meta: &ImageMeta) {
    let levels = crate::gateway::imaging::render::resolution_levels(meta);
    if levels < 2 {
        return;
    }
    let tile = crate::gateway::imaging::render::DEFAULT_TILE_SIZE;
    let mut resolutions = serde_json::Map::new();
    let mut scaling = serde_json::Map::new();
    for level in 0..levels {
        let size_x = meta.size_x.div_ceil(1 << level);
        let size_y = meta.size_y.div_ceil(1 << level);
        resolutions.insert(level.to_string(), json!({"sizeX": size_x, "sizeY": size_y}));
        scaling.insert(level.to_string(), json!(size_x as f64 / meta.size_x as f64));
    }
    if let Some(object) = value.as_object_mut() {
        object.insert("tiles".into(), json!(true));
        object.insert("tile_size".into(), json!({"width": tile, "height": tile}));
        object.insert("levels".into(), json!(levels));
        object.insert("resolutions".into(), Value::Object(resolutions));
        object.insert("zoomLevelScaling".into(), Value::Object(scaling));
    }
}

/// `imgData/<id>/<key>/`: OMERO walks the dotted key through nested objects, a missing
/// step giving `{}`, and answers null for an empty result. A step into something that
/// is not an object fails there (Python's AttributeError, a 500 from `jsonp`).
pub fn select_key(value: Value, key: &str) -> Result<Value, String> {
    let mut current = value;
    for step in key.split('.') {
        current = match current {
            Value::Object(mut map) => map.remove(step).unwrap_or_else(|| json!({})),
            other => {
                return Err(format!(
                    "'{}' object has no attribute 'get'",
                    python_type(&other)
                ));
            }
        };
    }
    Ok(match current {
        Value::Object(map) if map.is_empty() => Value::Null,
        other => other,
    })
}

fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Whether a JSONP callback name is one OMERO accepts (`VALID_JS_VARIABLE`).
pub fn valid_callback(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// The answer of OMERO's `jsonp` decorator for a view's value: JSON, or with a
/// `callback` query parameter `callback(JSON)` as JavaScript (400 "Invalid callback"
/// for a name that is not a JavaScript identifier).
pub fn jsonp_response(value: &Value, callback: Option<&str>) -> Response {
    let body = serde_json::to_vec(value).expect("JSON serialises");
    match callback {
        None => typed(200, "application/json", body),
        Some(name) if valid_callback(name) => {
            let mut wrapped = Vec::with_capacity(body.len() + name.len() + 2);
            wrapped.extend_from_slice(name.as_bytes());
            wrapped.push(b'(');
            wrapped.extend_from_slice(&body);
            wrapped.push(b')');
            typed(200, "application/javascript", wrapped)
        }
        Some(_) => typed(
            400,
            "text/html; charset=utf-8",
            b"Invalid callback".to_vec(),
        ),
    }
}

/// What `jsonp` answers when the view raises: 500 with the message (and, in OMERO, a
/// Python stack trace, which we have not got).
pub fn jsonp_error(message: &str) -> Response {
    let body = json!({"message": message, "stacktrace": ""});
    typed(
        500,
        "application/json",
        serde_json::to_vec(&body).expect("JSON serialises"),
    )
}

pub(in crate::gateway) fn typed(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    hyper::Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .body(app::full(body))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_let_iviewer_save_only_where_the_viewer_may() {
        // OMERO.iviewer enables "Save" on canAnnotate.
        assert_eq!(perms_json(true)["canAnnotate"], json!(true));
        assert_eq!(perms_json(true)["canEdit"], json!(true));
        assert_eq!(perms_json(false)["canAnnotate"], json!(false));
        assert_eq!(perms_json(false)["canEdit"], json!(false));
        assert_eq!(perms_json(true)["canDelete"], json!(false));
    }

    #[test]
    fn dotted_keys_walk_as_omero() {
        let v = json!({"size": {"width": 5}, "meta": {"projectId": null}, "e": {}});
        assert_eq!(select_key(v.clone(), "size.width").unwrap(), json!(5));
        assert_eq!(select_key(v.clone(), "size").unwrap(), json!({"width": 5}));
        assert_eq!(select_key(v.clone(), "nope").unwrap(), Value::Null);
        assert_eq!(select_key(v.clone(), "e").unwrap(), Value::Null);
        assert_eq!(
            select_key(v.clone(), "meta.projectId").unwrap(),
            Value::Null
        );
        let err = select_key(v, "size.width.x").unwrap_err();
        assert!(err.contains("'int' object has no attribute 'get'"), "{err}");
    }

    #[test]
    fn callbacks_are_javascript_identifiers() {
        for ok in ["cb", "_x1", "$", "jQuery123_456"] {
            assert!(valid_callback(ok), "{ok}");
        }
        for bad in ["", "1cb", "a.b", "alert(1)", "a-b", "é"] {
            assert!(!valid_callback(bad), "{bad}");
        }
    }
}
