//! The connection pool: deadpool holding sqlx connections.
//!
//! sqlx's own pool pings every connection it takes back (unconditionally in sqlx 0.8), so a
//! request that runs one query pays two database round trips, and each wakes the server.
//! The ping's purposes are kept without it: a dropped transaction is rolled back when
//! it is dropped (`Tx`), not at the connection's next use. A connection that failed is not
//! put back. One idle long enough for the server or RDS Proxy to have dropped it is pinged
//! before it is handed out.

use std::ops::{Deref, DerefMut};
use std::sync::RwLock;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult, Timeouts};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use sqlx::postgres::{PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Connection, Either, Execute, Executor, PgConnection, Postgres};

/// A pooled connection idle this long is pinged before it is handed out.
const IDLE_PING_AFTER: Duration = Duration::from_secs(10);
/// A connection idle this long is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections are replaced after this long, as sqlx's pool does by default.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Waiting for a connection, opening one, or pinging one: each gives up after this.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Opens and checks connections for the pool.
pub struct Connector {
    /// Replaceable: deployed, the password is an IAM token that new connections need fresh.
    options: RwLock<PgConnectOptions>,
}

impl managed::Manager for Connector {
    type Type = PgConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PgConnection, sqlx::Error> {
        let options = self
            .options
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // (The lock is released before the connect is awaited.)
        PgConnection::connect_with(&options).await
    }

    async fn recycle(&self, conn: &mut PgConnection, metrics: &Metrics) -> RecycleResult<sqlx::Error> {
        // `last_used` counts from the last checkout, so it errs towards pinging.
        if metrics.age() >= MAX_LIFETIME || metrics.last_used() >= IDLE_TIMEOUT {
            return Err(RecycleError::message("expired"));
        }
        // Something still queued (a rollback whose task never ran) is flushed by the ping.
        if metrics.last_used() >= IDLE_PING_AFTER || conn.should_flush() {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// A pool of PostgreSQL connections, connected lazily. Cheap to clone (shared).
#[derive(Clone)]
pub struct DbPool {
    pool: managed::Pool<Connector>,
}

/// A connection taken from the pool; back to the pool when dropped.
pub type PooledConnection = Object<Connector>;

impl std::fmt::Debug for DbPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("DbPool")
            .field("size", &status.size)
            .field("available", &status.available)
            .field("max_size", &status.max_size)
            .finish()
    }
}

/// A broken connection is not worth putting back: an I/O, TLS or protocol error, or the
/// server ending the session (a FATAL error, e.g. 57P01 when it shuts down or the session
/// is terminated, sent just before it closes the socket).
fn is_broken(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
            true
        }
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some_and(|pg| {
                matches!(
                    pg.severity(),
                    sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic
                )
            }),
        _ => false,
    }
}

/// Drops a connection that failed instead of returning it to the pool.
fn discard_if_broken<T>(conn: PooledConnection, result: &Result<T, sqlx::Error>) {
    if result.as_ref().is_err_and(is_broken) {
        drop(Object::take(conn));
    }
}

impl DbPool {
    pub fn new(options: PgConnectOptions, max_connections: u32) -> DbPool {
        DbPool::with_timeout(options, max_connections, TIMEOUT)
    }

    /// As `new`, giving up on waiting, connecting or pinging after `timeout`.
    pub fn with_timeout(options: PgConnectOptions, max_connections: u32, timeout: Duration) -> DbPool {
        let manager = Connector {
            options: RwLock::new(options),
        };
        let pool = managed::Pool::builder(manager)
            .max_size(max_connections as usize)
            .timeouts(Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            })
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            // Only a missing runtime or an impossible size fails, both fixed above.
            .expect("the pool's settings are valid");
        DbPool { pool }
    }

    /// What new connections sign in with from now on (a fresh IAM token).
    pub fn set_connect_options(&self, options: PgConnectOptions) {
        *self
            .pool
            .manager()
            .options
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = options;
    }

    /// What new connections sign in with.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.pool
            .manager()
            .options
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A connection, waiting up to 5 s for one; the errors are sqlx's pool errors.
    pub async fn acquire(&self) -> Result<PooledConnection, sqlx::Error> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
            PoolError::Closed => sqlx::Error::PoolClosed,
            PoolError::Backend(e) => e,
            other => sqlx::Error::Configuration(other.to_string().into()),
        })
    }

    /// Starts a transaction on a pooled connection.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        let begun = conn.execute("BEGIN").await.map(|_| ());
        match begun {
            Ok(()) => Ok(Tx { conn: Some(conn) }),
            Err(e) => {
                if is_broken(&e) {
                    drop(Object::take(conn));
                }
                Err(e)
            }
        }
    }

    /// Closes the idle connections (politely) and refuses new checkouts.
    pub async fn close(&self) {
        self.pool.close();
        let idle = self.pool.retain(|_, _| false);
        for conn in idle.removed {
            let _ = conn.close().await;
        }
    }

    /// Connections open now (checked out or idle).
    pub fn size(&self) -> usize {
        self.pool.status().size
    }
}

/// A transaction on a pooled connection. Dropped without `commit`, it is rolled back at once
/// (by a task, as drop cannot wait), so its locks are not held until the connection's next use.
pub struct Tx {
    conn: Option<PooledConnection>,
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.end("ROLLBACK").await
    }

    async fn end(mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        let mut conn = self.conn.take().expect("an open transaction");
        let done = conn.execute(statement).await.map(|_| ());
        discard_if_broken(conn, &done);
        done
    }
}

impl Deref for Tx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("an open transaction")
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("an open transaction")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let done = conn.execute("ROLLBACK").await.map(|_| ());
                    if let Err(e) = &done {
                        tracing::warn!(error = %e, "rolling back a dropped transaction failed; closing its connection");
                        drop(Object::take(conn));
                    }
                });
            }
            // No runtime to roll back on: closing the connection rolls it back server-side.
            Err(_) => drop(Object::take(conn)),
        }
    }
}

impl<'p> Executor<'p> for &'_ DbPool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        Box::pin(async_stream::try_stream! {
            let mut conn = pool.acquire().await?;
            let mut failed = None;
            {
                let mut items = conn.fetch_many(query);
                while let Some(item) = items.next().await {
                    match item {
                        Ok(v) => yield v,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            if let Some(e) = failed {
                if is_broken(&e) {
                    drop(Object::take(conn));
                }
                Err(e)?;
            }
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let row = conn.fetch_optional(query).await;
            discard_if_broken(conn, &row);
            row
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let statement = conn.prepare_with(sql, parameters).await;
            discard_if_broken(conn, &statement);
            statement
        })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let described = conn.describe(sql).await;
            discard_if_broken(conn, &described);
            described
        })
    }
}
