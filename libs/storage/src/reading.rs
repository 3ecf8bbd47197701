//! Reads and timed sessions. Every function is scoped to the caller's user id, and every
//! change that moves a library entry's status runs in the transaction that moves the read.
//!
//! Lock order, everywhere: the library entry, then the read, then its session (see `lock`),
//! and last the user's change-feed head, which the tables' triggers take at the first
//! change. Two requests of one user that touch the same read therefore queue instead of
//! deadlocking.

use crate::{Conn, DbPool};
use bookshelf_domain::reading::{finished_position, session_minutes, Closing, Position, Target};
use bookshelf_domain::{Cursor, FieldError, NewActivity, PageParams, Read, ReadingSession, ReadingStatus};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::activities::{self, Pending};
use crate::{Result, StorageError};

/// Why a change to a read did not happen (a missing read is `StorageError::NotFound`).
#[derive(Debug)]
pub enum Change<T> {
    Done(T),
    /// The read is finished or abandoned: history does not move.
    Closed,
    /// The change is invalid for this read (a page past the book's end, a close before
    /// the start).
    Invalid(Vec<FieldError>),
}

#[derive(Debug)]
pub enum StartOutcome {
    /// `shelved` when the library entry was created by this start; `pending` are the
    /// activities it made, to send.
    Started {
        read: Read,
        shelved: bool,
        pending: Pending,
    },
    /// The book already has an open read.
    AlreadyOpen,
}

#[derive(Debug)]
pub enum SessionStart {
    Started(ReadingSession),
    ReadClosed,
    /// The caller has a running session (on any read).
    AlreadyRunning,
}

#[derive(Debug)]
pub enum SessionEnd {
    Ended(ReadingSession),
    AlreadyEnded,
    Invalid(Vec<FieldError>),
}

const ONE_OPEN_READ: &str = "reads_one_open_key";
const ONE_RUNNING_SESSION: &str = "reading_sessions_one_running_key";

fn violates(e: &sqlx::Error, constraint: &str) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.constraint() == Some(constraint))
}

/// A read with its minutes (the sum of its ended sessions).
pub async fn get(db: impl PgExecutor<'_>, user: Uuid, id: Uuid) -> Result<Read> {
    get_many(db, user, &[id])
        .await?
        .pop()
        .ok_or(StorageError::NotFound)
}

/// The user's reads of `ids` (those that exist, in no order): `get` for one, the change
/// feed for a page of them.
pub async fn get_many(db: impl PgExecutor<'_>, user: Uuid, ids: &[Uuid]) -> Result<Vec<Read>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as!(
        Read,
        r#"SELECT r.id, r.book_id, r.started_at, r.finished_at, r.abandoned_at, r.page, r.percent,
                  (SELECT coalesce(sum(s.minutes), 0) FROM reading_sessions s
                    WHERE s.read_id = r.id AND s.ended_at IS NOT NULL) AS "minutes_read!",
                  r.updated_at
           FROM reads r WHERE r.id = ANY($1) AND r.user_id = $2"#,
        ids,
        user,
    )
    .fetch_all(db)
    .await?)
}

/// Starts a read of `book`, shelving the book (status `reading`) if it is not yet there.
/// Two concurrent starts serialise on the library entry's row; the partial unique index
/// refuses the second open read whatever the timing.
pub async fn start(db: &DbPool, user: Uuid, book: Uuid, started_at: DateTime<Utc>) -> Result<StartOutcome> {
    let mut tx = db.begin().await?;
    let shelved = sqlx::query_scalar!(
        r#"INSERT INTO library_entries (user_id, book_id, status)
           SELECT $1, id, 'reading' FROM books WHERE id = $2
           ON CONFLICT (user_id, book_id) DO UPDATE SET status = 'reading', updated_at = now()
           RETURNING (xmax = 0) AS "created!""#,
        user,
        book,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StorageError::NotFound)?;
    let id = Uuid::new_v4();
    let inserted = sqlx::query!(
        "INSERT INTO reads (id, user_id, book_id, started_at) VALUES ($1, $2, $3, $4)",
        id,
        user,
        book,
        started_at,
    )
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if violates(&e, ONE_OPEN_READ) => return Ok(StartOutcome::AlreadyOpen),
        other => other?,
    };
    let mut made = Vec::with_capacity(2);
    if shelved {
        made.push(NewActivity::shelved(user, book, ReadingStatus::Reading));
    }
    made.push(NewActivity::started_reading(user, book));
    let pending = activities::record(&mut tx, &made).await?;
    let read = get(&mut *tx, user, id).await?;
    tx.commit().await?;
    Ok(StartOutcome::Started {
        read,
        shelved,
        pending,
    })
}

