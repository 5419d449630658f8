//! `baddybugs-ingest drift --catalog-patch`: the catalog additions a maintainer would make for
//! the observed `unknown_field` and `unknown_type` keys, written like the entries of
//! `common/src/catalog/types/` so they can be pasted there and then reviewed.
//!
//! In: merged [`DriftRow`]s. Out: Rust text. Types are inferred from each key's sample (a cut
//! sample gives `Ty::Any` with a note); how often a field is present is its count against its
//! type's `unknown_type` count (new types) or its raw count (known types, whose event count
//! the drift table does not hold). Pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use baddybugs_common::drift::{is_cut, DriftKind};
use serde_json::Value;

use super::DriftRow;

/// The `Ty` expression for a JSON value (objects with their keys, lists by their first item).
fn ty_of(value: &Value) -> String {
    match value {
        Value::Null => "Ty::Any".into(),
        Value::Bool(_) => "Ty::Bool".into(),
        Value::Number(n) if n.is_i64() || n.is_u64() => "Ty::Int".into(),
        Value::Number(_) => "Ty::Num".into(),
        Value::String(_) => "Ty::Str".into(),
        Value::Array(items) => match items.first() {
            Some(first) => format!("Ty::List(&{})", ty_of(first)),
            None => "Ty::List(&Ty::Any)".into(),
        },
        Value::Object(map) if map.is_empty() => "Ty::Map(&Ty::Any)".into(),
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("opt({k:?}, {})", ty_of(v)))
                .collect();
            format!("Ty::Obj(&[{}])", fields.join(", "))
        }
    }
}

/// The inferred type of a sample and a note when it cannot be trusted.
fn infer(sample: &str) -> (String, Option<&'static str>) {
    if is_cut(sample) {
        return ("Ty::Any".into(), Some("sample cut: check the type"));
    }
    match serde_json::from_str::<Value>(sample) {
        Ok(Value::Null) => ("Ty::Any".into(), Some("seen as null")),
        Ok(value) => (ty_of(&value), None),
        Err(_) => ("Ty::Any".into(), Some("sample unreadable")),
    }
}

/// The field name of a top-level payload path (`/payload/name`), unescaped; `None` for nested
/// or envelope paths.
fn top_level_field(path: &str) -> Option<String> {
    let rest = path
        .strip_prefix("/payload/")
        .or_else(|| path.strip_prefix("/data/"))?;
    (!rest.contains('/')).then(|| rest.replace("~1", "/").replace("~0", "~"))
}

fn const_name(event_type: &str) -> String {
    let mut out: String = event_type
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'T');
    }
    out
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return String::new();
    }
    format!("{:.0}%", part as f64 * 100.0 / whole as f64)
}

