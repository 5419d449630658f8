//! Checks one event's payload against its catalog entry and returns every problem.
//!
//! In: a [`TypeSpec`], the payload [`Node`], the resolved sub-type and the pointer prefix
//! (`/payload` or `/data`). Out: a list of [`Problem`]s, empty when the payload is valid; every
//! problem carries a stable code, the JSON Pointer of the field, what was expected and found.
//!
//! Strict where the brief is: required fields present, enums respected, nested shapes right.
//! Lenient where PHP forces it:
//! - `[]` where an object or map is expected (PHP's empty array);
//! - an object with numeric keys (`{"0":…,"4":…}`), or `{}`, where a list is expected;
//! - numeric strings where a number is expected (coerced for columns, kept as sent in `data`);
//! - integer literals where floats are expected (`12.0` is printed `12`), and integral floats
//!   where integers are expected;
//! - absent optional keys and explicit nulls alike; unknown extra fields anywhere.
//!
//! Each leniency used, and each extra field of an object whose fields the catalog lists, is
//! schema drift ([`crate::drift`]): reported when asked ([`validate_payload_drift`]), never a
//! problem. A field declares the lenient forms the real agent sends for it
//! ([`Field::native`]) and whether its object is open ([`Field::other_keys`]); those are not
//! drift. Integer literals for floats are never drift: PHP prints every integral float so.

use crate::catalog::{Field, Forms, Ty, TypeSpec};
use crate::drift::{sample_of, Collapsed, Divergence, DriftKind};
use crate::json::{kind_name, Node, PointerBuf};
use crate::reason::{describe_found, Problem, ReasonCode};

/// Validates a payload; pushes every problem found onto `problems`.
pub fn validate_payload(
    spec: &TypeSpec,
    payload: &Node<'_>,
    subtype: Option<&str>,
    base: &str,
    problems: &mut Vec<Problem>,
) {
    validate_payload_drift(spec, payload, subtype, base, problems, None);
}

/// Validates a payload like [`validate_payload`] and, when `drift` is given, pushes onto it
/// every divergence that was accepted silently ([`crate::drift`]): keys the catalog does not
/// list (`unknown_field`) and values read through a lenient form the field does not declare
/// native (`coerced`). Nothing is allocated when there is none.
pub fn validate_payload_drift(
    spec: &TypeSpec,
    payload: &Node<'_>,
    subtype: Option<&str>,
    base: &str,
    problems: &mut Vec<Problem>,
    drift: Option<&mut Vec<Divergence>>,
) {
    let mut checker = Checker {
        ptr: PointerBuf::new(base),
        base_segments: base.split('/').skip(1).count(),
        depth: 0,
        collapsed: Collapsed::default(),
        problems: std::mem::take(problems),
        detect: drift.is_some(),
        brief_envelope: base == "/data",
        drift: Vec::new(),
    };
    // The agent sends an empty payload as `[]` (AGENT-WIRE §2): native at the root.
    let root = Ctx {
        native: Forms::EMPTY_ARRAY,
        open: spec.other_keys.allowed(subtype) || spec.fields.is_empty(),
    };
    checker.check_object(spec.fields, payload, subtype, root);
    *problems = checker.problems;
    if let Some(out) = drift {
        out.append(&mut checker.drift);
    }
}

/// What the nearest enclosing field declares about its value.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    native: Forms,
    open: bool,
}

impl Ctx {
    fn of(field: &Field) -> Ctx {
        Ctx {
            native: field.native,
            open: field.other_keys,
        }
    }
}

struct Checker {
    ptr: PointerBuf,
    base_segments: usize,
    /// Segments pushed after the base.
    depth: usize,
    collapsed: Collapsed,
    problems: Vec<Problem>,
    detect: bool,
    /// The payload came as the brief's `data`, whose field names are the aliases.
    brief_envelope: bool,
    drift: Vec<Divergence>,
}

impl Checker {
    fn enter_key(&mut self, key: &str, wild: bool) -> usize {
        if self.detect {
            self.collapsed.set(self.depth, wild);
        }
        self.depth += 1;
        self.ptr.push_key(key)
    }

    fn enter_index(&mut self, index: usize) -> usize {
        if self.detect {
            self.collapsed.set(self.depth, true);
        }
        self.depth += 1;
        self.ptr.push_index(index)
    }

    fn leave(&mut self, mark: usize) {
        self.depth -= 1;
        self.ptr.truncate(mark);
    }

