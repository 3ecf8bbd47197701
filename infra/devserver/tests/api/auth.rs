//! Public routes: register, login, refresh, plus logout and the body rules.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{refresh_token, token, TestApp};

#[tokio::test]
async fn register_returns_profile_and_tokens() {
    let app = TestApp::start().await;
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "  Ann@Example.org ", "password": "password123"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let b = &r.body;
    assert_eq!(b["tokenType"], "Bearer");
    assert_eq!(b["expiresIn"], 900);
    assert!(b["refreshToken"].as_str().unwrap().len() >= 32);
    let user = &b["user"];
    assert_eq!(user["email"], "Ann@Example.org", "trimmed");
    assert_eq!(user["displayName"], "Ann", "defaults to the part before @");
    assert_eq!(user["role"], "user");
    assert!(user["bio"].is_null());
    for f in ["id", "createdAt", "updatedAt"] {
        assert!(user[f].is_string(), "{f}");
    }
    assert!(user.get("passwordHash").is_none() && user.get("password").is_none());
    let created = user["createdAt"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok() && created.ends_with('Z'));

    // The access token works at once.
    let me = app.get("/users/me", Some(&token(b))).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body, *user);

    // The password is stored as an argon2id hash.
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1::uuid")
        .bind(user["id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));
}

#[tokio::test]
async fn register_with_display_name_and_duplicate_email() {
    let app = TestApp::start().await;
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "bo@example.org", "password": "password123", "displayName": "  Bo  "}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["user"]["displayName"], "Bo");
    // Same address in another case, with spaces: still taken.
    let again = app
        .post(
            "/auth/register",
            None,
            json!({"email": " BO@EXAMPLE.ORG", "password": "password456"}),
        )
        .await;
    again.problem(409);
}