/// The patch text for `rows` (empty-handed rows give a one-line note).
pub fn catalog_patch(rows: &[DriftRow]) -> String {
    let mut types: BTreeMap<&str, (Option<&DriftRow>, Vec<&DriftRow>)> = BTreeMap::new();
    for row in rows {
        match row.kind {
            DriftKind::UnknownType => types.entry(&row.event_type).or_default().0 = Some(row),
            DriftKind::UnknownField => types.entry(&row.event_type).or_default().1.push(row),
            _ => {}
        }
    }
    let mut out = String::new();
    if types.is_empty() {
        out.push_str("// No unknown_field or unknown_type drift: nothing to add to the catalog.\n");
        return out;
    }
    for (event_type, (unknown, mut fields)) in types {
        fields.sort_by(|a, b| b.count.cmp(&a.count).then(a.path.cmp(&b.path)));
        let mut top = Vec::new();
        let mut nested = Vec::new();
        for f in &fields {
            match top_level_field(&f.path) {
                Some(name) => top.push((name, *f)),
                None => nested.push(*f),
            }
        }
        match unknown {
            Some(t) => {
                let _ = writeln!(
                    out,
                    "/// `{event_type}`: a type the catalog does not know ({} events, first seen \
                     {}, last seen {}).\npub(super) const {}: TypeSpec = TypeSpec {{\n    \
                     name: {event_type:?},\n    summary: \"TODO: one line on what it records\",\n    \
                     origin: Origin::Agent,\n    name_kind: NameKind::Fixed,\n    names: &[],\n    \
                     subtype: SubtypeRule::None,\n    other_keys: false,\n    fields: &[",
                    t.count,
                    t.entry().first_seen,
                    t.entry().last_seen,
                    const_name(event_type)
                );
                for (name, f) in &top {
                    let (ty, note) = infer(&f.sample);
                    let builder = if f.count >= t.count { "req" } else { "opt" };
                    let _ = writeln!(
                        out,
                        "        {builder}({name:?}, {ty}), // in {} of {} events ({}){}",
                        f.count.min(t.count),
                        t.count,
                        percent(f.count.min(t.count), t.count),
                        note.map(|n| format!("; {n}")).unwrap_or_default()
                    );
                }
                out.push_str("    ],\n    columns: ColumnRules::NONE,\n};\n");
            }
            None => {
                let _ = writeln!(
                    out,
                    "// `{event_type}`: fields to add to its `fields: &[…]` (common/src/catalog/types/)"
                );
                for (name, f) in &top {
                    let (ty, note) = infer(&f.sample);
                    let _ = writeln!(
                        out,
                        "opt({name:?}, {ty}), // seen {} times, last {}{}",
                        f.count,
                        f.entry().last_seen,
                        note.map(|n| format!("; {n}")).unwrap_or_default()
                    );
                }
            }
        }
        for f in nested {
            let (ty, note) = infer(&f.sample);
            let _ = writeln!(
                out,
                "// nested, at {}: {ty} (seen {} times{}); add it to the enclosing Ty::Obj, or \
                 mark that field .other_keys() if its keys are free-form",
                f.path,
                f.count,
                note.map(|n| format!("; {n}")).unwrap_or_default()
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event_type: &str, path: &str, kind: DriftKind, count: u64, sample: &str) -> DriftRow {
        DriftRow {
            event_type: event_type.into(),
            path: path.into(),
            kind,
            count,
            first_seen_ms: 0,
            last_seen_ms: 0,
            agent_versions: vec![],
            applications: vec!["shop".into()],
            sample: sample.into(),
            example_event_id: None,
        }
    }

    #[test]
    fn a_new_type_becomes_a_type_spec_and_fields_become_opt_lines() {
        let rows = [
            row("custom", "", DriftKind::UnknownType, 4, "{}"),
            row(
                "custom",
                "/payload/amount",
                DriftKind::UnknownField,
                4,
                "12.5",
            ),
            row(
                "custom",
                "/payload/tags",
                DriftKind::UnknownField,
                1,
                r#"["a"]"#,
            ),
            row(
                "request",
                "/payload/region",
                DriftKind::UnknownField,
                9,
                r#""eu""#,
            ),
            row(
                "request",
                "/payload/user/team",
                DriftKind::UnknownField,
                2,
                "7",
            ),
            row(
                "request",
                "/payload/status",
                DriftKind::Coerced,
                2,
                r#""200""#,
            ),
        ];
        let patch = catalog_patch(&rows);
        assert!(
            patch.contains("pub(super) const CUSTOM: TypeSpec"),
            "{patch}"
        );
        assert!(
            patch.contains(r#"req("amount", Ty::Num), // in 4 of 4 events (100%)"#),
            "{patch}"
        );
        assert!(
            patch.contains(r#"opt("tags", Ty::List(&Ty::Str)), // in 1 of 4 events (25%)"#),
            "{patch}"
        );
        assert!(
            patch.contains(r#"opt("region", Ty::Str), // seen 9 times"#),
            "{patch}"
        );
        assert!(
            patch.contains("nested, at /payload/user/team: Ty::Int"),
            "{patch}"
        );
        assert!(
            !patch.contains("status"),
            "coerced keys are not catalog additions"
        );
        assert!(catalog_patch(&[]).contains("nothing to add"));
    }

    #[test]
    fn cut_samples_are_not_trusted() {
        assert_eq!(infer("\"abc…").1, Some("sample cut: check the type"));
        assert_eq!(infer(r#"{"a":1}"#).0, r#"Ty::Obj(&[opt("a", Ty::Int)])"#);
    }
}
