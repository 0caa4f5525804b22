//! Generates `docs/` (Terraform Registry layout) from the provider schema in
//! `schemas/` and the configurations in `examples/`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

/// The provider schema file, as `terraform providers schema -json` prints it
/// with the provider's key reduced to its source address without host.
pub const SCHEMA_FILE: &str = "schemas/schema.json";

/// `terraform providers schema -json` output with the provider's key
/// reduced to its source address, as stored in [`SCHEMA_FILE`].
pub fn normalise_schema(mut raw: Value) -> Value {
    if let Some(providers) = raw["provider_schemas"].as_object_mut() {
        let entries: Vec<(String, Value)> = std::mem::take(providers).into_iter().collect();
        for (key, value) in entries {
            let short = key
                .split_once('/')
                .map_or(key.as_str(), |(_, rest)| rest)
                .to_string();
            providers.insert(short, value);
        }
    }
    raw
}

/// The provider schema as the newest Terraform prints it for the built provider.
pub fn live_schema() -> Value {
    // The newest Terraform: older ones do not show write-only attributes.
    let terraform = crate::tools::newest_terraform();
    let ws = crate::terraform::Workspace::new(
        &terraform,
        crate::terraform::Install::FilesystemMirror,
        &format!(
            "terraform {{\n  required_providers {{\n    etcd = {{ source = \"{}\" }}\n  }}\n}}\n",
            crate::terraform::PROVIDER_SOURCE
        ),
    );
    let run = ws.run_ok(&["providers", "schema", "-json"]);
    normalise_schema(serde_json::from_str(&run.stdout).expect("schema JSON"))
}

/// Every generated file: path relative to the repo root, and its content.
pub fn generate(root: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root.join(SCHEMA_FILE)).expect("schemas/schema.json");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let provider = schema["provider_schemas"]
        .as_object()
        .and_then(|m| m.values().next())
        .expect("one provider");
    let mut files = BTreeMap::new();
    files.insert("docs/index.md".to_string(), index(root, provider));
    if let Some(resources) = provider["resource_schemas"].as_object() {
        for (name, resource) in resources {
            files.insert(
                format!("docs/resources/{}.md", short_name(name)),
                resource_page(root, name, resource),
            );
        }
    }
    files
}

fn short_name(name: &str) -> &str {
    name.strip_prefix("etcd_").unwrap_or(name)
}

/// The `examples/` directory that shows a resource.
fn example_dir(name: &str) -> &str {
    match name {
        "etcd_cluster" => "cluster-3",
        "etcd_client_certificate" => "kubernetes-external-etcd",
        "etcd_role" | "etcd_user" => "shared-cluster",
        other => short_name(other),
    }
}

fn example_of(root: &Path, dir: &str) -> Option<String> {
    std::fs::read_to_string(root.join("examples").join(dir).join("main.tf")).ok()
}

fn index(root: &Path, provider: &Value) -> String {
    let mut out = String::from("---\npage_title: \"etcd Provider\"\ndescription: |-\n  Builds and runs highly available etcd clusters on plain Linux hosts over SSH.\n---\n\n# etcd Provider\n\n");
    out.push_str(
        provider["provider"]["block"]["description"]
            .as_str()
            .unwrap_or_default(),
    );
    out.push_str("\n\nThe provider builds etcd clusters on Linux hosts with systemd and sshd: it issues the \
                  certificates, installs etcd, writes its configuration and systemd unit, and keeps the live \
                  member list in line with the configuration. Its resources:\n\n");
    if let Some(resources) = provider["resource_schemas"].as_object() {
        for name in resources.keys() {
            let _ = writeln!(out, "- [`{name}`](resources/{}.md)", short_name(name));
        }
    }
    let guides = guides(root);
    if !guides.is_empty() {
        out.push_str("\nGuides:\n\n");
        for (file, title) in guides {
            let _ = writeln!(out, "- [{title}](guides/{file})");
        }
    }
    out.push_str(
        "\n## Terraform versions\n\nThe provider speaks plugin protocol 6, so it needs Terraform 1.0 or later. \
         Its acceptance tests run against Terraform 1.15.5, 1.11.4 and 1.0.3.\n",
    );
    if let Some(example) = example_of(root, "ca") {
        let _ = write!(out, "\n## Example Usage\n\n```terraform\n{}```\n", example);
    }
    if let Some(example) = example_of(root, "ca-key-outside-state") {
        let _ = write!(
            out,
            "\n### The CA key outside state\n\n```terraform\n{}```\n",
            example
        );
    }
    out.push_str("\n<!-- schema generated from schemas/schema.json -->\n## Schema\n");
    write_block(&mut out, &provider["provider"]["block"], "");
    out
}

