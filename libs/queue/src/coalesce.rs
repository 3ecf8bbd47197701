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
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::{QueueError, SqsQueue};

/// How many requests of one kind to one queue may be in flight at once before the rest
/// wait to go together.
const MAX_RUNNING: usize = 1;
/// A batch request takes at most ten entries.
pub(crate) const MAX_ENTRIES: usize = 10;

pub(crate) type Outcomes = Pin<Box<dyn Future<Output = Vec<Result<(), QueueError>>> + Send>>;
/// One request for the items of several callers: an outcome for each item, in order.
pub(crate) type Together<T> = fn(SqsQueue, Vec<T>) -> Outcomes;

type Reply = oneshot::Sender<Result<(), QueueError>>;

pub(crate) struct Coalesced<T> {
    together: Together<T>,
    /// How many of a batch's entries an item takes (at most `MAX_ENTRIES`).
    entries: fn(&T) -> usize,
    state: Mutex<State<T>>,
}

struct State<T> {
    running: usize,
    waiting: Vec<(T, Reply)>,
}

impl<T: Send + 'static> Coalesced<T> {
    pub(crate) fn new(together: Together<T>, entries: fn(&T) -> usize) -> Self {
        Coalesced {
            together,
            entries,
            state: Mutex::new(State {
                running: 0,
                waiting: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `item` on `queue`: alone, or in the next batch.
    pub(crate) async fn run(self: &Arc<Self>, queue: &SqsQueue, item: T) -> Result<(), QueueError> {
        let waiting = {
            let mut state = self.lock();
            if state.running < MAX_RUNNING {
                state.running += 1;
                Ok(item)
            } else {
                let (reply, answer) = oneshot::channel();
                state.waiting.push((item, reply));
                Err(answer)
            }
        };
        match waiting {
            Ok(item) => {
                // Held across the request, so that a cancelled caller still hands its turn on.
                let _turn = Turn {
                    coalesced: self.clone(),
                    queue: queue.clone(),
                };
                let mut outcomes = (self.together)(queue.clone(), vec![item]).await;
                outcomes.pop().unwrap_or_else(|| Err(unanswered()))
            }
            Err(answer) => answer.await.unwrap_or_else(|_| Err(unanswered())),
        }
    }
}

fn unanswered() -> QueueError {
    QueueError::Sqs(Arc::new(std::io::Error::other(
        "a coalesced request was abandoned before it answered",
    )))
}

/// The turn of the request in flight. When it ends, the calls that waited meanwhile go as
/// one batch on the same turn, or the turn is given back.
struct Turn<T: Send + 'static> {
    coalesced: Arc<Coalesced<T>>,
    queue: SqsQueue,
}

impl<T: Send + 'static> Drop for Turn<T> {
    fn drop(&mut self) {
        let batch: Vec<(T, Reply)> = {
            let mut state = self.coalesced.lock();
            if state.waiting.is_empty() {
                state.running -= 1;
                return;
            }
            // The oldest first, as many as fit (always at least one).
            let (mut n, mut entries) = (0, 0);
            for (item, _) in &state.waiting {
                entries += (self.coalesced.entries)(item);
                if n > 0 && entries > MAX_ENTRIES {
                    break;
                }
                n += 1;
            }
            state.waiting.drain(..n).collect()
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run on (shutting down): the waiters hear that theirs was
            // abandoned when their replies drop with `batch`.
            self.coalesced.lock().running -= 1;
            return;
        };
        runtime.spawn(run_batch(self.coalesced.clone(), self.queue.clone(), batch));
    }
}

async fn run_batch<T: Send + 'static>(coalesced: Arc<Coalesced<T>>, queue: SqsQueue, batch: Vec<(T, Reply)>) {
    let _turn = Turn {
        coalesced: coalesced.clone(),
        queue: queue.clone(),
    };
    let (items, replies): (Vec<T>, Vec<Reply>) = batch.into_iter().unzip();
    let outcomes = (coalesced.together)(queue, items).await;
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // A caller that went away no longer wants its answer.
        let _ = reply.send(outcome);
    }
}

/// A request's failure, told to every caller whose items it carried.
pub(crate) fn fan_out(e: QueueError, n: usize) -> Vec<Result<(), QueueError>> {
    let cause: Arc<dyn std::error::Error + Send + Sync> = match e {
        QueueError::Sqs(cause) => cause,
        other => Arc::new(other),
    };
    (0..n).map(|_| Err(QueueError::Sqs(cause.clone()))).collect()
}
