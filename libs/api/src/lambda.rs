//! Wiring for the Lambda binaries: each `functions/bin/NAME.rs` (generated from template.yaml
//! and the registry: `make functions`) calls the one `run_*` its function needs.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};

use crate::registry::{
    http_function as http_function_named, same, Handler, HttpFunction, KeyAccess, Storage,
};
use crate::AppState;

/// What one Lambda binary runs. Each variant links a different set of clients (Secrets
/// Manager for keys, SQS for sending), so `make functions` writes each binary's `main` to
/// call its variant's `run_*` only, and a binary links only what its function needs.
#[derive(Clone, Copy)]
pub enum Binary {
    /// An HTTP function with no keys that sends nothing: no SDK client at all.
    Http(HttpFunction),
    /// An HTTP function that announces its writes on the queues.
    HttpSending(HttpFunction),
    /// An HTTP function that signs or verifies tokens.
    HttpWithKeys(HttpFunction),
    /// An HTTP function that presigns uploads to the bucket.
    HttpUploading(HttpFunction),
    /// An HTTP function that seals webhook secrets (the webhook key's secret).
    HttpSealing(HttpFunction),
    Authorizer,
    OrderProcessor,
    FeedFanout,
    ImportWorker,
    OutboxRelay,
    Cleanup,
    DbMigrate,
    WebhookDispatch,
    WebhookSender,
    WebhookRecorder,
}

/// The function of the binary named `name` (its `CARGO_BIN_NAME`): an unknown name fails
/// the build.
pub const fn binary(name: &str) -> Binary {
    const OTHERS: [(&str, Binary); 10] = [
        ("authorizer", Binary::Authorizer),
        ("order-processor", Binary::OrderProcessor),
        ("feed-fanout", Binary::FeedFanout),
        ("import-worker", Binary::ImportWorker),
        ("outbox-relay", Binary::OutboxRelay),
        ("cleanup", Binary::Cleanup),
        ("db-migrate", Binary::DbMigrate),
        ("webhook-dispatch", Binary::WebhookDispatch),
        ("webhook-sender", Binary::WebhookSender),
        ("webhook-recorder", Binary::WebhookRecorder),
    ];
    let mut i = 0;
    while i < OTHERS.len() {
        if same(OTHERS[i].0, name) {
            return OTHERS[i].1;
        }
        i += 1;
    }
    match http_function_named(name) {
        Some(f) => match (f.keys, f.storage) {
            (KeyAccess::None, Storage::Sends) => Binary::HttpSending(f),
            (KeyAccess::None, Storage::Uploads) => Binary::HttpUploading(f),
            (KeyAccess::None, Storage::Seals) => Binary::HttpSealing(f),
            (KeyAccess::None, _) => Binary::Http(f),
            _ => Binary::HttpWithKeys(f),
        },
        None => panic!("a binary of functions/ names no function of the registry (libs/api/src/registry.rs)"),
    }
}

/// The HTTP function of the binary named `name`, at compile time: an unknown name fails the
/// build.
pub const fn http_function(name: &str) -> HttpFunction {
    match http_function_named(name) {
        Some(f) => f,
        None => {
            panic!("a binary of functions/ names no HTTP function of the registry (libs/api/src/registry.rs)")
        }
    }
}

/// Every binary's name: the registry's HTTP functions and the ten others (the layout test
/// compares them with template.yaml).
pub fn binary_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = crate::registry::ALL.iter().map(|f| f.name).collect();
    names.extend([
        "authorizer",
        "order-processor",
        "feed-fanout",
        "import-worker",
        "outbox-relay",
        "cleanup",
        "db-migrate",
        "webhook-dispatch",
        "webhook-sender",
        "webhook-recorder",
    ]);
    names
}

pub use lambda_http::Error;

/// An execution environment serves one request at a time, so one connection would do;
/// the second is headroom, so that code reading through the pool while it holds a
/// transaction's connection waits for nothing instead of the 5 s acquire timeout. RDS
/// Proxy multiplexes the environments' connections onto the database.
const POOL_SIZE: u32 = 2;

