//! The transactional outbox: queue messages written in the transaction of the change they
//! announce, sent right after commit by the request that made them, and by the relay for
//! whatever that missed (a queue outage, a crash between commit and send).

use crate::{Conn, DbPool};
use sqlx::PgExecutor;

use crate::coalesce::{Coalescer, Loaded};
use crate::Result;

/// Which queue a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Orders to confirm or reject (the order processor).
    Orders,
    /// Activities to fan out into followers' feeds (the feed fan-out).
    Activities,
}

impl Topic {
    pub const ALL: [Topic; 2] = [Topic::Orders, Topic::Activities];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Orders => "orders",
            Topic::Activities => "activities",
        }
    }
}

/// An outbox row still to be sent: its id and the queue message.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: i64,
    pub payload: serde_json::Value,
}

/// How many messages of a topic are still unsent: the relay's backlog.
pub async fn unsent_count(db: &DbPool, topic: Topic) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM outbox WHERE sent_at IS NULL AND topic = $1"#,
        topic.as_str(),
    )
    .fetch_one(db)
    .await?)
}

pub async fn mark_sent(db: impl PgExecutor<'_>, outbox_id: i64) -> Result<()> {
    sqlx::query!(
        "UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = $1 AND sent_at IS NULL",
        outbox_id,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The fast path's marks, coalesced under concurrency (`crate::coalesce`): a mark runs at
/// once when no other is at the database, and the ones that arrive meanwhile go together,
/// one `UPDATE` and one commit for many requests' rows instead of one each. A Lambda
/// (one request at a time) still makes one statement for its one row.
pub(crate) struct SentMarks(Coalescer<i64, ()>);

impl Default for SentMarks {
    fn default() -> Self {
        SentMarks(Coalescer::new(mark_many_sent))
    }
}

impl SentMarks {
    async fn mark(&self, db: &DbPool, outbox_id: i64) -> Result<()> {
        self.0.get(db, outbox_id).await.map(|_| ())
    }
}

/// Marks `outbox_id` sent (nothing, if it already was), through the pool's `SentMarks`.
pub async fn mark_sent_coalesced(db: &DbPool, outbox_id: i64) -> Result<()> {
    db.coalesced().sent_marks.mark(db, outbox_id).await
}

/// Marks the rows of `ids` sent; the answer names those this statement marked.
fn mark_many_sent(db: DbPool, ids: Vec<i64>) -> Loaded<i64, ()> {
    Box::pin(async move {
        // The ids behind a subquery, so the plan is cached (the `coalesce` module says why).
        let rows = sqlx::query_scalar!(
            "UPDATE outbox SET sent_at = now(), attempts = attempts + 1
             WHERE id = ANY((SELECT $1::bigint[])::bigint[]) AND sent_at IS NULL RETURNING id",
            &ids,
        )
        .fetch_all(&db)
        .await?;
        Ok(rows.into_iter().map(|id| (id, ())).collect())
    })
}

pub async fn mark_failed(db: impl PgExecutor<'_>, outbox_id: i64, error: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
        outbox_id,
        error,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Unsent messages of a topic older than `min_age_secs` (younger ones are still being
/// sent by their request), locked so that two relays never send the same one at once.
pub async fn claim_unsent(
    conn: &mut Conn,
    topic: Topic,
    min_age_secs: i64,
    limit: i64,
) -> Result<Vec<OutboxMessage>> {
    Ok(sqlx::query_as!(
        OutboxMessage,
        "SELECT id, payload FROM outbox
         WHERE sent_at IS NULL AND topic = $1 AND created_at <= now() - make_interval(secs => $2)
         ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
        topic.as_str(),
        min_age_secs as f64,
        limit,
    )
    .fetch_all(conn)
    .await?)
}
