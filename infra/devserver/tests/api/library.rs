//! The personal library: replace semantics, filters, pagination, and isolation between users.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::books::create_book;
use crate::harness::{token, TestApp};

#[tokio::test]
async fn put_creates_then_replaces() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = token(&app.register("reader@example.org", "password123").await);
    let book = create_book(
        &app,
        &admin,
        json!({"title": "Dune", "authors": ["Frank Herbert"]}),
    )
    .await;
    let id = book["id"].as_str().unwrap();
    let path = format!("/library/{id}");

    let r = app
        .send(
            Method::PUT,
            &path,
            Some(&t),
            Some(json!({"status": "reading", "rating": 4, "review": "Good.", "favorite": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let first = r.body.clone();
    assert_eq!(first["bookId"], id);
    assert_eq!(
        first["book"],
        json!({"id": id, "title": "Dune", "authors": ["Frank Herbert"]})
    );
    assert_eq!(
        (
            first["status"].as_str(),
            first["rating"].as_i64(),
            first["favorite"].as_bool()
        ),
        (Some("reading"), Some(4), Some(true))
    );

    // Replace: omitted fields reset, addedAt kept.
    let r = app
        .send(Method::PUT, &path, Some(&t), Some(json!({"status": "read"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "read");
    assert!(r.body["rating"].is_null() && r.body["review"].is_null());
    assert_eq!(r.body["favorite"], false);
    assert_eq!(r.body["addedAt"], first["addedAt"]);

    let r = app
        .send(
            Method::PUT,
            &path,
            Some(&t),
            Some(json!({"status": "READ", "rating": 0, "review": "x".repeat(5001), "favorite": "yes"})),
        )
        .await;
    assert_eq!(r.bad_fields(), ["favorite", "rating", "review", "status"]);
    assert_eq!(
        app.send(Method::PUT, &path, Some(&t), Some(json!({})))
            .await
            .bad_fields(),
        ["status"]
    );
    app.send(
        Method::PUT,
        &format!("/library/{}", uuid::Uuid::new_v4()),
        Some(&t),
        Some(json!({"status": "read"})),
    )
    .await
    .problem(404);
    assert_eq!(
        app.send(
            Method::PUT,
            "/library/nope",
            Some(&t),
            Some(json!({"status": "read"}))
        )
        .await
        .bad_fields(),
        ["bookId"]
    );

    let r = app.send(Method::DELETE, &path, Some(&t), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.send(Method::DELETE, &path, Some(&t), None).await.problem(404);
}

#[tokio::test]
async fn lists_filter_and_paginate_only_the_callers_entries() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let a = token(&app.register("a@example.org", "password123").await);
    let b = token(&app.register("b@example.org", "password123").await);
    let mut books = Vec::new();
    for i in 0..7 {
        books.push(
            create_book(&app, &admin, json!({"title": format!("Book {i}")})).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let statuses = ["want_to_read", "reading", "read"];
    for (i, id) in books.iter().enumerate() {
        let body = json!({"status": statuses[i % 3], "favorite": i % 2 == 0});
        assert_eq!(
            app.send(Method::PUT, &format!("/library/{id}"), Some(&a), Some(body))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    app.send(
        Method::PUT,
        &format!("/library/{}", books[0]),
        Some(&b),
        Some(json!({"status": "read"})),
    )
    .await;

    let ids = |r: &crate::harness::Resp| -> Vec<String> {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["bookId"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&app.get("/library", Some(&a)).await),
        books,
        "in the order added"
    );
    assert_eq!(
        ids(&app.get("/library", Some(&b)).await),
        [books[0].clone()],
        "only the caller's"
    );
    assert_eq!(
        ids(&app.get("/library?status=reading", Some(&a)).await),
        [books[1].clone(), books[4].clone()]
    );
    assert_eq!(ids(&app.get("/library?favorite=true", Some(&a)).await).len(), 4);
    assert_eq!(
        ids(&app.get("/library?favorite=false&status=read", Some(&a)).await),
        [books[5].clone()]
    );

    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = cursor.as_ref().map_or("/library?limit=3".to_string(), |c| {
            format!("/library?limit=3&cursor={c}")
        });
        let r = app.get(&path, Some(&a)).await;
        walked.extend(ids(&r));
        match &r.body["nextCursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            _ => break,
        }
    }
    assert_eq!(walked, books);

    for bad in [
        "status=READ",
        "status=done",
        "favorite=maybe",
        "favorite=1",
        "limit=-1",
        "limit=abc",
        "cursor=%%%",
    ] {
        app.get(&format!("/library?{bad}"), Some(&a)).await.problem(400);
    }
    let r = app
        .get("/library?status=READ&favorite=maybe&limit=0", Some(&a))
        .await;
    assert_eq!(r.bad_fields(), ["favorite", "limit", "status"]);

    // B cannot remove A's entries; deleting a book removes it from every shelf.
    app.send(Method::DELETE, &format!("/library/{}", books[3]), Some(&b), None)
        .await
        .problem(404);
    app.send(
        Method::DELETE,
        &format!("/books/{}", books[0]),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(ids(&app.get("/library", Some(&a)).await).len(), 6);
    assert!(ids(&app.get("/library", Some(&b)).await).is_empty());
    app.get("/library", None).await.problem(401);
}

/// Past Lambda's 6 MB buffered response: the export streams (chunked locally, response
/// streaming deployed) and arrives whole, in both layouts.
#[tokio::test]
async fn a_library_past_six_megabytes_exports_whole_as_a_stream() {
    let app = TestApp::start().await;
    let reader = crate::harness::token(&app.register("big-export@example.org", "password123").await);
    let user: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = 'big-export@example.org'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let n = 1_500;
    sqlx::query(
        "WITH b AS (INSERT INTO books (id, title, authors, price_cents, stock)
                    SELECT gen_random_uuid(), 'Big ' || g, ARRAY['Big Author'], NULL, 0 FROM generate_series(1, $2) g
                    RETURNING id)
         INSERT INTO library_entries (user_id, book_id, status, review)
         SELECT $1, id, 'read', repeat('x', 5000) FROM b",
    )
    .bind(user)
    .bind(n)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO reads (id, user_id, book_id, started_at, finished_at)
         SELECT gen_random_uuid(), user_id, book_id, now() - interval '2 days', now() FROM library_entries WHERE user_id = $1",
    )
    .bind(user)
    .execute(&app.pool)
    .await
    .unwrap();
    for accept in ["application/json", "text/csv"] {
        let r = app
            .client
            .get(format!("{}/library/export", app.url))
            .bearer_auth(&reader)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // Streamed: no length known up front.
        assert!(r.headers().get("content-length").is_none(), "{:?}", r.headers());
        assert_eq!(r.headers()["transfer-encoding"], "chunked");
        let body = r.bytes().await.unwrap();
        assert!(body.len() > 6 * 1024 * 1024, "{}", body.len());
        if accept == "text/csv" {
            let mut rows = csv::Reader::from_reader(&body[..]);
            let records: Vec<csv::StringRecord> = rows.records().map(|r| r.unwrap()).collect();
            assert_eq!(records.len(), n as usize);
            assert!(records.iter().all(|r| r[10].len() == 5000));
        } else {
            let doc: Value = serde_json::from_slice(&body).unwrap();
            let entries = doc["entries"].as_array().unwrap();
            assert_eq!(entries.len(), n as usize);
            assert!(entries
                .iter()
                .all(|e| e["reads"].as_array().unwrap().len() == 1
                    && e["review"].as_str().unwrap().len() == 5000));
        }
    }
}
