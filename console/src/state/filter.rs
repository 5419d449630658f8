//! The `/` filter: `type:cache env:production name:… trace:… reason:… free text`, applied on the
//! client to the tails (the feed keeps sending everything, so clearing a filter loses nothing).

use baddybugs_common::protocol::{TailEvent, TailMalformed};

/// A parsed filter; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) event_type: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) trace_id: Option<String>,
    pub(crate) reason: Option<String>,
    /// Lower-cased words that must all appear somewhere.
    pub(crate) words: Vec<String>,
}

impl Filter {
    pub(crate) fn parse(text: &str) -> Self {
        let mut f = Filter::default();
        for token in text.split_whitespace() {
            let (key, value) = token.split_once(':').unwrap_or(("", token));
            let value = value.to_owned();
            // Keys are case-insensitive like the values (`TYPE:request` is `type:request`).
            match key.to_ascii_lowercase().as_str() {
                "type" | "t" if !value.is_empty() => f.event_type = Some(value),
                "name" | "n" if !value.is_empty() => f.name = Some(value),
                "env" | "environment" | "e" if !value.is_empty() => f.environment = Some(value),
                "trace" | "trace_id" if !value.is_empty() => f.trace_id = Some(value),
                "reason" | "r" if !value.is_empty() => f.reason = Some(value),
                _ => f.words.push(token.to_lowercase()),
            }
        }
        f
    }

    pub(crate) fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// The filter written back in its canonical form (for the status line).
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{k}:{v}"));
            }
        };
        add("type", &self.event_type);
        add("name", &self.name);
        add("env", &self.environment);
        add("trace", &self.trace_id);
        add("reason", &self.reason);
        parts.extend(self.words.iter().cloned());
        parts.join(" ")
    }

    /// `haystack` is the lower-cased text of the whole event (see [`event_haystack`]).
    pub(crate) fn matches_event(&self, e: &TailEvent, haystack: &str) -> bool {
        eq(&self.event_type, Some(&e.event_type))
            && eq(&self.name, Some(&e.name))
            && eq(&self.environment, e.environment.as_ref())
            && eq(&self.trace_id, e.trace_id.as_ref())
            && self.reason.is_none()
            && self.words.iter().all(|w| haystack.contains(w.as_str()))
    }

    pub(crate) fn matches_malformed(&self, m: &TailMalformed) -> bool {
        let reason_ok = self.reason.as_ref().is_none_or(|r| {
            m.reasons
                .iter()
                .any(|p| p.code.as_str().eq_ignore_ascii_case(r))
        });
        reason_ok
            && eq(&self.event_type, m.event_type.as_ref())
            && self.name.is_none()
            && self.environment.is_none()
            && self.trace_id.is_none()
            && self.words.iter().all(|w| {
                m.raw.to_lowercase().contains(w.as_str())
                    || m.reasons
                        .iter()
                        .any(|p| p.message.to_lowercase().contains(w.as_str()))
            })
    }
}

fn eq(want: &Option<String>, have: Option<&String>) -> bool {
    match want {
        None => true,
        Some(w) => have.is_some_and(|h| h.eq_ignore_ascii_case(w)),
    }
}

/// The lower-cased text a free-text filter searches (computed once per event).
pub(crate) fn event_haystack(e: &TailEvent) -> String {
    let mut s = format!(
        "{} {} {} {} {} {}",
        e.id,
        e.event_type,
        e.name,
        e.trace_id.as_deref().unwrap_or(""),
        e.environment.as_deref().unwrap_or(""),
        e.application
    );
    s.push(' ');
    s.push_str(&e.data.to_string());
    s.push(' ');
    s.push_str(&e.envelope.to_string());
    s.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures;

    #[test]
    fn parses_keys_and_words() {
        let f = Filter::parse("type:cache env:production  Cart name:x trace:abc reason:wrong_type");
        assert_eq!(f.event_type.as_deref(), Some("cache"));
        assert_eq!(f.environment.as_deref(), Some("production"));
        assert_eq!(f.name.as_deref(), Some("x"));
        assert_eq!(f.trace_id.as_deref(), Some("abc"));
        assert_eq!(f.reason.as_deref(), Some("wrong_type"));
        assert_eq!(f.words, vec!["cart"]);
        assert_eq!(
            f.describe(),
            "type:cache name:x env:production trace:abc reason:wrong_type cart"
        );
        assert!(Filter::parse("   ").is_empty());
    }

    /// Issue 16: `TYPE:request` matched nothing (the key was taken as free text).
    #[test]
    fn keys_and_values_are_case_insensitive() {
        let f = Filter::parse("TYPE:Cache Env:PRODUCTION");
        assert_eq!(f.event_type.as_deref(), Some("Cache"));
        assert_eq!(f.environment.as_deref(), Some("PRODUCTION"));
        assert!(f.words.is_empty(), "{:?}", f.words);
        let e = fixtures::event(1, "cache", "cart:9b1deb4d");
        assert!(f.matches_event(&e, &event_haystack(&e)));
    }

    #[test]
    fn matches_events_and_malformed() {
        let e = fixtures::event(1, "cache", "cart:9b1deb4d");
        let hay = event_haystack(&e);
        assert!(Filter::parse("type:cache env:production").matches_event(&e, &hay));
        assert!(Filter::parse("CART").matches_event(&e, &hay));
        assert!(!Filter::parse("type:query").matches_event(&e, &hay));
        assert!(!Filter::parse("nothing-like-this").matches_event(&e, &hay));
        let m = fixtures::malformed(1);
        assert!(Filter::parse("reason:wrong_type").matches_malformed(&m));
        assert!(!Filter::parse("reason:too_large").matches_malformed(&m));
    }
}
