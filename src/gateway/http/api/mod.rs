//! OMERO's JSON API (`/api/`, `/api/v0/`, `m/projects`, `m/datasets`, `m/images`, their
//! children and single objects) over the repository's folders, in omero-marshal's
//! shape (`@id`, `@type` schema URIs, `omero:details`, `url:…` links) with OMERO's
//! paging (`limit` default 200, at most 500; `offset`; `meta.totalCount`).
//!
//! Folders as OMERO's hierarchy (projects, datasets, their IDs): see `gateway::parents`.

use serde_json::{Value, json};

use crate::gateway::parents::{PUBLIC_USER_ID, Placed, container_id, dataset_name, place};

pub mod session;

pub const SCHEMA: &str = "http://www.openmicroscopy.org/Schemas/OME/2016-06";
/// The one group of a site without logins (`api_session`); its user is
/// `parents::PUBLIC_USER_ID`.
pub const PUBLIC_GROUP_ID: u64 = 0;
const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 500;

fn details() -> Value {
    json!({
        "@type": "TBD#Details",
        "owner": {"@id": PUBLIC_USER_ID, "@type": format!("{SCHEMA}#Experimenter"), "FirstName": "", "LastName": "", "UserName": "public"},
        "group": {"@id": PUBLIC_GROUP_ID, "@type": format!("{SCHEMA}#ExperimenterGroup"), "Name": "public"},
        "permissions": {
            "@type": "TBD#Permissions", "perm": "r-r---",
            "canAnnotate": false, "canDelete": false, "canEdit": false, "canLink": false,
            "isWorldWrite": false, "isWorldRead": false, "isGroupWrite": false,
            "isGroupRead": true, "isGroupAnnotate": false, "isUserWrite": true, "isUserRead": true,
        },
    })
}

/// What a request asks of the API, with the site's base URL (`http://host/prefix`).
pub struct ApiRequest<'a> {
    /// The path below `/api/`, without slashes at the ends.
    pub path: &'a str,
    pub base: &'a str,
    pub limit: Option<&'a str>,
    pub offset: Option<&'a str>,
    /// A POST (`login/`).
    pub post: bool,
}

