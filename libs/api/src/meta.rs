//! The public documents: the JWK Set and the OpenAPI description.

use std::sync::Arc;

use bookshelf_http::{ApiError, Body, Request, Response};
use http::StatusCode;

use crate::AppState;

fn cacheable_json(value: String, max_age: u32) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, format!("public, max-age={max_age}"))
        .body(Body::Text(value))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "meta",
    responses((status = 200, description = "JWK Set (RFC 7517) of the Ed25519 keys that verify access tokens", body = serde_json::Value)))]
pub async fn jwks(state: Arc<AppState>, _req: Request) -> Result<Response<Body>, ApiError> {
    // Short cache: a rotated-in key must reach verifiers well before it signs anything.
    Ok(cacheable_json(state.public_keys()?.to_jwks().to_string(), 300))
}

#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", body = serde_json::Value)))]
pub async fn openapi(_state: Arc<AppState>, _req: Request) -> Result<Response<Body>, ApiError> {
    Ok(cacheable_json(crate::openapi::json().to_string(), 60))
}
