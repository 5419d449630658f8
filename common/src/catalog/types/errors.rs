//! Types: TODO (being written).

use crate::catalog::TypeSpec;

use super::placeholder;

pub(super) const EXCEPTION: TypeSpec = placeholder("exception");
pub(super) const HANDLED_EXCEPTION: TypeSpec = placeholder("handled_exception");
pub(super) const LOG: TypeSpec = placeholder("log");
pub(super) const ISSUE: TypeSpec = placeholder("issue");
pub(super) const POTENTIAL_HANDLED_ERROR: TypeSpec = placeholder("potential_handled_error");
