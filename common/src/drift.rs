//! Schema drift: what an accepted event carries that the catalog does not describe.
//!
//! In: the validator ([`crate::validate`]) and the envelope ([`crate::envelope`]) report each
//! divergence they accept silently. Out: [`Divergence`]s, each a (JSON Pointer path, [`DriftKind`])
//! with a capped sample of the value. Paths are *shapes*: array indexes, the keys of maps and
//! the numeric keys of PHP's sparse lists are collapsed to `*`, so one field of a list is one
//! key however many items carry it. Nothing here fails.
//!
//! Cost: nothing is allocated for an event without drift; the validator only tracks, per
//! nesting level, whether the level is a collapsed one (a bit in a `u128`, the parser refuses
//! deeper nesting anyway).

use serde::{Deserialize, Serialize};

use crate::json::Node;

/// Longest sample a [`Divergence`] carries, bytes; the server cuts it further
/// (`drift.sample_bytes`).
pub const SAMPLE_MAX_BYTES: usize = 1024;

/// The marker appended to a sample that was cut.
pub const CUT_MARK: &str = "…";

/// What kind of divergence a drift key records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// A key of an object the catalog describes with known fields, not one of them.
    UnknownField,
    /// A value accepted through PHP leniency (numeric string, `[]` for a map, numeric-keyed
    /// object for a list, case-folded enum, an alias, an integral float for an integer).
    Coerced,
    /// An event type the catalog does not know (stored as a generic event).
    UnknownType,
    /// A top-level key that is neither an envelope field nor `payload`/`data`.
    UnknownEnvelopeField,
}

impl DriftKind {
    /// Every kind, in a stable order.
    pub const ALL: [DriftKind; 4] = [
        DriftKind::UnknownField,
        DriftKind::Coerced,
        DriftKind::UnknownType,
        DriftKind::UnknownEnvelopeField,
    ];

    /// The stable code (`unknown_field` …), as stored and as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::UnknownField => "unknown_field",
            DriftKind::Coerced => "coerced",
            DriftKind::UnknownType => "unknown_type",
            DriftKind::UnknownEnvelopeField => "unknown_envelope_field",
        }
    }

    /// Reads a stable code back.
    pub fn parse(code: &str) -> Option<DriftKind> {
        DriftKind::ALL.into_iter().find(|k| k.as_str() == code)
    }
}

/// One divergence seen in one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// JSON Pointer from the event's root (`/payload/user/team`), indexes and map keys as `*`;
    /// empty for [`DriftKind::UnknownType`].
    pub path: String,
    /// Its kind.
    pub kind: DriftKind,
    /// The value as compact JSON (for `unknown_type`, the payload), at most
    /// [`SAMPLE_MAX_BYTES`] and then ending with [`CUT_MARK`].
    pub sample: String,
}

/// Which nesting levels of a pointer are collapsed to `*`: bit `i` for the `i`-th segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collapsed(u128);

impl Collapsed {
    /// Marks segment `depth` as collapsed (or not); levels past 127 are always collapsed.
    pub fn set(&mut self, depth: usize, wild: bool) {
        if depth < 128 {
            if wild {
                self.0 |= 1 << depth;
            } else {
                self.0 &= !(1 << depth);
            }
        }
    }

    fn is_wild(self, depth: usize) -> bool {
        depth >= 128 || self.0 & (1 << depth) != 0
    }

    /// The shape of `pointer`: its segments after the first `skip` (the base, `/payload`) are
    /// replaced by `*` where collapsed.
    pub fn apply(self, pointer: &str, skip: usize) -> String {
        let mut out = String::with_capacity(pointer.len());
        for (i, segment) in pointer.split('/').skip(1).enumerate() {
            out.push('/');
            if i >= skip && self.is_wild(i - skip) {
                out.push('*');
            } else {
                out.push_str(segment);
            }
        }
        out
    }
}

/// A value as compact JSON, cut to [`SAMPLE_MAX_BYTES`].
pub fn sample_of(node: &Node<'_>) -> String {
    let text = match node {
        Node::Str(s) => serde_json::to_string(s.as_ref()).unwrap_or_default(),
        _ => node.to_value().to_string(),
    };
    cut(&text, SAMPLE_MAX_BYTES)
}

/// Cuts `text` to at most `max` bytes on a char boundary, appending [`CUT_MARK`] when it cut
/// (the mark counts in `max`, so the result never exceeds it unless `max` is under 3 bytes).
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(CUT_MARK.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + CUT_MARK.len());
    out.push_str(&text[..end]);
    out.push_str(CUT_MARK);
    out
}

/// Whether a sample was cut.
pub fn is_cut(sample: &str) -> bool {
    sample.ends_with(CUT_MARK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapsing_replaces_only_marked_levels_after_the_base() {
        let mut c = Collapsed::default();
        c.set(1, true);
        assert_eq!(
            c.apply("/payload/trace/12/file", 1),
            "/payload/trace/*/file"
        );
        c.set(1, false);
        assert_eq!(
            c.apply("/payload/trace/12/file", 1),
            "/payload/trace/12/file"
        );
        // An escaped slash stays in its segment.
        c.set(0, true);
        assert_eq!(c.apply("/payload/a~1b/x", 1), "/payload/*/x");
    }

    #[test]
    fn samples_are_cut_on_a_char_boundary_and_marked() {
        assert_eq!(cut("abc", 3), "abc");
        let long = "é".repeat(200);
        let out = cut(&long, 256);
        assert!(out.len() <= 256, "{}", out.len());
        assert!(is_cut(&out));
        assert!(!is_cut("abc"));
        let node = Node::parse(r#"{"a":[1,2,"x"]}"#).unwrap();
        assert_eq!(sample_of(&node), r#"{"a":[1,2,"x"]}"#);
    }

    #[test]
    fn kinds_round_trip_through_their_codes() {
        for kind in DriftKind::ALL {
            assert_eq!(DriftKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(DriftKind::parse("nope"), None);
    }
}
