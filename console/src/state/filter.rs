//! The `/` filter: `type:cache env:production app:shop org:acme name:… status:500 is:error
//! trace:… reason:… free text` (a value with spaces in quotes: `name:"GET /orders"`), applied on the client to the tails (the feed keeps sending everything, so clearing a
//! filter loses nothing) and, for the pages of history, by the server where it can.

use baddybugs_common::protocol::{TailEvent, TailMalformed};

/// A parsed filter; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) event_type: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) trace_id: Option<String>,
    pub(crate) reason: Option<String>,
    /// The sending key's application (`app:` or `application:`).
    pub(crate) application: Option<String>,
    /// The sending key's organization (`org:` or `organization:`).
    pub(crate) organization: Option<String>,
    /// `status:500` or a class, `status:5xx`.
    pub(crate) status: Option<String>,
    /// `is:error`: only events flagged as errors.
    pub(crate) is_error: bool,
    /// `node:NAME` in a fleet: live rows of the nodes whose name contains it (lower-cased).
    pub(crate) node: Option<String>,
    /// Lower-cased words that must all appear somewhere.
    pub(crate) words: Vec<String>,
}

impl Filter {
    pub(crate) fn parse(text: &str) -> Self {
        let mut f = Filter::default();
        for token in tokens(text) {
            let token = token.as_str();
            let (key, value) = token.split_once(':').unwrap_or(("", token));
            let value = value.trim_matches('"').to_owned();
            // Keys are case-insensitive like the values (`TYPE:request` is `type:request`).
            match key.to_ascii_lowercase().as_str() {
                "type" | "t" if !value.is_empty() => f.event_type = Some(value),
                "name" | "n" if !value.is_empty() => f.name = Some(value),
                "env" | "environment" | "e" if !value.is_empty() => f.environment = Some(value),
                "trace" | "trace_id" if !value.is_empty() => f.trace_id = Some(value),
                "reason" | "r" if !value.is_empty() => f.reason = Some(value),
                "app" | "application" if !value.is_empty() => f.application = Some(value),
                "org" | "organization" if !value.is_empty() => f.organization = Some(value),
                "status" | "code" if !value.is_empty() => f.status = Some(value),
                "is" if value.eq_ignore_ascii_case("error") => f.is_error = true,
                "node" if !value.is_empty() => f.node = Some(value.to_ascii_lowercase()),
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
                if v.contains(' ') {
                    parts.push(format!("{k}:\"{v}\""));
                } else {
                    parts.push(format!("{k}:{v}"));
                }
            }
        };
        add("type", &self.event_type);
        add("name", &self.name);
        add("env", &self.environment);
        add("trace", &self.trace_id);
        add("reason", &self.reason);
        add("app", &self.application);
        add("org", &self.organization);
        add("status", &self.status);
        add("node", &self.node);
        if self.is_error {
            parts.push("is:error".to_owned());
        }
        parts.extend(self.words.iter().cloned());
        parts.join(" ")
    }

    /// `haystack` is the lower-cased text of the whole event (see [`event_haystack`]).
    pub(crate) fn matches_event(&self, e: &TailEvent, haystack: &str) -> bool {
        eq(&self.event_type, Some(&e.event_type))
            && contains(&self.name, &e.name)
            && status_matches(&self.status, e.status_code)
            && (!self.is_error || e.is_error)
            && eq(&self.environment, e.environment.as_ref())
            && eq(&self.trace_id, e.trace_id.as_ref())
            && eq(&self.application, Some(&e.application))
            && eq(&self.organization, Some(&e.organization))
            && self.reason.is_none()
            && self.words.iter().all(|w| haystack.contains(w.as_str()))
    }

