//! Calls coalesced under concurrency: the one mechanism behind every batching path (the
//! storage layer's point reads and idempotent marks, the SQS sends and acknowledgements).
//!
//! A call runs at once, as a batch of its own, while fewer than `max_running` batches of
//! its kind are in flight. Otherwise it waits; when a batch in flight ends, the calls that
//! waited meanwhile go together as the next batch, on the same turn, as many as
//! `max_weight` allows, each caller told its own outcome. Nothing is held back longer than
//! one batch. Alone (a Lambda environment serves one request at a time) every call is a
//! batch of one, run in the caller's task; under load (the dev server) one batch serves many.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::future::BoxFuture;
use tokio::sync::oneshot;

/// Runs one batch on a context (a pool, a queue): an outcome for each item, in order.
pub type Run<C, T, R> = Box<dyn Fn(C, Vec<T>) -> BoxFuture<'static, Vec<R>> + Send + Sync>;

/// The call's batch never answered it: the runtime was shutting down, or the batch gave
/// fewer outcomes than it carried items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a batched call was abandoned before it was answered")]
pub struct Abandoned;

/// How calls are grouped.
#[derive(Clone, Copy)]
pub struct Limits<T> {
    /// Batches of this kind in flight at once before calls wait (at least one).
    pub max_running: usize,
    /// What one batch may carry, in `weight`s (a call of any weight always fits alone).
    pub max_weight: usize,
    /// What a call weighs (SQS: the entries its item takes).
    pub weight: fn(&T) -> usize,
}

pub struct Batcher<C, T, R> {
    shared: Arc<Shared<C, T, R>>,
}

struct Shared<C, T, R> {
    run: Run<C, T, R>,
    limits: Limits<T>,
    state: Mutex<State<T, R>>,
}

struct State<T, R> {
    running: usize,
    waiting: Vec<(T, oneshot::Sender<R>)>,
}

impl<C, T, R> Shared<C, T, R> {
    fn lock(&self) -> MutexGuard<'_, State<T, R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C, T, R> Batcher<C, T, R>
where
    C: Clone + Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    pub fn new(run: Run<C, T, R>, limits: Limits<T>) -> Self {
        let limits = Limits {
            max_running: limits.max_running.max(1),
            ..limits
        };
        Batcher {
            shared: Arc::new(Shared {
                run,
                limits,
                state: Mutex::new(State {
                    running: 0,
                    waiting: Vec::new(),
                }),
            }),
        }
    }

    /// Runs `item` on `ctx`: alone, or in the next batch.
    pub async fn call(&self, ctx: &C, item: T) -> Result<R, Abandoned> {
        let waiting = {
            let mut state = self.shared.lock();
            if state.running < self.shared.limits.max_running {
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
                // Held across the batch, so that a cancelled caller still hands its turn on.
                let _turn = Turn {
                    shared: self.shared.clone(),
                    ctx: ctx.clone(),
                };
                let mut outcomes = (self.shared.run)(ctx.clone(), vec![item]).await;
                outcomes.pop().ok_or(Abandoned)
            }
            Err(answer) => answer.await.map_err(|_| Abandoned),
        }
    }
}

/// One of the `max_running` turns. When it ends, the calls that waited meanwhile run as one
/// batch on the same turn, or the turn is given back.
struct Turn<C, T, R>
where
    C: Clone + Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    shared: Arc<Shared<C, T, R>>,
    ctx: C,
}

impl<C, T, R> Drop for Turn<C, T, R>
where
    C: Clone + Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    fn drop(&mut self) {
        let batch: Vec<(T, oneshot::Sender<R>)> = {
            let mut state = self.shared.lock();
            if state.waiting.is_empty() {
                state.running -= 1;
                return;
            }
            // The oldest first, as many as fit (always at least one).
            let limits = &self.shared.limits;
            let (mut n, mut weight) = (0, 0);
            for (item, _) in &state.waiting {
                weight += (limits.weight)(item);
                if n > 0 && weight > limits.max_weight {
                    break;
                }
                n += 1;
            }
            state.waiting.drain(..n).collect()
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run on (shutting down): the waiters hear that theirs was
            // abandoned when their replies drop with `batch`.
            self.shared.lock().running -= 1;
            return;
        };
        runtime.spawn(run_batch(self.shared.clone(), self.ctx.clone(), batch));
    }
}

async fn run_batch<C, T, R>(shared: Arc<Shared<C, T, R>>, ctx: C, batch: Vec<(T, oneshot::Sender<R>)>)
where
    C: Clone + Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    let _turn = Turn {
        shared: shared.clone(),
        ctx: ctx.clone(),
    };
    let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
    let outcomes = (shared.run)(ctx, items).await;
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // A caller that went away no longer wants its answer.
        let _ = reply.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn limits(max_weight: usize) -> Limits<u32> {
        Limits {
            max_running: 1,
            max_weight,
            weight: |_| 1,
        }
    }

    /// Doubles each item; counts batches and remembers their sizes.
    fn doubler(sizes: Arc<Mutex<Vec<usize>>>) -> Run<(), u32, u32> {
        Box::new(move |(), items: Vec<u32>| {
            let sizes = sizes.clone();
            Box::pin(async move {
                sizes.lock().unwrap().push(items.len());
                tokio::time::sleep(Duration::from_millis(20)).await;
                items.into_iter().map(|i| i * 2).collect()
            })
        })
    }

    #[tokio::test]
    async fn alone_a_call_is_its_own_batch_and_under_load_waiters_go_together() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let batcher = Arc::new(Batcher::new(doubler(sizes.clone()), limits(4)));
        assert_eq!(batcher.call(&(), 21).await, Ok(42));
        assert_eq!(*sizes.lock().unwrap(), [1]);

        sizes.lock().unwrap().clear();
        let calls: Vec<_> = (0..9u32)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.call(&(), i).await) })
            })
            .collect();
        for call in calls {
            let (i, outcome) = call.await.unwrap();
            assert_eq!(outcome, Ok(i * 2), "each caller gets its own outcome");
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 9);
        assert!(sizes.len() < 9, "waiters went together: {sizes:?}");
        assert!(
            sizes.iter().all(|s| *s <= 4),
            "no batch over max_weight: {sizes:?}"
        );
    }

    #[tokio::test]
    async fn a_cancelled_caller_still_hands_its_turn_on() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let batcher = Arc::new(Batcher::new(doubler(sizes), limits(10)));
        let first = {
            let b = batcher.clone();
            tokio::spawn(async move { b.call(&(), 1).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = {
            let b = batcher.clone();
            tokio::spawn(async move { b.call(&(), 2).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        first.abort();
        assert_eq!(
            second.await.unwrap(),
            Ok(4),
            "the waiter ran after the cancelled turn"
        );
        assert_eq!(batcher.call(&(), 3).await, Ok(6), "and the turn came back");
    }

    #[tokio::test]
    async fn a_batch_that_answers_too_few_leaves_the_rest_abandoned() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let run: Run<(), u32, u32> = Box::new(move |(), _items| {
            counted.fetch_add(1, Ordering::Relaxed);
            Box::pin(async { Vec::new() })
        });
        let batcher = Batcher::new(run, limits(10));
        assert_eq!(batcher.call(&(), 1).await, Err(Abandoned));
        assert_eq!(runs.load(Ordering::Relaxed), 1);
    }
}
