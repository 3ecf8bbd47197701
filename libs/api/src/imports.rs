//! Imports: `POST /imports` hands out an upload URL (presigned S3 deployed, the dev
//! server's stand-in locally); the upload's notification reaches `import-worker` through
//! the imports queue, which applies the file row by row (`run`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use bookshelf_domain::import::{FileError, Import, ImportFile, ImportRowResult, RowOutcome, MAX_FILE_BYTES};
use bookshelf_domain::{field, AllValid, NumberCursor, PageParams};
use bookshelf_http::{
    enum_param, json, path_uuid, query_param, read_optional_json, ApiError, Body, Identity, Page, Request,
    Response,
};
use bookshelf_objects::Fetched;
use bookshelf_storage::imports::{self, Applied};
use bookshelf_storage::StorageError;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::openapi::Problem;
use crate::AppState;

/// How long an upload URL works: the contract's hour.
pub const UPLOAD_WINDOW: Duration = Duration::from_secs(3600);

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportInput {
    /// The file's name, for the reader's own reference (1 to 255 characters).
    #[schema(nullable)]
    filename: Option<serde_json::Value>,
}

/// A new import with the URL its file goes to.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedImport {
    #[serde(flatten)]
    import: Import,
    /// PUT the file's bytes here, with `uploadHeaders`.
    upload_url: String,
    upload_headers: BTreeMap<String, String>,
    upload_expires_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportPage {
    pub items: Vec<Import>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportRowPage {
    pub items: Vec<ImportRowResult>,
    pub next_cursor: Option<String>,
}

fn filename(v: Option<serde_json::Value>) -> Result<Option<String>, String> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => {
            let s = s.trim();
            match s.chars().count() {
                1..=255 if !s.contains('\0') => Ok(Some(s.to_string())),
                _ => Err("must be 1 to 255 characters".into()),
            }
        }
        Some(_) => Err("must be a string".into()),
    }
}

fn no_import(e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound => ApiError::not_found("import"),
        other => other.into(),
    }
}