/// The status and JSON body for `request` over `images` (id, path), or None for a
/// path the API does not have (the caller's 404 page).
pub fn answer(request: &ApiRequest, images: &[(u64, String)]) -> Option<(u16, Value)> {
    let base = request.base;
    let v0 = format!("{base}/api/v0");
    let parts: Vec<&str> = request.path.split('/').filter(|p| !p.is_empty()).collect();
    let placed = place(images);
    let url = |name: &str| format!("{v0}/{name}/");
    match parts.as_slice() {
        [] => {
            return Some((
                200,
                json!({"data": [{"version": "0", "url:base": format!("{v0}/")}]}),
            ));
        }
        ["v0"] => {
            let mut rv = serde_json::Map::new();
            for name in [
                "experimenters",
                "experimentergroups",
                "projects",
                "datasets",
                "images",
                "screens",
                "plates",
                "rois",
            ] {
                rv.insert(format!("url:{name}"), json!(url(&format!("m/{name}"))));
            }
            for name in ["token", "servers", "login"] {
                rv.insert(format!("url:{name}"), json!(url(name)));
            }
            rv.insert("url:save".into(), json!(url("m/save")));
            rv.insert("url:schema".into(), json!(format!("{SCHEMA}/ome.xsd")));
            return Some((200, Value::Object(rv)));
        }
        _ => {}
    }
    let (offset, limit) = match paging(request) {
        Ok(p) => p,
        Err(message) => return Some((400, json!({"message": message}))),
    };
    // Projects and datasets, by name as OMERO orders them (lower(name)).
    let mut projects: Vec<String> = placed.iter().filter_map(|p| p.project.clone()).collect();
    projects.sort_by_key(|p| (p.to_lowercase(), p.clone()));
    projects.dedup();
    let mut datasets: Vec<(String, Option<String>)> = placed
        .iter()
        .filter_map(|p| p.dataset.clone().map(|d| (d, p.project.clone())))
        .collect();
    datasets.sort_by_key(|(d, _)| (dataset_name(d).to_lowercase(), d.clone()));
    datasets.dedup();
    let mut ordered = placed.clone();
    ordered.sort_by_key(|p| (p.name.to_lowercase(), p.id));

    let project_json = |path: &str| {
        let id = container_id("project", path);
        json!({
            "@id": id, "@type": format!("{SCHEMA}#Project"), "Name": path,
            "omero:details": details(),
            "omero:childCount": datasets.iter().filter(|(_, p)| p.as_deref() == Some(path)).count(),
            "url:datasets": url(&format!("m/projects/{id}/datasets")),
            "url:project": url(&format!("m/projects/{id}")),
        })
    };
    let dataset_json = |path: &str| {
        let id = container_id("dataset", path);
        json!({
            "@id": id, "@type": format!("{SCHEMA}#Dataset"), "Name": dataset_name(path),
            "omero:details": details(),
            "omero:childCount": placed.iter().filter(|p| p.dataset.as_deref() == Some(path)).count(),
            "url:images": url(&format!("m/datasets/{id}/images")),
            "url:dataset": url(&format!("m/datasets/{id}")),
            "url:projects": url(&format!("m/datasets/{id}/projects")),
        })
    };
    let image_json = |p: &Placed| {
        json!({
            "@id": p.id, "@type": format!("{SCHEMA}#Image"), "Name": p.name,
            "omero:details": details(),
            "url:image": url(&format!("m/images/{}", p.id)),
            "url:datasets": url(&format!("m/images/{}/datasets", p.id)),
            "url:rois": url(&format!("m/images/{}/rois", p.id)),
        })
    };
    let list = |items: Vec<Value>| {
        let total = items.len();
        let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
        (
            200,
            json!({"data": page, "meta": {"offset": offset, "limit": limit, "maxLimit": MAX_LIMIT, "totalCount": total}}),
        )
    };
    let not_found =
        |kind: &str, id: &str| (404, json!({"message": format!("{kind} {id} not found")}));
    let project_of = |id: &str| {
        projects
            .iter()
            .find(|p| id.parse() == Ok(container_id("project", p)))
    };
    let dataset_of = |id: &str| {
        datasets
            .iter()
            .find(|(d, _)| id.parse() == Ok(container_id("dataset", d)))
    };
    Some(match parts.as_slice() {
        ["v0", "m", "projects"] => list(projects.iter().map(|p| project_json(p)).collect()),
        ["v0", "m", "projects", id] => match project_of(id) {
            Some(p) => (200, json!({"data": project_json(p)})),
            None => not_found("Project", id),
        },
        ["v0", "m", "projects", id, "datasets"] => match project_of(id) {
            Some(p) => list(
                datasets
                    .iter()
                    .filter(|(_, owner)| owner.as_deref() == Some(p.as_str()))
                    .map(|(d, _)| dataset_json(d))
                    .collect(),
            ),
            None => list(Vec::new()),
        },
        ["v0", "m", "datasets"] => list(datasets.iter().map(|(d, _)| dataset_json(d)).collect()),
        ["v0", "m", "datasets", id] => match dataset_of(id) {
            Some((d, _)) => (200, json!({"data": dataset_json(d)})),
            None => not_found("Dataset", id),
        },
        ["v0", "m", "datasets", id, "images"] => match dataset_of(id) {
            Some((d, _)) => list(
                ordered
                    .iter()
                    .filter(|p| p.dataset.as_deref() == Some(d.as_str()))
                    .map(image_json)
                    .collect(),
            ),
            None => list(Vec::new()),
        },
        ["v0", "m", "datasets", id, "projects"] => match dataset_of(id) {
            Some((_, Some(p))) => list(vec![project_json(p)]),
            _ => list(Vec::new()),
        },
        ["v0", "m", "images"] => list(ordered.iter().map(image_json).collect()),
        ["v0", "m", "images", id] => match ordered.iter().find(|p| id.parse() == Ok(p.id)) {
            Some(p) => (200, json!({"data": image_json(p)})),
            None => not_found("Image", id),
        },
        ["v0", "m", "images", id, "datasets"] => {
            match ordered
                .iter()
                .find(|p| id.parse() == Ok(p.id))
                .and_then(|p| p.dataset.clone())
            {
                Some(d) => list(vec![dataset_json(&d)]),
                None => list(Vec::new()),
            }
        }
        // ROIs: none exist here, for any image.
        ["v0", "m", "images", _, "rois"] | ["v0", "m", "rois"] | ["v0", "m", "shapes"] => {
            list(Vec::new())
        }
        _ => {
            return crate::gateway::http::api::session::answer(
                &crate::gateway::http::api::session::SessionRequest {
                    parts: &parts,
                    v0: &v0,
                    post: request.post,
                    paging: (offset, limit),
                    max_limit: MAX_LIMIT,
                },
            );
        }
    })
}

/// (offset, limit) as OMERO reads them: integers, limit at most 500.
fn paging(request: &ApiRequest) -> Result<(usize, usize), String> {
    let int = |v: Option<&str>, default: usize| -> Result<usize, String> {
        match v {
            None | Some("") => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("invalid literal for int() with base 10: '{v}'")),
        }
    };
    let offset = int(request.offset, 0)?;
    let limit = int(request.limit, DEFAULT_LIMIT)?.min(MAX_LIMIT);
    Ok((offset, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_map_to_projects_datasets_and_orphans() {
        let placed = place(&[
            (1, "top.tif".into()),
            (2, "exp1/a.tif".into()),
            (3, "exp2/day1/b.tif".into()),
            (4, "exp2/day1/deep/c.tif".into()),
        ]);
        assert_eq!(placed[0].dataset, None);
        assert_eq!(
            (placed[1].project.as_deref(), placed[1].dataset.as_deref()),
            (None, Some("exp1"))
        );
        assert_eq!(
            (placed[2].project.as_deref(), placed[2].dataset.as_deref()),
            (Some("exp2"), Some("exp2/day1"))
        );
        assert_eq!(placed[3].name, "deep/c.tif");
        assert_eq!(
            container_id("dataset", "exp2/day1"),
            container_id("dataset", "exp2/day1")
        );
        assert_ne!(
            container_id("dataset", "exp1"),
            container_id("project", "exp1")
        );
        assert!(container_id("project", "x") < 1 << 53);
    }
}
