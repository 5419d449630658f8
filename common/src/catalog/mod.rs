//! The event catalog: one declarative entry per event type the agent sends.
//!
//! Each [`TypeSpec`] says what a type's `name` holds, which fixed names (sub-types) exist,
//! where the sub-type really lives (the agent keeps `hit`/`miss`, `starting`/`finished`… in a
//! payload field and puts a dynamic value — a cache key, a job class — in `name`), every field
//! with its JSON type, whether every known emitter always sends it, whether it may be null, its
//! allowed values, its nested shape, the brief's name for it (an alias), and which fields feed
//! the denormalised columns. Validation ([`crate::validate`]) and denormalisation
//! ([`crate::denorm`]) read this table; no type has hand-written handling except the two
//! derived-row builders (lifecycle spans, exception occurrences).
//!
//! Sources: the brief (docs: ingestion-brief) and what the real agent sends (AGENT-WIRE). Where
//! they disagree the agent's shape is accepted, and the brief's field names are aliases.

mod columns;
mod render;
mod ty;
mod types;

pub use columns::{ColumnRules, ErrorRule, Src};
pub use render::{catalog_json, catalog_markdown, catalog_table};
pub use ty::{opt, req, Field, Forms, Req, Ty};

use serde::Serialize;

/// Where a type or a name is documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// In the brief and sent by the agent.
    Both,
    /// Only in the brief (the agent's code never emits it today; it will once its bugs are fixed).
    Brief,
    /// Sent by the agent, missing from the brief.
    Agent,
}

/// What a type's `name` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "what", rename_all = "snake_case")]
pub enum NameKind {
    /// One of the fixed names listed in [`TypeSpec::names`].
    Fixed,
    /// A dynamic value (the text says what: "the cache key", "the job class").
    Dynamic(&'static str),
}

/// A fixed name (sub-type) of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SubName {
    /// The name as sent.
    pub name: &'static str,
    /// Where it is documented.
    pub origin: Origin,
    /// Whether the agent emits it today (AGENT-WIRE §4.1 lists those it never does).
    pub emitted: bool,
}

/// A fixed name documented by both sources and emitted.
pub const fn sub(name: &'static str) -> SubName {
    SubName {
        name,
        origin: Origin::Both,
        emitted: true,
    }
}

/// A fixed name only the agent emits (missing from the brief).
pub const fn agent_sub(name: &'static str) -> SubName {
    SubName {
        name,
        origin: Origin::Agent,
        emitted: true,
    }
}

/// A fixed name in the brief that the agent never emits today.
pub const fn brief_sub(name: &'static str) -> SubName {
    SubName {
        name,
        origin: Origin::Brief,
        emitted: false,
    }
}

/// Where the sub-type of an event is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum SubtypeRule {
    /// The type has no sub-type.
    None,
    /// The `name` is the sub-type (`log/error`, `auth/login`).
    Name,
    /// The first of these payload keys that holds a string (the agent's shape); failing that,
    /// the `name` when it is one of `values` (the brief's shape).
    Payload {
        /// Payload keys, tried in order (`["status", "event"]`).
        keys: &'static [&'static str],
        /// The known sub-type values.
        values: &'static [&'static str],
    },
}

/// When a type's payload may carry keys its fields do not list (see [`TypeSpec::other_keys`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "when", content = "subtypes", rename_all = "snake_case")]
pub enum OtherKeys {
    /// Never: every other key is `unknown_field` drift.
    Never,
    /// Always (the payload is free-form besides the listed fields).
    Always,
    /// For these sub-types only (`feature.used` merges the app's properties in).
    When(&'static [&'static str]),
}

impl OtherKeys {
    /// Whether a payload of this sub-type may carry other keys.
    pub fn allowed(&self, subtype: Option<&str>) -> bool {
        match self {
            OtherKeys::Never => false,
            OtherKeys::Always => true,
            OtherKeys::When(subtypes) => subtype.is_some_and(|s| subtypes.contains(&s)),
        }
    }
}

/// One event type.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TypeSpec {
    /// The `type` as sent.
    #[serde(rename = "type")]
    pub name: &'static str,
    /// One line on what it records.
    pub summary: &'static str,
    /// Where the type is documented.
    pub origin: Origin,
    /// What `name` holds.
    pub name_kind: NameKind,
    /// The fixed names (sub-types) known for the type.
    pub names: &'static [SubName],
    /// Where the sub-type lives.
    pub subtype: SubtypeRule,
    /// The payload's fields.
    pub fields: &'static [Field],
    /// When the payload may carry keys the catalog does not list (the app's own properties,
    /// free-form arguments): such keys are not schema drift.
    pub other_keys: OtherKeys,
    /// How the denormalised columns are filled.
    pub columns: ColumnRules,
}

/// Summary of a type whose entry is not written yet (see [`TypeSpec::is_described`]).
pub const NOT_DESCRIBED: &str =
    "Not described in the catalog yet: accepted and stored as sent, without field checks";

/// Every known type, in the brief's order, then the agent's additions.
pub fn all() -> &'static [TypeSpec] {
    types::ALL
}

/// The entry of a type, `None` for a type the catalog does not know (stored as generic).
pub fn lookup(event_type: &str) -> Option<&'static TypeSpec> {
    types::ALL.iter().find(|spec| spec.name == event_type)
}

impl TypeSpec {
    /// False for a type whose entry is not written yet (accepted as sent, no field checks).
    pub fn is_described(&self) -> bool {
        self.summary != NOT_DESCRIBED
    }

    /// Resolves the sub-type of one event from its name and payload.
    pub fn subtype_of<'n>(
        &self,
        name: &'n str,
        payload: &'n crate::json::Node<'n>,
    ) -> Option<&'n str> {
        match self.subtype {
            SubtypeRule::None => None,
            SubtypeRule::Name => Some(name),
            SubtypeRule::Payload { keys, values } => keys
                .iter()
                .find_map(|key| payload.get(key).and_then(|v| v.as_str()))
                .or_else(|| values.contains(&name).then_some(name)),
        }
    }

    /// The fixed names this type's sub-type can take: the names for [`SubtypeRule::Name`], the
    /// payload values for [`SubtypeRule::Payload`].
    pub fn subtype_values(&self) -> Vec<&'static str> {
        match self.subtype {
            SubtypeRule::None => Vec::new(),
            SubtypeRule::Name => self.names.iter().map(|n| n.name).collect(),
            SubtypeRule::Payload { values, .. } => values.to_vec(),
        }
    }
}
