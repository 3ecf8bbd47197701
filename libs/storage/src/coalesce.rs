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

use bookshelf_batch::{Abandoned, Batcher, Limits, Run};
use futures::future::BoxFuture;

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

/// The pool's coalesced paths, shared by every clone of it (a batch runs on the pool its
/// first caller named, so they live with the pool, not in any handler's state).
#[derive(Default)]
pub(crate) struct Coalesced {
    pub(crate) sessions: crate::sessions::SessionChecks,
    pub(crate) books: crate::books::BookReads,
    pub(crate) sent_marks: crate::outbox::SentMarks,
}

/// Point reads by key through one `bookshelf_batch::Batcher`: a batch is one query for all
/// its keys.
pub struct Coalescer<K, V> {
    batcher: Batcher<DbPool, K, Result<Option<V>>>,
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
        let run: Run<DbPool, K, Result<Option<V>>> = Box::new(move |db, keys: Vec<K>| {
            Box::pin(async move {
                // A key asked twice is simply matched twice: `= ANY` does not mind duplicates.
                match load(db, keys.clone()).await {
                    Ok(rows) => {
                        let rows: HashMap<K, V> = rows.into_iter().collect();
                        keys.iter().map(|k| Ok(rows.get(k).cloned())).collect()
                    }
                    Err(e) => each_reader(e, keys.len()),
                }
            })
        });
        let limits = Limits {
            max_running,
            max_weight: MAX_BATCH,
            weight: |_| 1,
        };
        Coalescer {
            batcher: Batcher::new(run, limits),
        }
    }

    /// The row of `key`, if there is one.
    pub async fn get(&self, db: &DbPool, key: K) -> Result<Option<V>> {
        self.batcher.call(db, key).await.unwrap_or_else(|Abandoned| {
            Err(StorageError::Database(sqlx::Error::Protocol(
                "a coalesced read was abandoned before it ran".into(),
            )))
        })
    }
}

/// A failed query's error for each of the `n` reads it carried: the first gets the error
/// itself, the others an equal one (same class, same SQLSTATE), as sqlx's errors do not clone.
fn each_reader<V>(e: StorageError, n: usize) -> Vec<Result<Option<V>>> {
    let mut out: Vec<Result<Option<V>>> = (1..n).map(|_| Err(again(&e))).collect();
    out.insert(0, Err(e));
    out
}

fn again(e: &StorageError) -> StorageError {
    match e {
        StorageError::Conflict(what) => StorageError::Conflict(what),
        StorageError::NotFound => StorageError::NotFound,
        StorageError::AccountGone => StorageError::AccountGone,
        StorageError::Database(sqlx::Error::Database(db)) => {
            StorageError::Database(sqlx::Error::Database(Box::new(Replayed::of(db.as_ref()))))
        }
        StorageError::Database(sqlx::Error::PoolTimedOut) => {
            StorageError::Database(sqlx::Error::PoolTimedOut)
        }
        StorageError::Database(sqlx::Error::PoolClosed) => StorageError::Database(sqlx::Error::PoolClosed),
        StorageError::Database(sqlx::Error::Io(io)) => {
            StorageError::Database(sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())))
        }
        // A read encodes nothing; were it to, each reader still hears it as a bug.
        other => {
            let cause = std::error::Error::source(other)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            StorageError::Database(sqlx::Error::Protocol(format!("{other}{cause}")))
        }
    }
}

/// A database error told again to another reader of the query that met it: its message,
/// SQLSTATE, kind and constraint, so it is classified (and logged) as the original.
#[derive(Debug)]
struct Replayed {
    message: String,
    code: Option<String>,
    constraint: Option<String>,
    table: Option<String>,
    kind: sqlx::error::ErrorKind,
}

impl Replayed {
    fn of(db: &dyn sqlx::error::DatabaseError) -> Replayed {
        Replayed {
            message: db.message().to_string(),
            code: db.code().map(|c| c.into_owned()),
            constraint: db.constraint().map(str::to_owned),
            table: db.table().map(str::to_owned),
            kind: db.kind(),
        }
    }
}

impl std::fmt::Display for Replayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Replayed {}

impl sqlx::error::DatabaseError for Replayed {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.code.as_deref().map(std::borrow::Cow::Borrowed)
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn constraint(&self) -> Option<&str> {
        self.constraint.as_deref()
    }

    fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        match self.kind {
            sqlx::error::ErrorKind::UniqueViolation => sqlx::error::ErrorKind::UniqueViolation,
            sqlx::error::ErrorKind::ForeignKeyViolation => sqlx::error::ErrorKind::ForeignKeyViolation,
            sqlx::error::ErrorKind::NotNullViolation => sqlx::error::ErrorKind::NotNullViolation,
            sqlx::error::ErrorKind::CheckViolation => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}
