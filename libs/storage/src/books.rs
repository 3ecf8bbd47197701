//! The catalog and its inventory.

use bookshelf_domain::{Book, BookPatch, Cursor, NewBook, PageParams, RankCursor};
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::{conflict_on, Result, StorageError};

const ISBN_KEY: &str = "books_isbn_key";
const COLUMNS: &str = "id, title, authors, isbn, published_year, description, tags, price_cents, stock, \
                       version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct BookRow {
    id: Uuid,
    title: String,
    authors: Vec<String>,
    isbn: Option<String>,
    published_year: Option<i32>,
    description: Option<String>,
    tags: Vec<String>,
    price_cents: i64,
    stock: i32,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<BookRow> for Book {
    fn from(r: BookRow) -> Book {
        Book {
            id: r.id,
            title: r.title,
            authors: r.authors,
            isbn: r.isbn,
            published_year: r.published_year,
            description: r.description,
            tags: r.tags,
            price_cents: r.price_cents,
            stock: r.stock,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Inserts a book and, when it starts with stock, the ledger row that explains it.
pub async fn insert(db: &PgPool, book: &NewBook, actor: Option<Uuid>) -> Result<Book> {
    let mut tx = db.begin().await?;
    let sql = format!(
        "INSERT INTO books (id, title, authors, isbn, published_year, description, tags, price_cents, stock)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    );
    let row: BookRow = sqlx::query_as(&sql)
        .bind(Uuid::new_v4())
        .bind(&book.title)
        .bind(&book.authors)
        .bind(&book.isbn)
        .bind(book.published_year)
        .bind(&book.description)
        .bind(&book.tags)
        .bind(book.price_cents)
        .bind(book.stock)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_on(ISBN_KEY, "isbn"))?;
    if book.stock > 0 {
        record(
            &mut *tx,
            row.id,
            book.stock,
            book.stock,
            "initial stock",
            actor,
            None,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(row.into())
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Book> {
    let sql = format!("SELECT {COLUMNS} FROM books WHERE id = $1");
    sqlx::query_as::<_, BookRow>(&sql)
        .bind(id)
        .fetch_optional(db)
        .await?
        .map(Book::from)
        .ok_or(StorageError::NotFound)
}

/// Why a conditional write did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome<T> {
    Done(T),
    NotFound,
    /// `If-Match` named a version that is no longer current.
    Stale,
}

/// Applies `patch`; with `expected_version`, only if the book is still at that version.
pub async fn update(
    db: &PgPool,
    id: Uuid,
    patch: &BookPatch,
    expected_version: Option<i64>,
) -> Result<WriteOutcome<Book>> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new("UPDATE books SET version = version + 1, updated_at = now()");
    if let Some(t) = &patch.title {
        q.push(", title = ").push_bind(t);
    }
    if let Some(a) = &patch.authors {
        q.push(", authors = ").push_bind(a);
    }
    if let Some(i) = &patch.isbn {
        q.push(", isbn = ").push_bind(i);
    }
    if let Some(y) = &patch.published_year {
        q.push(", published_year = ").push_bind(*y);
    }
    if let Some(d) = &patch.description {
        q.push(", description = ").push_bind(d);
    }
    if let Some(t) = &patch.tags {
        q.push(", tags = ").push_bind(t);
    }
    if let Some(p) = patch.price_cents {
        q.push(", price_cents = ").push_bind(p);
    }
    q.push(" WHERE id = ").push_bind(id);
    if let Some(v) = expected_version {
        q.push(" AND version = ").push_bind(v);
    }
    q.push(format!(" RETURNING {COLUMNS}"));
    let row: Option<BookRow> = q
        .build_query_as()
        .fetch_optional(db)
        .await
        .map_err(conflict_on(ISBN_KEY, "isbn"))?;
    match row {
        Some(r) => Ok(WriteOutcome::Done(r.into())),
        None => missing_or_stale(db, id).await,
    }
}

async fn missing_or_stale<T>(db: &PgPool, id: Uuid) -> Result<WriteOutcome<T>> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM books WHERE id = $1)")
        .bind(id)
        .fetch_one(db)
        .await?;
    Ok(if exists {
        WriteOutcome::Stale
    } else {
        WriteOutcome::NotFound
    })
}

pub async fn delete(db: &PgPool, id: Uuid, expected_version: Option<i64>) -> Result<WriteOutcome<()>> {
    let done = sqlx::query("DELETE FROM books WHERE id = $1 AND ($2::bigint IS NULL OR version = $2)")
        .bind(id)
        .bind(expected_version)
        .execute(db)
        .await?;
    if done.rows_affected() == 1 {
        Ok(WriteOutcome::Done(()))
    } else {
        missing_or_stale(db, id).await
    }
}

async fn record(
    db: impl PgExecutor<'_>,
    book: Uuid,
    delta: i32,
    stock_after: i32,
    reason: &str,
    actor: Option<Uuid>,
    order: Option<Uuid>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO inventory_ledger (book_id, delta, stock_after, reason, actor_id, order_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(book)
    .bind(delta)
    .bind(stock_after)
    .bind(reason)
    .bind(actor)
    .bind(order)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum StockChange {
    Changed {
        stock: i32,
    },
    NotFound,
    /// The change would take stock below zero; nothing was changed.
    Insufficient {
        stock: i32,
    },
}

/// Changes stock by `delta` in one guarded statement (no read-modify-write, so concurrent
/// changes cannot lose each other), and records it in the ledger in the same transaction.
pub async fn change_stock(
    db: &PgPool,
    id: Uuid,
    delta: i32,
    reason: &str,
    actor: Option<Uuid>,
) -> Result<StockChange> {
    let mut tx = db.begin().await?;
    let stock: Option<i32> = sqlx::query_scalar(
        "UPDATE books SET stock = stock + $2, version = version + 1, updated_at = now()
         WHERE id = $1 AND stock + $2 >= 0 RETURNING stock",
    )
    .bind(id)
    .bind(delta)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| match &e {
        // stock + delta beyond i32: as impossible to satisfy as going below zero.
        sqlx::Error::Database(d) if d.code().as_deref() == Some("22003") => StorageError::Conflict("stock"),
        _ => StorageError::from(e),
    })?;
    let Some(stock) = stock else {
        let current: Option<i32> = sqlx::query_scalar("SELECT stock FROM books WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        return Ok(match current {
            Some(stock) => StockChange::Insufficient { stock },
            None => StockChange::NotFound,
        });
    };
    record(&mut *tx, id, delta, stock, reason, actor, None).await?;
    tx.commit().await?;
    Ok(StockChange::Changed { stock })
}

/// What GET /books filters on.
#[derive(Debug, Default, Clone)]
pub struct BookFilter {
    pub q: Option<String>,
    pub author: Option<String>,
    pub tag: Option<String>,
}

/// One page of books and the cursor of the next. Without `q` they come in creation order;
/// with `q`, by relevance (then id), using the full-text index.
pub async fn list_recent(
    db: &PgPool,
    filter: &BookFilter,
    page: PageParams<Cursor>,
) -> Result<(Vec<Book>, Option<Cursor>)> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {COLUMNS} FROM books WHERE true"));
    push_filters(&mut q, filter);
    crate::push_keyset(&mut q, "created_at", "id", page);
    let rows: Vec<BookRow> = q.build_query_as().fetch_all(db).await?;
    let books: Vec<Book> = rows.into_iter().map(Book::from).collect();
    Ok(crate::page(books, page.limit, |b| Cursor {
        at: b.created_at,
        id: b.id,
    }))
}

pub async fn search(
    db: &PgPool,
    filter: &BookFilter,
    query: &str,
    page: PageParams<RankCursor>,
) -> Result<(Vec<Book>, Option<RankCursor>)> {
    #[derive(sqlx::FromRow)]
    struct Ranked {
        #[sqlx(flatten)]
        book: BookRow,
        rank: f32,
    }
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new("WITH hits AS (SELECT ");
    q.push(COLUMNS)
        .push(", ts_rank(search, websearch_to_tsquery('english', ")
        .push_bind(query.to_string())
        .push(")) AS rank FROM books WHERE search @@ websearch_to_tsquery('english', ")
        .push_bind(query.to_string())
        .push(")");
    push_filters(&mut q, filter);
    q.push(") SELECT * FROM hits WHERE true");
    if let Some(c) = page.after {
        q.push(" AND (rank < ")
            .push_bind(c.rank)
            .push(" OR (rank = ")
            .push_bind(c.rank)
            .push(" AND id > ")
            .push_bind(c.id)
            .push("))");
    }
    q.push(" ORDER BY rank DESC, id LIMIT ").push_bind(page.limit + 1);
    let rows: Vec<Ranked> = q.build_query_as().fetch_all(db).await?;
    let (rows, next) = crate::page(rows, page.limit, |r| RankCursor {
        rank: r.rank,
        id: r.book.id,
    });
    Ok((rows.into_iter().map(|r| r.book.into()).collect(), next))
}

fn push_filters(q: &mut QueryBuilder<'_, Postgres>, filter: &BookFilter) {
    if let Some(a) = &filter.author {
        q.push(" AND authors_ci @> ARRAY[lower(")
            .push_bind(a.clone())
            .push(")]");
    }
    if let Some(t) = &filter.tag {
        q.push(" AND tags @> ARRAY[")
            .push_bind(t.clone())
            .push("]::text[]");
    }
}

/// The ledger of one book, oldest first (for audits and tests).
pub async fn ledger(db: &PgPool, book: Uuid) -> Result<Vec<(i32, i32, String, Option<Uuid>)>> {
    Ok(sqlx::query_as(
        "SELECT delta, stock_after, reason, actor_id FROM inventory_ledger WHERE book_id = $1 ORDER BY id",
    )
    .bind(book)
    .fetch_all(db)
    .await?)
}