    pub(crate) fn matches_malformed(&self, m: &TailMalformed) -> bool {
        let reason_ok = self.reason.as_ref().is_none_or(|r| {
            m.reasons
                .iter()
                .any(|p| p.code.as_str().eq_ignore_ascii_case(r))
        });
        // The feed's rejections carry no organization: `org:` does not narrow them.
        reason_ok
            && eq(&self.event_type, m.event_type.as_ref())
            && eq(&self.application, Some(&m.application))
            && self.name.is_none()
            && self.status.is_none()
            && !self.is_error
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

/// The words of a filter; a `"…"` keeps its spaces (`name:"GET /orders"` is one word).
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `name:` matches any part of the name, in any case.
fn contains(want: &Option<String>, have: &str) -> bool {
    want.as_ref()
        .is_none_or(|w| have.to_lowercase().contains(&w.to_lowercase()))
}

/// `status:404` matches that code, `status:4xx` any code of the class; nothing else matches.
pub(crate) fn status_matches(want: &Option<String>, have: Option<u16>) -> bool {
    let Some(want) = want else {
        return true;
    };
    let Some(code) = have else {
        return false;
    };
    let want = want.to_ascii_lowercase();
    match want.strip_suffix("xx") {
        Some(class) if class.len() == 1 => class.parse::<u16>().is_ok_and(|c| code / 100 == c),
        _ => want.parse::<u16>().is_ok_and(|w| w == code),
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
        "{} {} {} {} {} {} {}",
        e.id,
        e.event_type,
        e.name,
        e.trace_id.as_deref().unwrap_or(""),
        e.environment.as_deref().unwrap_or(""),
        e.application,
        e.organization
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

    /// Issue 16, item 9: `name:` is a substring (quoted when it has spaces), `status:` a code
    /// or class, `is:error` the error flag.
    #[test]
    fn name_status_and_error_filters() {
        let mut e = fixtures::event(0, "request", "GET /orders");
        let hay = event_haystack(&e);
        for text in [
            "name:GET",
            "name:get",
            "name:\"GET /orders\"",
            "status:200",
            "status:2xx",
        ] {
            assert!(Filter::parse(text).matches_event(&e, &hay), "{text}");
        }
        for text in [
            "name:\"GET /users\"",
            "status:500",
            "status:5xx",
            "is:error",
            "status:x",
        ] {
            assert!(!Filter::parse(text).matches_event(&e, &hay), "{text}");
        }
        assert_eq!(
            Filter::parse("name:\"GET /orders\" is:error status:5xx").describe(),
            "name:\"GET /orders\" status:5xx is:error"
        );
        e.status_code = Some(503);
        e.is_error = true;
        assert!(Filter::parse("type:request status:5xx is:error").matches_event(&e, &hay));
        assert!(!Filter::parse("is:error").matches_malformed(&fixtures::malformed(0)));
    }

    /// Issue 16, item 4: `app:shop` (also `application:`) and `org:` match the sending key's
    /// application and organization, not payload text.
    #[test]
    fn app_and_org_match_the_key_not_the_payload() {
        let e = fixtures::event(0, "cache", "k");
        let hay = event_haystack(&e);
        for text in ["app:shop", "application:SHOP", "org:acme app:shop"] {
            assert!(Filter::parse(text).matches_event(&e, &hay), "{text}");
        }
        let mut blog = e.clone();
        blog.application = "blog".into();
        blog.data = serde_json::json!({"note": "from the shop"});
        let hay = event_haystack(&blog);
        assert!(!Filter::parse("app:shop").matches_event(&blog, &hay));
        assert!(
            Filter::parse("shop").matches_event(&blog, &hay),
            "free text still searches"
        );
        assert!(!Filter::parse("org:other").matches_event(&e, &event_haystack(&e)));
        assert_eq!(
            Filter::parse("application:shop org:acme").describe(),
            "app:shop org:acme"
        );
        let m = fixtures::malformed(1);
        assert!(Filter::parse("app:shop").matches_malformed(&m));
        assert!(!Filter::parse("app:blog").matches_malformed(&m));
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
