//! The change feed's reads and the work its triggers leave (migration `…_changes.sql`):
//! the rows themselves are written by triggers on the tables they describe, so every
//! writer (and every cascade) records its changes without calling in here.
//!
//! Lock order: a transaction that changes one library entry takes the entry (and its read
//! and sessions) and then, through the triggers, the user's change head. A transaction
//! that may change entries of several books or users takes the heads first (`hold`), in
//! user order, so it cannot wait on a head while holding an entry another waits for.

use std::collections::HashMap;

use bookshelf_domain::change::{Change, ChangeCursor, ChangeOp, ChangeType};
use uuid::Uuid;

use crate::{Conn, DbPool, Result, StorageError};

/// Takes the change heads of `users` (sorted, each once) for the rest of the transaction.
pub async fn hold(tx: &mut Conn, users: &[Uuid]) -> Result<()> {
    let mut users = users.to_vec();
    users.sort_unstable();
    users.dedup();
    if users.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "SELECT user_id FROM change_heads WHERE user_id = ANY($1) ORDER BY user_id FOR NO KEY UPDATE",
        &users,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(())
}

/// One page of the feed.
#[derive(Debug)]
pub struct ChangesPage {
    pub items: Vec<Change>,
    /// Where to resume: the last change of the page, or (an empty page) the newest change
    /// committed when it was read.
    pub next: ChangeCursor,
    pub has_more: bool,
}

/// Why there is no page.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The cursor is older than the oldest tombstone still held.
    #[error("the cursor is older than the changes still held")]
    Gone,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for FeedError {
    fn from(e: sqlx::Error) -> Self {
        FeedError::Storage(e.into())
    }
}

/// The changes of `user` after `after`, each with the resource's current state. One
/// snapshot (REPEATABLE READ) for the list and the resources, so an `upsert` always finds
/// its resource: a deletion after it would have replaced the change.
pub async fn page(
    db: &DbPool,
    user: Uuid,
    after: Option<ChangeCursor>,
    limit: i64,
) -> Result<ChangesPage, FeedError> {
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // No head: the account is gone (a token outliving it); like any list of it, empty.
    let (head, horizon) = sqlx::query!("SELECT seq, horizon FROM change_heads WHERE user_id = $1", user)
        .fetch_optional(&mut *tx)
        .await?
        .map_or((0, 0), |h| (h.seq, h.horizon));
    let from = after.map_or(0, |c| c.0);
    if after.is_some() && from < horizon {
        return Err(FeedError::Gone);
    }
    let mut rows = sqlx::query!(
        "SELECT type, resource_id, op, seq, at FROM changes
         WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        user,
        from,
        limit + 1,
    )
    .fetch_all(&mut *tx)
    .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = rows.last().map_or(from.max(head), |r| r.seq);

    let wanted = |kind: ChangeType| -> Vec<&str> {
        rows.iter()
            .filter(|r| r.op == "upsert" && r.r#type == kind.as_str())
            .map(|r| r.resource_id.as_str())
            .collect()
    };
    let uuids = |ids: Vec<&str>| -> Vec<Uuid> { ids.iter().filter_map(|s| s.parse().ok()).collect() };
    let mut data: HashMap<(ChangeType, String), serde_json::Value> = HashMap::new();
    let mut put = |kind: ChangeType, id: String, value: Result<serde_json::Value, serde_json::Error>| {
        value
            .map(|v| data.insert((kind, id), v))
            .map_err(StorageError::Encode)
    };
    for e in crate::library::get_many(&mut *tx, user, &uuids(wanted(ChangeType::Entry))).await? {
        put(ChangeType::Entry, e.book_id.to_string(), serde_json::to_value(&e))?;
    }
    for r in crate::reading::get_many(&mut *tx, user, &uuids(wanted(ChangeType::Read))).await? {
        put(ChangeType::Read, r.id.to_string(), serde_json::to_value(&r))?;
    }
    for s in crate::reading::get_sessions(&mut *tx, user, &uuids(wanted(ChangeType::Session))).await? {
        put(ChangeType::Session, s.id.to_string(), serde_json::to_value(&s))?;
    }
    let years: Vec<i32> = wanted(ChangeType::Goal)
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    for g in crate::stats::get_goals(&mut *tx, user, &years).await? {
        put(ChangeType::Goal, g.year.to_string(), serde_json::to_value(&g))?;
    }
    tx.commit().await?;

    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let (Some(kind), Some(op)) = (ChangeType::parse(&r.r#type), ChangeOp::parse(&r.op)) else {
            continue;
        };
        let data = match op {
            ChangeOp::Delete => None,
            ChangeOp::Upsert => match data.remove(&(kind, r.resource_id.clone())) {
                Some(v) => Some(v),
                // Cannot happen in one snapshot; were it to, the client must not be told
                // of a resource with no state.
                None => {
                    tracing::error!(user = %user, kind = kind.as_str(), id = r.resource_id, "an upsert without its resource");
                    continue;
                }
            },
        };
        items.push(Change {
            kind,
            op,
            id: r.resource_id,
            at: r.at,
            data,
        });
    }
    Ok(ChangesPage {
        items,
        next: ChangeCursor(next),
        has_more,
    })
}

/// The step of a book fan-out: readers re-sent per transaction.
pub const FAN_OUT_STEP: i64 = 500;

/// Re-sends the entries of `book` for its next `step` readers (a transaction). `true`
/// while readers remain. A fan-out another process is stepping now is left to it.
pub async fn fan_out_book_step(db: &DbPool, book: Uuid, step: i64) -> Result<bool> {
    let mut tx = db.begin().await?;
    let Some(job) = sqlx::query!(
        "SELECT after_user FROM book_fanouts WHERE book_id = $1 FOR UPDATE SKIP LOCKED",
        book
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(false);
    };
    let readers: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT user_id FROM library_entries
         WHERE book_id = $1 AND ($2::uuid IS NULL OR user_id > $2)
         ORDER BY user_id LIMIT $3",
        book,
        job.after_user,
        step,
    )
    .fetch_all(&mut *tx)
    .await?;
    let Some(last) = readers.last().copied() else {
        sqlx::query!("DELETE FROM book_fanouts WHERE book_id = $1", book)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(false);
    };
    hold(&mut tx, &readers).await?;
    // Under the heads: an entry deleted meanwhile is not re-sent (its delete stands), one
    // being deleted now records its delete after this, with a later number.
    sqlx::query!(
        "SELECT bookshelf_record_change(user_id, 'entry', book_id::text, 'upsert') FROM library_entries
         WHERE book_id = $1 AND user_id = ANY($2)",
        book,
        &readers,
    )
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE book_fanouts SET after_user = $2 WHERE book_id = $1",
        book,
        last
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Steps the fan-out of `book` to its end.
pub async fn fan_out_book(db: &DbPool, book: Uuid) -> Result<()> {
    while fan_out_book_step(db, book, FAN_OUT_STEP).await? {}
    Ok(())
}

/// Books whose fan-out is unfinished (the request that began it crashed or gave up), oldest first.
pub async fn stalled_fan_outs(db: &DbPool, limit: i64) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar!(
        "SELECT book_id FROM book_fanouts ORDER BY created_at LIMIT $1",
        limit
    )
    .fetch_all(db)
    .await?)
}

