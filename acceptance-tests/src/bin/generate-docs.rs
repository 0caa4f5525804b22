//! Writes `schemas/schema.json` from the built provider (through Terraform
//! 1.0.3), then `docs/` from it and `examples/`. Run by `make docs`.

use acceptance_tests::docs;

fn main() {
    let root = acceptance_tests::tools::repo_root();
    let schema =
        serde_json::to_string_pretty(&docs::live_schema()).expect("schema serialises") + "\n";
    std::fs::create_dir_all(root.join("schemas")).expect("create schemas/");
    std::fs::write(root.join(docs::SCHEMA_FILE), schema).expect("write schema");
    println!("wrote {}", docs::SCHEMA_FILE);
    for (path, content) in docs::generate(&root) {
        let target = root.join(&path);
        std::fs::create_dir_all(target.parent().expect("docs path has a parent"))
            .expect("create docs dir");
        std::fs::write(&target, content).expect("write doc");
        println!("wrote {path}");
    }
}
