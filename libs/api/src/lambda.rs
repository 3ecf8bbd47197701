//! Wiring for the Lambda binaries: each `main.rs` calls one of these.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};

use crate::registry::{HttpFunction, KeyAccess};
use crate::AppState;

pub use lambda_http::Error;

/// One connection per execution environment: it serves one request at a time, and
/// RDS Proxy multiplexes the environments onto the database.
const POOL_SIZE: u32 = 2;

/// Serves one HTTP function of the registry behind API Gateway.
pub async fn run_http(function: &'static HttpFunction) -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = Arc::new(AppState::from_env(function.keys, POOL_SIZE).await?);
    let handler = function.handler;
    lambda_http::run(service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Error>(handler(state, req).await) }
    }))
    .await
}

/// Serves the REQUEST authorizer.
pub async fn run_authorizer() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = Arc::new(AppState::from_env(KeyAccess::Public, POOL_SIZE).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let state = state.clone();
        async move { crate::authorizer::authorize(state, event.payload).await }
    }))
    .await
}

/// Serves the SQS consumer `order-processor` (event source mapping with
/// `ReportBatchItemFailures`).
pub async fn run_order_processor() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = Arc::new(AppState::from_env(KeyAccess::None, POOL_SIZE).await?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| {
            let state = state.clone();
            async move { Ok::<_, Error>(crate::worker::process_batch(state, event.payload).await) }
        },
    ))
    .await
}

/// Serves the scheduled `outbox-relay`. A failed run is an error, so it shows in the
/// function's error metric and alarms.
pub async fn run_outbox_relay() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let state = Arc::new(AppState::from_env(KeyAccess::None, POOL_SIZE).await?);
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<serde_json::Value>| {
        let state = state.clone();
        async move {
            // Younger rows are still being sent by their own request.
            crate::worker::relay_outbox(&state, 30).await.map_err(Error::from)
        }
    }))
    .await
}

/// What `db-migrate` may be asked besides migrating. The password is never logged.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MigrateRequest {
    admin_email: Option<String>,
    admin_password: Option<String>,
}

/// Serves `db-migrate`: applies the migrations, and ensures the first admin when the
/// invocation names one. Invoked once per deploy, never on a cold start of the API.
pub async fn run_db_migrate() -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let db = bookshelf_storage::pool(bookshelf_config::database().await?, 1);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let db = db.clone();
        async move {
            let request: MigrateRequest = serde_json::from_value(event.payload).unwrap_or_default();
            let applied = crate::ops::migrate(&db).await?;
            tracing::info!(?applied, "migrations applied");
            let admin = match (request.admin_email, request.admin_password) {
                (Some(email), Some(password)) => {
                    crate::ops::ensure_admin(&db, &email, &password).await?;
                    tracing::info!(%email, "admin ensured");
                    Some(email)
                }
                _ => None,
            };
            Ok::<_, Error>(serde_json::json!({"migrations": applied, "admin": admin}))
        }
    }))
    .await
}
