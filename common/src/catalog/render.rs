//! Renders the catalog for machines (JSON), for people (a terminal table) and for the docs
//! (docs/CATALOG.md is generated from [`catalog_markdown`]; a test fails when it is stale).

use std::fmt::Write as _;

use super::{all, Field, NameKind, Origin, OtherKeys, Req, SubtypeRule, Ty, TypeSpec};

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
        let mut notes = field.doc.to_owned();
        let native = field.native.names();
        if !native.is_empty() {
            let sep = if notes.is_empty() { "" } else { "; " };
            let _ = write!(notes, "{sep}agent sends: {}", native.join(", "));
        }
        if field.other_keys {
            let sep = if notes.is_empty() { "" } else { "; " };
            let _ = write!(notes, "{sep}other keys allowed");
        }
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            name.replace('|', "\\|"),
            field.ty.describe().replace('|', "\\|"),
            required_str(field),
            notes.replace('|', "\\|")
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

/// How schema drift is detected and acted on (part of docs/CATALOG.md).
const DRIFT_SECTION: &str = "\
## Schema drift

What the agent sends that this catalog does not describe is accepted (a false rejection is the \
worst bug) and recorded as *schema drift*, so a catalog maintainer or an agent developer sees it \
as it appears instead of when a dashboard is wrong. The validator records it while it checks an \
accepted event (`common/src/drift.rs`, `common/src/validate.rs`); nothing is allocated for an \
event without drift, and `drift.enabled = false` turns it off.

Each divergence is a key (type, path, kind). The path is a JSON Pointer from the event's root \
(`/payload/user/team`) with array indexes, map keys and the numeric keys of PHP's sparse lists \
collapsed to `*` (`/payload/trace/*/code_snippet`), so one field is one key however many items \
carry it. The four kinds:

| kind | when |
|---|---|
| `unknown_field` | a key of an object whose fields the catalog lists, and not one of them (objects a field marks `other keys allowed`, and payloads of types or sub-types marked so, are free-form and never report) |
| `coerced` | a value read through a PHP leniency that its field does not declare native: a numeric string for a number, `[]` for an object or map, a numeric-keyed object for a list, an enum in another case, an integral float (`7.0`) for an integer, or an alias in the agent's `payload` envelope (aliases are the brief's names: in the brief's `data` envelope they are not drift). Integer literals for floats never are: PHP prints every integral float so |
| `unknown_type` | a type this catalog does not know (path `\"\"`; each of its top-level payload keys is also an `unknown_field`, so the fields of the new type and how often each is present are known) |
| `unknown_envelope_field` | a top-level key that is none of the envelope fields of the brief and of the agent (AGENT-WIRE §2), nor `payload`/`data` |

The notes column below says which lenient forms a field declares native (`agent sends: …`): the \
real agent sends them (AGENT-WIRE), so they are not drift. The catalog's own valid fixtures \
produce no drift (`fixtures/tests/catalog_fixtures.rs::the_catalogs_own_fixtures_produce_no_drift`).

Per key the server keeps the count, first and last seen, up to 8 agent versions \
(`X-Agent-Version`) and 8 applications, one sample value (compact JSON, at most \
`drift.sample_bytes`, cut on a character boundary and ending in `…` when cut) and the id of the \
event that showed it. Memory is bounded: at most `drift.max_keys_per_type` keys per type and \
`drift.max_types` types; further divergences only add to an overflow counter per type. The \
counts are flushed every `drift.flush_interval_ms` to the store's `schema_drift` table (SQLite \
and ClickHouse), so they survive restarts and every node writing to one ClickHouse shares them; \
new keys are announced on the feed's `drift` topic.

To act on it:

1. read the keys: `GET /v1/drift` (filters `type`, `kind`, `application`, `agent_version`, \
   `since`), `baddybugs-ingest drift --since 24h`, or the feed's `drift` topic;
2. `baddybugs-ingest drift --catalog-patch` prints the additions for the `unknown_field` and \
   `unknown_type` keys, written like the entries in `common/src/catalog/types/` (field names, \
   JSON types inferred from the samples, how often present);
3. if the real agent sends that shape, edit the catalog: declare the field, declare a lenient \
   form native with `.native(Forms::…)`, mark a free-form object `.other_keys()` (or a type's \
   `other_keys`), then regenerate this file (`just docs`); if the agent is wrong, fix the agent \
   (the `example_event_id` of the key is one event to show its developer).

";

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
    out.push_str(DRIFT_SECTION);
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
        match spec.other_keys {
            OtherKeys::Never => {}
            OtherKeys::Always => {
                let _ = writeln!(out, "- other payload keys: allowed (free-form, not drift)");
            }
            OtherKeys::When(subtypes) => {
                let _ = writeln!(
                    out,
                    "- other payload keys: allowed for {} (free-form, not drift)",
                    subtypes.join(", ")
                );
            }
        }
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
