//! API keys: who is posting, and may they.
//!
//! In: the request headers (and, for the signature, the inflated body). Out: the [`KeyInfo`]
//! of the API key (its organization, application, signing secret and rate limiter) or an
//! [`AuthError`] naming the check that failed (→ 401). The signature is the agent's
//! `X-Signature = hex(HMAC-SHA256(secret, "<X-Timestamp>.<uncompressed body>"))`; the secret is
//! the key's signing secret or, as the agent defaults, the key itself. Clock skew is checked on
//! `X-Timestamp` only, never on the events' own timestamps (agents re-send old batches).
//! Rate limits are per key (token bucket over events, off by default) → 429 with Retry-After.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{clock::DefaultClock, state::InMemoryState, state::NotKeyed, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use crate::config::{ApiKeyConfig, IngestConfig};

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing API key: send `Authorization: Bearer <key>`")]
    MissingKey,
    /// The key is not configured.
    #[error("unknown API key")]
    UnknownKey,
    /// The key requires signed requests and this one is not.
    #[error("this key requires signed requests: send X-Signature and X-Timestamp")]
    SignatureRequired,
    /// `X-Signature` without `X-Timestamp` (or the reverse).
    #[error("X-Signature and X-Timestamp must be sent together")]
    IncompleteSignature,
    /// `X-Timestamp` is not a number of seconds.
    #[error("X-Timestamp is not a Unix time in seconds")]
    BadTimestamp,
    /// `X-Timestamp` is too far from the server clock.
    #[error("X-Timestamp is {skew_secs} s away from the server clock (allowed: {allowed_secs} s)")]
    StaleTimestamp {
        /// Observed distance.
        skew_secs: i64,
        /// Allowed distance.
        allowed_secs: u64,
    },
    /// `X-Signature` is not 64 hex digits.
    #[error("X-Signature is not a hex HMAC-SHA256")]
    BadSignatureFormat,
    /// The HMAC does not match the body.
    #[error("X-Signature does not match the body (HMAC-SHA256 over \"<X-Timestamp>.<uncompressed body>\")")]
    SignatureMismatch,
}

impl AuthError {
    /// A short stable code for the JSON error body and the metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingKey => "missing_key",
            AuthError::UnknownKey => "unknown_key",
            AuthError::SignatureRequired => "signature_required",
            AuthError::IncompleteSignature => "incomplete_signature",
            AuthError::BadTimestamp => "bad_x_timestamp",
            AuthError::StaleTimestamp { .. } => "stale_x_timestamp",
            AuthError::BadSignatureFormat => "bad_signature_format",
            AuthError::SignatureMismatch => "signature_mismatch",
        }
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// An API key as the server uses it.
pub struct KeyInfo {
    /// The key.
    pub key: String,
    /// Its organization.
    pub organization: String,
    /// Its application.
    pub application: String,
    secret: Vec<u8>,
    require_signature: bool,
    limiter: Option<Limiter>,
}

impl std::fmt::Debug for KeyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyInfo")
            .field("organization", &self.organization)
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

/// The configured keys.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: HashMap<String, Arc<KeyInfo>>,
}

impl KeyRing {
    /// Builds the ring from the configuration.
    pub fn new(keys: &[ApiKeyConfig], ingest: &IngestConfig) -> KeyRing {
        let quota = NonZeroU32::new(ingest.rate_limit_events_per_sec).map(|rate| {
            let burst = NonZeroU32::new(ingest.rate_limit_burst_events).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        });
        KeyRing {
            keys: keys
                .iter()
                .map(|k| {
                    let info = KeyInfo {
                        key: k.key.clone(),
                        organization: k.organization.clone(),
                        application: k.application.clone(),
                        secret: k
                            .secret
                            .clone()
                            .unwrap_or_else(|| k.key.clone())
                            .into_bytes(),
                        require_signature: k.require_signature,
                        limiter: quota.map(RateLimiter::direct),
                    };
                    (k.key.clone(), Arc::new(info))
                })
                .collect(),
        }
    }

