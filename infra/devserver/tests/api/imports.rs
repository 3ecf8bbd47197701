//! Imports end to end: `POST /imports`, the upload through the dev server's stand-in for a
//! presigned URL, the importer behind the in-process queue, and what it leaves in the
//! library. The deployed path (moto's S3 and SQS) is in `sqs.rs`.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{token, TestApp};

const GOODREADS_HEADER: &str = "Book Id,Title,Author,Author l-f,Additional Authors,ISBN,ISBN13,My Rating,Average Rating,Publisher,Binding,Number of Pages,Year Published,Original Publication Year,Date Read,Date Added,Bookshelves,Bookshelves with positions,Exclusive Shelf,My Review,Spoiler,Private Notes,Read Count,Owned Copies";

/// A Goodreads row with the cells the importer reads.
fn goodreads_row(
    title: &str,
    author: &str,
    isbn13: &str,
    rating: u8,
    shelf: &str,
    read: &str,
    review: &str,
) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record([
        "1",
        title,
        author,
        "",
        "",
        "=\"\"",
        &format!("=\"{isbn13}\""),
        &rating.to_string(),
        "",
        "",
        "",
        "320",
        "1999",
        "",
        read,
        "2024/01/02",
        "",
        "",
        shelf,
        review,
        "",
        "",
        "",
        "",
    ])
    .unwrap();
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

pub async fn start_import(app: &TestApp, token: &str, filename: Option<&str>) -> Value {
    let body = match filename {
        Some(f) => json!({"filename": f}),
        None => json!({}),
    };
    let r = app.post("/imports", Some(token), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["status"], "awaiting_upload");
    assert_eq!(
        r.headers["location"].to_str().unwrap(),
        format!("/imports/{}", r.body["id"].as_str().unwrap())
    );
    r.body
}

pub async fn upload(url: &str, headers: &Value, bytes: Vec<u8>) -> reqwest::Response {
    let mut req = reqwest::Client::new().put(url).body(bytes);
    for (k, v) in headers.as_object().unwrap() {
        req = req.header(k.as_str(), v.as_str().unwrap());
    }
    req.send().await.unwrap()
}

