//! The caller's profile, and other users' public profiles.

use std::sync::Arc;

use bookshelf_auth::password;
use bookshelf_domain::{field, validation, AllValid, Input, PageParams, Profile, UserCard, Visibility};
use bookshelf_http::{
    json, no_content, path_uuid, query_param, read_json, ApiError, Body, Identity, Page, Request, Response,
};
use bookshelf_storage::{sessions, throttle, users, StorageError, UserPatch};
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;

/// A user removed while their access token is still cached by the gateway is "gone".
fn me_missing(e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound => ApiError::Unauthorized("this account no longer exists".into()),
        other => other.into(),
    }
}

#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile", body = Profile),
    ))]
pub async fn me_get(state: Arc<AppState>, _req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let user = users::get(state.db()?, who.user_id).await.map_err(me_missing)?;
    Ok(json(StatusCode::OK, &Profile::from(user)))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateMeRequest {
    /// 1 to 64 characters after trimming.
    #[serde(default)]
    #[schema(value_type = String, min_length = 1)]
    pub display_name: Input<String>,
    /// `null` clears the bio.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub bio: Input<String>,
    /// Trimmed, then at most 254 characters; unique ignoring case.
    #[serde(default)]
    #[schema(value_type = String, format = "email")]
    pub email: Input<String>,
    /// Who may see the caller's library and book activities.
    #[serde(default)]
    #[schema(value_type = Visibility)]
    pub library_visibility: Input<String>,
}

#[utoipa::path(patch, path = "/users/me", tag = "users", security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The updated profile", body = Profile),
        (status = 400, description = "Invalid fields", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already registered", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub async fn me_update(
    state: Arc<AppState>,
    req: Request,
    who: Identity,
) -> Result<Response<Body>, ApiError> {
    let body: UpdateMeRequest = read_json(&req)?;
    let (display_name, bio, email, library_visibility) = (
        field(
            "displayName",
            body.display_name
                .optional()
                .and_then(|d| d.map(|d| validation::display_name(&d)).transpose()),
        ),
        field(
            "bio",
            body.bio
                .patch()
                .and_then(|b| b.map(|b| b.map(|b| validation::bio(&b)).transpose()).transpose()),
        ),
        field(
            "email",
            body.email
                .optional()
                .and_then(|e| e.map(|e| validation::email(&e)).transpose()),
        ),
        field(
            "libraryVisibility",
            body.library_visibility.optional().and_then(|v| {
                v.map(|v| Visibility::parse(&v).ok_or_else(|| format!("must be one of {}", Visibility::ALL)))
                    .transpose()
            }),
        ),
    )
        .all_valid()?;
    let patch = UserPatch {
        email,
        display_name,
        bio,
        library_visibility,
    };
    let db = state.db()?;
    let user = users::update_profile(db, who.user_id, patch)
        .await
        .map_err(me_missing)?;
    if library_visibility.is_some() {
        // A change of visibility re-marks the reader's rows in every follower's feed, in
        // steps; the feed answers by the new visibility already, so a failure here is
        // logged and left to the outbox relay, which finishes what a request left.
        if let Err(e) = bookshelf_storage::activities::settle_visibility(db, who.user_id).await {
            let error = bookshelf_http::error_chain(&e);
            tracing::warn!(user_id = %who.user_id, %error, "feed rows not re-marked; the relay will finish");
        }
    }
    Ok(json(StatusCode::OK, &Profile::from(user)))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub current_password: Input<String>,
    #[serde(default)]
    #[schema(value_type = String, min_length = 8, max_length = 128, required = true)]
    pub new_password: Input<String>,
}

#[utoipa::path(put, path = "/users/me/password", tag = "users", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Password changed; every other session is revoked"),
        (status = 400, description = "Invalid fields", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Current password is wrong", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "10 failed password checks for this account (logins included) in 15 minutes; see Retry-After",
            body = crate::openapi::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
    ))]
pub async fn me_password(
    state: Arc<AppState>,
    req: Request,
    who: Identity,
) -> Result<Response<Body>, ApiError> {
    let body: ChangePasswordRequest = read_json(&req)?;
    let (current, new) = (
        field("currentPassword", body.current_password.required()),
        field(
            "newPassword",
            body.new_password
                .required()
                .and_then(|p| validation::password(&p).map(|()| p)),
        ),
    )
        .all_valid()?;

    let stored = users::password_hash(state.db()?, who.user_id)
        .await
        .map_err(me_missing)?;
    // The same budget as logins for this account: a stolen access token is no password oracle.
    let key = crate::auth::account_key(who.user_id);
    let budget = [(key.as_str(), crate::auth::LOGIN_FAILURES_PER_ACCOUNT)];
    crate::auth::reserve_guess(&state, &budget, crate::auth::LOGIN_WINDOW).await?;
    let (matches, new_hash) = crate::auth::blocking(move || {
        let ok = password::verify(&current, &stored);
        (ok, ok.then(|| password::hash(&new)))
    })
    .await?;
    let Some(new_hash) = new_hash.filter(|_| matches) else {
        return Err(ApiError::Forbidden("current password is incorrect".into()));
    };
    throttle::clear(state.db()?, &key).await?;

    let mut tx = state.db()?.begin().await.map_err(StorageError::from)?;
    users::set_password(&mut *tx, who.user_id, &new_hash)
        .await
        .map_err(me_missing)?;
    let revoked = sessions::revoke_others(&mut *tx, who.user_id, who.session_id, "password_change").await?;
    tx.commit().await.map_err(StorageError::from)?;
    tracing::info!(user_id = %who.user_id, revoked, "password changed");
    Ok(no_content())
}

#[utoipa::path(delete, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 204, description = "Account, sessions and library deleted; orders are kept, detached"),
    ))]
pub async fn me_delete(
    state: Arc<AppState>,
    _req: Request,
    who: Identity,
) -> Result<Response<Body>, ApiError> {
    users::delete(state.db()?, who.user_id)
        .await
        .map_err(me_missing)?;
    // The email can be registered again, with a budget of its own.
    throttle::clear(state.db()?, &crate::auth::account_key(who.user_id)).await?;
    tracing::info!(user_id = %who.user_id, "account deleted");
    Ok(no_content())
}

#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "Public profile, with follow counts and whether the caller follows", body = UserCard),
        (status = 400, description = "id is not a UUID", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let card = users::card(state.db()?, who.user_id, id)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => ApiError::not_found("user"),
            other => other.into(),
        })?;
    Ok(json(StatusCode::OK, &card))
}

#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of full profiles, oldest first", body = crate::openapi::ProfilePage),
        (status = 400, description = "Bad limit or cursor", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Caller is not an admin", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(state: Arc<AppState>, req: Request, _who: Identity) -> Result<Response<Body>, ApiError> {
    let page: PageParams = PageParams::parse(query_param(&req, "limit"), query_param(&req, "cursor"))?;
    let (items, next) = users::list(state.db()?, page).await?;
    Ok(json(
        StatusCode::OK,
        &Page {
            items: items.into_iter().map(Profile::from).collect(),
            next_cursor: next.map(|c| c.encode()),
        },
    ))
}
