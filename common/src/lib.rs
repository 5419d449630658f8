//! BaddyBugs Ingest's event model, shared by the server, the console and the load generator.
//!
//! - [`envelope`]: parse one event's envelope from its raw bytes (both the brief's and the real
//!   agent's shape), keeping the payload as the exact slice that was sent;
//! - [`catalog`]: the declarative table of every event type;
//! - [`validate`]: check a payload against its catalog entry, every problem with a JSON Pointer;
//! - [`denorm`]: the denormalised columns and the derived rows (spans, exceptions);
//! - [`event`]: the single entry point, [`check_event`];
//! - [`reason`]: the closed set of rejection codes;
//! - [`drift`]: what accepted events carry that the catalog does not describe (schema drift).
#![warn(missing_docs)]

pub mod catalog;
pub mod denorm;
pub mod drift;
pub mod envelope;
pub mod event;
pub mod json;
pub mod protocol;
pub mod query;
pub mod reason;
pub mod timestamp;
pub mod validate;

pub use event::{check_event, check_event_drift, derive_event, CheckedEvent, Rejected};
pub use reason::{Problem, ReasonCode};
