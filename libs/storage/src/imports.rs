//! Imports and their rows. The one writer of `imports` and `import_rows`; the entries,
//! reads and books an import makes go through `library`, `reading` and `books`.

use std::time::Duration;

use bookshelf_domain::import::{Import, ImportFormat, ImportRowResult, ImportStatus, ParsedRow, RowOutcome};
use bookshelf_domain::{Cursor, NumberCursor, PageParams};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{DbPool, Result, StorageError};

/// How long after its upload URL expires an import still accepts the upload's
/// notification (S3 notifications take seconds; a day's backlog would not be an upload).
pub const UPLOAD_GRACE: Duration = Duration::from_secs(5 * 60);

/// An import never uploaded in time shows (and, after the cleanup, is) `failed` with this.
pub const NOT_UPLOADED: &str = "the file was not uploaded within an hour";

#[derive(sqlx::FromRow)]
struct ImportRecord {
    id: Uuid,
    filename: Option<String>,
    status: String,
    format: Option<String>,
    rows: i32,
    imported: i32,
    skipped: i32,
    failed: i32,
    books_matched: i32,
    books_created: i32,
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl From<ImportRecord> for Import {
    fn from(r: ImportRecord) -> Import {
        Import {
            id: r.id,
            filename: r.filename,
            // The CHECK constraints keep both to these values.
            status: ImportStatus::parse(&r.status).unwrap_or(ImportStatus::Failed),
            format: r.format.as_deref().and_then(ImportFormat::parse),
            rows: r.rows,
            imported: r.imported,
            skipped: r.skipped,
            failed: r.failed,
            books_matched: r.books_matched,
            books_created: r.books_created,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            completed_at: r.completed_at,
        }
    }
}

/// The columns of an `Import`. One never uploaded in time reads as failed at once (the
/// hourly cleanup writes it down later).
const COLUMNS: &str = "id, filename,
    CASE WHEN status = 'awaiting_upload' AND upload_expires_at + interval '5 minutes' < now()
         THEN 'failed' ELSE status END AS status,
    format, rows, imported, skipped, failed, books_matched, books_created,
    CASE WHEN status = 'awaiting_upload' AND upload_expires_at + interval '5 minutes' < now()
         THEN 'the file was not uploaded within an hour' ELSE error END AS error,
    created_at, updated_at, completed_at";

pub async fn create(
    db: &DbPool,
    user: Uuid,
    id: Uuid,
    filename: Option<&str>,
    upload_expires_at: DateTime<Utc>,
) -> Result<Import> {
    let q = format!(
        "INSERT INTO imports (id, user_id, filename, upload_expires_at) VALUES ($1, $2, $3, $4)
         RETURNING {COLUMNS}"
    );
    let r: ImportRecord = sqlx::query_as(&q)
        .bind(id)
        .bind(user)
        .bind(filename)
        .bind(upload_expires_at)
        .fetch_one(db)
        .await?;
    Ok(r.into())
}

/// The caller's import; anyone else's is `NotFound`.
pub async fn get(db: &DbPool, user: Uuid, id: Uuid) -> Result<Import> {
    let q = format!("SELECT {COLUMNS} FROM imports WHERE id = $1 AND user_id = $2");
    let r: Option<ImportRecord> = sqlx::query_as(&q).bind(id).bind(user).fetch_optional(db).await?;
    r.map(Import::from).ok_or(StorageError::NotFound)
}

/// The caller's imports, newest first.
pub async fn list(db: &DbPool, user: Uuid, page: PageParams) -> Result<(Vec<Import>, Option<Cursor>)> {
    // Always bound (see `keyset_end`): a deep page starts at its key in the index.
    let (after_at, after_id) = page.after.map_or_else(crate::keyset_end, |c| (c.at, c.id));
    let q = format!(
        "SELECT {COLUMNS} FROM imports
         WHERE user_id = $1 AND (created_at, id) < ($2, $3)
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let rows: Vec<ImportRecord> = sqlx::query_as(&q)
        .bind(user)
        .bind(after_at)
        .bind(after_id)
        .bind(page.limit + 1)
        .fetch_all(db)
        .await?;
    let imports: Vec<Import> = rows.into_iter().map(Import::from).collect();
    Ok(crate::page(imports, page.limit, |i| Cursor {
        at: i.created_at,
        id: i.id,
    }))
}

/// One page of an import's rows in file order (the import is the caller's: checked by
/// the join, so another's is `NotFound`).
pub async fn rows(
    db: &DbPool,
    user: Uuid,
    id: Uuid,
    outcome: Option<RowOutcome>,
    page: PageParams<NumberCursor>,
) -> Result<(Vec<ImportRowResult>, Option<NumberCursor>)> {
    let owned = sqlx::query_scalar!(
        r#"SELECT true AS "owned!" FROM imports WHERE id = $1 AND user_id = $2"#,
        id,
        user
    )
    .fetch_optional(db)
    .await?;
    if owned.is_none() {
        return Err(StorageError::NotFound);
    }
    let rows = sqlx::query!(
        "SELECT row, title, authors, isbn, outcome, book_id, reason FROM import_rows
         WHERE import_id = $1 AND ($2::text IS NULL OR outcome = $2) AND row > $3
         ORDER BY row LIMIT $4",
        id,
        outcome.map(RowOutcome::as_str),
        page.after.map_or(0, |c| c.0),
        page.limit + 1,
    )
    .fetch_all(db)
    .await?;
    let rows: Vec<ImportRowResult> = rows
        .into_iter()
        .map(|r| ImportRowResult {
            row: r.row,
            title: r.title,
            authors: r.authors,
            isbn: r.isbn,
            outcome: RowOutcome::parse(&r.outcome).unwrap_or(RowOutcome::Failed),
            book_id: r.book_id,
            reason: r.reason,
        })
        .collect();
    Ok(crate::page(rows, page.limit, |r| NumberCursor(r.row)))
}

/// What a worker holds once it has claimed an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub user: Uuid,
    /// Rows already applied: a resumed import starts after them.
    pub applied: i32,
}

/// Marks an uploaded import running. `None` when there is nothing to do: it is finished
/// (a notification delivered twice), gone (its owner deleted the account), or was never
/// uploaded in time.
pub async fn claim(db: &DbPool, id: Uuid) -> Result<Option<Claim>> {
    let claimed = sqlx::query!(
        "UPDATE imports SET status = 'running', updated_at = now()
         WHERE id = $1 AND status IN ('awaiting_upload', 'queued', 'running')
           AND (status <> 'awaiting_upload' OR upload_expires_at + make_interval(secs => $2) > now())
         RETURNING user_id, rows",
        id,
        UPLOAD_GRACE.as_secs_f64(),
    )
    .fetch_optional(db)
    .await?;
    Ok(claimed.map(|c| Claim {
        user: c.user_id,
        applied: c.rows,
    }))
}

/// An uploaded file's import, announced to the importer and waiting for it (the local
/// stand-in for S3 says so as it accepts the upload; deployed the importer's claim does).
pub async fn mark_queued(db: &DbPool, id: Uuid) -> Result<()> {
    sqlx::query!(
        "UPDATE imports SET status = 'queued', updated_at = now() WHERE id = $1 AND status = 'awaiting_upload'",
        id
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_format(db: &DbPool, id: Uuid, format: ImportFormat) -> Result<()> {
    sqlx::query!(
        "UPDATE imports SET format = $2, updated_at = now() WHERE id = $1",
        id,
        format.as_str()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Ends an import: `error` `None` is `completed`, else `failed` with it.
pub async fn finish(db: &DbPool, id: Uuid, error: Option<&str>) -> Result<()> {
    sqlx::query!(
        "UPDATE imports SET status = CASE WHEN $2::text IS NULL THEN 'completed' ELSE 'failed' END,
                            error = $2, completed_at = now(), updated_at = now()
         WHERE id = $1 AND status IN ('awaiting_upload', 'queued', 'running')",
        id,
        error,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// What applying a row did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Row {
        outcome: RowOutcome,
        book: Option<Uuid>,
    },
    /// An earlier attempt applied it already (a redelivered notification, a second worker).
    AlreadyApplied,
    /// The import is gone (its owner deleted the account meanwhile).
    Gone,
}

/// Applies one row in its own transaction: the book (matched or made), the entry and its
/// reads, the row's outcome and the import's counters, all or nothing. The import's row
/// is locked first, so one import's rows apply one at a time and in order, and a row
/// number at or below `rows` is never applied twice.
pub async fn apply_row(db: &DbPool, import: Uuid, user: Uuid, row: &ParsedRow) -> Result<Applied> {
    let mut tx = db.begin().await?;
    let applied = sqlx::query_scalar!("SELECT rows FROM imports WHERE id = $1 FOR UPDATE", import)
        .fetch_optional(&mut *tx)
        .await?;
    match applied {
        None => return Ok(Applied::Gone),
        Some(n) if n >= row.row => return Ok(Applied::AlreadyApplied),
        Some(_) => {}
    }
    let (outcome, book, created, reason) = match &row.parsed {
        Err(reason) => (RowOutcome::Failed, None, None, Some(reason.as_str())),
        Ok(entry) => {
            let (book, created) = crate::books::resolve_for_import(&mut tx, &entry.book).await?;
            match crate::library::insert_imported(&mut tx, user, book, entry).await {
                Ok(true) => (RowOutcome::Imported, Some(book), Some(created), None),
                Ok(false) => (
                    RowOutcome::Skipped,
                    Some(book),
                    Some(created),
                    Some("already in your library"),
                ),
                Err(StorageError::AccountGone) => return Ok(Applied::Gone),
                Err(e) => return Err(e),
            }
        }
    };
    let count = |o: RowOutcome| i32::from(outcome == o);
    sqlx::query!(
        "WITH r AS (
           INSERT INTO import_rows (import_id, row, title, authors, isbn, outcome, book_id, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8))
         UPDATE imports SET rows = rows + 1, imported = imported + $9, skipped = skipped + $10,
                            failed = failed + $11, books_matched = books_matched + $12,
                            books_created = books_created + $13, updated_at = now()
         WHERE id = $1",
        import,
        row.row,
        row.summary.title.as_deref(),
        &row.summary.authors[..],
        row.summary.isbn.as_deref(),
        outcome.as_str(),
        book,
        reason,
        count(RowOutcome::Imported),
        count(RowOutcome::Skipped),
        count(RowOutcome::Failed),
        i32::from(created == Some(false)),
        i32::from(created == Some(true)),
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Applied::Row { outcome, book })
}

/// Imports whose upload never came, written down as failed (the cleanup; at most `limit`).
pub async fn fail_never_uploaded(db: &DbPool, limit: i64) -> Result<u64> {
    let done = sqlx::query!(
        "UPDATE imports SET status = 'failed', error = $3, completed_at = now(), updated_at = now()
         WHERE id IN (SELECT id FROM imports WHERE status = 'awaiting_upload'
                        AND upload_expires_at + make_interval(secs => $1) < now()
                      ORDER BY upload_expires_at LIMIT $2)",
        UPLOAD_GRACE.as_secs_f64(),
        limit,
        NOT_UPLOADED,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
