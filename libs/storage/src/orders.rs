//! Orders: creation with the outbox and idempotency keys, the worker's reservation, cancel.

use crate::{Conn, DbPool};
use std::collections::HashMap;

use bookshelf_domain::order::{self, PendingOrder, REJECTED_INSUFFICIENT_STOCK};
use bookshelf_domain::{
    Cursor, NewActivity, Order, OrderItem, OrderLine, OrderMessage, OrderStatus, PageParams, ReadingStatus,
};
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Postgres, QueryBuilder};
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

pub async fn get(db: &DbPool, id: Uuid) -> Result<Order> {
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
    /// These lines name books that are not for sale (no price).
    NotForSale(Vec<usize>),
}

/// Records an order, its lines (titles and prices copied) and its outbox message, all in
/// one statement (so atomically, without a transaction's extra round trips). With an
/// idempotency key, in a transaction that inserts the key's row first: a concurrent
/// request with the same key waits on it and then sees the first order.
pub async fn create(
    db: &DbPool,
    user: Uuid,
    lines: &[OrderLine],
    key: Option<(&str, [u8; 32])>,
) -> Result<CreateOutcome> {
    let id = Uuid::new_v4();
    let Some((key, hash)) = key else {
        return insert_new(&mut *db.acquire().await?, id, user, lines).await;
    };
    let mut tx = db.begin().await?;
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
    let outcome = insert_new(&mut tx, id, user, lines).await?;
    match outcome {
        CreateOutcome::Created { .. } => tx.commit().await?,
        _ => tx.rollback().await?,
    }
    Ok(outcome)
}

