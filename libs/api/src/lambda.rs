//! Wiring for the Lambda binaries: each `main.rs` calls one of these.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};

use crate::registry::{http_handler, KeyAccess};
use crate::AppState;

pub use lambda_http::Error;

/// One connection per execution environment: it serves one request at a time, and
/// RDS Proxy multiplexes the environments onto the database.
const POOL_SIZE: u32 = 2;

/// Serves the HTTP function `name` (a name from the registry) behind API Gateway.
pub async fn run_http(name: &str) -> Result<(), Error> {
    bookshelf_config::init_tracing();
    let function = http_handler(name).ok_or_else(|| format!("no HTTP function named {name}"))?;
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
