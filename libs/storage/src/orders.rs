//! Orders: creation with the outbox and idempotency keys, the worker's reservation, cancel.

use std::collections::HashMap;

use bookshelf_domain::order::REJECTED_INSUFFICIENT_STOCK;
use bookshelf_domain::{Cursor, Order, OrderItem, OrderLine, OrderMessage, OrderStatus, PageParams};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::{Result, StorageError};

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    user_id: Option<Uuid>,
    status: String,
    total_cents: i64,
    rejection_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    order_id: Uuid,
    book_id: Uuid,
    title: String,
    quantity: i32,
    unit_price_cents: i64,
}

const ORDER_COLUMNS: &str = "id, user_id, status, total_cents, rejection_reason, created_at, updated_at";

/// Attaches their items to order rows, keeping the rows' order.
async fn with_items(db: impl PgExecutor<'_>, rows: Vec<OrderRow>) -> Result<Vec<Order>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let items: Vec<ItemRow> = sqlx::query_as(
        "SELECT order_id, book_id, title, quantity, unit_price_cents FROM order_items
         WHERE order_id = ANY($1) ORDER BY order_id, line",
    )
    .bind(&ids)
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
            // The CHECK constraint admits only the four statuses.
            status: OrderStatus::parse(&r.status).unwrap_or(OrderStatus::Pending),
            items: by_order.remove(&r.id).unwrap_or_default(),
            total_cents: r.total_cents,
            rejection_reason: r.rejection_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect())
}

pub async fn get(db: &PgPool, id: Uuid) -> Result<Order> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
    let row: OrderRow = sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(StorageError::NotFound)?;
    Ok(with_items(db, vec![row]).await?.remove(0))
}

pub enum CreateOutcome {
    /// A new order; `outbox_id` is its unsent queue message.
    Created { order: Order, outbox_id: i64 },
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
        sqlx::query(
            "DELETE FROM idempotency_keys
             WHERE user_id = $1 AND key = $2 AND created_at < now() - interval '24 hours'",
        )
        .bind(user)
        .bind(key)
        .execute(&mut *tx)
        .await?;
        let claimed: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, order_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, key) DO NOTHING RETURNING order_id",
        )
        .bind(user)
        .bind(key)
        .bind(&hash[..])
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            tx.rollback().await?;
            let (first_hash, first_order): (Vec<u8>, Uuid) = sqlx::query_as(
                "SELECT request_hash, order_id FROM idempotency_keys WHERE user_id = $1 AND key = $2",
            )
            .bind(user)
            .bind(key)
            .fetch_one(db)
            .await?;
            return Ok(if first_hash == hash {
                CreateOutcome::Replayed(get(db, first_order).await?)
            } else {
                CreateOutcome::KeyConflict
            });
        }
    }

    let ids: Vec<Uuid> = lines.iter().map(|l| l.book_id).collect();
    let books: HashMap<Uuid, (String, i64)> = sqlx::query_as::<_, (Uuid, String, i64)>(
        "SELECT id, title, price_cents FROM books WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(id, title, price)| (id, (title, price)))
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
    sqlx::query("INSERT INTO orders (id, user_id, total_cents) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(user)
        .bind(total)
        .execute(&mut *tx)
        .await?;
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "INSERT INTO order_items (order_id, line, book_id, title, quantity, unit_price_cents) ",
    );
    q.push_values(lines.iter().enumerate(), |mut row, (i, l)| {
        let (title, price) = &books[&l.book_id];
        row.push_bind(id)
            .push_bind(i as i16)
            .push_bind(l.book_id)
            .push_bind(title.clone())
            .push_bind(l.quantity)
            .push_bind(*price);
    });
    q.build().execute(&mut *tx).await?;
    let payload = serde_json::to_value(OrderMessage { order_id: id }).unwrap_or_default();
    let outbox_id: i64 =
        sqlx::query_scalar("INSERT INTO outbox (order_id, payload) VALUES ($1, $2) RETURNING id")
            .bind(id)
            .bind(payload)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(CreateOutcome::Created {
        order: get(db, id).await?,
        outbox_id,
    })
}

