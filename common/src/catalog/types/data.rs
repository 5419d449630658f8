//! Types about data access: SQL, the query builder, transactions and connections, Eloquent,
//! cache, Redis, filesystem, encryption.

use crate::catalog::columns::{ColumnRules, Src};
use crate::catalog::ty::{opt, Ty};
use crate::catalog::{sub, NameKind, Origin, SubtypeRule, TypeSpec};

use super::placeholder;

/// `cache`: one cache operation. The agent puts the key in `name` and the operation in
/// `payload.action`; the brief puts the operation in `name`.
pub(super) const CACHE: TypeSpec = TypeSpec {
    name: "cache",
    summary: "A cache hit, miss, write or forget",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the cache key (the brief: the operation)"),
    names: &[sub("hit"), sub("miss"), sub("write"), sub("forget")],
    subtype: SubtypeRule::Payload {
        keys: &["action"],
        values: &["hit", "miss", "write", "forget"],
    },
    fields: &[
        opt("action", Ty::Enum(&["hit", "miss", "write", "forget"]))
            .doc("the operation (agent); the brief carries it in name"),
        opt("key", Ty::Str).doc("brief: the key; the agent puts it in name"),
        opt("store", Ty::Str),
        opt("tags", Ty::List(&Ty::Str)),
        opt("ttl", Ty::Num).doc("seconds or null"),
        opt("expiration", Ty::Num).doc("seconds or null"),
        opt("size", Ty::Int),
        opt("value_preview", Ty::Str),
        opt("value_type", Ty::Str),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        ..ColumnRules::NONE
    },
};

pub(super) const QUERY: TypeSpec = placeholder("query");
pub(super) const MODEL: TypeSpec = placeholder("model");
pub(super) const REDIS: TypeSpec = placeholder("redis");
pub(super) const ELOQUENT: TypeSpec = placeholder("eloquent");
pub(super) const FILESYSTEM: TypeSpec = placeholder("filesystem");
pub(super) const DATABASE: TypeSpec = placeholder("database");
pub(super) const QUERY_BUILDER: TypeSpec = placeholder("query_builder");
pub(super) const ENCRYPTION: TypeSpec = placeholder("encryption");
pub(super) const OBSERVER: TypeSpec = placeholder("observer");
pub(super) const ADVANCED_ELOQUENT: TypeSpec = placeholder("advanced_eloquent");
