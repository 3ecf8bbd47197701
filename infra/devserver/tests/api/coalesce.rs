//! Coalesced point reads (`bookshelf_storage::coalesce`) against a real PostgreSQL: reads
//! that wait go to the database together, each still answered with its own row; a read
//! that waited sees what was committed before it was asked; a caller that gives up hands
//! its turn on; a failed batch fails each of its readers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bookshelf_storage::coalesce::{Coalescer, Loaded};
use bookshelf_storage::{DbPool, StorageError};

use crate::harness::{rename_admin, TestApp, ADMIN_EMAIL};

/// Keys 1..: the value is ten times the key, and multiples of 3 have no row. Each query
/// takes at least 100 ms, so reads asked meanwhile have to wait for it.
fn slow_tens(db: DbPool, keys: Vec<i32>) -> Loaded<i32, i32> {
    Box::pin(async move {
        sqlx::query("SELECT pg_sleep(0.1)").execute(&db).await?;
        let rows: Vec<(i32, i32)> =
            sqlx::query_as("SELECT k, k * 10 FROM unnest($1::int4[]) AS k WHERE k % 3 <> 0")
                .bind(keys)
                .fetch_all(&db)
                .await?;
        Ok(rows)
    })
}

static TENS_QUERIES: AtomicUsize = AtomicUsize::new(0);

fn counted_tens(db: DbPool, keys: Vec<i32>) -> Loaded<i32, i32> {
    TENS_QUERIES.fetch_add(1, Ordering::SeqCst);
    slow_tens(db, keys)
}

type Reads<K, V> = std::sync::Arc<Coalescer<K, V>>;

/// Asks for `key` on a task of its own, as a request would.
fn ask<K, V>(
    reads: &Reads<K, V>,
    db: &DbPool,
    key: K,
) -> tokio::task::JoinHandle<bookshelf_storage::Result<Option<V>>>
where
    K: Eq + std::hash::Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    let (reads, db) = (reads.clone(), db.clone());
    tokio::spawn(async move { reads.get(&db, key).await })
}

/// A read's answer. A read that is never answered (a turn not handed on) fails the test
/// instead of hanging it.
async fn answer<V>(
    task: tokio::task::JoinHandle<bookshelf_storage::Result<Option<V>>>,
) -> bookshelf_storage::Result<Option<V>> {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("a read was never answered")
        .unwrap()
}

#[tokio::test]
async fn reads_that_wait_share_one_query_and_each_gets_its_own_row() {
    let app = TestApp::start_with(None).await;
    let reads = std::sync::Arc::new(Coalescer::with_max_running(counted_tens, 1));
    let asked: Vec<_> = (1..=60).map(|k| (k, ask(&reads, &app.pool, k))).collect();
    for (k, task) in asked {
        let answer = answer(task).await;
        let expected = (k % 3 != 0).then_some(k * 10);
        assert_eq!(answer.unwrap(), expected, "key {k}");
    }
    // One read ran alone; the others waited for it and went together (in batches of at
    // most 128), where uncoalesced they would be 60 queries.
    let queries = TENS_QUERIES.load(Ordering::SeqCst);
    assert!(queries <= 4, "60 reads took {queries} queries");
}

/// The admin's display name, by email.
fn slow_names(db: DbPool, emails: Vec<String>) -> Loaded<String, String> {
    Box::pin(async move {
        // Slow, and with its snapshot taken when the statement starts.
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT email, display_name FROM users, pg_sleep(0.3) WHERE email = ANY($1)")
                .bind(emails)
                .fetch_all(&db)
                .await?;
        Ok(rows)
    })
}

#[tokio::test]
async fn a_read_that_waited_sees_what_was_committed_before_it_was_asked() {
    let app = TestApp::start_with(None).await;
    rename_admin(&app.pool, "before").await;
    let reads = std::sync::Arc::new(Coalescer::with_max_running(slow_names, 1));
    let first = ask(&reads, &app.pool, ADMIN_EMAIL.to_string());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first read's query is running with its snapshot; this commits after it started.
    rename_admin(&app.pool, "after").await;
    let second = answer(ask(&reads, &app.pool, ADMIN_EMAIL.to_string()))
        .await
        .unwrap();
    assert_eq!(answer(first).await.unwrap().as_deref(), Some("before"));
    assert_eq!(
        second.as_deref(),
        Some("after"),
        "a read waiting behind a running query is answered by a later one, never by that one's result"
    );
}

#[tokio::test]
async fn a_caller_that_gives_up_hands_its_turn_to_the_reads_waiting_behind_it() {
    let app = TestApp::start_with(None).await;
    let reads = std::sync::Arc::new(Coalescer::with_max_running(slow_tens, 1));
    let first = ask(&reads, &app.pool, 1);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let waiting = ask(&reads, &app.pool, 2);
    tokio::time::sleep(Duration::from_millis(30)).await;
    // The request holding the turn goes away mid-query (a client hanging up does this).
    first.abort();
    assert_eq!(answer(waiting).await.unwrap(), Some(20));
    // And the coalescer is whole again: a new read runs.
    assert_eq!(answer(ask(&reads, &app.pool, 4)).await.unwrap(), Some(40));
}

fn slow_failure(db: DbPool, keys: Vec<i32>) -> Loaded<i32, i32> {
    Box::pin(async move {
        sqlx::query("SELECT pg_sleep(0.1)").execute(&db).await?;
        let rows: Vec<(i32, i32)> = sqlx::query_as("SELECT k, 1 / (k - k) FROM unnest($1::int4[]) AS k")
            .bind(keys)
            .fetch_all(&db)
            .await?;
        Ok(rows)
    })
}

#[tokio::test]
async fn a_failed_query_fails_every_read_it_carried() {
    let app = TestApp::start_with(None).await;
    let reads = std::sync::Arc::new(Coalescer::with_max_running(slow_failure, 1));
    let asked: Vec<_> = (1..=10).map(|k| ask(&reads, &app.pool, k)).collect();
    for task in asked {
        match answer(task).await {
            Err(StorageError::Database(e)) => {
                let code = match &e {
                    sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
                    _ => None,
                };
                assert_eq!(code.as_deref(), Some("22012"), "division by zero, got {e}");
            }
            other => panic!("expected the batch's error, got {other:?}"),
        }
    }
}