/// The import once it is `completed` or `failed`.
pub async fn finished(app: &TestApp, token: &str, id: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let r = app.get(&format!("/imports/{id}"), Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let b = &r.body;
        // The counters add up at every moment.
        assert_eq!(
            b["rows"].as_i64().unwrap(),
            b["imported"].as_i64().unwrap() + b["skipped"].as_i64().unwrap() + b["failed"].as_i64().unwrap(),
            "{b}"
        );
        if b["status"] == "completed" || b["status"] == "failed" {
            return r.body;
        }
        assert!(started.elapsed() < within, "not finished in {within:?}: {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn import_file(app: &TestApp, token: &str, bytes: Vec<u8>) -> Value {
    let created = start_import(app, token, Some("export.csv")).await;
    let r = upload(
        created["uploadUrl"].as_str().unwrap(),
        &created["uploadHeaders"],
        bytes,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    finished(
        app,
        token,
        created["id"].as_str().unwrap(),
        Duration::from_secs(15),
    )
    .await
}

/// The caller's entry for `book`, from `GET /library`.
async fn entry(app: &TestApp, token: &str, book: &str) -> Value {
    let r = app.get("/library?limit=100", Some(token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["bookId"] == book)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn all_rows(app: &TestApp, token: &str, id: &str, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/imports/{id}/rows?limit=7&{query}&cursor={c}"),
            None => format!("/imports/{id}/rows?limit=7&{query}"),
        };
        let r = app.get(&path, Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        rows.extend(r.body["items"].as_array().unwrap().iter().cloned());
        match r.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return rows,
        }
    }
}

#[tokio::test]
async fn a_goodreads_file_imports_row_by_row_and_a_second_import_changes_nothing() {
    let app = TestApp::start().await;
    let reader = token(&app.register("importer@example.org", "password123").await);
    let admin = app.admin_token().await;
    // One book the catalog has by ISBN, one by title and author only.
    let by_isbn = crate::books::create_book(
        &app,
        &admin,
        json!({"title": "Dune", "authors": ["Frank Herbert"], "isbn": "9780441172719"}),
    )
    .await;
    let by_title = crate::books::create_book(
        &app,
        &admin,
        json!({"title": "The Left Hand of Darkness", "authors": ["Ursula K. Le Guin"]}),
    )
    .await;
    let mut file = format!("{GOODREADS_HEADER}\n");
    file += &goodreads_row(
        "Dune (Deluxe)",
        "Frank Herbert",
        "9780441172719",
        5,
        "read",
        "2024/02/09",
        "Sand<br/>and <i>spice</i>",
    );
    file += &goodreads_row(
        "  the left   hand of DARKNESS ",
        "ursula k. le guin",
        "",
        4,
        "currently-reading",
        "",
        "",
    );
    file += &goodreads_row("A Book Nobody Has", "New Author", "", 0, "to-read", "", "");
    file += &goodreads_row("", "No Title", "", 0, "read", "", "");
    file += &goodreads_row("Bad Rating", "Someone", "", 9, "read", "", "");
    file += &goodreads_row("A Book Nobody Has", "New Author", "", 3, "read", "", "");
    let done = import_file(&app, &reader, file.clone().into_bytes()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["format"], "goodreads");
    assert_eq!(done["filename"], "export.csv");
    assert_eq!(
        (
            &done["rows"],
            &done["imported"],
            &done["skipped"],
            &done["failed"]
        ),
        (&json!(6), &json!(3), &json!(1), &json!(2)),
        "{done}"
    );
    assert_eq!(
        (&done["booksMatched"], &done["booksCreated"]),
        (&json!(3), &json!(1)),
        "{done}"
    );
    assert!(done["completedAt"].is_string() && done["error"].is_null());

    let id = done["id"].as_str().unwrap();
    let rows = all_rows(&app, &reader, id, "").await;
    assert_eq!(
        rows.iter()
            .map(|r| r["row"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(rows[0]["bookId"], by_isbn["id"]);
    assert_eq!(rows[1]["bookId"], by_title["id"]);
    assert_eq!(rows[0]["isbn"], "9780441172719");
    assert_eq!(
        (&rows[3]["outcome"], &rows[3]["bookId"]),
        (&json!("failed"), &Value::Null)
    );
    assert!(rows[3]["reason"].as_str().unwrap().contains("title"));
    assert!(rows[4]["reason"].as_str().unwrap().contains("My Rating"));
    assert_eq!(rows[5]["outcome"], "skipped");
    assert_eq!(rows[5]["reason"], "already in your library");
    assert_eq!(rows[5]["bookId"], rows[2]["bookId"]);
    let failed = all_rows(&app, &reader, id, "outcome=failed").await;
    assert_eq!(
        failed
            .iter()
            .map(|r| r["row"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [4, 5]
    );
    assert_eq!(
        app.get(&format!("/imports/{id}/rows?outcome=lost"), Some(&reader))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    // What the library holds.
    let dune = entry(&app, &reader, by_isbn["id"].as_str().unwrap()).await;
    assert_eq!(
        (&dune["status"], &dune["rating"]),
        (&json!("read"), &json!(5)),
        "{dune}"
    );
    assert_eq!(dune["review"], "Sand\nand spice");
    assert!(dune["addedAt"].as_str().unwrap().starts_with("2024-01-02"));
    let reads = app
        .get(
            &format!("/library/{}/reads", by_isbn["id"].as_str().unwrap()),
            Some(&reader),
        )
        .await;
    let reads = reads.body["items"].as_array().unwrap().clone();
    assert_eq!(reads.len(), 1);
    assert!(reads[0]["finishedAt"]
        .as_str()
        .unwrap()
        .starts_with("2024-02-09T00:00:00"));
    let new_book = app
        .get(
            &format!("/books/{}", rows[2]["bookId"].as_str().unwrap()),
            Some(&reader),
        )
        .await;
    assert_eq!(
        (&new_book.body["priceCents"], &new_book.body["pageCount"]),
        (&Value::Null, &json!(320))
    );
    // No feed activities: nothing in the outbox for this reader, nothing fanned out.
    let activities: i64 = sqlx::query_scalar("SELECT count(*) FROM activities")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(activities, 0);

    // The same file again: every row skipped, nothing created, the library unchanged.
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM library_entries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let again = import_file(&app, &reader, file.into_bytes()).await;
    assert_eq!(
        (
            &again["imported"],
            &again["skipped"],
            &again["failed"],
            &again["booksCreated"]
        ),
        (&json!(0), &json!(4), &json!(2), &json!(0)),
        "{again}"
    );
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM library_entries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(before, after);

    // Newest first, the caller's only.
    let list = app.get("/imports?limit=1", Some(&reader)).await;
    assert_eq!(list.body["items"][0]["id"], again["id"]);
    let next = list.body["nextCursor"].as_str().unwrap();
    let older = app
        .get(&format!("/imports?limit=1&cursor={next}"), Some(&reader))
        .await;
    assert_eq!(older.body["items"][0]["id"], done["id"]);
    let other = token(&app.register("snoop@example.org", "password123").await);
    assert_eq!(
        app.get(&format!("/imports/{id}"), Some(&other)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/imports/{id}/rows"), Some(&other)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/imports", Some(&other)).await.body["items"], json!([]));
    assert_eq!(app.get("/imports", None).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_upload_url_takes_one_upload_of_its_own_key_before_it_expires() {
    let app = TestApp::start().await;
    let reader = token(&app.register("uploader@example.org", "password123").await);
    let created = start_import(&app, &reader, None).await;
    assert!(created["filename"].is_null());
    let url = created["uploadUrl"].as_str().unwrap().to_string();
    let expires = chrono::DateTime::parse_from_rfc3339(created["uploadExpiresAt"].as_str().unwrap()).unwrap();
    let left = expires.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((3500..=3600).contains(&left), "{left}");
    let file = format!(
        "{GOODREADS_HEADER}\n{}",
        goodreads_row("T", "A", "", 0, "to-read", "", "")
    );
    // A changed key, a changed signature, a changed expiry: 403, nothing stored.
    let other_id = uuid::Uuid::new_v4();
    let changed_key = url.replace(created["id"].as_str().unwrap(), &other_id.to_string());
    let changed_sig = url.replace("signature=", "signature=A");
    let (base, query) = url.split_once('?').unwrap();
    let later: String = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some(("expires", v)) => format!("expires={}", v.parse::<i64>().unwrap() + 7200),
            _ => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    for bad in [changed_key, changed_sig, format!("{base}?{later}")] {
        let r = upload(&bad, &created["uploadHeaders"], file.clone().into_bytes()).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{bad}");
    }
    let get = reqwest::get(&url).await.unwrap();
    assert_eq!(get.status(), StatusCode::FORBIDDEN, "signed for PUT only");
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/imports/{id}"), Some(&reader)).await.body["status"],
        "awaiting_upload"
    );
    // The URL itself: once; the import is under way as soon as the upload is answered.
    assert_eq!(
        upload(&url, &created["uploadHeaders"], file.clone().into_bytes())
            .await
            .status(),
        StatusCode::OK
    );
    let after = app.get(&format!("/imports/{id}"), Some(&reader)).await.body;
    assert!(
        ["queued", "running", "completed"].contains(&after["status"].as_str().unwrap()),
        "{after}"
    );
    let second = upload(
        &url,
        &created["uploadHeaders"],
        b"Title,Author,My Rating\nX,Y,1\n".to_vec(),
    )
    .await;
    assert!(second.status() == StatusCode::PRECONDITION_FAILED || second.status() == StatusCode::FORBIDDEN);
    let done = finished(&app, &reader, id, Duration::from_secs(15)).await;
    assert_eq!(
        (&done["status"], &done["imported"]),
        (&json!("completed"), &json!(1))
    );
    // An import never uploaded within the hour reads as failed.
    sqlx::query("UPDATE imports SET upload_expires_at = now() - interval '2 hours' WHERE id <> $1")
        .bind(uuid::Uuid::parse_str(id).unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let stale = start_import(&app, &reader, Some("late.csv")).await;
    sqlx::query("UPDATE imports SET upload_expires_at = now() - interval '2 hours' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(stale["id"].as_str().unwrap()).unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let late = app
        .get(
            &format!("/imports/{}", stale["id"].as_str().unwrap()),
            Some(&reader),
        )
        .await;
    assert_eq!(late.body["status"], "failed");
    assert!(late.body["error"].as_str().unwrap().contains("hour"));
    // Bad bodies.
    for body in [
        json!({"filename": ""}),
        json!({"filename": 3}),
        json!({"nope": 1}),
    ] {
        assert_eq!(
            app.post("/imports", Some(&reader), body).await.status,
            StatusCode::BAD_REQUEST
        );
    }
    let empty = app.raw(Method::POST, "/imports", Some(&reader), "").await;
    assert_eq!(empty.status, StatusCode::CREATED, "{}", empty.body);
}

#[tokio::test]
async fn a_file_that_cannot_be_read_whole_fails_with_no_row_applied() {
    let app = TestApp::start().await;
    let reader = token(&app.register("badfiles@example.org", "password123").await);
    let mut too_large = format!("{GOODREADS_HEADER}\n").into_bytes();
    let row = goodreads_row("Filler", "Author", "", 0, "to-read", "", "");
    while too_large.len() <= 10 * 1024 * 1024 {
        too_large.extend_from_slice(row.as_bytes());
    }
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(), "not CSV"),
        (b"name,colour\nfoo,blue\n".to_vec(), "header"),
        (too_large, "10 MiB"),
        (b"".to_vec(), "empty"),
    ];
    for (bytes, says) in cases {
        let done = import_file(&app, &reader, bytes).await;
        assert_eq!(done["status"], "failed", "{done}");
        assert!(done["error"].as_str().unwrap().contains(says), "{done}");
        assert_eq!(done["rows"], 0);
    }
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM library_entries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(entries, 0);
}

#[tokio::test]
async fn a_goodreads_export_imports_into_another_account_whole() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let from = token(&app.register("leaver@example.org", "password123").await);
    let to = token(&app.register("arriver@example.org", "password123").await);
    let mut books = Vec::new();
    for (i, isbn) in [Some("9780441172719"), None, Some("9780060853983"), None]
        .into_iter()
        .enumerate()
    {
        let mut fields =
            json!({"title": format!("Round Trip {i}"), "authors": [format!("Author {i}"), "Second, Author"]});
        if let Some(isbn) = isbn {
            fields["isbn"] = json!(isbn);
        }
        books.push(
            crate::books::create_book(&app, &admin, fields).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let entries = [
        json!({"status": "read", "rating": 4, "review": "Line one.\nLine two, with \"quotes\"."}),
        json!({"status": "want_to_read"}),
        json!({"status": "did_not_finish", "rating": 1}),
        json!({"status": "paused", "review": "later"}),
    ];
    for (book, entry) in books.iter().zip(&entries) {
        let r = app
            .send(
                Method::PUT,
                &format!("/library/{book}"),
                Some(&from),
                Some(entry.clone()),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    // A finished read of the first book.
    let start = app
        .post(&format!("/library/{}/reads", books[0]), Some(&from), json!({}))
        .await;
    assert_eq!(start.status, StatusCode::CREATED, "{}", start.body);
    let read = start.body["id"].as_str().unwrap();
    let fin = app
        .post(&format!("/reads/{read}/finish"), Some(&from), json!({}))
        .await;
    assert_eq!(fin.status, StatusCode::OK, "{}", fin.body);
    let export = app
        .client
        .get(format!("{}/library/export?format=goodreads", app.url))
        .bearer_auth(&from)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);
    let file = export.bytes().await.unwrap().to_vec();

    let done = import_file(&app, &to, file).await;
    assert_eq!(
        (&done["status"], &done["imported"], &done["booksCreated"]),
        (&json!("completed"), &json!(4), &json!(0)),
        "{done}"
    );
    for (book, entry) in books.iter().zip(&entries) {
        let mine = self::entry(&app, &to, book).await;
        assert_eq!(mine["status"], entry["status"], "{book}: {mine}");
        assert_eq!(
            mine["rating"],
            entry.get("rating").cloned().unwrap_or(Value::Null)
        );
        assert_eq!(
            mine["review"],
            entry.get("review").cloned().unwrap_or(Value::Null)
        );
    }
    let reads = app
        .get(&format!("/library/{}/reads", books[0]), Some(&to))
        .await
        .body["items"]
        .clone();
    let theirs = app
        .get(&format!("/library/{}/reads", books[0]), Some(&from))
        .await
        .body["items"]
        .clone();
    assert_eq!(reads.as_array().unwrap().len(), 1);
    assert_eq!(
        reads[0]["finishedAt"].as_str().unwrap()[..10],
        theirs[0]["finishedAt"].as_str().unwrap()[..10]
    );
}

/// Two readers importing the same new books at once: each book is made once.
#[tokio::test]
async fn concurrent_imports_of_the_same_new_books_make_each_book_once() {
    let app = TestApp::start().await;
    let mut file = format!("{GOODREADS_HEADER}\n");
    for i in 0..40 {
        // Half with an ISBN, half known by title and author only.
        let isbn = if i % 2 == 0 {
            bookshelf_domain::isbn::complete(&format!("978{:09}", 100_000 + i))
        } else {
            String::new()
        };
        file += &goodreads_row(
            &format!("Shared Book {i}"),
            &format!("Writer {i}"),
            &isbn,
            0,
            "to-read",
            "",
            "",
        );
    }
    let mut ids = Vec::new();
    for n in 0..4 {
        let reader = token(
            &app.register(&format!("racer{n}@example.org"), "password123")
                .await,
        );
        let created = start_import(&app, &reader, None).await;
        let id = uuid::Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
        // Stored without the notification: the test runs the importers itself, at once.
        let local = app.state.objects().unwrap().local().unwrap().clone();
        local
            .put(&bookshelf_objects::import_key(id), file.as_bytes(), 1 << 20)
            .await
            .unwrap()
            .unwrap();
        ids.push(id);
    }
    let runs = ids.iter().map(|id| {
        let state = app.state.clone();
        let id = *id;
        tokio::spawn(async move { bookshelf_api::imports::run(&state, id).await.unwrap() })
    });
    for r in futures::future::join_all(runs).await {
        assert_eq!(r.unwrap(), bookshelf_api::imports::Ran::Completed);
    }
    let books: i64 = sqlx::query_scalar("SELECT count(*) FROM books WHERE title LIKE 'Shared Book %'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(books, 40);
    let created: i64 = sqlx::query_scalar("SELECT sum(books_created) FROM imports")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        created, 40,
        "each book counted as created once, matched otherwise"
    );
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM library_entries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(entries, 160);
}

/// A worker that dies mid-file: the next attempt resumes after the last applied row,
/// applying none twice and skipping none.
#[tokio::test]
async fn an_import_killed_mid_file_resumes_after_its_last_applied_row() {
    let app = TestApp::start().await;
    let reader = token(&app.register("crash@example.org", "password123").await);
    let total = 600;
    let mut file = format!("{GOODREADS_HEADER}\n");
    for i in 0..total {
        file += &goodreads_row(
            &format!("Crash Book {i}"),
            "Crash Author",
            "",
            (i % 6) as u8,
            "read",
            "2024/03/01",
            "",
        );
    }
    let created = start_import(&app, &reader, None).await;
    let id = uuid::Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    let local = app.state.objects().unwrap().local().unwrap().clone();
    local
        .put(&bookshelf_objects::import_key(id), file.as_bytes(), 1 << 22)
        .await
        .unwrap()
        .unwrap();
    let applied = || async {
        sqlx::query_scalar::<_, i32>("SELECT rows FROM imports WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let state = app.state.clone();
    let worker = tokio::spawn(async move { bookshelf_api::imports::run(&state, id).await });
    let deadline = Instant::now() + Duration::from_secs(30);
    while applied().await < 100 {
        assert!(Instant::now() < deadline, "the import did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Killed wherever it is: between rows or inside one's transaction.
    worker.abort();
    assert!(worker.await.unwrap_err().is_cancelled());
    let at_crash = applied().await;
    assert!((100..total).contains(&at_crash), "{at_crash}");
    let mid = app.get(&format!("/imports/{id}"), Some(&reader)).await.body;
    assert_eq!(mid["status"], "running");

    let ran = bookshelf_api::imports::run(&app.state, id).await.unwrap();
    assert_eq!(ran, bookshelf_api::imports::Ran::Completed);
    let done = app.get(&format!("/imports/{id}"), Some(&reader)).await.body;
    assert_eq!(
        (&done["rows"], &done["imported"], &done["status"]),
        (&json!(total), &json!(total), &json!("completed")),
        "{done}"
    );
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT row) FROM import_rows WHERE import_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((rows, distinct), (total as i64, total as i64));
    let (entries, reads, books): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM library_entries), (SELECT count(*) FROM reads),
                (SELECT count(*) FROM books WHERE title LIKE 'Crash Book %')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (entries, reads, books),
        (total as i64, total as i64, total as i64)
    );
    // A third delivery of the same notification changes nothing.
    assert_eq!(
        bookshelf_api::imports::run(&app.state, id).await.unwrap(),
        bookshelf_api::imports::Ran::Nothing
    );
}
