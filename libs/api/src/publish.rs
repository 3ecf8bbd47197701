//! The fast path of the outbox: right after a transaction commits, its request sends the
//! messages it wrote. Nothing here can lose a message: a send that fails (or is never
//! attempted) leaves the row unsent, and the outbox relay sends it later.

use bookshelf_storage::outbox::{self, OutboxMessage, Topic};
use bookshelf_storage::DbPool;

use crate::AppState;

/// Sends `pending` on `topic`'s queue and records each success; failures are logged and
/// recorded for the relay. Never fails the request: its change is already committed.
pub async fn send(state: &AppState, topic: Topic, pending: &[OutboxMessage]) {
    if pending.is_empty() {
        return;
    }
    let queue = match topic {
        Topic::Orders => state.queue.as_ref(),
        Topic::Activities => state.activity_queue.as_ref(),
    };
    let (Some(queue), Ok(db)) = (queue, state.db()) else {
        tracing::warn!(
            topic = topic.as_str(),
            messages = pending.len(),
            "no queue configured; the outbox relay will send"
        );
        return;
    };
    // SQS takes ten messages a request: an order batch that shelves ten books sends once.
    for chunk in pending.chunks(10) {
        let bodies: Vec<String> = chunk.iter().map(|m| m.payload.to_string()).collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let outcome = match refs.as_slice() {
            [one] => queue.send(one).await.map(|()| vec![Ok(())]),
            many => queue.send_batch(many).await,
        };
        let outcomes = match outcome {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let error = bookshelf_http::error_chain(&e);
                tracing::warn!(topic = topic.as_str(), messages = chunk.len(), %error, "queue send failed; the outbox relay will retry");
                for m in chunk {
                    record_failure(db, topic, m, &error).await;
                }
                continue;
            }
        };
        for (m, outcome) in chunk.iter().zip(outcomes) {
            match outcome {
                Ok(()) => {
                    if let Err(e) = bookshelf_storage::outbox::mark_sent_coalesced(db, m.id).await {
                        let error = bookshelf_http::error_chain(&e);
                        tracing::warn!(topic = topic.as_str(), outbox_id = m.id, %error, "sent, but not marked sent; the relay will send again");
                    }
                }
                Err(e) => {
                    let error = bookshelf_http::error_chain(&e);
                    tracing::warn!(topic = topic.as_str(), outbox_id = m.id, %error, "queue send failed; the outbox relay will retry");
                    record_failure(db, topic, m, &error).await;
                }
            }
        }
    }
}

/// Only bookkeeping: the relay retries the row whether or not this is recorded.
async fn record_failure(db: &DbPool, topic: Topic, m: &OutboxMessage, error: &str) {
    if let Err(e) = outbox::mark_failed(db, m.id, error).await {
        let error = bookshelf_http::error_chain(&e);
        tracing::warn!(topic = topic.as_str(), outbox_id = m.id, %error, "send failure not recorded");
    }
}
