//! What stands in for Lambda's SQS event source mappings and the relay's schedule: polls
//! each queue (batches of up to 10, long polling), hands each batch to the same handler as
//! deployed (`order-processor` for orders, `feed-fanout` for activities) as an SQS event,
//! deletes what succeeded and leaves failures to reappear after the visibility timeout
//! (and to reach the DLQ after the redrive limit).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use bookshelf_api::worker::{fan_out_batch, process_batch, relay_outbox};
use bookshelf_api::AppState;
use bookshelf_queue::{Queue, QueueError, Received};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub fn sqs_event(messages: &[Received]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = Some(m.message_id.clone());
            r.receipt_handle = Some(m.receipt.clone());
            r.body = Some(m.body.clone());
            r.attributes
                .insert("ApproximateReceiveCount".into(), m.receive_count.to_string());
            r.event_source = Some("aws:sqs".into());
            r
        })
        .collect();
    event
}

/// Which consumer a queue feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// `order-processor`.
    Orders,
    /// `feed-fanout`.
    Feed,
    /// `import-worker`.
    Imports,
    /// `webhook-sender`.
    WebhookSender,
    /// `webhook-recorder`.
    WebhookRecorder,
}

/// One poll of the orders queue: receive, process, delete the successes. Returns how many
/// were received.
pub async fn poll_once(state: &Arc<AppState>, queue: &Queue, wait: Duration) -> Result<usize, QueueError> {
    poll(state, queue, wait, Consumer::Orders).await
}

/// One poll of `queue` for `consumer`.
pub async fn poll(
    state: &Arc<AppState>,
    queue: &Queue,
    wait: Duration,
    consumer: Consumer,
) -> Result<usize, QueueError> {
    let messages = queue.receive(10, wait).await?;
    if messages.is_empty() {
        return Ok(0);
    }
    let event = sqs_event(&messages);
    let response = match consumer {
        Consumer::Orders => process_batch(state.clone(), event).await,
        Consumer::Feed => fan_out_batch(state.clone(), event).await,
        Consumer::Imports => bookshelf_api::imports::import_batch(state.clone(), event).await,
        Consumer::WebhookSender => bookshelf_api::webhooks::send_batch(state.clone(), event).await,
        Consumer::WebhookRecorder => bookshelf_api::webhooks::record_batch(state.clone(), event).await,
    };
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let done: Vec<&str> = messages
        .iter()
        .filter(|m| !failed.contains(m.message_id.as_str()))
        .map(|m| m.receipt.as_str())
        .collect();
    queue.delete_batch(&done).await?;
    Ok(messages.len())
}

/// How many batches each consumer works on at once: deployed, the event source mapping's
/// `MaximumConcurrency` (that many execution environments, each with one batch in hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pollers {
    pub orders: usize,
    pub feed: usize,
    pub imports: usize,
}

impl Pollers {
    /// As the template deploys them (its parameters' defaults); 1 for a consumer it lacks.
    pub fn from_template(template: &crate::Template) -> Pollers {
        let of = |f: &str| template.queue_concurrency.get(f).copied().unwrap_or(1).max(1);
        Pollers {
            orders: of("order-processor"),
            feed: of("feed-fanout"),
            imports: of("import-worker"),
        }
    }
}

/// Runs `pollers` pollers per queue the state has, and the relay, until `stop` turns true,
/// as independent loops.
///
/// They must not share one `select!`: a relay tick would cancel a poll in flight, and a
/// batch already received but not yet acknowledged would stay invisible for the whole
/// visibility timeout before being delivered again (scripts/bench-notes.md, "Order
/// pipeline": it once held the SQS pipeline to a few orders a second).
pub fn spawn(
    state: Arc<AppState>,
    relay_every: Duration,
    pollers: Pollers,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let pollers: Vec<_> = [
            (state.queue.clone(), Consumer::Orders, pollers.orders),
            (state.activity_queue.clone(), Consumer::Feed, pollers.feed),
            (state.import_queue.clone(), Consumer::Imports, pollers.imports),
            (state.webhooks.deliveries.clone(), Consumer::WebhookSender, 2),
            (state.webhooks.results.clone(), Consumer::WebhookRecorder, 1),
        ]
        .into_iter()
        .filter_map(|(queue, consumer, n)| queue.map(|q| (q, consumer, n)))
        .flat_map(|(queue, consumer, n)| std::iter::repeat_n((queue, consumer), n))
        .map(|(queue, consumer)| {
            tokio::spawn(until_stopped(
                stop.clone(),
                poll_forever(state.clone(), queue, consumer),
            ))
        })
        .collect();
        // What webhook-dispatch's schedule does deployed, every 200 ms: locally an event
        // reaches its receiver within a moment of the request that made it.
        let dispatcher = state.webhooks.deliveries.is_some().then(|| {
            let state = state.clone();
            tokio::spawn(until_stopped(stop.clone(), async move {
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = bookshelf_api::webhooks::dispatch(&state).await {
                        tracing::warn!(error = %bookshelf_http::error_chain(&e), "webhook dispatch failed");
                    }
                }
            }))
        });
        let pollers: Vec<_> = pollers.into_iter().chain(dispatcher).collect();
        if state.queue.is_none() && state.activity_queue.is_none() {
            tracing::warn!("no queue: orders stay pending");
            for p in pollers {
                let _ = p.await;
            }
            return;
        }
        let relay = tokio::spawn(until_stopped(stop.clone(), {
            let state = state.clone();
            async move {
                let mut tick = tokio::time::interval(relay_every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = relay_outbox(&state, relay_every.as_secs() as i64).await {
                        tracing::warn!(error = %bookshelf_http::error_chain(&e), "outbox relay failed");
                    }
                }
            }
        }));
        for p in pollers {
            let _ = p.await;
        }
        let _ = relay.await;
    })
}

async fn poll_forever(state: Arc<AppState>, queue: Queue, consumer: Consumer) {
    loop {
        if let Err(e) = poll(&state, &queue, Duration::from_secs(1), consumer).await {
            tracing::warn!(?consumer, error = %bookshelf_http::error_chain(&e), "queue poll failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Runs `work` until `stop` turns true (or its sender is gone). Only shutdown cancels it.
async fn until_stopped(mut stop: watch::Receiver<bool>, work: impl std::future::Future<Output = ()>) {
    tokio::select! {
        _ = async { while stop.changed().await.is_ok() && !*stop.borrow() {} } => {}
        _ = work => {}
    }
}
