//! Orders through the local gateway and the in-process queue: the contract's rules,
//! idempotency, concurrency, cancel, and the worker's at-least-once tolerance.

use std::time::Duration;

use bookshelf_api::worker::process_batch;
use bookshelf_devserver::worker::sqs_event;
use bookshelf_queue::{Queue, Received};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::books::create_book;
use crate::harness::Scene;
use crate::harness::{settled, token, TestApp};

fn order_body(items: &[(&str, i64)]) -> Value {
    json!({"items": items.iter().map(|(b, q)| json!({"bookId": b, "quantity": q})).collect::<Vec<_>>()})
}

async fn stock(app: &TestApp, admin: &str, book: &str) -> i64 {
    app.get(&format!("/books/{book}"), Some(admin)).await.body["stock"]
        .as_i64()
        .unwrap()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_order_is_accepted_then_confirmed_and_shelved() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let buyer = app.register("buyer@example.org", "password123").await;
    let t = token(&buyer);
    let dune = id_of(
        &create_book(
            &app,
            &admin,
            json!({"title": "Dune", "priceCents": 1099, "stock": 5}),
        )
        .await,
    );
    let emma = id_of(
        &create_book(
            &app,
            &admin,
            json!({"title": "Emma", "priceCents": 450, "stock": 2}),
        )
        .await,
    );

    let r = app
        .post("/orders", Some(&t), order_body(&[(&dune, 2), (&emma, 1)]))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let order = r.body.clone();
    let id = id_of(&order);
    assert_eq!(r.header("location"), Some(format!("/orders/{id}").as_str()));
    assert_eq!(order["status"], "pending");
    assert_eq!(order["userId"], buyer["user"]["id"]);
    assert_eq!(order["totalCents"], 2 * 1099 + 450);
    assert!(order["rejectionReason"].is_null());
    assert_eq!(
        order["items"],
        json!([
            {"bookId": dune, "title": "Dune", "quantity": 2, "unitPriceCents": 1099},
            {"bookId": emma, "title": "Emma", "quantity": 1, "unitPriceCents": 450}
        ])
    );

    // Prices are copied: a later price change does not touch the order.
    app.send(
        Method::PATCH,
        &format!("/books/{dune}"),
        Some(&admin),
        Some(json!({"priceCents": 1})),
    )
    .await;

    let done = settled(&app, &t, &id, Duration::from_secs(2)).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    assert_eq!(done["items"][0]["unitPriceCents"], 1099);
    assert_eq!(
        (stock(&app, &admin, &dune).await, stock(&app, &admin, &emma).await),
        (3, 1)
    );
    // The books are on the buyer's shelf as want_to_read.
    let shelf = app.get("/library", Some(&t)).await.body;
    let mut shelved: Vec<(&str, &str)> = shelf["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["bookId"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    shelved.sort();
    let mut expected = vec![(dune.as_str(), "want_to_read"), (emma.as_str(), "want_to_read")];
    expected.sort();
    assert_eq!(shelved, expected);
    // The ledger says which order took the stock.
    let reasons: Vec<(i32, String)> = sqlx::query_as(
        "SELECT delta, reason FROM inventory_ledger WHERE order_id = $1::uuid ORDER BY book_id",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(reasons.len(), 2);
    assert!(reasons.iter().all(|(d, r)| *d < 0 && r == "order reserved"));
}

#[tokio::test]
async fn a_shelved_book_keeps_its_entry() {
    let app = TestApp::start().await;
    let Scene { reader: t, book, .. } = app.scene("reader@example.org", json!({"stock": 3})).await;
    app.send(
        Method::PUT,
        &format!("/library/{book}"),
        Some(&t),
        Some(json!({"status": "read", "rating": 5})),
    )
    .await;
    let id = id_of(
        &app.post("/orders", Some(&t), order_body(&[(&book, 1)]))
            .await
            .body,
    );
    assert_eq!(
        settled(&app, &t, &id, Duration::from_secs(2)).await["status"],
        "confirmed"
    );
    let entry = &app.get("/library", Some(&t)).await.body["items"][0];
    assert_eq!(
        (entry["status"].as_str(), entry["rating"].as_i64()),
        (Some("read"), Some(5))
    );
}

#[tokio::test]
async fn invalid_orders_name_the_bad_lines() {
    let app = TestApp::start().await;
    let Scene {
        admin,
        reader: t,
        book,
    } = app.scene("x@example.org", json!({})).await;
    let ghost = uuid::Uuid::new_v4().to_string();

    assert_eq!(
        app.post("/orders", Some(&t), json!({})).await.bad_fields(),
        ["items"]
    );
    assert_eq!(
        app.post("/orders", Some(&t), json!({"items": []}))
            .await
            .bad_fields(),
        ["items"]
    );
    let r = app
        .post("/orders", Some(&t), order_body(&[(&book, 1), (&ghost, 1)]))
        .await;
    assert_eq!(r.bad_fields(), ["items[1].bookId"]);
    let r = app
        .post(
            "/orders",
            Some(&t),
            order_body(&[(&book, 0), (&book, 101), ("nope", 1)]),
        )
        .await;
    assert_eq!(
        r.bad_fields(),
        ["items[0].quantity", "items[1].quantity", "items[2].bookId"]
    );
    let r = app
        .post("/orders", Some(&t), order_body(&[(&book, 1), (&book, 2)]))
        .await;
    assert_eq!(r.bad_fields(), ["items[1].bookId"]);
    let many: Vec<(String, i64)> = (0..51).map(|_| (uuid::Uuid::new_v4().to_string(), 1)).collect();
    let many: Vec<(&str, i64)> = many.iter().map(|(b, q)| (b.as_str(), *q)).collect();
    assert_eq!(
        app.post("/orders", Some(&t), order_body(&many))
            .await
            .bad_fields(),
        ["items"]
    );
    // Prices have no upper bound, so a total can overflow 64-bit cents: refused, not wrapped.
    let dear = id_of(&create_book(&app, &admin, json!({"priceCents": i64::MAX})).await);
    let r = app.post("/orders", Some(&t), order_body(&[(&dear, 2)])).await;
    assert_eq!(r.bad_fields(), ["items"]);
    let r = app
        .post("/orders", Some(&t), order_body(&[(&dear, 1), (&book, 1)]))
        .await;
    assert_eq!(r.bad_fields(), ["items"]);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(orders, 0, "nothing recorded for a bad request");
    app.post("/orders", None, order_body(&[(&book, 1)]))
        .await
        .problem(401);
}

#[tokio::test]
async fn idempotency_keys_replay_and_conflict() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = token(&app.register("idem@example.org", "password123").await);
    let other = token(&app.register("other@example.org", "password123").await);
    let book = id_of(&create_book(&app, &admin, json!({"stock": 100})).await);
    let post = |token: String, key: &'static str, qty: i64| {
        let req = app
            .client
            .post(format!("{}/orders", app.url))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&order_body(&[(&book, qty)]));
        async move {
            let r = req.send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    // Ten concurrent retries with one key: one order, every answer names it.
    let results = futures::future::join_all((0..10).map(|_| post(t.clone(), "key-1", 2))).await;
    let ids: std::collections::HashSet<String> = results.iter().map(|(_, b)| id_of(b)).collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(
        results.iter().filter(|(s, _)| *s == StatusCode::ACCEPTED).count(),
        1
    );
    assert!(results
        .iter()
        .all(|(s, _)| *s == StatusCode::ACCEPTED || *s == StatusCode::OK));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);

    // Same key, different body → 422; another user's same key is theirs alone.
    let (status, body) = post(t.clone(), "key-1", 3).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["status"], 422);
    let (status, theirs) = post(other.clone(), "key-1", 2).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(!ids.contains(&id_of(&theirs)));

    // A key older than 24 hours no longer binds.
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, fresh) = post(t.clone(), "key-1", 3).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(!ids.contains(&id_of(&fresh)));

    let r = app
        .client
        .post(format!("{}/orders", app.url))
        .bearer_auth(&t)
        .header("idempotency-key", "")
        .json(&order_body(&[(&book, 1)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn short_stock_rejects_the_whole_order() {
    let app = TestApp::start().await;
    let Scene {
        admin,
        reader: t,
        book: plenty,
    } = app.scene("short@example.org", json!({"stock": 10})).await;
    let scarce = id_of(&create_book(&app, &admin, json!({"stock": 1})).await);
    let id = id_of(
        &app.post("/orders", Some(&t), order_body(&[(&plenty, 3), (&scarce, 2)]))
            .await
            .body,
    );
    let done = settled(&app, &t, &id, Duration::from_secs(2)).await;
    assert_eq!(
        (done["status"].as_str(), done["rejectionReason"].as_str()),
        (Some("rejected"), Some("insufficient_stock"))
    );
    assert_eq!(
        (
            stock(&app, &admin, &plenty).await,
            stock(&app, &admin, &scarce).await
        ),
        (10, 1),
        "nothing reserved"
    );
    app.post(&format!("/orders/{id}/cancel"), Some(&t), json!({}))
        .await
        .problem(409);
    assert!(app.get("/library", Some(&t)).await.body["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn fifty_concurrent_orders_for_ten_books() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let book = id_of(&create_book(&app, &admin, json!({"stock": 10})).await);
    let mut buyers = Vec::new();
    for i in 0..5 {
        buyers.push(token(
            &app.register(&format!("b{i}@example.org"), "password123").await,
        ));
    }
    let posts = (0..50).map(|i| app.post("/orders", Some(&buyers[i % 5]), order_body(&[(&book, 1)])));
    let created = futures::future::join_all(posts).await;
    assert!(created.iter().all(|r| r.status == StatusCode::ACCEPTED));
    let mut confirmed = 0;
    let mut rejected = 0;
    for (i, r) in created.iter().enumerate() {
        let done = settled(&app, &buyers[i % 5], &id_of(&r.body), Duration::from_secs(10)).await;
        match done["status"].as_str() {
            Some("confirmed") => confirmed += 1,
            Some("rejected") => rejected += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((confirmed, rejected), (10, 40));
    assert_eq!(stock(&app, &admin, &book).await, 0);
}

#[tokio::test]
async fn cancel_rules() {
    // No worker: orders stay pending until this test processes them.
    let app = TestApp::start_with(None).await;
    let admin = app.admin_token().await;
    let t = token(&app.register("c@example.org", "password123").await);
    let stranger = token(&app.register("s@example.org", "password123").await);
    let book = id_of(&create_book(&app, &admin, json!({"stock": 5})).await);

    // A pending order is cancelled before it reserves anything; its late message is a no-op.
    let pending = id_of(
        &app.post("/orders", Some(&t), order_body(&[(&book, 2)]))
            .await
            .body,
    );
    app.post(&format!("/orders/{pending}/cancel"), Some(&stranger), json!({}))
        .await
        .problem(404);
    let r = app
        .post(&format!("/orders/{pending}/cancel"), Some(&t), json!({}))
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    deliver(&app, &pending).await;
    assert_eq!(stock(&app, &admin, &book).await, 5);
    app.post(&format!("/orders/{pending}/cancel"), Some(&t), json!({}))
        .await
        .problem(409);

    // A confirmed order's stock goes back exactly once, however many cancels race.
    let confirmed = id_of(
        &app.post("/orders", Some(&t), order_body(&[(&book, 3)]))
            .await
            .body,
    );
    deliver(&app, &confirmed).await;
    assert_eq!(
        app.get(&format!("/orders/{confirmed}"), Some(&t)).await.body["status"],
        "confirmed"
    );
    assert_eq!(stock(&app, &admin, &book).await, 2);
    let cancel_path = format!("/orders/{confirmed}/cancel");
    let cancels = (0..5).map(|_| app.post(&cancel_path, Some(&t), json!({})));
    let results = futures::future::join_all(cancels).await;
    assert_eq!(results.iter().filter(|r| r.status == StatusCode::OK).count(), 1);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status == StatusCode::CONFLICT)
            .count(),
        4
    );
    assert_eq!(stock(&app, &admin, &book).await, 5);
    // A redelivered message for the cancelled order changes nothing.
    deliver(&app, &confirmed).await;
    assert_eq!(stock(&app, &admin, &book).await, 5);

    // Admins may cancel anyone's order.
    let third = id_of(
        &app.post("/orders", Some(&t), order_body(&[(&book, 1)]))
            .await
            .body,
    );
    let r = app
        .post(&format!("/orders/{third}/cancel"), Some(&admin), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.post(
        &format!("/orders/{}/cancel", uuid::Uuid::new_v4()),
        Some(&t),
        json!({}),
    )
    .await
    .problem(404);
    assert_eq!(
        app.post("/orders/nope/cancel", Some(&t), json!({}))
            .await
            .bad_fields(),
        ["id"]
    );
}

/// Hands the order's message to the processor as the queue would, as many times as called.
async fn deliver(app: &TestApp, order: &str) {
    let message = Received {
        message_id: uuid::Uuid::new_v4().to_string(),
        receipt: "r".into(),
        body: json!({"orderId": order}).to_string(),
        receive_count: 1,
    };
    let response = process_batch(app.state.clone(), sqs_event(&[message])).await;
    assert!(response.batch_item_failures.is_empty());
}

#[tokio::test]
async fn duplicate_deliveries_change_nothing_and_poison_goes_to_the_dlq() {
    let app = TestApp::start_with(None).await;
    let Scene {
        admin,
        reader: t,
        book,
    } = app.scene("d@example.org", json!({"stock": 5})).await;
    let id = id_of(
        &app.post("/orders", Some(&t), order_body(&[(&book, 2)]))
            .await
            .body,
    );
    for _ in 0..3 {
        deliver(&app, &id).await;
    }
    assert_eq!(stock(&app, &admin, &book).await, 3, "reserved once");
    let ledger: i64 = sqlx::query_scalar("SELECT count(*) FROM inventory_ledger WHERE order_id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(ledger, 1);

    // Malformed and unknown-order messages are reported as failures, by message id, and
    // the others in the batch still succeed.
    let batch = [
        received("good", json!({"orderId": id}).to_string()),
        received("garbage", "{not json".into()),
        received("ghost", json!({"orderId": uuid::Uuid::new_v4()}).to_string()),
        received("extra", json!({"orderId": id, "admin": true}).to_string()),
    ];
    let response = process_batch(app.state.clone(), sqs_event(&batch)).await;
    assert_eq!(failures(&response), ["garbage", "ghost", "extra"]);

    // Through a real (in-process) queue and poller: retried, then dead-lettered.
    let memory = std::sync::Arc::new(bookshelf_queue::MemoryQueue::new(Duration::from_millis(100), 3));
    let queue = Queue::Memory(memory.clone());
    queue.send("definitely not an order").await.unwrap();
    queue.send(&json!({"orderId": id}).to_string()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while memory.dead_letters().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "poison message never reached the DLQ"
        );
        bookshelf_devserver::worker::poll_once(&app.state, &queue, Duration::from_millis(200))
            .await
            .unwrap();
    }
    assert_eq!(memory.dead_letters(), ["definitely not an order"]);
    assert!(memory.is_empty(), "the good message was acknowledged");
}

#[tokio::test]
async fn who_sees_which_orders() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let a_auth = app.register("a@example.org", "password123").await;
    let a = token(&a_auth);
    let b = token(&app.register("b@example.org", "password123").await);
    let book = id_of(&create_book(&app, &admin, json!({"stock": 1})).await);
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(id_of(
            &app.post("/orders", Some(&a), order_body(&[(&book, 1)]))
                .await
                .body,
        ));
    }
    let theirs = id_of(
        &app.post("/orders", Some(&b), order_body(&[(&book, 1)]))
            .await
            .body,
    );
    for id in mine.iter().chain([&theirs]) {
        settled(&app, &admin, id, Duration::from_secs(3)).await;
    }

    app.get(&format!("/orders/{theirs}"), Some(&a)).await.problem(404);
    assert_eq!(
        app.get(&format!("/orders/{theirs}"), Some(&admin)).await.status,
        StatusCode::OK
    );
    app.get(&format!("/orders/{}", uuid::Uuid::new_v4()), Some(&a))
        .await
        .problem(404);

    let ids = |r: crate::harness::Resp| -> Vec<String> {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"].as_array().unwrap().iter().map(id_of).collect()
    };
    assert_eq!(ids(app.get("/orders", Some(&a)).await), mine);
    assert_eq!(ids(app.get("/orders", Some(&admin)).await).len(), 4);
    assert_eq!(
        ids(app.get("/orders?status=confirmed", Some(&admin)).await).len(),
        1
    );
    assert_eq!(
        ids(app.get("/orders?status=rejected", Some(&a)).await).len()
            + ids(app.get("/orders?status=confirmed", Some(&a)).await).len(),
        3
    );
    let page = app.get("/orders?limit=2", Some(&a)).await;
    let cursor = page.body["nextCursor"].as_str().unwrap().to_string();
    let mut walked = ids(page);
    walked.extend(ids(app
        .get(&format!("/orders?limit=2&cursor={cursor}"), Some(&a))
        .await));
    assert_eq!(walked, mine);
    for bad in ["status=PENDING", "status=done", "limit=0", "cursor=x"] {
        app.get(&format!("/orders?{bad}"), Some(&a)).await.problem(400);
    }

    // Deleting the account keeps the orders, detached.
    app.send(Method::DELETE, "/users/me", Some(&a), None).await;
    let kept = app.get(&format!("/orders/{}", mine[0]), Some(&admin)).await;
    assert_eq!(kept.status, StatusCode::OK);
    assert!(kept.body["userId"].is_null());
}

/// A status the code does not know (a bad migration, a hand edit) is an error, never read
/// as some default: the order is neither shown nor cancelled as if it were pending.
#[tokio::test]
async fn an_unknown_status_in_the_database_is_an_error_not_a_default() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let user = token(&app.register("odd@example.org", "password123").await);
    let book = create_book(&app, &admin, json!({})).await;
    let order = app
        .post(
            "/orders",
            Some(&user),
            order_body(&[(book["id"].as_str().unwrap(), 1)]),
        )
        .await;
    assert_eq!(order.status, StatusCode::ACCEPTED, "{}", order.body);
    let id = order.body["id"].as_str().unwrap();
    settled(&app, &user, id, Duration::from_secs(10)).await;
    sqlx::query("ALTER TABLE orders DROP CONSTRAINT orders_status_check")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE orders SET status = 'misplaced' WHERE id = $1::uuid")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    app.get(&format!("/orders/{id}"), Some(&user)).await.problem(500);
    app.get("/orders", Some(&user)).await.problem(500);
    app.post(&format!("/orders/{id}/cancel"), Some(&user), json!({}))
        .await
        .problem(500);
}

/// An order reports what happened to it: accepted on POST, confirmed by the worker,
/// cancelled on cancel; a replay of its Idempotency-Key reports nothing new.
#[tokio::test]
async fn an_order_produces_its_metrics() {
    use bookshelf_config::metrics::{ORDERS_ACCEPTED, ORDERS_CANCELLED, ORDERS_CONFIRMED, ORDERS_REJECTED};
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let user = token(&app.register("counted@example.org", "password123").await);
    let book = create_book(&app, &admin, json!({"stock": 1})).await;
    let keyed = || {
        app.client
            .post(format!("{}/orders", app.url))
            .bearer_auth(&user)
            .header("idempotency-key", "counted-1")
            .json(&order_body(&[(book["id"].as_str().unwrap(), 1)]))
            .send()
    };
    let first = keyed().await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        settled(&app, &user, id, Duration::from_secs(10)).await["status"],
        "confirmed"
    );
    assert_eq!(keyed().await.unwrap().status(), StatusCode::OK, "a replay");
    // The second order finds no stock left.
    let short = app
        .post(
            "/orders",
            Some(&user),
            order_body(&[(book["id"].as_str().unwrap(), 1)]),
        )
        .await;
    let short_id = short.body["id"].as_str().unwrap();
    assert_eq!(
        settled(&app, &user, short_id, Duration::from_secs(10)).await["status"],
        "rejected"
    );
    let cancel = app
        .post(&format!("/orders/{id}/cancel"), Some(&user), json!({}))
        .await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.body);

    let m = &app.state.metrics;
    assert_eq!(
        [
            m.total(ORDERS_ACCEPTED),
            m.total(ORDERS_CONFIRMED),
            m.total(ORDERS_REJECTED),
            m.total(ORDERS_CANCELLED)
        ],
        [2, 1, 1, 1]
    );
}

fn received(id: &str, body: String) -> Received {
    Received {
        message_id: id.into(),
        receipt: id.into(),
        body,
        receive_count: 1,
    }
}

fn message(id: &str, order: &str) -> Received {
    received(id, json!({"orderId": order}).to_string())
}

/// The message ids a batch response reports as failed, in its order.
fn failures(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

async fn status_of(app: &TestApp, order: &str) -> String {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = $1::uuid")
        .bind(order)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// One batch, one transaction: orders are decided in delivery order against the stock
/// left by the ones before them, a short line rejects only its own order, a message
/// delivered twice in the batch counts once, and the ledger explains every copy taken.
#[tokio::test]
async fn a_batch_is_decided_in_delivery_order() {
    let app = TestApp::start_with(None).await;
    let Scene {
        admin,
        reader: t,
        book,
    } = app.scene("batch@example.org", json!({"stock": 4})).await;
    let other = id_of(&create_book(&app, &admin, json!({"stock": 1})).await);
    let mut orders = Vec::new();
    for lines in [
        vec![(book.as_str(), 2)],
        vec![(book.as_str(), 1), (other.as_str(), 2)], // other is short
        vec![(book.as_str(), 1)],
        vec![(book.as_str(), 1)],
        vec![(book.as_str(), 1)], // book is gone by now
    ] {
        orders.push(id_of(
            &app.post("/orders", Some(&t), order_body(&lines)).await.body,
        ));
    }
    let batch = [
        message("m1", &orders[0]),
        message("m2", &orders[1]),
        message("m3", &orders[2]),
        message("m1-again", &orders[0]),
        message("m4", &orders[3]),
        message("m5", &orders[4]),
    ];
    let response = process_batch(app.state.clone(), sqs_event(&batch)).await;
    assert!(response.batch_item_failures.is_empty());
    let mut statuses = Vec::new();
    for o in &orders {
        statuses.push(status_of(&app, o).await);
    }
    assert_eq!(
        statuses,
        ["confirmed", "rejected", "confirmed", "confirmed", "rejected"]
    );
    assert_eq!(
        (
            stock(&app, &admin, &book).await,
            stock(&app, &admin, &other).await
        ),
        (0, 1)
    );
    let (sum, last, rows): (i64, i32, i64) = sqlx::query_as(
        "SELECT sum(delta), (array_agg(stock_after ORDER BY id DESC))[1], count(*) FILTER (WHERE order_id = $2::uuid)
         FROM inventory_ledger WHERE book_id = $1::uuid",
    )
    .bind(&book)
    .bind(&orders[0])
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (sum, last, rows),
        (0, 0, 1),
        "the ledger sums to the stock, once per line"
    );
    let library = app.get("/library", Some(&t)).await.body;
    let shelved: Vec<&str> = library["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["book"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        shelved,
        [book.as_str()],
        "shelved once, the rejected order's other book not at all"
    );
}

/// A batch whose transaction cannot commit is retried one order at a time: the order
/// that fails is the only failure reported, and the others are confirmed.
#[tokio::test]
async fn an_order_that_cannot_be_confirmed_fails_alone() {
    let app = TestApp::start_with(None).await;
    let Scene {
        admin,
        reader: t,
        book,
    } = app.scene("poison@example.org", json!({"stock": 10})).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(id_of(
            &app.post("/orders", Some(&t), order_body(&[(&book, 1)]))
                .await
                .body,
        ));
    }
    // A database that refuses to confirm the second order, whatever the transaction.
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.id = '{}' AND NEW.status = 'confirmed' THEN RAISE EXCEPTION 'refused'; END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_one BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION refuse_one();",
        orders[1]
    ))
    .execute(&app.pool)
    .await
    .unwrap();
    let batch = [
        message("a", &orders[0]),
        message("b", &orders[1]),
        message("c", &orders[2]),
    ];
    let response = process_batch(app.state.clone(), sqs_event(&batch)).await;
    assert_eq!(failures(&response), ["b"]);
    let mut statuses = Vec::new();
    for o in &orders {
        statuses.push(status_of(&app, o).await);
    }
    assert_eq!(statuses, ["confirmed", "pending", "confirmed"]);
    assert_eq!(stock(&app, &admin, &book).await, 8);
}
