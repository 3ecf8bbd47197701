//! Sends to one queue, coalesced under concurrency.
//!
//! A send goes out at once, as its own SendMessage, while no other send to the queue is in
//! flight (`MAX_RUNNING`). Otherwise it waits, and when the request in flight returns,
//! the sends waiting by then go together as one SendMessageBatch (at most ten, SQS's
//! limit), each told its own outcome. Nothing is held back longer than one request: a
//! Lambda execution environment serves one request at a time, so there every send is a
//! SendMessage of its own, as before; under load (the dev server) one request carries many
//! messages. moto answers a SendMessageBatch of ten for about the CPU of two SendMessages
//! (scripts/bench-notes.md), and its per-request cost is what bounded the pipeline on it.
//!
//! Each message is still its own SQS message: retried, redelivered and dead-lettered alone.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::{QueueError, SqsQueue};

/// How many send requests to one queue may be in flight at once before the rest wait to go
/// together.
const MAX_RUNNING: usize = 1;
/// SendMessageBatch takes at most ten entries.
const MAX_BATCH: usize = 10;

type Reply = oneshot::Sender<Result<(), QueueError>>;

#[derive(Default)]
pub(crate) struct Sends {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: usize,
    waiting: Vec<(String, Reply)>,
}

impl Sends {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sends `body` on `queue`, alone or in the next batch.
pub(crate) async fn send(queue: &SqsQueue, body: &str) -> Result<(), QueueError> {
    let waiting = {
        let mut state = queue.sends.lock();
        if state.running < MAX_RUNNING {
            state.running += 1;
            None
        } else {
            let (reply, answer) = oneshot::channel();
            state.waiting.push((body.to_owned(), reply));
            Some(answer)
        }
    };
    match waiting {
        None => {
            // Held across the request, so that a cancelled caller still hands its turn on.
            let _turn = Turn { queue: queue.clone() };
            queue.send_one(body).await
        }
        Some(answer) => answer.await.unwrap_or_else(|_| {
            Err(QueueError::Sqs(Arc::new(std::io::Error::other(
                "a coalesced send was abandoned before it ran",
            ))))
        }),
    }
}

/// The turn of the request in flight. When it ends, the sends that waited meanwhile go as
/// one batch on the same turn, or the turn is given back.
struct Turn {
    queue: SqsQueue,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let batch: Vec<(String, Reply)> = {
            let mut state = self.queue.sends.lock();
            if state.waiting.is_empty() {
                state.running -= 1;
                return;
            }
            let n = state.waiting.len().min(MAX_BATCH);
            state.waiting.drain(..n).collect()
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run on (shutting down): the waiters hear that theirs was
            // abandoned when their replies drop with `batch`.
            self.queue.sends.lock().running -= 1;
            return;
        };
        runtime.spawn(send_batch(self.queue.clone(), batch));
    }
}

async fn send_batch(queue: SqsQueue, batch: Vec<(String, Reply)>) {
    let _turn = Turn { queue: queue.clone() };
    let (bodies, replies): (Vec<String>, Vec<Reply>) = batch.into_iter().unzip();
    let outcomes = match bodies.as_slice() {
        [one] => vec![queue.send_one(one).await],
        many => {
            let refs: Vec<&str> = many.iter().map(String::as_str).collect();
            match queue.send_batch(&refs).await {
                Ok(outcomes) => outcomes,
                // The request failed as a whole: every message in it failed with it.
                Err(e) => {
                    let cause: Arc<dyn std::error::Error + Send + Sync> = match e {
                        QueueError::Sqs(cause) => cause,
                        other => Arc::new(other),
                    };
                    refs.iter().map(|_| Err(QueueError::Sqs(cause.clone()))).collect()
                }
            }
        }
    };
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // A caller that went away no longer wants its answer.
        let _ = reply.send(outcome);
    }
}
