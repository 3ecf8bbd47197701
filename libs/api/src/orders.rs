//! Orders: recorded and queued here, processed by the worker.

use std::sync::Arc;

use bookshelf_config::metrics;
use bookshelf_domain::order::{idempotency_key, request_fingerprint};
use bookshelf_domain::{field, AllValid, FieldError, Order, OrderInput, OrderStatus, PageParams, Role};
use bookshelf_http::{
    enum_param, json, path_uuid, query_param, read_json, ApiError, Body, Identity, Page, Request, Response,
};
use bookshelf_storage::orders::{self, CancelOutcome, CreateOutcome, OrderFilter};
use bookshelf_storage::outbox::Topic;
use bookshelf_storage::StorageError;
use http::StatusCode;

use crate::openapi::{OrderPage, Problem};
use crate::AppState;

fn order_response(status: StatusCode, order: &Order) -> Response<Body> {
    let mut r = json(status, order);
    if let Ok(v) = format!("/orders/{}", order.id).parse() {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

/// Owners see their orders, admins every order; anyone else is told it does not exist.
fn visible_to(order: &Order, who: &Identity) -> bool {
    who.role == Role::Admin || order.user_id == Some(who.user_id)
}

#[utoipa::path(post, path = "/orders", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Retries with the same key (same user, 24 h) return the first order; a different body → 422")),
    request_body = OrderInput,
    responses(
        (status = 202, description = "Recorded and queued; poll GET /orders/{id}", body = Order,
            headers(("Location" = String, description = "/orders/{id}"))),
        (status = 200, description = "Replay of an Idempotency-Key: the first order", body = Order),
        (status = 400, description = "Invalid lines, or a book that does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Idempotency-Key reused with a different body", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let key = req
        .headers()
        .get("idempotency-key")
        .map(|k| {
            k.to_str()
                .map_err(|_| "must be visible ASCII".to_string())
                .and_then(idempotency_key)
        })
        .transpose();
    let input: OrderInput = read_json(&req)?;
    let (key, lines) = (field("Idempotency-Key", key), input.validate()).all_valid()?;
    let fingerprint = request_fingerprint(&lines);

    let outcome = orders::create(
        state.db()?,
        who.user_id,
        &lines,
        key.as_deref().map(|k| (k, fingerprint)),
    )
    .await?;
    let (order, message) = match outcome {
        CreateOutcome::Created { order, message } => {
            state.metrics.count(metrics::ORDERS_ACCEPTED, 1);
            (order, message)
        }
        CreateOutcome::Replayed(order) => {
            tracing::info!(order_id = %order.id, "idempotent replay");
            return Ok(order_response(StatusCode::OK, &order));
        }
        CreateOutcome::KeyConflict => {
            return Err(ApiError::Unprocessable(
                "this Idempotency-Key was used with a different request body".into(),
            ))
        }
        CreateOutcome::TotalTooLarge => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "items",
                format!(
                    "the order's total is over {} cents, the largest amount there is",
                    i64::MAX
                ),
            )]))
        }
        CreateOutcome::UnknownBooks(lines) => {
            return Err(ApiError::Validation(
                lines
                    .into_iter()
                    .map(|i| FieldError::new(format!("items[{i}].bookId"), "names no book in the catalog"))
                    .collect(),
            ))
        }
        CreateOutcome::NotForSale(lines) => {
            return Err(ApiError::Validation(
                lines
                    .into_iter()
                    .map(|i| {
                        FieldError::new(format!("items[{i}].bookId"), "names a book that is not for sale")
                    })
                    .collect(),
            ))
        }
    };
    tracing::info!(order_id = %order.id, lines = order.items.len(), total_cents = order.total_cents, "order recorded");

    // The order is safe in the database with its outbox row; sending now is only the fast
    // path. If it fails, the relay sends it later and the client still gets its 202.
    crate::publish::send(&state, Topic::Orders, &[message]).await;
    Ok(order_response(StatusCode::ACCEPTED, &order))
}

#[utoipa::path(get, path = "/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 400, description = "id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let order = match orders::get(state.db()?, id).await {
        Ok(o) if visible_to(&o, &who) => o,
        Ok(_) | Err(StorageError::NotFound) => return Err(ApiError::not_found("order")),
        Err(e) => return Err(e.into()),
    };
    Ok(json(StatusCode::OK, &order))
}

#[utoipa::path(get, path = "/orders", tag = "orders", security(("bearer" = [])),
    params(
        ("status" = Option<OrderStatus>, Query, description = "Only orders with this status"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "The caller's orders (an admin's: everyone's), oldest first", body = OrderPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let (status, page) = (
        enum_param(&req, "status", OrderStatus::parse, OrderStatus::ALL),
        PageParams::parse(query_param(&req, "limit"), query_param(&req, "cursor")),
    )
        .all_valid()?;
    let filter = OrderFilter {
        user: (who.role != Role::Admin).then_some(who.user_id),
        status,
    };
    let (items, next) = orders::list(state.db()?, filter, page).await?;
    Ok(json(
        StatusCode::OK,
        &Page {
            items,
            next_cursor: next.map(|c| c.encode()),
        },
    ))
}

#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "Cancelled; a confirmed order's stock went back", body = Order),
        (status = 400, description = "id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already cancelled or rejected", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let owner = (who.role != Role::Admin).then_some(who.user_id);
    match orders::cancel(state.db()?, id, owner).await? {
        CancelOutcome::Cancelled(order) => {
            tracing::info!(order_id = %id, "order cancelled");
            state.metrics.count(metrics::ORDERS_CANCELLED, 1);
            Ok(json(StatusCode::OK, &order))
        }
        CancelOutcome::NotFound => Err(ApiError::not_found("order")),
        CancelOutcome::NotCancellable(status) => Err(ApiError::Conflict(format!(
            "the order is {} and cannot be cancelled",
            status.as_str()
        ))),
    }
}
