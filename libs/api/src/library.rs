//! The caller's personal shelf. Every query is scoped to the caller's user id.

use std::sync::Arc;

use bookshelf_domain::{field, AllValid, EntryInput, LibraryEntry, PageParams, ReadingStatus};
use bookshelf_http::{
    enum_param, json, no_content, path_uuid, query_param, read_json, ApiError, Body, Identity, Page, Request,
    Response,
};
use bookshelf_storage::library::{self, EntryFilter};
use bookshelf_storage::StorageError;
use http::StatusCode;

use crate::openapi::{LibraryPage, Problem};
use crate::AppState;

#[utoipa::path(get, path = "/library", tag = "library", security(("bearer" = [])),
    params(
        ("status" = Option<ReadingStatus>, Query, description = "Only entries with this status"),
        ("favorite" = Option<bool>, Query, description = "Only favourites (true) or the rest (false)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of the caller's entries, in the order they were added", body = LibraryPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let favorite = match query_param(&req, "favorite") {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err("must be true or false".to_string()),
    };
    let (status, favorite, page) = (
        enum_param(&req, "status", ReadingStatus::parse, ReadingStatus::ALL),
        field("favorite", favorite),
        PageParams::parse(query_param(&req, "limit"), query_param(&req, "cursor")),
    )
        .all_valid()?;
    let (items, next) =
        library::list(state.db()?, who.user_id, EntryFilter { status, favorite }, page).await?;
    Ok(json(
        StatusCode::OK,
        &Page {
            items,
            next_cursor: next.map(|c| c.encode()),
        },
    ))
}

#[utoipa::path(put, path = "/library/{bookId}", tag = "library", security(("bearer" = [])),
    params(("bookId" = uuid::Uuid, Path, description = "A catalog book")),
    request_body(content = EntryInput, description = "The whole entry: omitted rating/review become null, favorite false"),
    responses(
        (status = 201, description = "Added to the shelf", body = LibraryEntry),
        (status = 200, description = "Replaced (addedAt kept)", body = LibraryEntry),
        (status = 400, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let book = path_uuid(&req, "bookId")?;
    let input: EntryInput = read_json(&req)?;
    let change = input.validate()?;
    let (entry, created) = library::put(state.db()?, who.user_id, book, &change)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => ApiError::not_found("book"),
            other => other.into(),
        })?;
    Ok(json(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &entry,
    ))
}

#[utoipa::path(delete, path = "/library/{bookId}", tag = "library", security(("bearer" = [])),
    params(("bookId" = uuid::Uuid, Path, description = "A book on the caller's shelf")),
    responses(
        (status = 204, description = "Removed from the shelf"),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not on the caller's shelf", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let book = path_uuid(&req, "bookId")?;
    library::delete(state.db()?, who.user_id, book)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => ApiError::not_found("library entry"),
            other => other.into(),
        })?;
    Ok(no_content())
}