    /// Records a divergence at the current pointer (or one key below it).
    fn note(&mut self, kind: DriftKind, below: Option<&str>, node: &Node<'_>) {
        let mut path = self.collapsed.apply(self.ptr.as_str(), self.base_segments);
        if let Some(key) = below {
            let mut child = PointerBuf::new("");
            child.push_key(key);
            path.push_str(child.as_str());
        }
        self.drift.push(Divergence {
            path,
            kind,
            sample: sample_of(node),
        });
    }

    /// A lenient form was used: drift unless the field declares it native.
    fn coerced(&mut self, ctx: Ctx, form: Forms, node: &Node<'_>) {
        if self.detect && !ctx.native.has(form) {
            self.note(DriftKind::Coerced, None, node);
        }
    }

    fn wrong_type(&mut self, expected: &str, node: &Node<'_>) {
        let problem = wrong_type(self.ptr.as_str(), expected, node);
        self.problems.push(problem);
    }

    fn check_object(&mut self, fields: &[Field], node: &Node<'_>, subtype: Option<&str>, ctx: Ctx) {
        let entries: &[_] = match node {
            Node::Obj(entries) => entries,
            Node::Arr(items) if items.is_empty() => {
                self.coerced(ctx, Forms::EMPTY_ARRAY, node);
                &[]
            }
            _ => {
                self.wrong_type("object", node);
                return;
            }
        };
        // Which keys were matched by a field (the first 128; later ones are looked up again).
        let mut matched: u128 = 0;
        for field in fields {
            let found = std::iter::once(field.name)
                .chain(field.aliases.iter().copied())
                .find_map(|key| {
                    entries
                        .iter()
                        .rposition(|(k, _)| k == key)
                        .map(|pos| (key, pos))
                });
            match found {
                None => {
                    if field.is_required(subtype) {
                        let mark = self.ptr.push_key(field.name);
                        self.problems.push(Problem::new(
                            ReasonCode::MissingField,
                            self.ptr.as_str(),
                            expected_of(field),
                            "absent",
                        ));
                        self.ptr.truncate(mark);
                    }
                }
                Some((key, pos)) => {
                    if pos < 128 {
                        matched |= 1 << pos;
                    }
                    let value = &entries[pos].1;
                    let mark = self.enter_key(key, false);
                    if self.detect
                        && key != field.name
                        && !self.brief_envelope
                        && !field.native.has(Forms::ALIAS)
                    {
                        self.note(DriftKind::Coerced, None, value);
                    }
                    if value.is_null() {
                        if field.is_required(subtype) && !field.nullable {
                            self.problems.push(Problem::new(
                                ReasonCode::WrongType,
                                self.ptr.as_str(),
                                field.ty.describe(),
                                "null",
                            ));
                        }
                    } else {
                        self.check_ty(&field.ty, value, Ctx::of(field));
                    }
                    self.leave(mark);
                }
            }
        }
        if self.detect && !ctx.open && !fields.is_empty() {
            for (pos, (key, value)) in entries.iter().enumerate() {
                if pos < 128 && matched & (1 << pos) != 0 {
                    continue;
                }
                let known = fields
                    .iter()
                    .any(|f| f.name == key || f.aliases.contains(&key.as_ref()));
                if !known {
                    self.note(DriftKind::UnknownField, Some(key), value);
                }
            }
        }
    }

