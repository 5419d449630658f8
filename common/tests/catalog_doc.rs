//! docs/CATALOG.md is generated from the catalog: this fails when it is stale.
//! Regenerate with `just docs` (or `cargo run -p baddybugs-ingest -- catalog --markdown > docs/CATALOG.md`).

#[test]
fn catalog_doc_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CATALOG.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = baddybugs_common::catalog::catalog_markdown();
    assert!(
        on_disk == generated,
        "docs/CATALOG.md is stale: run `just docs` (cargo run -p baddybugs-ingest -- catalog --markdown > docs/CATALOG.md)"
    );
}
