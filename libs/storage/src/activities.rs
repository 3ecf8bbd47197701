//! Activities, their fan-out into followers' feeds, and the feed itself.
//!
//! An activity is written with its outbox message in the transaction of the action that
//! causes it. Fan-out copies it into one `feed_items` row per follower, in batches, each
//! batch a statement that a redelivery repeats harmlessly (the primary key). Who sees what
//! is judged when the feed is read, never at fan-out: a feed row shows only while its
//! reader still follows the actor (and has since before the activity), and a book activity
//! only while the actor's visibility allows it.
//!
//! So that reading never walks rows it must skip, each row also says whether it is hidden
//! (a book activity of a private actor): set at fan-out, re-marked in steps when the actor's
//! visibility changes (`settle_visibility`), and the feed walks an index of shown rows. While
//! an actor's rows are being re-marked the feed reads their hidden rows too, so the answer
//! follows the visibility at once either way.

use crate::{Conn, DbPool};
use bookshelf_domain::activity::{ActivityMessage, FollowerCursor};
use bookshelf_domain::{
    Activity, ActivityType, BookSummary, Cursor, NewActivity, PageParams, PersonRef, ReadingStatus,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::outbox::OutboxMessage;
use crate::{Result, StorageError};

/// Outbox messages written by a transaction, for its request to send after commit.
pub type Pending = Vec<OutboxMessage>;

/// Records activities and their outbox messages in the caller's transaction.
pub async fn record(tx: &mut Conn, activities: &[NewActivity]) -> Result<Pending> {
    let mut pending = Vec::with_capacity(activities.len());
    for a in activities {
        let id = Uuid::new_v4();
        sqlx::query!(
            // clock_timestamp, not now(): two activities of one transaction (shelved, then
            // rated) keep their order in the feed.
            "INSERT INTO activities (id, actor_id, type, book_id, subject_id, status, rating, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp())",
            id,
            a.actor,
            a.kind.as_str(),
            a.book,
            a.subject,
            a.status.map(ReadingStatus::as_str),
            a.rating,
        )
        .execute(&mut *tx)
        .await?;
        pending.push(announce(&mut *tx, id, None).await?);
    }
    Ok(pending)
}

/// What one fan-out step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    /// `added` feed rows were written (a redelivery adds 0) for `followers` followers,
    /// in `batches` statements; `rest` is where the next step starts, when this one
    /// stopped at its bound with followers left.
    Delivered {
        followers: u64,
        added: u64,
        batches: u32,
        rest: Option<FollowerCursor>,
    },
    /// The activity is gone (its actor, book or subject was deleted): nothing to deliver.
    Gone,
}

/// Copies an activity into the feed of the followers its actor had when it happened, after
/// `after` (from the first when `None`), `batch` followers per statement (each short, each
/// idempotent) and at most `max_batches` statements: a step's work is bounded whatever the
/// follower count, and what is left is said in `rest`.
pub async fn fan_out(
    db: &DbPool,
    activity: Uuid,
    after: Option<FollowerCursor>,
    batch: i64,
    max_batches: u32,
) -> Result<Fanout> {
    let Some(a) = sqlx::query!(
        "SELECT actor_id, created_at, type <> 'followed' AS \"book!\" FROM activities WHERE id = $1",
        activity
    )
    .fetch_optional(db)
    .await?
    else {
        return Ok(Fanout::Gone);
    };
    let (mut followers, mut added, mut batches) = (0u64, 0u64, 0u32);
    let mut after: Option<(DateTime<Utc>, Uuid)> = after.map(|c| (c.followed_at, c.follower_id));
    let rest = loop {
        // Walks the actor's followers by (follow time, id) through follows_followee_idx.
        let from = after.unwrap_or_else(crate::keyset_start);
        // The actor's row is read under a share lock: a visibility change waits for this
        // batch (and re-marks its rows after), or this batch waits and sees the new value.
        let step = sqlx::query!(
            r#"WITH actor AS (
                   SELECT library_visibility = 'private' AS private FROM users WHERE id = $2 FOR SHARE),
               batch AS (
                   SELECT f.follower_id, f.created_at FROM follows f
                   WHERE f.followee_id = $2 AND f.created_at <= $3
                     AND (f.created_at, f.follower_id) > ($4, $5)
                   ORDER BY f.created_at, f.follower_id LIMIT $6),
               added AS (
                   INSERT INTO feed_items (reader_id, activity_id, actor_id, created_at, hidden)
                   SELECT follower_id, $1, $2, $3, $7 AND coalesce((SELECT private FROM actor), false)
                   FROM batch
                   ON CONFLICT (reader_id, activity_id) DO NOTHING
                   RETURNING 1)
               SELECT (SELECT count(*) FROM batch) AS "in_batch!",
                      (SELECT count(*) FROM added) AS "added!",
                      last.created_at AS "last_at?", last.follower_id AS "last_id?"
               FROM (SELECT 1) AS one
               LEFT JOIN LATERAL (SELECT created_at, follower_id FROM batch
                                  ORDER BY created_at DESC, follower_id DESC LIMIT 1) AS last ON true"#,
            activity,
            a.actor_id,
            a.created_at,
            from.0,
            from.1,
            batch,
            a.book,
        )
        .fetch_one(db)
        .await?;
        batches += 1;
        followers += step.in_batch as u64;
        added += step.added as u64;
        match (step.last_at, step.last_id) {
            (Some(at), Some(id)) if step.in_batch == batch => {
                after = Some((at, id));
                if batches >= max_batches {
                    break Some(FollowerCursor {
                        followed_at: at,
                        follower_id: id,
                    });
                }
            }
            _ => break None,
        }
    };
    Ok(Fanout::Delivered {
        followers,
        added,
        batches,
        rest,
    })
}

