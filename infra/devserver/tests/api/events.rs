//! The sample events under `events/` drive the handlers in process, exactly as
//! `sam local invoke -e` or `cargo lambda invoke --data-file` would hand them over: no
//! gateway, no HTTP, the same deserialisation the Lambda runtime does.

use std::sync::Arc;

use bookshelf_api::authorizer::{authorize, AuthorizerError};
use bookshelf_api::registry::Handler;
use bookshelf_api::{http_handler, AppState};
use lambda_http::request::LambdaRequest;
use serde_json::{json, Value};

use crate::harness::{repo_root, TestApp, ADMIN_EMAIL};

fn event(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join("events").join(path)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Invokes function `name` with the event, as the Lambda runtime would.
async fn invoke(state: &Arc<AppState>, name: &str, event: Value) -> (u16, Value) {
    let request: LambdaRequest = serde_json::from_value(event).expect("a valid API Gateway proxy event");
    let f = http_handler(name).unwrap();
    let (status, text) = match f.handler {
        Handler::Buffered(handler) => {
            let response = handler(state.clone(), request.into()).await;
            let text = match response.body() {
                lambda_http::Body::Text(t) => Some(t.clone()),
                _ => None,
            };
            (response.status().as_u16(), text)
        }
        Handler::Streaming(handler) => {
            use http_body_util::BodyExt;
            let response = handler(state.clone(), request.into()).await;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                (!bytes.is_empty()).then(|| String::from_utf8(bytes.to_vec()).unwrap()),
            )
        }
    };
    let body = match text {
        Some(t) => serde_json::from_str(&t).unwrap_or(Value::String(t)),
        None => Value::Null,
    };
    (status, body)
}