/// Serves one HTTP function of the registry behind API Gateway. It holds no keys and
/// sends nothing to a queue (so it links neither a Secrets Manager nor an SQS client);
/// what it writes to the outbox, the relay sends.
pub async fn run_http(function: &'static HttpFunction) -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = AppState::from_env(function.database(), POOL_SIZE)?;
    serve_http(function, keyless(function, state)?).await
}

/// Serves one HTTP function that also announces what it writes on the queues the template
/// gives it (QUEUE_URL, ACTIVITY_QUEUE_URL), so that consumers need not wait for the relay.
pub async fn run_http_sending(function: &'static HttpFunction) -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = AppState::from_env(function.database(), POOL_SIZE)?;
    let state = keyless(function, state)?.with_queues_from_env().await;
    serve_http(function, state).await
}

/// Serves one HTTP function that presigns uploads to the bucket (UPLOAD_BUCKET).
pub async fn run_http_uploading(function: &'static HttpFunction) -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = AppState::from_env(function.database(), POOL_SIZE)?;
    let state = keyless(function, state)?.with_objects_from_env();
    serve_http(function, state).await
}

/// Serves one HTTP function that seals webhook secrets, with the key's secret read at start.
pub async fn run_http_sealing(function: &'static HttpFunction) -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = AppState::from_env(function.database(), POOL_SIZE)?;
    let state = keyless(function, state)?.with_webhooks_from_env(true).await?;
    serve_http(function, state).await
}

/// How often a scheduled `webhook-dispatch` run polls; for how long is
/// WEBHOOK_DISPATCH_SECONDS (55 deployed: it is started every minute, and a run must end
/// before the next begins; unset, one pass).
const DISPATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves the scheduled `webhook-dispatch`: for most of a minute, every second, signs what
/// is due and queues it for the sender. The schedule restarts it each minute.
pub async fn run_webhook_dispatch() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = Arc::new(
        AppState::from_env(true, POOL_SIZE)?
            .with_webhooks_from_env(true)
            .await?,
    );
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<serde_json::Value>| {
        let state = state.clone();
        async move {
            let run = bookshelf_config::settings().map_or(0, |s| s.deployed.webhook_dispatch_seconds);
            let run = std::time::Duration::from_secs(run);
            let started = std::time::Instant::now();
            let mut sent = 0;
            loop {
                match crate::webhooks::dispatch(&state).await {
                    Ok(n) => sent += n,
                    Err(e) => tracing::warn!(error = %bookshelf_http::error_chain(&e), "webhook dispatch pass failed"),
                }
                if started.elapsed() + DISPATCH_EVERY >= run {
                    break;
                }
                tokio::time::sleep(DISPATCH_EVERY).await;
            }
            Ok::<_, Error>(serde_json::json!({ "queued": sent }))
        }
    }))
    .await
}

/// Serves `webhook-sender`, outside the VPC: no database, only the two queues.
pub async fn run_webhook_sender() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = Arc::new(
        AppState::from_env(false, POOL_SIZE)?
            .with_webhooks_from_env(false)
            .await?,
    );
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| {
            let state = state.clone();
            async move { Ok::<_, Error>(crate::webhooks::send_batch(state, event.payload).await) }
        },
    ))
    .await
}

/// Serves `webhook-recorder`, the consumer of the sender's reports.
pub async fn run_webhook_recorder() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = Arc::new(AppState::from_env(true, POOL_SIZE)?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| {
            let state = state.clone();
            async move { Ok::<_, Error>(crate::webhooks::record_batch(state, event.payload).await) }
        },
    ))
    .await
}

/// Serves one HTTP function that signs or verifies tokens (the registry's `keys`), with
/// the key material read from Secrets Manager at start.
pub async fn run_http_with_keys(function: &'static HttpFunction) -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = AppState::from_env(function.database(), POOL_SIZE)?
        .with_keys_from_env(function.keys)
        .await?;
    serve_http(function, state).await
}

/// A function the registry gives keys must start with `run_http_with_keys`: refusing to
/// start says so at once, where a missing key would fail only its first request.
fn keyless(function: &'static HttpFunction, state: AppState) -> Result<AppState, Error> {
    match function.keys {
        KeyAccess::None => Ok(state),
        keys => Err(format!(
            "{} needs {keys:?} keys: run_http_with_keys serves it",
            function.name
        )
        .into()),
    }
}