#[utoipa::path(post, path = "/imports", tag = "library", security(("bearer" = [])),
    request_body(content = Option<ImportInput>, description = "Optional: `{}` or no body, or the file's name"),
    responses(
        (status = 201, description = "The import, awaiting its file: PUT it to `uploadUrl` with `uploadHeaders` within the hour", body = CreatedImport,
            headers(("Location" = String, description = "/imports/{id}"))),
        (status = 400, description = "Bad filename", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let input: ImportInput = read_optional_json(&req)?;
    let name = field("filename", filename(input.filename)).map_err(ApiError::Validation)?;
    let id = Uuid::new_v4();
    // The row first: an account deleted meanwhile is refused before anything is signed.
    let expires_at = Utc::now() + UPLOAD_WINDOW;
    let import = imports::create(state.db()?, who.user_id, id, name.as_deref(), expires_at).await?;
    let upload = state
        .objects()?
        .upload_url(&bookshelf_objects::import_key(id), UPLOAD_WINDOW)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(import = %id, "import created");
    let mut r = json(
        StatusCode::CREATED,
        &CreatedImport {
            import,
            upload_url: upload.url,
            upload_headers: upload.headers,
            upload_expires_at: expires_at.min(upload.expires_at),
        },
    );
    if let Ok(v) = format!("/imports/{id}").parse() {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(r)
}

#[utoipa::path(get, path = "/imports", tag = "library", security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "The caller's imports, newest first", body = ImportPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let page = PageParams::parse(query_param(&req, "limit"), query_param(&req, "cursor"))
        .map_err(ApiError::Validation)?;
    let (items, next) = imports::list(state.db()?, who.user_id, page).await?;
    Ok(json(
        StatusCode::OK,
        &Page {
            items,
            next_cursor: next.map(|c| c.encode()),
        },
    ))
}

#[utoipa::path(get, path = "/imports/{id}", tag = "library", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "An import of the caller's")),
    responses(
        (status = 200, description = "The import and its progress", body = Import),
        (status = 404, description = "No such import of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let import = imports::get(state.db()?, who.user_id, id)
        .await
        .map_err(no_import)?;
    Ok(json(StatusCode::OK, &import))
}

#[utoipa::path(get, path = "/imports/{id}/rows", tag = "library", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "An import of the caller's"),
        ("outcome" = Option<RowOutcome>, Query, description = "Only rows with this outcome"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "The import's rows processed so far, in file order", body = ImportRowPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such import of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rows(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let (outcome, page) = (
        enum_param(&req, "outcome", RowOutcome::parse, "imported, skipped, failed"),
        PageParams::<NumberCursor>::parse(query_param(&req, "limit"), query_param(&req, "cursor")),
    )
        .all_valid()?;
    let (items, next) = imports::rows(state.db()?, who.user_id, id, outcome, page)
        .await
        .map_err(no_import)?;
    Ok(json(
        StatusCode::OK,
        &Page {
            items,
            next_cursor: next.map(|c| c.encode()),
        },
    ))
}

/// How one import ended (or stopped) in this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    Completed,
    Failed,
    /// Nothing to do: already finished, gone, or never uploaded in time.
    Nothing,
}

/// Applies the import's file, after the rows an earlier attempt applied. An `Err` is a
/// fault worth retrying (the database or S3 unreachable): the message comes back and the
/// next attempt resumes after the last applied row.
pub async fn run(state: &AppState, id: Uuid) -> Result<Ran, ApiError> {
    let db = state.db()?;
    let Some(claim) = imports::claim(db, id).await? else {
        tracing::info!(import = %id, "nothing to import (finished, gone or never uploaded)");
        return Ok(Ran::Nothing);
    };
    let objects = state.objects()?;
    let key = bookshelf_objects::import_key(id);
    let bytes = match objects
        .get(&key, MAX_FILE_BYTES)
        .await
        .map_err(ApiError::internal)?
    {
        Fetched::Bytes(b) => b,
        Fetched::TooLarge(size) => {
            tracing::info!(import = %id, size, "import file too large");
            return fail(state, id, &FileError::TooLarge.to_string()).await;
        }
        Fetched::Missing => return fail(state, id, "the uploaded file could not be found").await,
    };
    let file = match ImportFile::read(&bytes) {
        Ok(f) => f,
        Err(e) => return fail(state, id, &e.to_string()).await,
    };
    drop(bytes);
    imports::set_format(db, id, file.format).await?;
    tracing::info!(import = %id, format = file.format.as_str(), rows = file.len(), resume_after = claim.applied, "import running");
    for row in file.rows_after(usize::try_from(claim.applied).unwrap_or(0)) {
        let applied = match imports::apply_row(db, id, claim.user, &row).await {
            Ok(a) => a,
            Err(e) if e.is_transient() => return Err(e.into()),
            // A row the database refuses for a reason of its own (a bug, not a fault): it
            // fails alone, with a reason, rather than holding the whole file back forever.
            Err(e) => {
                tracing::error!(import = %id, row = row.row, error = %bookshelf_http::error_chain(&e), "row refused by the database");
                let mut failed = row.clone();
                failed.parsed = Err("the row could not be stored".into());
                imports::apply_row(db, id, claim.user, &failed).await?
            }
        };
        if applied == Applied::Gone {
            tracing::info!(import = %id, "import gone (account deleted) mid-file");
            return Ok(Ran::Nothing);
        }
    }
    imports::finish(db, id, None).await?;
    if let Err(e) = objects.delete(&key).await {
        // The bucket's lifecycle rule removes it within a day anyway.
        tracing::warn!(import = %id, error = %e, "import file not deleted");
    }
    tracing::info!(import = %id, rows = file.len(), "import completed");
    Ok(Ran::Completed)
}

async fn fail(state: &AppState, id: Uuid, error: &str) -> Result<Ran, ApiError> {
    tracing::info!(import = %id, error, "import failed");
    imports::finish(state.db()?, id, Some(error)).await?;
    Ok(Ran::Failed)
}

/// The S3 object-created notifications in one SQS message (S3 sends a test event, with no
/// records, when the notification is configured: nothing to do).
#[derive(Debug, Deserialize)]
struct S3Notification {
    #[serde(rename = "Records", default)]
    records: Vec<S3Record>,
}

#[derive(Debug, Deserialize)]
struct S3Record {
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    object: S3Object,
}

#[derive(Debug, Deserialize)]
struct S3Object {
    key: String,
}

/// The imports a message names: `None` when it is not an S3 notification at all.
fn imports_named(body: &str) -> Option<Vec<Uuid>> {
    let n: S3Notification = serde_json::from_str(body).ok()?;
    Some(
        n.records
            .iter()
            .filter_map(|r| bookshelf_objects::import_of_key(&r.s3.object.key))
            .filter_map(|id| Uuid::parse_str(&id).ok())
            .collect(),
    )
}

/// `import-worker`: each message's imports, one after another. A message whose import hit
/// a fault is reported failed (it comes back and resumes); one that is not a notification
/// goes to the DLQ after its retries.
pub async fn import_batch(state: Arc<AppState>, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let Some(named) = record.body.as_deref().and_then(imports_named) else {
            tracing::error!(message_id = %id, "not an S3 notification; it will reach the DLQ");
            failures.push(id);
            continue;
        };
        for import in named {
            if let Err(e) = run(&state, import).await {
                tracing::warn!(message_id = %id, %import, error = %bookshelf_http::error_chain(&e), "import interrupted; it resumes when the message returns");
                failures.push(id.clone());
                break;
            }
        }
    }
    crate::worker::batch_response(failures)
}

/// The notification S3 sends for an upload of `key` (what the dev server's stand-in sends
/// on its in-process queue, and what the tests feed the worker).
pub fn notification(bucket: &str, key: &str, size: u64) -> String {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "eventTime": Utc::now().to_rfc3339(),
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}}
    }]})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_s3_notifications_and_their_test_event() {
        let id = Uuid::new_v4();
        let body = notification("b", &format!("imports/{id}.csv"), 3);
        assert_eq!(imports_named(&body), Some(vec![id]));
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#;
        assert_eq!(imports_named(test_event), Some(vec![]));
        assert_eq!(imports_named("not json"), None);
        assert_eq!(imports_named(&notification("b", "other/x.csv", 1)), Some(vec![]));
    }

    #[test]
    fn filenames_are_optional_short_strings() {
        assert_eq!(filename(None), Ok(None));
        assert_eq!(
            filename(Some(serde_json::json!(" a.csv "))),
            Ok(Some("a.csv".into()))
        );
        assert!(filename(Some(serde_json::json!(""))).is_err());
        assert!(filename(Some(serde_json::json!(5))).is_err());
        assert!(filename(Some(serde_json::json!("x".repeat(256)))).is_err());
    }
}
