//! PostgreSQL access with sqlx. Every query is parameterised; every multi-step state change
//! runs in one transaction.

pub mod activities;
pub mod books;
pub mod changes;
pub mod cleanup;
pub mod coalesce;
pub mod follows;
pub mod imports;
pub mod inventory;
pub mod library;
pub mod orders;
pub mod outbox;
mod pool;
pub mod reading;
pub mod sessions;
pub mod stats;
pub mod throttle;
pub mod users;
pub mod webhooks;

use sqlx::postgres::PgConnectOptions;

pub use pool::{Conn, DbPool, PooledConnection, Pooling, Tx, UnknownPooling};

pub use sessions::{RefreshOutcome, SessionStatus};
pub use users::{NewUser, UserPatch};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The storage layer's one error type.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A unique constraint refused the write; the string names what was duplicated.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    /// The caller's account was deleted while their token was still accepted (a request
    /// racing the deletion, or the authorizer's cached policy when deployed): a row that
    /// references the user could not be written.
    #[error("the account no longer exists")]
    AccountGone,
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A value could not be turned into what a column stores (a bug, never the input).
    #[error("encoding a stored value")]
    Encode(#[source] serde_json::Error),
}

impl From<sqlx::Error> for StorageError {
    /// Foreign-key violations are races with a deletion, not bugs: a vanished user is the
    /// caller's own account (every user reference we write is the caller's), a vanished
    /// book (or read) is a 404 like any other.
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.code().as_deref() == Some("23503") {
                let constraint = db.constraint().unwrap_or_default();
                if constraint.ends_with("_user_id_fkey") || constraint.ends_with("_actor_id_fkey") {
                    return StorageError::AccountGone;
                }
                if constraint.ends_with("_book_id_fkey") || constraint.ends_with("_read_id_fkey") {
                    return StorageError::NotFound;
                }
            }
        }
        StorageError::Database(e)
    }
}

impl StorageError {
    /// The database is not there right now (saturated, unreachable or restarting), or it
    /// gave up on this transaction for another's sake (a deadlock victim, a serialization
    /// failure), as opposed to this request being wrong: a retry may well succeed.
    pub fn is_transient(&self) -> bool {
        let StorageError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => true,
            // 08: connection exceptions; 57P01-57P03: admin shutdown, crash shutdown, cannot
            // connect now; 40001, 40P01: serialization failure, deadlock detected.
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "40001" | "40P01")
            }),
            _ => false,
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Maps a unique violation on a known constraint to `Conflict`, anything else to `Database`.
pub(crate) fn conflict_on(
    constraint: &'static str,
    what: &'static str,
) -> impl Fn(sqlx::Error) -> StorageError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some(constraint) => StorageError::Conflict(what),
        _ => StorageError::from(e),
    }
}

/// A write that names one row by key: none touched means there was none.
pub(crate) fn one_row(done: sqlx::postgres::PgQueryResult) -> Result<()> {
    if done.rows_affected() == 0 {
        Err(StorageError::NotFound)
    } else {
        Ok(())
    }
}

/// A small pool, connected lazily: a Lambda execution environment serves one request at a
/// time, and a cold start must not pay for a connection it may never use.
pub fn pool(options: PgConnectOptions, max_connections: u32) -> DbPool {
    DbPool::new(options, max_connections)
}

/// Lists fetch `limit + 1` rows: the extra one only says whether there is a next page,
/// whose cursor is the key of the last row kept.
pub(crate) fn page<T, C>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> C) -> (Vec<T>, Option<C>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(key);
        (rows, next)
    } else {
        (rows, None)
    }
}

/// The key a newest-first walk starts below (and an oldest-first one above, `keyset_start`)
/// when no cursor is given. Queries bind these rather than an optional bound: with
/// `$at IS NULL OR (at, id) < ($at, $id)` the generic plan PostgreSQL caches after a few
/// executions cannot use the bound in the index, and every deep page walks from the top.
pub(crate) fn keyset_end() -> (chrono::DateTime<chrono::Utc>, uuid::Uuid) {
    let at = chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc());
    (
        at.unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
        uuid::Uuid::max(),
    )
}

/// See `keyset_end`.
pub(crate) fn keyset_start() -> (chrono::DateTime<chrono::Utc>, uuid::Uuid) {
    let at = chrono::NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc());
    (
        at.unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH),
        uuid::Uuid::nil(),
    )
}

/// Appends the keyset condition and order of a page walked by (`at`, `id`), fetching one
/// row more than the page so `page` can tell whether another follows.
pub(crate) fn push_keyset(
    q: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
    at: &str,
    id: &str,
    page: bookshelf_domain::PageParams,
) {
    if let Some(c) = page.after {
        q.push(format!(" AND ({at}, {id}) > ("))
            .push_bind(c.at)
            .push(", ")
            .push_bind(c.id)
            .push(")");
    }
    q.push(format!(" ORDER BY {at}, {id} LIMIT "))
        .push_bind(page.limit + 1);
}

pub async fn migrate(pool: &DbPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut conn = pool.acquire().await?;
    MIGRATOR.run(conn.raw()).await
}
