//! Yearly reading goals and statistics, in UTC calendar years.

use std::sync::Arc;

use bookshelf_domain::reading::{current_year, year, GoalInput};
use bookshelf_domain::{field, AllValid, Checked, Goal, Stats};
use bookshelf_http::{
    json, no_content, path_param, query_param, read_json, ApiError, Body, Identity, Request, Response,
};
use bookshelf_storage::{stats, StorageError};
use chrono::Utc;
use http::StatusCode;

use crate::openapi::Problem;
use crate::AppState;

/// The `{year}` of a goal path (absent only if the route is misconfigured: then invalid).
fn path_year(req: &Request) -> Checked<i32> {
    let raw = path_param(req, "year").unwrap_or_default();
    field("year", year(raw, current_year(Utc::now())))
}

fn no_goal(e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound => ApiError::not_found("goal"),
        other => other.into(),
    }
}

#[utoipa::path(put, path = "/users/me/goals/{year}", tag = "reading", security(("bearer" = [])),
    params(("year" = i32, Path, minimum = 1900, description = "1900 to next year")),
    request_body = GoalInput,
    responses(
        (status = 200, description = "The goal, created or replaced, with the reads finished so far", body = Goal),
        (status = 400, description = "Bad year or books", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let input: GoalInput = read_json(&req)?;
    let (year, books) = (path_year(&req), input.validate()).all_valid()?;
    let goal = stats::put_goal(state.db()?, who.user_id, year, books).await?;
    Ok(json(StatusCode::OK, &goal))
}

#[utoipa::path(get, path = "/users/me/goals/{year}", tag = "reading", security(("bearer" = [])),
    params(("year" = i32, Path, minimum = 1900, description = "1900 to next year")),
    responses(
        (status = 200, description = "The goal, with the reads finished in that year", body = Goal),
        (status = 400, description = "Bad year", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No goal set for that year", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let year = path_year(&req)?;
    let goal = stats::get_goal(state.db()?, who.user_id, year)
        .await
        .map_err(no_goal)?;
    Ok(json(StatusCode::OK, &goal))
}

#[utoipa::path(delete, path = "/users/me/goals/{year}", tag = "reading", security(("bearer" = [])),
    params(("year" = i32, Path, minimum = 1900, description = "1900 to next year")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad year", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No goal set for that year", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let year = path_year(&req)?;
    stats::delete_goal(state.db()?, who.user_id, year)
        .await
        .map_err(no_goal)?;
    Ok(no_content())
}

#[utoipa::path(get, path = "/users/me/stats", tag = "reading", security(("bearer" = [])),
    params(("year" = Option<i32>, Query, minimum = 1900, description = "1900 to next year (default: the current UTC year)")),
    responses(
        (status = 200, description = "The year's figures, in UTC, with twelve months", body = Stats),
        (status = 400, description = "Bad year", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_stats(
    state: Arc<AppState>,
    req: Request,
    who: Identity,
) -> Result<Response<Body>, ApiError> {
    let this_year = current_year(Utc::now());
    let year = match query_param(&req, "year") {
        None => this_year,
        Some(raw) => field("year", year(raw, this_year))?,
    };
    let body = stats::stats_body(state.db()?, who.user_id, year).await?;
    Ok(bookshelf_http::json_text(StatusCode::OK, body))
}