    /// Checks a value against a type, pushing problems; nested values are checked in depth.
    fn check_ty(&mut self, ty: &Ty, node: &Node<'_>, ctx: Ctx) {
        match ty {
            Ty::Any => {}
            Ty::Str => {
                if !matches!(node, Node::Str(_)) {
                    self.wrong_type("string", node);
                }
            }
            Ty::Int => {
                if !is_int_like(node) {
                    self.wrong_type("integer", node);
                } else if matches!(node, Node::Str(_)) {
                    self.coerced(ctx, Forms::NUMERIC_STRING, node);
                } else if matches!(node, Node::Float(_)) {
                    self.coerced(ctx, Forms::INTEGRAL_FLOAT, node);
                }
            }
            Ty::Num => {
                if !is_num_like(node) {
                    self.wrong_type("number", node);
                } else if matches!(node, Node::Str(_)) {
                    self.coerced(ctx, Forms::NUMERIC_STRING, node);
                }
            }
            Ty::Bool => {
                if !matches!(node, Node::Bool(_)) {
                    self.wrong_type("boolean", node);
                }
            }
            Ty::Scalar => {
                if !matches!(
                    node,
                    Node::Str(_) | Node::Int(_) | Node::UInt(_) | Node::Float(_) | Node::Bool(_)
                ) {
                    self.wrong_type("string or number", node);
                }
            }
            Ty::Enum(values) | Ty::EnumCi(values) => match node {
                Node::Str(s) => {
                    let exact = values.contains(&s.as_ref());
                    let ok = exact
                        || (matches!(ty, Ty::EnumCi(_))
                            && values.iter().any(|v| v.eq_ignore_ascii_case(s)));
                    if !ok {
                        self.problems.push(Problem::new(
                            ReasonCode::NotAllowed,
                            self.ptr.as_str(),
                            ty.describe(),
                            describe_found("string", Some(s)),
                        ));
                    } else if !exact {
                        self.coerced(ctx, Forms::OTHER_CASE, node);
                    }
                }
                _ => self.wrong_type(&ty.describe(), node),
            },
            Ty::Obj(fields) => self.check_object(fields, node, None, ctx),
            Ty::Map(inner) => match node {
                Node::Obj(entries) => {
                    for (key, value) in entries {
                        if value.is_null() {
                            continue;
                        }
                        let mark = self.enter_key(key, true);
                        self.check_ty(inner, value, ctx);
                        self.leave(mark);
                    }
                }
                Node::Arr(items) if items.is_empty() => {
                    self.coerced(ctx, Forms::EMPTY_ARRAY, node);
                }
                _ => self.wrong_type(&ty.describe(), node),
            },
            Ty::List(inner) => match node {
                Node::Arr(items) => {
                    for (index, item) in items.iter().enumerate() {
                        if item.is_null() && !matches!(inner, Ty::Any) {
                            continue;
                        }
                        let mark = self.enter_index(index);
                        self.check_ty(inner, item, ctx);
                        self.leave(mark);
                    }
                }
                Node::Obj(entries) if node.is_numeric_keyed_object() => {
                    self.coerced(ctx, Forms::NUMERIC_KEYS, node);
                    for (key, value) in entries {
                        if value.is_null() {
                            continue;
                        }
                        let mark = self.enter_key(key, true);
                        self.check_ty(inner, value, ctx);
                        self.leave(mark);
                    }
                }
                _ => self.wrong_type(&ty.describe(), node),
            },
            Ty::AnyOf(options) => self.check_any_of(ty, options, node, ctx),
        }
    }

    /// An alternative whose outer kind matches is checked in depth. The first that passes
    /// without drift wins, else the first that passes (with its drift), else the first
    /// candidate's problems are reported.
    fn check_any_of(&mut self, ty: &Ty, options: &[Ty], node: &Node<'_>, ctx: Ctx) {
        let mut candidates = options.iter().filter(|option| kind_fits(option, node));
        let Some(first) = candidates.next() else {
            self.wrong_type(&ty.describe(), node);
            return;
        };
        let problems = std::mem::take(&mut self.problems);
        let drift = std::mem::take(&mut self.drift);
        self.check_ty(first, node, ctx);
        let first_problems = std::mem::take(&mut self.problems);
        let first_drift = std::mem::take(&mut self.drift);
        let mut passing: Option<Vec<Divergence>> = first_problems.is_empty().then_some(first_drift);
        if passing.as_ref().is_none_or(|d| !d.is_empty()) {
            for option in candidates {
                self.check_ty(option, node, ctx);
                let scratch = std::mem::take(&mut self.problems);
                let scratch_drift = std::mem::take(&mut self.drift);
                if scratch.is_empty() {
                    let clean = scratch_drift.is_empty();
                    if passing.is_none() || clean {
                        passing = Some(scratch_drift);
                    }
                    if clean {
                        break;
                    }
                }
            }
        }
        self.problems = problems;
        self.drift = drift;
        match passing {
            Some(mut found) => self.drift.append(&mut found),
            None => self.problems.extend(first_problems),
        }
    }
}

fn expected_of(field: &Field) -> String {
    if field.aliases.is_empty() {
        field.ty.describe()
    } else {
        format!(
            "{} (also accepted as {})",
            field.ty.describe(),
            field.aliases.join(", ")
        )
    }
}