async fn serve_http(function: &'static HttpFunction, state: AppState) -> Result<(), Error> {
    let state = Arc::new(state);
    match function.handler {
        Handler::Buffered(handler) => {
            lambda_http::run(service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Error>(handler(state, req).await) }
            }))
            .await
        }
        // Lambda response streaming: API Gateway invokes it with InvokeWithResponseStreaming
        // (the route's ResponseTransferMode), and the body leaves as it is written.
        Handler::Streaming(handler) => {
            lambda_http::run_with_streaming_response(service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Error>(handler(state, req).await) }
            }))
            .await
        }
    }
}

/// Serves the REQUEST authorizer.
pub async fn run_authorizer() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = AppState::from_env(true, POOL_SIZE)?;
    let state = Arc::new(state.with_keys_from_env(KeyAccess::Public).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let state = state.clone();
        async move { crate::authorizer::authorize(state, &event.payload).await }
    }))
    .await
}

/// Serves the SQS consumer `order-processor` (event source mapping with
/// `ReportBatchItemFailures`).
pub async fn run_order_processor() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = Arc::new(AppState::from_env(true, POOL_SIZE)?.with_queues_from_env().await);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| {
            let state = state.clone();
            async move { Ok::<_, Error>(crate::worker::process_batch(state, event.payload).await) }
        },
    ))
    .await
}

/// Serves the SQS consumer `feed-fanout` of the activities queue (event source mapping
/// with `ReportBatchItemFailures`).
pub async fn run_feed_fanout() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    // Its queue too: a step hands the rest of a large fan-out on to the activities queue.
    let state = Arc::new(AppState::from_env(true, POOL_SIZE)?.with_queues_from_env().await);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| {
            let state = state.clone();
            async move { Ok::<_, Error>(crate::worker::fan_out_batch(state, event.payload).await) }
        },
    ))
    .await
}

/// Serves the SQS consumer `import-worker` of the imports queue, which the upload bucket's
/// object-created notifications fill (event source mapping with `ReportBatchItemFailures`).
pub async fn run_import_worker() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = Arc::new(AppState::from_env(true, POOL_SIZE)?.with_objects_from_env());
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| {
            let state = state.clone();
            async move { Ok::<_, Error>(crate::imports::import_batch(state, event.payload).await) }
        },
    ))
    .await
}

/// Rows of each kind one cleanup run removes at most (a backlog takes several hourly runs).
const CLEANUP_BATCH: i64 = 10_000;

/// Serves the scheduled `cleanup`: removes what has expired, at most `CLEANUP_BATCH` rows of
/// each kind, and answers how many it removed.
pub async fn run_cleanup() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = Arc::new(AppState::from_env(true, POOL_SIZE)?);
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<serde_json::Value>| {
        let state = state.clone();
        async move {
            let db = state.db().map_err(|e| e.to_string())?;
            let retention = &bookshelf_storage::cleanup::RETENTION;
            let removed = bookshelf_storage::cleanup::expired(db, retention, CLEANUP_BATCH).await?;
            let imports = bookshelf_storage::imports::fail_never_uploaded(db, CLEANUP_BATCH).await?;
            let tombstones = bookshelf_storage::changes::expire_tombstones(
                db,
                retention.tombstones.as_secs_f64(),
                CLEANUP_BATCH,
            )
            .await?;
            tracing::info!(
                ?removed,
                imports_never_uploaded = imports,
                tombstones,
                "expired rows removed"
            );
            Ok::<_, Error>(serde_json::to_value(removed)?)
        }
    }))
    .await
}

/// Serves the scheduled `outbox-relay`. A failed run is an error, so it shows in the
/// function's error metric and alarms.
pub async fn run_outbox_relay() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = Arc::new(AppState::from_env(true, POOL_SIZE)?.with_queues_from_env().await);
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<serde_json::Value>| {
        let state = state.clone();
        async move {
            // Younger rows are still being sent by their own request.
            crate::worker::relay_outbox(&state, 30).await.map_err(|e| {
                let message = bookshelf_http::error_chain(&e);
                tracing::error!(error = %message, "outbox relay run failed");
                // What the invocation reports (and `sam remote invoke` shows): the whole
                // chain, under a name an operator can search for.
                lambda_runtime::Diagnostic {
                    error_type: "OutboxRelayFailed".into(),
                    error_message: message,
                }
            })
        }
    }))
    .await
}

