//! Property tests: validation never panics on arbitrary JSON, and random events generated from
//! the catalog (every type, both envelopes) validate.

use baddybugs_common::catalog::{self, Field, Req, SubtypeRule, Ty, TypeSpec};
use baddybugs_common::check_event;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9 /\\\\é_]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z_0-9]{1,8}", inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn type_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = catalog::all().iter().map(|t| t.name).collect();
    names.push("custom_app_type");
    names
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any JSON at all, as an event or as a payload of any type: an answer, never a panic.
    #[test]
    fn validation_never_panics(payload in arbitrary_json(), raw in arbitrary_json(), index in 0usize..56, name in "[a-z_.]{0,10}") {
        let names = type_names();
        let event_type = names[index % names.len()];
        let event = json!({"type": event_type, "name": name, "payload": payload, "timestamp": raw.clone()});
        let _ = check_event(&event.to_string(), 0);
        let _ = check_event(&raw.to_string(), 0);
        let event = json!({"type": event_type, "data": payload, "datetime": name});
        let _ = check_event(&event.to_string(), 0);
    }

    /// Random events built from the catalog's own description validate.
    #[test]
    fn generated_events_validate(index in 0usize..55, seed in any::<u64>(), brief in any::<bool>()) {
        let spec = &catalog::all()[index % catalog::all().len()];
        let mut rng = Lcg(seed);
        let (name, payload) = generate_event(spec, &mut rng);
        let event = if brief {
            json!({"type": spec.name, "name": name, "data": payload, "timestamp": "2025-06-10T14:53:54Z", "trace_id": "t", "environment": "staging"})
        } else {
            json!({"id": format!("id-{seed}"), "trace_id": "t", "env": "production", "type": spec.name, "name": name, "payload": payload, "context": [], "timestamp": 1749567234.25})
        };
        let text = event.to_string();
        let result = check_event(&text, 0);
        prop_assert!(result.is_ok(), "{}: {:?}\n{}", spec.name, result.err().map(|r| r.problems), text);
    }
}

/// A tiny deterministic generator (proptest supplies the seed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self) -> bool {
        self.next().is_multiple_of(2)
    }
}

fn generate_event(spec: &TypeSpec, rng: &mut Lcg) -> (String, Value) {
    // Pick a sub-type first: it decides the name (brief) or a payload key (agent).
    let (name, subtype_key, subtype) = match spec.subtype {
        SubtypeRule::None => ("generated".to_owned(), None, None),
        SubtypeRule::Name => {
            let names = spec.subtype_values();
            let pick = if names.is_empty() {
                "generated"
            } else {
                names[rng.below(names.len())]
            };
            (pick.to_owned(), None, Some(pick))
        }
        SubtypeRule::Payload { keys, values } => {
            let pick = values[rng.below(values.len())];
            (pick.to_owned(), Some(keys[0]), Some(pick))
        }
    };
    let mut object = fields_object(spec.fields, subtype, rng, 0);
    if let (Some(key), Some(value)) = (subtype_key, subtype) {
        object.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    (name, Value::Object(object))
}

fn fields_object(
    fields: &[Field],
    subtype: Option<&str>,
    rng: &mut Lcg,
    depth: usize,
) -> Map<String, Value> {
    let mut object = Map::new();
    for field in fields {
        let required = match field.required {
            Req::Always => true,
            Req::When(_) => field.is_required(subtype),
            Req::Optional => false,
        };
        if !required && rng.chance() {
            continue;
        }
        // Use the brief's name now and then: both must be accepted.
        let key = if !field.aliases.is_empty() && rng.chance() {
            field.aliases[0]
        } else {
            field.name
        };
        if !required && rng.below(5) == 0 {
            object.insert(key.to_owned(), Value::Null);
            continue;
        }
        object.insert(key.to_owned(), value_of(&field.ty, rng, depth + 1));
    }
    object
}

fn value_of(ty: &Ty, rng: &mut Lcg, depth: usize) -> Value {
    match ty {
        Ty::Any => json!({"anything": [1, "two"]}),
        Ty::Str => Value::String(format!("s{}", rng.below(1000))),
        Ty::Int => match rng.below(3) {
            0 => json!(rng.below(100_000)),
            1 => json!(format!("{}", rng.below(500))),
            _ => json!(rng.below(100) as f64),
        },
        Ty::Num => match rng.below(3) {
            0 => json!(rng.below(1000) as f64 / 7.0),
            1 => json!(rng.below(1000)),
            _ => json!(format!("{}.5", rng.below(100))),
        },
        Ty::Bool => Value::Bool(rng.chance()),
        Ty::Scalar => {
            if rng.chance() {
                json!(rng.below(99))
            } else {
                json!("u-1")
            }
        }
        Ty::Enum(values) => Value::String(values[rng.below(values.len())].to_owned()),
        Ty::EnumCi(values) => {
            let v = values[rng.below(values.len())];
            Value::String(if rng.chance() {
                v.to_ascii_uppercase()
            } else {
                v.to_owned()
            })
        }
        Ty::Obj(fields) => {
            let object = fields_object(fields, None, rng, depth);
            if object.is_empty() && rng.chance() {
                json!([])
            } else {
                Value::Object(object)
            }
        }
        Ty::Map(inner) => {
            let n = if depth > 4 { 0 } else { rng.below(3) };
            if n == 0 {
                return json!([]);
            }
            Value::Object(
                (0..n)
                    .map(|i| (format!("k{i}"), value_of(inner, rng, depth + 1)))
                    .collect(),
            )
        }
        Ty::List(inner) => {
            let n = if depth > 4 { 0 } else { rng.below(3) };
            let items: Vec<Value> = (0..n).map(|_| value_of(inner, rng, depth + 1)).collect();
            if rng.below(4) == 0 && !items.is_empty() {
                // PHP's sparse arrays: a numeric-keyed object.
                Value::Object(
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| ((i * 2).to_string(), v))
                        .collect(),
                )
            } else {
                Value::Array(items)
            }
        }
        Ty::AnyOf(options) => value_of(&options[rng.below(options.len())], rng, depth),
    }
}
