//! An image's parents in the folder hierarchy, in the two shapes OMERO's clients read
//! them: imgData's `meta` (`projectId`, `datasetId`, …, as omero-web's `imageMarshal`
//! fills them) and webclient's `api/paths_to_object/` (omero-web's
//! `show.paths_to_object`), which OMERO.iviewer's thumbnail strip follows to the
//! dataset whose images it lists.
//!
//! Folders as OMERO's hierarchy: `A/B/…/f.tif` is image `…/f.tif` (the path below B)
//! in dataset `B` of project `A`; `A/f.tif` is image `f.tif` in dataset `A`, which
//! belongs to no project; `f.tif` at the top is an orphaned image. Project and dataset
//! IDs are derived from their path (a 52-bit hash, stable across restarts and the same
//! in every worker, with no file to keep in step); image IDs are the repository's.
//! The JSON API (`http::api`) lists the same hierarchy.

use serde_json::{Value, json};

/// The one user of a site without logins (`http::api::session`): every object's
/// owner.
pub const PUBLIC_USER_ID: u64 = 0;

/// An image's place in the hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub id: u64,
    /// The image's name: the file, or its path below the dataset's folder.
    pub name: String,
    pub project: Option<String>,
    /// The dataset's folder path (`A/B` or `A`).
    pub dataset: Option<String>,
}

/// Places each (id, path inside the repository).
pub fn place(images: &[(u64, String)]) -> Vec<Placed> {
    images
        .iter()
        .map(|(id, path)| {
            let parts: Vec<&str> = path.split('/').collect();
            match parts.as_slice() {
                [file] => Placed {
                    id: *id,
                    name: file.to_string(),
                    project: None,
                    dataset: None,
                },
                [dir, file] => Placed {
                    id: *id,
                    name: file.to_string(),
                    project: None,
                    dataset: Some(dir.to_string()),
                },
                [project, dataset, rest @ ..] => Placed {
                    id: *id,
                    name: rest.join("/"),
                    project: Some(project.to_string()),
                    dataset: Some(format!("{project}/{dataset}")),
                },
                [] => unreachable!("split gives at least one part"),
            }
        })
        .collect()
}

/// A container's ID from its kind and path: FNV-1a, kept to 52 bits so JavaScript
/// clients hold it exactly, and never 0.
pub fn container_id(kind: &str, path: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in kind.bytes().chain([b':']).chain(path.bytes()) {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash & ((1 << 52) - 1)).max(1)
}

/// A dataset's name: its folder's own name.
pub fn dataset_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The project and dataset an image sits in: (id, name) each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parents {
    pub project: Option<(u64, String)>,
    pub dataset: Option<(u64, String)>,
}

impl Parents {
    /// The parents of the image at `relative` (its path inside the repository).
    pub fn of(relative: &str) -> Parents {
        let placed = place(&[(0, relative.to_string())]);
        parents_of(&placed[0])
    }

    /// imgData's `meta` fields for them: OMERO's "Multiple" and null when the image
    /// is in no (or more than one) dataset or project.
    pub fn fill_meta(&self, meta: &mut Value) {
        if let Some((id, name)) = &self.project {
            meta["projectId"] = json!(id);
            meta["projectName"] = json!(name);
        }
        if let Some((id, name)) = &self.dataset {
            meta["datasetId"] = json!(id);
            meta["datasetName"] = json!(name);
        }
    }
}

fn parents_of(placed: &Placed) -> Parents {
    Parents {
        project: placed
            .project
            .as_ref()
            .map(|p| (container_id("project", p), p.clone())),
        dataset: placed
            .dataset
            .as_ref()
            .map(|d| (container_id("dataset", d), dataset_name(d).to_string())),
    }
}

