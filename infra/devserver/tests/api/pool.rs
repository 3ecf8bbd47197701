//! The connection pool against a real PostgreSQL: what sqlx's ping on release did (roll
//! back what was left open, keep dead connections out) still happens without it.

use std::time::{Duration, Instant};

use bookshelf_storage::{DbPool, Pooling};
use sqlx::{Connection, Executor};

use crate::harness::{rename_admin, TestApp};

async fn backend_pid(pool: &DbPool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
}

#[tokio::test]
async fn a_dropped_transaction_releases_its_locks_at_once_not_at_the_next_use() {
    let app = TestApp::start_with(None).await;
    let pool = DbPool::new(app.pool.connect_options(), 1);
    {
        let mut tx = pool.begin().await.unwrap();
        rename_admin(&mut *tx, "held").await;
        // Dropped here: an early return (`?`) in a handler does the same.
    }
    // The pool is not touched again; another session must get the row lock soon anyway.
    let mut other = sqlx::PgConnection::connect_with(&app.pool.connect_options())
        .await
        .unwrap();
    other.execute("SET lock_timeout = '100ms'").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let locked = sqlx::query("SELECT 1 FROM users WHERE email = $1 FOR UPDATE")
            .bind(crate::harness::ADMIN_EMAIL)
            .execute(&mut other)
            .await;
        match locked {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "the row is still locked: {e}"),
        }
    }
    let name: Option<String> = sqlx::query_scalar("SELECT display_name FROM users WHERE email = $1")
        .bind(crate::harness::ADMIN_EMAIL)
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_ne!(name.as_deref(), Some("held"), "rolled back, not committed");
    // And the connection went back to the pool, usable.
    assert_eq!(
        sqlx::query_scalar::<_, i32>("SELECT 7")
            .fetch_one(&pool)
            .await
            .unwrap(),
        7
    );
}

#[tokio::test]
async fn a_committed_transaction_is_kept_and_its_connection_reused() {
    let app = TestApp::start_with(None).await;
    let pool = DbPool::new(app.pool.connect_options(), 1);
    let before = backend_pid(&pool).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    rename_admin(&mut *tx, "kept").await;
    tx.commit().await.unwrap();
    let name: Option<String> = sqlx::query_scalar("SELECT display_name FROM users WHERE email = $1")
        .bind(crate::harness::ADMIN_EMAIL)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("kept"));
    assert_eq!(
        backend_pid(&pool).await.unwrap(),
        before,
        "one connection, reused"
    );
    assert_eq!(pool.size(), 1);
}

#[tokio::test]
async fn a_connection_that_failed_is_replaced_not_handed_out_again() {
    let app = TestApp::start_with(None).await;
    let pool = DbPool::new(app.pool.connect_options(), 1);
    let first = backend_pid(&pool).await.unwrap();
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(killed);
    // The server is gone under the pooled connection: the next query on it fails (as it
    // would have with sqlx's pool: the connection had been pinged when it came back)...
    let failed = backend_pid(&pool).await;
    assert!(failed.is_err(), "{failed:?}");
    // ...and that connection is not offered again: the next query opens a new one.
    let second = backend_pid(&pool).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(backend_pid(&pool).await.unwrap(), second);
}

#[tokio::test]
async fn a_query_abandoned_midway_leaves_its_connection_usable() {
    let app = TestApp::start_with(None).await;
    let pool = DbPool::new(app.pool.connect_options(), 1);
    let before = backend_pid(&pool).await.unwrap();
    // A caller that gives up (a timeout, a dropped request) while the server still works.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(50),
        sqlx::query_scalar::<_, i32>("SELECT 1 FROM pg_sleep(0.3)").fetch_one(&pool),
    )
    .await;
    assert!(abandoned.is_err(), "the query should still have been running");
    // The same connection answers the next query with its own result, not the old one's.
    let answer: i32 = sqlx::query_scalar("SELECT 42").fetch_one(&pool).await.unwrap();
    assert_eq!(answer, 42);
    let rows: Vec<i32> = sqlx::query_scalar("SELECT g FROM generate_series(1, 3) g")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows, vec![1, 2, 3]);
    assert_eq!(backend_pid(&pool).await.unwrap(), before);
}

