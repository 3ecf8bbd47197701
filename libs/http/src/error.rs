use bookshelf_domain::FieldError;
use bookshelf_storage::StorageError;
use http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;

/// What a 5xx carries: the error that caused it, with its own causes.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// The HTTP layer's one error type. Every handler returns it; `into_response` is the one
/// place where errors become problem+json (RFC 9457).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The `Accept` header allows none of the route's media types.
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Conflict(String),
    /// A conflict with a resource that exists, named by an extension member of the problem
    /// (e.g. `bookId` of the book that holds a duplicate ISBN) so a client can use it.
    #[error("{detail}")]
    ConflictWith {
        detail: String,
        member: &'static str,
        id: String,
    },
    /// What the request names is no longer held (a change-feed cursor past its tombstones).
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Unprocessable(String),
    /// Throttled; the client may retry after this many seconds.
    #[error("too many attempts; retry in {0} seconds")]
    TooManyRequests(u64),
    /// A dependency is saturated or down (the pool timed out): retry shortly.
    #[error("the service is busy; retry shortly")]
    Unavailable(#[source] Cause),
    /// A bug or an outage. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Cause),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Conflict(_) | ApiError::ConflictWith { .. } => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation-error",
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::NotAcceptable(_) => "not-acceptable",
            ApiError::Conflict(_) | ApiError::ConflictWith { .. } => "conflict",
            ApiError::Gone(_) => "gone",
            ApiError::PreconditionFailed(_) => "precondition-failed",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::TooManyRequests(_) => "too-many-requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal-error",
        }
    }

    /// A 500 for a state the code should never reach or a dependency that failed.
    pub fn internal(cause: impl Into<Cause>) -> ApiError {
        ApiError::Internal(cause.into())
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn into_response(self, request_id: Option<&str>) -> Response<Body> {
        let status = self.status();
        let detail = match &self {
            ApiError::Validation(errs) => format!(
                "{} field(s) are invalid: {}",
                errs.len(),
                errs.iter()
                    .map(|e| e.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ApiError::Internal(_) => "the server failed to handle this request; it has been logged".into(),
            ApiError::Unavailable(_) => {
                "the service is busy; retry after the number of seconds in Retry-After".into()
            }
            other => other.to_string(),
        };
        match &self {
            ApiError::Internal(cause) => {
                let cause = error_chain(cause.as_ref());
                tracing::error!(request_id, %cause, "request failed with an internal error")
            }
            ApiError::Unavailable(cause) => {
                let cause = error_chain(cause.as_ref());
                tracing::warn!(request_id, %cause, "request shed: a dependency is saturated")
            }
            _ => {}
        }
        let problem = Problem {
            type_: format!("https://bookshelf.dev/problems/{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            errors: match &self {
                ApiError::Validation(errs) => Some(errs),
                _ => None,
            },
            request_id,
        };
        let body = match &self {
            ApiError::ConflictWith { member, id, .. } => {
                let mut value = serde_json::to_value(&problem).unwrap_or_default();
                value[*member] = serde_json::Value::String(id.clone());
                value.to_string()
            }
            _ => serde_json::to_string(&problem).unwrap_or_default(),
        };
        let mut builder = Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/problem+json");
        if status == StatusCode::UNAUTHORIZED {
            builder = builder.header(http::header::WWW_AUTHENTICATE, "Bearer");
        }
        match &self {
            ApiError::TooManyRequests(secs) => {
                builder = builder.header(http::header::RETRY_AFTER, secs.to_string())
            }
            ApiError::Unavailable(_) => builder = builder.header(http::header::RETRY_AFTER, "1"),
            _ => {}
        }
        builder
            .body(Body::Text(body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errs: Vec<FieldError>) -> Self {
        ApiError::Validation(errs)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict(what) => ApiError::Conflict(format!("{what} is already taken")),
            StorageError::NotFound => ApiError::NotFound("not found".into()),
            StorageError::AccountGone => ApiError::Unauthorized("the account no longer exists".into()),
            // The database is saturated, unreachable or restarting, or it gave up on this
            // transaction for another (a deadlock victim): retryable, so 503.
            e @ StorageError::Database(_) if e.is_transient() => ApiError::Unavailable(e.into()),
            e @ (StorageError::Database(_) | StorageError::Encode(_)) => ApiError::Internal(e.into()),
        }
    }
}

/// An error and its causes, outermost first, for the one log line that reports it.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_500_keeps_every_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let storage = StorageError::Database(sqlx::Error::Io(io));
        let ApiError::Unavailable(cause) = ApiError::from(storage) else {
            panic!("an I/O failure is an outage");
        };
        let logged = error_chain(cause.as_ref());
        assert!(
            logged.starts_with("database error: error communicating with database")
                && logged.ends_with("reset by peer"),
            "{logged}"
        );
    }
}
