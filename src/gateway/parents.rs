//! An image's parents in the folder hierarchy (`api` documents the mapping), in the two
//! shapes OMERO's clients read them: imgData's `meta` (`projectId`, `datasetId`, …, as
//! omero-web's `imageMarshal` fills them) and webclient's `api/paths_to_object/`
//! (omero-web's `show.paths_to_object`), which OMERO.iviewer's thumbnail strip follows
//! to the dataset whose images it lists.

use serde_json::{Value, json};

use crate::gateway::http::api::{PUBLIC_USER_ID, Placed, container_id, dataset_name, place};

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
