//! The change feed: replay from scratch equals GET of everything, under concurrent
//! writers of one user and readers resuming from `nextCursor` (the property test); every
//! way a resource changes (cascades, derived goals and reads, a book edited or deleted, an
//! order shelving a book); 410 past the tombstones; 400; isolation between users.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::books::create_book;
use crate::harness::{settled, token, TestApp};

type Copy = BTreeMap<(String, String), Value>;

/// A client's copy: the changes applied in order, from `cursor`.
struct Follower {
    cursor: Option<String>,
    copy: Copy,
    pages: usize,
}

impl Follower {
    fn new() -> Follower {
        Follower {
            cursor: None,
            copy: Copy::new(),
            pages: 0,
        }
    }

    /// Reads one page of `limit`; `true` when more was waiting.
    async fn step(&mut self, app: &TestApp, t: &str, limit: usize) -> bool {
        let path = match &self.cursor {
            Some(c) => format!("/changes?limit={limit}&cursor={c}"),
            None => format!("/changes?limit={limit}"),
        };
        let r = app.get(&path, Some(t)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for c in r.body["items"].as_array().unwrap() {
            let key = (
                c["type"].as_str().unwrap().to_string(),
                c["id"].as_str().unwrap().to_string(),
            );
            match c["op"].as_str().unwrap() {
                "upsert" => {
                    assert!(c["data"].is_object(), "an upsert carries its resource: {c}");
                    self.copy.insert(key, c["data"].clone());
                }
                "delete" => {
                    assert!(c["data"].is_null(), "{c}");
                    self.copy.remove(&key);
                }
                other => panic!("op {other}"),
            }
            assert!(c["at"].is_string(), "{c}");
        }
        let next = r.body["nextCursor"]
            .as_str()
            .expect("nextCursor is always present");
        self.cursor = Some(next.to_string());
        self.pages += 1;
        r.body["hasMore"].as_bool().expect("hasMore")
    }

    async fn drain(&mut self, app: &TestApp, t: &str) {
        while self.step(app, t, 1000).await {}
    }
}

/// Every entry, read, session and goal (`years`) of the caller, as their own GETs show them.
async fn everything(app: &TestApp, t: &str, years: &[i32]) -> Copy {
    let mut all = Copy::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/library?limit=100&cursor={c}"),
            None => "/library?limit=100".to_string(),
        };
        let r = app.get(&path, Some(t)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for e in r.body["items"].as_array().unwrap() {
            all.insert(("entry".into(), e["bookId"].as_str().unwrap().into()), e.clone());
        }
        match r.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let books: Vec<String> = all.keys().map(|(_, id)| id.clone()).collect();
    for book in books {
        let r = app
            .get(&format!("/library/{book}/reads?limit=100"), Some(t))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for read in r.body["items"].as_array().unwrap() {
            let id = read["id"].as_str().unwrap().to_string();
            let one = app.get(&format!("/reads/{id}"), Some(t)).await;
            assert_eq!(one.status, StatusCode::OK);
            assert_eq!(&one.body, read, "a read's list item is its GET");
            let s = app.get(&format!("/reads/{id}/sessions?limit=100"), Some(t)).await;
            assert_eq!(s.status, StatusCode::OK, "{}", s.body);
            for session in s.body["items"].as_array().unwrap() {
                all.insert(
                    ("session".into(), session["id"].as_str().unwrap().into()),
                    session.clone(),
                );
            }
            all.insert(("read".into(), id), read.clone());
        }
    }
    for year in years {
        let r = app.get(&format!("/users/me/goals/{year}"), Some(t)).await;
        if r.status == StatusCode::OK {
            all.insert(("goal".into(), year.to_string()), r.body);
        }
    }
    all
}

fn differences(copy: &Copy, truth: &Copy) -> String {
    let mut out = String::new();
    for (k, v) in truth {
        match copy.get(k) {
            None => out.push_str(&format!("missing {k:?}: {v}\n")),
            Some(c) if c != v => out.push_str(&format!("stale {k:?}: {c} != {v}\n")),
            _ => {}
        }
    }
    for k in copy.keys().filter(|k| !truth.contains_key(*k)) {
        out.push_str(&format!("extra {k:?}\n"));
    }
    out
}

const YEARS: [i32; 2] = [2025, 2026];
const STEPS: usize = 80;

/// One of the caller's reads of `book`, if there is one.
async fn pick_read(app: &TestApp, t: &str, book: &str, seed: u64) -> Option<String> {
    let r = app
        .get(&format!("/library/{book}/reads?limit=100"), Some(t))
        .await;
    let ids: Vec<String> = r.body["items"].as_array().map_or(Vec::new(), |items| {
        items
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    });
    (!ids.is_empty()).then(|| ids[(seed % ids.len() as u64) as usize].clone())
}

/// One random request of the caller's: anything that changes an entry, read, session or
/// goal. Its outcome may be a 404 or 409 (the resource went, the read closed): what
/// matters is what the feed says afterwards. Never a 5xx.
async fn random_write(app: &TestApp, t: &str, books: &[String], rng: &mut fastrand::Rng) -> bool {
    let book = &books[rng.usize(..books.len())];
    let year = YEARS[rng.usize(..YEARS.len())];
    // Shelving weighs most (a fifth more), so deletions leave something to compare.
    let pick = match rng.u8(..20) {
        k @ 0..=15 => k,
        _ => rng.u8(..3),
    };
    let r = match pick {
        0..=2 => {
            let status = ["want_to_read", "reading", "read", "paused", "did_not_finish"][rng.usize(..5)];
            let body = json!({"status": status, "rating": rng.i32(1..=5), "favorite": rng.bool()});
            app.send(Method::PUT, &format!("/library/{book}"), Some(t), Some(body))
                .await
        }
        3 => {
            app.send(Method::DELETE, &format!("/library/{book}"), Some(t), None)
                .await
        }
        4..=6 => {
            let started = format!("{year}-0{}-01T10:00:00Z", rng.u8(1..=3));
            app.post(
                &format!("/library/{book}/reads"),
                Some(t),
                json!({"startedAt": started}),
            )
            .await
        }
        7 => match pick_read(app, t, book, rng.u64(..)).await {
            Some(id) => {
                app.post(
                    &format!("/reads/{id}/progress"),
                    Some(t),
                    json!({"percent": rng.i32(0..=100)}),
                )
                .await
            }
            None => return false,
        },
        8 | 9 => match pick_read(app, t, book, rng.u64(..)).await {
            Some(id) => {
                let at = format!("{year}-06-{:02}T10:00:00Z", rng.u8(1..=28));
                app.post(&format!("/reads/{id}/finish"), Some(t), json!({"finishedAt": at}))
                    .await
            }
            None => return false,
        },
        10 => match pick_read(app, t, book, rng.u64(..)).await {
            Some(id) => {
                app.post(&format!("/reads/{id}/abandon"), Some(t), json!({}))
                    .await
            }
            None => return false,
        },
        11 => match pick_read(app, t, book, rng.u64(..)).await {
            Some(id) => {
                app.send(Method::DELETE, &format!("/reads/{id}"), Some(t), None)
                    .await
            }
            None => return false,
        },
        12 | 13 => match pick_read(app, t, book, rng.u64(..)).await {
            Some(id) => {
                let s = app
                    .post(&format!("/reads/{id}/sessions"), Some(t), json!({}))
                    .await;
                if s.status != StatusCode::CREATED {
                    return false;
                }
                let sid = s.body["id"].as_str().unwrap().to_string();
                app.post(&format!("/sessions/{sid}/end"), Some(t), json!({}))
                    .await
            }
            None => return false,
        },
        14 => {
            let body = json!({"books": rng.i32(1..=50)});
            app.send(
                Method::PUT,
                &format!("/users/me/goals/{year}"),
                Some(t),
                Some(body),
            )
            .await
        }
        _ => {
            app.send(Method::DELETE, &format!("/users/me/goals/{year}"), Some(t), None)
                .await
        }
    };
    assert!(r.status.as_u16() < 500, "a write failed: {} {}", r.status, r.body);
    r.status.is_success()
}

/// The property: random concurrent writers of one user (and an admin renaming the books
/// they shelve), readers resuming from `nextCursor` all the while; each reader's copy, and
/// a replay from scratch, end equal to GET of everything. 3 runs × 4 writers × 80 steps,
/// 2 readers with random page sizes.
#[tokio::test]
async fn concurrent_writers_and_resuming_readers_end_with_the_exact_state() {
    for run in 0..3u64 {
        let app = Arc::new(TestApp::start().await);
        let admin = app.admin_token().await;
        let t = token(&app.register("syncer@example.org", "password123").await);
        let mut books = Vec::new();
        for i in 0..6 {
            books.push(
                create_book(
                    &app,
                    &admin,
                    json!({"title": format!("Book {i}"), "pageCount": 300}),
                )
                .await["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let books = Arc::new(books);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for r in 0..2u64 {
            let (app, t, done) = (app.clone(), t.clone(), done.clone());
            readers.push(tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(run * 100 + r);
                let mut f = Follower::new();
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    f.step(&app, &t, rng.usize(1..=20)).await;
                }
                f
            }));
        }
        let mut writers = Vec::new();
        for w in 0..4u64 {
            let (app, t, books) = (app.clone(), t.clone(), books.clone());
            writers.push(tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(run * 1000 + w);
                let mut changed = 0;
                for _ in 0..STEPS {
                    changed += usize::from(random_write(&app, &t, &books, &mut rng).await);
                }
                changed
            }));
        }
        // The catalog moves too: each rename re-sends the entries that embed the book.
        for i in 0..3 {
            let book = &books[i * 2];
            let r = app
                .send(
                    Method::PATCH,
                    &format!("/books/{book}"),
                    Some(&admin),
                    Some(json!({"title": format!("Renamed {i}")})),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut changed = 0;
        for w in writers {
            changed += w.await.unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let truth = everything(&app, &t, &YEARS).await;
        for r in readers {
            let mut f = r.await.unwrap();
            f.drain(&app, &t).await;
            let diff = differences(&f.copy, &truth);
            assert!(
                diff.is_empty(),
                "run {run}: a resuming reader ({} pages) differs:\n{diff}",
                f.pages
            );
        }
        let mut scratch = Follower::new();
        scratch.drain(&app, &t).await;
        let diff = differences(&scratch.copy, &truth);
        assert!(diff.is_empty(), "run {run}: replay from scratch differs:\n{diff}");
        eprintln!(
            "run {run}: {changed} writes succeeded, {} resources at the end",
            truth.len()
        );
        assert!(
            changed > STEPS && truth.len() >= 5,
            "run {run}: too little happened to compare"
        );
    }
}

#[tokio::test]
async fn cascades_derived_values_and_the_catalog_all_reach_the_feed() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = token(&app.register("cascade@example.org", "password123").await);
    let other = token(&app.register("other@example.org", "password123").await);
    let dune = create_book(&app, &admin, json!({"title": "Dune", "pageCount": 400})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let emma = create_book(&app, &admin, json!({"title": "Emma"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut f = Follower::new();
    f.drain(&app, &t).await;
    assert!(f.copy.is_empty());
    let empty_cursor = f.cursor.clone();

    // A goal, then a read finished in its year: the goal is re-sent with `finished: 1`.
    app.send(
        Method::PUT,
        "/users/me/goals/2026",
        Some(&t),
        Some(json!({"books": 12})),
    )
    .await;
    let read = app
        .post(
            &format!("/library/{dune}/reads"),
            Some(&t),
            json!({"startedAt": "2026-01-02T00:00:00Z"}),
        )
        .await;
    let read_id = read.body["id"].as_str().unwrap().to_string();
    let s = app
        .post(&format!("/reads/{read_id}/sessions"), Some(&t), json!({}))
        .await;
    let session = s.body["id"].as_str().unwrap().to_string();
    // Ninety minutes ago, as far as the session knows: ending it gives the read 90 minutes.
    sqlx::query("UPDATE reading_sessions SET started_at = now() - interval '90 minutes' WHERE id = $1::uuid")
        .bind(&session)
        .execute(&app.pool)
        .await
        .unwrap();
    f.drain(&app, &t).await;
    app.post(&format!("/sessions/{session}/end"), Some(&t), json!({}))
        .await;
    f.drain(&app, &t).await;
    assert_eq!(f.copy[&("read".into(), read_id.clone())]["minutesRead"], 90);
    let fin = app
        .post(
            &format!("/reads/{read_id}/finish"),
            Some(&t),
            json!({"finishedAt": "2026-03-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(fin.status, StatusCode::OK, "{}", fin.body);
    f.drain(&app, &t).await;
    assert_eq!(f.copy[&("goal".into(), "2026".into())]["finished"], 1);
    assert_eq!(f.copy[&("entry".into(), dune.clone())]["status"], "read");
    assert_eq!(differences(&f.copy, &everything(&app, &t, &[2026]).await), "");

    // The admin renames the book: the entry is re-sent with the new title.
    app.send(
        Method::PATCH,
        &format!("/books/{dune}"),
        Some(&admin),
        Some(json!({"title": "Dune Messiah"})),
    )
    .await;
    f.drain(&app, &t).await;
    assert_eq!(
        f.copy[&("entry".into(), dune.clone())]["book"]["title"],
        "Dune Messiah"
    );

    // Deleting the entry deletes its read and session: each appears as a delete; the goal's
    // `finished` falls back to 0.
    let before = f.cursor.clone();
    app.send(Method::DELETE, &format!("/library/{dune}"), Some(&t), None)
        .await;
    let r = app
        .get(&format!("/changes?cursor={}", before.unwrap()), Some(&t))
        .await;
    let mut seen: Vec<(String, String)> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!("{}:{}", c["type"].as_str().unwrap(), c["op"].as_str().unwrap()),
                c["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("entry:delete".to_string(), dune.clone()),
            ("goal:upsert".to_string(), "2026".to_string()),
            ("read:delete".to_string(), read_id.clone()),
            ("session:delete".to_string(), session.clone()),
        ]
    );
    f.drain(&app, &t).await;
    assert_eq!(f.copy[&("goal".into(), "2026".into())]["finished"], 0);

    // A book deleted by the admin takes its entries off every shelf: a delete in the feed.
    app.send(
        Method::PUT,
        &format!("/library/{emma}"),
        Some(&t),
        Some(json!({"status": "want_to_read"})),
    )
    .await;
    f.drain(&app, &t).await;
    assert!(f.copy.contains_key(&("entry".into(), emma.clone())));
    let d = app
        .send(Method::DELETE, &format!("/books/{emma}"), Some(&admin), None)
        .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.body);
    f.drain(&app, &t).await;
    assert!(!f.copy.contains_key(&("entry".into(), emma.clone())));

    // A confirmed order shelves its book: the entry appears once the order is confirmed.
    let sold = create_book(
        &app,
        &admin,
        json!({"title": "Sold", "priceCents": 900, "stock": 3}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = app
        .post(
            "/orders",
            Some(&t),
            json!({"items": [{"bookId": sold, "quantity": 1}]}),
        )
        .await;
    assert_eq!(o.status, StatusCode::ACCEPTED, "{}", o.body);
    let order = settled(&app, &t, o.body["id"].as_str().unwrap(), Duration::from_secs(10)).await;
    assert_eq!(order["status"], "confirmed");
    f.drain(&app, &t).await;
    assert_eq!(f.copy[&("entry".into(), sold.clone())]["status"], "want_to_read");
    assert_eq!(differences(&f.copy, &everything(&app, &t, &[2026]).await), "");

    // Another user's feed holds none of it; their cursor from the start still works.
    let mut theirs = Follower::new();
    theirs.drain(&app, &other).await;
    assert!(theirs.copy.is_empty(), "{:?}", theirs.copy.keys());
    // The empty page's cursor resumes exactly after what existed then.
    let r = app
        .get(
            &format!("/changes?cursor={}&limit=1000", empty_cursor.unwrap()),
            Some(&t),
        )
        .await;
    assert!(!r.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_cursor_past_the_kept_tombstones_is_gone_and_a_forged_one_is_refused() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let t = token(&app.register("old@example.org", "password123").await);
    let book = create_book(&app, &admin, json!({"title": "Old"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut f = Follower::new();
    f.drain(&app, &t).await;
    let old = f.cursor.clone().unwrap();
    app.send(
        Method::PUT,
        &format!("/library/{book}"),
        Some(&t),
        Some(json!({"status": "read"})),
    )
    .await;
    app.send(Method::DELETE, &format!("/library/{book}"), Some(&t), None)
        .await;
    // Before any expiry the old cursor sees the delete.
    let r = app.get(&format!("/changes?cursor={old}"), Some(&t)).await;
    assert_eq!(r.body["items"][0]["op"], "delete", "{}", r.body);
    let latest = r.body["nextCursor"].as_str().unwrap().to_string();
    // The cleanup removes tombstones older than its retention (here: all of them).
    let removed = bookshelf_storage::changes::expire_tombstones(&app.pool, 0.0, 100)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    app.get(&format!("/changes?cursor={old}"), Some(&t))
        .await
        .problem(410);
    // A cursor taken after the tombstone still resumes; a fresh start shows no trace of it.
    assert_eq!(
        app.get(&format!("/changes?cursor={latest}"), Some(&t))
            .await
            .status,
        StatusCode::OK
    );
    let r = app.get("/changes", Some(&t)).await;
    assert_eq!(r.body["items"], json!([]));
    for bad in ["nope", "djFjLi0x", "djFuLjM"] {
        app.get(&format!("/changes?cursor={bad}"), Some(&t))
            .await
            .problem(400);
    }
    for bad in ["0", "1001", "x"] {
        app.get(&format!("/changes?limit={bad}"), Some(&t))
            .await
            .problem(400);
    }
    app.get("/changes", None).await.problem(401);
}

/// Issue 34's property: `GET /users/me/stats`, answered from the cache keyed by the change
/// head, equals a fresh computation after every step of a random sequence of writes (reads,
/// sessions, shelving, deletions, goals), the admin changing page counts and session
/// minutes changing in between. 2 runs × 120 steps × 2 years.
#[tokio::test]
async fn cached_stats_equal_a_fresh_computation_after_every_step() {
    for run in 0..2u64 {
        let app = TestApp::start().await;
        let admin = app.admin_token().await;
        let auth = app.register("statistician@example.org", "password123").await;
        let t = token(&auth);
        let user: uuid::Uuid = auth["user"]["id"].as_str().unwrap().parse().unwrap();
        let mut books = Vec::new();
        for i in 0..5 {
            books.push(
                create_book(
                    &app,
                    &admin,
                    json!({"title": format!("Counted {i}"), "pageCount": 100 + i}),
                )
                .await["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let mut rng = fastrand::Rng::with_seed(7_000 + run);
        for step in 0..120 {
            match rng.u8(..10) {
                0 => {
                    let book = &books[rng.usize(..books.len())];
                    let r = app
                        .send(
                            Method::PATCH,
                            &format!("/books/{book}"),
                            Some(&admin),
                            Some(json!({"pageCount": rng.i32(50..900)})),
                        )
                        .await;
                    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                }
                1 => {
                    sqlx::query(
                        "UPDATE reading_sessions SET minutes = $2 WHERE id = (
                           SELECT id FROM reading_sessions WHERE user_id = $1 AND ended_at IS NOT NULL LIMIT 1)",
                    )
                    .bind(user)
                    .bind(rng.i32(1..300))
                    .execute(&app.pool)
                    .await
                    .unwrap();
                }
                _ => {
                    random_write(&app, &t, &books, &mut rng).await;
                }
            }
            for year in YEARS {
                let path = format!("/users/me/stats?year={year}");
                let first = app.get(&path, Some(&t)).await;
                assert_eq!(first.status, StatusCode::OK, "{}", first.body);
                let fresh = serde_json::to_value(
                    bookshelf_storage::stats::stats(&app.pool, user, year)
                        .await
                        .unwrap(),
                )
                .unwrap();
                assert_eq!(
                    first.body, fresh,
                    "run {run} step {step} year {year}: the answer is not the fresh figures"
                );
                // The answer is now cached at the current head, and the next request (nothing
                // changed) is served from it, the same.
                let current: bool = sqlx::query_scalar(
                    "SELECT c.seq = h.seq FROM stats_cache c JOIN change_heads h USING (user_id)
                     WHERE c.user_id = $1 AND c.year = $2",
                )
                .bind(user)
                .bind(year)
                .fetch_one(&app.pool)
                .await
                .unwrap();
                assert!(
                    current,
                    "run {run} step {step} year {year}: not cached at the head"
                );
                let again = app.get(&path, Some(&t)).await;
                assert_eq!(again.body, fresh, "run {run} step {step} year {year}: cached");
            }
        }
        let cached: i64 = sqlx::query_scalar("SELECT count(*) FROM stats_cache WHERE user_id = $1")
            .bind(user)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(cached, 2, "one cached year each");
    }
}
