//! OMERO.iviewer's views about ROIs, time, wells and intensities (its `urls.py`
//! beside `index` and `image_data`), answered as for an image with none of them: files
//! here carry no ROIs, no plane time deltas and are in no well. Each answer has the
//! JSON shape of iviewer's own view, so its bundle shows "nothing there" rather than a
//! failed request. What it would write (`save_projection`, `persist_rois`) is refused in
//! the shapes it reports errors in.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::gateway::http::iviewer::json_response;
use crate::gateway::query::query_pairs;
use crate::http_app::{self as app, Response};

/// `delta_t`'s answer: OMERO lists a time per T index when there are several, 0 where
/// the file records none (here: always); `image_id` is the URL's text, as Django
/// passes it.
pub fn delta_t_json(id: u64, size_t: u32) -> Value {
    let times = if size_t > 1 {
        vec![0; size_t as usize]
    } else {
        Vec::new()
    };
    json!({"delta_t": times, "delta_t_unit_symbol": null, "image_id": id.to_string()})
}

/// `plane_shape_counts`' answer for an image without shapes: a zero per (z, t).
pub fn plane_shape_counts_json(size_z: u32, size_t: u32) -> Value {
    json!({"data": vec![vec![0; size_t as usize]; size_z as usize]})
}

/// `rois_by_plane`'s answer: no ROIs on any plane.
pub fn no_rois_json() -> Value {
    json!({"data": [], "meta": {"totalCount": 0}})
}

/// `shape_stats/?ids=…&z=…&t=…`: the view's parameter checks, then no statistics,
/// since no shape exists here to measure.
pub fn shape_stats(query: &str) -> Response {
    let pairs = query_pairs(query);
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let (Some(ids), Some(z), Some(t)) = (get("ids"), get("z"), get("t")) else {
        return json_response(
            200,
            &json!({"error": "Parameters ids, z and t are mandatory"}),
        );
    };
    let ids: Result<Vec<u64>, _> = ids
        .split(',')
        .filter(|id| !id.is_empty())
        .map(|id| id.rsplit(':').next().unwrap_or(id).parse::<u64>())
        .collect();
    let (Ok(ids), Ok(_), Ok(_)) = (ids, z.parse::<i64>(), t.parse::<i64>()) else {
        return json_response(200, &json!({"error": "Invalid Parameter types"}));
    };
    match ids.first() {
        None => json_response(200, &json!({})),
        Some(id) => json_response(
            200,
            &json!({"error": format!("No shape with ID {id}: this site stores no ROIs")}),
        ),
    }
}

/// `well_images/?id=…`: no image here is in a well, so every well is empty.
pub fn well_images(query: &str) -> Response {
    if !query_pairs(query).iter().any(|(k, _)| k == "id") {
        return json_response(200, &json!({"error": "No well id provided."}));
    }
    json_response(200, &no_rois_json())
}

/// `save_projection/` and `persist_rois/`: the repository is read-only to the web, so
/// nothing is saved; the refusal in the shape each view reports errors in (iviewer
/// shows it).
pub fn read_only(view: &str) -> Response {
    let message =
        "This site's images are files served read-only: projections and ROIs cannot be saved.";
    if view == "persist_rois" {
        json_response(200, &json!({"errors": [message]}))
    } else {
        json_response(200, &json!({"error": message}))
    }
}

/// `roi|shape/<id>/page_data/` and `.../image_data/` for an ID that names nothing: no
/// ROI exists here. omero-iviewer's views raise `Http404("Could not find <kind>: <id>")`
/// for a shape they cannot find (for an ROI, OMERO's query service throws, which
/// Django answers 500; a 404 naming it says the same thing more truthfully). iviewer
/// only asks `page_data` for an image with more ROIs than a page, and `image_data` when
/// opened with `?roi=`/`?shape=`; it reports the failure and stays usable.
pub fn no_such_roi(kind: &str, id: u64) -> Response {
    app::text(404, format!("Could not find {kind}: {id}\n"))
}

/// How far around the point `get_intensity` reads (its `QUERY_DISTANCE`).
const INTENSITY_DISTANCE: u32 = 25;

/// `get_intensity`'s parameters, checked as its view checks them.
struct IntensityQuery {
    image: u64,
    x: i64,
    y: i64,
    z: i64,
    t: i64,
    channels: String,
}

