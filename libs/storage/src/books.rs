//! The catalog and its inventory.

use crate::coalesce::{Coalescer, Loaded};
use crate::DbPool;
use bookshelf_domain::import::BookCandidate;
use bookshelf_domain::{Book, BookPatch, Cursor, NewBook, PageParams, SearchCursor};
use sqlx::{PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::inventory::{self, StockMove, StockReason};
use crate::{conflict_on, Result, StorageError};

const ISBN_KEY: &str = "books_isbn_key";
/// The columns of `Book`, for the queries built at run time (the static ones name them).
const COLUMNS: &str =
    "id, title, authors, isbn, published_year, page_count, description, tags, price_cents, stock, \
                       version, created_at, updated_at";

/// Inserts a book and, when it starts with stock, the ledger row that explains it.
pub async fn insert(db: &DbPool, book: &NewBook, actor: Option<Uuid>) -> Result<Book> {
    let mut tx = db.begin().await?;
    let created = sqlx::query_as!(
        Book,
        "INSERT INTO books (id, title, authors, isbn, published_year, page_count, description, tags,
                            price_cents, stock)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING id, title, authors, isbn, published_year, page_count, description, tags, price_cents, stock,
                   version, created_at, updated_at",
        Uuid::new_v4(),
        book.title,
        &book.authors[..],
        book.isbn.as_deref(),
        book.published_year,
        book.page_count,
        book.description.as_deref(),
        &book.tags[..],
        book.price_cents,
        book.stock,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(conflict_on(ISBN_KEY, "isbn"))?;
    if book.stock > 0 {
        let initial = StockMove {
            book: created.id,
            delta: book.stock,
            stock_after: book.stock,
            why: StockReason::Initial { actor },
        };
        inventory::record(&mut tx, &[initial]).await?;
    }
    tx.commit().await?;
    Ok(created)
}

/// The book that holds this ISBN (normalised), if any: what a duplicate's 409 names.
pub async fn id_by_isbn(db: &DbPool, isbn: &str) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar!("SELECT id FROM books WHERE isbn = $1", isbn)
        .fetch_optional(db)
        .await?)
}

/// Adds many books in one statement (seeding), skipping those whose ISBN is taken, with
/// their initial stock in the ledger like any other book's. Returns how many were added.
pub async fn insert_many(db: &DbPool, books: &[NewBook]) -> Result<u64> {
    let mut tx = db.begin().await?;
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "INSERT INTO books (id, title, authors, isbn, published_year, page_count, description, tags, \
         price_cents, stock) ",
    );
    q.push_values(books, |mut row, b| {
        row.push_bind(Uuid::new_v4())
            .push_bind(&b.title)
            .push_bind(&b.authors)
            .push_bind(&b.isbn)
            .push_bind(b.published_year)
            .push_bind(b.page_count)
            .push_bind(&b.description)
            .push_bind(&b.tags)
            .push_bind(b.price_cents)
            .push_bind(b.stock);
    });
    q.push(" ON CONFLICT (isbn) DO NOTHING RETURNING id, stock");
    let added: Vec<(Uuid, i32)> = q.build_query_as().fetch_all(&mut *tx).await?;
    let initial: Vec<StockMove> = added
        .iter()
        .filter(|(_, stock)| *stock > 0)
        .map(|&(book, stock)| StockMove {
            book,
            delta: stock,
            stock_after: stock,
            why: StockReason::Initial { actor: None },
        })
        .collect();
    if !initial.is_empty() {
        inventory::record(&mut tx, &initial).await?;
    }
    tx.commit().await?;
    Ok(added.len() as u64)
}

/// Fresh planner statistics, as after any bulk load: without them the planner guesses the
/// catalog's selectivity and may scan every row for a search. (A utility statement, which
/// the query macros cannot describe.)
pub async fn analyze(db: &DbPool) -> Result<()> {
    sqlx::query("ANALYZE books").execute(db).await?;
    Ok(())
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Book> {
    sqlx::query_as!(
        Book,
        "SELECT id, title, authors, isbn, published_year, page_count, description, tags, price_cents,
                stock, version, created_at, updated_at
         FROM books WHERE id = $1",
        id,
    )
    .fetch_optional(db)
    .await?
    .ok_or(StorageError::NotFound)
}

/// Reads of one book by id (`GET /books/{id}`, the catalog's hottest read): each a query
/// that starts after it was asked for; reads that arrive together share one (`coalesce`).
pub(crate) struct BookReads(Coalescer<Uuid, Book>);

impl Default for BookReads {
    fn default() -> Self {
        BookReads(Coalescer::new(load_books))
    }
}

impl BookReads {
    async fn get(&self, db: &DbPool, id: Uuid) -> Result<Book> {
        self.0.get(db, id).await?.ok_or(StorageError::NotFound)
    }
}

/// `GET /books/{id}`'s read, through the pool's `BookReads`.
pub async fn read(db: &DbPool, id: Uuid) -> Result<Book> {
    db.coalesced().books.get(db, id).await
}

fn load_books(db: DbPool, ids: Vec<Uuid>) -> Loaded<Uuid, Book> {
    Box::pin(async move {
        // The ids behind a subquery, so the plan is cached (the `coalesce` module says why).
        let rows = sqlx::query_as!(
            Book,
            "SELECT id, title, authors, isbn, published_year, page_count, description, tags, price_cents,
                    stock, version, created_at, updated_at
             FROM books WHERE id = ANY((SELECT $1::uuid[])::uuid[])",
            &ids,
        )
        .fetch_all(&db)
        .await?;
        Ok(rows.into_iter().map(|b| (b.id, b)).collect())
    })
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
    db: &DbPool,
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
    if let Some(n) = &patch.page_count {
        q.push(", page_count = ").push_bind(*n);
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
    let row: Option<Book> = q
        .build_query_as()
        .fetch_optional(db)
        .await
        .map_err(conflict_on(ISBN_KEY, "isbn"))?;
    match row {
        Some(book) => Ok(WriteOutcome::Done(book)),
        None => missing_or_stale(db, id).await,
    }
}

async fn missing_or_stale<T>(db: &DbPool, id: Uuid) -> Result<WriteOutcome<T>> {
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM books WHERE id = $1) AS "exists!""#,
        id
    )
    .fetch_one(db)
    .await?;
    Ok(if exists {
        WriteOutcome::Stale
    } else {
        WriteOutcome::NotFound
    })
}

