//! The connection pool: deadpool holding sqlx connections.
//!
//! sqlx's own pool pings every connection it takes back (unconditionally in sqlx 0.8), so a
//! request that runs one query pays two database round trips, and each wakes the server.
//! The ping's purposes are kept without it: a dropped transaction is rolled back when
//! it is dropped (`Tx`), not at the connection's next use. A connection that failed is not
//! put back. One idle long enough for the server or RDS Proxy to have dropped it is pinged
//! before it is handed out.
//!
//! Behind a transaction-pooling proxy (`Pooling::Transaction`: RDS Proxy multiplexing,
//! PgBouncer's `pool_mode = transaction`) a client connection's consecutive transactions may
//! run on different server connections, so nothing is left on a server connection between
//! transactions: statements are unnamed, and each runs inside a transaction (sqlx parses, then
//! binds and executes, with a Sync between them that would otherwise end the proxy's turn).

use std::ops::{Deref, DerefMut};
use std::sync::RwLock;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult, Timeouts};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Connection, Either, Execute, Executor, PgConnection, Postgres};

/// A pooled connection idle this long is pinged before it is handed out.
const IDLE_PING_AFTER: Duration = Duration::from_secs(10);
/// A connection idle this long is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections are replaced after this long, as sqlx's pool does by default.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Waiting for a connection, opening one, or pinging one: each gives up after this.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the server side of a connection keeps between transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// PostgreSQL itself, or a proxy that gives a client one server connection throughout:
    /// each distinct query is prepared once per connection as a named statement and reused.
    #[default]
    Session,
    /// A proxy that may hand each transaction to another server connection: no named
    /// statement, and every statement inside a transaction (see the module's opening).
    Transaction,
}