impl IntensityQuery {
    fn parse(query: &str) -> Result<IntensityQuery, &'static str> {
        let pairs = query_pairs(query);
        let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim());
        const MANDATORY: &str = "Mandatory params are: image, x, y, c, z and t";
        let (Some(image), Some(x), Some(y), Some(c), Some(z), Some(t)) = (
            get("image"),
            get("x"),
            get("y"),
            get("c"),
            get("z"),
            get("t"),
        ) else {
            return Err(MANDATORY);
        };
        // Python's int(float(v)): a fraction is cut towards zero.
        let number = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(|f| f as i64)
        };
        match (image.parse(), number(x), number(y), number(z), number(t)) {
            (Ok(image), Some(x), Some(y), Some(z), Some(t)) => Ok(IntensityQuery {
                image,
                x,
                y,
                z,
                t,
                channels: c.to_string(),
            }),
            _ => Err("image must be an ID and x, y, z, t numbers"),
        }
    }
}

/// The values around (x, y) of the asked channels, keyed `"<col>-<row>"` then by
/// channel, as iviewer's `get_intensity` returns them.
fn intensity_json(
    meta: &crate::gateway::imaging::source::ImageMeta,
    q: &IntensityQuery,
    read: impl Fn(
        u32,
        &[u32],
        u32,
        crate::gateway::imaging::source::Region,
    ) -> Result<Vec<crate::gateway::imaging::source::Plane>, String>,
) -> Value {
    let inside = |v: i64, size: u32| v >= 0 && v < i64::from(size);
    if !(inside(q.x, meta.size_x)
        && inside(q.y, meta.size_y)
        && inside(q.z, meta.size_z)
        && inside(q.t, meta.size_t))
    {
        return json!({"error": "Either one or more x, y, z, t are out of bounds"});
    }
    let mut channels = Vec::new();
    for token in q.channels.split(',') {
        let Ok(c) = token.trim().parse::<i64>() else {
            return json!({"error": "The channels have to be a comma separated string"});
        };
        if !inside(c, meta.size_c) {
            return json!({"error": "One or more channels are out of bounds"});
        }
        channels.push(c as u32);
    }
    let (x, y) = (q.x as u32, q.y as u32);
    let x0 = x.saturating_sub(INTENSITY_DISTANCE);
    let y0 = y.saturating_sub(INTENSITY_DISTANCE);
    let side = 2 * INTENSITY_DISTANCE + 1;
    let region = crate::gateway::imaging::source::Region {
        x: x0,
        y: y0,
        width: side.min(meta.size_x - x0),
        height: side.min(meta.size_y - y0),
    };
    let planes = match read(q.z as u32, &channels, q.t as u32, region) {
        Ok(planes) => planes,
        Err(e) => return json!({"error": e}),
    };
    let mut pixels = serde_json::Map::new();
    let mut count = 0;
    for (c, plane) in channels.iter().zip(&planes) {
        for row in 0..plane.height {
            for col in 0..plane.width {
                let value = plane.data[(row * plane.width + col) as usize];
                let key = format!("{}-{}", region.x + col, region.y + row);
                let entry = pixels.entry(key).or_insert_with(|| json!({}));
                entry[c.to_string()] = json!(value);
                count += 1;
            }
        }
    }
    json!({"count": count, "pixels": pixels})
}

impl Gateway {
    /// `image_data/<id>/delta_t/`.
    pub(in crate::gateway) async fn iviewer_delta_t(self: Arc<Self>, id: u64) -> Response {
        match self.open_image(id).await {
            Ok((_, source)) => json_response(200, &delta_t_json(id, source.meta().size_t)),
            Err(_) => json_response(404, &json!({"error": "Image not found"})),
        }
    }

    /// `rois_by_plane/…` (`counts` false) and `plane_shape_counts/<id>/` (true).
    pub(in crate::gateway) async fn iviewer_no_rois(
        self: Arc<Self>,
        id: u64,
        counts: bool,
    ) -> Response {
        match self.open_image(id).await {
            Ok(_) if !counts => json_response(200, &no_rois_json()),
            Ok((_, source)) => {
                let meta = source.meta();
                json_response(200, &plane_shape_counts_json(meta.size_z, meta.size_t))
            }
            Err(_) => json_response(404, &json!({"error": "Image not found"})),
        }
    }

