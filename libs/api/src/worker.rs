//! The asynchronous side: the orders queue's consumer (`order-processor`), the activities
//! queue's consumer (`feed-fanout`), and the outbox relay (`outbox-relay`) behind both.

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use bookshelf_domain::activity::ActivityMessage;
use bookshelf_domain::OrderMessage;
use bookshelf_storage::activities::{self, Fanout};
use bookshelf_storage::orders::{self, ProcessOutcome};
use bookshelf_storage::outbox::{self, Topic};

use bookshelf_config::metrics;

use crate::AppState;

/// Processes a batch; the ids of messages that failed come back as batch item failures, so
/// only those are delivered again (and, after the redrive limit, dead-lettered). The whole
/// batch is one transaction (`orders::process_many`: a popular book's stock is written
/// once per batch); if that fails, each message is tried on its own, so one poisonous
/// message cannot take the others with it. A message for an order that is no longer
/// pending changes nothing: delivering twice is harmless.
pub async fn process_batch(state: Arc<AppState>, event: SqsEvent) -> SqsBatchResponse {
    // Failures by position, so they are reported in the batch's order.
    let mut failed: Vec<(usize, String)> = Vec::new();
    let mut work: Vec<(usize, String, String, uuid::Uuid)> = Vec::new();
    for (at, record) in event.records.into_iter().enumerate() {
        let id = record.message_id.clone().unwrap_or_default();
        let receives = record
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_default();
        match record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<OrderMessage>(b).ok())
        {
            Some(OrderMessage { order_id }) => work.push((at, id, receives, order_id)),
            None => {
                // Logged without the body: a malformed message may carry anything.
                tracing::error!(message_id = %id, receives, "malformed order message; it will reach the DLQ");
                failed.push((at, id));
            }
        }
    }
    let ids: Vec<uuid::Uuid> = work.iter().map(|w| w.3).collect();
    let outcomes = match ids.is_empty() {
        true => Vec::new(),
        false => decide(&state, &ids).await,
    };
    for ((at, id, receives, order_id), outcome) in work.into_iter().zip(outcomes) {
        let failure = match outcome {
            Ok(ProcessOutcome::Confirmed(shelved)) => {
                tracing::info!(message_id = %id, %order_id, shelved = shelved.len(), "order confirmed");
                state.metrics.count(metrics::ORDERS_CONFIRMED, 1);
                crate::publish::send(&state, Topic::Activities, &shelved).await;
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
        };
        if failure {
            failed.push((at, id));
        }
    }
    failed.sort_by_key(|(at, _)| *at);
    batch_response(failed.into_iter().map(|(_, id)| id))
}

/// The answer of an SQS consumer (event source mapping with `ReportBatchItemFailures`):
/// the messages that failed, by id, to come back after their visibility timeout; the
/// others are deleted. Every consumer answers through this.
pub(crate) fn batch_response(failed: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    response
}

/// The batch's outcomes: in one transaction, or, if that fails, each order in its own.
async fn decide(
    state: &AppState,
    ids: &[uuid::Uuid],
) -> Vec<Result<ProcessOutcome, bookshelf_http::ApiError>> {
    match process_many(state, ids).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::warn!(orders = ids.len(), error = %bookshelf_http::error_chain(&e), "batch failed; processing its orders one by one");
            let mut each = Vec::with_capacity(ids.len());
            for id in ids {
                let alone = process_many(state, std::slice::from_ref(id)).await;
                each.push(alone.and_then(|outcomes| {
                    outcomes
                        .into_iter()
                        .next()
                        .ok_or_else(|| bookshelf_http::ApiError::Internal("no outcome for the order".into()))
                }));
            }
            each
        }
    }
}

/// Followers per fan-out statement: 10,000 followers are ten short statements (tens of
/// milliseconds each, measured by `make bench`) rather than one long one, and a failure
/// part-way repeats only what the primary key then skips.
pub const FANOUT_BATCH: i64 = 1_000;

/// Statements one message's step may run: 10,000 followers at most, seconds of work
/// whatever the follower count; the rest goes on in a message of its own, so no invocation
/// nears its timeout and a retry repeats one step, not the whole fan-out.
pub const FANOUT_STEP_BATCHES: u32 = 10;

/// The feed queue's consumer: copies each activity into its actor's followers' feeds.
/// Idempotent (a redelivered message adds no row); failures come back as batch item
/// failures, to be retried and, after the redrive limit, dead-lettered.
pub async fn fan_out_batch(state: Arc<AppState>, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let message = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<ActivityMessage>(b).ok());
        let failed = match message {
            None => {
                tracing::error!(message_id = %id, "malformed activity message; it will reach the DLQ");
                true
            }
            Some(ActivityMessage { activity_id, after }) => {
                // Boxed: the step's future (fan-out, outbox, queue send) is deep enough to
                // overflow the compiler's type-layout limit inline.
                match Box::pin(fan_out_step(&state, activity_id, after)).await {
                    Ok(Fanout::Delivered {
                        followers,
                        added,
                        batches,
                        rest,
                    }) => {
                        let more = rest.is_some();
                        tracing::info!(message_id = %id, %activity_id, followers, added, batches, more, "activity fanned out");
                        false
                    }
                    Ok(Fanout::Gone) => {
                        // Its actor (or book, or subject) was deleted: there is nothing to show.
                        tracing::info!(message_id = %id, %activity_id, "activity gone; nothing to fan out");
                        false
                    }
                    Err(e) => {
                        tracing::warn!(message_id = %id, %activity_id, error = %bookshelf_http::error_chain(&e), "fan-out failed; will retry");
                        true
                    }
                }
            }
        };
        if failed {
            failures.push(id);
        }
    }
    batch_response(failures)
}

