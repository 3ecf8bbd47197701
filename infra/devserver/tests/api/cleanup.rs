//! The scheduled cleanup removes what has expired and nothing else, a bounded amount a run.

use bookshelf_storage::cleanup::{expired, Removed, RETENTION};
use reqwest::StatusCode;
use serde_json::json;

use crate::books::create_book;
use crate::harness::{token, TestApp};

async fn exec(app: &TestApp, sql: &str) {
    sqlx::raw_sql(sql).execute(&app.pool).await.unwrap();
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn cleanup_removes_only_what_has_expired() {
    // No queue: orders stay in the outbox, unsent, until the test says otherwise.
    let app = TestApp::start_with(None).await;
    let admin = app.admin_token().await;
    let auth = app.register("keeper@example.org", "password123").await;
    let buyer = token(&auth);
    let book = create_book(&app, &admin, json!({"stock": 100})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for key in ["old-key", "new-key", "unsent"] {
        let r = app
            .client
            .post(format!("{}/orders", app.url))
            .bearer_auth(&buyer)
            .header("idempotency-key", key)
            .json(&json!({"items": [{"bookId": book, "quantity": 1}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    // Expired, each kind, next to one of its kind that is not.
    exec(
        &app,
        "INSERT INTO login_throttle (key, failures, window_start) VALUES
           ('email:old@example.org', 3, now() - interval '2 days'),
           ('email:new@example.org', 3, now() - interval '10 minutes');
         UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old-key';
         UPDATE outbox SET sent_at = now() - interval '8 days'
           WHERE order_id = (SELECT order_id FROM idempotency_keys WHERE key = 'old-key');
         UPDATE outbox SET sent_at = now() - interval '1 day'
           WHERE order_id = (SELECT order_id FROM idempotency_keys WHERE key = 'new-key');
         UPDATE outbox SET created_at = now() - interval '30 days'
           WHERE order_id = (SELECT order_id FROM idempotency_keys WHERE key = 'unsent');",
    )
    .await;
    let user = auth["user"]["id"].as_str().unwrap();
    exec(
        &app,
        &format!(
            "INSERT INTO sessions (id, user_id, created_at, revoked_at, revoked_reason) VALUES
               ('00000000-0000-4000-8000-000000000001', '{user}', now() - interval '3 days', now() - interval '2 days', 'logout'),
               ('00000000-0000-4000-8000-000000000002', '{user}', now() - interval '3 days', now() - interval '1 hour', 'logout'),
               ('00000000-0000-4000-8000-000000000003', '{user}', now() - interval '40 days', NULL, NULL);
             INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, used_at) VALUES
               (sha256('a'), '00000000-0000-4000-8000-000000000003', now() - interval '40 days', now() - interval '10 days', NULL),
               (sha256('b'), '00000000-0000-4000-8000-000000000002', now() - interval '3 days', now() - interval '2 days', now() - interval '3 days'),
               (sha256('c'), '00000000-0000-4000-8000-000000000002', now() - interval '3 days', now() + interval '20 days', NULL);"
        ),
    )
    .await;

    let removed = expired(&app.pool, &RETENTION, 10_000).await.unwrap();
    assert_eq!(
        removed,
        Removed {
            throttle: 1,
            // Revoked two days ago; and the one whose every refresh token expired long ago.
            sessions: 2,
            // The two expired a day ago or more (one of them that session's, which would
            // have gone with it anyway); the live one stays.
            refresh_tokens: 2,
            outbox: 1,
            idempotency_keys: 1,
        }
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM login_throttle WHERE key = 'email:new@example.org'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM idempotency_keys WHERE key IN ('new-key', 'unsent')"
        )
        .await,
        2
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM outbox WHERE sent_at IS NULL").await,
        1,
        "unsent stays"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM outbox").await, 2);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM refresh_tokens WHERE token_hash = sha256('c')"
        )
        .await,
        1
    );
    // The account's own session and token, made by registering, are untouched.
    app.get("/users/me", Some(&buyer)).await;
    assert_eq!(app.get("/users/me", Some(&buyer)).await.status, StatusCode::OK);

    // Nothing left to remove: a second run removes nothing.
    assert_eq!(
        expired(&app.pool, &RETENTION, 10_000).await.unwrap(),
        Removed::default()
    );
}

#[tokio::test]
async fn a_cleanup_run_is_bounded() {
    let app = TestApp::start_with(None).await;
    exec(
        &app,
        "INSERT INTO login_throttle (key, failures, window_start)
         SELECT 'email:' || g || '@example.org', 1, now() - interval '3 days' FROM generate_series(1, 5) g",
    )
    .await;
    assert_eq!(expired(&app.pool, &RETENTION, 2).await.unwrap().throttle, 2);
    assert_eq!(expired(&app.pool, &RETENTION, 2).await.unwrap().throttle, 2);
    assert_eq!(expired(&app.pool, &RETENTION, 2).await.unwrap().throttle, 1);
}
