//! `GET /changes`: what changed in the caller's entries, reads, sessions and goals since a
//! cursor. The rows are written by the database's triggers (storage::changes); this only
//! pages them.

use std::sync::Arc;

use bookshelf_domain::change::{self, Change};
use bookshelf_domain::PageParams;
use bookshelf_http::{json, query_param, ApiError, Body, Identity, Request, Response};
use bookshelf_storage::changes::{self as feed, FeedError};
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::Problem;
use crate::AppState;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePage {
    /// Oldest first; a resource changed several times since the cursor appears once, as
    /// it is now.
    pub items: Vec<Change>,
    /// Always present: resume from it, even after an empty page.
    pub next_cursor: String,
    /// Whether more changes are waiting now.
    pub has_more: bool,
}

#[utoipa::path(get, path = "/changes", tag = "sync", security(("bearer" = [])),
    params(
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of an earlier page; without it, from the beginning"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses(
        (status = 200, description = "The caller's changes after the cursor, oldest first", body = ChangePage),
        (status = 400, description = "Malformed cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The cursor is older than the deletions still held (30 days): start again without one", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let PageParams { limit, after } =
        change::page_params(query_param(&req, "limit"), query_param(&req, "cursor"))?;
    let page = feed::page(state.db()?, who.user_id, after, limit)
        .await
        .map_err(|e| match e {
            FeedError::Gone => ApiError::Gone(
                "this cursor is older than the changes still held; start again without a cursor".into(),
            ),
            FeedError::Storage(e) => e.into(),
        })?;
    Ok(json(
        StatusCode::OK,
        &ChangePage {
            items: page.items,
            next_cursor: page.next.encode(),
            has_more: page.has_more,
        },
    ))
}
