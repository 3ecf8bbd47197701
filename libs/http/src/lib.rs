//! HTTP glue shared by every handler: the API error type and its one mapping to
//! problem+json, JSON bodies with the 64 KiB limit, path/query parsing, and the identity
//! the authorizer put into the request context.

pub mod accept;
pub mod cors;
mod error;
mod request;
mod response;
mod stream;

pub use cors::Cors;
pub use error::{error_chain, ApiError, Cause};
pub use request::{
    check_query, enum_param, if_match, path_param, path_uuid, query_param, read_json, read_optional_json,
    request_id, source_ip, Identity, MAX_BODY_BYTES,
};
pub use response::{json, json_text, no_content, Page};
pub use stream::{buffered_into_streamed, streamed, Streamed};

pub use lambda_http::{Body, Request, Response};