    /// Finds the key of a request (`Authorization: Bearer <key>`).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<KeyInfo>, AuthError> {
        let key = bearer(headers).ok_or(AuthError::MissingKey)?;
        self.keys.get(key).cloned().ok_or(AuthError::UnknownKey)
    }

    /// Who sent a request, as the metrics and the feed name it (never the key itself): the
    /// key's `organization/application`, or a fingerprint of a key that is not configured.
    pub fn sender(&self, authorization: Option<&http::HeaderValue>) -> String {
        let token = authorization.and_then(bearer_of);
        match token.and_then(|t| self.keys.get(t)) {
            Some(info) => format!("{}/{}", info.organization, info.application),
            None => crate::metrics::sender_of_key(token),
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    bearer_of(headers.get(http::header::AUTHORIZATION)?)
}

/// The bearer token of an `Authorization` value, if any.
fn bearer_of(value: &http::HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether the request was signed (and verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// Signature present and valid.
    Yes,
    /// No signature headers (allowed for this key).
    No,
}

impl KeyInfo {
    /// Verifies `X-Signature` / `X-Timestamp` over the inflated body.
    pub fn verify_signature(
        &self,
        headers: &SignatureHeaders,
        inflated_body: &[u8],
        now_unix_secs: i64,
        allowed_skew_secs: u64,
    ) -> Result<Signed, AuthError> {
        let signature = headers.signature.as_deref();
        let timestamp = headers.timestamp.as_deref();
        let (signature, timestamp) = match (signature, timestamp) {
            (None, None) if self.require_signature => return Err(AuthError::SignatureRequired),
            (None, None) => return Ok(Signed::No),
            (Some(s), Some(t)) => (s, t),
            _ => return Err(AuthError::IncompleteSignature),
        };
        let ts: i64 = timestamp
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| v as i64)
            .ok_or(AuthError::BadTimestamp)?;
        let skew = (now_unix_secs - ts).abs();
        if skew > allowed_skew_secs as i64 {
            return Err(AuthError::StaleTimestamp {
                skew_secs: skew,
                allowed_secs: allowed_skew_secs,
            });
        }
        let expected = hex::decode(signature.trim()).map_err(|_| AuthError::BadSignatureFormat)?;
        if expected.len() != 32 {
            return Err(AuthError::BadSignatureFormat);
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .map_err(|_| AuthError::SignatureMismatch)?;
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(inflated_body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&expected)
            .map(|()| Signed::Yes)
            .map_err(|_| AuthError::SignatureMismatch)
    }

    /// Whether this key refuses unsigned requests.
    pub fn requires_signature(&self) -> bool {
        self.require_signature
    }

    /// Takes `events` tokens from the key's bucket; `Err(wait)` says how long until they fit.
    /// A batch larger than the burst is let through (it could never fit otherwise).
    pub fn check_rate(&self, events: usize) -> Result<(), Duration> {
        let (Some(limiter), Some(n)) = (
            &self.limiter,
            NonZeroU32::new(u32::try_from(events).unwrap_or(u32::MAX)),
        ) else {
            return Ok(());
        };
        match limiter.check_n(n) {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(not_until)) => {
                Err(not_until.wait_time_from(governor::clock::Clock::now(&DefaultClock::default())))
            }
        }
    }
}

/// The signature headers of a request, owned so the check can run off the async workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `X-Signature`.
    pub signature: Option<String>,
    /// `X-Timestamp`.
    pub timestamp: Option<String>,
}

impl SignatureHeaders {
    /// Reads them from the request headers.
    pub fn from_headers(headers: &HeaderMap) -> SignatureHeaders {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        SignatureHeaders {
            signature: get("x-signature"),
            timestamp: get("x-timestamp"),
        }
    }
}

/// Computes the agent's signature (used by the load generator's tests and docs examples).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(require: bool) -> KeyRing {
        let key = ApiKeyConfig {
            key: "k".into(),
            secret: None,
            organization: "o".into(),
            application: "a".into(),
            require_signature: require,
        };
        KeyRing::new(&[key], &IngestConfig::default())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn sig_headers(h: &HeaderMap) -> SignatureHeaders {
        SignatureHeaders::from_headers(h)
    }

    #[test]
    fn bearer_and_unknown() {
        let ring = ring(false);
        assert_eq!(
            ring.authenticate(&HeaderMap::new()).unwrap_err(),
            AuthError::MissingKey
        );
        let h = headers(&[("authorization", "Bearer nope")]);
        assert_eq!(ring.authenticate(&h).unwrap_err(), AuthError::UnknownKey);
        let h = headers(&[("authorization", "bearer k")]);
        assert_eq!(ring.authenticate(&h).unwrap().application, "a");
    }

    #[test]
    fn signature_checks() {
        let ring = ring(false);
        let key = ring
            .authenticate(&headers(&[("authorization", "Bearer k")]))
            .unwrap();
        let body = br#"{"events":[]}"#;
        let sig = sign(b"k", "1000", body);
        let ok = headers(&[("x-signature", &sig), ("x-timestamp", "1000")]);
        assert_eq!(
            key.verify_signature(&sig_headers(&ok), body, 1100, 300),
            Ok(Signed::Yes)
        );
        assert!(matches!(
            key.verify_signature(&sig_headers(&ok), body, 2000, 300),
            Err(AuthError::StaleTimestamp { .. })
        ));
        assert_eq!(
            key.verify_signature(&sig_headers(&ok), b"{}", 1000, 300),
            Err(AuthError::SignatureMismatch)
        );
        let half = headers(&[("x-signature", &sig)]);
        assert_eq!(
            key.verify_signature(&sig_headers(&half), body, 1000, 300),
            Err(AuthError::IncompleteSignature)
        );
        assert_eq!(
            key.verify_signature(&SignatureHeaders::default(), body, 0, 300),
            Ok(Signed::No)
        );
        let strict = super::tests::ring(true);
        let key = strict
            .authenticate(&headers(&[("authorization", "Bearer k")]))
            .unwrap();
        assert_eq!(
            key.verify_signature(&SignatureHeaders::default(), body, 0, 300),
            Err(AuthError::SignatureRequired)
        );
    }
}
