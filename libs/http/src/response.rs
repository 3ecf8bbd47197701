use http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A JSON response. Serialising our own types cannot fail; if it ever did, the client gets
/// an empty 500 rather than a panic.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::Text(text))
            .unwrap_or_else(|_| Response::new(Body::Empty)),
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            let mut r = Response::new(Body::Empty);
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

/// A JSON response whose body is already text (a cached rendering of one of our types).
pub fn json_text(status: StatusCode, text: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(text))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

pub fn no_content() -> Response<Body> {
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// One page of a list: `{items, nextCursor}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T: Serialize> Page<T> {
    /// A page as its 200 response; `next_cursor` is the encoded cursor of the next page.
    pub fn ok(items: Vec<T>, next_cursor: Option<String>) -> Response<Body> {
        json(StatusCode::OK, &Page { items, next_cursor })
    }
}