/// The event with the authorizer context of a real session.
fn as_caller(mut event: Value, user: &str, session: &str, role: &str) -> Value {
    let ctx = &mut event["requestContext"]["authorizer"];
    ctx["userId"] = json!(user);
    ctx["principalId"] = json!(user);
    ctx["sessionId"] = json!(session);
    ctx["role"] = json!(role);
    event
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn every_sample_event_runs_its_handler() {
    let app = TestApp::start().await;
    let state = Arc::new(AppState::new(app.pool.clone(), &app.keys));

    let (status, body) = invoke(&state, "auth-register", event("auth-register/register.json")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["displayName"], "Ann");
    let (status, login) = invoke(&state, "auth-login", event("auth-login/login.json")).await;
    assert_eq!(status, 200, "{login}");

    // The sample refresh token is made up: refused. The real one rotates.
    let (status, _) = invoke(&state, "auth-refresh", event("auth-refresh/refresh.json")).await;
    assert_eq!(status, 401);
    let mut e = event("auth-refresh/refresh.json");
    e["body"] = json!(json!({"refreshToken": login["refreshToken"]}).to_string());
    let (status, refreshed) = invoke(&state, "auth-refresh", e).await;
    assert_eq!(status, 200, "{refreshed}");

    let access = refreshed["accessToken"].as_str().unwrap();
    let c = claims(access);
    let (user, session) = (c["sub"].as_str().unwrap(), c["sid"].as_str().unwrap());
    let me = |path: &str| as_caller(event(path), user, session, "user");

    let (status, body) = invoke(&state, "users-me-get", me("users-me-get/me.json")).await;
    assert_eq!((status, body["email"].as_str()), (200, Some("ann@example.org")));
    let (status, body) = invoke(&state, "users-me-update", me("users-me-update/update.json")).await;
    assert_eq!((status, body["bio"].as_str()), (200, Some("Reads on trains.")));
    let (status, _) = invoke(&state, "users-get", me("users-get/get.json")).await;
    assert_eq!(status, 404, "the sample id names nobody here");
    let (status, _) = invoke(&state, "users-list", me("users-list/list.json")).await;
    assert_eq!(status, 403, "a user may not list users");

    let admin = app.login(ADMIN_EMAIL, crate::harness::ADMIN_PASSWORD).await;
    let ac = claims(admin["accessToken"].as_str().unwrap());
    let e = as_caller(
        event("users-list/list.json"),
        ac["sub"].as_str().unwrap(),
        ac["sid"].as_str().unwrap(),
        "admin",
    );
    let (status, body) = invoke(&state, "users-list", e).await;
    assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(2)));

    let (status, body) = invoke(&state, "jwks", event("jwks/jwks.json")).await;
    assert_eq!(
        (status, body["keys"][0]["kid"].as_str()),
        (200, Some(app.keys.active_kid()))
    );
    let (status, body) = invoke(&state, "openapi", event("openapi/openapi.json")).await;
    assert_eq!(
        (status, body["info"]["title"].as_str()),
        (200, Some("Bookshelf API"))
    );

    // The authorizer: the sample token is refused, a real one allowed with its context.
    let auth_event = || serde_json::from_value(event("authorizer/request.json")).unwrap();
    assert!(matches!(
        authorize(state.clone(), &auth_event()).await,
        Err(AuthorizerError::Unauthorized)
    ));
    let mut e: aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest = auth_event();
    e.headers
        .insert("authorization", format!("Bearer {access}").parse().unwrap());
    let allowed = authorize(state.clone(), &e)
        .await
        .unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(allowed.context["userId"], user);
    assert_eq!(allowed.context["sessionId"], session);
    assert_eq!(allowed.context["role"], "user");
    assert_eq!(
        allowed.policy_document.statement[0].resource,
        ["arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*"]
    );

    // The catalog and the library, on a book the create event makes.
    let admin_says = |path: &str| {
        as_caller(
            event(path),
            ac["sub"].as_str().unwrap(),
            ac["sid"].as_str().unwrap(),
            "admin",
        )
    };
    let (status, book) = invoke(&state, "books-create", admin_says("books-create/create.json")).await;
    assert_eq!(
        (status, book["isbn"].as_str()),
        (201, Some("9780441172719")),
        "{book}"
    );
    let book_id = book["id"].as_str().unwrap().to_string();
    let on_book = |mut e: Value, param: &str| {
        e["pathParameters"][param] = json!(book_id);
        e
    };
    let (status, body) = invoke(&state, "books-get", on_book(me("books-get/get.json"), "id")).await;
    assert_eq!((status, body["title"].as_str()), (200, Some("Dune")));
    let (status, body) = invoke(&state, "books-list", me("books-list/search.json")).await;
    assert_eq!(
        (status, body["items"][0]["id"].as_str()),
        (200, Some(book_id.as_str()))
    );
    // The sample If-Match names another book's version: the precondition fails.
    let (status, _) = invoke(
        &state,
        "books-update",
        on_book(admin_says("books-update/update.json"), "id"),
    )
    .await;
    assert_eq!(status, 412);
    let mut e = on_book(admin_says("books-update/update.json"), "id");
    e["headers"]["If-Match"] = json!(format!("\"{}-1\"", book_id.replace('-', "")));
    e["multiValueHeaders"]["If-Match"] = json!([format!("\"{}-1\"", book_id.replace('-', ""))]);
    let (status, body) = invoke(&state, "books-update", e).await;
    assert_eq!((status, body["priceCents"].as_i64()), (200, Some(899)), "{body}");
    let (status, body) = invoke(
        &state,
        "books-inventory",
        on_book(admin_says("books-inventory/restock.json"), "id"),
    )
    .await;
    assert_eq!((status, body["stock"].as_i64()), (200, Some(17)));
    let (status, body) = invoke(
        &state,
        "library-put",
        on_book(me("library-put/put.json"), "bookId"),
    )
    .await;
    assert_eq!((status, body["rating"].as_i64()), (201, Some(4)));
    let (status, body) = invoke(&state, "library-list", me("library-list/reading.json")).await;
    assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(1)));

    // A reading year on that book: every reading, goal, stats and export sample.
    let (status, read) = invoke(
        &state,
        "reads-start",
        on_book(me("reads-start/start.json"), "bookId"),
    )
    .await;
    assert_eq!(
        (status, read["startedAt"].as_str()),
        (201, Some("2026-11-20T19:30:00Z")),
        "{read}"
    );
    let read_id = read["id"].as_str().unwrap().to_string();
    let on_read = |path: &str| {
        let mut e = me(path);
        e["pathParameters"]["id"] = json!(read_id);
        e
    };
    let (status, body) = invoke(&state, "reads-get", on_read("reads-get/get.json")).await;
    assert_eq!((status, body["id"].as_str()), (200, Some(read_id.as_str())));
    let (status, body) = invoke(&state, "reads-progress", on_read("reads-progress/page.json")).await;
    assert_eq!((status, body["page"].as_i64()), (200, Some(120)), "{body}");
    let (status, _) = invoke(&state, "reads-pause", on_read("reads-pause/pause.json")).await;
    assert_eq!(status, 200);
    let (status, session) = invoke(&state, "sessions-start", on_read("sessions-start/start.json")).await;
    assert_eq!(status, 201, "{session}");
    let mut e = me("sessions-end/end.json");
    e["pathParameters"]["id"] = session["id"].clone();
    let (status, body) = invoke(&state, "sessions-end", e).await;
    assert_eq!((status, body["minutes"].as_i64()), (200, Some(0)), "{body}");
    let (status, body) = invoke(&state, "sessions-list", on_read("sessions-list/list.json")).await;
    assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(1)));
    let (status, body) = invoke(&state, "reads-finish", on_read("reads-finish/finish.json")).await;
    assert_eq!(
        (status, body["finishedAt"].as_str()),
        (200, Some("2026-11-30T22:15:00Z")),
        "{body}"
    );
    let (status, _) = invoke(&state, "reads-abandon", on_read("reads-abandon/abandon.json")).await;
    assert_eq!(status, 409, "a finished read is closed");
    let (status, body) = invoke(
        &state,
        "reads-list",
        on_book(me("reads-list/list.json"), "bookId"),
    )
    .await;
    assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(1)));
    let (status, body) = invoke(&state, "goals-put", me("goals-put/put.json")).await;
    assert_eq!(
        (status, body),
        (200, json!({"year": 2026, "books": 24, "finished": 1}))
    );
    let (status, body) = invoke(&state, "goals-get", me("goals-get/get.json")).await;
    assert_eq!((status, body["books"].as_i64()), (200, Some(24)));
    let (status, body) = invoke(&state, "stats-get", me("stats-get/year.json")).await;
    assert_eq!((status, body["booksFinished"].as_i64()), (200, Some(1)), "{body}");
    let (status, body) = invoke(&state, "library-export", me("library-export/csv.json")).await;
    assert_eq!(status, 200);
    assert!(
        body.as_str().is_some_and(|csv| csv.starts_with("book_id,title,")),
        "{body}"
    );
    let (status, _) = invoke(&state, "goals-delete", me("goals-delete/delete.json")).await;
    assert_eq!(status, 204);
    let (status, _) = invoke(&state, "reads-delete", on_read("reads-delete/delete.json")).await;
    assert_eq!(status, 204);

    // People: Ann follows the admin, and the admin follows Ann back; the fan-out sample
    // (its first record swapped for that activity, its second malformed) delivers it.
    let admin_id = ac["sub"].as_str().unwrap().to_string();
    let on_user = |mut e: Value, id: &str| {
        e["pathParameters"]["id"] = json!(id);
        e
    };
    let (status, _) = invoke(
        &state,
        "users-follow",
        on_user(me("users-follow/follow.json"), &admin_id),
    )
    .await;
    assert_eq!(status, 204);
    let mut e = on_user(event("users-follow/follow.json"), user);
    e = as_caller(e, &admin_id, ac["sid"].as_str().unwrap(), "admin");
    let (status, _) = invoke(&state, "users-follow", e).await;
    assert_eq!(status, 204);
    let (status, body) = invoke(
        &state,
        "users-followers",
        on_user(me("users-followers/followers.json"), &admin_id),
    )
    .await;
    assert_eq!((status, body["items"][0]["id"].as_str()), (200, Some(user)));
    let (status, body) = invoke(
        &state,
        "users-following",
        on_user(me("users-following/following.json"), user),
    )
    .await;
    assert_eq!(
        (status, body["items"][0]["id"].as_str()),
        (200, Some(admin_id.as_str()))
    );
    let (status, _) = invoke(
        &state,
        "users-library",
        on_user(me("users-library/library.json"), &admin_id),
    )
    .await;
    assert_eq!(status, 404, "the admin's library is private");
    let followed: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM activities WHERE actor_id = $1::uuid AND type = 'followed'")
            .bind(&admin_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let mut batch = event("feed-fanout/batch.json");
    batch["Records"][0]["body"] = json!(json!({"activityId": followed}).to_string());
    let poison = batch["Records"][1]["messageId"].clone();
    let batch: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(batch).unwrap();
    let response = bookshelf_api::worker::fan_out_batch(state.clone(), batch).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, [poison.as_str().unwrap()]);
    let (status, body) = invoke(&state, "feed-get", me("feed-get/feed.json")).await;
    assert_eq!(
        (status, body["items"][0]["type"].as_str()),
        (200, Some("followed")),
        "{body}"
    );
    let (status, _) = invoke(
        &state,
        "users-unfollow",
        on_user(me("users-unfollow/unfollow.json"), &admin_id),
    )
    .await;
    assert_eq!(status, 204);

    let (status, _) = invoke(
        &state,
        "library-delete",
        on_book(me("library-delete/delete.json"), "bookId"),
    )
    .await;
    assert_eq!(status, 204);
    // Orders: created from the sample (its book swapped for ours), processed from the sample
    // SQS batch (whose second record is poison), cancelled from the sample.
    let mut e = me("orders-create/create.json");
    e["body"] = json!(json!({"items": [{"bookId": book_id, "quantity": 2}]}).to_string());
    let (status, order) = invoke(&state, "orders-create", e).await;
    assert_eq!(
        (status, order["status"].as_str()),
        (202, Some("pending")),
        "{order}"
    );
    let order_id = order["id"].as_str().unwrap().to_string();
    let on_order = |mut e: Value| {
        e["pathParameters"]["id"] = json!(order_id);
        e
    };
    let mut batch = event("order-processor/batch.json");
    batch["Records"][0]["body"] = json!(json!({"orderId": order_id}).to_string());
    let poison_id = batch["Records"][1]["messageId"].clone();
    let batch: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(batch).unwrap();
    let response = bookshelf_api::worker::process_batch(state.clone(), batch).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, [poison_id.as_str().unwrap()]);
    let (status, body) = invoke(&state, "orders-get", on_order(me("orders-get/get.json"))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("confirmed")));
    let (status, body) = invoke(&state, "orders-list", me("orders-list/pending.json")).await;
    assert_eq!(
        (status, body["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "none pending"
    );
    let (status, body) = invoke(&state, "orders-cancel", on_order(me("orders-cancel/cancel.json"))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("cancelled")));

    // The relay's scheduled event: it carries nothing the relay needs, but must parse.
    let _: aws_lambda_events::eventbridge::EventBridgeEvent =
        serde_json::from_value(event("outbox-relay/schedule.json")).unwrap();
    let memory = Arc::new(bookshelf_queue::MemoryQueue::new(
        std::time::Duration::from_secs(30),
        3,
    ));
    let relaying =
        AppState::new(app.pool.clone(), &app.keys).with_queue(bookshelf_queue::Queue::Memory(memory.clone()));
    let report = bookshelf_api::worker::relay_outbox(&relaying, 0).await.unwrap();
    assert_eq!(
        (report.sent, memory.len()),
        (1, 1),
        "the order was never sent: the relay sends it"
    );

    let (status, _) = invoke(
        &state,
        "books-delete",
        on_book(admin_says("books-delete/delete.json"), "id"),
    )
    .await;
    assert_eq!(status, 204);

    let (status, _) = invoke(&state, "users-me-password", me("users-me-password/change.json")).await;
    assert_eq!(status, 204);
    let (status, _) = invoke(&state, "auth-logout", me("auth-logout/logout.json")).await;
    assert_eq!(status, 204);
    let mut e: aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest = auth_event();
    e.headers
        .insert("authorization", format!("Bearer {access}").parse().unwrap());
    assert!(authorize(state.clone(), &e).await.is_err(), "logged out");
    let (status, _) = invoke(&state, "users-me-delete", me("users-me-delete/delete.json")).await;
    assert_eq!(status, 204);
}