#[tokio::test]
async fn register_validation_names_every_bad_field() {
    let app = TestApp::start().await;
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "not-an-email", "password": "short", "displayName": "x".repeat(65)}),
        )
        .await;
    assert_eq!(r.bad_fields(), ["displayName", "email", "password"]);

    let r = app.post("/auth/register", None, json!({})).await;
    assert_eq!(r.bad_fields(), ["email", "password"]);

    // Wrong types are validation errors too, all of them.
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": 42, "password": ["x"], "displayName": true}),
        )
        .await;
    assert_eq!(r.bad_fields(), ["displayName", "email", "password"]);

    let long_email = format!("{}@example.org", "a".repeat(250));
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": long_email, "password": "p".repeat(129), "displayName": "   "}),
        )
        .await;
    assert_eq!(r.bad_fields(), ["displayName", "email", "password"]);
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_4xx() {
    let app = TestApp::start().await;
    for body in ["{", "not json", "[1,2]", "\"text\"", "null", ""] {
        let r = app
            .raw(Method::POST, "/auth/register", None, body.to_string())
            .await;
        r.problem(400);
    }
    // Just over 64 KiB → 413.
    let mut big = json!({"email": "x@example.org", "password": "password123"}).to_string();
    let pad = 65_537 - big.len();
    big.push_str(&" ".repeat(pad));
    assert_eq!(big.len(), 65_537);
    app.raw(Method::POST, "/auth/register", None, big)
        .await
        .problem(413);
    // Exactly 64 KiB is accepted.
    let mut exact = json!({"email": "exact@example.org", "password": "password123"}).to_string();
    let pad = 65_536 - exact.len();
    exact.push_str(&" ".repeat(pad));
    let r = app.raw(Method::POST, "/auth/register", None, exact).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// The dev server stops reading a body at the API's limit: a client announcing 64 MiB gets
/// its 413 after 64 KiB, not after the server has buffered what it was sent.
#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_buffered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start().await;
    let addr = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let total = 64 * 1024 * 1024;
    stream
        .write_all(
            format!(
                "POST /auth/register HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                 content-length: {total}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut written = 0;
    // Written until the server stops taking it (it answered and closed), or all of it.
    while written < total {
        let step = tokio::time::timeout(std::time::Duration::from_secs(2), stream.write_all(&chunk)).await;
        match step {
            Ok(Ok(())) => written += chunk.len(),
            _ => break,
        }
    }
    assert!(written < 32 * 1024 * 1024, "the server took {written} bytes");
    let mut answer = vec![0u8; 64];
    let n = stream.read(&mut answer).await.unwrap_or(0);
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head:?}");
}

#[tokio::test]
async fn login_trims_ignores_case_and_hides_which_part_was_wrong() {
    let app = TestApp::start().await;
    app.register("cy@example.org", "password123").await;
    let ok = app
        .post(
            "/auth/login",
            None,
            json!({"email": "  CY@example.ORG ", "password": "password123"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["user"]["email"], "cy@example.org");
    assert_eq!(ok.body["tokenType"], "Bearer");

    let wrong_pw = app
        .post(
            "/auth/login",
            None,
            json!({"email": "cy@example.org", "password": "password124"}),
        )
        .await;
    let unknown = app
        .post(
            "/auth/login",
            None,
            json!({"email": "nobody@example.org", "password": "password123"}),
        )
        .await;
    let (mut a, mut b) = (wrong_pw.problem(401).clone(), unknown.problem(401).clone());
    a.as_object_mut().unwrap().remove("requestId");
    b.as_object_mut().unwrap().remove("requestId");
    assert_eq!(a, b, "same body for unknown email and wrong password");

    let r = app.post("/auth/login", None, json!({"email": 1})).await;
    assert_eq!(r.bad_fields(), ["email", "password"]);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let app = TestApp::start().await;
    let first = app.register("di@example.org", "password123").await;
    let r1 = refresh_token(&first);

    let second = app.post("/auth/refresh", None, json!({"refreshToken": r1})).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let r2 = refresh_token(&second.body);
    assert_ne!(r1, r2, "a NEW refresh token");
    assert_eq!(second.body["user"]["email"], "di@example.org");
    let access2 = token(&second.body);
    assert_eq!(app.get("/users/me", Some(&access2)).await.status, StatusCode::OK);

    // Reusing the spent token: 401, and the whole session is gone.
    app.post("/auth/refresh", None, json!({"refreshToken": r1}))
        .await
        .problem(401);
    app.post("/auth/refresh", None, json!({"refreshToken": r2}))
        .await
        .problem(401);
    app.get("/users/me", Some(&access2)).await.problem(401);
    app.get("/users/me", Some(&token(&first))).await.problem(401);

    // Another session of the same user is untouched.
    let other = app.login("di@example.org", "password123").await;
    assert_eq!(
        app.get("/users/me", Some(&token(&other))).await.status,
        StatusCode::OK
    );

    app.post("/auth/refresh", None, json!({"refreshToken": "made-up"}))
        .await
        .problem(401);
    assert_eq!(
        app.post("/auth/refresh", None, json!({})).await.bad_fields(),
        ["refreshToken"]
    );
}

#[tokio::test]
async fn concurrent_refresh_with_one_token_succeeds_at_most_once() {
    let app = TestApp::start().await;
    let auth = app.register("eve@example.org", "password123").await;
    let rt = refresh_token(&auth);
    let tries = (0..5).map(|_| app.post("/auth/refresh", None, json!({"refreshToken": rt})));
    let results = futures::future::join_all(tries).await;
    let ok = results.iter().filter(|r| r.status == StatusCode::OK).count();
    assert!(ok <= 1, "{ok} rotations of one token");
    for r in results.iter().filter(|r| r.status != StatusCode::OK) {
        r.problem(401);
    }
}

#[tokio::test]
async fn logout_revokes_access_and_refresh_tokens() {
    let app = TestApp::start().await;
    let auth = app.register("fay@example.org", "password123").await;
    let access = token(&auth);
    let r = app.send(Method::POST, "/auth/logout", Some(&access), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/users/me", Some(&access)).await.problem(401);
    app.post(
        "/auth/refresh",
        None,
        json!({"refreshToken": refresh_token(&auth)}),
    )
    .await
    .problem(401);
    app.send(Method::POST, "/auth/logout", Some(&access), None)
        .await
        .problem(401);
    app.send(Method::POST, "/auth/logout", None, None)
        .await
        .problem(401);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_per_address() {
    // The test client is 127.0.0.1, which is counted here only because we ask for it.
    let app = TestApp::start_custom(None, |s| s.throttling_loopback(true)).await;
    app.register("target@example.org", "password123").await;
    let wrong = json!({"email": "target@example.org", "password": "not-the-password"});
    for _ in 0..10 {
        app.post("/auth/login", None, wrong.clone()).await.problem(401);
    }
    // The 11th try, even with the right password, waits for the window.
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "TARGET@example.org", "password": "password123"}),
        )
        .await;
    r.problem(429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    // Other accounts from the same address are not affected by one account's lock.
    app.register("bystander@example.org", "password123").await;
    app.login("bystander@example.org", "password123").await;

    // The window passes: the account can sign in, and success clears its count.
    sqlx::query(
        "UPDATE login_throttle SET window_start = now() - interval '16 minutes' WHERE key LIKE 'user:%'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let signed_in = app.login("target@example.org", "password123").await;
    let key = format!("user:{}", signed_in["user"]["id"].as_str().unwrap());
    let count: Option<i32> = sqlx::query_scalar("SELECT failures FROM login_throttle WHERE key = $1")
        .bind(&key)
        .fetch_optional(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, None);

    // Per address: 100 failures in the window, across any accounts, lock the address out.
    sqlx::query("UPDATE login_throttle SET failures = 99 WHERE key LIKE 'ip:%'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.post(
        "/auth/login",
        None,
        json!({"email": "nobody@example.org", "password": "whatever1"}),
    )
    .await
    .problem(401);
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "bystander@example.org", "password": "password123"}),
        )
        .await;
    r.problem(429);
    assert!(r.header("retry-after").is_some());
}

/// API.md: 40 concurrent wrong logins → at most 10 answers 401, the rest 429. Each attempt
/// reserves its slot before argon2 runs, so none slips between a check and its count.
#[tokio::test]
async fn concurrent_wrong_guesses_get_at_most_ten_checks() {
    let app = TestApp::start().await;
    app.register("racer@example.org", "password123").await;
    let attempts = (0..40).map(|i| {
        // Every spelling finds the same account, and so the same budget.
        let email = if i % 2 == 0 {
            "racer@example.org"
        } else {
            "RACER@Example.ORG"
        };
        app.post(
            "/auth/login",
            None,
            json!({"email": email, "password": "wrong-password"}),
        )
    });
    let answers = futures::future::join_all(attempts).await;
    let checked = answers
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + throttled, 40, "only 401s and 429s");
    assert!((1..=10).contains(&checked), "{checked} guesses were checked");
    for r in answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
    {
        r.problem(429);
        assert!(r.header("retry-after").is_some());
    }
}

