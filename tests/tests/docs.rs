//! The docs name the test that enforces each invariant they state (docs/ARCHITECTURE.md,
//! OPERATIONS.md, PROTOCOL.md …). A renamed or deleted test must not leave a sentence pointing at
//! nothing: every test the docs name must exist as a function of the workspace.
//!
//! What counts as a test name: a code span with `tests::` or `.rs::` in it (its last segment,
//! `dedup::tests::window_by_age_and_count`, `fleet.rs::a_fleet_with_…`), and a code span that is
//! one long snake-case name (five underscores or more: the way this project names tests) that is
//! not a metric (`…_total`, `…_seconds`, `…_bytes`). A name shortened with `…` must be the
//! start or the end of a function's name.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `fn NAME` of the workspace's sources.
fn function_names() -> HashSet<String> {
    let mut files = Vec::new();
    for dir in ["common", "server", "console", "fixtures", "tests"] {
        rust_files(&workspace().join(dir), &mut files);
    }
    let mut names = HashSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (at, _) in text.match_indices("fn ") {
            let name: String = text[at + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

fn is_snake(name: &str) -> bool {
    !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The test names a markdown text cites, from its code spans.
fn cited_tests(markdown: &str) -> Vec<String> {
    let mut cited = Vec::new();
    for (i, span) in markdown.split('`').enumerate() {
        if i % 2 == 0 || span.contains(char::is_whitespace) {
            continue;
        }
        let name = if span.contains("tests::") || span.contains(".rs::") {
            span.rsplit("::").next().unwrap_or_default()
        } else if span.matches('_').count() >= 5
            && !["_total", "_seconds", "_bytes"]
                .iter()
                .any(|metric| span.ends_with(metric))
        {
            span
        } else {
            continue;
        };
        // A name shortened with `…` at either end keeps its ellipsis: it must then be the
        // suffix or the prefix of a function (see `names_a_function`).
        let bare = name.trim_start_matches('…').trim_end_matches('…');
        if is_snake(bare) {
            cited.push(name.to_owned());
        }
    }
    cited
}

/// Whether a cited name is a function: exactly, or as the suffix (`…_on_clickhouse`) or the
/// prefix (`a_fleet_with_…`) of one when the docs shortened it.
fn names_a_function(cited: &str, functions: &HashSet<String>) -> bool {
    if let Some(suffix) = cited.strip_prefix('…') {
        functions.iter().any(|f| f.ends_with(suffix))
    } else if let Some(prefix) = cited.strip_suffix('…') {
        functions.iter().any(|f| f.starts_with(prefix))
    } else {
        functions.contains(cited)
    }
}

#[test]
fn a_shortened_name_must_still_end_or_start_a_function() {
    let functions: HashSet<String> = ["a_retry_is_stored_once_on_clickhouse".to_owned()].into();
    assert!(names_a_function("…_stored_once_on_clickhouse", &functions));
    assert!(names_a_function("a_retry_is_…", &functions));
    assert!(!names_a_function(
        "…_stored_twice_on_clickhouse",
        &functions
    ));
    assert!(!names_a_function("a_retry_was_…", &functions));
    assert_eq!(
        cited_tests("`fleet.rs::…_on_clickhouse`, `…an_unreadable_event_is_quarantined_with_its_reason`, `…_total`"),
        vec!["…_on_clickhouse", "…an_unreadable_event_is_quarantined_with_its_reason"]
    );
}

#[test]
fn a_code_span_names_a_test_by_its_last_segment() {
    let text = "see `dedup::tests::window_by_age_and_count`, `fleet.rs::a_b`, \
                `a_long_snake_case_test_name`, `sink::rows`, `ingest.max_body_bytes`, \
                `baddybugs_ingest_feed_dropped_batches_total` and `x y`";
    assert_eq!(
        cited_tests(text),
        vec![
            "window_by_age_and_count",
            "a_b",
            "a_long_snake_case_test_name"
        ]
    );
}

#[test]
fn every_test_the_docs_name_exists() {
    let functions = function_names();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(workspace().join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.push(workspace().join("README.md"));
    let mut checked = 0;
    let mut missing = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).expect("a readable doc");
        for name in cited_tests(&text) {
            checked += 1;
            if !names_a_function(&name, &functions) {
                let file = doc.file_name().unwrap_or_default().to_string_lossy();
                missing.push(format!("{file}: `{name}`"));
            }
        }
    }
    assert!(checked >= 40, "only {checked} test names found in the docs");
    assert!(
        missing.is_empty(),
        "the docs name tests that do not exist (renamed or deleted? fix the sentence):\n{}",
        missing.join("\n")
    );
    eprintln!("{checked} test names cited in the docs, all found");
}