/// Whether a node's outer kind can be a value of the type (without looking inside).
fn kind_fits(ty: &Ty, node: &Node<'_>) -> bool {
    match ty {
        Ty::Any => true,
        Ty::Str | Ty::Enum(_) | Ty::EnumCi(_) => matches!(node, Node::Str(_)),
        Ty::Int => is_int_like(node),
        Ty::Num => is_num_like(node),
        Ty::Bool => matches!(node, Node::Bool(_)),
        Ty::Scalar => matches!(
            node,
            Node::Str(_) | Node::Int(_) | Node::UInt(_) | Node::Float(_) | Node::Bool(_)
        ),
        Ty::Obj(_) | Ty::Map(_) => {
            matches!(node, Node::Obj(_)) || matches!(node, Node::Arr(a) if a.is_empty())
        }
        Ty::List(_) => matches!(node, Node::Arr(_)) || node.is_numeric_keyed_object(),
        Ty::AnyOf(options) => options.iter().any(|o| kind_fits(o, node)),
    }
}

fn is_int_like(node: &Node<'_>) -> bool {
    match node {
        Node::Int(_) | Node::UInt(_) => true,
        Node::Float(f) => f.fract() == 0.0,
        Node::Str(_) => node.as_i64().is_some(),
        _ => false,
    }
}

fn is_num_like(node: &Node<'_>) -> bool {
    match node {
        Node::Int(_) | Node::UInt(_) | Node::Float(_) => true,
        Node::Str(_) => node.as_f64().is_some(),
        _ => false,
    }
}

