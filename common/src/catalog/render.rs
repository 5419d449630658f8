//! Renders the catalog for machines (JSON), for people (a terminal table) and for the docs
//! (docs/CATALOG.md is generated from [`catalog_markdown`]; a test fails when it is stale).

use std::fmt::Write as _;

use super::{all, Field, NameKind, Origin, Req, SubtypeRule, Ty, TypeSpec};

/// The whole catalog as JSON (what `baddybugs-ingest catalog --json` prints).
pub fn catalog_json() -> serde_json::Value {
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "types": all(),
    })
}

fn origin_str(origin: Origin) -> &'static str {
    match origin {
        Origin::Both => "brief + agent",
        Origin::Brief => "brief only",
        Origin::Agent => "agent only",
    }
}

fn name_of(spec: &TypeSpec) -> String {
    match spec.name_kind {
        NameKind::Fixed => "fixed".to_owned(),
        NameKind::Dynamic(what) => what.to_owned(),
    }
}

fn subtype_of(spec: &TypeSpec) -> String {
    match spec.subtype {
        SubtypeRule::None => "-".to_owned(),
        SubtypeRule::Name => "name".to_owned(),
        SubtypeRule::Payload { keys, .. } => format!("payload.{}", keys.join(" | payload.")),
    }
}

/// A plain-text table for people (what `baddybugs-ingest catalog` prints).
pub fn catalog_table() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<14} {:>6} {:>8}  {:<22} NAMES",
        "TYPE", "ORIGIN", "FIELDS", "REQUIRED", "SUB-TYPE FROM"
    );
    for spec in all() {
        let required = spec
            .fields
            .iter()
            .filter(|f| f.required != Req::Optional)
            .count();
        let names: Vec<&str> = spec.names.iter().map(|n| n.name).collect();
        let _ = writeln!(
            out,
            "{:<24} {:<14} {:>6} {:>8}  {:<22} {}",
            spec.name,
            origin_str(spec.origin),
            spec.fields.len(),
            required,
            subtype_of(spec),
            if names.is_empty() {
                name_of(spec)
            } else {
                names.join(", ")
            }
        );
    }
    let _ = writeln!(
        out,
        "\n{} types. Any other type is accepted and stored as a generic event.",
        all().len()
    );
    out
}

fn required_str(field: &Field) -> String {
    match field.required {
        Req::Optional => "optional".to_owned(),
        Req::Always if field.nullable => "required (null ok)".to_owned(),
        Req::Always => "required".to_owned(),
        Req::When(subtypes) => format!("required for {}", subtypes.join(", ")),
    }
}

fn write_fields(out: &mut String, fields: &[Field], prefix: &str) {
    for field in fields {
        let mut name = format!("{prefix}{}", field.name);
        if !field.aliases.is_empty() {
            let _ = write!(name, " (alias: {})", field.aliases.join(", "));
        }
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            name.replace('|', "\\|"),
            field.ty.describe().replace('|', "\\|"),
            required_str(field),
            field.doc.replace('|', "\\|")
        );
        let nested: Option<(&[Field], &str)> = match field.ty {
            Ty::Obj(inner) => Some((inner, ".")),
            Ty::List(Ty::Obj(inner)) => Some((inner, "[].")),
            Ty::Map(Ty::Obj(inner)) => Some((inner, "{}.")),
            _ => None,
        };
        if let Some((inner, sep)) = nested {
            write_fields(out, inner, &format!("{prefix}{}{sep}", field.name));
        }
    }
}

/// The catalog as Markdown (docs/CATALOG.md).
pub fn catalog_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Event catalog\n\n");
    out.push_str(
        "Generated from `common/src/catalog` by `baddybugs-ingest catalog --markdown`; do not edit \
         by hand (a test fails when this file is stale).\n\n\
         Every type below is validated against its entry. A field is *required* only if every \
         known emitter always sends it; everything else is optional, and explicit nulls are \
         accepted for optional fields. Unknown extra fields are kept. PHP quirks are accepted: \
         `[]` for an empty object or map, numeric-keyed objects for lists, numeric strings for \
         numbers, integer literals for floats. A type not listed here is accepted and stored as \
         a generic event (counted as `unknown_type`), never rejected.\n\n",
    );
    out.push_str("| type | origin | name holds | sub-type from |\n|---|---|---|---|\n");
    for spec in all() {
        let _ = writeln!(
            out,
            "| [`{}`](#{}) | {} | {} | {} |",
            spec.name,
            spec.name,
            origin_str(spec.origin),
            name_of(spec).replace('|', "\\|"),
            subtype_of(spec)
        );
    }
    for spec in all() {
        let _ = writeln!(out, "\n## {}\n\n{}\n", spec.name, spec.summary);
        let _ = writeln!(out, "- origin: {}", origin_str(spec.origin));
        let _ = writeln!(out, "- `name`: {}", name_of(spec));
        let _ = writeln!(out, "- sub-type from: {}", subtype_of(spec));
        if !spec.names.is_empty() {
            let names: Vec<String> = spec
                .names
                .iter()
                .map(|n| {
                    let mut s = format!("`{}`", n.name);
                    if n.origin != Origin::Both {
                        let _ = write!(s, " ({})", origin_str(n.origin));
                    }
                    if !n.emitted {
                        s.push_str(" (never emitted today)");
                    }
                    s
                })
                .collect();
            let _ = writeln!(out, "- names: {}", names.join(", "));
        }
        let columns = serde_json::to_string(&spec.columns).unwrap_or_default();
        let _ = writeln!(out, "- columns: `{columns}`\n");
        if spec.fields.is_empty() {
            out.push_str("No fields are checked.\n");
        } else {
            out.push_str("| field | type | required | notes |\n|---|---|---|---|\n");
            write_fields(&mut out, spec.fields, "");
        }
    }
    out
}
