//! The catalog: CRUD with ETags, inventory, search, filters and pagination.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{token, TestApp};

pub async fn create_book(app: &TestApp, admin: &str, fields: Value) -> Value {
    let mut body = json!({"title": "Untitled", "authors": ["Anon"], "priceCents": 500, "stock": 10});
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = app.post("/books", Some(admin), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn send_with(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> crate::harness::Resp {
    let mut req = app
        .client
        .request(method, format!("{}{}", app.url, path))
        .bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    crate::harness::Resp {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn create_read_update_delete_with_etags() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let user = token(&app.register("reader@example.org", "password123").await);
    let dune = json!({
        "title": "Dune", "authors": ["Frank Herbert"], "isbn": "0-441-17271-7", "publishedYear": 1965,
        "description": "Desert planet.", "tags": ["Science-Fiction", "classic"], "priceCents": 1099, "stock": 12
    });

    // A reader may add a book, but not sell one.
    app.post("/books", Some(&user), dune.clone()).await.problem(403);
    let mut unpriced = dune.clone();
    unpriced["priceCents"] = Value::Null;
    app.post("/books", Some(&user), unpriced).await.problem(403);
    let r = app.post("/books", Some(&admin), dune.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let book = r.body.clone();
    let id = book["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("location"), Some(format!("/books/{id}").as_str()));
    let etag = r.header("etag").unwrap().to_string();
    assert_eq!(book["isbn"], "9780441172719", "ISBN-10 stored as ISBN-13");
    assert_eq!(book["tags"], json!(["science-fiction", "classic"]));
    assert_eq!(
        (book["priceCents"].as_i64(), book["stock"].as_i64()),
        (Some(1099), Some(12))
    );
    for f in ["createdAt", "updatedAt"] {
        assert!(book[f].as_str().unwrap().ends_with('Z'));
    }

    // The same ISBN in its 13-digit form is a duplicate, and the 409 names the book.
    let mut again = dune.clone();
    again["isbn"] = json!("978-0-441-17271-9");
    assert_eq!(
        app.post("/books", Some(&admin), again).await.problem(409)["bookId"],
        id
    );
    let mine = json!({"title": "Dune (my copy)", "authors": ["Frank Herbert"], "isbn": "0441172717"});
    assert_eq!(
        app.post("/books", Some(&user), mine).await.problem(409)["bookId"],
        id
    );

    let r = app.get(&format!("/books/{id}"), Some(&user)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, book);
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    // PATCH: stock is not patchable; every bad field is named.
    let r = app
        .send(
            Method::PATCH,
            &format!("/books/{id}"),
            Some(&admin),
            Some(json!({"stock": 1, "priceCents": -5})),
        )
        .await;
    assert_eq!(r.bad_fields(), ["priceCents", "stock"]);
    app.send(
        Method::PATCH,
        &format!("/books/{id}"),
        Some(&user),
        Some(json!({"title": "Mine"})),
    )
    .await
    .problem(403);

    // With the current ETag: applied, new ETag. With the old one: 412, nothing changed.
    let r = send_with(
        &app,
        Method::PATCH,
        &format!("/books/{id}"),
        &admin,
        &[("if-match", &etag)],
        Some(json!({"priceCents": 899, "isbn": null})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["priceCents"].as_i64(), r.body["isbn"].is_null()),
        (Some(899), true)
    );
    assert_eq!(r.body["title"], "Dune");
    let etag2 = r.header("etag").unwrap().to_string();
    assert_ne!(etag, etag2);
    let r = send_with(
        &app,
        Method::PATCH,
        &format!("/books/{id}"),
        &admin,
        &[("if-match", &etag)],
        Some(json!({"priceCents": 1})),
    )
    .await;
    r.problem(412);
    assert_eq!(
        app.get(&format!("/books/{id}"), Some(&user)).await.body["priceCents"],
        899
    );
    let r = send_with(
        &app,
        Method::PATCH,
        &format!("/books/{id}"),
        &admin,
        &[("if-match", "\"garbage\"")],
        Some(json!({"priceCents": 1})),
    )
    .await;
    r.problem(412);
    let r = send_with(
        &app,
        Method::PATCH,
        &format!("/books/{id}"),
        &admin,
        &[("if-match", "*")],
        Some(json!({"title": "Dune (1965)"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // Without If-Match the write is unconditional.
    let r = app
        .send(
            Method::PATCH,
            &format!("/books/{id}"),
            Some(&admin),
            Some(json!({"tags": []})),
        )
        .await;
    assert_eq!((r.status, &r.body["tags"]), (StatusCode::OK, &json!([])));

    app.send(Method::DELETE, &format!("/books/{id}"), Some(&user), None)
        .await
        .problem(403);
    let r = app
        .send(Method::DELETE, &format!("/books/{id}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get(&format!("/books/{id}"), Some(&user)).await.problem(404);
    app.send(
        Method::PATCH,
        &format!("/books/{id}"),
        Some(&admin),
        Some(json!({"title": "x"})),
    )
    .await
    .problem(404);
    app.send(Method::DELETE, &format!("/books/{id}"), Some(&admin), None)
        .await
        .problem(404);
    assert_eq!(
        app.get("/books/not-a-uuid", Some(&user)).await.bad_fields(),
        ["id"]
    );
    app.get(&format!("/books/{id}"), None).await.problem(401);
}

#[tokio::test]
async fn create_validation_names_every_field() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    // Only title and authors are required (API.md: priceCents defaults to null, stock to 0).
    let r = app.post("/books", Some(&admin), json!({})).await;
    assert_eq!(r.bad_fields(), ["authors", "title"]);
    let r = app
        .post(
            "/books",
            Some(&admin),
            json!({
                "title": "x".repeat(301), "authors": ["ok", ""], "isbn": "0-441-17271-8", "publishedYear": 3000,
                "description": 5, "tags": "sf", "priceCents": 1.5, "stock": -1
            }),
        )
        .await;
    assert_eq!(
        r.bad_fields(),
        [
            "authors",
            "description",
            "isbn",
            "priceCents",
            "publishedYear",
            "stock",
            "tags",
            "title"
        ]
    );
}

#[tokio::test]
async fn inventory_changes_are_guarded_and_recorded() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let user = token(&app.register("u@example.org", "password123").await);
    let book = create_book(&app, &admin, json!({"stock": 3})).await;
    let id = book["id"].as_str().unwrap();
    let path = format!("/books/{id}/inventory");

    let r = app
        .post(&path, Some(&admin), json!({"delta": 5, "reason": "restock"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"bookId": id, "stock": 8}));
    app.post(&path, Some(&admin), json!({"delta": -9, "reason": "damaged"}))
        .await
        .problem(409);
    let r = app
        .post(&path, Some(&admin), json!({"delta": -8, "reason": "sold out"}))
        .await;
    assert_eq!(r.body["stock"], 0);
    app.post(&path, Some(&user), json!({"delta": 1, "reason": "x"}))
        .await
        .problem(403);
    assert_eq!(
        app.post(&path, Some(&admin), json!({"delta": 0, "reason": ""}))
            .await
            .bad_fields(),
        ["delta", "reason"]
    );
    assert_eq!(
        app.post(&path, Some(&admin), json!({"delta": "1"}))
            .await
            .bad_fields(),
        ["delta", "reason"]
    );
    app.post(
        &format!("/books/{}/inventory", uuid::Uuid::new_v4()),
        Some(&admin),
        json!({"delta": 1, "reason": "x"}),
    )
    .await
    .problem(404);
    app.post(
        &path,
        Some(&admin),
        json!({"delta": 2_147_483_647, "reason": "overflow"}),
    )
    .await;
    app.post(
        &path,
        Some(&admin),
        json!({"delta": 2_147_483_647, "reason": "overflow"}),
    )
    .await
    .problem(409);

    let ledger = bookshelf_storage::inventory::ledger(&app.pool, id.parse().unwrap())
        .await
        .unwrap();
    let deltas: Vec<(i32, i32, &str)> = ledger
        .iter()
        .map(|l| (l.delta, l.stock_after, l.reason.as_str()))
        .collect();
    assert_eq!(
        deltas,
        [
            (3, 3, "initial stock"),
            (5, 8, "restock"),
            (-8, 0, "sold out"),
            (2_147_483_647, 2_147_483_647, "overflow")
        ]
    );
    assert!(
        ledger.iter().all(|l| l.actor_id.is_some()),
        "every change names its actor"
    );
    // The ETag moves with the stock.
    let r = app.get(&format!("/books/{id}"), Some(&user)).await;
    assert_ne!(
        r.header("etag"),
        Some(format!("\"{}-1\"", id.replace('-', "")).as_str())
    );
}

#[tokio::test]
async fn concurrent_inventory_changes_lose_nothing() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let book = create_book(&app, &admin, json!({"stock": 5})).await;
    let path = format!("/books/{}/inventory", book["id"].as_str().unwrap());

    let adds = (0..20).map(|_| app.post(&path, Some(&admin), json!({"delta": 1, "reason": "count"})));
    let results = futures::future::join_all(adds).await;
    assert!(results.iter().all(|r| r.status == StatusCode::OK));
    let stocks: HashSet<i64> = results
        .iter()
        .map(|r| r.body["stock"].as_i64().unwrap())
        .collect();
    assert_eq!(stocks, (6..=25).collect(), "each change saw its own result");

    let takes = (0..40).map(|_| app.post(&path, Some(&admin), json!({"delta": -1, "reason": "sale"})));
    let results = futures::future::join_all(takes).await;
    let ok = results.iter().filter(|r| r.status == StatusCode::OK).count();
    let refused = results
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, refused), (25, 15));
    let r = app
        .get(&format!("/books/{}", book["id"].as_str().unwrap()), Some(&admin))
        .await;
    assert_eq!(r.body["stock"], 0);
    let ledger =
        bookshelf_storage::inventory::ledger(&app.pool, book["id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap();
    assert_eq!(ledger.len(), 1 + 20 + 25);
    assert_eq!(ledger.iter().map(|l| l.delta).sum::<i32>(), 0);
}

#[tokio::test]
async fn search_and_filters() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    create_book(&app, &admin, json!({"title": "Dune", "authors": ["Frank Herbert"], "tags": ["sf", "classic"], "description": "Spice and sand on a desert planet."})).await;
    create_book(
        &app,
        &admin,
        json!({"title": "Children of Dune", "authors": ["Frank Herbert"], "tags": ["sf"]}),
    )
    .await;
    create_book(&app, &admin, json!({"title": "The Left Hand of Darkness", "authors": ["Ursula K. Le Guin"], "tags": ["sf", "classic"], "description": "Winter on Gethen."})).await;
    create_book(&app, &admin, json!({"title": "Deserts of the World", "authors": ["A. Geographer", "Frank Herbert Jr."], "tags": ["nature"]})).await;
    let titles = |r: &crate::harness::Resp| -> Vec<String> {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["title"].as_str().unwrap().to_string())
            .collect()
    };

    let r = app.get("/books?q=dune", Some(&admin)).await;
    let mut t = titles(&r);
    t.sort();
    assert_eq!(t, ["Children of Dune", "Dune"]);
    // Stemming, description and author text all count; the title weighs most.
    assert_eq!(
        titles(&app.get("/books?q=deserts", Some(&admin)).await),
        ["Deserts of the World", "Dune"]
    );
    assert_eq!(
        titles(&app.get("/books?q=gethen", Some(&admin)).await),
        ["The Left Hand of Darkness"]
    );
    assert_eq!(
        titles(&app.get("/books?q=le%20guin", Some(&admin)).await),
        ["The Left Hand of Darkness"]
    );
    assert!(titles(
        &app.get("/books?q=%22no%20such%20thing%22%20OR", Some(&admin))
            .await
    )
    .is_empty());
    // Author: exact, any case; not a substring.
    let mut t = titles(&app.get("/books?author=frank%20HERBERT", Some(&admin)).await);
    t.sort();
    assert_eq!(t, ["Children of Dune", "Dune"]);
    assert!(titles(&app.get("/books?author=Herbert", Some(&admin)).await).is_empty());
    // Tag, and filters combined with search.
    assert_eq!(
        titles(&app.get("/books?tag=classic", Some(&admin)).await),
        ["Dune", "The Left Hand of Darkness"]
    );
    assert_eq!(
        titles(&app.get("/books?tag=CLASSIC&q=dune", Some(&admin)).await),
        ["Dune"]
    );
    // An author with the words: title matches, then the description's (Dune's "desert").
    assert_eq!(
        titles(
            &app.get("/books?author=Frank%20Herbert&q=desert", Some(&admin))
                .await
        ),
        ["Dune"]
    );
    assert_eq!(
        titles(
            &app.get("/books?author=a.%20geographer&q=deserts&tag=nature", Some(&admin))
                .await
        ),
        ["Deserts of the World"]
    );
    assert_eq!(
        titles(
            &app.get("/books?author=frank%20herbert&tag=classic", Some(&admin))
                .await
        ),
        ["Dune"]
    );
    assert_eq!(
        titles(&app.get("/books?q=&author=", Some(&admin)).await).len(),
        4,
        "blank means no filter"
    );

    for bad in [
        "limit=0",
        "limit=abc",
        "limit=-1",
        "cursor=nope",
        "q=x&cursor=nope",
    ] {
        app.get(&format!("/books?{bad}"), Some(&admin)).await.problem(400);
    }
    let r = app
        .get(&format!("/books?q={}", "a".repeat(201)), Some(&admin))
        .await;
    assert_eq!(r.bad_fields(), ["q"]);
    // A cursor from a plain listing does not fit a search.
    let first = app.get("/books?limit=1", Some(&admin)).await;
    let c = first.body["nextCursor"].as_str().unwrap();
    app.get(&format!("/books?q=dune&cursor={c}"), Some(&admin))
        .await
        .problem(400);
    // Well formed, but 200,000 BC: refused before it reaches the database (which would fail).
    use base64::Engine;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("v1.-6311433600000000000.{}", uuid::Uuid::nil()));
    for list in ["/books", "/library", "/orders", "/feed", "/users"] {
        app.get(&format!("{list}?cursor={forged}"), Some(&admin))
            .await
            .problem(400);
    }
}

/// `?author=` and `?tag=` read their own tables (one row per value and book); every way a
/// book's authors or tags change reaches them, and the lists page through them.
#[tokio::test]
async fn author_and_tag_lists_follow_every_edit() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let ids = |r: &crate::harness::Resp| -> Vec<String> {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut made = Vec::new();
    for i in 0..7 {
        let b = create_book(
            &app,
            &admin,
            json!({"title": format!("Tale {i}"), "authors": ["Ann Author", "ann author", "Bo"], "tags": ["tale"]}),
        )
        .await;
        made.push(b["id"].as_str().unwrap().to_string());
    }
    // Seeded books go in a thousand to a statement: the statement's trigger files them all.
    bookshelf_devserver::seed::seed_books(&app.pool, 1500, 11)
        .await
        .unwrap();
    // Pages of 3, in creation order, each book once (the author named twice in one book).
    for list in ["author=ANN%20AUTHOR", "tag=tale"] {
        let mut seen = Vec::new();
        let mut path = format!("/books?{list}&limit=3");
        loop {
            let r = app.get(&path, Some(&admin)).await;
            seen.extend(ids(&r));
            match r.body["nextCursor"].as_str() {
                Some(c) => path = format!("/books?{list}&limit=3&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seen, made, "{list}");
    }
    // New authors and tags: the old values no longer list the book, the new ones do.
    let r = app
        .send(
            Method::PATCH,
            &format!("/books/{}", made[0]),
            Some(&admin),
            Some(json!({"authors": ["Cy"], "tags": ["fable", "tale2"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!ids(&app
        .get("/books?author=ann%20author&limit=100", Some(&admin))
        .await)
    .contains(&made[0]));
    assert!(!ids(&app.get("/books?tag=tale&limit=100", Some(&admin)).await).contains(&made[0]));
    assert_eq!(
        ids(&app.get("/books?author=cy", Some(&admin)).await),
        [made[0].clone()]
    );
    assert_eq!(
        ids(&app.get("/books?tag=fable&author=CY", Some(&admin)).await),
        [made[0].clone()]
    );
    assert!(ids(&app.get("/books?tag=tale&author=cy", Some(&admin)).await).is_empty());
    // A deleted book leaves every list.
    app.send(Method::DELETE, &format!("/books/{}", made[1]), Some(&admin), None)
        .await;
    assert!(!ids(&app.get("/books?author=bo&limit=100", Some(&admin)).await).contains(&made[1]));
    // And the tables hold exactly each book's distinct values.
    let (authors, tags): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM (
                   (SELECT DISTINCT a, b.created_at, b.id FROM books b, unnest(b.authors_ci) AS a)
                   EXCEPT ALL (SELECT author_ci, created_at, book_id FROM book_authors)) x)
              + (SELECT count(*) FROM (
                   (SELECT author_ci, created_at, book_id FROM book_authors)
                   EXCEPT ALL (SELECT DISTINCT a, b.created_at, b.id FROM books b, unnest(b.authors_ci) AS a)) y),
                (SELECT count(*) FROM (
                   (SELECT DISTINCT t, b.created_at, b.id FROM books b, unnest(b.tags) AS t)
                   EXCEPT ALL (SELECT tag, created_at, book_id FROM book_tags)) x)
              + (SELECT count(*) FROM (
                   (SELECT tag, created_at, book_id FROM book_tags)
                   EXCEPT ALL (SELECT DISTINCT t, b.created_at, b.id FROM books b, unnest(b.tags) AS t)) y)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((authors, tags), (0, 0));
}

async fn walk(
    app: &TestApp,
    token: &str,
    query: &str,
    limit: usize,
    mut between: impl AsyncFnMut(usize),
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = match &cursor {
            Some(c) => format!("/books?{query}{sep}limit={limit}&cursor={c}"),
            None => format!("/books?{query}{sep}limit={limit}"),
        };
        let r = app.get(&path, Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let items = r.body["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        ids.extend(items.iter().map(|b| b["id"].as_str().unwrap().to_string()));
        pages += 1;
        between(pages).await;
        match &r.body["nextCursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            _ => break,
        }
    }
    ids
}

#[tokio::test]
async fn pagination_returns_every_book_once_while_books_are_added() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let mut original = HashSet::new();
    // Half say "ocean" in the title (the search's first tier), half only in the description.
    let mut in_title = HashSet::new();
    for i in 0..23 {
        let title = if i % 2 == 0 {
            format!("Ocean voyage {i}")
        } else {
            format!("Sea voyage {i}")
        };
        let b = create_book(
            &app,
            &admin,
            json!({"title": title, "description": "ocean ".repeat(i % 4 + 1)}),
        )
        .await;
        let id = b["id"].as_str().unwrap().to_string();
        if i % 2 == 0 {
            in_title.insert(id.clone());
        }
        original.insert(id);
    }

    for query in ["", "q=ocean"] {
        let ids = walk(&app, &admin, query, 5, async |page| {
            // Insert while walking: these may or may not show up, but must not disturb the rest.
            create_book(&app, &admin, json!({"title": format!("Ocean late {page}")})).await;
        })
        .await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{query}: no book twice");
        for id in &original {
            assert!(ids.contains(id), "{query}: {id} missing");
        }
        if query == "q=ocean" {
            // Title matches first, across pages: none after the first description match.
            let first_other = ids
                .iter()
                .position(|id| original.contains(id) && !in_title.contains(id));
            let last_title = ids.iter().rposition(|id| in_title.contains(id));
            assert!(last_title < first_other, "{ids:?}");
        }
    }
}

/// Seeded books are books like any other: their first stock is in the ledger.
#[tokio::test]
async fn seeded_books_have_their_initial_stock_in_the_ledger() {
    let app = TestApp::start().await;
    let added = bookshelf_devserver::seed::seed_books(&app.pool, 60, 7)
        .await
        .unwrap();
    assert_eq!(added, 60);
    let (stocked, initial, unexplained): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE stock > 0),
                (SELECT count(*) FROM inventory_ledger WHERE reason = 'initial stock'),
                count(*) FILTER (WHERE stock <> COALESCE(
                    (SELECT sum(delta) FROM inventory_ledger l WHERE l.book_id = b.id), 0))
         FROM books b",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(stocked > 40, "{stocked} of 60 seeded books have stock");
    assert_eq!(initial, stocked, "one initial-stock row per stocked book");
    assert_eq!(unexplained, 0, "every book's stock is the sum of its ledger");
}

/// The shared catalog: a reader adds a missing book (not for sale, no stock) that everyone
/// signed in sees; it cannot be ordered until an admin prices it; readers never edit it.
#[tokio::test]
async fn readers_add_books_the_shop_does_not_sell() {
    let app = TestApp::start().await;
    let admin = app.admin_token().await;
    let reader = token(&app.register("finder@example.org", "password123").await);
    let other = token(&app.register("other@example.org", "password123").await);
    let r = app
        .post(
            "/books",
            Some(&reader),
            json!({"title": "Small Press Poems", "authors": ["A. Poet"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        (r.body["priceCents"].clone(), r.body["stock"].clone()),
        (Value::Null, json!(0))
    );
    assert_eq!(
        app.get(&format!("/books/{id}"), Some(&other)).await.body["title"],
        "Small Press Poems"
    );

    let order = json!({"items": [{"bookId": id, "quantity": 1}]});
    let r = app.post("/orders", Some(&other), order.clone()).await;
    assert_eq!(r.bad_fields(), ["items[0].bookId"]);
    let path = format!("/books/{id}");
    app.send(
        Method::PATCH,
        &path,
        Some(&reader),
        Some(json!({"priceCents": 100})),
    )
    .await
    .problem(403);
    app.send(Method::DELETE, &path, Some(&reader), None)
        .await
        .problem(403);

    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"priceCents": 100})),
        )
        .await;
    assert_eq!(r.body["priceCents"], 100, "{}", r.body);
    app.post(
        &format!("{path}/inventory"),
        Some(&admin),
        json!({"delta": 1, "reason": "found a copy"}),
    )
    .await;
    assert_eq!(
        app.post("/orders", Some(&other), order).await.status,
        StatusCode::ACCEPTED
    );
    // Off sale again: a null price.
    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"priceCents": null})),
        )
        .await;
    assert_eq!(r.body["priceCents"], Value::Null, "{}", r.body);
}
