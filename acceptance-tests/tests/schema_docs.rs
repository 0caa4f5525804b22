//! `schemas/` and `docs/` must match the built provider.

use acceptance_tests::{docs, tools};

#[test]
fn schema_file_matches_terraform_providers_schema() {
    let live = docs::live_schema();
    let stored: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tools::repo_root().join(docs::SCHEMA_FILE)).unwrap(),
    )
    .unwrap();
    assert!(
        live == stored,
        "schemas/schema.json is out of date: run `make docs`"
    );
}

#[test]
fn every_attribute_and_block_has_a_description() {
    fn walk(block: &serde_json::Value, at: &str, missing: &mut Vec<String>) {
        if block["description"].as_str().unwrap_or_default().is_empty() {
            missing.push(format!("{at} (block)"));
        }
        for (name, attr) in block["attributes"].as_object().into_iter().flatten() {
            if attr["description"].as_str().unwrap_or_default().is_empty() {
                missing.push(format!("{at}.{name}"));
            }
        }
        for (name, nested) in block["block_types"].as_object().into_iter().flatten() {
            walk(&nested["block"], &format!("{at}.{name}"), missing);
        }
    }
    let stored: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tools::repo_root().join(docs::SCHEMA_FILE)).unwrap(),
    )
    .unwrap();
    let mut missing = Vec::new();
    for provider in stored["provider_schemas"].as_object().unwrap().values() {
        for (name, resource) in provider["resource_schemas"].as_object().unwrap() {
            walk(&resource["block"], name, &mut missing);
        }
    }
    assert!(missing.is_empty(), "undocumented: {missing:?}");
}

#[test]
fn docs_are_generated_from_the_current_schema_and_examples() {
    let root = tools::repo_root();
    let expected = docs::generate(&root);
    assert!(expected.contains_key("docs/index.md"));
    // Every generated page is current, and no page is left of a resource
    // the provider no longer has (guides are written by hand).
    let present: Vec<String> = std::fs::read_dir(root.join("docs/resources"))
        .unwrap()
        .map(|entry| {
            format!(
                "docs/resources/{}",
                entry.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    for path in &present {
        assert!(
            expected.contains_key(path),
            "{path} is no resource's page: remove it, or run `make docs`"
        );
    }
    for (path, content) in expected {
        let actual = std::fs::read_to_string(root.join(&path)).unwrap_or_default();
        assert!(actual == content, "{path} is stale: run `make docs`");
    }
}