/// Deployed, the authorizer's cached Allow outlives an account deletion by up to its TTL,
/// and locally a request can race the deletion: the handlers then write rows that name a
/// user who is gone. That is a 401 (the identity is no longer valid), never a 500.
#[tokio::test]
async fn a_deleted_account_that_is_still_authorized_gets_401_not_500() {
    let app = TestApp::start().await;
    let state = Arc::new(AppState::new(app.pool.clone(), &app.keys));
    let admin = app.admin_token().await;
    let book = app
        .post(
            "/books",
            Some(&admin),
            json!({"title": "Gone", "authors": ["A"], "priceCents": 1, "stock": 5}),
        )
        .await;
    let book_id = book.body["id"].as_str().unwrap().to_string();

    let auth = app.register("leaving@example.org", "leaving password").await;
    let c = claims(auth["accessToken"].as_str().unwrap());
    let (user, session) = (c["sub"].as_str().unwrap(), c["sid"].as_str().unwrap());
    let gone = app
        .send(
            reqwest::Method::DELETE,
            "/users/me",
            Some(&crate::harness::token(&auth)),
            None,
        )
        .await;
    assert_eq!(gone.status, 204);

    let mut order = as_caller(event("orders-create/create.json"), user, session, "user");
    order["body"] = json!(json!({"items": [{"bookId": book_id, "quantity": 1}]}).to_string());
    let mut shelve = as_caller(event("library-put/put.json"), user, session, "user");
    shelve["pathParameters"]["bookId"] = json!(book_id);
    // An admin whose account is gone, restocking (the ledger names the actor).
    let mut restock = as_caller(event("books-inventory/restock.json"), user, session, "admin");
    restock["pathParameters"]["id"] = json!(book_id);
    let create = as_caller(event("books-create/create.json"), user, session, "admin");
    let mut read = as_caller(event("reads-start/start.json"), user, session, "user");
    read["pathParameters"]["bookId"] = json!(book_id);
    let goal = as_caller(event("goals-put/put.json"), user, session, "user");
    for (name, e) in [
        ("orders-create", order),
        ("library-put", shelve),
        ("reads-start", read),
        ("goals-put", goal),
        ("books-inventory", restock),
        ("books-create", create),
    ] {
        let (status, body) = invoke(&state, name, e).await;
        assert_eq!(status, 401, "{name}: {body}");
    }
    // Nothing was written on the vanished account's behalf.
    let stock: i32 = sqlx::query_scalar("SELECT stock FROM books WHERE id = $1::uuid")
        .bind(&book_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stock, 5);
}
