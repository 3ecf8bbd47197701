//! Users' personal libraries.

use bookshelf_domain::{BookSummary, Cursor, EntryChange, LibraryEntry, PageParams, ReadingStatus};
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::{Result, StorageError};

#[derive(sqlx::FromRow)]
struct EntryRow {
    book_id: Uuid,
    title: String,
    authors: Vec<String>,
    status: String,
    rating: Option<i16>,
    review: Option<String>,
    favorite: bool,
    added_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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
            // The CHECK constraint admits only the three statuses.
            status: ReadingStatus::parse(&r.status).unwrap_or(ReadingStatus::WantToRead),
            rating: r.rating,
            review: r.review,
            favorite: r.favorite,
            added_at: r.added_at,
            updated_at: r.updated_at,
        }
    }
}

const SELECT: &str = "SELECT e.book_id, b.title, b.authors, e.status, e.rating, e.review, e.favorite, \
                      e.added_at, e.updated_at FROM library_entries e JOIN books b ON b.id = e.book_id";

/// Creates or replaces the entry; `true` when it was created. An unknown book is `NotFound`.
pub async fn put(db: &PgPool, user: Uuid, book: Uuid, change: &EntryChange) -> Result<(LibraryEntry, bool)> {
    let created: Option<bool> = sqlx::query_scalar(
        "INSERT INTO library_entries (user_id, book_id, status, rating, review, favorite)
         SELECT $1, id, $3, $4, $5, $6 FROM books WHERE id = $2
         ON CONFLICT (user_id, book_id) DO UPDATE
            SET status = EXCLUDED.status, rating = EXCLUDED.rating, review = EXCLUDED.review,
                favorite = EXCLUDED.favorite, updated_at = now()
         RETURNING (xmax = 0)",
    )
    .bind(user)
    .bind(book)
    .bind(change.status.as_str())
    .bind(change.rating)
    .bind(&change.review)
    .bind(change.favorite)
    .fetch_optional(db)
    // A book deleted between the SELECT and the insert is a NotFound (see StorageError).
    .await?;
    let created = created.ok_or(StorageError::NotFound)?;
    Ok((get(db, user, book).await?, created))
}

pub async fn get(db: impl PgExecutor<'_>, user: Uuid, book: Uuid) -> Result<LibraryEntry> {
    let sql = format!("{SELECT} WHERE e.user_id = $1 AND e.book_id = $2");
    sqlx::query_as::<_, EntryRow>(&sql)
        .bind(user)
        .bind(book)
        .fetch_optional(db)
        .await?
        .map(LibraryEntry::from)
        .ok_or(StorageError::NotFound)
}

pub async fn delete(db: &PgPool, user: Uuid, book: Uuid) -> Result<()> {
    let done = sqlx::query("DELETE FROM library_entries WHERE user_id = $1 AND book_id = $2")
        .bind(user)
        .bind(book)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StorageError::NotFound);
    }
    Ok(())
}

#[derive(Debug, Default, Clone, Copy)]
pub struct EntryFilter {
    pub status: Option<ReadingStatus>,
    pub favorite: Option<bool>,
}

/// One page of the user's entries in the order they were added.
pub async fn list(
    db: &PgPool,
    user: Uuid,
    filter: EntryFilter,
    page: PageParams,
) -> Result<(Vec<LibraryEntry>, Option<Cursor>)> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    q.push(" WHERE e.user_id = ").push_bind(user);
    if let Some(s) = filter.status {
        q.push(" AND e.status = ").push_bind(s.as_str());
    }
    if let Some(f) = filter.favorite {
        q.push(" AND e.favorite = ").push_bind(f);
    }
    crate::push_keyset(&mut q, "e.added_at", "e.book_id", page);
    let rows: Vec<EntryRow> = q.build_query_as().fetch_all(db).await?;
    let entries: Vec<LibraryEntry> = rows.into_iter().map(LibraryEntry::from).collect();
    Ok(crate::page(entries, page.limit, |e| Cursor {
        at: e.added_at,
        id: e.book_id,
    }))
}