#[tokio::test]
async fn a_closed_pool_refuses_and_says_so() {
    let app = TestApp::start_with(None).await;
    let pool = DbPool::new(app.pool.connect_options(), 2);
    backend_pid(&pool).await.unwrap();
    pool.close().await;
    assert_eq!(pool.size(), 0);
    assert!(matches!(backend_pid(&pool).await, Err(sqlx::Error::PoolClosed)));
}

/// `Pooling::Transaction`: nothing a later transaction could need stays on the server
/// connection (no named statement), and a lone parameterised statement gets a transaction of
/// its own, so a proxy cannot split its parse from its bind. (The pooler stage of make test
/// runs every HTTP test through PgBouncer this way.)
#[tokio::test]
async fn behind_a_transaction_pooler_statements_are_unnamed_and_in_a_transaction() {
    let app = TestApp::start_with(None).await;
    let pool = DbPool::build(
        app.pool.connect_options(),
        1,
        Duration::from_secs(5),
        Pooling::Transaction,
    );
    // A lone statement (through the pool), one inside a transaction, and one with a text
    // column's enum as a parameter (whose type sqlx would otherwise look up by name).
    let implicit: bool = sqlx::query_scalar("SELECT now() = statement_timestamp() AND $1")
        .bind(true)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        !implicit,
        "a lone statement runs in a transaction of its own (BEGIN came first)"
    );
    let mut tx = pool.begin().await.unwrap();
    rename_admin(&mut *tx, "unnamed").await;
    let role: bookshelf_domain::Role =
        sqlx::query_scalar("SELECT role FROM users WHERE display_name = $1 AND role = $2")
            .bind("unnamed")
            .bind(bookshelf_domain::Role::Admin)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(role, bookshelf_domain::Role::Admin);
    tx.commit().await.unwrap();
    // (Parameterised, so the count itself is a statement the pool's mode sends its way.)
    let named = |pool: DbPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_prepared_statements WHERE $1")
            .bind(true)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(
        named(pool.clone()).await,
        0,
        "no named statement was left on the connection"
    );
    // The same on a direct pool: named, as the statement cache wants.
    let direct = DbPool::new(app.pool.connect_options(), 1);
    assert_eq!(named(direct).await, 1, "a direct pool names its statements");
    // Prepared statements are refused outright behind the pooler.
    let conn = &mut *pool.acquire().await.unwrap();
    assert!(sqlx::Executor::prepare(conn, "SELECT 1").await.is_err());
}

/// A caller dropped while its BEGIN is in flight (a request cancelled by its client) must
/// not hand the next caller a connection already in a transaction: that caller's BEGIN
/// would be a no-op, its SET TRANSACTION would fail, and its COMMIT would commit whatever
/// the dropped caller left. Found by `make bench` (wrk closing its connections mid-request).
#[tokio::test]
async fn a_begin_abandoned_in_flight_never_hands_on_an_open_transaction() {
    let app = TestApp::start_with(None).await;
    let pool = DbPool::new(app.pool.connect_options(), 1);
    backend_pid(&pool).await.unwrap();
    for _ in 0..20 {
        // Polled once: the idle connection is taken and BEGIN sent, then the caller goes
        // away before the answer.
        let mut begin = Box::pin(pool.begin());
        let _ = futures::poll!(&mut begin);
        drop(begin);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut tx = pool.begin().await.unwrap();
        // In a transaction begun just now, now() (its start) is a moment ago; in one left
        // open by the abandoned BEGIN it is at least 20 ms old.
        let fresh: bool = sqlx::query_scalar("SELECT clock_timestamp() - now() < interval '10 ms'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert!(fresh, "handed a transaction another caller began");
        tx.commit().await.unwrap();
    }
}
