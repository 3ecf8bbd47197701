//! Registration, sign-in, token refresh and sign-out.

use std::sync::Arc;

use bookshelf_auth::{password, refresh as refresh_token, ACCESS_TOKEN_TTL_SECS};
use bookshelf_config::metrics;
use bookshelf_domain::{field, validation, AllValid, Input, Profile, Role, User};
use bookshelf_http::{json, no_content, read_json, source_ip, ApiError, Body, Identity, Request, Response};
use bookshelf_storage::{sessions, throttle, users, NewUser, RefreshOutcome, StorageError};
use chrono::{Duration, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// Trimmed, then at most 254 characters; unique ignoring case.
    #[serde(default)]
    #[schema(value_type = String, format = "email", required = true)]
    pub email: Input<String>,
    #[serde(default)]
    #[schema(value_type = String, min_length = 8, max_length = 128, required = true)]
    pub password: Input<String>,
    /// 1 to 64 characters after trimming; defaults to the part of the email before `@`.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1)]
    pub display_name: Input<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub email: Input<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub password: Input<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub refresh_token: Input<String>,
}

/// What register, login and refresh answer: the profile and a fresh token pair.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub user: Profile,
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Lifetime of the access token in seconds.
    #[schema(example = 900)]
    pub expires_in: i64,
}

/// argon2 takes tens of milliseconds of CPU: keep it off the async workers.
/// Runs argon2 off the async threads, at most one hash per core at a time: each takes a
/// 19 MiB buffer, so a flood of anonymous logins queues here instead of pinning gigabytes.
/// (A Lambda environment serves one request at a time; this bounds the dev server.)
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    static HASHING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let slots = HASHING.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    });
    let _slot = slots.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)
}

/// The throttle key of an account: its id, whatever spelling of its email found it.
pub(crate) fn account_key(user: Uuid) -> String {
    format!("user:{user}")
}

/// Reserves one password check against `keys` before it is made (API.md: guessing is
/// throttled per account, however many attempts arrive at once); 429 when at a limit.
pub(crate) async fn reserve_guess(
    state: &AppState,
    keys: &[(&str, i32)],
    window: std::time::Duration,
) -> Result<(), ApiError> {
    if let Some(wait) = throttle::reserve(state.db()?, keys, window).await? {
        tracing::warn!(retry_after_secs = wait.as_secs(), "password checks throttled");
        state.metrics.count(metrics::LOGIN_THROTTLES, 1);
        return Err(ApiError::TooManyRequests(wait.as_secs().max(1)));
    }
    Ok(())
}

/// Issues an access token for `session` and wraps it with the refresh token.
async fn token_pair(
    state: &AppState,
    user: User,
    session: Uuid,
    refresh: String,
) -> Result<AuthResponse, ApiError> {
    let access =
        state
            .key_set()
            .await?
            .issue(user.id, user.role.as_str(), session, Utc::now().timestamp())?;
    Ok(AuthResponse {
        user: user.into(),
        access_token: access,
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_TTL_SECS,
    })
}

fn refresh_expiry() -> chrono::DateTime<Utc> {
    Utc::now() + Duration::days(refresh_token::REFRESH_TOKEN_TTL_DAYS)
}

/// Starts a new session for `user` and answers with its tokens.
async fn sign_in(state: &AppState, user: User, status: StatusCode) -> Result<Response<Body>, ApiError> {
    let token = refresh_token::generate();
    let session = sessions::create(state.db()?, user.id, &token.hash, refresh_expiry()).await?;
    tracing::info!(user_id = %user.id, session_id = %session, "session started");
    Ok(json(
        status,
        &token_pair(state, user, session, token.token).await?,
    ))
}

#[utoipa::path(post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created and signed in", body = AuthResponse),
        (status = 400, description = "Invalid fields", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already registered", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many registrations from this address in 5 minutes (deployed: the web ACL's rate rule); see Retry-After",
            body = crate::openapi::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
    ))]
pub async fn register(state: Arc<AppState>, req: Request) -> Result<Response<Body>, ApiError> {
    let body: RegisterRequest = read_json(&req)?;
    let (email, password, display_name) = (
        field("email", body.email.required().and_then(|e| validation::email(&e))),
        field(
            "password",
            body.password
                .required()
                .and_then(|p| validation::password(&p).map(|()| p)),
        ),
        field(
            "displayName",
            body.display_name
                .patch()
                .map(Option::flatten)
                .and_then(|d| d.map(|d| validation::display_name(&d)).transpose()),
        ),
    )
        .all_valid()?;
    let display_name = display_name.unwrap_or_else(|| validation::default_display_name(&email));
    if let (Some(limit), Some(ip)) = (state.register_limit, source_ip(&req)) {
        let key = format!("ip:register:{ip}");
        reserve_guess(&state, &[(key.as_str(), limit)], REGISTER_WINDOW).await?;
    }

    let hash = blocking(move || password::hash(&password)).await?;
    let user = users::insert(
        state.db()?,
        NewUser {
            email: &email,
            password_hash: &hash,
            display_name: &display_name,
            role: Role::User,
        },
    )
    .await?;
    tracing::info!(user_id = %user.id, "user registered");
    sign_in(&state, user, StatusCode::CREATED).await
}

