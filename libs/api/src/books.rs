//! The catalog: shared by everyone signed in. Anyone may add a book that is missing; only
//! admins sell (a price, stock), edit and delete.

use std::sync::Arc;

use bookshelf_domain::{
    field, AllValid, Book, BookInput, Checked, Cursor, InventoryInput, PageParams, SearchCursor,
};
use bookshelf_http::{
    if_match, json, no_content, path_uuid, query_param, read_json, ApiError, Body, Identity, Page, Request,
    Response,
};
use bookshelf_storage::books::{self, BookFilter, StockChange, WriteOutcome};
use bookshelf_storage::changes;
use bookshelf_storage::StorageError;
use chrono::Datelike;
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::openapi::{BookPage, Problem};
use crate::AppState;

/// A book response: the book, its `ETag`, and `Location` when it was just created.
fn book_response(status: StatusCode, book: &Book) -> Response<Body> {
    let mut r = json(status, book);
    if let Ok(v) = book.etag().parse() {
        r.headers_mut().insert(http::header::ETAG, v);
    }
    if status == StatusCode::CREATED {
        if let Ok(v) = format!("/books/{}", book.id).parse() {
            r.headers_mut().insert(http::header::LOCATION, v);
        }
    }
    r
}

fn book_not_found(e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound => ApiError::not_found("book"),
        other => other.into(),
    }
}

/// The version an `If-Match` header demands: `Ok(None)` for no header or `*`; a tag for
/// another book or a malformed one demands a version that never exists, so it fails as
/// stale (412) — or 404 if the book is gone.
fn expected_version(req: &Request, id: Uuid) -> Option<i64> {
    let tags = if_match(req)?;
    if tags.iter().any(|t| t == "*") {
        return None;
    }
    let prefix = format!("\"{}-", id.simple());
    Some(
        tags.iter()
            .filter_map(|t| t.strip_prefix(&prefix)?.strip_suffix('"')?.parse::<i64>().ok())
            .next()
            .unwrap_or(-1),
    )
}

fn written<T>(outcome: WriteOutcome<T>) -> Result<T, ApiError> {
    match outcome {
        WriteOutcome::Done(v) => Ok(v),
        WriteOutcome::NotFound => Err(ApiError::not_found("book")),
        WriteOutcome::Stale => Err(ApiError::PreconditionFailed(
            "the book has changed since that ETag; fetch it again".into(),
        )),
    }
}

/// A write refused for a duplicate ISBN becomes a 409 that names the book holding it
/// (`bookId`), so the client can shelve that one instead.
async fn duplicate_isbn(e: StorageError, db: &bookshelf_storage::DbPool, isbn: Option<&str>) -> ApiError {
    let (StorageError::Conflict("isbn"), Some(isbn)) = (&e, isbn) else {
        return e.into();
    };
    match books::id_by_isbn(db, isbn).await {
        Ok(Some(id)) => ApiError::ConflictWith {
            detail: "a book with this ISBN is already in the catalog".into(),
            member: "bookId",
            id: id.to_string(),
        },
        // Deleted since: still the conflict the write met.
        Ok(None) => e.into(),
        Err(lookup) => lookup.into(),
    }
}

fn current_year() -> i32 {
    chrono::Utc::now().year()
}

/// An optional text query parameter: trimmed, blank treated as absent, at most `max` chars.
fn text_param(req: &Request, name: &str, max: usize) -> Checked<Option<String>> {
    let raw = query_param(req, name).map(str::trim).filter(|r| !r.is_empty());
    field(
        name,
        match raw {
            Some(r) if r.chars().count() > max => Err(format!("must be at most {max} characters")),
            r => Ok(r.map(str::to_string)),
        },
    )
}

/// GET /books walks one of two orders, and its cursors are of that order's kind.
enum Listing {
    Search {
        query: String,
        page: PageParams<SearchCursor>,
    },
    Recent(PageParams<Cursor>),
}

fn listing(q: Checked<Option<String>>, limit: Option<&str>, cursor: Option<&str>) -> Checked<Listing> {
    match q {
        Ok(Some(query)) => PageParams::parse(limit, cursor).map(|page| Listing::Search { query, page }),
        // No search (or a bad one, whose error comes first): pages in creation order.
        q => (q, PageParams::parse(limit, cursor))
            .all_valid()
            .map(|(_, page)| Listing::Recent(page)),
    }
}