    /// `get_intensity/?image=…&x=…&y=…&z=…&t=…&c=…`.
    pub(in crate::gateway) async fn iviewer_intensity(self: Arc<Self>, query: &str) -> Response {
        let q = match IntensityQuery::parse(query) {
            Ok(q) => q,
            Err(message) => return json_response(200, &json!({"error": message})),
        };
        let source = match self.open_image(q.image).await {
            Ok((_, source)) => source,
            Err(_) => return json_response(404, &json!({"error": "Image not Found"})),
        };
        let answer = crate::http_app::blocking::spawn_blocking(
            format!("image {} (intensity)", q.image),
            move || {
                intensity_json(source.meta(), &q, |z, channels, t, region| {
                    source
                        .read_planes(z, channels, t, Some(region))
                        .map_err(|e| e.to_string())
                })
            },
        )
        .await;
        match answer {
            Ok(value) => json_response(200, &value),
            Err(e) => json_response(500, &json!({"error": e.to_string()})),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: Response) -> Value {
        use http_body_util::BodyExt;
        let bytes = block_on(response.into_body().collect())
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("JSON")
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn views_about_rois_time_and_wells_answer_as_for_an_image_with_none() {
        assert_eq!(
            delta_t_json(4, 3),
            json!({"delta_t": [0, 0, 0], "delta_t_unit_symbol": null, "image_id": "4"})
        );
        assert_eq!(delta_t_json(4, 1)["delta_t"], json!([]));
        assert_eq!(
            plane_shape_counts_json(2, 3),
            json!({"data": [[0, 0, 0], [0, 0, 0]]})
        );
        assert_eq!(
            no_rois_json(),
            json!({"data": [], "meta": {"totalCount": 0}})
        );
        assert_eq!(
            body(well_images("")),
            json!({"error": "No well id provided."})
        );
        assert_eq!(body(well_images("id=3")), no_rois_json());
        assert_eq!(
            body(shape_stats("ids=1")),
            json!({"error": "Parameters ids, z and t are mandatory"})
        );
        assert_eq!(
            body(shape_stats("ids=a&z=0&t=0")),
            json!({"error": "Invalid Parameter types"})
        );
        assert_eq!(body(shape_stats("ids=&z=0&t=0")), json!({}));
        assert!(
            body(shape_stats("ids=5:9&z=0&t=0"))["error"]
                .as_str()
                .is_some_and(|e| e.contains("No shape with ID 9"))
        );
        assert!(
            body(read_only("persist_rois"))["errors"][0]
                .as_str()
                .is_some_and(|e| e.contains("read-only"))
        );
        assert!(
            body(read_only("save_projection"))["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot be saved"))
        );
    }

    #[test]
    fn intensity_reads_around_the_point_within_the_image() {
        let meta = crate::gateway::imaging::source::ImageMeta {
            name: "a".into(),
            size_x: 100,
            size_y: 2,
            size_z: 1,
            size_c: 2,
            size_t: 1,
            pixel_type: crate::gateway::imaging::source::PixelType::U16,
            channels: Vec::new(),
            physical_size_um: [None; 3],
            rgb: false,
        };
        // Pixel value = 100·channel + x + 10·y.
        let read =
            |_z: u32, channels: &[u32], _t: u32, r: crate::gateway::imaging::source::Region| {
                Ok(channels
                    .iter()
                    .map(|&c| crate::gateway::imaging::source::Plane {
                        width: r.width,
                        height: r.height,
                        data: (0..r.height)
                            .flat_map(|y| {
                                (0..r.width)
                                    .map(move |x| (100 * c + r.x + x + 10 * (r.y + y)) as u16)
                            })
                            .collect(),
                    })
                    .collect())
            };
        let q = IntensityQuery::parse("image=1&x=2.7&y=1&z=0&t=0&c=1,0").expect("valid");
        let value = intensity_json(&meta, &q, read);
        // As OMERO: 51 columns from max(x - 25, 0) (here 0..=50), rows 0..=1 (cut at
        // the image's edge), two channels.
        assert_eq!(value["count"], json!(51 * 2 * 2), "{value}");
        assert_eq!(value["pixels"]["2-1"], json!({"0": 12, "1": 112}));
        assert_eq!(value["pixels"]["50-0"]["1"], json!(150));
        assert!(value["pixels"].get("51-0").is_none());
        let out = IntensityQuery::parse("image=1&x=100&y=0&z=0&t=0&c=0").expect("valid");
        assert_eq!(
            intensity_json(&meta, &out, read)["error"],
            json!("Either one or more x, y, z, t are out of bounds")
        );
        let channel = IntensityQuery::parse("image=1&x=0&y=0&z=0&t=0&c=2").expect("valid");
        assert_eq!(
            intensity_json(&meta, &channel, read)["error"],
            json!("One or more channels are out of bounds")
        );
        assert_eq!(
            IntensityQuery::parse("image=1&x=0").err(),
            Some("Mandatory params are: image, x, y, c, z and t")
        );
    }
}
