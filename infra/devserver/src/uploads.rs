//! The dev server's stand-in for a presigned S3 PUT (`/_uploads/<key>?expires=&signature=`):
//! it refuses what S3 would refuse (a signature that does not cover this method, key and
//! expiry; an expired URL; a second upload to the key), keeps the file, and announces it on
//! the in-process imports queue the way the bucket's notification does deployed.

use std::collections::HashMap;

use axum::body::Body as AxumBody;
use bookshelf_api::AppState;
use bookshelf_domain::import::MAX_FILE_BYTES;
use bookshelf_objects::{Refused, LOCAL_UPLOAD_PATH};
use futures::StreamExt;
use http::StatusCode;

/// S3's error document.
fn s3_error(status: StatusCode, code: &str, message: &str) -> http::Response<AxumBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/xml")
        .body(AxumBody::from(body))
        .unwrap_or_default()
}

pub async fn put(state: &AppState, req: http::Request<AxumBody>) -> http::Response<AxumBody> {
    let Some(local) = state.objects().ok().and_then(|o| o.local()).cloned() else {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "this server has no upload store",
        );
    };
    if req.method() != http::Method::PUT {
        return s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "the URL is signed for PUT",
        );
    }
    let raw_key = req.uri().path()[LOCAL_UPLOAD_PATH.len()..].to_string();
    let key = percent_encoding::percent_decode_str(&raw_key)
        .decode_utf8_lossy()
        .into_owned();
    let query: HashMap<String, String> = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let (expires, signature) = (
        query.get("expires").map_or("", String::as_str),
        query.get("signature").map_or("", String::as_str),
    );
    match local.check("PUT", &key, expires, signature, chrono::Utc::now()) {
        Ok(()) => {}
        Err(Refused::Expired) => {
            return s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired")
        }
        Err(_) => {
            return s3_error(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        }
    }
    let conditional = req.headers().contains_key(http::header::IF_NONE_MATCH);
    // Read at most one byte past the limit, and drain the rest: an oversized file is kept
    // only far enough for the importer to see that it is too large.
    let mut body = Vec::new();
    let mut size: u64 = 0;
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return s3_error(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "the upload was cut short",
            );
        };
        size += chunk.len() as u64;
        let room = (MAX_FILE_BYTES + 1).saturating_sub(body.len() as u64) as usize;
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    match local.put(&key, &body, MAX_FILE_BYTES).await {
        Ok(Ok(())) => {}
        Ok(Err(Refused::AlreadyUploaded)) if conditional => {
            return s3_error(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )
        }
        Ok(Err(_)) => {
            return s3_error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "this URL has already been used for an upload",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, key, "upload not stored");
            return s3_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "the upload was not stored",
            );
        }
    }
    tracing::info!(key, bytes = size, "upload stored");
    // Queued before the 200: a client that asks right after its upload never sees it
    // still awaiting the file.
    let import = bookshelf_objects::import_of_key(&key).and_then(|id| uuid::Uuid::parse_str(&id).ok());
    if let (Some(id), Ok(db)) = (import, state.db()) {
        if let Err(e) = bookshelf_storage::imports::mark_queued(db, id).await {
            tracing::warn!(error = %bookshelf_http::error_chain(&e), key, "upload not marked queued");
        }
    }
    if let Some(queue) = &state.import_queue {
        let message = bookshelf_api::imports::notification("local", &key, size);
        if let Err(e) = queue.send(&message).await {
            tracing::error!(error = %e, key, "upload not announced");
        }
    }
    http::Response::builder()
        .status(StatusCode::OK)
        .header(http::header::ETAG, format!("\"{:x}\"", size))
        .body(AxumBody::empty())
        .unwrap_or_default()
}