/// Hands the rest of a fan-out on: an outbox message that continues after `rest`, sent like
/// every other (its step's fast path, or the relay).
pub async fn continue_fan_out(db: &DbPool, activity: Uuid, rest: FollowerCursor) -> Result<Pending> {
    Ok(vec![announce(db, activity, Some(rest)).await?])
}

/// The outbox message that has `activity` fanned out (after `after`, when it continues).
async fn announce(
    db: impl sqlx::PgExecutor<'_>,
    activity: Uuid,
    after: Option<FollowerCursor>,
) -> Result<OutboxMessage> {
    let payload = serde_json::to_value(ActivityMessage {
        activity_id: activity,
        after,
    })
    .map_err(StorageError::Encode)?;
    let id = sqlx::query_scalar!(
        "INSERT INTO outbox (topic, activity_id, payload) VALUES ('activities', $1, $2) RETURNING id",
        activity,
        payload,
    )
    .fetch_one(db)
    .await?;
    Ok(OutboxMessage { id, payload })
}

/// Feed rows re-marked per step of `settle_visibility`, about (whole activities at a time).
pub const SETTLE_STEP_ROWS: i64 = 10_000;

/// Re-marks the feed rows of the next book activities of `actor` whose visibility changed
/// (a transaction, about `rows` rows). `true` while activities remain. An actor another
/// process is settling now is left to it.
pub async fn settle_visibility_step(db: &DbPool, actor: Uuid, rows: i64) -> Result<bool> {
    let mut tx = db.begin().await?;
    // The work row's lock orders this step with a new change of visibility: that change
    // (its trigger) waits for the step, then starts the re-marking over.
    let Some(work) = sqlx::query!(
        "SELECT hide, after_activity FROM feed_visibility_work WHERE user_id = $1 FOR UPDATE SKIP LOCKED",
        actor
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(false);
    };
    // Each activity has a row per follower it reached: whole activities, about `rows` rows.
    let followers = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM follows WHERE followee_id = $1"#,
        actor
    )
    .fetch_one(&mut *tx)
    .await?;
    let activities = (rows / followers.max(1)).max(1);
    let step = sqlx::query!(
        r#"WITH acts AS (
               SELECT id FROM activities
               WHERE actor_id = $1 AND type <> 'followed' AND ($2::uuid IS NULL OR id > $2)
               ORDER BY id LIMIT $3),
           marked AS (
               UPDATE feed_items SET hidden = $4
               WHERE activity_id IN (SELECT id FROM acts) AND hidden <> $4
               RETURNING 1)
           SELECT (SELECT id FROM acts ORDER BY id DESC LIMIT 1) AS "last?", (SELECT count(*) FROM marked) AS "marked!""#,
        actor,
        work.after_activity,
        activities,
        work.hide,
    )
    .fetch_one(&mut *tx)
    .await?;
    let more = match step.last {
        Some(last) => {
            sqlx::query!(
                "UPDATE feed_visibility_work SET after_activity = $2 WHERE user_id = $1",
                actor,
                last
            )
            .execute(&mut *tx)
            .await?;
            true
        }
        None => {
            sqlx::query!("DELETE FROM feed_visibility_work WHERE user_id = $1", actor)
                .execute(&mut *tx)
                .await?;
            false
        }
    };
    tx.commit().await?;
    tracing::debug!(actor_id = %actor, marked = step.marked, hide = work.hide, "feed rows re-marked");
    Ok(more)
}