/// The order itself: prices the lines from the books they name, then writes the order, its
/// lines and its outbox message in one statement.
async fn insert_new(conn: &mut Conn, id: Uuid, user: Uuid, lines: &[OrderLine]) -> Result<CreateOutcome> {
    let ids: Vec<Uuid> = lines.iter().map(|l| l.book_id).collect();
    let books: HashMap<Uuid, (String, Option<i64>)> = sqlx::query!(
        "SELECT id, title, price_cents FROM books WHERE id = ANY($1)",
        &ids
    )
    .fetch_all(&mut *conn)
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
        return Ok(CreateOutcome::UnknownBooks(unknown));
    }
    let unpriced: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| books[&l.book_id].1.is_none())
        .map(|(i, _)| i)
        .collect();
    if !unpriced.is_empty() {
        return Ok(CreateOutcome::NotForSale(unpriced));
    }
    // Every line's book has a price (checked just above).
    let price = |l: &OrderLine| books[&l.book_id].1.unwrap_or_default();
    let Some(total) = bookshelf_domain::order::total_cents(lines, price) else {
        return Ok(CreateOutcome::TotalTooLarge);
    };
    let items: Vec<OrderItem> = lines
        .iter()
        .map(|l| OrderItem {
            book_id: l.book_id,
            title: books[&l.book_id].0.clone(),
            quantity: l.quantity,
            unit_price_cents: price(l),
        })
        .collect();
    // Lines are at most 50 (validated), so their index fits a smallint.
    let numbers: Vec<i16> = (0..lines.len()).map(|i| i as i16).collect();
    let titles: Vec<&str> = items.iter().map(|i| i.title.as_str()).collect();
    let prices: Vec<i64> = items.iter().map(|i| i.unit_price_cents).collect();
    let quantities: Vec<i32> = items.iter().map(|i| i.quantity).collect();
    let payload = serde_json::to_value(OrderMessage { order_id: id }).map_err(StorageError::Encode)?;
    // The lines' and the message's foreign keys are checked at the end of the statement,
    // when the order row is there.
    let row = sqlx::query!(
        r#"WITH placed AS (
             INSERT INTO orders (id, user_id, total_cents) VALUES ($1, $2, $3)
             RETURNING created_at, updated_at
           ), lines AS (
             INSERT INTO order_items (order_id, line, book_id, title, quantity, unit_price_cents)
             SELECT $1, * FROM unnest($4::smallint[], $5::uuid[], $6::text[], $7::int[], $8::bigint[])
           ), message AS (
             INSERT INTO outbox (topic, order_id, payload) VALUES ('orders', $1, $9) RETURNING id
           )
           SELECT placed.created_at AS "created_at!", placed.updated_at AS "updated_at!",
                  message.id AS "outbox_id!"
           FROM placed, message"#,
        id,
        user,
        total,
        &numbers,
        &ids,
        &titles as &[&str],
        &quantities,
        &prices,
        payload,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(CreateOutcome::Created {
        order: Order {
            id,
            user_id: Some(user),
            status: OrderStatus::Pending,
            items,
            total_cents: total,
            rejection_reason: None,
            created_at: row.created_at,
            updated_at: row.updated_at,
        },
        message: OutboxMessage {
            id: row.outbox_id,
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
    db: &DbPool,
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
async fn lock(conn: &mut Conn, order_id: Uuid) -> Result<Option<(OrderStatus, Option<Uuid>)>> {
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
async fn lines(conn: &mut Conn, order_id: Uuid) -> Result<Vec<Line>> {
    Ok(sqlx::query_as!(
        Line,
        "SELECT book_id, quantity FROM order_items WHERE order_id = $1 ORDER BY book_id",
        order_id,
    )
    .fetch_all(conn)
    .await?)
}

/// The worker's step for a batch of orders (`ids`, in delivery order), in one
/// transaction: lock the orders and then their books (each in id order); decide every
/// pending order against the locked stock (`order::allocate`: all lines or none); write
/// each book's stock once for the whole batch, the ledger rows, the statuses and the
/// buyers' new shelf entries. A popular book's row is then locked and written once per
/// batch rather than once per order. One outcome per id, in order; an id given twice gets
/// `AlreadyDone` the second time. An error leaves everything as it was.
pub async fn process_many(db: &DbPool, ids: &[Uuid]) -> Result<Vec<ProcessOutcome>> {
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let mut tx = db.begin().await?;
    let found: HashMap<Uuid, (OrderStatus, Option<Uuid>)> = sqlx::query!(
        r#"SELECT id, status AS "status: OrderStatus", user_id FROM orders
           WHERE id = ANY($1) ORDER BY id FOR UPDATE"#,
        &unique,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.id, (r.status, r.user_id)))
    .collect();
    let mut pending: Vec<PendingOrder> = Vec::new();
    for id in ids {
        let is_pending = matches!(found.get(id), Some((OrderStatus::Pending, _)));
        if is_pending && !pending.iter().any(|p| p.id == *id) {
            pending.push(PendingOrder {
                id: *id,
                lines: Vec::new(),
            });
        }
    }
    let pending_ids: Vec<Uuid> = pending.iter().map(|p| p.id).collect();
    // Confirming shelves books for several buyers in one statement: their change-feed
    // heads are taken first, in one order, so two batches never wait on each other's.
    let buyers: Vec<Uuid> = pending
        .iter()
        .filter_map(|p| found.get(&p.id).and_then(|(_, user)| *user))
        .collect();
    crate::changes::hold(&mut tx, &buyers).await?;
    for line in sqlx::query!(
        "SELECT order_id, book_id, quantity FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, book_id",
        &pending_ids,
    )
    .fetch_all(&mut *tx)
    .await?
    {
        if let Some(p) = pending.iter_mut().find(|p| p.id == line.order_id) {
            p.lines.push((line.book_id, line.quantity));
        }
    }
    let mut books: Vec<Uuid> = pending.iter().flat_map(|p| p.lines.iter().map(|l| l.0)).collect();
    books.sort_unstable();
    books.dedup();
    let mut stock = inventory::lock_stock(&mut tx, &books).await?;
    let decisions = order::allocate(&pending, &mut stock);

    let mut moves = Vec::new();
    let (mut confirmed, mut rejected) = (Vec::new(), Vec::new());
    for (order, decision) in pending.iter().zip(&decisions) {
        match decision {
            Some(reserved) => {
                confirmed.push(order.id);
                moves.extend(reserved.iter().map(|r| inventory::StockMove {
                    book: r.book_id,
                    delta: -r.quantity,
                    stock_after: r.stock_after,
                    why: StockReason::OrderReserved { order: order.id },
                }));
            }
            None => rejected.push(order.id),
        }
    }
    // The buyers' new shelf entries, each announced by the first confirmed order with it.
    let mut buyers = Vec::new();
    let mut shelf_books = Vec::new();
    for (order, decision) in pending.iter().zip(&decisions) {
        if let (Some(reserved), Some((_, Some(user)))) = (decision, found.get(&order.id)) {
            for r in reserved {
                buyers.push(*user);
                shelf_books.push(r.book_id);
            }
        }
    }

    // Everything decided, written in one statement: the books' stock (one guarded update
    // per book with the sum of its moves), the ledger rows, the orders' statuses and the
    // new shelf entries. The books' rows stay locked until commit, and every round trip
    // under that lock is time the next batch of the same book waits.
    let per_book = inventory::per_book(&moves);
    let (stock_books, stock_deltas): (Vec<Uuid>, Vec<i32>) =
        per_book.iter().map(|(b, d, _)| (*b, *d)).unzip();
    let ledger = inventory::LedgerRows::of(&moves);
    let written = settle(
        &mut tx,
        &stock_books,
        &stock_deltas,
        &ledger,
        &confirmed,
        &rejected,
        &buyers,
        &shelf_books,
    )
    .await?;
    let mut updated: HashMap<Uuid, i32> = HashMap::new();
    let mut shelved = Vec::new();
    for row in written {
        match (row.stock, row.book) {
            (Some(stock), _) => {
                updated.insert(row.id, stock);
            }
            (None, Some(book)) => shelved.push((row.id, book)),
            (None, None) => {}
        }
    }
    // A book whose stock did not end where the moves say (the locks make that impossible,
    // short of a bug) fails the whole batch, rolled back when `tx` drops.
    if per_book.iter().any(|(b, _, after)| updated.get(b) != Some(after)) {
        return Err(StorageError::Conflict("stock"));
    }

    let mut announced: HashMap<Uuid, Pending> = HashMap::new();
    for (user, book) in shelved {
        let by = pending.iter().zip(&decisions).find(|(o, d)| {
            found.get(&o.id).is_some_and(|(_, u)| *u == Some(user))
                && d.as_ref().is_some_and(|r| r.iter().any(|r| r.book_id == book))
        });
        if let Some((order, _)) = by {
            let made = [NewActivity::shelved(user, book, ReadingStatus::WantToRead)];
            let sent = activities::record(&mut tx, &made).await?;
            announced.entry(order.id).or_default().extend(sent);
        }
    }
    tx.commit().await?;

    let now: HashMap<Uuid, OrderStatus> = confirmed
        .iter()
        .map(|id| (*id, OrderStatus::Confirmed))
        .chain(rejected.iter().map(|id| (*id, OrderStatus::Rejected)))
        .collect();
    let mut decided: HashMap<Uuid, ProcessOutcome> = pending
        .iter()
        .zip(decisions)
        .map(|(o, d)| {
            let outcome = match d {
                Some(_) => ProcessOutcome::Confirmed(announced.remove(&o.id).unwrap_or_default()),
                None => ProcessOutcome::Rejected,
            };
            (o.id, outcome)
        })
        .collect();
    Ok(ids
        .iter()
        .map(|id| match (decided.remove(id), found.get(id)) {
            (Some(outcome), _) => outcome,
            (None, None) => ProcessOutcome::NotFound,
            // Not pending, or pending and decided for an earlier copy of the same id.
            (None, Some((status, _))) => ProcessOutcome::AlreadyDone(now.get(id).copied().unwrap_or(*status)),
        })
        .collect())
}

/// The settling statement of `process_many` (its comment says what it writes).
#[allow(clippy::too_many_arguments)]
async fn settle(
    conn: &mut Conn,
    stock_books: &[Uuid],
    stock_deltas: &[i32],
    ledger: &inventory::LedgerRows<'_>,
    confirmed: &[Uuid],
    rejected: &[Uuid],
    buyers: &[Uuid],
    shelf_books: &[Uuid],
) -> Result<Vec<Settled>> {
    Ok(sqlx::query_as!(
        Settled,
        r#"WITH stock AS (
             UPDATE books b SET stock = b.stock + d.delta, version = b.version + 1, updated_at = now()
             FROM unnest($1::uuid[], $2::int[]) AS d(id, delta)
             WHERE b.id = d.id AND b.stock + d.delta >= 0
             RETURNING b.id, b.stock
           ), ledger AS (
             INSERT INTO inventory_ledger (book_id, delta, stock_after, reason, actor_id, order_id)
             SELECT * FROM unnest($3::uuid[], $4::int[], $5::int[], $6::text[], $7::uuid[], $8::uuid[])
           ), confirmed AS (
             UPDATE orders SET status = 'confirmed', updated_at = now()
             WHERE id = ANY((SELECT $9::uuid[])::uuid[])
           ), rejected AS (
             UPDATE orders SET status = 'rejected', rejection_reason = $11, updated_at = now()
             WHERE id = ANY((SELECT $10::uuid[])::uuid[])
           ), shelved AS (
             INSERT INTO library_entries (user_id, book_id, status)
             SELECT DISTINCT u, b, 'want_to_read' FROM unnest($12::uuid[], $13::uuid[]) AS x(u, b)
             ON CONFLICT (user_id, book_id) DO NOTHING
             RETURNING user_id, book_id
           )
           SELECT id AS "id!", stock AS "stock?", NULL::uuid AS "book?" FROM stock
           UNION ALL
           SELECT user_id, NULL::int, book_id FROM shelved"#,
        stock_books,
        stock_deltas,
        &ledger.books,
        &ledger.deltas,
        &ledger.after,
        &ledger.reasons as &[&str],
        &ledger.actors as &[Option<Uuid>],
        &ledger.orders as &[Option<Uuid>],
        confirmed,
        rejected,
        REJECTED_INSUFFICIENT_STOCK,
        buyers,
        shelf_books,
    )
    .fetch_all(conn)
    .await?)
}

/// A row of `settle`: a book's new stock (`stock`), or a new shelf entry (`book`, with the
/// user in `id`).
struct Settled {
    id: Uuid,
    stock: Option<i32>,
    book: Option<Uuid>,
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
pub async fn cancel(db: &DbPool, order_id: Uuid, owner: Option<Uuid>) -> Result<CancelOutcome> {
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
