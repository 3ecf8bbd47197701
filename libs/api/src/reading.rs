//! Reads and timed sessions: the caller's own, always (another user's id is a 404).

use std::sync::Arc;

use bookshelf_domain::reading::{
    AbandonInput, Closing, EndSessionInput, FinishInput, ProgressInput, StartReadInput,
};
use bookshelf_domain::{PageParams, Read, ReadingSession};
use bookshelf_http::{
    json, no_content, path_uuid, query_param, read_json, read_optional_json, ApiError, Body, Identity, Page,
    Request, Response,
};
use bookshelf_storage::outbox::Topic;
use bookshelf_storage::reading::{self, Change, SessionEnd, SessionStart, StartOutcome};
use bookshelf_storage::StorageError;
use chrono::Utc;
use http::StatusCode;
use serde::Serialize;

use crate::openapi::{Problem, ReadPage, SessionPage};
use crate::AppState;

fn created<T: Serialize>(body: &T, location: String) -> Response<Body> {
    let mut r = json(StatusCode::CREATED, body);
    if let Ok(v) = location.parse() {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

fn read_not_found(e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound => ApiError::not_found("read"),
        other => other.into(),
    }
}

fn closed() -> ApiError {
    ApiError::Conflict("the read is finished or abandoned; a closed read does not change".into())
}

/// A change's outcome as the response: the read, or why it did not move.
fn changed(outcome: Change<Read>) -> Result<Response<Body>, ApiError> {
    match outcome {
        Change::Done(read) => Ok(json(StatusCode::OK, &read)),
        Change::Closed => Err(closed()),
        Change::Invalid(errors) => Err(ApiError::Validation(errors)),
    }
}

/// Finishes or abandons the read of the path; the response once its activities are on
/// their way.
async fn close(
    state: &AppState,
    req: &Request,
    who: Identity,
    closing: Closing,
    now: chrono::DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(req, "id")?;
    let outcome = reading::close(state.db()?, who.user_id, id, closing, now)
        .await
        .map_err(read_not_found)?;
    match outcome {
        Change::Done((read, pending)) => {
            crate::publish::send(state, Topic::Activities, &pending).await;
            Ok(json(StatusCode::OK, &read))
        }
        Change::Closed => Err(closed()),
        Change::Invalid(errors) => Err(ApiError::Validation(errors)),
    }
}

#[utoipa::path(post, path = "/library/{bookId}/reads", tag = "reading", security(("bearer" = [])),
    params(("bookId" = uuid::Uuid, Path, description = "A catalog book")),
    request_body(content = Option<StartReadInput>, description = "Optional: no body starts now"),
    responses(
        (status = 201, description = "Started; the book is on the shelf with status `reading`", body = Read,
            headers(("Location" = String, description = "/reads/{id}"))),
        (status = 400, description = "startedAt invalid or in the future", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The book already has an open read", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn start(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let book = path_uuid(&req, "bookId")?;
    let started_at = read_optional_json::<StartReadInput>(&req)?.validate(Utc::now())?;
    match reading::start(state.db()?, who.user_id, book, started_at).await {
        Ok(StartOutcome::Started {
            read,
            shelved,
            pending,
        }) => {
            tracing::info!(read_id = %read.id, book_id = %book, shelved, "read started");
            crate::publish::send(&state, Topic::Activities, &pending).await;
            Ok(created(&read, format!("/reads/{}", read.id)))
        }
        Ok(StartOutcome::AlreadyOpen) => Err(ApiError::Conflict(
            "this book already has an open read; finish or abandon it first".into(),
        )),
        Err(StorageError::NotFound) => Err(ApiError::not_found("book")),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/library/{bookId}/reads", tag = "reading", security(("bearer" = [])),
    params(
        ("bookId" = uuid::Uuid, Path, description = "A catalog book"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "The caller's reads of the book, newest start first", body = ReadPage),
        (status = 400, description = "Bad id or query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let book = path_uuid(&req, "bookId")?;
    let page = PageParams::parse(query_param(&req, "limit"), query_param(&req, "cursor"))?;
    let (items, next) = reading::list(state.db()?, who.user_id, book, page)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => ApiError::not_found("book"),
            other => other.into(),
        })?;
    Ok(Page::ok(items, next.map(|c| c.encode())))
}

#[utoipa::path(get, path = "/reads/{id}", tag = "reading", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Read id")),
    responses(
        (status = 200, description = "The read", body = Read),
        (status = 400, description = "id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such read, or not the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let read = reading::get(state.db()?, who.user_id, id)
        .await
        .map_err(read_not_found)?;
    Ok(json(StatusCode::OK, &read))
}

#[utoipa::path(post, path = "/reads/{id}/progress", tag = "reading", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Read id")),
    request_body = ProgressInput,
    responses(
        (status = 200, description = "At the new position (the other of page/percent computed when the book has a page count); a paused entry is `reading` again", body = Read),
        (status = 400, description = "Not exactly one of page and percent, or out of range", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such read, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The read is closed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn progress(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let target = read_json::<ProgressInput>(&req)?.validate()?;
    let outcome = reading::progress(state.db()?, who.user_id, id, target)
        .await
        .map_err(read_not_found)?;
    changed(outcome)
}

#[utoipa::path(post, path = "/reads/{id}/pause", tag = "reading", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Read id")),
    responses(
        (status = 200, description = "The entry is `paused` (already paused: nothing changed)", body = Read),
        (status = 400, description = "id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such read, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The read is closed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn pause(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let outcome = reading::pause(state.db()?, who.user_id, id)
        .await
        .map_err(read_not_found)?;
    changed(outcome)
}

#[utoipa::path(post, path = "/reads/{id}/finish", tag = "reading", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Read id")),
    request_body(content = Option<FinishInput>, description = "Optional: no body finishes now"),
    responses(
        (status = 200, description = "Closed at 100 % (and the last page when the book has a page count); the entry is `read`; a running session ended", body = Read),
        (status = 400, description = "finishedAt invalid, in the future or before startedAt", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such read, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The read is already closed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn finish(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let now = Utc::now();
    let closing = read_optional_json::<FinishInput>(&req)?.validate(now)?;
    close(&state, &req, who, closing, now).await
}

#[utoipa::path(post, path = "/reads/{id}/abandon", tag = "reading", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Read id")),
    request_body(content = Option<AbandonInput>, description = "Optional: no body abandons now"),
    responses(
        (status = 200, description = "Closed; the entry is `did_not_finish`; a running session ended", body = Read),
        (status = 400, description = "abandonedAt invalid, in the future or before startedAt", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such read, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The read is already closed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn abandon(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let now = Utc::now();
    let closing = read_optional_json::<AbandonInput>(&req)?.validate(now)?;
    close(&state, &req, who, closing, now).await
}

#[utoipa::path(delete, path = "/reads/{id}", tag = "reading", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Read id")),
    responses(
        (status = 204, description = "Deleted with its sessions; it no longer counts in stats"),
        (status = 400, description = "id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such read, or not the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    reading::delete(state.db()?, who.user_id, id)
        .await
        .map_err(read_not_found)?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/reads/{id}/sessions", tag = "reading", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Read id")),
    responses(
        (status = 201, description = "A timer started now", body = ReadingSession,
            headers(("Location" = String, description = "/sessions/{id}"))),
        (status = 400, description = "id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such read, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The read is closed, or the caller already has a running session", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn start_session(
    state: Arc<AppState>,
    req: Request,
    who: Identity,
) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    match reading::start_session(state.db()?, who.user_id, id, Utc::now())
        .await
        .map_err(read_not_found)?
    {
        SessionStart::Started(s) => Ok(created(&s, format!("/sessions/{}", s.id))),
        SessionStart::ReadClosed => Err(closed()),
        SessionStart::AlreadyRunning => Err(ApiError::Conflict(
            "a session is already running; end it first".into(),
        )),
    }
}

#[utoipa::path(post, path = "/sessions/{id}/end", tag = "reading", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body(content = Option<EndSessionInput>, description = "Optional: with endPage, the read moves there"),
    responses(
        (status = 200, description = "Ended now, with its whole minutes", body = ReadingSession),
        (status = 400, description = "endPage out of range", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already ended", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end_session(
    state: Arc<AppState>,
    req: Request,
    who: Identity,
) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let end = read_optional_json::<EndSessionInput>(&req)?.validate()?;
    let outcome = reading::end_session(state.db()?, who.user_id, id, end, Utc::now())
        .await
        .map_err(|e| match e {
            StorageError::NotFound => ApiError::not_found("session"),
            other => other.into(),
        })?;
    match outcome {
        SessionEnd::Ended(s) => Ok(json(StatusCode::OK, &s)),
        SessionEnd::AlreadyEnded => Err(ApiError::Conflict("the session has already ended".into())),
        SessionEnd::Invalid(errors) => Err(ApiError::Validation(errors)),
    }
}

#[utoipa::path(get, path = "/reads/{id}/sessions", tag = "reading", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Read id"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "The read's sessions, newest first", body = SessionPage),
        (status = 400, description = "Bad id or query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such read, or not the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_sessions(
    state: Arc<AppState>,
    req: Request,
    who: Identity,
) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let page = PageParams::parse(query_param(&req, "limit"), query_param(&req, "cursor"))?;
    let (items, next) = reading::list_sessions(state.db()?, who.user_id, id, page)
        .await
        .map_err(read_not_found)?;
    Ok(Page::ok(items, next.map(|c| c.encode())))
}