#[utoipa::path(get, path = "/books", tag = "books", security(("bearer" = [])),
    params(
        ("q" = Option<String>, Query, description = "Full-text search over title, authors and description; results by relevance: books whose title or authors match first, then those matching in the description, newest first within each"),
        ("author" = Option<String>, Query, description = "One of the book's authors, exactly, ignoring case"),
        ("tag" = Option<String>, Query, description = "One of the book's tags"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of books", body = BookPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(state: Arc<AppState>, req: Request, _who: Identity) -> Result<Response<Body>, ApiError> {
    let (limit, cursor) = (query_param(&req, "limit"), query_param(&req, "cursor"));
    let (listing, author, tag) = (
        listing(text_param(&req, "q", 200), limit, cursor),
        text_param(&req, "author", 200),
        text_param(&req, "tag", 40),
    )
        .all_valid()?;
    let filter = BookFilter {
        author,
        tag: tag.map(|t| t.to_lowercase()),
    };
    let page = match listing {
        Listing::Search { query, page } => {
            let (items, next) = books::search(state.db()?, &filter, &query, page).await?;
            Page {
                items,
                next_cursor: next.map(|c| c.encode()),
            }
        }
        Listing::Recent(page) => {
            let (items, next) = books::list_recent(state.db()?, &filter, page).await?;
            Page {
                items,
                next_cursor: next.map(|c| c.encode()),
            }
        }
    };
    Ok(json(StatusCode::OK, &page))
}

#[utoipa::path(get, path = "/books/{id}", tag = "books", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Book id")),
    responses(
        (status = 200, description = "The book", body = Book, headers(("ETag" = String, description = "Current version"))),
        (status = 400, description = "id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(state: Arc<AppState>, req: Request, _who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let book = books::read(state.db()?, id).await.map_err(book_not_found)?;
    Ok(book_response(StatusCode::OK, &book))
}

#[utoipa::path(post, path = "/books", tag = "books", security(("bearer" = [])),
    request_body = BookInput,
    responses(
        (status = 201, description = "Created", body = Book,
            headers(("ETag" = String, description = "Version"), ("Location" = String, description = "/books/{id}"))),
        (status = 400, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A price or stock from a caller who is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "ISBN already in the catalog; `bookId` names that book", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let input: BookInput = read_json(&req)?;
    let new = input.validate_new(current_year())?;
    if new.for_sale() && !who.is_admin() {
        return Err(ApiError::Forbidden(
            "only admins sell books: leave out priceCents and stock to add one to the catalog".into(),
        ));
    }
    let db = state.db()?;
    let book = match books::insert(db, &new, Some(who.user_id)).await {
        Ok(book) => book,
        Err(e) => return Err(duplicate_isbn(e, db, new.isbn.as_deref()).await),
    };
    tracing::info!(book_id = %book.id, "book created");
    Ok(book_response(StatusCode::CREATED, &book))
}

#[utoipa::path(patch, path = "/books/{id}", tag = "books", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Book id"),
        ("If-Match" = Option<String>, Header, description = "ETag the change is based on; stale → 412"),
    ),
    request_body(content = BookInput, description = "Any book fields except `stock`"),
    responses(
        (status = 200, description = "Updated", body = Book, headers(("ETag" = String, description = "New version"))),
        (status = 400, description = "Invalid fields (including any `stock`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Caller is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "ISBN already in the catalog", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an older version", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(state: Arc<AppState>, req: Request, _who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let input: BookInput = read_json(&req)?;
    let patch = input.validate_patch(current_year())?;
    let db = state.db()?;
    let book = match books::update(db, id, &patch, expected_version(&req, id)).await {
        Ok(outcome) => written(outcome)?,
        Err(e) => return Err(duplicate_isbn(e, db, patch.isbn.as_ref().and_then(Option::as_deref)).await),
    };
    // A new title or authors re-sends every entry of the book on its readers' change
    // feeds, in steps; driven here so the answer means it is done. A failure is logged
    // and left to the outbox relay, which finishes unfinished fan-outs: the edit stands.
    if let Err(e) = changes::fan_out_book(db, id).await {
        let error = bookshelf_http::error_chain(&e);
        tracing::warn!(book_id = %id, %error, "entry fan-out interrupted; the relay will finish it");
    }
    Ok(book_response(StatusCode::OK, &book))
}

#[utoipa::path(delete, path = "/books/{id}", tag = "books", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Book id"),
        ("If-Match" = Option<String>, Header, description = "Only delete this version; stale → 412"),
    ),
    responses(
        (status = 204, description = "Deleted; library entries of it go too, orders keep their copies"),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Caller is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an older version", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(state: Arc<AppState>, req: Request, _who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    written(books::delete(state.db()?, id, expected_version(&req, id)).await?)?;
    tracing::info!(book_id = %id, "book deleted");
    Ok(no_content())
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockLevel {
    pub book_id: Uuid,
    pub stock: i32,
}

#[utoipa::path(post, path = "/books/{id}/inventory", tag = "books", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Book id")),
    request_body = InventoryInput,
    responses(
        (status = 200, description = "New stock level; the change is in the ledger", body = StockLevel),
        (status = 400, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Caller is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Stock would go below zero; nothing changed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn inventory(
    state: Arc<AppState>,
    req: Request,
    who: Identity,
) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let input: InventoryInput = read_json(&req)?;
    let (delta, reason) = input.validate()?;
    let outcome = books::change_stock(state.db()?, id, delta, &reason, who.user_id)
        .await
        .map_err(|e| match e {
            StorageError::Conflict(_) => ApiError::Conflict("that change puts stock out of range".into()),
            other => other.into(),
        })?;
    match outcome {
        StockChange::Changed { stock } => {
            tracing::info!(book_id = %id, delta, stock, "stock changed");
            Ok(json(StatusCode::OK, &StockLevel { book_id: id, stock }))
        }
        StockChange::NotFound => Err(ApiError::not_found("book")),
        StockChange::Insufficient { stock } => Err(ApiError::Conflict(format!(
            "stock is {stock}; a change of {delta} would take it below zero"
        ))),
    }
}
