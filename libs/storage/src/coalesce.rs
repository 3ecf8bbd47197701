//! Point reads by key, coalesced under concurrency; and one write that is just as safe to
//! coalesce, marking outbox rows sent (idempotent, keyed by row: `outbox::SentMarks`).
//!
//! A read runs at once, as its own query, while no other read of its kind is at the
//! database (`MAX_RUNNING`). Otherwise it waits, and when the running read finishes, every
//! read waiting by then goes to the database together as one query (`WHERE key = ANY(...)`,
//! written as below).
//! Nothing is cached: every read is answered by a query that started after the read was
//! asked for, so it sees every write committed before that. Alone (a Lambda execution
//! environment serves one request at a time) a read is one query, run in the caller's task;
//! under load (the dev server) one round trip serves many requests, which saves the
//! database most of its per-query work and both sides a wake-up per request.
//!
//! A batch query names its keys as `= ANY((SELECT $1::uuid[])::uuid[])`, not `= ANY($1)`.
//! With the array in plain sight PostgreSQL plans every execution afresh for the array it is
//! given (its plan cache never finds the generic plan as cheap, because that one assumes a
//! longer array), and planning was a third of the query's cost. Behind a scalar subquery
//! the planner cannot see the array, so custom and generic plans cost the same and the
//! cache keeps the generic one (the same index scan) after five executions
//! (scripts/bench-notes.md, "Request path").

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::{DbPool, Result, StorageError};

/// The rows of some keys: those that exist, with their keys, in any order.
pub type Loaded<K, V> = BoxFuture<'static, Result<Vec<(K, V)>>>;
/// Loads the rows of some keys.
pub type LoadMany<K, V> = fn(DbPool, Vec<K>) -> Loaded<K, V>;

/// How many reads of one kind may be at the database at once before the rest wait to go
/// together: one measured best (scripts/bench-notes.md, "Request path").
const MAX_RUNNING: usize = 1;
/// At most this many keys in one query.
const MAX_BATCH: usize = 128;

type Reply<V> = oneshot::Sender<Result<Option<V>>>;

pub struct Coalescer<K, V> {
    shared: Arc<Shared<K, V>>,
}

struct Shared<K, V> {
    load: LoadMany<K, V>,
    max_running: usize,
    state: Mutex<State<K, V>>,
}

struct State<K, V> {
    running: usize,
    waiting: Vec<(K, Reply<V>)>,
}

impl<K, V> Coalescer<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    pub fn new(load: LoadMany<K, V>) -> Self {
        Self::with_max_running(load, MAX_RUNNING)
    }

    pub fn with_max_running(load: LoadMany<K, V>, max_running: usize) -> Self {
        Coalescer {
            shared: Arc::new(Shared {
                load,
                max_running: max_running.max(1),
                state: Mutex::new(State {
                    running: 0,
                    waiting: Vec::new(),
                }),
            }),
        }
    }

    /// The row of `key`, if there is one.
    pub async fn get(&self, db: &DbPool, key: K) -> Result<Option<V>> {
        let waiting = {
            let mut state = self.shared.lock();
            if state.running < self.shared.max_running {
                state.running += 1;
                None
            } else {
                let (reply, answer) = oneshot::channel();
                state.waiting.push((key.clone(), reply));
                Some(answer)
            }
        };
        match waiting {
            None => {
                // Held across the query, so that a cancelled caller still hands its turn on.
                let _turn = Turn {
                    shared: self.shared.clone(),
                    db: db.clone(),
                };
                let rows = (self.shared.load)(db.clone(), vec![key.clone()]).await?;
                Ok(rows.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v))
            }
            Some(answer) => answer.await.unwrap_or_else(|_| {
                Err(StorageError::Database(Arc::new(sqlx::Error::Protocol(
                    "a coalesced read was abandoned before it ran".into(),
                ))))
            }),
        }
    }
}

impl<K, V> Shared<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One of the `max_running` turns at the database. When it ends, the reads that waited
/// meanwhile run as one batch on the same turn, or the turn is given back.
struct Turn<K: Eq + Hash + Clone + Send + 'static, V: Clone + Send + 'static> {
    shared: Arc<Shared<K, V>>,
    db: DbPool,
}

impl<K, V> Drop for Turn<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn drop(&mut self) {
        let batch = {
            let mut state = self.shared.lock();
            if state.waiting.is_empty() {
                state.running -= 1;
                return;
            }
            let n = state.waiting.len().min(MAX_BATCH);
            let batch: Vec<_> = state.waiting.drain(..n).collect();
            batch
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run on (shutting down): the waiters hear that theirs was
            // abandoned when their replies drop with `batch`.
            self.shared.lock().running -= 1;
            return;
        };
        runtime.spawn(run_batch(self.shared.clone(), self.db.clone(), batch));
    }
}

async fn run_batch<K, V>(shared: Arc<Shared<K, V>>, db: DbPool, batch: Vec<(K, Reply<V>)>)
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    let _turn = Turn {
        shared: shared.clone(),
        db: db.clone(),
    };
    // A key asked twice is simply matched twice: `= ANY` does not mind duplicates.
    let keys: Vec<K> = batch.iter().map(|(k, _)| k.clone()).collect();
    match (shared.load)(db, keys).await {
        Ok(rows) => {
            let rows: HashMap<K, V> = rows.into_iter().collect();
            for (key, reply) in batch {
                let _ = reply.send(Ok(rows.get(&key).cloned()));
            }
        }
        Err(e) => {
            for (_, reply) in batch {
                let _ = reply.send(Err(e.for_each_waiter()));
            }
        }
    }
}
