//! Orders: their shape, the rules for a new order, and the queue message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::user::rfc3339;
use std::collections::HashSet;

use crate::{field, AllValid, Checked, Input};

/// Stored as text; a value the database holds that is not a status fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Rejected,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: &'static str = "pending, confirmed, rejected, cancelled";

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        match s {
            "pending" => Some(OrderStatus::Pending),
            "confirmed" => Some(OrderStatus::Confirmed),
            "rejected" => Some(OrderStatus::Rejected),
            "cancelled" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    pub book_id: Uuid,
    pub title: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub total_cents: i64,
    pub rejection_reason: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

pub const MAX_LINES: usize = 50;
pub const REJECTED_INSUFFICIENT_STOCK: &str = "insufficient_stock";

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OrderInput {
    #[serde(default)]
    #[schema(value_type = Vec<OrderLineInput>, min_items = 1, max_items = 50, required = true)]
    pub items: Input<Vec<serde_json::Value>>,
}

/// One line of an order: a book and how many copies.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLineInput {
    pub book_id: Uuid,
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: i32,
}

/// A validated line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OrderLine {
    pub book_id: Uuid,
    pub quantity: i32,
}

impl OrderInput {
    /// Every bad line is named (`items[3].quantity`), as is a book ordered twice.
    pub fn validate(self) -> Checked<Vec<OrderLine>> {
        let items = field(
            "items",
            self.items.required().and_then(|items| {
                if items.is_empty() || items.len() > MAX_LINES {
                    Err(format!("must have 1 to {MAX_LINES} lines"))
                } else {
                    Ok(items)
                }
            }),
        )?;
        let mut seen = HashSet::new();
        let lines: Vec<Checked<OrderLine>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let line = order_line(i, item)?;
                if seen.insert(line.book_id) {
                    Ok(line)
                } else {
                    field(
                        &format!("items[{i}].bookId"),
                        Err("names a book already in this order".into()),
                    )
                }
            })
            .collect();
        lines.all_valid()
    }
}

/// Line `i` of a new order.
fn order_line(i: usize, item: &serde_json::Value) -> Checked<OrderLine> {
    let Some(obj) = item.as_object() else {
        return field(
            &format!("items[{i}]"),
            Err("must be an object with bookId and quantity".into()),
        );
    };
    let book_id = field(
        &format!("items[{i}].bookId"),
        match obj.get("bookId") {
            Some(serde_json::Value::String(s)) => {
                Uuid::parse_str(s).map_err(|_| "must be a UUID".to_string())
            }
            None | Some(serde_json::Value::Null) => Err("is required".into()),
            Some(_) => Err("must be a UUID string".into()),
        },
    );
    let quantity = field(
        &format!("items[{i}].quantity"),
        match obj.get("quantity").map(crate::input::integer) {
            Some(Some(q)) if (1..=100).contains(&q) => Ok(q as i32),
            Some(Some(_)) => Err("must be from 1 to 100".into()),
            Some(None) => Err("must be an integer from 1 to 100".into()),
            None => Err("is required".into()),
        },
    );
    let (book_id, quantity) = (book_id, quantity).all_valid()?;
    Ok(OrderLine { book_id, quantity })
}

/// The order's total from each line's unit price, or `None` when it does not fit the
/// 64-bit cents every amount is stored in (prices have no upper bound in the contract, so
/// 100 copies of a very expensive book could overflow; that is refused, never wrapped).
pub fn total_cents(lines: &[OrderLine], unit_price: impl Fn(&OrderLine) -> i64) -> Option<i64> {
    lines.iter().try_fold(0i64, |sum, l| {
        unit_price(l)
            .checked_mul(i64::from(l.quantity))
            .and_then(|line| sum.checked_add(line))
    })
}

/// What identifies "the same request" for an idempotency key: the validated lines.
pub fn request_fingerprint(lines: &[OrderLine]) -> [u8; 32] {
    let canonical = serde_json::to_vec(lines).unwrap_or_default();
    Sha256::digest(canonical).into()
}

