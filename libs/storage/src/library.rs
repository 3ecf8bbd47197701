//! Users' personal libraries.

use crate::DbPool;
use std::collections::HashMap;

use bookshelf_domain::activity::entry_activities;
use bookshelf_domain::{
    BookSummary, Cursor, EntryChange, ExportBook, ExportEntry, LibraryEntry, PageParams, Read, ReadingStatus,
};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::activities::{self, Pending};
use crate::{Result, StorageError};

/// An entry joined with its book, as one row; `LibraryEntry` nests the book's fields.
pub(crate) struct EntryRow {
    pub(crate) book_id: Uuid,
    pub(crate) title: String,
    pub(crate) authors: Vec<String>,
    pub(crate) status: ReadingStatus,
    pub(crate) rating: Option<i16>,
    pub(crate) review: Option<String>,
    pub(crate) favorite: bool,
    pub(crate) added_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<EntryRow> for LibraryEntry {
    fn from(r: EntryRow) -> LibraryEntry {
        LibraryEntry {
            book_id: r.book_id,
            book: BookSummary {
                id: r.book_id,
                title: r.title,
                authors: r.authors,
            },
            status: r.status,
            rating: r.rating,
            review: r.review,
            favorite: r.favorite,
            added_at: r.added_at,
            updated_at: r.updated_at,
        }
    }
}

/// Creates or replaces the entry; `true` when it was created. An unknown book is
/// `NotFound`. The activities it makes (`shelved`, `rated`) are written in the same
/// transaction; they come back to be sent.
pub async fn put(
    db: &DbPool,
    user: Uuid,
    book: Uuid,
    change: &EntryChange,
) -> Result<(LibraryEntry, bool, Pending)> {
    let mut tx = db.begin().await?;
    // The rating just before, locked: "rated" means it changed.
    let old_rating = sqlx::query_scalar!(
        "SELECT rating FROM library_entries WHERE user_id = $1 AND book_id = $2 FOR UPDATE",
        user,
        book,
    )
    .fetch_optional(&mut *tx)
    .await?
    .flatten();
    let created = sqlx::query_scalar!(
        r#"INSERT INTO library_entries (user_id, book_id, status, rating, review, favorite)
           SELECT $1, id, $3, $4, $5, $6 FROM books WHERE id = $2
           ON CONFLICT (user_id, book_id) DO UPDATE
              SET status = EXCLUDED.status, rating = EXCLUDED.rating, review = EXCLUDED.review,
                  favorite = EXCLUDED.favorite, updated_at = now()
           RETURNING (xmax = 0) AS "created!""#,
        user,
        book,
        change.status.as_str(),
        change.rating,
        change.review.as_deref(),
        change.favorite,
    )
    .fetch_optional(&mut *tx)
    // A book deleted between the SELECT and the insert is a NotFound (see StorageError).
    .await?;
    let created = created.ok_or(StorageError::NotFound)?;
    let made = entry_activities(user, book, created, change.status, old_rating, change.rating);
    let pending = activities::record(&mut tx, &made).await?;
    let entry = get(&mut *tx, user, book).await?;
    tx.commit().await?;
    Ok((entry, created, pending))
}

pub async fn get(db: impl PgExecutor<'_>, user: Uuid, book: Uuid) -> Result<LibraryEntry> {
    get_many(db, user, &[book])
        .await?
        .pop()
        .ok_or(StorageError::NotFound)
}

/// The user's entries of `books` (those that exist, in no order): `get` for one, the change
/// feed for a page of them.
pub async fn get_many(db: impl PgExecutor<'_>, user: Uuid, books: &[Uuid]) -> Result<Vec<LibraryEntry>> {
    if books.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as!(
        EntryRow,
        r#"SELECT e.book_id, b.title, b.authors, e.status AS "status: ReadingStatus", e.rating,
                  e.review, e.favorite, e.added_at, e.updated_at
           FROM library_entries e JOIN books b ON b.id = e.book_id
           WHERE e.user_id = $1 AND e.book_id = ANY($2)"#,
        user,
        books,
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(LibraryEntry::from)
    .collect())
}

pub async fn delete(db: &DbPool, user: Uuid, book: Uuid) -> Result<()> {
    let done = sqlx::query!(
        "DELETE FROM library_entries WHERE user_id = $1 AND book_id = $2",
        user,
        book,
    )
    .execute(db)
    .await?;
    crate::one_row(done)
}

#[derive(Debug, Default, Clone, Copy)]
pub struct EntryFilter {
    pub status: Option<ReadingStatus>,
    pub favorite: Option<bool>,
}

/// One page of the user's entries in the order they were added (one user's entries are
/// few, and the (user, added, book) index walks them in order whatever the filters).
pub async fn list(
    db: &DbPool,
    user: Uuid,
    filter: EntryFilter,
    page: PageParams,
) -> Result<(Vec<LibraryEntry>, Option<Cursor>)> {
    // Always bound (see `keyset_start`): a deep page starts at its key in the index.
    let (after_at, after_id) = page.after.map_or_else(crate::keyset_start, |c| (c.at, c.id));
    let rows = sqlx::query_as!(
        EntryRow,
        r#"SELECT e.book_id, b.title, b.authors, e.status AS "status: ReadingStatus", e.rating,
                  e.review, e.favorite, e.added_at, e.updated_at
           FROM library_entries e JOIN books b ON b.id = e.book_id
           WHERE e.user_id = $1
             AND ($2::text IS NULL OR e.status = $2)
             AND ($3::bool IS NULL OR e.favorite = $3)
             AND (e.added_at, e.book_id) > ($4, $5)
           ORDER BY e.added_at, e.book_id LIMIT $6"#,
        user,
        filter.status.map(ReadingStatus::as_str),
        filter.favorite,
        after_at,
        after_id,
        page.limit + 1,
    )
    .fetch_all(db)
    .await?;
    let entries: Vec<LibraryEntry> = rows.into_iter().map(LibraryEntry::from).collect();
    Ok(crate::page(entries, page.limit, |e| Cursor {
        at: e.added_at,
        id: e.book_id,
    }))
}

/// One page of the user's library for the export, each entry with all its reads: the
/// export walks the shelf page by page, so memory holds one page of rows at a time.
pub async fn export_page(
    db: &DbPool,
    user: Uuid,
    after: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<ExportEntry>, Option<Cursor>)> {
    let from = after.map_or_else(crate::keyset_start, |c| (c.at, c.id));
    let rows = sqlx::query!(
        r#"SELECT e.book_id, b.title, b.authors, b.isbn, b.page_count, b.published_year,
                  e.status AS "status: ReadingStatus", e.rating, e.review, e.favorite, e.added_at
           FROM library_entries e JOIN books b ON b.id = e.book_id
           WHERE e.user_id = $1
             AND (e.added_at, e.book_id) > ($2, $3)
           ORDER BY e.added_at, e.book_id LIMIT $4"#,
        user,
        from.0,
        from.1,
        limit + 1,
    )
    .fetch_all(db)
    .await?;
    let (rows, next) = crate::page(rows, limit, |r| Cursor {
        at: r.added_at,
        id: r.book_id,
    });
    let books: Vec<Uuid> = rows.iter().map(|r| r.book_id).collect();
    let reads = sqlx::query_as!(
        Read,
        r#"SELECT r.id, r.book_id, r.started_at, r.finished_at, r.abandoned_at, r.page, r.percent,
                  (SELECT coalesce(sum(s.minutes), 0) FROM reading_sessions s
                    WHERE s.read_id = r.id AND s.ended_at IS NOT NULL) AS "minutes_read!",
                  r.updated_at
           FROM reads r
           WHERE r.user_id = $1 AND r.book_id = ANY($2)
           ORDER BY r.book_id, r.started_at DESC, r.id DESC"#,
        user,
        &books,
    )
    .fetch_all(db)
    .await?;
    let mut by_book: HashMap<Uuid, Vec<Read>> = HashMap::new();
    for r in reads {
        by_book.entry(r.book_id).or_default().push(r);
    }
    let entries = rows
        .into_iter()
        .map(|r| ExportEntry {
            reads: by_book.remove(&r.book_id).unwrap_or_default(),
            book: ExportBook {
                id: r.book_id,
                title: r.title,
                authors: r.authors,
                isbn: r.isbn,
                page_count: r.page_count,
                published_year: r.published_year,
            },
            status: r.status,
            rating: r.rating,
            review: r.review,
            favorite: r.favorite,
            added_at: r.added_at,
        })
        .collect();
    Ok((entries, next))
}

/// Shelves an imported row's book unless the user already has it (`false`: nothing was
/// written): an import never overwrites, and makes no activities.
pub async fn insert_imported(
    tx: &mut crate::Conn,
    user: Uuid,
    book: Uuid,
    row: &bookshelf_domain::import::ImportRow,
) -> Result<bool> {
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO library_entries (user_id, book_id, status, rating, review, favorite, added_at)
           VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()))
           ON CONFLICT (user_id, book_id) DO NOTHING
           RETURNING true AS "inserted!""#,
        user,
        book,
        row.status.as_str(),
        row.rating,
        row.review.as_deref(),
        row.favorite,
        row.added_at,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let inserted = inserted.is_some();
    if inserted {
        crate::reading::insert_imported(tx, user, book, &row.reads).await?;
    }
    Ok(inserted)
}