/// Re-marks every feed row of `actor` to what their visibility now says, in steps.
pub async fn settle_visibility(db: &DbPool, actor: Uuid) -> Result<()> {
    while settle_visibility_step(db, actor, SETTLE_STEP_ROWS).await? {}
    Ok(())
}

/// Actors whose feed rows are still being re-marked (the request that changed their
/// visibility crashed or gave up), oldest first.
pub async fn unsettled_visibility(db: &DbPool, limit: i64) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar!(
        "SELECT user_id FROM feed_visibility_work ORDER BY created_at LIMIT $1",
        limit
    )
    .fetch_all(db)
    .await?)
}

/// One page of the reader's feed, newest first: an indexed walk of their shown rows, merged
/// with the hidden rows of followed actors whose rows are being re-marked after turning
/// visible (none, almost always), each kept only while the rules say the reader may see it now.
pub async fn feed(db: &DbPool, reader: Uuid, page: PageParams) -> Result<(Vec<Activity>, Option<Cursor>)> {
    // The cursor is always bound (the first page starts after the newest possible row):
    // an optional bound would make the cached generic plan walk from the top every time.
    let (after_at, after_id) = page.after.map_or_else(crate::keyset_end, |c| (c.at, c.id));
    let rows = sqlx::query!(
        r#"WITH page AS (
             (SELECT fi.activity_id, fi.created_at FROM feed_items fi
                JOIN activities a ON a.id = fi.activity_id
                JOIN users actor ON actor.id = fi.actor_id
              WHERE fi.reader_id = $1 AND NOT fi.hidden
                AND (fi.created_at, fi.activity_id) < ($2, $3)
                AND (a.type = 'followed' OR actor.library_visibility <> 'private')
                AND EXISTS (SELECT 1 FROM follows f
                             WHERE f.follower_id = $1 AND f.followee_id = fi.actor_id
                               AND f.created_at <= a.created_at)
              ORDER BY fi.created_at DESC, fi.activity_id DESC LIMIT $4)
             UNION ALL
             (SELECT fi.activity_id, fi.created_at FROM feed_items fi
                JOIN activities a ON a.id = fi.activity_id
                JOIN users actor ON actor.id = fi.actor_id
              WHERE fi.reader_id = $1 AND fi.hidden
                AND fi.actor_id = ANY (ARRAY(
                      SELECT w.user_id FROM feed_visibility_work w
                      WHERE NOT w.hide AND EXISTS (SELECT 1 FROM follows f
                                                   WHERE f.follower_id = $1 AND f.followee_id = w.user_id)))
                AND (fi.created_at, fi.activity_id) < ($2, $3)
                AND actor.library_visibility <> 'private'
                AND EXISTS (SELECT 1 FROM follows f
                             WHERE f.follower_id = $1 AND f.followee_id = fi.actor_id
                               AND f.created_at <= a.created_at)
              ORDER BY fi.created_at DESC, fi.activity_id DESC LIMIT $4))
           SELECT a.id, a.type AS "kind: ActivityType", a.actor_id, actor.display_name AS actor_name,
                  a.book_id, b.title AS "title?", b.authors AS "authors?",
                  a.subject_id, subject.display_name AS "subject_name?",
                  a.status AS "status: ReadingStatus", a.rating, a.created_at, page.created_at AS "fed_at!"
           FROM page
           JOIN activities a ON a.id = page.activity_id
           JOIN users actor ON actor.id = a.actor_id
           LEFT JOIN books b ON b.id = a.book_id
           LEFT JOIN users subject ON subject.id = a.subject_id
           ORDER BY page.created_at DESC, page.activity_id DESC LIMIT $4"#,
        reader,
        after_at,
        after_id,
        page.limit + 1,
    )
    .fetch_all(db)
    .await?;
    let items: Vec<(DateTime<Utc>, Activity)> = rows
        .into_iter()
        .map(|r| {
            let book = match (r.book_id, r.title, r.authors) {
                (Some(id), Some(title), Some(authors)) => Some(BookSummary { id, title, authors }),
                _ => None,
            };
            let subject = match (r.subject_id, r.subject_name) {
                (Some(id), Some(display_name)) => Some(PersonRef { id, display_name }),
                _ => None,
            };
            (
                r.fed_at,
                Activity {
                    id: r.id,
                    kind: r.kind,
                    actor: PersonRef {
                        id: r.actor_id,
                        display_name: r.actor_name,
                    },
                    book,
                    subject,
                    status: r.status,
                    rating: r.rating,
                    created_at: r.created_at,
                },
            )
        })
        .collect();
    let (items, next) = crate::page(items, page.limit, |(at, a)| Cursor { at: *at, id: a.id });
    Ok((items.into_iter().map(|(_, a)| a).collect(), next))
}
