//! Webhooks: what a subscription may name, the rules of its input, the delivery's
//! signature, and the retry schedule. Pure; the storage and the sender do the I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::destination;
use crate::{field, AllValid, Checked, Input};

/// Every event type a webhook may ask for (`*`: all of them).
pub const EVENT_TYPES: [&str; 9] = [
    "entry.upserted",
    "entry.deleted",
    "read.upserted",
    "read.deleted",
    "session.upserted",
    "session.deleted",
    "goal.upserted",
    "goal.deleted",
    "order.updated",
];
pub const PING: &str = "ping";
/// Webhooks a user may have.
pub const MAX_PER_USER: i64 = 10;
/// Consecutive failed attempts that turn a webhook off.
pub const DISABLE_AFTER: i32 = 20;
/// What is kept of a receiver's answer, and how long it has to give it.
pub const MAX_RESPONSE_BYTES: usize = 1024;
pub const TIMEOUT_SECS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    pub disabled_reason: Option<String>,
    #[serde(serialize_with = "crate::user::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::user::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// One delivery attempt, as `GET /webhooks/{id}/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub attempt: i32,
    /// `succeeded` or `failed`.
    pub outcome: String,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    #[serde(serialize_with = "crate::user::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookInput {
    /// `https://…` (locally also `http://127.0.0.1:PORT/…` or `http://localhost:PORT/…`);
    /// never an address that is or resolves to a loopback, private, link-local or
    /// unique-local one.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub url: Input<String>,
    /// 1 to 10 event types, or `*`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, min_items = 1, max_items = 10)]
    pub events: Input<Vec<String>>,
    /// `true` re-enables a disabled webhook (its failure count starts again).
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub active: Input<bool>,
}

/// What a create or an update asks for, checked for form (the host is resolved after).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookChange {
    pub url: Option<CheckedUrl>,
    pub events: Option<Vec<String>>,
    pub active: Option<bool>,
}

/// A destination whose form passed: the host to resolve and check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedUrl {
    pub url: String,
    pub host: String,
    pub port: u16,
}

fn check_url(raw: String, allow_loopback: bool) -> Result<CheckedUrl, String> {
    let (_, host, port) = destination::parse(&raw, allow_loopback).map_err(|e| e.to_string())?;
    Ok(CheckedUrl { url: raw, host, port })
}

/// 1 to 10 known event types (or `*`), each once; kept in the order given.
pub fn check_events(events: Vec<String>) -> Result<Vec<String>, String> {
    if events.is_empty() || events.len() > 10 {
        return Err("must list 1 to 10 event types".into());
    }
    let mut seen = Vec::with_capacity(events.len());
    for e in events {
        if e != "*" && !EVENT_TYPES.contains(&e.as_str()) {
            return Err(format!(
                "unknown event type {e:?}; known: *, {}",
                EVENT_TYPES.join(", ")
            ));
        }
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    Ok(seen)
}

impl WebhookInput {
    /// A new webhook: `url` and `events` required; `active` not allowed to be false.
    pub fn validate_create(self, allow_loopback: bool) -> Checked<WebhookChange> {
        let url = field(
            "url",
            self.url.required().and_then(|u| check_url(u, allow_loopback)),
        );
        let events = field("events", self.events.required().and_then(check_events));
        let active = field("active", self.active.optional());
        let (url, events, active) = (url, events, active).all_valid()?;
        Ok(WebhookChange {
            url: Some(url),
            events: Some(events),
            active,
        })
    }

    /// A PATCH: each field optional, none null.
    pub fn validate_patch(self, allow_loopback: bool) -> Checked<WebhookChange> {
        let url = field(
            "url",
            self.url
                .optional()
                .and_then(|u| u.map(|u| check_url(u, allow_loopback)).transpose()),
        );
        let events = field(
            "events",
            self.events
                .optional()
                .and_then(|e| e.map(check_events).transpose()),
        );
        let active = field("active", self.active.optional());
        let (url, events, active) = (url, events, active).all_valid()?;
        Ok(WebhookChange { url, events, active })
    }
}

/// `Bookshelf-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// When attempt `attempt` (1-based) failed: how many `unit`s to wait before the next, or
/// `None` once the event is older than 24 units-of-hours (24 hours deployed, where the unit
/// is a minute: 1, 2, 4, … minutes, at most 2 hours apart).
pub fn retry_after(attempt: i32, age_secs: f64, unit_secs: f64) -> Option<f64> {
    let wait = unit_secs * 2f64.powi((attempt - 1).clamp(0, 7));
    let wait = wait.min(unit_secs * 120.0);
    (age_secs + wait <= unit_secs * 60.0 * 24.0).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_the_time_a_dot_and_the_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let got = signature(b"whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            got,
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        assert_ne!(got, signature(b"whsec_other", 1_700_000_000, br#"{"a":1}"#));
        assert_ne!(got, signature(b"whsec_test", 1_700_000_001, br#"{"a":1}"#));
    }

    #[test]
    fn events_are_known_types_or_a_star_one_to_ten() {
        assert!(check_events(vec![]).is_err());
        assert!(check_events(vec!["entry.created".into()]).is_err());
        assert!(check_events(vec!["x".into(); 11]).is_err());
        assert_eq!(check_events(vec!["*".into(), "*".into()]).unwrap(), vec!["*"]);
        assert!(check_events(EVENT_TYPES.iter().map(|s| s.to_string()).collect()).is_ok());
    }

    #[test]
    fn retries_back_off_and_stop_after_a_day() {
        let minute = 60.0;
        assert_eq!(retry_after(1, 0.0, minute), Some(60.0));
        assert_eq!(retry_after(2, 60.0, minute), Some(120.0));
        assert_eq!(retry_after(30, 0.0, minute), Some(7200.0));
        assert_eq!(retry_after(9, 23.5 * 3600.0, minute), None);
        // Locally a second is the unit: the first retry comes after one second.
        assert_eq!(retry_after(1, 0.0, 1.0), Some(1.0));
    }

    #[test]
    fn a_private_destination_is_refused_by_form_before_any_lookup() {
        let input = |url: &str| WebhookInput {
            url: Input::Value(url.into()),
            events: Input::Value(vec!["*".into()]),
            active: Input::Missing,
        };
        assert!(input("http://example.org/hook").validate_create(false).is_err());
        assert!(input("http://127.0.0.1:9/hook").validate_create(false).is_err());
        assert!(input("http://127.0.0.1:9/hook").validate_create(true).is_ok());
        assert!(input("https://user:pw@example.org/")
            .validate_create(false)
            .is_err());
        assert!(input("https://example.org/hook").validate_create(false).is_ok());
    }
}
