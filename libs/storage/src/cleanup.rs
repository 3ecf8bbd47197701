//! What expires: rows that only ever grow unless something removes them. The scheduled
//! `cleanup` function calls `expired` (bounded per run: a backlog takes several runs, none
//! of them long); each kind is kept exactly as long as something can still need it.

use std::time::Duration;

use crate::{DbPool, Result};

/// How long each kind of row is kept (README, "Security": retention).
pub struct Retention {
    /// A guess counter's window (15 minutes) after it ended: nothing reads it any more.
    pub throttle_after_window: Duration,
    /// A session revoked this long ago: its access tokens (15 minutes) and the authorizer's
    /// cache (60 s) are long over.
    pub revoked_sessions: Duration,
    /// A refresh token this long past its expiry: refused anyway, and its session's reuse
    /// detection needs only tokens that could still be presented.
    pub expired_refresh_tokens: Duration,
    /// An outbox row this long after it was sent: kept a while for diagnosing deliveries.
    pub sent_outbox: Duration,
    /// An idempotency key this old: the contract honours a key for 24 hours.
    pub idempotency_keys: Duration,
    /// A change-feed deletion this old: the contract keeps them at least 30 days.
    pub tombstones: Duration,
}

pub const RETENTION: Retention = Retention {
    throttle_after_window: Duration::from_secs(15 * 60 + 24 * 3600),
    revoked_sessions: Duration::from_secs(24 * 3600),
    expired_refresh_tokens: Duration::from_secs(24 * 3600),
    sent_outbox: Duration::from_secs(7 * 24 * 3600),
    idempotency_keys: Duration::from_secs(24 * 3600),
    tombstones: Duration::from_secs(30 * 24 * 3600),
};

/// How many rows of each kind one run removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    pub throttle: u64,
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub outbox: u64,
    pub idempotency_keys: u64,
}

/// Removes at most `limit` expired rows of each kind, oldest first, in one statement (one
/// round trip, one snapshot). A session removed here takes its refresh tokens with it (the
/// cascade runs after the statement: tokens this statement removed itself are not removed
/// twice).
pub async fn expired(db: &DbPool, retention: &Retention, limit: i64) -> Result<Removed> {
    let secs = |d: Duration| d.as_secs_f64();
    let row = sqlx::query!(
        r#"WITH throttle AS (
             DELETE FROM login_throttle WHERE key IN (
               SELECT key FROM login_throttle WHERE window_start < now() - make_interval(secs => $1)
               ORDER BY window_start LIMIT $6)
             RETURNING 1),
           sessions AS (
             -- A session whose refresh tokens have all expired is over too: nothing renews it.
             DELETE FROM sessions WHERE id IN (
               SELECT s.id FROM sessions s
               WHERE s.revoked_at < now() - make_interval(secs => $2)
                  OR (s.created_at < now() - make_interval(secs => $2)
                      AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id
                                      AND t.expires_at > now() - make_interval(secs => $2)))
               LIMIT $6)
             RETURNING 1),
           tokens AS (
             DELETE FROM refresh_tokens WHERE token_hash IN (
               SELECT token_hash FROM refresh_tokens WHERE expires_at < now() - make_interval(secs => $3)
               ORDER BY expires_at LIMIT $6)
             RETURNING 1),
           outbox AS (
             DELETE FROM outbox WHERE id IN (
               SELECT id FROM outbox WHERE sent_at < now() - make_interval(secs => $4)
               ORDER BY sent_at LIMIT $6)
             RETURNING 1),
           keys AS (
             DELETE FROM idempotency_keys WHERE (user_id, key) IN (
               SELECT user_id, key FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $5)
               ORDER BY created_at LIMIT $6)
             RETURNING 1)
           SELECT (SELECT count(*) FROM throttle) AS "throttle!",
                  (SELECT count(*) FROM sessions) AS "sessions!",
                  (SELECT count(*) FROM tokens) AS "tokens!",
                  (SELECT count(*) FROM outbox) AS "outbox!",
                  (SELECT count(*) FROM keys) AS "keys!""#,
        secs(retention.throttle_after_window),
        secs(retention.revoked_sessions),
        secs(retention.expired_refresh_tokens),
        secs(retention.sent_outbox),
        secs(retention.idempotency_keys),
        limit,
    )
    .fetch_one(db)
    .await?;
    let n = |c: i64| u64::try_from(c).unwrap_or(0);
    Ok(Removed {
        throttle: n(row.throttle),
        sessions: n(row.sessions),
        refresh_tokens: n(row.tokens),
        outbox: n(row.outbox),
        idempotency_keys: n(row.keys),
    })
}
