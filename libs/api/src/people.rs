//! People: follows, other readers' shelves (as their visibility allows), and the feed.

use std::sync::Arc;

use bookshelf_domain::{field, AllValid, PageParams, ReadingStatus};
use bookshelf_http::{
    enum_param, no_content, path_uuid, query_param, ApiError, Body, Identity, Page, Request, Response,
};
use bookshelf_storage::follows::{self, Direction, FollowOutcome};
use bookshelf_storage::library::{self, EntryFilter};
use bookshelf_storage::outbox::Topic;
use bookshelf_storage::{activities, StorageError};

use crate::openapi::{ActivityPage, LibraryPage, Problem, PublicProfilePage};
use crate::AppState;

fn no_user(e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound => ApiError::not_found("user"),
        other => other.into(),
    }
}

#[utoipa::path(put, path = "/users/{id}/follow", tag = "people", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The user to follow")),
    responses(
        (status = 204, description = "Following (already following: nothing changed)"),
        (status = 400, description = "Not a UUID, or yourself", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn follow(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    if id == who.user_id {
        return Err(ApiError::Validation(vec![bookshelf_domain::FieldError::new(
            "id",
            "you cannot follow yourself",
        )]));
    }
    match follows::follow(state.db()?, who.user_id, id)
        .await
        .map_err(no_user)?
    {
        FollowOutcome::Followed(pending) => {
            tracing::info!(followee = %id, "followed");
            crate::publish::send(&state, Topic::Activities, &pending).await;
        }
        FollowOutcome::AlreadyFollowing => {}
    }
    Ok(no_content())
}

#[utoipa::path(delete, path = "/users/{id}/follow", tag = "people", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "A user the caller follows")),
    responses(
        (status = 204, description = "No longer following; their activities left the caller's feed"),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not following that user", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unfollow(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    follows::unfollow(state.db()?, who.user_id, id)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => ApiError::not_found("follow"),
            other => other.into(),
        })?;
    Ok(no_content())
}

async fn follow_list(
    state: Arc<AppState>,
    req: Request,
    direction: Direction,
) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let page = PageParams::parse(query_param(&req, "limit"), query_param(&req, "cursor"))?;
    let (items, next) = follows::list(state.db()?, id, direction, page)
        .await
        .map_err(no_user)?;
    Ok(Page::ok(items, next.map(|c| c.encode())))
}

#[utoipa::path(get, path = "/users/{id}/followers", tag = "people", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "User id"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Who follows the user, newest follow first", body = PublicProfilePage),
        (status = 400, description = "Bad id or query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn followers(
    state: Arc<AppState>,
    req: Request,
    _who: Identity,
) -> Result<Response<Body>, ApiError> {
    follow_list(state, req, Direction::Followers).await
}

#[utoipa::path(get, path = "/users/{id}/following", tag = "people", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "User id"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Whom the user follows, newest follow first", body = PublicProfilePage),
        (status = 400, description = "Bad id or query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn following(
    state: Arc<AppState>,
    req: Request,
    _who: Identity,
) -> Result<Response<Body>, ApiError> {
    follow_list(state, req, Direction::Following).await
}

#[utoipa::path(get, path = "/users/{id}/library", tag = "people", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The shelf's owner"),
        ("status" = Option<ReadingStatus>, Query, description = "Only entries with this status"),
        ("favorite" = Option<bool>, Query, description = "Only favourites (true) or the rest (false)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Their entries, as GET /library shows yours: `public` to anyone signed in, `followers` to their followers", body = LibraryPage),
        (status = 400, description = "Bad id or query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user, or their visibility does not let the caller see it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn library(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let owner = path_uuid(&req, "id")?;
    let (status, favorite, page) = (
        enum_param(&req, "status", ReadingStatus::parse, ReadingStatus::ALL),
        field("favorite", crate::library::favorite_param(&req)),
        PageParams::parse(query_param(&req, "limit"), query_param(&req, "cursor")),
    )
        .all_valid()?;
    let db = state.db()?;
    if owner != who.user_id {
        let (visibility, follows) = follows::library_access(db, who.user_id, owner)
            .await
            .map_err(no_user)?;
        // Hidden and absent look the same: a private shelf does not admit it exists.
        if !visibility.lets_see(false, follows) {
            return Err(ApiError::not_found("user"));
        }
    }
    let (items, next) = library::list(db, owner, EntryFilter { status, favorite }, page).await?;
    Ok(Page::ok(items, next.map(|c| c.encode())))
}

#[utoipa::path(get, path = "/feed", tag = "people", security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Activities of the people the caller follows, newest first: only those since the caller began to follow, and book activities only while the actor's visibility allows", body = ActivityPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn feed(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let page = PageParams::parse(query_param(&req, "limit"), query_param(&req, "cursor"))?;
    let (items, next) = activities::feed(state.db()?, who.user_id, page).await?;
    Ok(Page::ok(items, next.map(|c| c.encode())))
}
