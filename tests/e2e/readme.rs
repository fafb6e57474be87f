//! The property reference (docs/properties.md) is generated from the registry; this keeps it so.

const START: &str = "<!-- properties:start -->\n";
const END: &str = "<!-- properties:end -->";

#[test]
fn property_reference_matches_the_registry() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/properties.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme.find(START).expect("start marker") + START.len();
    let end = readme.find(END).expect("end marker");
    let current = &readme[start..end];
    let wanted = omero_webctl::config::registry::markdown_reference();
    if current != wanted && std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{}{}", &readme[..start], wanted, &readme[end..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert!(
        current == wanted,
        "docs/properties.md is stale: run UPDATE_README=1 cargo test --test e2e readme::"
    );
}
