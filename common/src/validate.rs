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

use crate::catalog::{Field, Ty, TypeSpec};
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
    let mut ptr = PointerBuf::new(base);
    check_object(spec.fields, payload, subtype, &mut ptr, problems);
}

fn check_object(
    fields: &[Field],
    node: &Node<'_>,
    subtype: Option<&str>,
    ptr: &mut PointerBuf,
    problems: &mut Vec<Problem>,
) {
    let is_empty_php_array = matches!(node, Node::Arr(items) if items.is_empty());
    if !matches!(node, Node::Obj(_)) && !is_empty_php_array {
        problems.push(wrong_type(ptr.as_str(), "object", node));
        return;
    }
    for field in fields {
        let found = std::iter::once(field.name)
            .chain(field.aliases.iter().copied())
            .find_map(|key| node.get(key).map(|value| (key, value)));
        match found {
            None => {
                if field.is_required(subtype) {
                    let mark = ptr.push_key(field.name);
                    problems.push(Problem::new(
                        ReasonCode::MissingField,
                        ptr.as_str(),
                        expected_of(field),
                        "absent",
                    ));
                    ptr.truncate(mark);
                }
            }
            Some((key, value)) => {
                let mark = ptr.push_key(key);
                if value.is_null() {
                    if field.is_required(subtype) && !field.nullable {
                        problems.push(Problem::new(
                            ReasonCode::WrongType,
                            ptr.as_str(),
                            field.ty.describe(),
                            "null",
                        ));
                    }
                } else {
                    check_ty(&field.ty, value, ptr, problems);
                }
                ptr.truncate(mark);
            }
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

/// Checks a value against a type, pushing problems; nested values are checked in depth.
fn check_ty(ty: &Ty, node: &Node<'_>, ptr: &mut PointerBuf, problems: &mut Vec<Problem>) {
    match ty {
        Ty::Any => {}
        Ty::Str => {
            if !matches!(node, Node::Str(_)) {
                problems.push(wrong_type(ptr.as_str(), "string", node));
            }
        }
        Ty::Int => {
            if !is_int_like(node) {
                problems.push(wrong_type(ptr.as_str(), "integer", node));
            }
        }
        Ty::Num => {
            if !is_num_like(node) {
                problems.push(wrong_type(ptr.as_str(), "number", node));
            }
        }
        Ty::Bool => {
            if !matches!(node, Node::Bool(_)) {
                problems.push(wrong_type(ptr.as_str(), "boolean", node));
            }
        }
        Ty::Scalar => {
            if !matches!(
                node,
                Node::Str(_) | Node::Int(_) | Node::UInt(_) | Node::Float(_) | Node::Bool(_)
            ) {
                problems.push(wrong_type(ptr.as_str(), "string or number", node));
            }
        }
        Ty::Enum(values) | Ty::EnumCi(values) => match node {
            Node::Str(s) => {
                let ok = if matches!(ty, Ty::EnumCi(_)) {
                    values.iter().any(|v| v.eq_ignore_ascii_case(s))
                } else {
                    values.contains(&s.as_ref())
                };
                if !ok {
                    problems.push(Problem::new(
                        ReasonCode::NotAllowed,
                        ptr.as_str(),
                        ty.describe(),
                        describe_found("string", Some(s)),
                    ));
                }
            }
            _ => problems.push(wrong_type(ptr.as_str(), &ty.describe(), node)),
        },
        Ty::Obj(fields) => check_object(fields, node, None, ptr, problems),
        Ty::Map(inner) => match node {
            Node::Obj(entries) => {
                for (key, value) in entries {
                    if value.is_null() {
                        continue;
                    }
                    let mark = ptr.push_key(key);
                    check_ty(inner, value, ptr, problems);
                    ptr.truncate(mark);
                }
            }
            Node::Arr(items) if items.is_empty() => {}
            _ => problems.push(wrong_type(ptr.as_str(), &ty.describe(), node)),
        },
        Ty::List(inner) => match node {
            Node::Arr(items) => {
                for (index, item) in items.iter().enumerate() {
                    if item.is_null() && !matches!(inner, Ty::Any) {
                        continue;
                    }
                    let mark = ptr.push_index(index);
                    check_ty(inner, item, ptr, problems);
                    ptr.truncate(mark);
                }
            }
            Node::Obj(entries) if node.is_numeric_keyed_object() => {
                for (key, value) in entries {
                    if value.is_null() {
                        continue;
                    }
                    let mark = ptr.push_key(key);
                    check_ty(inner, value, ptr, problems);
                    ptr.truncate(mark);
                }
            }
            _ => problems.push(wrong_type(ptr.as_str(), &ty.describe(), node)),
        },
        Ty::AnyOf(options) => check_any_of(ty, options, node, ptr, problems),
    }
}

/// An alternative whose outer kind matches is checked in depth; when several match, the first
/// that passes wins, else the first candidate's problems are reported.
fn check_any_of(
    ty: &Ty,
    options: &[Ty],
    node: &Node<'_>,
    ptr: &mut PointerBuf,
    problems: &mut Vec<Problem>,
) {
    let mut candidates = options.iter().filter(|option| kind_fits(option, node));
    let Some(first) = candidates.next() else {
        problems.push(wrong_type(ptr.as_str(), &ty.describe(), node));
        return;
    };
    let mut first_problems = Vec::new();
    check_ty(first, node, ptr, &mut first_problems);
    if first_problems.is_empty() {
        return;
    }
    for option in candidates {
        let mut scratch = Vec::new();
        check_ty(option, node, ptr, &mut scratch);
        if scratch.is_empty() {
            return;
        }
    }
    problems.extend(first_problems);
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
    use crate::catalog::{opt, req, ColumnRules, NameKind, Origin, SubtypeRule};

    const SPEC: TypeSpec = TypeSpec {
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

    #[test]
    fn not_an_object() {
        assert_eq!(
            problems(r#"[1]"#),
            vec![(ReasonCode::WrongType, "/payload".into())]
        );
    }
}