/// One bounded step of a fan-out, and the message that continues it when followers are
/// left (written to the outbox before this message is acknowledged: a crash in between
/// repeats the step, which adds nothing, and hands the rest on again).
async fn fan_out_step(
    state: &AppState,
    activity: uuid::Uuid,
    after: Option<bookshelf_domain::FollowerCursor>,
) -> Result<Fanout, bookshelf_http::ApiError> {
    let db = state.db()?;
    let outcome = activities::fan_out(db, activity, after, FANOUT_BATCH, FANOUT_STEP_BATCHES).await?;
    if let Fanout::Delivered { rest: Some(rest), .. } = outcome {
        let next = activities::continue_fan_out(db, activity, rest).await?;
        crate::publish::send(state, bookshelf_storage::outbox::Topic::Activities, &next).await;
    }
    Ok(outcome)
}

async fn process_many(
    state: &AppState,
    ids: &[uuid::Uuid],
) -> Result<Vec<ProcessOutcome>, bookshelf_http::ApiError> {
    Ok(orders::process_many(state.db()?, ids).await?)
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

/// Sends outbox messages the request path could not (queue outage, crash after commit),
/// for every topic whose queue this function has. Rows are claimed with SKIP LOCKED, so
/// concurrent relays never send one twice at once; a send that succeeds but is not
/// recorded is sent again later, which the consumers absorb. Every attempt is recorded
/// (committed) before a failed run returns its error.
pub async fn relay_outbox(state: &AppState, min_age_secs: i64) -> Result<RelayReport, RelayError> {
    let topics: Vec<(Topic, &bookshelf_queue::Queue)> = Topic::ALL
        .into_iter()
        .filter_map(|t| {
            let queue = match t {
                Topic::Orders => state.queue.as_ref(),
                Topic::Activities => state.activity_queue.as_ref(),
            };
            queue.map(|q| (t, q))
        })
        .collect();
    if topics.is_empty() {
        return Err(RelayError::NoQueue);
    }
    let db = state.db().map_err(|_| RelayError::NoDatabase)?;
    finish_fan_outs(db).await;
    let mut report = RelayReport::default();
    let mut last_error = None;
    let mut backlog = 0;
    for (topic, queue) in topics {
        loop {
            let mut tx = db.begin().await?;
            let batch = outbox::claim_unsent(&mut tx, topic, min_age_secs, 100).await?;
            if batch.is_empty() {
                break;
            }
            let mut progressed = false;
            // Ten a request, as SQS takes them; each message's outcome is its own.
            for chunk in batch.chunks(10) {
                let bodies: Vec<String> = chunk.iter().map(|m| m.payload.to_string()).collect();
                let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
                let outcomes: Vec<Result<(), String>> = match queue.send_batch(&refs).await {
                    Ok(outcomes) => outcomes
                        .into_iter()
                        .map(|o| {
                            o.map_err(|e| {
                                let error = bookshelf_http::error_chain(&e);
                                last_error = Some(e);
                                error
                            })
                        })
                        .collect(),
                    Err(e) => {
                        let error = bookshelf_http::error_chain(&e);
                        last_error = Some(e);
                        vec![Err(error); chunk.len()]
                    }
                };
                for (message, outcome) in chunk.iter().zip(outcomes) {
                    match outcome {
                        Ok(()) => {
                            outbox::mark_sent(&mut *tx, message.id).await?;
                            report.sent += 1;
                            progressed = true;
                        }
                        Err(error) => {
                            outbox::mark_failed(&mut *tx, message.id, &error).await?;
                            report.failed += 1;
                        }
                    }
                }
            }
            tx.commit().await?;
            if !progressed || batch.len() < 100 {
                break;
            }
        }
        // What is still waiting, for the dashboard; a failure to count fails no run.
        match outbox::unsent_count(db, topic).await {
            Ok(n) => backlog += n.max(0) as u64,
            Err(e) => {
                tracing::warn!(topic = topic.as_str(), error = %bookshelf_http::error_chain(&e), "outbox backlog not counted")
            }
        }
    }
    if report.sent > 0 {
        tracing::info!(sent = report.sent, "outbox relay sent pending messages");
    }
    state.metrics.gauge(metrics::OUTBOX_BACKLOG, backlog);
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

/// Finishes the change-feed fan-outs of edited books, and the re-marking of feed rows after a
/// visibility change, that their request left unfinished (it crashed, or the database failed
/// it mid-way). Never fails the relay's run.
async fn finish_fan_outs(db: &bookshelf_storage::DbPool) {
    let books = match bookshelf_storage::changes::stalled_fan_outs(db, 10).await {
        Ok(books) => books,
        Err(e) => {
            tracing::warn!(error = %bookshelf_http::error_chain(&e), "unfinished fan-outs not read");
            return;
        }
    };
    for book in books {
        match bookshelf_storage::changes::fan_out_book(db, book).await {
            Ok(()) => tracing::info!(book_id = %book, "unfinished entry fan-out finished"),
            Err(e) => {
                tracing::warn!(book_id = %book, error = %bookshelf_http::error_chain(&e), "entry fan-out still unfinished")
            }
        }
    }
    let actors = match bookshelf_storage::activities::unsettled_visibility(db, 10).await {
        Ok(actors) => actors,
        Err(e) => {
            tracing::warn!(error = %bookshelf_http::error_chain(&e), "unsettled feed visibility not read");
            return;
        }
    };
    for actor in actors {
        match bookshelf_storage::activities::settle_visibility(db, actor).await {
            Ok(()) => tracing::info!(user_id = %actor, "unfinished feed re-marking finished"),
            Err(e) => {
                tracing::warn!(user_id = %actor, error = %bookshelf_http::error_chain(&e), "feed re-marking still unfinished")
            }
        }
    }
}
