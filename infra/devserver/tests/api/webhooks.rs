//! Webhooks end to end: a receiver on 127.0.0.1 gets signed deliveries of the change feed's
//! events and pings through the local dispatcher, sender and recorder (in-process queues);
//! failures are retried with the same event id, 20 in a row disable the webhook; the
//! delivery log; destinations that are not public are refused.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::books::create_book;
use crate::harness::{token, TestApp};

#[derive(Clone, Debug)]
pub struct Received {
    headers: http::HeaderMap,
    body: String,
}

/// A receiver that answers `status` and keeps what it was sent.
pub struct Receiver {
    pub url: String,
    pub status: Arc<AtomicU16>,
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let status = Arc::new(AtomicU16::new(200));
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let (s, g) = (status.clone(), got.clone());
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (s, g) = (s.clone(), g.clone());
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
                g.lock().unwrap().push(Received {
                    headers: parts.headers,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                });
                let code = s.load(Ordering::SeqCst);
                (StatusCode::from_u16(code).unwrap(), "x".repeat(4000))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, status, got }
    }

    /// Waits until a delivery matching `pick` has arrived; returns it.
    pub async fn wait_for(&self, within: Duration, pick: impl Fn(&Received) -> bool) -> Received {
        let started = Instant::now();
        loop {
            if let Some(r) = self.got.lock().unwrap().iter().find(|r| pick(r)).cloned() {
                return r;
            }
            assert!(
                started.elapsed() < within,
                "no such delivery within {within:?}: {:?}",
                self.got.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

pub fn of_type(kind: &'static str) -> impl Fn(&Received) -> bool {
    move |r| header(r, "bookshelf-event-type") == kind
}

/// The receiver's check: `v1` is the HMAC-SHA256 of `<t>.<body>` under the secret.
pub fn verify(r: &Received, secret: &str) {
    let sig = header(r, "bookshelf-signature");
    let t: i64 = sig
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("signature {sig:?}"));
    assert!(
        (chrono::Utc::now().timestamp() - t).abs() < 60,
        "a fresh timestamp"
    );
    assert_eq!(
        sig,
        bookshelf_domain::webhook::signature(secret.as_bytes(), t, r.body.as_bytes())
    );
    assert_ne!(
        sig,
        bookshelf_domain::webhook::signature(b"another secret", t, r.body.as_bytes())
    );
}

pub async fn create(app: &TestApp, t: &str, url: &str, events: Value) -> Value {
    let r = app
        .post("/webhooks", Some(t), json!({"url": url, "events": events}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some(format!("/webhooks/{}", r.body["id"].as_str().unwrap()).as_str())
    );
    r.body
}

#[tokio::test]
async fn changes_and_pings_arrive_signed_and_are_logged() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = token(&app.register("hooked@example.org", "password123").await);
    let receiver = Receiver::start().await;
    let hook = create(
        &app,
        &t,
        &receiver.url,
        json!(["entry.upserted", "entry.deleted", "order.updated"]),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["active"], true);
    assert!(hook["disabledReason"].is_null());
    // The secret is shown once, and stored sealed.
    let got = app.get(&format!("/webhooks/{id}"), Some(&t)).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body.get("secret").is_none(), "{}", got.body);
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT secret_sealed FROM webhooks WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));

    let book = create_book(&app, &admin, json!({"title": "Hooked"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let r = app
        .send(
            Method::PUT,
            &format!("/library/{book}"),
            Some(&t),
            Some(json!({"status": "reading"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let d = receiver
        .wait_for(Duration::from_secs(2), of_type("entry.upserted"))
        .await;
    eprintln!(
        "entry.upserted delivered {:?} after the request",
        started.elapsed()
    );
    verify(&d, &secret);
    assert_eq!(header(&d, "content-type"), "application/json");
    let body: Value = serde_json::from_str(&d.body).unwrap();
    assert_eq!(body["id"], header(&d, "bookshelf-event-id"));
    assert_eq!(body["type"], "entry.upserted");
    assert!(body["createdAt"].is_string());
    assert_eq!(body["data"]["type"], "entry");
    assert_eq!(body["data"]["op"], "upsert");
    assert_eq!(body["data"]["id"], book.as_str());
    assert_eq!(body["data"]["data"]["status"], "reading");
    // Not subscribed: reads and goals are not sent to this webhook.
    app.send(
        Method::PUT,
        "/users/me/goals/2026",
        Some(&t),
        Some(json!({"books": 3})),
    )
    .await;

    let p = app
        .post(&format!("/webhooks/{id}/ping"), Some(&t), json!({}))
        .await;
    assert_eq!(p.status, StatusCode::ACCEPTED, "{}", p.body);
    let ping = receiver.wait_for(Duration::from_secs(2), of_type("ping")).await;
    verify(&ping, &secret);
    assert_eq!(
        serde_json::from_str::<Value>(&ping.body).unwrap()["data"],
        json!({})
    );

    app.send(Method::DELETE, &format!("/library/{book}"), Some(&t), None)
        .await;
    let gone = receiver
        .wait_for(Duration::from_secs(2), of_type("entry.deleted"))
        .await;
    let body: Value = serde_json::from_str(&gone.body).unwrap();
    assert_eq!(body["data"]["op"], "delete");
    assert!(body["data"]["data"].is_null());
    assert!(receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .all(|r| !header(r, "bookshelf-event-type").starts_with("goal")));

    // The log: every attempt, newest first, the answer's body never kept beyond 1 KiB.
    let started = Instant::now();
    let log = loop {
        let log = app.get(&format!("/webhooks/{id}/deliveries"), Some(&t)).await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.body);
        if log.body["items"].as_array().unwrap().len() >= 3 || started.elapsed() > Duration::from_secs(3) {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{}", log.body);
    assert_eq!(items[0]["type"], "entry.deleted");
    for d in items {
        assert_eq!(d["outcome"], "succeeded", "{d}");
        assert_eq!(d["responseStatus"], 200);
        assert_eq!(d["attempt"], 1);
        assert!(
            d["durationMs"].is_i64() && d["at"].is_string() && d["eventId"].is_string(),
            "{d}"
        );
    }

    // Another reader sees none of it.
    let other = token(&app.register("nosy@example.org", "password123").await);
    app.get(&format!("/webhooks/{id}"), Some(&other))
        .await
        .problem(404);
    app.get(&format!("/webhooks/{id}/deliveries"), Some(&other))
        .await
        .problem(404);
    app.post(&format!("/webhooks/{id}/ping"), Some(&other), json!({}))
        .await
        .problem(404);
    assert_eq!(app.get("/webhooks", Some(&other)).await.body["items"], json!([]));
    let del = app
        .send(Method::DELETE, &format!("/webhooks/{id}"), Some(&t), None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    app.get(&format!("/webhooks/{id}"), Some(&t)).await.problem(404);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_same_event_again_and_twenty_failures_disable() {
    let app = TestApp::start().await;
    let t = token(&app.register("flaky@example.org", "password123").await);
    let receiver = Receiver::start().await;
    receiver.status.store(500, Ordering::SeqCst);
    let hook = create(&app, &t, &receiver.url, json!(["*"])).await;
    let id = hook["id"].as_str().unwrap().to_string();
    app.post(&format!("/webhooks/{id}/ping"), Some(&t), json!({}))
        .await;
    let first = receiver.wait_for(Duration::from_secs(2), of_type("ping")).await;
    let event = header(&first, "bookshelf-event-id").to_string();
    // Retried (locally the first retry comes within 5 seconds) with the same event id; the
    // receiver is back, and the retry succeeds.
    receiver.status.store(204, Ordering::SeqCst);
    let started = Instant::now();
    loop {
        let n = receiver
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| header(r, "bookshelf-event-id") == event)
            .count();
        if n >= 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no retry within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = app.get(&format!("/webhooks/{id}/deliveries"), Some(&t)).await;
    let items = log.body["items"].as_array().unwrap();
    let outcomes: Vec<(i64, &str, Option<i64>)> = items
        .iter()
        .map(|d| {
            (
                d["attempt"].as_i64().unwrap(),
                d["outcome"].as_str().unwrap(),
                d["responseStatus"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![(2, "succeeded", Some(204)), (1, "failed", Some(500))],
        "{}",
        log.body
    );
    let error = items[1]["error"].as_str().unwrap();
    assert!(
        error.len() <= 1100,
        "at most 1 KiB of the answer is kept: {}",
        error.len()
    );

    // Twenty failed attempts in a row (pings and their retries) turn it off.
    receiver.status.store(503, Ordering::SeqCst);
    for _ in 0..20 {
        app.post(&format!("/webhooks/{id}/ping"), Some(&t), json!({}))
            .await;
    }
    let started = Instant::now();
    let off = loop {
        let w = app.get(&format!("/webhooks/{id}"), Some(&t)).await.body;
        if w["active"] == false {
            break w;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still active: {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(off["disabledReason"].as_str().unwrap().contains("20"), "{off}");
    // Disabled: a change sends nothing more.
    let before = receiver.got.lock().unwrap().len();
    app.send(
        Method::PUT,
        "/users/me/goals/2026",
        Some(&t),
        Some(json!({"books": 3})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: Vec<String> = receiver.got.lock().unwrap()[before..]
        .iter()
        .map(|r| header(r, "bookshelf-event-type").to_string())
        .collect();
    assert!(!after.iter().any(|t| t.starts_with("goal")), "{after:?}");
    // Re-enabled by its owner: deliveries resume.
    receiver.status.store(200, Ordering::SeqCst);
    let on = app
        .send(
            Method::PATCH,
            &format!("/webhooks/{id}"),
            Some(&t),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    assert_eq!(on.body["active"], true);
    assert!(on.body["disabledReason"].is_null());
    app.send(
        Method::PUT,
        "/users/me/goals/2027",
        Some(&t),
        Some(json!({"books": 4})),
    )
    .await;
    receiver
        .wait_for(Duration::from_secs(2), of_type("goal.upserted"))
        .await;
}

#[tokio::test]
async fn destinations_that_are_not_public_and_unknown_events_are_refused() {
    let app = TestApp::start().await;
    let t = token(&app.register("ssrf@example.org", "password123").await);
    for url in [
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/hook",
        "https://192.168.1.1/hook",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://127.0.0.1/hook",
        "http://example.org/hook",
        "ftp://example.org/hook",
        "https://user:pw@example.org/hook",
        "not a url",
    ] {
        let r = app
            .post("/webhooks", Some(&t), json!({"url": url, "events": ["*"]}))
            .await;
        assert_eq!(r.bad_fields(), vec!["url"], "{url}: {}", r.body);
    }
    for events in [
        json!([]),
        json!(["entry.created"]),
        json!("entry.upserted"),
        json!(vec!["*"; 11]),
    ] {
        let r = app
            .post(
                "/webhooks",
                Some(&t),
                json!({"url": "https://hooks.example.com/x", "events": events}),
            )
            .await;
        assert_eq!(r.bad_fields(), vec!["events"], "{events}: {}", r.body);
    }
    let r = app
        .post(
            "/webhooks",
            Some(&t),
            json!({"url": "https://hooks.example.com/x", "events": ["*"], "extra": 1}),
        )
        .await;
    r.problem(400);
    for i in 0..10 {
        create(
            &app,
            &t,
            &format!("https://hooks.example.com/{i}"),
            json!(["goal.upserted"]),
        )
        .await;
    }
    let r = app
        .post(
            "/webhooks",
            Some(&t),
            json!({"url": "https://hooks.example.com/11", "events": ["*"]}),
        )
        .await;
    r.problem(409);
    let list = app.get("/webhooks", Some(&t)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 10);
    let id = list.body["items"][0]["id"].as_str().unwrap().to_string();
    let r = app
        .send(
            Method::PATCH,
            &format!("/webhooks/{id}"),
            Some(&t),
            Some(json!({"url": "https://169.254.169.254/"})),
        )
        .await;
    assert_eq!(r.bad_fields(), vec!["url"]);
    let r = app
        .send(
            Method::PATCH,
            &format!("/webhooks/{id}"),
            Some(&t),
            Some(json!({"events": ["read.deleted"]})),
        )
        .await;
    assert_eq!(r.body["events"], json!(["read.deleted"]), "{}", r.body);
    app.get("/webhooks", None).await.problem(401);
}
