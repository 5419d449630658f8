//! A borrowed JSON tree for validating and denormalising one event payload.
//!
//! In: the raw payload text of one event (a slice of the request body). Out: a [`Node`] tree
//! whose strings borrow from that text whenever they contain no escape (keys almost never do),
//! so reading an event costs a few `Vec`s instead of the map and string allocations of a
//! `serde_json::Value`. Objects keep their keys in wire order and duplicates as sent.
//!
//! Written by hand rather than taken from a crate because it is the core of the product's hot
//! path: it is shaped for the validator (numbers keep their JSON kind, `[]` stays an array so the
//! validator can apply PHP's empty-map rule, numeric-keyed objects stay objects) and it is what
//! makes per-event validation cheaper than building a `Value` (see docs/BENCHMARKS.md).
//!
//! Fails on what serde_json refuses (syntax errors, nesting past 128 levels); the caller maps
//! those errors to reason codes with [`parse_error_code`].

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::reason::ReasonCode;

/// One JSON value borrowed from the event text.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A negative integer literal.
    Int(i64),
    /// A non-negative integer literal.
    UInt(u64),
    /// A number with a fraction or exponent (or an integer past u64).
    Float(f64),
    /// A string, borrowed when it had no escapes.
    Str(Cow<'a, str>),
    /// An array, in order.
    Arr(Vec<Node<'a>>),
    /// An object: keys and values in wire order.
    Obj(Vec<(Cow<'a, str>, Node<'a>)>),
}

/// The JSON kind of a node, as named in rejection messages.
pub fn kind_name(node: &Node<'_>) -> &'static str {
    match node {
        Node::Null => "null",
        Node::Bool(_) => "boolean",
        Node::Int(_) | Node::UInt(_) => "integer",
        Node::Float(_) => "number",
        Node::Str(_) => "string",
        Node::Arr(a) if a.is_empty() => "empty array",
        Node::Arr(_) => "array",
        Node::Obj(_) => "object",
    }
}

impl<'a> Node<'a> {
    /// Parses a JSON text into a borrowed tree.
    pub fn parse(text: &'a str) -> Result<Node<'a>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let node = Node::deserialize(&mut de)?;
        de.end()?;
        Ok(node)
    }

    /// The value of `key` in an object (the last one when a key repeats, as JSON parsers do).
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Obj(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows an RFC 6901 pointer of plain keys and indexes (`/user/id`, `/spans/0/sql`).
    /// Pointers in the catalog never need `~` escapes.
    pub fn pointer(&self, pointer: &str) -> Option<&Node<'a>> {
        let mut node = self;
        for part in pointer.split('/').skip(1) {
            node = match node {
                Node::Obj(_) => node.get(part)?,
                Node::Arr(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// The string value, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A number, coercing numeric strings (PHP sends header values and some counts as strings).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Node::Int(i) => Some(*i as f64),
            Node::UInt(u) => Some(*u as f64),
            Node::Float(f) => Some(*f),
            Node::Str(s) => parse_numeric_str(s),
            _ => None,
        }
    }

    /// An integer, coercing numeric strings and integral floats.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Node::Int(i) => Some(*i),
            Node::UInt(u) => i64::try_from(*u).ok(),
            Node::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            Node::Str(s) => {
                let t = s.trim();
                t.parse::<i64>().ok().or_else(|| {
                    parse_numeric_str(t)
                        .filter(|f| f.fract() == 0.0)
                        .map(|f| f as i64)
                })
            }
            _ => None,
        }
    }

    /// A boolean, accepting PHP's `0`/`1` and `"0"`/`"1"`/`"true"`/`"false"` for columns.
    pub fn as_bool_lenient(&self) -> Option<bool> {
        match self {
            Node::Bool(b) => Some(*b),
            Node::Int(i) => Some(*i != 0),
            Node::UInt(u) => Some(*u != 0),
            Node::Str(s) => match s.as_ref() {
                "1" | "true" => Some(true),
                "0" | "false" | "" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// A scalar as text for a string column: strings as they are, numbers and booleans printed.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Node::Str(s) => Some(s.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::UInt(u) => Some(u.to_string()),
            Node::Float(f) => Some(if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                f.to_string()
            }),
            Node::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
            _ => None,
        }
    }

    /// True when this is an object whose keys are all decimal integers: how PHP encodes a list
    /// whose keys are not 0..n-1 (`{"0":…,"4":…}`).
    pub fn is_numeric_keyed_object(&self) -> bool {
        match self {
            Node::Obj(entries) => entries
                .iter()
                .all(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())),
            _ => false,
        }
    }

    /// Items of a list, also from PHP's numeric-keyed objects.
    pub fn list_items(&self) -> Vec<&Node<'a>> {
        match self {
            Node::Arr(items) => items.iter().collect(),
            Node::Obj(entries) if self.is_numeric_keyed_object() => {
                entries.iter().map(|(_, v)| v).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Nesting depth: 0 for a scalar, 1 for a flat array or object.
    pub fn depth(&self) -> usize {
        match self {
            Node::Arr(items) => 1 + items.iter().map(Node::depth).max().unwrap_or(0),
            Node::Obj(entries) => 1 + entries.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Converts to an owned `serde_json::Value` (for tests, feeds and generated rows; never on
    /// the validation path).
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::from(*i),
            Node::UInt(u) => Value::from(*u),
            Node::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Node::Str(s) => Value::String(s.to_string()),
            Node::Arr(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Obj(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// Parses a numeric string the way PHP's `is_numeric` would accept it (no hex, no inf/nan).
pub fn parse_numeric_str(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Checks that a JSON text reads as one value within the limits every event field has: nesting
/// under 128 levels (serde_json's limit) and every number a finite `f64` (`1e400` fails), without building it.
/// The payload meets the same limits by being parsed into a [`Node`].
pub fn check_value(text: &str) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    Checked::deserialize(&mut de)?;
    de.end()
}

/// A value read for its limits only. `deserialize_any` makes serde_json count the depth and
/// parse every number (`IgnoredAny` would skip both).
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Checked;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
                while seq.next_element::<Checked>()?.is_some() {}
                Ok(Checked)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
                while map.next_key::<de::IgnoredAny>()?.is_some() {
                    map.next_value::<Checked>()?;
                }
                Ok(Checked)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Maps a serde_json parse failure to the reason code it deserves.
pub fn parse_error_code(err: &serde_json::Error) -> ReasonCode {
    let text = err.to_string();
    if text.contains("recursion limit") {
        ReasonCode::TooDeep
    } else if text.contains("unicode") || text.contains("UTF-8") || text.contains("utf-8") {
        ReasonCode::InvalidUtf8
    } else {
        ReasonCode::InvalidJson
    }
}

/// A string that borrows from the input when it can.
pub(crate) struct CowStr<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(if v >= 0 {
            Node::UInt(v as u64)
        } else {
            Node::Int(v)
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Node::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Node::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<Node<'de>>()? {
            items.push(item);
        }
        Ok(Node::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            let value = map.next_value::<Node<'de>>()?;
            entries.push((key, value));
        }
        Ok(Node::Obj(entries))
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// Seed form, so callers holding a `DeserializeSeed` pipeline can parse nodes too.
pub struct NodeSeed;

impl<'de> DeserializeSeed<'de> for NodeSeed {
    type Value = Node<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// Builds an RFC 6901 JSON Pointer incrementally while walking a tree.
#[derive(Debug, Clone, Default)]
pub struct PointerBuf {
    text: String,
}

impl PointerBuf {
    /// A pointer starting at `base` (e.g. `/payload`), which must already be escaped.
    pub fn new(base: &str) -> Self {
        Self {
            text: base.to_owned(),
        }
    }
    /// Appends a key (escaping `~` and `/`) and returns the length to truncate back to.
    pub fn push_key(&mut self, key: &str) -> usize {
        let mark = self.text.len();
        self.text.push('/');
        // Validation pushes every key it visits, nearly all plain: copy those whole.
        if !key.bytes().any(|b| b == b'~' || b == b'/') {
            self.text.push_str(key);
            return mark;
        }
        for c in key.chars() {
            match c {
                '~' => self.text.push_str("~0"),
                '/' => self.text.push_str("~1"),
                c => self.text.push(c),
            }
        }
        mark
    }
    /// Appends an array index and returns the length to truncate back to.
    pub fn push_index(&mut self, index: usize) -> usize {
        let mark = self.text.len();
        self.text.push('/');
        // No allocation per array element (`to_string` was one).
        let _ = std::fmt::Write::write_fmt(&mut self.text, format_args!("{index}"));
        mark
    }
    /// Goes back to a length returned by a push.
    pub fn truncate(&mut self, mark: usize) {
        self.text.truncate(mark);
    }
    /// The pointer text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = r#"{"a":"plain","b":"App\\Jobs\/X","c":[1,-2,3.5]}"#;
        let node = Node::parse(text).unwrap();
        assert!(matches!(
            node.get("a"),
            Some(Node::Str(Cow::Borrowed("plain")))
        ));
        assert_eq!(node.get("b").and_then(Node::as_str), Some("App\\Jobs/X"));
        assert_eq!(
            node.get("c"),
            Some(&Node::Arr(vec![
                Node::UInt(1),
                Node::Int(-2),
                Node::Float(3.5)
            ]))
        );
    }

    #[test]
    fn pointer_and_numeric_keys() {
        let node = Node::parse(r#"{"user":{"id":7},"src":{"78":"x","80":"y"}}"#).unwrap();
        assert_eq!(node.pointer("/user/id"), Some(&Node::UInt(7)));
        assert!(node.get("src").unwrap().is_numeric_keyed_object());
        assert_eq!(node.get("src").unwrap().list_items().len(), 2);
    }

    #[test]
    fn deep_nesting_is_too_deep() {
        let text = "[".repeat(10_000) + &"]".repeat(10_000);
        let err = Node::parse(&text).unwrap_err();
        assert_eq!(parse_error_code(&err), ReasonCode::TooDeep);
    }

    #[test]
    fn check_value_applies_the_payload_limits() {
        assert!(check_value(r#"{"a":[1,-2,3.5,"x",null,true],"b":{}}"#).is_ok());
        let err = check_value("1e400").unwrap_err();
        assert_eq!(parse_error_code(&err), ReasonCode::InvalidJson);
        assert!(err.to_string().contains("out of range"), "{err}");
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(
            parse_error_code(&check_value(&deep).unwrap_err()),
            ReasonCode::TooDeep
        );
        let ok = "[".repeat(127) + &"]".repeat(127);
        assert!(check_value(&ok).is_ok() && Node::parse(&ok).is_ok());
        let over = "[".repeat(128) + &"]".repeat(128);
        assert!(check_value(&over).is_err() && Node::parse(&over).is_err());
    }

    #[test]
    fn numeric_coercion() {
        assert_eq!(Node::Str("42".into()).as_i64(), Some(42));
        assert_eq!(Node::Str(" 4.5 ".into()).as_f64(), Some(4.5));
        assert_eq!(Node::Str("0x10".into()).as_f64(), None);
        assert_eq!(Node::Float(12.0).as_i64(), Some(12));
        assert_eq!(Node::Str("nan".into()).as_f64(), None);
    }

    #[test]
    fn pointer_escaping() {
        let mut p = PointerBuf::new("/payload");
        let m = p.push_key("a/b~c");
        assert_eq!(p.as_str(), "/payload/a~1b~0c");
        p.truncate(m);
        p.push_index(3);
        assert_eq!(p.as_str(), "/payload/3");
    }
}