/// The same budget guards the current password of PUT /users/me/password: a stolen access
/// token cannot be used to guess the password, and those guesses lock logins too.
#[tokio::test]
async fn password_changes_and_logins_share_one_budget() {
    let app = TestApp::start().await;
    let auth = app.register("oracle@example.org", "password123").await;
    let t = token(&auth);
    let wrong = json!({"currentPassword": "not-it-at-all", "newPassword": "another-password"});
    for _ in 0..10 {
        app.send(Method::PUT, "/users/me/password", Some(&t), Some(wrong.clone()))
            .await
            .problem(403);
    }
    let r = app
        .send(
            Method::PUT,
            "/users/me/password",
            Some(&t),
            Some(json!({"currentPassword": "password123", "newPassword": "another-password"})),
        )
        .await;
    r.problem(429);
    assert!(r.header("retry-after").is_some());
    app.post(
        "/auth/login",
        None,
        json!({"email": "oracle@example.org", "password": "password123"}),
    )
    .await
    .problem(429);
}

/// API.md: deleting an account forgets its failures; the email registered again starts afresh.
#[tokio::test]
async fn deleting_an_account_forgets_its_failures() {
    let app = TestApp::start().await;
    let auth = app.register("leaver@example.org", "password123").await;
    for _ in 0..10 {
        app.post(
            "/auth/login",
            None,
            json!({"email": "leaver@example.org", "password": "wrong-password"}),
        )
        .await
        .problem(401);
    }
    app.send(Method::DELETE, "/users/me", Some(&token(&auth)), None)
        .await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM login_throttle WHERE key = $1")
        .bind(format!("user:{}", auth["user"]["id"].as_str().unwrap()))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    app.register("leaver@example.org", "password123").await;
    app.login("leaver@example.org", "password123").await;
}

/// Registration per address, when the dev server is asked to limit it (deployed, the WAF's
/// rule does): the limit's worth of accounts, then 429 with Retry-After.
#[tokio::test]
async fn registrations_per_address_are_limited_when_configured() {
    let app = TestApp::start_custom(None, |s| s.with_register_limit(Some(3))).await;
    for i in 0..3 {
        app.register(&format!("minted{i}@example.org"), "password123")
            .await;
    }
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "minted3@example.org", "password": "password123"}),
        )
        .await;
    r.problem(429);
    assert!(r.header("retry-after").is_some());
    // The default is no limit at all.
    let open = TestApp::start_with(None).await;
    for i in 0..5 {
        open.register(&format!("free{i}@example.org"), "password123")
            .await;
    }
}

#[tokio::test]
async fn loopback_clients_are_not_throttled_per_address_by_default() {
    let app = TestApp::start().await;
    app.register("local@example.org", "password123").await;
    for i in 0..12 {
        app.post(
            "/auth/login",
            None,
            json!({"email": format!("ghost{i}@example.org"), "password": "whatever1"}),
        )
        .await
        .problem(401);
    }
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM login_throttle")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(keys.iter().all(|k| k.starts_with("email:")), "{keys:?}");
    app.login("local@example.org", "password123").await;
}

/// Refused tokens are counted by reason, wrong passwords and throttled sign-ins each by
/// their own metric; none of them is an authorizer failure.
#[tokio::test]
async fn refusals_and_failed_logins_are_counted() {
    use bookshelf_config::metrics::{AUTHORIZER_FAILURES, LOGIN_FAILURES};
    let app = TestApp::start().await;
    let auth = app.register("metered@example.org", "password123").await;
    let t = token(&auth);
    assert_eq!(
        app.get("/users/me", Some("not-a-jwt")).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.post("/auth/logout", Some(&t), json!({})).await;
    assert_eq!(
        app.get("/users/me", Some(&t)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let wrong = json!({"email": "metered@example.org", "password": "wrong-password"});
    assert_eq!(
        app.post("/auth/login", None, wrong).await.status,
        StatusCode::UNAUTHORIZED
    );

    let m = &app.state.metrics;
    assert_eq!(m.total("AuthorizerRefusals/Reason=BadToken"), 1);
    assert_eq!(m.total("AuthorizerRefusals/Reason=InactiveSession"), 1);
    assert_eq!(m.total(LOGIN_FAILURES), 1);
    assert_eq!(m.total(AUTHORIZER_FAILURES), 0);
}
