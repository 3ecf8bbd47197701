//! The asynchronous side of orders: the SQS batch handler (`order-processor`) and the
//! outbox relay (`outbox-relay`).

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use bookshelf_domain::OrderMessage;
use bookshelf_storage::orders::{self, ProcessOutcome};

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
            Some(OrderMessage { order_id }) => match orders::process(&state.db, order_id).await {
                Ok(ProcessOutcome::Confirmed) => {
                    tracing::info!(message_id = %id, %order_id, "order confirmed");
                    false
                }
                Ok(ProcessOutcome::Rejected) => {
                    tracing::info!(message_id = %id, %order_id, reason = "insufficient_stock", "order rejected");
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
                    tracing::warn!(message_id = %id, %order_id, receives, error = %e, "order processing failed; will retry");
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

/// What one relay run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayReport {
    pub sent: u32,
    pub failed: u32,
}

/// Sends outbox messages the request path could not (queue outage, crash after commit).
/// Rows are claimed with SKIP LOCKED, so concurrent relays never send one twice at once;
/// a send that succeeds but is not recorded is sent again later, which the worker absorbs.
pub async fn relay_outbox(state: &AppState, min_age_secs: i64) -> Result<RelayReport, String> {
    let Some(queue) = &state.queue else {
        return Err("no queue is configured".into());
    };
    let mut report = RelayReport::default();
    loop {
        let mut tx = state.db.begin().await.map_err(|e| e.to_string())?;
        let batch = orders::claim_unsent(&mut tx, min_age_secs, 100)
            .await
            .map_err(|e| e.to_string())?;
        if batch.is_empty() {
            return Ok(report);
        }
        let mut progressed = false;
        for (outbox_id, payload) in &batch {
            match queue.send(&payload.to_string()).await {
                Ok(()) => {
                    orders::mark_sent(&mut *tx, *outbox_id)
                        .await
                        .map_err(|e| e.to_string())?;
                    report.sent += 1;
                    progressed = true;
                }
                Err(e) => {
                    orders::mark_failed(&mut *tx, *outbox_id, &e.to_string())
                        .await
                        .map_err(|e| e.to_string())?;
                    report.failed += 1;
                }
            }
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        if !progressed || batch.len() < 100 {
            if report.failed > 0 {
                tracing::warn!(
                    sent = report.sent,
                    failed = report.failed,
                    "outbox relay could not send everything"
                );
            } else if report.sent > 0 {
                tracing::info!(sent = report.sent, "outbox relay sent pending messages");
            }
            return Ok(report);
        }
    }
}
