//! The public documents: the JWK Set, the OpenAPI description, and the page that reads it.

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
    // Short cache; a verifier that meets an unknown `kid` should fetch the set again, as
    // ours do: a rotated-in key signs at once (README, "Key rotation").
    Ok(cacheable_json(
        state.key_set().await?.public.to_jwks().to_string(),
        300,
    ))
}

#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", body = serde_json::Value)))]
pub async fn openapi(_state: Arc<AppState>, _req: Request) -> Result<Response<Body>, ApiError> {
    Ok(cacheable_json(crate::openapi::json().to_string(), 60))
}

/// Swagger UI for `/openapi.json`. Every URL is relative, so the page works under a
/// deployed stage prefix too; the validator badge (a request to another host) is off, and
/// an empty icon keeps the browser from asking for a favicon.
const DOCS_PAGE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Bookshelf API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      validatorUrl: null,
      deepLinking: true,
      tryItOutEnabled: false,
    });
  </script>
</body>
</html>
"##;

#[utoipa::path(get, path = "/docs", tag = "meta",
    responses((status = 200, description = "Interactive documentation (Swagger UI) of /openapi.json",
        body = String, content_type = "text/html")))]
pub async fn docs(_state: Arc<AppState>, _req: Request) -> Result<Response<Body>, ApiError> {
    text(DOCS_PAGE.to_string(), "text/html; charset=utf-8", 300)
}

#[utoipa::path(get, path = "/docs/{asset}", tag = "meta",
    params(("asset" = String, Path, description = "swagger-ui.css or swagger-ui-bundle.js")),
    responses(
        (status = 200, description = "A stylesheet or script of the documentation page", body = String,
            content_type = "text/css"),
        (status = 404, description = "No such asset", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub async fn docs_asset(_state: Arc<AppState>, req: Request) -> Result<Response<Body>, ApiError> {
    use lambda_http::RequestExt;
    let name = req
        .path_parameters_ref()
        .and_then(|p| p.first("asset"))
        .unwrap_or_default();
    let (body, content_type) = match name {
        "swagger-ui.css" => (SWAGGER_CSS, "text/css; charset=utf-8"),
        "swagger-ui-bundle.js" => (SWAGGER_JS, "text/javascript; charset=utf-8"),
        _ => return Err(ApiError::not_found("asset")),
    };
    // Assets do not change within a deployment: a day in the browser's cache.
    text(body.to_string(), content_type, 86_400)
}

/// The two Swagger UI files the page loads, as the swagger-ui-dist crate serves them
/// (written to OUT_DIR by build.rs).
const SWAGGER_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/swagger-ui.css"));
const SWAGGER_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/swagger-ui-bundle.js"));

fn text(body: String, content_type: &str, max_age: u32) -> Result<Response<Body>, ApiError> {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, format!("public, max-age={max_age}"))
        .body(Body::Text(body))
        .map_err(ApiError::internal)
}
