//! The asynchronous side of orders: the SQS batch handler (`order-processor`) and the
//! outbox relay (`outbox-relay`).

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use bookshelf_domain::OrderMessage;
use bookshelf_storage::orders::{self, ProcessOutcome};

use bookshelf_config::metrics;

use crate::AppState;

/// Processes a batch; the ids of messages that failed come back as batch item failures, so
/// only those are delivered again (and, after the redrive limit, dead-lettered). Each
/// message is one transaction, and a message for an order that is no longer pending
/// changes nothing: delivering twice is harmless.
pub async fn process_batch(state: Arc<AppState>, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let receives = record
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_default();
        let message = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<OrderMessage>(b).ok());
        let failed = match message {
            None => {
                // Logged without the body: a malformed message may carry anything.
                tracing::error!(message_id = %id, receives, "malformed order message; it will reach the DLQ");
                true
            }
            Some(OrderMessage { order_id }) => match process(&state, order_id).await {
                Ok(ProcessOutcome::Confirmed) => {
                    tracing::info!(message_id = %id, %order_id, "order confirmed");
                    state.metrics.count(metrics::ORDERS_CONFIRMED, 1);
                    false
                }
                Ok(ProcessOutcome::Rejected) => {
                    tracing::info!(message_id = %id, %order_id, reason = "insufficient_stock", "order rejected");
                    state.metrics.count(metrics::ORDERS_REJECTED, 1);
                    false
                }
                Ok(ProcessOutcome::AlreadyDone(status)) => {
                    tracing::info!(message_id = %id, %order_id, status = status.as_str(), "order already processed; duplicate ignored");
                    false
                }
                Ok(ProcessOutcome::NotFound) => {
                    tracing::error!(message_id = %id, %order_id, "message names no order; it will reach the DLQ");
                    true
                }
                Err(e) => {
                    tracing::warn!(message_id = %id, %order_id, receives, error = %bookshelf_http::error_chain(&e), "order processing failed; will retry");
                    true
                }
            },
        };
        if failed {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            response.batch_item_failures.push(f);
        }
    }
    response
}

async fn process(state: &AppState, order_id: uuid::Uuid) -> Result<ProcessOutcome, bookshelf_http::ApiError> {
    Ok(orders::process(state.db()?, order_id).await?)
}

/// What one relay run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayReport {
    pub sent: u32,
    pub failed: u32,
}

/// Why a relay run failed. A run that could not send a message is a failure (the
/// function's error metric, and its alarm), even though the rows stay for the next run.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("no queue is configured")]
    NoQueue,
    #[error("no database is configured")]
    NoDatabase,
    #[error("outbox storage")]
    Storage(#[from] bookshelf_storage::StorageError),
    #[error("{failed} of {attempted} outbox messages could not be sent ({sent} sent)", attempted = .sent + .failed)]
    SendFailed {
        sent: u32,
        failed: u32,
        #[source]
        last: bookshelf_queue::QueueError,
    },
}

impl From<sqlx::Error> for RelayError {
    fn from(e: sqlx::Error) -> Self {
        RelayError::Storage(e.into())
    }
}

/// Sends outbox messages the request path could not (queue outage, crash after commit).
/// Rows are claimed with SKIP LOCKED, so concurrent relays never send one twice at once;
/// a send that succeeds but is not recorded is sent again later, which the worker absorbs.
/// Every attempt is recorded (committed) before a failed run returns its error.
pub async fn relay_outbox(state: &AppState, min_age_secs: i64) -> Result<RelayReport, RelayError> {
    let Some(queue) = &state.queue else {
        return Err(RelayError::NoQueue);
    };
    let mut report = RelayReport::default();
    let mut last_error = None;
    loop {
        let mut tx = state.db().map_err(|_| RelayError::NoDatabase)?.begin().await?;
        let batch = orders::claim_unsent(&mut tx, min_age_secs, 100).await?;
        if batch.is_empty() {
            break;
        }
        let mut progressed = false;
        for message in &batch {
            match queue.send(&message.payload.to_string()).await {
                Ok(()) => {
                    orders::mark_sent(&mut *tx, message.id).await?;
                    report.sent += 1;
                    progressed = true;
                }
                Err(e) => {
                    orders::mark_failed(&mut *tx, message.id, &bookshelf_http::error_chain(&e)).await?;
                    report.failed += 1;
                    last_error = Some(e);
                }
            }
        }
        tx.commit().await?;
        if !progressed || batch.len() < 100 {
            break;
        }
    }
    if report.sent > 0 {
        tracing::info!(sent = report.sent, "outbox relay sent pending messages");
    }
    // What is still waiting, for the dashboard; a failure to count fails no run.
    match orders::unsent_count(state.db().map_err(|_| RelayError::NoDatabase)?).await {
        Ok(backlog) => state
            .metrics
            .gauge(metrics::OUTBOX_BACKLOG, backlog.max(0) as u64),
        Err(e) => tracing::warn!(error = %bookshelf_http::error_chain(&e), "outbox backlog not counted"),
    }
    match last_error {
        None => Ok(report),
        Some(last) => {
            state
                .metrics
                .count(metrics::OUTBOX_SEND_FAILURES, u64::from(report.failed));
            Err(RelayError::SendFailed {
                sent: report.sent,
                failed: report.failed,
                last,
            })
        }
    }
}
