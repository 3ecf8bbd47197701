//! Orders: creation with the outbox and idempotency keys, the worker's reservation, cancel.

use std::collections::HashMap;

use bookshelf_domain::order::REJECTED_INSUFFICIENT_STOCK;
use bookshelf_domain::{
    Cursor, NewActivity, Order, OrderItem, OrderLine, OrderMessage, OrderStatus, PageParams, ReadingStatus,
};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::activities::{self, Pending};
use crate::inventory::{self, StockReason};
use crate::outbox::OutboxMessage;
use crate::{Result, StorageError};

/// An `orders` row; `Order` adds its items.
#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    user_id: Option<Uuid>,
    status: OrderStatus,
    total_cents: i64,
    rejection_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The columns of `OrderRow`, for the list query built at run time.
const ORDER_COLUMNS: &str = "id, user_id, status, total_cents, rejection_reason, created_at, updated_at";

/// Attaches their items to order rows, keeping the rows' order.
async fn with_items(db: impl PgExecutor<'_>, rows: Vec<OrderRow>) -> Result<Vec<Order>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let items = sqlx::query!(
        "SELECT order_id, book_id, title, quantity, unit_price_cents FROM order_items
         WHERE order_id = ANY($1) ORDER BY order_id, line",
        &ids,
    )
    .fetch_all(db)
    .await?;
    let mut by_order: HashMap<Uuid, Vec<OrderItem>> = HashMap::new();
    for i in items {
        by_order.entry(i.order_id).or_default().push(OrderItem {
            book_id: i.book_id,
            title: i.title,
            quantity: i.quantity,
            unit_price_cents: i.unit_price_cents,
        });
    }
    Ok(rows
        .into_iter()
        .map(|r| Order {
            id: r.id,
            user_id: r.user_id,
            status: r.status,
            // Every order has at least one line (POST /orders refuses an empty one).
            items: by_order.remove(&r.id).unwrap_or_default(),
            total_cents: r.total_cents,
            rejection_reason: r.rejection_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect())
}

pub async fn get(db: &PgPool, id: Uuid) -> Result<Order> {
    let row = sqlx::query_as!(
        OrderRow,
        r#"SELECT id, user_id, status AS "status: OrderStatus", total_cents, rejection_reason,
                  created_at, updated_at
           FROM orders WHERE id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await?
    .ok_or(StorageError::NotFound)?;
    let mut orders = with_items(db, vec![row]).await?;
    orders.pop().ok_or(StorageError::NotFound)
}

pub enum CreateOutcome {
    /// A new order, and its queue message (unsent) for the request to send.
    Created { order: Order, message: OutboxMessage },
    /// The lines' total does not fit in 64-bit cents.
    TotalTooLarge,
    /// The idempotency key was used before with the same request: the first order.
    Replayed(Order),
    /// The idempotency key was used before with a different request.
    KeyConflict,
    /// These lines (indices into the request) name books that do not exist.
    UnknownBooks(Vec<usize>),
}

/// Records an order, its lines (titles and prices copied) and its outbox message in one
/// transaction. With an idempotency key, the key's row is inserted first: a concurrent
/// request with the same key waits on it and then sees the first order.
pub async fn create(
    db: &PgPool,
    user: Uuid,
    lines: &[OrderLine],
    key: Option<(&str, [u8; 32])>,
) -> Result<CreateOutcome> {
    let id = Uuid::new_v4();
    let mut tx = db.begin().await?;
    if let Some((key, hash)) = key {
        sqlx::query!(
            "DELETE FROM idempotency_keys
             WHERE user_id = $1 AND key = $2 AND created_at < now() - interval '24 hours'",
            user,
            key,
        )
        .execute(&mut *tx)
        .await?;
        let claimed = sqlx::query_scalar!(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, order_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, key) DO NOTHING RETURNING order_id",
            user,
            key,
            &hash[..],
            id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            tx.rollback().await?;
            let first = sqlx::query!(
                "SELECT request_hash, order_id FROM idempotency_keys WHERE user_id = $1 AND key = $2",
                user,
                key,
            )
            .fetch_one(db)
            .await?;
            return Ok(if first.request_hash == hash {
                CreateOutcome::Replayed(get(db, first.order_id).await?)
            } else {
                CreateOutcome::KeyConflict
            });
        }
    }

    let ids: Vec<Uuid> = lines.iter().map(|l| l.book_id).collect();
    let books: HashMap<Uuid, (String, i64)> = sqlx::query!(
        "SELECT id, title, price_cents FROM books WHERE id = ANY($1)",
        &ids
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|b| (b.id, (b.title, b.price_cents)))
    .collect();
    let unknown: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !books.contains_key(&l.book_id))
        .map(|(i, _)| i)
        .collect();
    if !unknown.is_empty() {
        tx.rollback().await?;
        return Ok(CreateOutcome::UnknownBooks(unknown));
    }

    let Some(total) = bookshelf_domain::order::total_cents(lines, |l| books[&l.book_id].1) else {
        tx.rollback().await?;
        return Ok(CreateOutcome::TotalTooLarge);
    };
    sqlx::query!(
        "INSERT INTO orders (id, user_id, total_cents) VALUES ($1, $2, $3)",
        id,
        user,
        total,
    )
    .execute(&mut *tx)
    .await?;
    // Lines are at most 50 (validated), so their index fits a smallint.
    let numbers: Vec<i16> = (0..lines.len()).map(|i| i as i16).collect();
    let titles: Vec<&str> = lines.iter().map(|l| books[&l.book_id].0.as_str()).collect();
    let prices: Vec<i64> = lines.iter().map(|l| books[&l.book_id].1).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity).collect();
    sqlx::query!(
        "INSERT INTO order_items (order_id, line, book_id, title, quantity, unit_price_cents)
         SELECT $1, * FROM unnest($2::smallint[], $3::uuid[], $4::text[], $5::int[], $6::bigint[])",
        id,
        &numbers,
        &ids,
        &titles as &[&str],
        &quantities,
        &prices,
    )
    .execute(&mut *tx)
    .await?;
    let payload = serde_json::to_value(OrderMessage { order_id: id }).map_err(StorageError::Encode)?;
    let outbox_id = sqlx::query_scalar!(
        "INSERT INTO outbox (topic, order_id, payload) VALUES ('orders', $1, $2) RETURNING id",
        id,
        payload,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(CreateOutcome::Created {
        order: get(db, id).await?,
        message: OutboxMessage {
            id: outbox_id,
            payload,
        },
    })
}