/// What a change needs to know about a read, with the read locked.
struct Locked {
    book_id: Uuid,
    started_at: DateTime<Utc>,
    open: bool,
    position: Position,
    page_count: Option<i32>,
}

/// Locks a read, and first its library entry. `start` locks the entry and then, through the
/// one-open-read index, waits on the book's open read; a change to a read that locked the
/// read and then the entry (its status) would deadlock with it. So every path takes the
/// entry first, then the read, then its sessions.
async fn lock(tx: &mut Conn, user: Uuid, id: Uuid) -> Result<Locked> {
    sqlx::query(
        "SELECT 1 FROM library_entries
         WHERE user_id = $1 AND book_id = (SELECT book_id FROM reads WHERE id = $2 AND user_id = $1)
         FOR UPDATE",
    )
    .bind(user)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query!(
        r#"SELECT r.book_id, r.started_at, r.page, r.percent,
                  (r.finished_at IS NULL AND r.abandoned_at IS NULL) AS "open!", b.page_count
           FROM reads r JOIN books b ON b.id = r.book_id
           WHERE r.id = $1 AND r.user_id = $2
           FOR UPDATE OF r"#,
        id,
        user,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StorageError::NotFound)?;
    Ok(Locked {
        book_id: row.book_id,
        started_at: row.started_at,
        open: row.open,
        position: Position {
            page: row.page,
            percent: row.percent,
        },
        page_count: row.page_count,
    })
}