pub fn idempotency_key(raw: &str) -> Result<String, String> {
    let key = raw.trim();
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err("must be 1 to 255 visible ASCII characters".into());
    }
    Ok(key.to_string())
}

/// The queue message: only the order id; the worker reads everything else from the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderMessage {
    pub order_id: Uuid,
}

/// A pending order as the worker finds it: its lines (book, quantity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOrder {
    pub id: Uuid,
    pub lines: Vec<(Uuid, i32)>,
}

/// One line's reservation: `quantity` copies of `book_id`, leaving `stock_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub book_id: Uuid,
    pub quantity: i32,
    pub stock_after: i32,
}

/// Decides a batch of orders in delivery order against the stock there is (`stock`, which
/// it draws down): each order gets every line or nothing (`None`: rejected), so a short
/// line rejects only its own order. A book missing from `stock` has none.
pub fn allocate(
    orders: &[PendingOrder],
    stock: &mut std::collections::HashMap<Uuid, i32>,
) -> Vec<Option<Vec<Reservation>>> {
    orders
        .iter()
        .map(|order| {
            let mut wanted: Vec<(Uuid, i32)> = Vec::new();
            for &(book, quantity) in &order.lines {
                match wanted.iter_mut().find(|(b, _)| *b == book) {
                    Some((_, q)) => *q = q.checked_add(quantity)?,
                    None => wanted.push((book, quantity)),
                }
            }
            let fits = wanted
                .iter()
                .all(|(book, q)| stock.get(book).is_some_and(|have| have >= q));
            if !fits {
                return None;
            }
            Some(
                order
                    .lines
                    .iter()
                    .map(|&(book_id, quantity)| {
                        let have = stock.entry(book_id).or_default();
                        *have -= quantity;
                        Reservation {
                            book_id,
                            quantity,
                            stock_after: *have,
                        }
                    })
                    .collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(v: serde_json::Value) -> Result<Vec<OrderLine>, Vec<String>> {
        let input: OrderInput = serde_json::from_value(v).unwrap();
        input
            .validate()
            .map_err(|e| e.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn validates_lines() {
        let a = Uuid::new_v4();
        assert_eq!(
            lines(json!({"items": [{"bookId": a, "quantity": 2}]})).unwrap(),
            [OrderLine {
                book_id: a,
                quantity: 2
            }]
        );
        assert_eq!(lines(json!({})).unwrap_err(), ["items"]);
        assert_eq!(lines(json!({"items": []})).unwrap_err(), ["items"]);
        assert_eq!(
            lines(json!({"items": [
                {"bookId": a, "quantity": 0}, {"bookId": "x", "quantity": 101}, 5, {"bookId": a, "quantity": 1}, {"quantity": 1.5}
            ]}))
            .unwrap_err(),
            ["items[0].quantity", "items[1].bookId", "items[1].quantity", "items[2]", "items[4].bookId", "items[4].quantity"]
        );
        assert_eq!(
            lines(json!({"items": [{"bookId": a, "quantity": 1}, {"bookId": a, "quantity": 2}]}))
                .unwrap_err(),
            ["items[1].bookId"]
        );
        let many: Vec<_> = (0..51)
            .map(|_| json!({"bookId": Uuid::new_v4(), "quantity": 1}))
            .collect();
        assert_eq!(lines(json!({"items": many})).unwrap_err(), ["items"]);
    }

    #[test]
    fn totals_add_up_or_refuse_to_overflow() {
        let line = |q| OrderLine {
            book_id: Uuid::new_v4(),
            quantity: q,
        };
        let lines = [line(2), line(3)];
        assert_eq!(
            total_cents(&lines, |l| if l.quantity == 2 { 1099 } else { 500 }),
            Some(3698)
        );
        assert_eq!(total_cents(&[], |_| 1), Some(0));
        assert_eq!(total_cents(&[line(1)], |_| i64::MAX), Some(i64::MAX));
        assert_eq!(total_cents(&[line(2)], |_| i64::MAX), None);
        assert_eq!(total_cents(&lines, |_| i64::MAX / 5), Some(i64::MAX / 5 * 5));
        assert_eq!(total_cents(&lines, |_| i64::MAX / 4), None);
        assert_eq!(total_cents(&[line(1), line(1)], |_| i64::MAX / 2 + 1), None);
    }

    #[test]
    fn fingerprints_and_keys() {
        let a = OrderLine {
            book_id: Uuid::new_v4(),
            quantity: 1,
        };
        let b = OrderLine { quantity: 2, ..a };
        assert_eq!(request_fingerprint(&[a]), request_fingerprint(&[a]));
        assert_ne!(request_fingerprint(&[a]), request_fingerprint(&[b]));
        assert!(idempotency_key("abc-123").is_ok());
        assert!(idempotency_key("").is_err() && idempotency_key("a b").is_err());
        assert!(serde_json::from_str::<OrderMessage>(r#"{"orderId":"nope"}"#).is_err());
    }

    fn pending(lines: &[(u128, i32)]) -> PendingOrder {
        PendingOrder {
            id: Uuid::new_v4(),
            lines: lines.iter().map(|&(b, q)| (Uuid::from_u128(b), q)).collect(),
        }
    }

    #[test]
    fn a_batch_draws_stock_down_in_delivery_order_and_a_short_order_takes_nothing() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut stock = std::collections::HashMap::from([(a, 3), (b, 1)]);
        let orders = [
            pending(&[(1, 2)]),
            pending(&[(1, 1), (2, 2)]), // b is short: nothing of a is taken either
            pending(&[(1, 1), (2, 1)]),
            pending(&[(1, 1)]), // a is gone by now
            pending(&[(3, 1)]), // no such book
        ];
        let got = allocate(&orders, &mut stock);
        let after = |r: &Option<Vec<Reservation>>| {
            r.as_ref()
                .map(|r| r.iter().map(|x| x.stock_after).collect::<Vec<_>>())
        };
        assert_eq!(
            got.iter().map(after).collect::<Vec<_>>(),
            [Some(vec![1]), None, Some(vec![0, 0]), None, None]
        );
        assert_eq!(stock[&a], 0);
        assert_eq!(stock[&b], 0);
    }

    #[test]
    fn two_lines_of_one_book_must_fit_together() {
        let mut stock = std::collections::HashMap::from([(Uuid::from_u128(1), 3)]);
        assert_eq!(allocate(&[pending(&[(1, 2), (1, 2)])], &mut stock), [None]);
        assert_eq!(stock[&Uuid::from_u128(1)], 3);
    }

    proptest::proptest! {
        /// Whatever the batch, no book goes below zero and every confirmed order got all
        /// its lines: the ledger rows it yields account for exactly the stock taken.
        #[test]
        fn allocation_never_oversells(
            initial in proptest::collection::vec(0i32..5, 3),
            orders in proptest::collection::vec(proptest::collection::vec((0u128..3, 1i32..4), 1..4), 0..12),
        ) {
            let books: Vec<Uuid> = (0..3).map(Uuid::from_u128).collect();
            let mut stock: std::collections::HashMap<Uuid, i32> = books.iter().copied().zip(initial.iter().copied()).collect();
            let orders: Vec<PendingOrder> = orders.iter().map(|l| pending(l)).collect();
            let got = allocate(&orders, &mut stock);
            for (i, book) in books.iter().enumerate() {
                let taken: i32 = got.iter().flatten().flatten().filter(|r| r.book_id == *book).map(|r| r.quantity).sum();
                proptest::prop_assert!(stock[book] >= 0);
                proptest::prop_assert_eq!(initial[i] - taken, stock[book]);
            }
            for (order, outcome) in orders.iter().zip(&got) {
                if let Some(r) = outcome {
                    proptest::prop_assert_eq!(r.len(), order.lines.len());
                }
            }
        }
    }
}