pub async fn mark_sent(db: impl PgExecutor<'_>, outbox_id: i64) -> Result<()> {
    sqlx::query(
        "UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = $1 AND sent_at IS NULL",
    )
    .bind(outbox_id)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn mark_failed(db: impl PgExecutor<'_>, outbox_id: i64, error: &str) -> Result<()> {
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
        .bind(outbox_id)
        .bind(error)
        .execute(db)
        .await?;
    Ok(())
}

/// Unsent outbox messages older than `min_age_secs` (younger ones are still being sent by
/// their request), locked so that two relays never send the same one at once.
pub async fn claim_unsent(
    conn: &mut PgConnection,
    min_age_secs: i64,
    limit: i64,
) -> Result<Vec<(i64, serde_json::Value)>> {
    Ok(sqlx::query_as(
        "SELECT id, payload FROM outbox
         WHERE sent_at IS NULL AND created_at <= now() - make_interval(secs => $1)
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(min_age_secs as f64)
    .bind(limit)
    .fetch_all(conn)
    .await?)
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessOutcome {
    Confirmed,
    Rejected,
    /// Not pending any more (a duplicate delivery, or cancelled first): nothing done.
    AlreadyDone(OrderStatus),
    NotFound,
}

/// The worker's step for one order, in one transaction: lock the order; unless pending,
/// stop; reserve every line with a guarded single-statement update (books locked in id
/// order, so concurrent orders cannot deadlock); record the ledger; confirm and shelve the
/// books for the buyer — or, if any line is short, undo the reservations and reject.
pub async fn process(db: &PgPool, order_id: Uuid) -> Result<ProcessOutcome> {
    let mut tx = db.begin().await?;
    let row: Option<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT status, user_id FROM orders WHERE id = $1 FOR UPDATE")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((status, user)) = row else {
        return Ok(ProcessOutcome::NotFound);
    };
    let status = OrderStatus::parse(&status).unwrap_or(OrderStatus::Pending);
    if status != OrderStatus::Pending {
        return Ok(ProcessOutcome::AlreadyDone(status));
    }
    let lines: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT book_id, quantity FROM order_items WHERE order_id = $1 ORDER BY book_id")
            .bind(order_id)
            .fetch_all(&mut *tx)
            .await?;

    // A savepoint: a short line rolls back only the reservations.
    let mut reserve = sqlx::Connection::begin(&mut *tx).await?;
    let mut all_reserved = true;
    for (book, quantity) in &lines {
        let left: Option<i32> = sqlx::query_scalar(
            "UPDATE books SET stock = stock - $2, version = version + 1, updated_at = now()
             WHERE id = $1 AND stock >= $2 RETURNING stock",
        )
        .bind(book)
        .bind(quantity)
        .fetch_optional(&mut *reserve)
        .await?;
        match left {
            Some(stock_after) => {
                sqlx::query(
                    "INSERT INTO inventory_ledger (book_id, delta, stock_after, reason, order_id)
                     VALUES ($1, $2, $3, 'order reserved', $4)",
                )
                .bind(book)
                .bind(-quantity)
                .bind(stock_after)
                .bind(order_id)
                .execute(&mut *reserve)
                .await?;
            }
            None => {
                all_reserved = false;
                break;
            }
        }
    }
    let outcome = if all_reserved {
        reserve.commit().await?;
        sqlx::query("UPDATE orders SET status = 'confirmed', updated_at = now() WHERE id = $1")
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
        if let Some(user) = user {
            sqlx::query(
                "INSERT INTO library_entries (user_id, book_id, status)
                 SELECT $1, b.id, 'want_to_read' FROM books b
                 WHERE b.id IN (SELECT book_id FROM order_items WHERE order_id = $2)
                 ON CONFLICT (user_id, book_id) DO NOTHING",
            )
            .bind(user)
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
        }
        ProcessOutcome::Confirmed
    } else {
        reserve.rollback().await?;
        sqlx::query(
            "UPDATE orders SET status = 'rejected', rejection_reason = $2, updated_at = now() WHERE id = $1",
        )
        .bind(order_id)
        .bind(REJECTED_INSUFFICIENT_STOCK)
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
    let row: Option<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT status, user_id FROM orders WHERE id = $1 FOR UPDATE")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((status, user)) = row else {
        return Ok(CancelOutcome::NotFound);
    };
    if owner.is_some() && owner != user {
        return Ok(CancelOutcome::NotFound);
    }
    let status = OrderStatus::parse(&status).unwrap_or(OrderStatus::Pending);
    match status {
        OrderStatus::Cancelled | OrderStatus::Rejected => return Ok(CancelOutcome::NotCancellable(status)),
        OrderStatus::Pending => {}
        OrderStatus::Confirmed => {
            let lines: Vec<(Uuid, i32)> = sqlx::query_as(
                "SELECT book_id, quantity FROM order_items WHERE order_id = $1 ORDER BY book_id",
            )
            .bind(order_id)
            .fetch_all(&mut *tx)
            .await?;
            for (book, quantity) in lines {
                // A book deleted since has no stock to return to.
                let stock_after: Option<i32> = sqlx::query_scalar(
                    "UPDATE books SET stock = stock + $2, version = version + 1, updated_at = now()
                     WHERE id = $1 RETURNING stock",
                )
                .bind(book)
                .bind(quantity)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(stock_after) = stock_after {
                    sqlx::query(
                        "INSERT INTO inventory_ledger (book_id, delta, stock_after, reason, order_id)
                         VALUES ($1, $2, $3, 'order cancelled', $4)",
                    )
                    .bind(book)
                    .bind(quantity)
                    .bind(stock_after)
                    .bind(order_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
    }
    sqlx::query("UPDATE orders SET status = 'cancelled', updated_at = now() WHERE id = $1")
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(CancelOutcome::Cancelled(get(db, order_id).await?))
}