pub async fn delete(db: &DbPool, id: Uuid, expected_version: Option<i64>) -> Result<WriteOutcome<()>> {
    let done = sqlx::query!(
        "DELETE FROM books WHERE id = $1 AND ($2::bigint IS NULL OR version = $2)",
        id,
        expected_version,
    )
    .execute(db)
    .await?;
    if done.rows_affected() == 1 {
        Ok(WriteOutcome::Done(()))
    } else {
        missing_or_stale(db, id).await
    }
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

/// An admin's stock change, recorded in the ledger in the same transaction.
pub async fn change_stock(
    db: &DbPool,
    id: Uuid,
    delta: i32,
    reason: &str,
    actor: Uuid,
) -> Result<StockChange> {
    let mut tx = db.begin().await?;
    let why = StockReason::Adjusted { reason, actor };
    if let Some(stock) = inventory::move_stock(&mut tx, id, delta, why).await? {
        tx.commit().await?;
        return Ok(StockChange::Changed { stock });
    }
    let current = sqlx::query_scalar!("SELECT stock FROM books WHERE id = $1", id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(match current {
        Some(stock) => StockChange::Insufficient { stock },
        None => StockChange::NotFound,
    })
}

/// What GET /books filters on.
#[derive(Debug, Default, Clone)]
pub struct BookFilter {
    pub author: Option<String>,
    pub tag: Option<String>,
}

/// One page of books and the cursor of the next, in creation order. A filter is walked
/// through its own table (`book_authors`, `book_tags`): one index range in (created_at, id)
/// order that stops at the page, however many books the value has; the other filter, when
/// both are given, is checked on the rows the first one yields.
pub async fn list_recent(
    db: &DbPool,
    filter: &BookFilter,
    page: PageParams<Cursor>,
) -> Result<(Vec<Book>, Option<Cursor>)> {
    let columns = COLUMNS
        .split(',')
        .map(|c| format!("b.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {columns} FROM "));
    let by_value = match (&filter.author, &filter.tag) {
        (Some(author), _) => {
            q.push("book_authors f JOIN books b ON b.id = f.book_id WHERE f.author_ci = lower(")
                .push_bind(author.clone())
                .push(")");
            if let Some(tag) = &filter.tag {
                q.push(" AND b.tags @> ARRAY[")
                    .push_bind(tag.clone())
                    .push("]::text[]");
            }
            true
        }
        (None, Some(tag)) => {
            q.push("book_tags f JOIN books b ON b.id = f.book_id WHERE f.tag = ")
                .push_bind(tag.clone());
            true
        }
        (None, None) => {
            q.push("books b WHERE true");
            false
        }
    };
    let (at, id) = if by_value {
        ("f.created_at", "f.book_id")
    } else {
        ("b.created_at", "b.id")
    };
    crate::push_keyset(&mut q, at, id, page);
    let books: Vec<Book> = q.build_query_as().fetch_all(db).await?;
    Ok(crate::page(books, page.limit, |b| Cursor {
        at: b.created_at,
        id: b.id,
    }))
}

/// One page of a full-text search, by relevance: books whose title or authors match (tier
/// 1), then those that match only in the description (tier 2), newest first within each.
/// Each tier is one indexed statement that stops at the page, whatever the matches number;
/// the second runs only when the first leaves the page short.
pub async fn search(
    db: &DbPool,
    filter: &BookFilter,
    query: &str,
    page: PageParams<SearchCursor>,
) -> Result<(Vec<Book>, Option<SearchCursor>)> {
    let mut hits: Vec<(i16, Book)> = Vec::new();
    for tier in page.after.map_or(1, |c| c.tier)..=2 {
        let want = page.limit + 1 - hits.len() as i64;
        if want <= 0 {
            break;
        }
        let after = page.after.filter(|c| c.tier == tier);
        let books = search_tier(db, filter, query, tier, after, want).await?;
        hits.extend(books.into_iter().map(|b| (tier, b)));
    }
    let (hits, next) = crate::page(hits, page.limit, |(tier, b)| SearchCursor {
        tier: *tier,
        at: b.created_at,
        id: b.id,
    });
    Ok((hits.into_iter().map(|(_, b)| b).collect(), next))
}

/// Up to `limit` books of one relevance tier after `after`, newest first.
async fn search_tier(
    db: &DbPool,
    filter: &BookFilter,
    query: &str,
    tier: i16,
    after: Option<SearchCursor>,
    limit: i64,
) -> Result<Vec<Book>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {COLUMNS} FROM books WHERE "));
    if tier == 1 {
        q.push("heading_search @@ websearch_to_tsquery('english', ")
            .push_bind(query.to_string())
            .push(")");
    } else {
        q.push("search @@ websearch_to_tsquery('english', ")
            .push_bind(query.to_string())
            .push(") AND NOT heading_search @@ websearch_to_tsquery('english', ")
            .push_bind(query.to_string())
            .push(")");
    }
    // Through the filters' own tables: for a rare author or tag the planner can start there
    // and check the words on those few books, rather than walk the words' matches.
    if let Some(a) = &filter.author {
        q.push(" AND id IN (SELECT book_id FROM book_authors WHERE author_ci = lower(")
            .push_bind(a.clone())
            .push("))");
    }
    if let Some(t) = &filter.tag {
        q.push(" AND id IN (SELECT book_id FROM book_tags WHERE tag = ")
            .push_bind(t.clone())
            .push(")");
    }
    if let Some(c) = after {
        q.push(" AND (created_at, id) < (")
            .push_bind(c.at)
            .push(", ")
            .push_bind(c.id)
            .push(")");
    }
    q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit);
    // Planned with its values every time, never from a cached generic plan: how many books
    // the words match decides between the GIN bitmap (few) and the walk that stops at the
    // page (many); one plan for every query would be wrong for one side or the other.
    Ok(q.build_query_as().persistent(false).fetch_all(db).await?)
}

