//! Error reporting shared by every boundary: an error and its causes on one line.
//!
//! Errors in this crate keep their cause as a `source()` (thiserror's `#[source]`) and do not
//! repeat it in their own `Display`, as the Rust API guidelines ask. What a person reads — a
//! log line, `/readyz`'s `sink.last_error`, the quarantine message of a refused row — is the
//! whole chain, which [`Chain`] writes: `store unavailable: sqlite write: database is locked`.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, joined by `: `.
///
/// Use it where an error is reported (`tracing::error!(error = %Chain(&err), …)`), not where
/// it is wrapped: a wrapper keeps the error as its source instead.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The whole chain of `error` as one string (for values that outlive the error).
pub fn chain(error: &(dyn Error + 'static)) -> String {
    Chain(error).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn writes_every_cause_once() {
        let err = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(
            err.to_string(),
            "outer",
            "Display leaves the cause to source()"
        );
        assert_eq!(chain(&err), "outer: disk on fire");
    }
}