fn wrong_type(path: &str, expected: &str, node: &Node<'_>) -> Problem {
    let excerpt = match node {
        Node::Str(s) => Some(s.to_string()),
        Node::Int(_) | Node::UInt(_) | Node::Float(_) | Node::Bool(_) => node.scalar_text(),
        _ => None,
    };
    Problem::new(
        ReasonCode::WrongType,
        path,
        expected,
        describe_found(kind_name(node), excerpt.as_deref()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{opt, req, ColumnRules, NameKind, Origin, OtherKeys, SubtypeRule};

    const SPEC: TypeSpec = TypeSpec {
        other_keys: OtherKeys::Never,
        name: "t",
        summary: "",
        origin: Origin::Both,
        name_kind: NameKind::Fixed,
        names: &[],
        subtype: SubtypeRule::Payload {
            keys: &["status"],
            values: &["a", "b"],
        },
        fields: &[
            req("status", Ty::Enum(&["a", "b"])),
            req("n", Ty::Num).alias(&["number"]),
            opt("id", Ty::Int).when(&["b"]),
            opt(
                "frames",
                Ty::List(&Ty::Obj(&[req("file", Ty::Str), opt("line", Ty::Int)])),
            ),
            opt("headers", Ty::Map(&Ty::Str)),
            opt("code", Ty::AnyOf(&[Ty::Int, Ty::Str])),
            opt("sizes", Ty::Map(&Ty::Int)),
            opt("size", Ty::Int).native(Forms::NUMERIC_STRING),
            opt("tags", Ty::Map(&Ty::Str)).native(Forms::EMPTY_ARRAY),
            opt("open", Ty::Obj(&[opt("x", Ty::Int)])).other_keys(),
            opt("level", Ty::EnumCi(&["warn"])),
        ],
        columns: ColumnRules::NONE,
    };

    fn problems(text: &str) -> Vec<(ReasonCode, String)> {
        let node = Node::parse(text).unwrap();
        let subtype = SPEC.subtype_of("", &node);
        let mut out = Vec::new();
        validate_payload(&SPEC, &node, subtype, "/payload", &mut out);
        out.into_iter().map(|p| (p.code, p.path)).collect()
    }

    #[test]
    fn valid_with_php_quirks() {
        assert!(problems(
            r#"{"status":"a","n":"12.5","frames":{"0":{"file":"x","line":"3"}},"headers":[]}"#
        )
        .is_empty());
        assert!(problems(r#"{"status":"a","number":12,"frames":[],"code":"23000"}"#).is_empty());
        assert!(problems(r#"{"status":"b","n":1,"id":7.0,"frames":{}}"#).is_empty());
    }

    #[test]
    fn every_problem_is_reported() {
        let found =
            problems(r#"{"status":"c","frames":[{"line":"x"}],"headers":{"a":1},"code":[]}"#);
        assert_eq!(
            found,
            vec![
                (ReasonCode::NotAllowed, "/payload/status".into()),
                (ReasonCode::MissingField, "/payload/n".into()),
                (ReasonCode::MissingField, "/payload/frames/0/file".into()),
                (ReasonCode::WrongType, "/payload/frames/0/line".into()),
                (ReasonCode::WrongType, "/payload/headers/a".into()),
                (ReasonCode::WrongType, "/payload/code".into()),
            ]
        );
    }

    #[test]
    fn required_when_subtype() {
        assert_eq!(
            problems(r#"{"status":"b","n":1}"#),
            vec![(ReasonCode::MissingField, "/payload/id".into())]
        );
    }

    fn drift(text: &str) -> Vec<(String, DriftKind)> {
        let node = Node::parse(text).unwrap();
        let subtype = SPEC.subtype_of("", &node);
        let (mut problems, mut out) = (Vec::new(), Vec::new());
        validate_payload_drift(
            &SPEC,
            &node,
            subtype,
            "/payload",
            &mut problems,
            Some(&mut out),
        );
        assert!(problems.is_empty(), "{problems:?}");
        out.into_iter().map(|d| (d.path, d.kind)).collect()
    }

    #[test]
    fn the_canonical_shape_has_no_drift_and_allocates_nothing() {
        let node = Node::parse(
            r#"{"status":"a","n":12,"frames":[{"file":"x","line":3}],"headers":{"h":"v"},"code":"23000","open":{"x":1}}"#,
        )
        .unwrap();
        let (mut problems, mut out) = (Vec::new(), Vec::new());
        validate_payload_drift(
            &SPEC,
            &node,
            None,
            "/payload",
            &mut problems,
            Some(&mut out),
        );
        assert!(
            problems.is_empty() && out.is_empty(),
            "{problems:?} {out:?}"
        );
        assert_eq!(out.capacity(), 0, "no drift, no allocation");
        // An empty payload sent as PHP's `[]` is how the agent sends it: native at the root
        // (here it misses required fields, which is another matter).
        let node = Node::parse("[]").unwrap();
        validate_payload_drift(
            &SPEC,
            &node,
            None,
            "/payload",
            &mut problems,
            Some(&mut out),
        );
        assert!(!problems.is_empty() && out.is_empty(), "{out:?}");
    }

    #[test]
    fn every_leniency_is_coerced_drift_with_collapsed_paths() {
        let found = drift(
            r#"{"status":"a","number":"12","id":7.0,"frames":{"3":{"file":"x","line":"4","extra":1}},"headers":[],"level":"WARN"}"#,
        );
        assert_eq!(
            found,
            vec![
                ("/payload/number".into(), DriftKind::Coerced),
                ("/payload/number".into(), DriftKind::Coerced),
                ("/payload/id".into(), DriftKind::Coerced),
                ("/payload/frames".into(), DriftKind::Coerced),
                ("/payload/frames/*/line".into(), DriftKind::Coerced),
                ("/payload/frames/*/extra".into(), DriftKind::UnknownField),
                ("/payload/headers".into(), DriftKind::Coerced),
                ("/payload/level".into(), DriftKind::Coerced),
            ]
        );
        // Array indexes and map keys collapse too; a map's keys are never unknown fields.
        let found = drift(
            r#"{"status":"a","n":1,"frames":[{"file":"a"},{"file":"b","x":1},{"file":"c","x":2}],"sizes":{"k1":"3"}}"#,
        );
        assert_eq!(
            found,
            vec![
                ("/payload/frames/*/x".into(), DriftKind::UnknownField),
                ("/payload/frames/*/x".into(), DriftKind::UnknownField),
                ("/payload/sizes/*".into(), DriftKind::Coerced),
            ]
        );
    }

    #[test]
    fn aliases_are_drift_only_in_the_agents_envelope() {
        let node = Node::parse(r#"{"status":"a","number":1}"#).unwrap();
        let (mut problems, mut out) = (Vec::new(), Vec::new());
        validate_payload_drift(&SPEC, &node, None, "/data", &mut problems, Some(&mut out));
        assert!(problems.is_empty() && out.is_empty(), "{out:?}");
        assert_eq!(
            drift(r#"{"status":"a","number":1}"#),
            vec![("/payload/number".into(), DriftKind::Coerced)]
        );
    }

    #[test]
    fn native_forms_and_open_objects_are_not_drift() {
        assert_eq!(
            drift(r#"{"status":"a","n":1,"size":"12","tags":[],"open":{"any":1},"level":"warn"}"#),
            vec![]
        );
        assert_eq!(
            drift(r#"{"status":"a","n":1,"surprise":{"a":1}}"#),
            vec![("/payload/surprise".into(), DriftKind::UnknownField)]
        );
    }

    #[test]
    fn not_an_object() {
        assert_eq!(
            problems(r#"[1]"#),
            vec![(ReasonCode::WrongType, "/payload".into())]
        );
    }
}