const BAD_CREDENTIALS: &str = "email or password is incorrect";

/// Failed logins allowed per account (email) per window; a success clears the count.
pub const LOGIN_FAILURES_PER_ACCOUNT: i32 = 10;
/// Failed logins allowed per source IP per window (generous: offices share addresses).
/// Loopback addresses are not counted unless `AppState::throttle_loopback` is set.
pub const LOGIN_FAILURES_PER_IP: i32 = 100;
pub const LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// The window of `AppState::register_limit` (the WAF's rate rules count 5 minutes too).
pub const REGISTER_WINDOW: std::time::Duration = std::time::Duration::from_secs(5 * 60);

#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = AuthResponse),
        (status = 400, description = "Invalid fields", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown email or wrong password (same body for both)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "More than 10 failed logins for this account, or 100 from this address, in 15 minutes; see Retry-After",
            body = crate::openapi::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
    ))]
pub async fn login(state: Arc<AppState>, req: Request) -> Result<Response<Body>, ApiError> {
    let body: LoginRequest = read_json(&req)?;
    let (email, password) = (
        field("email", body.email.required()),
        field("password", body.password.required()),
    )
        .all_valid()?;

    // The account that email finds, if any, before any check: its budget is keyed by its
    // id, so no spelling of the address (case, Unicode) gets a budget of its own.
    let found = users::find_credentials(state.db()?, email.trim()).await?;
    let account_key = match &found {
        Some(account) => account_key(account.user_id),
        None => format!("email:{}", email.trim().to_lowercase()),
    };
    let ip_key = source_ip(&req)
        .filter(|ip| {
            state.throttle_loopback || !ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
        })
        .map(|ip| format!("ip:{ip}"));
    let mut keys = vec![(account_key.as_str(), LOGIN_FAILURES_PER_ACCOUNT)];
    if let Some(ip) = &ip_key {
        keys.push((ip.as_str(), LOGIN_FAILURES_PER_IP));
    }
    reserve_guess(&state, &keys, LOGIN_WINDOW).await?;

    let user_id = match found {
        Some(account) => {
            let hash = account.password_hash;
            let ok = blocking(move || password::verify(&password, &hash)).await?;
            ok.then_some(account.user_id)
        }
        None => {
            blocking(move || password::verify_dummy(&password)).await?;
            None
        }
    };
    let Some(user_id) = user_id else {
        tracing::info!("login refused");
        state.metrics.count(metrics::LOGIN_FAILURES, 1);
        // (Its reservation stays: a failed check counts.)
        return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
    };
    throttle::clear(state.db()?, &account_key).await?;
    if let Some(ip) = &ip_key {
        throttle::release(state.db()?, &[ip.as_str()]).await?;
    }
    // Deleted since its password was checked: as if it had never existed.
    let user = users::get(state.db()?, user_id).await.map_err(|e| match e {
        StorageError::NotFound => ApiError::Unauthorized(BAD_CREDENTIALS.into()),
        other => other.into(),
    })?;
    sign_in(&state, user, StatusCode::OK).await
}

#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New token pair; the presented refresh token is spent", body = AuthResponse),
        (status = 400, description = "Invalid fields", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown, expired or already used refresh token (reuse revokes the session)", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(state: Arc<AppState>, req: Request) -> Result<Response<Body>, ApiError> {
    let body: RefreshRequest = read_json(&req)?;
    let presented = field("refreshToken", body.refresh_token.required())?;

    let next = refresh_token::generate();
    let outcome = sessions::rotate(
        state.db()?,
        &refresh_token::digest(&presented),
        &next.hash,
        refresh_expiry(),
    )
    .await?;
    match outcome {
        RefreshOutcome::Rotated { user, session_id } => Ok(json(
            StatusCode::OK,
            &token_pair(&state, user, session_id, next.token).await?,
        )),
        RefreshOutcome::Reused { session_id } => {
            tracing::warn!(%session_id, "refresh token reused; session revoked");
            Err(ApiError::Unauthorized(
                "refresh token was already used; the session has been revoked".into(),
            ))
        }
        RefreshOutcome::Invalid => Err(ApiError::Unauthorized(
            "refresh token is invalid or expired".into(),
        )),
    }
}

#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "The session of this access token is revoked"),
    ))]
pub async fn logout(state: Arc<AppState>, _req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    sessions::revoke(state.db()?, who.session_id, "logout").await?;
    tracing::info!(user_id = %who.user_id, session_id = %who.session_id, "signed out");
    Ok(no_content())
}