/// How many books the catalog holds (seeding decides from it how many to add).
pub async fn count(db: &DbPool) -> Result<i64> {
    Ok(sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM books"#)
        .fetch_one(db)
        .await?)
}

/// The catalog book an import row names, and whether it was made now: the book with its
/// ISBN, else the one with its title and first author (`bookshelf_match_key`), else a new
/// one, not for sale. Race-free across concurrent imports: the title's advisory lock makes
/// look-up-then-create one step per title, and the ISBN's unique key settles two titles
/// racing for one ISBN.
pub async fn resolve_for_import(tx: &mut crate::Conn, book: &BookCandidate) -> Result<(Uuid, bool)> {
    if let Some(isbn) = &book.isbn {
        if let Some(id) = sqlx::query_scalar!("SELECT id FROM books WHERE isbn = $1", isbn)
            .fetch_optional(&mut *tx)
            .await?
        {
            return Ok((id, false));
        }
    }
    // Held to the end of the transaction. The look-up below is a statement of its own: in
    // READ COMMITTED each statement sees what committed before it began, so it sees a book
    // that the lock's previous holder made.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock($1, hashtext(bookshelf_match_key($2, $3)))",
        IMPORT_MATCH_LOCK,
        book.title,
        &book.authors[..],
    )
    .execute(&mut *tx)
    .await?;
    if let Some(id) = sqlx::query_scalar!(
        "SELECT id FROM books WHERE bookshelf_match_key(title, authors) = bookshelf_match_key($1, $2)
         ORDER BY created_at, id LIMIT 1",
        book.title,
        &book.authors[..],
    )
    .fetch_optional(&mut *tx)
    .await?
    {
        return Ok((id, false));
    }
    let created = sqlx::query_scalar!(
        "INSERT INTO books (id, title, authors, isbn, published_year, page_count, price_cents, stock)
         VALUES ($1, $2, $3, $4, $5, $6, NULL, 0)
         ON CONFLICT (isbn) DO NOTHING RETURNING id",
        Uuid::new_v4(),
        book.title,
        &book.authors[..],
        book.isbn.as_deref(),
        book.published_year,
        book.page_count,
    )
    .fetch_optional(&mut *tx)
    .await?;
    match created {
        Some(id) => Ok((id, true)),
        // Another title took this ISBN first (it committed while we waited on its key).
        None => {
            let id = sqlx::query_scalar!("SELECT id FROM books WHERE isbn = $1", book.isbn.as_deref())
                .fetch_one(&mut *tx)
                .await?;
            Ok((id, false))
        }
    }
}

/// The advisory-lock class of import book matching (the first key of the two-key form, so
/// it cannot collide with another use of advisory locks).
const IMPORT_MATCH_LOCK: i32 = 0x1b00c;