#[derive(Debug, Default, Clone, Copy)]
pub struct OrderFilter {
    /// Only this user's orders; `None` for all (admins).
    pub user: Option<Uuid>,
    pub status: Option<OrderStatus>,
}

pub async fn list(
    db: &PgPool,
    filter: OrderFilter,
    page: PageParams,
) -> Result<(Vec<Order>, Option<Cursor>)> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE true"));
    if let Some(u) = filter.user {
        q.push(" AND user_id = ").push_bind(u);
    }
    if let Some(s) = filter.status {
        q.push(" AND status = ").push_bind(s.as_str());
    }
    crate::push_keyset(&mut q, "created_at", "id", page);
    let rows: Vec<OrderRow> = q.build_query_as().fetch_all(db).await?;
    let orders = with_items(db, rows).await?;
    Ok(crate::page(orders, page.limit, |o| Cursor {
        at: o.created_at,
        id: o.id,
    }))
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProcessOutcome {
    /// Confirmed; `pending` are the `shelved` activities of the books it added to the
    /// buyer's library, to send.
    Confirmed(Pending),
    Rejected,
    /// Not pending any more (a duplicate delivery, or cancelled first): nothing done.
    AlreadyDone(OrderStatus),
    NotFound,
}

/// Locks an order for a status change: its status and buyer, or `None` if there is none.
async fn lock(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<(OrderStatus, Option<Uuid>)>> {
    Ok(sqlx::query!(
        r#"SELECT status AS "status: OrderStatus", user_id FROM orders WHERE id = $1 FOR UPDATE"#,
        order_id,
    )
    .fetch_optional(conn)
    .await?
    .map(|r| (r.status, r.user_id)))
}

struct Line {
    book_id: Uuid,
    quantity: i32,
}

/// An order's lines in book order: whoever moves the stock of several
/// books locks them in this order, so concurrent orders cannot deadlock.
async fn lines(conn: &mut PgConnection, order_id: Uuid) -> Result<Vec<Line>> {
    Ok(sqlx::query_as!(
        Line,
        "SELECT book_id, quantity FROM order_items WHERE order_id = $1 ORDER BY book_id",
        order_id,
    )
    .fetch_all(conn)
    .await?)
}

/// The worker's step for one order, in one transaction: lock the order; unless pending,
/// stop; reserve every line with a guarded single-statement update, recorded in the
/// ledger; confirm and shelve the books for the buyer — or, if any line is short, undo the
/// reservations and reject.
pub async fn process(db: &PgPool, order_id: Uuid) -> Result<ProcessOutcome> {
    let mut tx = db.begin().await?;
    let Some((status, user)) = lock(&mut tx, order_id).await? else {
        return Ok(ProcessOutcome::NotFound);
    };
    if status != OrderStatus::Pending {
        return Ok(ProcessOutcome::AlreadyDone(status));
    }
    let lines = lines(&mut tx, order_id).await?;

    // A savepoint: a short line rolls back only the reservations.
    let mut reserve = sqlx::Connection::begin(&mut *tx).await?;
    let mut all_reserved = true;
    for line in lines {
        let why = StockReason::OrderReserved { order: order_id };
        if inventory::move_stock(&mut reserve, line.book_id, -line.quantity, why)
            .await?
            .is_none()
        {
            all_reserved = false;
            break;
        }
    }
    let outcome = if all_reserved {
        reserve.commit().await?;
        sqlx::query!(
            "UPDATE orders SET status = 'confirmed', updated_at = now() WHERE id = $1",
            order_id,
        )
        .execute(&mut *tx)
        .await?;
        let mut pending = Vec::new();
        if let Some(user) = user {
            let shelved = sqlx::query_scalar!(
                "INSERT INTO library_entries (user_id, book_id, status)
                 SELECT $1, b.id, 'want_to_read' FROM books b
                 WHERE b.id IN (SELECT book_id FROM order_items WHERE order_id = $2)
                 ON CONFLICT (user_id, book_id) DO NOTHING
                 RETURNING book_id",
                user,
                order_id,
            )
            .fetch_all(&mut *tx)
            .await?;
            let made: Vec<NewActivity> = shelved
                .into_iter()
                .map(|book| NewActivity::shelved(user, book, ReadingStatus::WantToRead))
                .collect();
            pending = activities::record(&mut tx, &made).await?;
        }
        ProcessOutcome::Confirmed(pending)
    } else {
        reserve.rollback().await?;
        sqlx::query!(
            "UPDATE orders SET status = 'rejected', rejection_reason = $2, updated_at = now() WHERE id = $1",
            order_id,
            REJECTED_INSUFFICIENT_STOCK,
        )
        .execute(&mut *tx)
        .await?;
        ProcessOutcome::Rejected
    };
    tx.commit().await?;
    Ok(outcome)
}

#[derive(Debug)]
pub enum CancelOutcome {
    Cancelled(Order),
    NotFound,
    /// Already cancelled or rejected.
    NotCancellable(OrderStatus),
}

/// Cancels an order the caller may see (`owner: None` for admins). A confirmed order's stock
/// goes back in the same transaction that marks it cancelled, so it goes back exactly once.
pub async fn cancel(db: &PgPool, order_id: Uuid, owner: Option<Uuid>) -> Result<CancelOutcome> {
    let mut tx = db.begin().await?;
    let Some((status, user)) = lock(&mut tx, order_id).await? else {
        return Ok(CancelOutcome::NotFound);
    };
    if owner.is_some() && owner != user {
        return Ok(CancelOutcome::NotFound);
    }
    match status {
        OrderStatus::Cancelled | OrderStatus::Rejected => return Ok(CancelOutcome::NotCancellable(status)),
        OrderStatus::Pending => {}
        OrderStatus::Confirmed => {
            for line in lines(&mut tx, order_id).await? {
                // A book deleted since has no stock to return to: `None`, and nothing to record.
                let why = StockReason::OrderCancelled { order: order_id };
                inventory::move_stock(&mut tx, line.book_id, line.quantity, why).await?;
            }
        }
    }
    sqlx::query!(
        "UPDATE orders SET status = 'cancelled', updated_at = now() WHERE id = $1",
        order_id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(CancelOutcome::Cancelled(get(db, order_id).await?))
}
