//! Faults against real servers on 127.0.0.1: the database restarted under a load of
//! orders, and the queue server stopped and started again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bookshelf_devserver::pg::PgCluster;
use bookshelf_queue::{MemoryQueue, Queue};
use reqwest::StatusCode;
use serde_json::json;

use crate::books::create_book;
use crate::harness::{token, Scene, TestApp};

/// Waits until no order is pending (or fails after `within`).
async fn drained(app: &TestApp, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let pending: Result<i64, _> =
            sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'pending'")
                .fetch_one(&app.pool)
                .await;
        if let Ok(0) = pending {
            return;
        }
        assert!(Instant::now() < deadline, "orders still pending: {pending:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_database_restart_under_load_loses_no_order_and_confirms_none_twice() {
    let dir = std::env::temp_dir().join(format!("bookshelf-fault-pg-{}", uuid::Uuid::new_v4().simple()));
    let cluster = PgCluster::start(&dir, false).await.unwrap();
    // Enough deliveries to outlast the restart; the visibility timeout paces the retries.
    let queue = Queue::Memory(Arc::new(MemoryQueue::new(Duration::from_millis(500), 50)));
    let app = TestApp::start_on(&cluster.url("postgres"), Some(queue), |s| s).await;
    let Scene {
        reader: buyer, book, ..
    } = app.scene("load@example.org", json!({"stock": 1000})).await;

    let client = app.client.clone();
    let url = app.url.clone();
    let place = move |n: usize| {
        let (client, url, buyer, book) = (client.clone(), url.clone(), buyer.clone(), book.clone());
        async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            for _ in 0..n {
                let r = client
                    .post(format!("{url}/orders"))
                    .bearer_auth(&buyer)
                    .json(&json!({"items": [{"bookId": book, "quantity": 1}]}))
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => accepted.push(
                        r.json::<serde_json::Value>().await.unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    ),
                    // During the restart: a retryable refusal, never a silent loss.
                    Ok(r) => {
                        assert_eq!(
                            r.status(),
                            StatusCode::SERVICE_UNAVAILABLE,
                            "{:?}",
                            r.text().await
                        );
                        refused += 1;
                    }
                    Err(e) => panic!("transport error: {e}"),
                }
            }
            (accepted, refused)
        }
    };
    let load: Vec<_> = (0..6).map(|_| tokio::spawn(place(40))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.restart().await.unwrap();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for l in load {
        let (a, r) = l.await.unwrap();
        accepted.extend(a);
        refused += r;
    }
    assert!(!accepted.is_empty());

    drained(&app, Duration::from_secs(60)).await;
    let confirmed: HashSet<String> =
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM orders WHERE status = 'confirmed'")
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.to_string())
            .collect();
    for id in &accepted {
        assert!(confirmed.contains(id), "accepted order {id} was not confirmed");
    }
    // Nothing reserved twice; stock and ledger agree.
    let (reservations, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT order_id) FROM inventory_ledger WHERE reason = 'order reserved'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(reservations, distinct, "an order reserved twice");
    assert_eq!(distinct as usize, confirmed.len());
    let (stock, ledger_sum): (i32, i64) = sqlx::query_as(
        "SELECT b.stock, (SELECT sum(delta) FROM inventory_ledger l WHERE l.book_id = b.id) FROM books b WHERE b.title = 'Untitled'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stock as i64, ledger_sum);
    assert_eq!(stock as usize, 1000 - confirmed.len());
    eprintln!(
        "{} accepted, {} refused with 503 during the restart",
        accepted.len(),
        refused
    );
    drop(app);
    cluster.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_database_restart_loses_no_activity_and_doubles_none() {
    let dir = std::env::temp_dir().join(format!("bookshelf-fault-pg-{}", uuid::Uuid::new_v4().simple()));
    let cluster = PgCluster::start(&dir, false).await.unwrap();
    let queue = Queue::Memory(Arc::new(MemoryQueue::new(Duration::from_millis(500), 50)));
    // Activities get the same generous redelivery as orders here, to outlast the restart.
    let app = TestApp::start_on(&cluster.url("postgres"), Some(queue), |s| {
        s.with_activity_queue(Queue::Memory(Arc::new(MemoryQueue::new(
            Duration::from_millis(500),
            50,
        ))))
    })
    .await;
    let admin = app.admin_token().await;
    let star = app.register("loud@example.org", "password123").await;
    let star_id = star["user"]["id"].as_str().unwrap().to_string();
    let star = token(&star);
    let mut fans = 0;
    for i in 0..4 {
        let fan = token(
            &app.register(&format!("listener{i}@example.org"), "password123")
                .await,
        );
        let r = app
            .send(
                reqwest::Method::PUT,
                &format!("/users/{star_id}/follow"),
                Some(&fan),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        fans += 1;
    }
    let mut books = Vec::new();
    for _ in 0..40 {
        books.push(
            create_book(&app, &admin, json!({})).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    // Shelving 40 books (one `shelved` each) while the database restarts underneath.
    let (client, url) = (app.client.clone(), app.url.clone());
    let load = tokio::spawn(async move {
        let mut done = 0;
        for book in books {
            loop {
                let r = client
                    .put(format!("{url}/library/{book}"))
                    .bearer_auth(&star)
                    .json(&json!({"status": "want_to_read"}))
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await
                    .expect("transport");
                match r.status() {
                    s if s.is_success() => break,
                    // During the restart: a retryable refusal; the client retries.
                    StatusCode::SERVICE_UNAVAILABLE => tokio::time::sleep(Duration::from_millis(100)).await,
                    s => panic!("{s}: {:?}", r.text().await),
                }
            }
            done += 1;
        }
        done
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.restart().await.unwrap();
    assert_eq!(load.await.unwrap(), 40);

    // Every shelved activity reaches every fan exactly once: the relay resends what the
    // request path could not, the fan-out retries what failed, the key absorbs repeats.
    let deadline = Instant::now() + Duration::from_secs(60);
    let want = 40 * fans;
    loop {
        let counts: Result<(i64, i64), _> = sqlx::query_as(
            "SELECT count(*), count(DISTINCT (reader_id, activity_id)) FROM feed_items fi
             JOIN activities a ON a.id = fi.activity_id WHERE a.type = 'shelved'",
        )
        .fetch_one(&app.pool)
        .await;
        if let Ok((rows, distinct)) = counts {
            assert_eq!(rows, distinct);
            if rows == want {
                break;
            }
        }
        assert!(Instant::now() < deadline, "feed rows {counts:?}, want {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let activities: i64 = sqlx::query_scalar("SELECT count(*) FROM activities WHERE type = 'shelved'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(activities, 40, "one activity per shelved book, none twice");
    drop(app);
    cluster.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