/// `paths_to_object/?image=<id>[&page_size=<n>]` over `images` (id, relative path, as
/// the viewer may see them): one path experimenter → [project →] dataset → image, or
/// experimenter → orphaned → image; none for an image the viewer does not see. The
/// dataset (or orphaned) step carries `childCount`, and when its images fill more than
/// one page `childIndex` and `childPage` (1-based), counted in the API's order of the
/// dataset's images (by name) so a client paging `m/datasets/<id>/images/` finds it.
pub fn paths_to_object(image: u64, images: &[(u64, String)], page_size: usize) -> Value {
    let placed = place(images);
    let Some(target) = placed.iter().find(|p| p.id == image) else {
        return json!({"paths": []});
    };
    let mut siblings: Vec<&Placed> = placed
        .iter()
        .filter(|p| p.dataset == target.dataset)
        .collect();
    siblings.sort_by_key(|p| (p.name.to_lowercase(), p.id));
    let index = siblings
        .iter()
        .position(|p| p.id == image)
        .expect("the image is among its own dataset's images");
    let parents = parents_of(target);
    let mut path = vec![json!({"type": "experimenter", "id": PUBLIC_USER_ID})];
    if let Some((id, _)) = parents.project {
        path.push(json!({"type": "project", "id": id}));
    }
    let mut container = match parents.dataset {
        Some((id, _)) => json!({"type": "dataset", "id": id, "childCount": siblings.len()}),
        None => json!({"type": "orphaned", "id": PUBLIC_USER_ID}),
    };
    let page_size = page_size.max(1);
    if siblings.len() > page_size {
        container["childCount"] = json!(siblings.len());
        container["childIndex"] = json!(index);
        container["childPage"] = json!(index / page_size + 1);
    }
    path.push(container);
    path.push(json!({"type": "image", "id": image}));
    json!({"paths": [path]})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> Vec<(u64, String)> {
        vec![
            (1, "top.tif".into()),
            (2, "exp1/b.tif".into()),
            (3, "exp1/a.tif".into()),
            (4, "exp2/day1/c.tif".into()),
        ]
    }

    #[test]
    fn an_image_in_a_projects_dataset_has_omeros_path() {
        let paths = paths_to_object(4, &images(), 200);
        let dataset = container_id("dataset", "exp2/day1");
        assert_eq!(
            paths,
            json!({"paths": [[
                {"type": "experimenter", "id": 0},
                {"type": "project", "id": container_id("project", "exp2")},
                {"type": "dataset", "id": dataset, "childCount": 1},
                {"type": "image", "id": 4},
            ]]})
        );
    }

    #[test]
    fn a_paged_dataset_gives_the_images_index_and_page_in_name_order() {
        // b.tif (id 2) comes after a.tif by name.
        let paths = paths_to_object(2, &images(), 1);
        let dataset = &paths["paths"][0][1];
        assert_eq!(dataset["id"], container_id("dataset", "exp1"));
        assert_eq!(dataset["childCount"], 2);
        assert_eq!(dataset["childIndex"], 1);
        assert_eq!(dataset["childPage"], 2);
        let unpaged = paths_to_object(2, &images(), 200);
        assert_eq!(unpaged["paths"][0][1].get("childIndex"), None);
    }

    #[test]
    fn an_orphan_and_an_unknown_image() {
        let paths = paths_to_object(1, &images(), 200);
        assert_eq!(
            paths["paths"][0][1],
            json!({"type": "orphaned", "id": PUBLIC_USER_ID})
        );
        assert_eq!(paths_to_object(99, &images(), 200), json!({"paths": []}));
    }

    #[test]
    fn imgdata_meta_names_the_dataset_and_project() {
        let mut meta = json!({"projectId": null, "projectName": "Multiple", "datasetId": null, "datasetName": "Multiple"});
        Parents::of("exp2/day1/c.tif").fill_meta(&mut meta);
        assert_eq!(meta["projectName"], "exp2");
        assert_eq!(meta["datasetName"], "day1");
        assert_eq!(meta["datasetId"], container_id("dataset", "exp2/day1"));
        let mut orphan = json!({"datasetId": null, "datasetName": "Multiple"});
        Parents::of("top.tif").fill_meta(&mut orphan);
        assert_eq!(orphan["datasetId"], Value::Null);
    }
}