async fn set_position(tx: &mut Conn, id: Uuid, p: Position) -> Result<()> {
    sqlx::query!(
        "UPDATE reads SET page = $2, percent = $3, updated_at = now() WHERE id = $1",
        id,
        p.page,
        p.percent,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves the entry to `to`; with `only_from`, only when it is in that status now.
async fn set_status(
    tx: &mut Conn,
    user: Uuid,
    book: Uuid,
    to: ReadingStatus,
    only_from: Option<ReadingStatus>,
) -> Result<()> {
    sqlx::query!(
        "UPDATE library_entries SET status = $3, updated_at = now()
         WHERE user_id = $1 AND book_id = $2 AND status <> $3 AND ($4::text IS NULL OR status = $4)",
        user,
        book,
        to.as_str(),
        only_from.map(ReadingStatus::as_str),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves an open read to `target`; a paused entry goes back to `reading`.
pub async fn progress(db: &DbPool, user: Uuid, id: Uuid, target: Target) -> Result<Change<Read>> {
    let mut tx = db.begin().await?;
    let read = lock(&mut tx, user, id).await?;
    if !read.open {
        return Ok(Change::Closed);
    }
    let position = match target.position(read.page_count, "page") {
        Ok(p) => p,
        Err(e) => return Ok(Change::Invalid(vec![e])),
    };
    set_position(&mut tx, id, position).await?;
    set_status(
        &mut tx,
        user,
        read.book_id,
        ReadingStatus::Reading,
        Some(ReadingStatus::Paused),
    )
    .await?;
    let read = get(&mut *tx, user, id).await?;
    tx.commit().await?;
    Ok(Change::Done(read))
}

/// Sets the entry of an open read to `paused` (already paused: nothing changes).
pub async fn pause(db: &DbPool, user: Uuid, id: Uuid) -> Result<Change<Read>> {
    let mut tx = db.begin().await?;
    let read = lock(&mut tx, user, id).await?;
    if !read.open {
        return Ok(Change::Closed);
    }
    set_status(&mut tx, user, read.book_id, ReadingStatus::Paused, None).await?;
    let read = get(&mut *tx, user, id).await?;
    tx.commit().await?;
    Ok(Change::Done(read))
}

/// Finishes or abandons an open read, ending its running session at `now`; the entry
/// becomes `read` or `did_not_finish`. Finishing makes a `finished_reading` activity.
pub async fn close(
    db: &DbPool,
    user: Uuid,
    id: Uuid,
    closing: Closing,
    now: DateTime<Utc>,
) -> Result<Change<(Read, Pending)>> {
    let mut tx = db.begin().await?;
    let read = lock(&mut tx, user, id).await?;
    if !read.open {
        return Ok(Change::Closed);
    }
    if let Err(errors) = closing.check_against(read.started_at) {
        return Ok(Change::Invalid(errors));
    }
    end_running_session_of(&mut tx, id, now).await?;
    let (finished_at, abandoned_at, position, status) = match closing {
        Closing::Finished(at) => (
            Some(at),
            None,
            finished_position(read.position, read.page_count),
            ReadingStatus::Read,
        ),
        Closing::Abandoned(at) => (None, Some(at), read.position, ReadingStatus::DidNotFinish),
    };
    sqlx::query!(
        "UPDATE reads SET finished_at = $2, abandoned_at = $3, page = $4, percent = $5, updated_at = now()
         WHERE id = $1",
        id,
        finished_at,
        abandoned_at,
        position.page,
        position.percent,
    )
    .execute(&mut *tx)
    .await?;
    set_status(&mut tx, user, read.book_id, status, None).await?;
    let pending = match closing {
        Closing::Finished(_) => {
            activities::record(&mut tx, &[NewActivity::finished_reading(user, read.book_id)]).await?
        }
        Closing::Abandoned(_) => Vec::new(),
    };
    let read = get(&mut *tx, user, id).await?;
    tx.commit().await?;
    Ok(Change::Done((read, pending)))
}

/// Deletes a read and (by cascade) its sessions. Its entry and then the read are locked
/// first, in the order every path takes them: the delete's change-feed record then waits
/// for the user's head holding nothing a start of the same book could be waiting on.
pub async fn delete(db: &DbPool, user: Uuid, id: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    lock(&mut tx, user, id).await?;
    let done = sqlx::query!("DELETE FROM reads WHERE id = $1 AND user_id = $2", id, user)
        .execute(&mut *tx)
        .await?;
    crate::one_row(done)?;
    tx.commit().await?;
    Ok(())
}

/// The caller's reads of one book, newest start first. A book that does not exist is
/// `NotFound`; one that exists but was never read is an empty page.
pub async fn list(
    db: &DbPool,
    user: Uuid,
    book: Uuid,
    page: PageParams,
) -> Result<(Vec<Read>, Option<Cursor>)> {
    // Always bound (see `keyset_end`): a deep page starts at its key in the index.
    let (after_at, after_id) = page.after.map_or_else(crate::keyset_end, |c| (c.at, c.id));
    let reads = sqlx::query_as!(
        Read,
        r#"SELECT r.id, r.book_id, r.started_at, r.finished_at, r.abandoned_at, r.page, r.percent,
                  (SELECT coalesce(sum(s.minutes), 0) FROM reading_sessions s
                    WHERE s.read_id = r.id AND s.ended_at IS NOT NULL) AS "minutes_read!",
                  r.updated_at
           FROM reads r
           WHERE r.user_id = $1 AND r.book_id = $2
             AND (r.started_at, r.id) < ($3, $4)
           ORDER BY r.started_at DESC, r.id DESC LIMIT $5"#,
        user,
        book,
        after_at,
        after_id,
        page.limit + 1,
    )
    .fetch_all(db)
    .await?;
    if reads.is_empty() && page.after.is_none() {
        crate::books::get(db, book).await?;
    }
    Ok(crate::page(reads, page.limit, |r| Cursor {
        at: r.started_at,
        id: r.id,
    }))
}

async fn end_running_session_of(tx: &mut Conn, read: Uuid, now: DateTime<Utc>) -> Result<()> {
    let running = sqlx::query!(
        "SELECT id, started_at FROM reading_sessions WHERE read_id = $1 AND ended_at IS NULL FOR UPDATE",
        read,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(s) = running {
        finish_session(tx, s.id, s.started_at, now).await?;
    }
    Ok(())
}

async fn finish_session(
    tx: &mut Conn,
    id: Uuid,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "UPDATE reading_sessions SET ended_at = $2, minutes = $3 WHERE id = $1",
        id,
        now.max(started_at),
        session_minutes(started_at, now),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn get_session(db: impl PgExecutor<'_>, user: Uuid, id: Uuid) -> Result<ReadingSession> {
    get_sessions(db, user, &[id])
        .await?
        .pop()
        .ok_or(StorageError::NotFound)
}

/// The user's sessions of `ids` (those that exist, in no order): `get_session` for one, the
/// change feed for a page of them.
pub async fn get_sessions(db: impl PgExecutor<'_>, user: Uuid, ids: &[Uuid]) -> Result<Vec<ReadingSession>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as!(
        ReadingSession,
        "SELECT id, read_id, started_at, ended_at, minutes FROM reading_sessions
         WHERE id = ANY($1) AND user_id = $2",
        ids,
        user,
    )
    .fetch_all(db)
    .await?)
}

/// Starts a timer on an open read. The partial unique index keeps one running session
/// per user, whatever the concurrency.
pub async fn start_session(db: &DbPool, user: Uuid, read: Uuid, now: DateTime<Utc>) -> Result<SessionStart> {
    let mut tx = db.begin().await?;
    if !lock(&mut tx, user, read).await?.open {
        return Ok(SessionStart::ReadClosed);
    }
    let id = Uuid::new_v4();
    let inserted = sqlx::query!(
        "INSERT INTO reading_sessions (id, read_id, user_id, started_at) VALUES ($1, $2, $3, $4)",
        id,
        read,
        user,
        now,
    )
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if violates(&e, ONE_RUNNING_SESSION) => return Ok(SessionStart::AlreadyRunning),
        other => other?,
    };
    let session = get_session(&mut *tx, user, id).await?;
    tx.commit().await?;
    Ok(SessionStart::Started(session))
}

/// Ends a running session at `now`; with `end`, its read moves there as with progress.
pub async fn end_session(
    db: &DbPool,
    user: Uuid,
    id: Uuid,
    end: Option<Target>,
    now: DateTime<Utc>,
) -> Result<SessionEnd> {
    let mut tx = db.begin().await?;
    // The read is locked before the session, in the order closing a read takes them.
    let read_id = get_session(&mut *tx, user, id).await?.read_id;
    let read = lock(&mut tx, user, read_id).await?;
    let session = sqlx::query!(
        "SELECT started_at, ended_at FROM reading_sessions WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StorageError::NotFound)?;
    if session.ended_at.is_some() {
        return Ok(SessionEnd::AlreadyEnded);
    }
    if let Some(target) = end {
        // A running session's read is open: closing a read ends its session first.
        match target.position(read.page_count, "endPage") {
            Ok(p) => {
                set_position(&mut tx, read_id, p).await?;
                set_status(
                    &mut tx,
                    user,
                    read.book_id,
                    ReadingStatus::Reading,
                    Some(ReadingStatus::Paused),
                )
                .await?;
            }
            Err(e) => return Ok(SessionEnd::Invalid(vec![e])),
        }
    }
    finish_session(&mut tx, id, session.started_at, now).await?;
    let session = get_session(&mut *tx, user, id).await?;
    tx.commit().await?;
    Ok(SessionEnd::Ended(session))
}

/// A read's sessions, newest first; another user's read is `NotFound`.
pub async fn list_sessions(
    db: &DbPool,
    user: Uuid,
    read: Uuid,
    page: PageParams,
) -> Result<(Vec<ReadingSession>, Option<Cursor>)> {
    // Always bound (see `keyset_end`): a deep page starts at its key in the index.
    let (after_at, after_id) = page.after.map_or_else(crate::keyset_end, |c| (c.at, c.id));
    let sessions = sqlx::query_as!(
        ReadingSession,
        "SELECT id, read_id, started_at, ended_at, minutes FROM reading_sessions
         WHERE read_id = $1 AND user_id = $2
           AND (started_at, id) < ($3, $4)
         ORDER BY started_at DESC, id DESC LIMIT $5",
        read,
        user,
        after_at,
        after_id,
        page.limit + 1,
    )
    .fetch_all(db)
    .await?;
    if sessions.is_empty() && page.after.is_none() {
        get(db, user, read).await?;
    }
    Ok(crate::page(sessions, page.limit, |s| Cursor {
        at: s.started_at,
        id: s.id,
    }))
}

/// What `seed_history` made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    pub reads: u64,
    pub sessions: u64,
}

/// Demo and benchmark data, in bulk: shelves `books` catalog books for `user` (status
/// `read`, a rating from 1 to 5), gives each one read finished between `from` and `to`
/// (evenly spread) and `sessions_per_read` ended half-hour sessions before its finish.
/// Three statements, whatever the size; the planner's statistics are refreshed after.
pub async fn seed_history(
    db: &DbPool,
    user: Uuid,
    books: i64,
    sessions_per_read: i32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<History> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        "INSERT INTO library_entries (user_id, book_id, status, rating, added_at)
         SELECT $1, id, 'read', 1 + (abs(hashtext(id::text)) % 5), $3 FROM books ORDER BY id LIMIT $2
         ON CONFLICT (user_id, book_id) DO NOTHING",
        user,
        books,
        from,
    )
    .execute(&mut *tx)
    .await?;
    let reads = sqlx::query!(
        "INSERT INTO reads (id, user_id, book_id, started_at, finished_at, percent, updated_at)
         SELECT gen_random_uuid(), $1, book_id, finished - interval '3 days', finished, 100, finished
         FROM (SELECT e.book_id,
                      $2::timestamptz + ($3::timestamptz - $2::timestamptz)
                          * (row_number() OVER (ORDER BY e.book_id)::float8 / (count(*) OVER () + 1)) AS finished
               FROM library_entries e
               WHERE e.user_id = $1
                 AND NOT EXISTS (SELECT 1 FROM reads r WHERE r.user_id = e.user_id AND r.book_id = e.book_id)
              ) AS t",
        user,
        from,
        to,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let sessions = sqlx::query!(
        "INSERT INTO reading_sessions (id, read_id, user_id, started_at, ended_at, minutes)
         SELECT gen_random_uuid(), r.id, r.user_id,
                r.finished_at - make_interval(hours => 12 * k),
                r.finished_at - make_interval(hours => 12 * k) + interval '30 minutes', 30
         FROM reads r CROSS JOIN generate_series(1, $2::int) AS k
         WHERE r.user_id = $1
           AND NOT EXISTS (SELECT 1 FROM reading_sessions s WHERE s.read_id = r.id)",
        user,
        sessions_per_read,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    // Utility statements the macros cannot describe. Fresh statistics, or the planner
    // guesses; a fresh visibility map, or the stats' index-only scans visit the heap.
    sqlx::query("VACUUM (ANALYZE) library_entries, reads, reading_sessions")
        .execute(db)
        .await?;
    Ok(History { reads, sessions })
}

/// An imported entry's reads, as the file tells them (closed ones are history: they go in
/// closed, in the entry's own transaction). One statement whatever their number.
pub async fn insert_imported(
    tx: &mut Conn,
    user: Uuid,
    book: Uuid,
    reads: &[bookshelf_domain::import::ImportedRead],
) -> Result<()> {
    use bookshelf_domain::import::ReadEnd;
    if reads.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = reads.iter().map(|_| Uuid::new_v4()).collect();
    let started: Vec<DateTime<Utc>> = reads.iter().map(|r| r.started_at).collect();
    let finished: Vec<Option<DateTime<Utc>>> = reads
        .iter()
        .map(|r| match r.end {
            ReadEnd::Finished(t) => Some(t),
            _ => None,
        })
        .collect();
    let abandoned: Vec<Option<DateTime<Utc>>> = reads
        .iter()
        .map(|r| match r.end {
            ReadEnd::Abandoned(t) => Some(t),
            _ => None,
        })
        .collect();
    sqlx::query!(
        "INSERT INTO reads (id, user_id, book_id, started_at, finished_at, abandoned_at, percent)
         SELECT id, $2, $3, started, finished, abandoned, CASE WHEN finished IS NULL THEN NULL ELSE 100 END
         FROM unnest($1::uuid[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[])
              AS t(id, started, finished, abandoned)",
        &ids,
        user,
        book,
        &started,
        &finished as &[Option<DateTime<Utc>>],
        &abandoned as &[Option<DateTime<Utc>>],
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