/// What `db-migrate` may be asked besides migrating. The password is never logged.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MigrateRequest {
    admin_email: Option<String>,
    admin_password: Option<String>,
    /// The email of an existing account the operator means to make admin (it must equal
    /// `adminEmail`); without it an existing account is refused.
    promote: Option<String>,
}

/// The invocation's payload: `{}` (or null) to migrate, plus both admin fields to ensure
/// the first admin. Anything else is refused before anything runs: a typo must not
/// migrate "successfully" with no admin.
fn migrate_request(payload: serde_json::Value) -> Result<MigrateRequest, String> {
    if payload.is_null() {
        return Ok(MigrateRequest::default());
    }
    let request: MigrateRequest =
        serde_json::from_value(payload).map_err(|e| format!("malformed db-migrate request: {e}"))?;
    if request.admin_email.is_some() != request.admin_password.is_some() {
        return Err("adminEmail and adminPassword come together".into());
    }
    Ok(request)
}

/// Serves `db-migrate`: applies the migrations as the master user, then creates or updates
/// the application role the API connects as, and ensures the first admin when the
/// invocation names one. Invoked once per deploy, never on a cold start of the API.
pub async fn run_db_migrate() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let db = bookshelf_storage::pool(bookshelf_config::database_owner().await?, 1);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let db = db.clone();
        async move { db_migrate(&db, event.payload).await }
    }))
    .await
}

/// One db-migrate invocation on the environment's pool `db`.
pub async fn db_migrate(
    db: &bookshelf_storage::DbPool,
    payload: serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let request = migrate_request(payload)?;
    // Both secrets as they are now, at every invocation: after a rotation a warm
    // environment must neither sign in with the old master password nor set the
    // application role's password back to the value it read at its start.
    db.set_connect_options(bookshelf_config::database_owner().await?);
    let app_role = bookshelf_config::app_role()
        .await?
        .map(|r| (r.username, r.password));
    let applied = crate::ops::migrate(db).await?;
    tracing::info!(?applied, "migrations applied");
    let role = match app_role {
        Some((name, password)) => {
            crate::ops::ensure_app_role(db, &name, &password).await?;
            tracing::info!(role = %name, "application role ensured");
            Some(name)
        }
        None => {
            tracing::info!("no APP_DB_SECRET_ARN (local run): no application role");
            None
        }
    };
    let admin = match (request.admin_email, request.admin_password) {
        (Some(email), Some(password)) => {
            let outcome = crate::ops::ensure_admin(db, &email, &password, request.promote.as_deref()).await?;
            tracing::info!(%email, ?outcome, "admin ensured");
            Some(email)
        }
        _ => None,
    };
    Ok(serde_json::json!({"migrations": applied, "appRole": role, "admin": admin}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn db_migrate_refuses_what_it_would_misread() {
        assert!(migrate_request(json!({})).is_ok());
        assert!(migrate_request(serde_json::Value::Null).is_ok());
        let both = migrate_request(json!({"adminEmail": "a@b.c", "adminPassword": "long enough"})).unwrap();
        assert_eq!(both.admin_email.as_deref(), Some("a@b.c"));
        assert_eq!(
            both.promote, None,
            "an existing account is promoted only when named"
        );
        let named = migrate_request(
            json!({"adminEmail": "a@b.c", "adminPassword": "long enough", "promote": "a@b.c"}),
        )
        .unwrap();
        assert_eq!(named.promote.as_deref(), Some("a@b.c"));
        for bad in [
            json!({"adminEmail": "a@b.c"}),
            json!({"admin_email": "a@b.c", "admin_password": "x"}),
            json!({"adminEmail": 1, "adminPassword": "x"}),
            json!([1, 2]),
            json!("migrate"),
        ] {
            assert!(migrate_request(bad.clone()).is_err(), "{bad}");
        }
    }
}
