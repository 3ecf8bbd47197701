//! Requests to one queue, coalesced under concurrency: sends, and the deletes that
//! acknowledge processed messages.
//!
//! A call goes out at once, as its own request, while no other request of its kind to the
//! queue is in flight (`MAX_RUNNING`). Otherwise it waits, and when the request in flight
//! returns, the calls waiting by then go together as one batch request (at most ten
//! entries, SQS's limit), each caller told its own outcome. Nothing is held back longer
//! than one request. A Lambda execution environment serves one request at a time, so there
//! every call is a request of its own, as before; under load (the dev server) one request
//! carries many messages: fewer requests is what moto, which charges per request, needed
//! (scripts/bench-notes.md, "Order pipeline").
//!
//! Each message is still its own SQS message: retried, redelivered and dead-lettered alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bookshelf_batch::{Batcher, Limits, Run};

use crate::{QueueError, SqsQueue};

/// How many requests of one kind to one queue may be in flight at once before the rest
/// wait to go together.
const MAX_RUNNING: usize = 1;
/// A batch request takes at most ten entries.
pub(crate) const MAX_ENTRIES: usize = 10;

pub(crate) type Outcomes = Pin<Box<dyn Future<Output = Vec<Result<(), QueueError>>> + Send>>;
/// One request for the items of several callers: an outcome for each item, in order.
pub(crate) type Together<T> = fn(SqsQueue, Vec<T>) -> Outcomes;

/// Requests of one kind to one queue, through one `bookshelf_batch::Batcher`.
pub(crate) struct Coalesced<T> {
    batcher: Batcher<SqsQueue, T, Result<(), QueueError>>,
}

impl<T: Send + 'static> Coalesced<T> {
    /// `entries`: how many of a batch request's entries an item takes.
    pub(crate) fn new(together: Together<T>, entries: fn(&T) -> usize) -> Self {
        let run: Run<SqsQueue, T, Result<(), QueueError>> =
            Box::new(move |queue, items| together(queue, items));
        let limits = Limits {
            max_running: MAX_RUNNING,
            max_weight: MAX_ENTRIES,
            weight: entries,
        };
        Coalesced {
            batcher: Batcher::new(run, limits),
        }
    }

    /// Runs `item` on `queue`: alone, or in the next batch.
    pub(crate) async fn run(self: &Arc<Self>, queue: &SqsQueue, item: T) -> Result<(), QueueError> {
        self.batcher
            .call(queue, item)
            .await
            .unwrap_or_else(|_| Err(unanswered()))
    }
}

fn unanswered() -> QueueError {
    QueueError::Sqs(Arc::new(std::io::Error::other(
        "a coalesced request was abandoned before it answered",
    )))
}

/// A request's failure, told to every caller whose items it carried.
pub(crate) fn fan_out(e: QueueError, n: usize) -> Vec<Result<(), QueueError>> {
    let cause: Arc<dyn std::error::Error + Send + Sync> = match e {
        QueueError::Sqs(cause) => cause,
        other => Arc::new(other),
    };
    (0..n).map(|_| Err(QueueError::Sqs(cause.clone()))).collect()
}
