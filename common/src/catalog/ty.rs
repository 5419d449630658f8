//! Field and JSON-type descriptors of the catalog, built with `const fn`s so the whole catalog
//! is a static table.

use serde::Serialize;

/// The JSON type a field must have. Checks are lenient where PHP forces it (see
/// [`crate::validate`]): `[]` for an object or map, numeric-keyed objects for a list, numeric
/// strings and integral literals for numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "type", content = "of", rename_all = "snake_case")]
pub enum Ty {
    /// Anything, including null.
    Any,
    /// A string.
    Str,
    /// An integer (also an integral float literal or a numeric string).
    Int,
    /// A number (also a numeric string).
    Num,
    /// A boolean.
    Bool,
    /// A string, number or boolean (values PHP casts freely: ids, keys).
    Scalar,
    /// One of these strings, exactly.
    Enum(&'static [&'static str]),
    /// One of these strings, ignoring ASCII case (log levels arrive as `error` and `ERROR`).
    EnumCi(&'static [&'static str]),
    /// An object with these known fields (others are allowed and kept, and reported as schema
    /// drift unless the field says [`Field::other_keys`]).
    Obj(&'static [Field]),
    /// An object with any keys whose values all have this type.
    Map(&'static Ty),
    /// A list whose items have this type.
    List(&'static Ty),
    /// Any one of these types.
    AnyOf(&'static [Ty]),
}

/// When a field must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "when", content = "subtypes", rename_all = "snake_case")]
pub enum Req {
    /// Never required.
    Optional,
    /// Every known emitter always sends it.
    Always,
    /// Always sent for these sub-types (e.g. a job's `job_id` when `processed` or `failed`).
    When(&'static [&'static str]),
}

/// One payload field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Field {
    /// The agent's name for the field.
    pub name: &'static str,
    /// Other names for the same field (the brief's: `status_code` for `status`).
    pub aliases: &'static [&'static str],
    /// Its JSON type.
    pub ty: Ty,
    /// When it must be present.
    pub required: Req,
    /// Whether an explicit `null` is allowed when it is required.
    pub nullable: bool,
    /// One line for people (shown in docs/CATALOG.md).
    pub doc: &'static str,
    /// The lenient forms the real agent sends for this field's value (its items and map values
    /// included, not the fields of nested objects, which say their own): not schema drift.
    pub native: Forms,
    /// Whether the object(s) in this field's value may carry keys the catalog does not list (an
    /// app's user resolver, free-form arguments): such keys are not schema drift.
    pub other_keys: bool,
}

/// A set of PHP-lenient forms of a value (see [`crate::validate`]); each accepted form that the
/// field does not declare native is reported as `coerced` schema drift ([`crate::drift`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Forms(u8);

impl Forms {
    /// None: every lenient form is drift.
    pub const NONE: Forms = Forms(0);
    /// A numeric string where a number or integer is expected (`"42"`).
    pub const NUMERIC_STRING: Forms = Forms(1);
    /// PHP's empty array `[]` where an object or a map is expected.
    pub const EMPTY_ARRAY: Forms = Forms(2);
    /// An object with numeric keys (`{"0":…,"4":…}`), or `{}`, where a list is expected.
    pub const NUMERIC_KEYS: Forms = Forms(4);
    /// A float literal with no fraction (`7.0`) where an integer is expected.
    pub const INTEGRAL_FLOAT: Forms = Forms(8);
    /// An enum value in another ASCII case than listed (`ERROR` for `error`).
    pub const OTHER_CASE: Forms = Forms(16);
    /// One of the field's aliases in the agent's envelope (`payload`): the agent itself sends
    /// it (for another sub-type). In the brief's envelope (`data`) aliases, the brief's names,
    /// are never drift.
    pub const ALIAS: Forms = Forms(32);
    /// Every form, with its name.
    pub const NAMED: [(Forms, &'static str); 6] = [
        (Forms::NUMERIC_STRING, "numeric_string"),
        (Forms::EMPTY_ARRAY, "empty_array"),
        (Forms::NUMERIC_KEYS, "numeric_keys"),
        (Forms::INTEGRAL_FLOAT, "integral_float"),
        (Forms::OTHER_CASE, "other_case"),
        (Forms::ALIAS, "alias"),
    ];

    /// Both sets.
    pub const fn with(self, other: Forms) -> Forms {
        Forms(self.0 | other.0)
    }
    /// Whether every form of `other` is in the set.
    pub const fn has(self, other: Forms) -> bool {
        self.0 & other.0 == other.0
    }
    /// The names of the forms in the set.
    pub fn names(self) -> Vec<&'static str> {
        Forms::NAMED
            .iter()
            .filter(|(f, _)| self.has(*f))
            .map(|(_, n)| *n)
            .collect()
    }
}

impl Serialize for Forms {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.names())
    }
}

/// An optional field.
pub const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        aliases: &[],
        ty,
        required: Req::Optional,
        nullable: true,
        doc: "",
        native: Forms::NONE,
        other_keys: false,
    }
}

/// A field every known emitter always sends.
pub const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        aliases: &[],
        ty,
        required: Req::Always,
        nullable: false,
        doc: "",
        native: Forms::NONE,
        other_keys: false,
    }
}

impl Field {
    /// Adds other accepted names (the brief's).
    pub const fn alias(self, aliases: &'static [&'static str]) -> Field {
        Field { aliases, ..self }
    }
    /// Allows an explicit `null` although the field is required.
    pub const fn nullable(self) -> Field {
        Field {
            nullable: true,
            ..self
        }
    }
    /// Makes the field required only for these sub-types.
    pub const fn when(self, subtypes: &'static [&'static str]) -> Field {
        Field {
            required: Req::When(subtypes),
            ..self
        }
    }
    /// Adds a line of documentation.
    pub const fn doc(self, doc: &'static str) -> Field {
        Field { doc, ..self }
    }

    /// Declares lenient forms the real agent sends for this field (not schema drift).
    pub const fn native(self, forms: Forms) -> Field {
        Field {
            native: self.native.with(forms),
            ..self
        }
    }
    /// Declares that the object(s) of this field may carry other keys (not schema drift).
    pub const fn other_keys(self) -> Field {
        Field {
            other_keys: true,
            ..self
        }
    }

    /// Whether the field must be present for this sub-type.
    pub fn is_required(&self, subtype: Option<&str>) -> bool {
        match self.required {
            Req::Optional => false,
            Req::Always => true,
            Req::When(subtypes) => subtype.is_some_and(|s| subtypes.contains(&s)),
        }
    }
}

impl Ty {
    /// How the type reads in a message or in the docs (`list of string`, `one of GET, POST`).
    pub fn describe(&self) -> String {
        match self {
            Ty::Any => "any value".into(),
            Ty::Str => "string".into(),
            Ty::Int => "integer".into(),
            Ty::Num => "number".into(),
            Ty::Bool => "boolean".into(),
            Ty::Scalar => "string or number".into(),
            Ty::Enum(values) => format!("one of {}", values.join(", ")),
            Ty::EnumCi(values) => format!("one of {} (any case)", values.join(", ")),
            Ty::Obj(_) => "object".into(),
            Ty::Map(inner) => format!("map of {}", inner.describe()),
            Ty::List(inner) => format!("list of {}", inner.describe()),
            Ty::AnyOf(options) => options
                .iter()
                .map(Ty::describe)
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }
}
