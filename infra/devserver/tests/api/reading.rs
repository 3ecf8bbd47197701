//! Reading life: reads and their progress arithmetic, sessions, the 409s, isolation
//! between users, the concurrency invariants, goals, stats at the UTC year boundaries,
//! and the export.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::books::create_book;
use crate::harness::{token, Resp, TestApp};

async fn reader(app: &TestApp, email: &str) -> String {
    token(&app.register(email, "password123").await)
}

async fn book(app: &TestApp, admin: &str, fields: Value) -> String {
    create_book(app, admin, fields).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn start(app: &TestApp, t: &str, book: &str, body: Option<Value>) -> Resp {
    app.send(Method::POST, &format!("/library/{book}/reads"), Some(t), body)
        .await
}

/// Starts a read and returns its id.
async fn started(app: &TestApp, t: &str, book: &str, body: Option<Value>) -> String {
    let r = start(app, t, book, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn act(app: &TestApp, t: &str, read: &str, action: &str, body: Option<Value>) -> Resp {
    app.send(Method::POST, &format!("/reads/{read}/{action}"), Some(t), body)
        .await
}

async fn entry_status(app: &TestApp, t: &str) -> Vec<(String, String)> {
    let r = app.get("/library", Some(t)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["bookId"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_read_from_start_to_finish_moves_the_shelf_with_it() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = reader(&app, "reader@example.org").await;
    let dune = book(&app, &admin, json!({"title": "Dune", "pageCount": 412})).await;

    // Starting shelves the book as `reading`; no body means now.
    let r = start(&app, &t, &dune, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("location"), Some(format!("/reads/{id}").as_str()));
    assert_eq!(r.body["bookId"], dune.as_str());
    for k in ["finishedAt", "abandonedAt", "page", "percent"] {
        assert!(r.body[k].is_null(), "{k}: {}", r.body);
    }
    assert_eq!(r.body["minutesRead"], 0);
    assert_eq!(entry_status(&app, &t).await, [(dune.clone(), "reading".into())]);
    // One open read per book.
    start(&app, &t, &dune, None).await.problem(409);

    // Page → percent, floored; percent → page, floored.
    let r = act(&app, &t, &id, "progress", Some(json!({"page": 137}))).await;
    assert_eq!(
        (r.status, r.body["page"].as_i64(), r.body["percent"].as_i64()),
        (StatusCode::OK, Some(137), Some(33))
    );
    let r = act(&app, &t, &id, "progress", Some(json!({"percent": 50}))).await;
    assert_eq!(
        (r.body["page"].as_i64(), r.body["percent"].as_i64()),
        (Some(206), Some(50))
    );
    assert_eq!(
        act(&app, &t, &id, "progress", Some(json!({"page": 413})))
            .await
            .bad_fields(),
        ["page"]
    );
    assert_eq!(
        act(&app, &t, &id, "progress", Some(json!({"page": 1, "percent": 1})))
            .await
            .bad_fields(),
        ["page", "percent"]
    );
    assert_eq!(
        act(&app, &t, &id, "progress", Some(json!({}))).await.bad_fields(),
        ["page", "percent"]
    );
    assert_eq!(
        act(&app, &t, &id, "progress", Some(json!({"percent": 101})))
            .await
            .bad_fields(),
        ["percent"]
    );

    // Pause, twice (the second changes nothing), then progress resumes.
    for _ in 0..2 {
        let r = act(&app, &t, &id, "pause", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(entry_status(&app, &t).await, [(dune.clone(), "paused".into())]);
    }
    act(&app, &t, &id, "progress", Some(json!({"page": 300}))).await;
    assert_eq!(entry_status(&app, &t).await, [(dune.clone(), "reading".into())]);

    // Finishing: 100 % on the last page; the shelf says read.
    let r = act(&app, &t, &id, "finish", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["page"].as_i64(), r.body["percent"].as_i64()),
        (Some(412), Some(100))
    );
    assert!(r.body["finishedAt"].is_string() && r.body["abandonedAt"].is_null());
    assert_eq!(entry_status(&app, &t).await, [(dune.clone(), "read".into())]);
    // A closed read is history.
    for (action, body) in [
        ("progress", Some(json!({"page": 1}))),
        ("pause", None),
        ("finish", None),
        ("abandon", None),
        ("sessions", None),
    ] {
        act(&app, &t, &id, action, body).await.problem(409);
    }
    let again = app.get(&format!("/reads/{id}"), Some(&t)).await;
    assert_eq!(again.body, r.body, "nothing moved");

    // A second read of the same book, abandoned.
    let second = started(&app, &t, &dune, None).await;
    assert_eq!(entry_status(&app, &t).await, [(dune.clone(), "reading".into())]);
    let r = act(&app, &t, &second, "abandon", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["abandonedAt"].is_string() && r.body["finishedAt"].is_null());
    assert_eq!(
        entry_status(&app, &t).await,
        [(dune.clone(), "did_not_finish".into())]
    );

    // Listed newest start first, paginated.
    let r = app.get(&format!("/library/{dune}/reads?limit=1"), Some(&t)).await;
    assert_eq!(r.body["items"][0]["id"], second.as_str());
    let cursor = r.body["nextCursor"].as_str().unwrap().to_string();
    let r = app
        .get(
            &format!("/library/{dune}/reads?limit=1&cursor={cursor}"),
            Some(&t),
        )
        .await;
    assert_eq!(r.body["items"][0]["id"], id.as_str());
    assert!(r.body["nextCursor"].is_null());
    app.get(&format!("/library/{dune}/reads?cursor=nope"), Some(&t))
        .await
        .problem(400);
    app.get(&format!("/library/{}/reads", uuid::Uuid::new_v4()), Some(&t))
        .await
        .problem(404);

    // Deleting a read: gone, and with it from the list.
    let r = app
        .send(Method::DELETE, &format!("/reads/{second}"), Some(&t), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get(&format!("/reads/{second}"), Some(&t)).await.problem(404);
    app.send(Method::DELETE, &format!("/reads/{second}"), Some(&t), None)
        .await
        .problem(404);
}

#[tokio::test]
async fn positions_without_a_page_count_and_the_rules_on_times() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = reader(&app, "times@example.org").await;
    let plain = book(&app, &admin, json!({"title": "No count"})).await;

    start(&app, &t, &uuid::Uuid::new_v4().to_string(), None)
        .await
        .problem(404);
    assert_eq!(
        app.send(Method::POST, "/library/not-a-uuid/reads", Some(&t), None)
            .await
            .bad_fields(),
        ["bookId"]
    );
    let future = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    assert_eq!(
        start(&app, &t, &plain, Some(json!({"startedAt": future})))
            .await
            .bad_fields(),
        ["startedAt"]
    );
    assert_eq!(
        start(&app, &t, &plain, Some(json!({"startedAt": "last tuesday"})))
            .await
            .bad_fields(),
        ["startedAt"]
    );
    let id = started(
        &app,
        &t,
        &plain,
        Some(json!({"startedAt": "2026-02-01T10:00:00Z"})),
    )
    .await;
    let r = app.get(&format!("/reads/{id}"), Some(&t)).await;
    assert_eq!(r.body["startedAt"], "2026-02-01T10:00:00Z");

    // Without a page count the other figure is unknown, and pages go up to 100,000.
    let r = act(&app, &t, &id, "progress", Some(json!({"page": 100_000}))).await;
    assert_eq!(
        (r.body["page"].as_i64(), r.body["percent"].as_i64()),
        (Some(100_000), None)
    );
    let r = act(&app, &t, &id, "progress", Some(json!({"percent": 40}))).await;
    assert_eq!(
        (r.body["page"].as_i64(), r.body["percent"].as_i64()),
        (None, Some(40))
    );
    assert_eq!(
        act(&app, &t, &id, "progress", Some(json!({"page": 100_001})))
            .await
            .bad_fields(),
        ["page"]
    );

    // A close before the start, or in the future, is refused; the start itself is fine.
    assert_eq!(
        act(
            &app,
            &t,
            &id,
            "finish",
            Some(json!({"finishedAt": "2026-01-31T23:59:59Z"}))
        )
        .await
        .bad_fields(),
        ["finishedAt"]
    );
    assert_eq!(
        act(&app, &t, &id, "abandon", Some(json!({"abandonedAt": future})))
            .await
            .bad_fields(),
        ["abandonedAt"]
    );
    let r = act(
        &app,
        &t,
        &id,
        "finish",
        Some(json!({"finishedAt": "2026-02-01T10:00:00Z"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Finished without a page count: 100 %, the page stays where it was (unknown).
    assert_eq!(
        (r.body["page"].as_i64(), r.body["percent"].as_i64()),
        (None, Some(100))
    );
    assert_eq!(r.body["finishedAt"], "2026-02-01T10:00:00Z");
}

#[tokio::test]
async fn closed_reads_cannot_change_even_by_sql() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = reader(&app, "history@example.org").await;
    let b = book(&app, &admin, json!({})).await;
    let id = started(&app, &t, &b, None).await;
    act(&app, &t, &id, "finish", None).await;
    let refused = sqlx::query("UPDATE reads SET page = 3 WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("closed"), "{refused}");
    let refused = sqlx::query("UPDATE reads SET finished_at = NULL WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await;
    assert!(refused.is_err(), "reopening is a change too");
}

#[tokio::test]
async fn reads_and_sessions_are_the_callers_alone() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let ann = reader(&app, "ann@example.org").await;
    let bob = reader(&app, "bob@example.org").await;
    let b = book(&app, &admin, json!({"pageCount": 100})).await;
    let read = started(&app, &ann, &b, None).await;
    let session = act(&app, &ann, &read, "sessions", None).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);
    let session = session.body["id"].as_str().unwrap().to_string();

    app.get(&format!("/reads/{read}"), Some(&bob)).await.problem(404);
    app.get(&format!("/reads/{read}/sessions"), Some(&bob))
        .await
        .problem(404);
    for (action, body) in [
        ("progress", Some(json!({"page": 1}))),
        ("pause", None),
        ("finish", None),
        ("abandon", None),
        ("sessions", None),
    ] {
        act(&app, &bob, &read, action, body).await.problem(404);
    }
    app.send(Method::DELETE, &format!("/reads/{read}"), Some(&bob), None)
        .await
        .problem(404);
    app.send(
        Method::POST,
        &format!("/sessions/{session}/end"),
        Some(&bob),
        None,
    )
    .await
    .problem(404);
    // Bob's list of that book's reads is his own: empty.
    let r = app.get(&format!("/library/{b}/reads"), Some(&bob)).await;
    assert_eq!(r.body["items"], json!([]));
    // Nothing of Ann's moved.
    let r = app.get(&format!("/reads/{read}"), Some(&ann)).await;
    assert!(
        r.body["page"].is_null() && r.body["finishedAt"].is_null(),
        "{}",
        r.body
    );
    assert_eq!(entry_status(&app, &ann).await, [(b.clone(), "reading".into())]);
}

#[tokio::test]
async fn sessions_time_a_read_one_at_a_time() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = reader(&app, "timer@example.org").await;
    let a = book(&app, &admin, json!({"pageCount": 200})).await;
    let b = book(&app, &admin, json!({})).await;
    let read = started(&app, &t, &a, None).await;
    let other = started(&app, &t, &b, None).await;

    let r = act(&app, &t, &read, "sessions", None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let s1 = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("location"), Some(format!("/sessions/{s1}").as_str()));
    assert_eq!(r.body["readId"], read.as_str());
    assert!(r.body["endedAt"].is_null() && r.body["minutes"].is_null());
    // One running session per caller, whatever the book.
    act(&app, &t, &other, "sessions", None).await.problem(409);
    act(&app, &t, &read, "sessions", None).await.problem(409);

    // 90 minutes ago, as far as the database knows.
    sqlx::query("UPDATE reading_sessions SET started_at = started_at - interval '90 minutes 30 seconds' WHERE id = $1::uuid")
        .bind(&s1)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        app.send(
            Method::POST,
            &format!("/sessions/{s1}/end"),
            Some(&t),
            Some(json!({"endPage": 201}))
        )
        .await
        .bad_fields(),
        ["endPage"]
    );
    act(&app, &t, &read, "pause", None).await;
    let r = app
        .send(
            Method::POST,
            &format!("/sessions/{s1}/end"),
            Some(&t),
            Some(json!({"endPage": 50})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["minutes"], 90);
    assert!(r.body["endedAt"].is_string());
    let r2 = app.get(&format!("/reads/{read}"), Some(&t)).await;
    assert_eq!(
        (r2.body["page"].as_i64(), r2.body["percent"].as_i64()),
        (Some(50), Some(25))
    );
    assert_eq!(r2.body["minutesRead"], 90);
    assert!(
        entry_status(&app, &t)
            .await
            .contains(&(a.clone(), "reading".into())),
        "ending at a page resumes"
    );
    app.send(Method::POST, &format!("/sessions/{s1}/end"), Some(&t), None)
        .await
        .problem(409);

    // A day is the most a session counts; closing the read ends its running session.
    let s2 = act(&app, &t, &read, "sessions", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    sqlx::query(
        "UPDATE reading_sessions SET started_at = started_at - interval '3 days' WHERE id = $1::uuid",
    )
    .bind(&s2)
    .execute(&app.pool)
    .await
    .unwrap();
    let r = act(&app, &t, &read, "finish", None).await;
    assert_eq!(r.body["minutesRead"], 90 + 1440, "{}", r.body);
    let list = app.get(&format!("/reads/{read}/sessions"), Some(&t)).await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]["id"],
        s1.as_str(),
        "newest start first (s2 was moved back 3 days)"
    );
    assert_eq!(items[1]["minutes"], 1440);
    // The session of the closed read is over, so another can start elsewhere.
    assert_eq!(
        act(&app, &t, &other, "sessions", None).await.status,
        StatusCode::CREATED
    );

    // Deleting the library entry deletes its reads and their sessions.
    let r = app
        .send(Method::DELETE, &format!("/library/{a}"), Some(&t), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get(&format!("/reads/{read}"), Some(&t)).await.problem(404);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM reading_sessions WHERE read_id = $1::uuid")
        .bind(&read)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn concurrent_starts_make_exactly_one_read_and_one_session() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = reader(&app, "racer@example.org").await;
    let b = book(&app, &admin, json!({})).await;
    let starts = (0..12).map(|_| start(&app, &t, &b, None));
    let statuses: Vec<u16> = futures::future::join_all(starts)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 409).count(), 11, "{statuses:?}");

    // Sessions: one running per caller, even across reads started at once.
    let mut reads = vec![
        app.get(&format!("/library/{b}/reads"), Some(&t)).await.body["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_string(),
    ];
    for _ in 0..3 {
        let other = book(&app, &admin, json!({})).await;
        reads.push(started(&app, &t, &other, None).await);
    }
    let sessions = reads
        .iter()
        .flat_map(|r| [r, r, r])
        .map(|r| act(&app, &t, r, "sessions", None));
    let statuses: Vec<u16> = futures::future::join_all(sessions)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 409).count(), 11, "{statuses:?}");
    let running: i64 = sqlx::query_scalar("SELECT count(*) FROM reading_sessions WHERE ended_at IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(running, 1);
}

/// Waits until some session of this test's database waits for a lock.
async fn a_request_waits_on_a_lock(app: &TestApp) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE NOT l.granted AND a.datname = current_database()",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request is waiting on a lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn finishing_a_read_locks_its_entry_before_the_read_as_starting_one_does() {
    // Starting a read locks the library entry, then waits on the book's open read (the
    // one-open-read index). A finish that locked the read and then the entry deadlocked
    // with it (found by the contract fuzz: a 500).
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = reader(&app, "lock-order@example.org").await;
    let b = book(&app, &admin, json!({})).await;
    let read = started(&app, &t, &b, None).await;

    // Hold what a concurrent start holds first.
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM library_entries WHERE book_id = $1::uuid FOR UPDATE")
        .bind(&b)
        .execute(&mut *holder)
        .await
        .unwrap();
    let (app, read) = (&app, read.as_str());
    let probe = async move {
        a_request_waits_on_a_lock(app).await;
        // The finish waits for the entry without holding the read.
        let free = sqlx::query("SELECT 1 FROM reads WHERE id = $1::uuid FOR UPDATE NOWAIT")
            .bind(read)
            .execute(&app.pool)
            .await;
        holder.commit().await.unwrap();
        free
    };
    let (finished, free) = tokio::join!(act(app, &t, read, "finish", None), probe);
    assert!(
        free.is_ok(),
        "the finish held the read while waiting for its entry: {free:?}"
    );
    assert_eq!(finished.status, StatusCode::OK, "{}", finished.body);
}

#[tokio::test]
async fn goals_are_per_year_and_count_finished_reads() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = reader(&app, "goal@example.org").await;
    let next = chrono::Datelike::year(&chrono::Utc::now()) + 1;

    app.get("/users/me/goals/2026", Some(&t)).await.problem(404);
    app.send(Method::DELETE, "/users/me/goals/2026", Some(&t), None)
        .await
        .problem(404);
    let r = app
        .send(
            Method::PUT,
            "/users/me/goals/2026",
            Some(&t),
            Some(json!({"books": 12})),
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::OK, json!({"year": 2026, "books": 12, "finished": 0}))
    );
    let r = app
        .send(
            Method::PUT,
            "/users/me/goals/2026",
            Some(&t),
            Some(json!({"books": 20})),
        )
        .await;
    assert_eq!(r.body["books"], 20, "replaced");

    let b = book(&app, &admin, json!({})).await;
    let id = started(&app, &t, &b, Some(json!({"startedAt": "2026-03-01T00:00:00Z"}))).await;
    act(
        &app,
        &t,
        &id,
        "finish",
        Some(json!({"finishedAt": "2026-03-05T00:00:00Z"})),
    )
    .await;
    let r = app.get("/users/me/goals/2026", Some(&t)).await;
    assert_eq!(r.body, json!({"year": 2026, "books": 20, "finished": 1}));

    for bad in ["1899", &(next + 1).to_string(), "abc", "2026.5"] {
        assert_eq!(
            app.get(&format!("/users/me/goals/{bad}"), Some(&t))
                .await
                .bad_fields(),
            ["year"],
            "{bad}"
        );
    }
    assert!(app.get(&format!("/users/me/goals/{next}"), Some(&t)).await.status == StatusCode::NOT_FOUND);
    assert_eq!(
        app.send(
            Method::PUT,
            "/users/me/goals/1800",
            Some(&t),
            Some(json!({"books": 0}))
        )
        .await
        .bad_fields(),
        ["books", "year"]
    );
    assert_eq!(
        app.send(
            Method::PUT,
            "/users/me/goals/2026",
            Some(&t),
            Some(json!({"books": 1001}))
        )
        .await
        .bad_fields(),
        ["books"]
    );
    // Another user sees no goal of Ann's.
    let other = reader(&app, "other@example.org").await;
    app.get("/users/me/goals/2026", Some(&other)).await.problem(404);

    let r = app
        .send(Method::DELETE, "/users/me/goals/2026", Some(&t), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/users/me/goals/2026", Some(&t)).await.problem(404);
}

#[tokio::test]
async fn stats_count_in_utc_years_and_months() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = reader(&app, "stats@example.org").await;
    let long = book(&app, &admin, json!({"pageCount": 300})).await;
    let short = book(&app, &admin, json!({"pageCount": 120})).await;
    let unknown = book(&app, &admin, json!({})).await;

    // The last second of 2025 counts in 2025; the first of 2026 in January 2026.
    let r1 = started(
        &app,
        &t,
        &long,
        Some(json!({"startedAt": "2025-12-01T00:00:00Z"})),
    )
    .await;
    act(
        &app,
        &t,
        &r1,
        "finish",
        Some(json!({"finishedAt": "2025-12-31T23:59:59Z"})),
    )
    .await;
    let r2 = started(
        &app,
        &t,
        &long,
        Some(json!({"startedAt": "2025-12-31T23:00:00Z"})),
    )
    .await;
    act(
        &app,
        &t,
        &r2,
        "finish",
        Some(json!({"finishedAt": "2026-01-01T00:00:00+00:00"})),
    )
    .await;
    // Midnight in UTC+2 on 1 March is still February in UTC.
    let r3 = started(
        &app,
        &t,
        &short,
        Some(json!({"startedAt": "2026-02-01T00:00:00Z"})),
    )
    .await;
    act(
        &app,
        &t,
        &r3,
        "finish",
        Some(json!({"finishedAt": "2026-03-01T00:30:00+02:00"})),
    )
    .await;
    let r4 = started(
        &app,
        &t,
        &unknown,
        Some(json!({"startedAt": "2026-04-01T00:00:00Z"})),
    )
    .await;
    act(
        &app,
        &t,
        &r4,
        "finish",
        Some(json!({"finishedAt": "2026-04-02T00:00:00Z"})),
    )
    .await;
    let r5 = started(
        &app,
        &t,
        &short,
        Some(json!({"startedAt": "2026-05-01T00:00:00Z"})),
    )
    .await;
    act(
        &app,
        &t,
        &r5,
        "abandon",
        Some(json!({"abandonedAt": "2026-05-02T00:00:00Z"})),
    )
    .await;

    // Ratings of the distinct finished books: long 5 (finished twice, counted once), short 2;
    // the unknown-length book has none.
    for (b, status, rating) in [
        (&long, "read", Some(5)),
        (&short, "did_not_finish", Some(2)),
        (&unknown, "read", None),
    ] {
        let r = app
            .send(
                Method::PUT,
                &format!("/library/{b}"),
                Some(&t),
                Some(json!({"status": status, "rating": rating})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // Sessions: one ended in 2026 (45 min, in July), one in 2025.
    let r6 = started(&app, &t, &unknown, None).await;
    let s = act(&app, &t, &r6, "sessions", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.send(Method::POST, &format!("/sessions/{s}/end"), Some(&t), None)
        .await;
    sqlx::query(
        "UPDATE reading_sessions SET started_at = '2026-07-10T10:00:00Z', ended_at = '2026-07-10T10:45:00Z', minutes = 45
         WHERE id = $1::uuid",
    )
    .bind(&s)
    .execute(&app.pool)
    .await
    .unwrap();
    let s = act(&app, &t, &r6, "sessions", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.send(Method::POST, &format!("/sessions/{s}/end"), Some(&t), None)
        .await;
    sqlx::query(
        "UPDATE reading_sessions SET started_at = '2025-07-10T10:00:00Z', ended_at = '2025-07-10T10:30:00Z', minutes = 30
         WHERE id = $1::uuid",
    )
    .bind(&s)
    .execute(&app.pool)
    .await
    .unwrap();
    app.send(
        Method::PUT,
        "/users/me/goals/2026",
        Some(&t),
        Some(json!({"books": 10})),
    )
    .await;

    let r = app.get("/users/me/stats?year=2026", Some(&t)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let s = &r.body;
    assert_eq!(
        (
            s["year"].as_i64(),
            s["booksFinished"].as_i64(),
            s["booksAbandoned"].as_i64(),
            s["pagesRead"].as_i64(),
            s["minutesRead"].as_i64()
        ),
        (Some(2026), Some(3), Some(1), Some(300 + 120), Some(45)),
        "{s}"
    );
    assert_eq!(s["averageRating"].as_f64(), Some(3.5));
    assert_eq!(s["goal"], json!({"year": 2026, "books": 10, "finished": 3}));
    let months = s["months"].as_array().unwrap();
    assert_eq!(months.len(), 12);
    assert_eq!(
        months[0],
        json!({"month": 1, "booksFinished": 1, "pagesRead": 300, "minutesRead": 0})
    );
    assert_eq!(
        months[1],
        json!({"month": 2, "booksFinished": 1, "pagesRead": 120, "minutesRead": 0})
    );
    assert_eq!(months[2]["booksFinished"], 0);
    assert_eq!(
        months[3],
        json!({"month": 4, "booksFinished": 1, "pagesRead": 0, "minutesRead": 0})
    );
    assert_eq!(months[6]["minutesRead"], 45);

    let r = app.get("/users/me/stats?year=2025", Some(&t)).await;
    assert_eq!(
        (
            r.body["booksFinished"].as_i64(),
            r.body["pagesRead"].as_i64(),
            r.body["minutesRead"].as_i64()
        ),
        (Some(1), Some(300), Some(30))
    );
    assert_eq!(r.body["averageRating"].as_f64(), Some(5.0));
    assert!(r.body["goal"].is_null());
    assert_eq!(r.body["months"][11]["booksFinished"], 1);

    // A deleted read no longer counts; a year with nothing has zeros and no average.
    app.send(Method::DELETE, &format!("/reads/{r2}"), Some(&t), None)
        .await;
    let r = app.get("/users/me/stats?year=2026", Some(&t)).await;
    assert_eq!(
        (r.body["booksFinished"].as_i64(), r.body["pagesRead"].as_i64()),
        (Some(2), Some(120))
    );
    assert_eq!(r.body["averageRating"].as_f64(), Some(2.0));
    let r = app.get("/users/me/stats?year=1999", Some(&t)).await;
    assert_eq!(
        (r.body["booksFinished"].as_i64(), r.body["averageRating"].clone()),
        (Some(0), Value::Null)
    );
    let r = app.get("/users/me/stats", Some(&t)).await;
    assert_eq!(
        r.body["year"].as_i64(),
        Some(chrono::Datelike::year(&chrono::Utc::now()) as i64)
    );
    for bad in ["1899", "9999", "x", ""] {
        assert_eq!(
            app.get(&format!("/users/me/stats?year={bad}"), Some(&t))
                .await
                .bad_fields(),
            ["year"],
            "{bad:?}"
        );
    }
    // Another user's figures are their own.
    let other = reader(&app, "zero@example.org").await;
    let r = app.get("/users/me/stats?year=2026", Some(&other)).await;
    assert_eq!(r.body["booksFinished"], 0);
}

async fn export(
    app: &TestApp,
    t: &str,
    accept: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = app
        .client
        .get(format!("{}/library/export", app.url))
        .bearer_auth(t);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

#[tokio::test]
async fn the_export_is_the_whole_library_in_json_or_csv() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = reader(&app, "export@example.org").await;
    let tricky = book(
        &app,
        &admin,
        json!({"title": "Commas, \"quotes\"", "authors": ["A. One", "B. Two"], "isbn": "0-441-17271-7"}),
    )
    .await;
    let plain = book(&app, &admin, json!({"title": "Plain"})).await;
    app.send(
        Method::PUT,
        &format!("/library/{tricky}"),
        Some(&t),
        Some(json!({"status": "want_to_read", "rating": 4, "review": "Line one\nline \"two\"", "favorite": true})),
    )
    .await;
    let first = started(
        &app,
        &t,
        &plain,
        Some(json!({"startedAt": "2026-01-01T08:00:00Z"})),
    )
    .await;
    act(
        &app,
        &t,
        &first,
        "finish",
        Some(json!({"finishedAt": "2026-01-10T08:00:00Z"})),
    )
    .await;
    started(
        &app,
        &t,
        &plain,
        Some(json!({"startedAt": "2026-02-01T08:00:00Z"})),
    )
    .await;

    for accept in [None, Some("*/*"), Some("application/*"), Some("application/json")] {
        let (status, headers, body) = export(&app, &t, accept).await;
        assert_eq!(status, StatusCode::OK, "{accept:?}");
        assert_eq!(headers["content-type"], "application/json");
        assert!(headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"));
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert!(doc["exportedAt"].as_str().unwrap().ends_with('Z'));
        let entries = doc["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0]["book"],
            json!({"id": tricky, "title": "Commas, \"quotes\"", "authors": ["A. One", "B. Two"], "isbn": "9780441172719"})
        );
        assert_eq!(
            (entries[0]["rating"].as_i64(), entries[0]["favorite"].as_bool()),
            (Some(4), Some(true))
        );
        assert_eq!(entries[0]["reads"], json!([]));
        assert_eq!(entries[1]["status"], "reading");
        let reads = entries[1]["reads"].as_array().unwrap();
        assert_eq!(reads.len(), 2);
        assert_eq!(reads[1]["id"], first.as_str());
    }

    let (status, headers, body) = export(&app, &t, Some("text/csv")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    assert!(!body.starts_with('\u{feff}'), "no byte-order mark");
    assert!(body.ends_with("\r\n"));
    let mut reader = csv::ReaderBuilder::new().from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "book_id",
            "title",
            "authors",
            "isbn",
            "status",
            "rating",
            "favorite",
            "added_at",
            "started_at",
            "finished_at",
            "review"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let r0: Vec<&str> = rows[0].iter().collect();
    assert_eq!(
        &r0[..7],
        [
            tricky.as_str(),
            "Commas, \"quotes\"",
            "A. One; B. Two",
            "9780441172719",
            "want_to_read",
            "4",
            "true"
        ]
    );
    assert_eq!((r0[8], r0[9], r0[10]), ("", "", "Line one\nline \"two\""));
    let r1: Vec<&str> = rows[1].iter().collect();
    assert_eq!((r1[3], r1[5], r1[6]), ("", "", "false"));
    assert_eq!(
        (r1[8], r1[9]),
        ("2026-02-01T08:00:00Z", ""),
        "the newest read, not finished"
    );
    assert!(
        body.contains("\"Commas, \"\"quotes\"\"\""),
        "RFC 4180 quoting: {body}"
    );

    for refused in ["image/png", "text/html", "application/json;q=0, text/csv;q=0"] {
        let (status, headers, body) = export(&app, &t, Some(refused)).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE, "{refused}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn a_large_library_exports_whole_across_pages() {
    let app = TestApp::start().await;
    let t = reader(&app, "big@example.org").await;
    let me = app.get("/users/me", Some(&t)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let added = bookshelf_devserver::seed::seed_books(&app.pool, 1_234, 7)
        .await
        .unwrap();
    assert_eq!(added, 1_234);
    // More entries than one export page (500), shelved straight in the database.
    sqlx::query(
        "INSERT INTO library_entries (user_id, book_id, status, added_at)
         SELECT $1::uuid, id, 'read', now() - make_interval(secs => row_number() OVER (ORDER BY id))
         FROM books",
    )
    .bind(&me)
    .execute(&app.pool)
    .await
    .unwrap();
    let (_, _, body) = export(&app, &t, None).await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    let entries = doc["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1_234);
    let mut ids: Vec<&str> = entries
        .iter()
        .map(|e| e["book"]["id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1_234, "no entry twice across page boundaries");
    let (_, _, csv) = export(&app, &t, Some("text/csv")).await;
    assert_eq!(
        csv.matches("\r\n").count(),
        1_235,
        "header and one record per entry"
    );
}

/// `format=goodreads`: Goodreads' export layout, which other trackers import.
#[tokio::test]
async fn the_export_speaks_the_goodreads_layout() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = reader(&app, "goodreads@example.org").await;
    let omens = book(
        &app,
        &admin,
        json!({"title": "Good Omens", "authors": ["Terry Pratchett", "Neil Gaiman"],
               "isbn": "0-06-085398-0", "pageCount": 432, "publishedYear": 1990}),
    )
    .await;
    let plain = book(&app, &admin, json!({"title": "Plain"})).await;
    app.send(
        Method::PUT,
        &format!("/library/{plain}"),
        Some(&t),
        Some(json!({"status": "want_to_read"})),
    )
    .await;
    let read = started(
        &app,
        &t,
        &omens,
        Some(json!({"startedAt": "2026-01-01T08:00:00Z"})),
    )
    .await;
    act(
        &app,
        &t,
        &read,
        "finish",
        Some(json!({"finishedAt": "2026-01-10T23:30:00Z"})),
    )
    .await;
    app.send(
        Method::PUT,
        &format!("/library/{omens}"),
        Some(&t),
        Some(json!({"status": "read", "rating": 5, "review": "Funny, \"wise\"."})),
    )
    .await;

    for accept in [None, Some("application/json"), Some("text/csv")] {
        let mut req = app
            .client
            .get(format!("{}/library/export?format=goodreads", app.url))
            .bearer_auth(&t);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{accept:?}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        assert!(r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"));
        let body = r.text().await.unwrap();
        assert!(body.ends_with("\r\n"));
        let mut csv = csv::ReaderBuilder::new().from_reader(body.as_bytes());
        assert_eq!(
            csv.headers().unwrap().iter().collect::<Vec<_>>(),
            bookshelf_domain::library::GOODREADS_HEADER
        );
        let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        let cell = |row: &csv::StringRecord, name: &str| {
            let at = bookshelf_domain::library::GOODREADS_HEADER
                .iter()
                .position(|h| *h == name)
                .unwrap();
            row[at].to_string()
        };
        let (first, second) = (&rows[0], &rows[1]);
        let (omens_row, plain_row) = if cell(first, "Book Id") == omens {
            (first, second)
        } else {
            (second, first)
        };
        assert_eq!(cell(omens_row, "Author"), "Terry Pratchett");
        assert_eq!(cell(omens_row, "Additional Authors"), "Neil Gaiman");
        assert_eq!(cell(omens_row, "ISBN"), "=\"0060853980\"");
        assert_eq!(cell(omens_row, "ISBN13"), "=\"9780060853983\"");
        assert_eq!(cell(omens_row, "My Rating"), "5");
        assert_eq!(cell(omens_row, "Number of Pages"), "432");
        assert_eq!(cell(omens_row, "Year Published"), "1990");
        assert_eq!(cell(omens_row, "Date Read"), "2026/01/10");
        assert_eq!(cell(omens_row, "Exclusive Shelf"), "read");
        assert_eq!(cell(omens_row, "My Review"), "Funny, \"wise\".");
        assert_eq!(cell(omens_row, "Read Count"), "1");
        assert_eq!(cell(omens_row, "Average Rating"), "");
        assert_eq!(cell(plain_row, "Exclusive Shelf"), "to-read");
        assert_eq!(cell(plain_row, "My Rating"), "0");
        assert_eq!(
            (cell(plain_row, "ISBN"), cell(plain_row, "Date Read")),
            ("=\"\"".into(), String::new())
        );
        assert_eq!(cell(plain_row, "Read Count"), "0");
    }

    let r = app.get("/library/export?format=bookshelf", Some(&t)).await;
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 2);
    for bad in ["csv", "GOODREADS", ""] {
        let r = app.get(&format!("/library/export?format={bad}"), Some(&t)).await;
        assert_eq!(r.bad_fields(), ["format"], "{bad:?}");
    }
}