/// The hand-written pages in `docs/guides/`: file name and `page_title`.
fn guides(root: &Path) -> Vec<(String, String)> {
    let mut guides: Vec<(String, String)> = std::fs::read_dir(root.join("docs").join("guides"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(entry.path()).ok()?;
            let title = text
                .lines()
                .find_map(|l| l.strip_prefix("page_title: "))?
                .trim_matches('"')
                .to_string();
            file.ends_with(".md").then_some((file, title))
        })
        .collect();
    guides.sort();
    guides
}

fn resource_page(root: &Path, name: &str, resource: &Value) -> String {
    let block = &resource["block"];
    let description = block["description"].as_str().unwrap_or_default();
    let mut out = format!(
        "---\npage_title: \"{name} Resource - etcd\"\nsubcategory: \"\"\ndescription: |-\n  {}\n---\n\n# {name} (Resource)\n\n{description}\n",
        description.lines().next().unwrap_or_default()
    );
    let dir = example_dir(name);
    if let Some(example) = example_of(root, dir) {
        let _ = write!(out, "\n## Example Usage\n\n```terraform\n{example}```\n");
    }
    if let Ok(import) = std::fs::read_to_string(root.join("examples").join(dir).join("import.sh")) {
        let _ = write!(out, "\n## Import\n\n```shell\n{import}```\n");
    }
    out.push_str("\n<!-- schema generated from schemas/schema.json -->\n## Schema\n");
    write_block(&mut out, block, "");
    out
}

fn write_block(out: &mut String, block: &Value, prefix: &str) {
    let attrs = block["attributes"].as_object().cloned().unwrap_or_default();
    type Belongs = fn(&Value) -> bool;
    let groups: [(&str, Belongs); 3] = [
        ("Required", |a| a["required"] == true),
        ("Optional", |a| a["optional"] == true),
        ("Read-Only", |a| {
            a["computed"] == true && a["optional"] != true
        }),
    ];
    for (title, belongs) in groups {
        let members: Vec<_> = attrs.iter().filter(|(_, a)| belongs(a)).collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n### {title}{}\n",
            if prefix.is_empty() {
                String::new()
            } else {
                format!(" in `{prefix}`")
            }
        );
        for (name, attr) in members {
            let sensitive = match (attr["sensitive"] == true, attr["write_only"] == true) {
                (true, true) => ", Sensitive, Write-only",
                (true, false) => ", Sensitive",
                (false, true) => ", Write-only",
                (false, false) => "",
            };
            let _ = writeln!(
                out,
                "- `{name}` ({}{sensitive}) {}",
                type_name(&attr["type"]),
                attr["description"].as_str().unwrap_or_default()
            );
        }
    }
    if let Some(blocks) = block["block_types"].as_object() {
        for (name, nested) in blocks {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let _ = writeln!(
                out,
                "\n### Block `{path}` ({}{})\n\n{}",
                nested["nesting_mode"].as_str().unwrap_or("single"),
                nested["min_items"]
                    .as_i64()
                    .map(|n| format!(", at least {n}"))
                    .unwrap_or_default(),
                nested["block"]["description"].as_str().unwrap_or_default()
            );
            write_block(out, &nested["block"], &path);
        }
    }
}

fn type_name(ty: &Value) -> String {
    match ty {
        Value::String(s) => s.clone(),
        Value::Array(parts) if parts.len() == 2 => format!(
            "{} of {}",
            parts[0].as_str().unwrap_or(""),
            type_name(&parts[1])
        ),
        other => other.to_string(),
    }
}