/// Removes tombstones older than `older_than` seconds (at most `limit`), raising each
/// user's horizon past them: a cursor from before then is a 410.
pub async fn expire_tombstones(db: &DbPool, older_than: f64, limit: i64) -> Result<u64> {
    let removed = sqlx::query_scalar!(
        r#"WITH gone AS (
             DELETE FROM changes WHERE (user_id, type, resource_id) IN (
               SELECT user_id, type, resource_id FROM changes
               WHERE op = 'delete' AND at < now() - make_interval(secs => $1)
               ORDER BY at LIMIT $2)
             RETURNING user_id, seq),
           raised AS (
             UPDATE change_heads h SET horizon = greatest(h.horizon, g.seq)
             FROM (SELECT user_id, max(seq) AS seq FROM gone GROUP BY user_id) g
             WHERE h.user_id = g.user_id)
           SELECT count(*) AS "n!" FROM gone"#,
        older_than,
        limit,
    )
    .fetch_one(db)
    .await?;
    Ok(removed as u64)
}

/// The current state of one resource as the feed would carry it (`None`: it is gone).
pub async fn resource_data(
    tx: &mut Conn,
    user: Uuid,
    kind: ChangeType,
    id: &str,
) -> Result<Option<serde_json::Value>> {
    let as_uuid = || id.parse::<Uuid>().ok().into_iter().collect::<Vec<_>>();
    let value = match kind {
        ChangeType::Entry => crate::library::get_many(&mut *tx, user, &as_uuid())
            .await?
            .first()
            .map(serde_json::to_value),
        ChangeType::Read => crate::reading::get_many(&mut *tx, user, &as_uuid())
            .await?
            .first()
            .map(serde_json::to_value),
        ChangeType::Session => crate::reading::get_sessions(&mut *tx, user, &as_uuid())
            .await?
            .first()
            .map(serde_json::to_value),
        ChangeType::Goal => {
            let years: Vec<i32> = id.parse().ok().into_iter().collect();
            crate::stats::get_goals(&mut *tx, user, &years)
                .await?
                .first()
                .map(serde_json::to_value)
        }
    };
    value.transpose().map_err(StorageError::Encode)
}
