//! Ingest server library.