impl std::str::FromStr for Pooling {
    type Err = UnknownPooling;
    fn from_str(s: &str) -> Result<Pooling, UnknownPooling> {
        match s {
            "session" => Ok(Pooling::Session),
            "transaction" => Ok(Pooling::Transaction),
            other => Err(UnknownPooling(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown pooling mode {0:?}: expected session or transaction")]
pub struct UnknownPooling(String);

/// A connection and what the pool's mode asks of the statements run on it.
#[derive(Debug)]
pub struct Conn {
    inner: PgConnection,
    pooling: Pooling,
    /// A transaction is open on it (ours: `Tx`, or one wrapped around a lone statement).
    in_transaction: bool,
}

impl Conn {
    /// The sqlx connection itself, for what takes one (migrations, tests): statements run on
    /// it directly are named and cached whatever the pool's mode.
    pub fn raw(&mut self) -> &mut PgConnection {
        &mut self.inner
    }

    /// The query as this connection sends it, and whether it needs a transaction of its
    /// own: a lone parameterised statement behind a transaction pooler does.
    fn outgoing<'q, E: Execute<'q, Postgres>>(&self, query: E) -> (Sent<'q, E>, bool) {
        let sent = Sent::new(query, self.pooling);
        let own = sent.is_extended() && self.pooling == Pooling::Transaction && !self.in_transaction;
        (sent, own)
    }
}

/// Opens and checks connections for the pool.
pub struct Connector {
    /// Replaceable: deployed, the password is an IAM token that new connections need fresh.
    options: RwLock<PgConnectOptions>,
    pooling: Pooling,
}

impl managed::Manager for Connector {
    type Type = Conn;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Conn, sqlx::Error> {
        let options = self
            .options
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // (The lock is released before the connect is awaited.)
        Ok(Conn {
            inner: PgConnection::connect_with(&options).await?,
            pooling: self.pooling,
            in_transaction: false,
        })
    }

    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<sqlx::Error> {
        // `last_used` counts from the last checkout, so it errs towards pinging.
        if metrics.age() >= MAX_LIFETIME || metrics.last_used() >= IDLE_TIMEOUT {
            return Err(RecycleError::message("expired"));
        }
        // A lone statement's transaction left open (its stream dropped half read).
        if conn.in_transaction {
            return Err(RecycleError::message("left in a transaction"));
        }
        // Something still queued (a rollback whose task never ran) is flushed by the ping.
        if metrics.last_used() >= IDLE_PING_AFTER || conn.inner.should_flush() {
            conn.inner.ping().await?;
        }
        Ok(())
    }
}

/// A pool of PostgreSQL connections, connected lazily. Cheap to clone (shared).
#[derive(Clone)]
pub struct DbPool {
    pool: managed::Pool<Connector>,
    /// Reads and marks coalesced under concurrency (`crate::coalesce`).
    coalesced: std::sync::Arc<crate::coalesce::Coalesced>,
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

/// A broken connection is not worth putting back: an I/O, TLS or protocol error, a
/// connection exception, or the server ending the session (a FATAL error, e.g. 57P01 when it shuts down or the session
/// is terminated, sent just before it closes the socket).
fn is_broken(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
            true
        }
        // Class 08 too: a pooler that gave up waiting for a server connection (PgBouncer's
        // query_wait_timeout, 08P01) closes the client connection after saying so.
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|c| c.starts_with("08"))
                || db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some_and(|pg| {
                        matches!(
                            pg.severity(),
                            sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic
                        )
                    })
        }
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
        DbPool::build(options, max_connections, timeout, Pooling::Session)
    }

    /// As `with_timeout`, for a server side that pools as `pooling` says.
    pub fn build(
        options: PgConnectOptions,
        max_connections: u32,
        timeout: Duration,
        pooling: Pooling,
    ) -> DbPool {
        let manager = Connector {
            options: RwLock::new(options),
            pooling,
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
        DbPool {
            pool,
            coalesced: Default::default(),
        }
    }

    pub(crate) fn coalesced(&self) -> &crate::coalesce::Coalesced {
        &self.coalesced
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

    /// How the server side pools (what statements this pool's connections run).
    pub fn pooling(&self) -> Pooling {
        self.pool.manager().pooling
    }

    /// Starts a transaction on a pooled connection.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        // Marked before BEGIN is sent: a caller dropped while it is in flight (a cancelled
        // request) leaves a connection the server may already have in a transaction, and
        // the mark keeps the pool from handing that to the next caller, whose BEGIN would
        // be a no-op inside it.
        conn.in_transaction = true;
        let begun = conn.inner.execute("BEGIN").await.map(|_| ());
        match begun {
            Ok(()) => Ok(Tx { conn: Some(conn) }),
            Err(e) => {
                conn.in_transaction = false;
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
            let _ = conn.inner.close().await;
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
        let done = conn.inner.execute(statement).await.map(|_| ());
        if done.is_ok() {
            conn.in_transaction = false;
        }
        // (One still marked in a transaction is not taken back by the pool.)
        discard_if_broken(conn, &done);
        done
    }
}

impl Deref for Tx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("an open transaction")
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Conn {
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
                    let done = conn.inner.execute("ROLLBACK").await.map(|_| ());
                    if done.is_ok() {
                        conn.in_transaction = false;
                    }
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
                let mut items = (&mut *conn).fetch_many(query);
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
            let row = (&mut *conn).fetch_optional(query).await;
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
            let statement = (&mut *conn).prepare_with(sql, parameters).await;
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
            let described = conn.inner.describe(sql).await;
            discard_if_broken(conn, &described);
            described
        })
    }
}

/// A query as the pool's mode wants it sent: unnamed behind a transaction pooler. Its
/// arguments are taken first, to tell a parameterised statement (parse, then bind: needs a
/// transaction) from a simple one (one message: needs none).
struct Sent<'q, E> {
    query: E,
    arguments: Option<Result<Option<PgArguments>, BoxDynError>>,
    persistent: bool,
    _sql: std::marker::PhantomData<&'q str>,
}

impl<'q, E: Execute<'q, Postgres>> Sent<'q, E> {
    fn new(mut query: E, pooling: Pooling) -> Sent<'q, E> {
        let persistent = query.persistent() && pooling == Pooling::Session;
        let arguments = Some(query.take_arguments());
        Sent {
            query,
            arguments,
            persistent,
            _sql: std::marker::PhantomData,
        }
    }

    /// Parse and bind are separate round trips (a Sync between them).
    fn is_extended(&self) -> bool {
        matches!(self.arguments, Some(Ok(Some(_))))
    }
}

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Sent<'q, E> {
    fn sql(&self) -> &'q str {
        self.query.sql()
    }

    fn statement(&self) -> Option<&PgStatement<'q>> {
        self.query.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, BoxDynError> {
        self.arguments
            .take()
            .unwrap_or_else(|| self.query.take_arguments())
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Runs `BEGIN` when `own` (a lone statement behind a transaction pooler).
async fn open_own(conn: &mut Conn, own: bool) -> Result<(), sqlx::Error> {
    if own {
        conn.inner.execute("BEGIN").await?;
        conn.in_transaction = true;
    }
    Ok(())
}

/// Ends the transaction `open_own` opened: committed if the statement succeeded.
async fn close_own(conn: &mut Conn, own: bool, ok: bool) -> Result<(), sqlx::Error> {
    if own {
        conn.inner.execute(if ok { "COMMIT" } else { "ROLLBACK" }).await?;
        conn.in_transaction = false;
    }
    Ok(())
}

impl<'c> Executor<'c> for &'c mut Conn {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let (sent, own) = self.outgoing(query);
        if !own {
            return self.inner.fetch_many(sent);
        }
        Box::pin(async_stream::try_stream! {
            open_own(self, own).await?;
            let mut failed = None;
            {
                let mut items = self.inner.fetch_many(sent);
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
            match failed {
                None => close_own(self, own, true).await?,
                Some(e) => {
                    // The statement's error is the one to report; a connection whose rollback
                    // failed stays marked, and the pool drops it.
                    let _ = close_own(self, own, false).await;
                    Err(e)?;
                }
            }
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let (sent, own) = self.outgoing(query);
        if !own {
            return self.inner.fetch_optional(sent);
        }
        Box::pin(async move {
            open_own(self, own).await?;
            match self.inner.fetch_optional(sent).await {
                Ok(row) => {
                    close_own(self, own, true).await?;
                    Ok(row)
                }
                Err(e) => {
                    let _ = close_own(self, own, false).await;
                    Err(e)
                }
            }
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        // A prepared statement is named, and behind a transaction pooler it would be left on
        // whichever server connection prepared it.
        if self.pooling == Pooling::Transaction {
            return Box::pin(async {
                Err(sqlx::Error::Configuration(
                    "named statements cannot be prepared behind a transaction pooler".into(),
                ))
            });
        }
        self.inner.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.inner.describe(sql)
    }
}
