//! Stock and its ledger. Every stock change goes through `move_stock` (one book) or the
//! order worker's settling statement (`orders::process_many`, a batch decided under
//! `lock_stock`), and each writes its ledger rows from `LedgerRows` in the same
//! transaction, so no change can skip its explanation.

use crate::{Conn, DbPool};
use std::collections::HashMap;

use uuid::Uuid;

use crate::{Result, StorageError};

/// Why stock changed: the ledger's `reason`, with who or what caused it.
#[derive(Debug, Clone, Copy)]
pub enum StockReason<'a> {
    /// A new book's first stock.
    Initial {
        actor: Option<Uuid>,
    },
    /// An admin's change through `POST /books/{id}/inventory`.
    Adjusted {
        reason: &'a str,
        actor: Uuid,
    },
    OrderReserved {
        order: Uuid,
    },
    OrderCancelled {
        order: Uuid,
    },
}

impl StockReason<'_> {
    fn text(&self) -> &str {
        match self {
            StockReason::Initial { .. } => "initial stock",
            StockReason::Adjusted { reason, .. } => reason,
            StockReason::OrderReserved { .. } => "order reserved",
            StockReason::OrderCancelled { .. } => "order cancelled",
        }
    }

    fn actor(&self) -> Option<Uuid> {
        match *self {
            StockReason::Initial { actor } => actor,
            StockReason::Adjusted { actor, .. } => Some(actor),
            _ => None,
        }
    }

    fn order(&self) -> Option<Uuid> {
        match *self {
            StockReason::OrderReserved { order } | StockReason::OrderCancelled { order } => Some(order),
            _ => None,
        }
    }
}

/// One stock change as the ledger keeps it: `delta` took the book's stock to `stock_after`.
#[derive(Debug, Clone, Copy)]
pub struct StockMove<'a> {
    pub book: Uuid,
    pub delta: i32,
    pub stock_after: i32,
    pub why: StockReason<'a>,
}

/// Ledger rows as the columns `unnest` takes, so that one statement writes any number.
pub(crate) struct LedgerRows<'a> {
    pub books: Vec<Uuid>,
    pub deltas: Vec<i32>,
    pub after: Vec<i32>,
    pub reasons: Vec<&'a str>,
    pub actors: Vec<Option<Uuid>>,
    pub orders: Vec<Option<Uuid>>,
}

impl<'a> LedgerRows<'a> {
    pub(crate) fn of(moves: &'a [StockMove<'a>]) -> Self {
        LedgerRows {
            books: moves.iter().map(|m| m.book).collect(),
            deltas: moves.iter().map(|m| m.delta).collect(),
            after: moves.iter().map(|m| m.stock_after).collect(),
            reasons: moves.iter().map(|m| m.why.text()).collect(),
            actors: moves.iter().map(|m| m.why.actor()).collect(),
            orders: moves.iter().map(|m| m.why.order()).collect(),
        }
    }
}

/// Appends ledger rows (one statement for any number, so seeding many books is one write).
pub async fn record(conn: &mut Conn, moves: &[StockMove<'_>]) -> Result<()> {
    let rows = LedgerRows::of(moves);
    sqlx::query!(
        "INSERT INTO inventory_ledger (book_id, delta, stock_after, reason, actor_id, order_id)
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::uuid[], $6::uuid[])",
        &rows.books,
        &rows.deltas,
        &rows.after,
        &rows.reasons as &[&str],
        &rows.actors as &[Option<Uuid>],
        &rows.orders as &[Option<Uuid>],
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Changes a book's stock by `delta` unless that would take it below zero, in one guarded
/// statement (no read-modify-write, so concurrent changes cannot lose each other), and
/// records it. `None`: no such book, or not enough stock; nothing was changed. Run it in
/// the transaction of whatever else the change belongs to.
pub(crate) async fn move_stock(
    conn: &mut Conn,
    book: Uuid,
    delta: i32,
    why: StockReason<'_>,
) -> Result<Option<i32>> {
    let stock = sqlx::query_scalar!(
        "UPDATE books SET stock = stock + $2, version = version + 1, updated_at = now()
         WHERE id = $1 AND stock + $2 >= 0 RETURNING stock",
        book,
        delta,
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| match &e {
        // stock + delta beyond i32: as impossible to satisfy as going below zero.
        sqlx::Error::Database(d) if d.code().as_deref() == Some("22003") => StorageError::Conflict("stock"),
        _ => StorageError::from(e),
    })?;
    if let Some(stock_after) = stock {
        let change = StockMove {
            book,
            delta,
            stock_after,
            why,
        };
        record(conn, &[change]).await?;
    }
    Ok(stock)
}

/// Locks the rows of `books` (`FOR UPDATE`, in id order, as every batch locks them, so
/// batches cannot deadlock) and reads their stock: what a batch decides against. A book
/// that is gone is missing from the answer.
pub(crate) async fn lock_stock(conn: &mut Conn, books: &[Uuid]) -> Result<HashMap<Uuid, i32>> {
    Ok(sqlx::query!(
        "SELECT id, stock FROM books WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        books,
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|b| (b.id, b.stock))
    .collect())
}

/// Per book, in id order: the sum of its moves' deltas, and the stock the last of them
/// leaves it at (the stock a guarded update must end at).
pub(crate) fn per_book(moves: &[StockMove<'_>]) -> Vec<(Uuid, i32, i32)> {
    let mut per_book: Vec<(Uuid, i32, i32)> = Vec::new();
    for m in moves {
        match per_book.iter_mut().find(|(b, _, _)| *b == m.book) {
            Some((_, delta, after)) => {
                *delta += m.delta;
                *after = m.stock_after;
            }
            None => per_book.push((m.book, m.delta, m.stock_after)),
        }
    }
    per_book.sort_by_key(|(b, _, _)| *b);
    per_book
}

/// One ledger row as audits (and tests) read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub delta: i32,
    pub stock_after: i32,
    pub reason: String,
    pub actor_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
}

/// The ledger of one book, oldest first.
pub async fn ledger(db: &DbPool, book: Uuid) -> Result<Vec<LedgerRow>> {
    Ok(sqlx::query_as!(
        LedgerRow,
        "SELECT delta, stock_after, reason, actor_id, order_id FROM inventory_ledger
         WHERE book_id = $1 ORDER BY id",
        book,
    )
    .fetch_all(db)
    .await?)
}
