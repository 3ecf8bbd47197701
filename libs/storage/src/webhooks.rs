//! Webhooks: subscriptions, the events owed to them (written by the change feed's trigger
//! and the orders' status trigger, migration `…_webhooks.sql`), and delivery attempts.
//! The one writer of `webhooks`, `webhook_events` and `webhook_deliveries`.

use bookshelf_domain::change::{Change, ChangeOp, ChangeType};
use bookshelf_domain::webhook::{Delivery, Webhook, DISABLE_AFTER, MAX_PER_USER, PING};
use bookshelf_domain::{Cursor, PageParams};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{DbPool, Result, StorageError};

struct WebhookRow {
    id: Uuid,
    url: String,
    events: Vec<String>,
    active: bool,
    disabled_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Webhook {
        Webhook {
            id: r.id,
            url: r.url,
            events: r.events,
            active: r.active,
            disabled_reason: r.disabled_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub enum Created {
    Created(Webhook),
    /// The user has `MAX_PER_USER` already.
    TooMany,
}

/// Adds a webhook unless the user has ten; two creations at once are counted one after the
/// other (under the user's change head, the per-user lock there is).
pub async fn create(
    db: &DbPool,
    user: Uuid,
    id: Uuid,
    url: &str,
    events: &[String],
    sealed: &[u8],
) -> Result<Created> {
    let mut tx = db.begin().await?;
    crate::changes::hold(&mut tx, &[user]).await?;
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM webhooks WHERE user_id = $1"#,
        user
    )
    .fetch_one(&mut *tx)
    .await?;
    if n >= MAX_PER_USER {
        return Ok(Created::TooMany);
    }
    let row = sqlx::query_as!(
        WebhookRow,
        "INSERT INTO webhooks (id, user_id, url, events, secret_sealed) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, url, events, active, disabled_reason, created_at, updated_at",
        id,
        user,
        url,
        events,
        sealed,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Created::Created(row.into()))
}

pub async fn list(db: &DbPool, user: Uuid) -> Result<Vec<Webhook>> {
    Ok(sqlx::query_as!(
        WebhookRow,
        "SELECT id, url, events, active, disabled_reason, created_at, updated_at FROM webhooks
         WHERE user_id = $1 ORDER BY created_at, id",
        user,
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(Webhook::from)
    .collect())
}

pub async fn get(db: &DbPool, user: Uuid, id: Uuid) -> Result<Webhook> {
    sqlx::query_as!(
        WebhookRow,
        "SELECT id, url, events, active, disabled_reason, created_at, updated_at FROM webhooks
         WHERE id = $1 AND user_id = $2",
        id,
        user,
    )
    .fetch_optional(db)
    .await?
    .map(Webhook::from)
    .ok_or(StorageError::NotFound)
}

/// Applies a PATCH. `active: true` re-enables (the failure count starts again);
/// `active: false` turns it off by its owner's wish.
pub async fn update(
    db: &DbPool,
    user: Uuid,
    id: Uuid,
    url: Option<&str>,
    events: Option<&[String]>,
    active: Option<bool>,
) -> Result<Webhook> {
    sqlx::query_as!(
        WebhookRow,
        r#"UPDATE webhooks SET
             url = coalesce($3, url),
             events = coalesce($4, events),
             active = coalesce($5, active),
             failures = CASE WHEN $5 IS NULL THEN failures ELSE 0 END,
             disabled_reason = CASE WHEN $5 IS NULL THEN disabled_reason
                                    WHEN $5 THEN NULL ELSE 'turned off by its owner' END,
             updated_at = now()
           WHERE id = $1 AND user_id = $2
           RETURNING id, url, events, active, disabled_reason, created_at, updated_at"#,
        id,
        user,
        url,
        events,
        active,
    )
    .fetch_optional(db)
    .await?
    .map(Webhook::from)
    .ok_or(StorageError::NotFound)
}

pub async fn delete(db: &DbPool, user: Uuid, id: Uuid) -> Result<()> {
    let done = sqlx::query!("DELETE FROM webhooks WHERE id = $1 AND user_id = $2", id, user)
        .execute(db)
        .await?;
    crate::one_row(done)
}

/// Queues a `ping` to the webhook (active or not: a ping is how its owner tests it).
pub async fn ping(db: &DbPool, user: Uuid, id: Uuid) -> Result<Uuid> {
    let event = Uuid::new_v4();
    let done = sqlx::query!(
        "INSERT INTO webhook_events (id, webhook_id, type) SELECT $1, id, $3 FROM webhooks
         WHERE id = $2 AND user_id = $4",
        event,
        id,
        PING,
        user,
    )
    .execute(db)
    .await?;
    crate::one_row(done)?;
    Ok(event)
}

/// The webhook's attempts, newest first.
pub async fn deliveries(
    db: &DbPool,
    user: Uuid,
    id: Uuid,
    page: PageParams,
) -> Result<(Vec<Delivery>, Option<Cursor>)> {
    get(db, user, id).await?;
    // Always bound (see `keyset_end`): a deep page starts at its key in the index.
    let (after_at, after_id) = page.after.map_or_else(crate::keyset_end, |c| (c.at, c.id));
    let rows = sqlx::query_as!(
        Delivery,
        r#"SELECT id, event_id, type AS kind, attempt, outcome, response_status, error, duration_ms, at
           FROM webhook_deliveries
           WHERE webhook_id = $1 AND (at, id) < ($2, $3)
           ORDER BY at DESC, id DESC LIMIT $4"#,
        id,
        after_at,
        after_id,
        page.limit + 1,
    )
    .fetch_all(db)
    .await?;
    Ok(crate::page(rows, page.limit, |d| Cursor { at: d.at, id: d.id }))
}

/// An event ready to go: its body fixed, its webhook's destination and sealed secret.
#[derive(Debug, Clone)]
pub struct DueEvent {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub kind: String,
    pub attempt: i32,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    pub body: serde_json::Value,
}

/// How long an event may stay with the sender before it counts as lost and goes again.
const LOST_AFTER_SECS: f64 = 300.0;

/// Claims up to `limit` events that are due (or were handed to the sender long ago and
/// never came back), fixes their bodies, and marks them sent. Events of a webhook turned
/// off meanwhile (pings excepted) end here, undelivered.
pub async fn claim_due(db: &DbPool, limit: i64) -> Result<Vec<DueEvent>> {
    let mut tx = db.begin().await?;
    let rows = sqlx::query!(
        r#"SELECT e.id, e.webhook_id, e.type, e.change_type, e.resource_id, e.order_id, e.payload,
                  e.created_at, e.attempts, w.url, w.secret_sealed, w.active, w.user_id
           FROM webhook_events e JOIN webhooks w ON w.id = e.webhook_id
           WHERE (e.state = 'pending' AND e.due_at <= now())
              OR (e.state = 'sent' AND e.due_at < now() - make_interval(secs => $2))
           ORDER BY e.due_at LIMIT $1
           FOR UPDATE OF e SKIP LOCKED"#,
        limit,
        LOST_AFTER_SECS,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut due = Vec::with_capacity(rows.len());
    for r in rows {
        if !r.active && r.r#type != PING {
            sqlx::query!("UPDATE webhook_events SET state = 'done' WHERE id = $1", r.id)
                .execute(&mut *tx)
                .await?;
            continue;
        }
        let body = match r.payload {
            Some(body) => body,
            None => {
                let data = match (
                    r.change_type.as_deref().and_then(ChangeType::parse),
                    &r.resource_id,
                    r.order_id,
                ) {
                    (Some(kind), Some(rid), _) => {
                        let op = if r.r#type.ends_with(".deleted") {
                            ChangeOp::Delete
                        } else {
                            ChangeOp::Upsert
                        };
                        let data = match op {
                            ChangeOp::Delete => None,
                            ChangeOp::Upsert => {
                                crate::changes::resource_data(&mut tx, r.user_id, kind, rid).await?
                            }
                        };
                        serde_json::to_value(Change {
                            kind,
                            op,
                            id: rid.clone(),
                            at: r.created_at,
                            data,
                        })
                        .map_err(StorageError::Encode)?
                    }
                    (_, _, Some(order)) => match crate::orders::get(db, order).await {
                        Ok(o) => serde_json::to_value(o).map_err(StorageError::Encode)?,
                        Err(StorageError::NotFound) => serde_json::json!({"id": order}),
                        Err(e) => return Err(e),
                    },
                    _ => serde_json::json!({}),
                };
                serde_json::json!({
                    "id": r.id,
                    "type": r.r#type,
                    "createdAt": r.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "data": data,
                })
            }
        };
        sqlx::query!(
            "UPDATE webhook_events SET state = 'sent', attempts = attempts + 1, payload = $2, due_at = now()
             WHERE id = $1",
            r.id,
            body,
        )
        .execute(&mut *tx)
        .await?;
        due.push(DueEvent {
            id: r.id,
            webhook_id: r.webhook_id,
            kind: r.r#type,
            attempt: r.attempts + 1,
            url: r.url,
            secret_sealed: r.secret_sealed,
            body,
        });
    }
    tx.commit().await?;
    Ok(due)
}

/// Puts an event back to be claimed again (its message could not be queued).
pub async fn release(db: &DbPool, event: Uuid) -> Result<()> {
    sqlx::query!(
        "UPDATE webhook_events SET state = 'pending', attempts = attempts - 1, due_at = now() WHERE id = $1 AND state = 'sent'",
        event
    )
    .execute(db)
    .await?;
    Ok(())
}

/// What the sender reports of one attempt.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub event_id: Uuid,
    pub webhook_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub attempt: i32,
    pub succeeded: bool,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// Records an attempt (once, however often its report arrives), counts the webhook's
/// consecutive failures (20 turn it off), and schedules the event's next attempt after
/// `retry_after` seconds, or ends it.
pub async fn record(db: &DbPool, a: &Attempt, retry_after: impl Fn(i32, f64) -> Option<f64>) -> Result<()> {
    let mut tx = db.begin().await?;
    let inserted = sqlx::query!(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, type, attempt, outcome, response_status, error, duration_ms)
         SELECT $1, id, $3, $4, $5, $6, $7, $8, $9 FROM webhooks WHERE id = $2
         ON CONFLICT (event_id, attempt) DO NOTHING",
        Uuid::new_v4(),
        a.webhook_id,
        a.event_id,
        a.kind,
        a.attempt,
        if a.succeeded { "succeeded" } else { "failed" },
        a.response_status,
        a.error.as_deref(),
        a.duration_ms,
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        // A report delivered twice, or a webhook deleted meanwhile: nothing more to do.
        return Ok(());
    }
    let active = sqlx::query_scalar!(
        r#"UPDATE webhooks SET
             failures = CASE WHEN $2 THEN 0 ELSE failures + 1 END,
             active = active AND ($2 OR failures + 1 < $3),
             disabled_reason = CASE WHEN active AND NOT $2 AND failures + 1 >= $3
                                    THEN $4 ELSE disabled_reason END
           WHERE id = $1 RETURNING active"#,
        a.webhook_id,
        a.succeeded,
        DISABLE_AFTER,
        format!("{DISABLE_AFTER} consecutive deliveries failed"),
    )
    .fetch_optional(&mut *tx)
    .await?
    .unwrap_or(false);
    let age = sqlx::query_scalar!(
        r#"SELECT extract(epoch FROM now() - created_at)::float8 AS "age!" FROM webhook_events WHERE id = $1"#,
        a.event_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let next = match (a.succeeded, active, age) {
        (false, true, Some(age)) => retry_after(a.attempt, age),
        _ => None,
    };
    sqlx::query!(
        "UPDATE webhook_events SET
           state = CASE WHEN $2::float8 IS NULL THEN 'done' ELSE 'pending' END,
           due_at = CASE WHEN $2::float8 IS NULL THEN due_at ELSE now() + make_interval(secs => $2) END
         WHERE id = $1",
        a.event_id,
        next,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
