//! Profile routes and the admin's user list.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{refresh_token, token, TestApp, ADMIN_EMAIL};

#[tokio::test]
async fn update_profile() {
    let app = TestApp::start().await;
    let auth = app.register("gus@example.org", "password123").await;
    let t = token(&auth);
    let r = app
        .send(
            Method::PATCH,
            "/users/me",
            Some(&t),
            Some(json!({"displayName": " Gus ", "bio": "Reads a lot."})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["displayName"], "Gus");
    assert_eq!(r.body["bio"], "Reads a lot.");
    assert_eq!(r.body["email"], "gus@example.org");
    assert!(r.body["updatedAt"].as_str() >= auth["user"]["updatedAt"].as_str());

    // Absent fields stay; null clears the bio.
    let r = app
        .send(
            Method::PATCH,
            "/users/me",
            Some(&t),
            Some(json!({"email": "GUS2@example.org"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.body["email"].as_str(), r.body["bio"].as_str()),
        (Some("GUS2@example.org"), Some("Reads a lot."))
    );
    let r = app
        .send(Method::PATCH, "/users/me", Some(&t), Some(json!({"bio": null})))
        .await;
    assert!(r.body["bio"].is_null());
    assert_eq!(app.get("/users/me", Some(&t)).await.body, r.body);
    // Login works with the new email.
    app.login("gus2@example.org", "password123").await;

    // Every bad field named.
    let r = app
        .send(
            Method::PATCH,
            "/users/me",
            Some(&t),
            Some(json!({"displayName": "", "bio": "b".repeat(501), "email": "nope"})),
        )
        .await;
    assert_eq!(r.bad_fields(), ["bio", "displayName", "email"]);
    let r = app
        .send(
            Method::PATCH,
            "/users/me",
            Some(&t),
            Some(json!({"displayName": null, "bio": 5})),
        )
        .await;
    assert_eq!(r.bad_fields(), ["bio", "displayName"]);

    // Someone else's email → 409, in any case.
    app.register("taken@example.org", "password123").await;
    let r = app
        .send(
            Method::PATCH,
            "/users/me",
            Some(&t),
            Some(json!({"email": "Taken@Example.org"})),
        )
        .await;
    r.problem(409);
    app.send(Method::PATCH, "/users/me", None, Some(json!({})))
        .await
        .problem(401);
}

#[tokio::test]
async fn change_password_revokes_other_sessions() {
    let app = TestApp::start().await;
    let a = app.register("hal@example.org", "password123").await;
    let b = app.login("hal@example.org", "password123").await;
    let (ta, tb) = (token(&a), token(&b));

    let wrong = app
        .send(
            Method::PUT,
            "/users/me/password",
            Some(&ta),
            Some(json!({"currentPassword": "nope-nope", "newPassword": "newpassword1"})),
        )
        .await;
    wrong.problem(403);
    let invalid = app
        .send(
            Method::PUT,
            "/users/me/password",
            Some(&ta),
            Some(json!({"newPassword": "short"})),
        )
        .await;
    assert_eq!(invalid.bad_fields(), ["currentPassword", "newPassword"]);

    let r = app
        .send(
            Method::PUT,
            "/users/me/password",
            Some(&ta),
            Some(json!({"currentPassword": "password123", "newPassword": "newpassword1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // This session lives on; the other one is revoked, refresh token included.
    assert_eq!(app.get("/users/me", Some(&ta)).await.status, StatusCode::OK);
    app.get("/users/me", Some(&tb)).await.problem(401);
    app.post("/auth/refresh", None, json!({"refreshToken": refresh_token(&b)}))
        .await
        .problem(401);
    let r = app
        .post("/auth/refresh", None, json!({"refreshToken": refresh_token(&a)}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Old password no longer works, new one does.
    app.post(
        "/auth/login",
        None,
        json!({"email": "hal@example.org", "password": "password123"}),
    )
    .await
    .problem(401);
    app.login("hal@example.org", "newpassword1").await;
}

#[tokio::test]
async fn delete_account() {
    let app = TestApp::start().await;
    let a = app.register("ida@example.org", "password123").await;
    let t = token(&a);
    let r = app.send(Method::DELETE, "/users/me", Some(&t), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/users/me", Some(&t)).await.problem(401);
    app.post("/auth/refresh", None, json!({"refreshToken": refresh_token(&a)}))
        .await
        .problem(401);
    app.post(
        "/auth/login",
        None,
        json!({"email": "ida@example.org", "password": "password123"}),
    )
    .await
    .problem(401);
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let admin_sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.role = 'admin'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(sessions, admin_sessions, "the user's sessions are gone");
    // The email can be registered again, as a new account.
    let again = app.register("ida@example.org", "password456").await;
    assert_ne!(again["user"]["id"], a["user"]["id"]);
}

#[tokio::test]
async fn public_profiles() {
    let app = TestApp::start().await;
    let a = app.register("jo@example.org", "password123").await;
    let b = app.register("kim@example.org", "password123").await;
    let id = b["user"]["id"].as_str().unwrap();
    let r = app.get(&format!("/users/{id}"), Some(&token(&a))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        json!({"id": id, "displayName": "kim", "bio": null, "followers": 0, "following": 0, "followedByMe": false}),
        "no email, no role, no visibility"
    );
    app.get(&format!("/users/{}", uuid::Uuid::new_v4()), Some(&token(&a)))
        .await
        .problem(404);
    let r = app.get("/users/not-a-uuid", Some(&token(&a))).await;
    assert_eq!(r.bad_fields(), ["id"]);
    app.get(&format!("/users/{id}"), None).await.problem(401);
}

#[tokio::test]
async fn admin_lists_users_with_keyset_pagination() {
    let app = TestApp::start().await;
    let user = app.register("lee@example.org", "password123").await;
    for i in 0..6 {
        app.register(&format!("u{i}@example.org"), "password123").await;
    }
    // Not an admin → 403.
    app.get("/users", Some(&token(&user))).await.problem(403);
    app.get("/users", None).await.problem(401);

    let admin = app.admin_token().await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/users?limit=3&cursor={c}"),
            None => "/users?limit=3".to_string(),
        };
        let r = app.get(&path, Some(&admin)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let items = r.body["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        for u in items {
            assert!(u["email"].is_string() && u["role"].is_string() && u["createdAt"].is_string());
            seen.push(u["email"].as_str().unwrap().to_string());
        }
        pages += 1;
        match &r.body["nextCursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            Value::Null => break,
            other => panic!("nextCursor {other}"),
        }
        // A new user mid-walk is seen once, at the end.
        if pages == 1 {
            app.register("late@example.org", "password123").await;
        }
    }
    assert_eq!(seen.len(), 9, "{seen:?}");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 9, "each exactly once");
    assert!(seen.contains(&ADMIN_EMAIL.to_string()) && seen.contains(&"late@example.org".to_string()));

    let r = app.get("/users", Some(&admin)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 9);
    assert!(r.body["nextCursor"].is_null());

    for bad in [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=101",
        "cursor=zzz",
        "cursor=",
    ] {
        let r = app.get(&format!("/users?{bad}"), Some(&admin)).await;
        r.problem(400);
    }
}

/// API.md: operator commands never hand an existing account new powers silently. Someone
/// who registered the address an operator later makes admin keeps a user's token; named
/// explicitly, the account becomes admin and every session it had is revoked.
#[tokio::test]
async fn the_admin_command_refuses_an_existing_account_unless_it_is_named() {
    use bookshelf_api::ops::{ensure_admin, AdminOutcome, OpsError};
    let app = TestApp::start().await;
    let squatter = app.register("ops@example.org", "squatter-password").await;
    let t = token(&squatter);

    let refused = ensure_admin(&app.pool, "OPS@example.org", "operator-password", None).await;
    assert!(matches!(refused, Err(OpsError::Exists(_))), "{refused:?}");
    let me = app.get("/users/me", Some(&t)).await;
    assert_eq!(me.body["role"], "user", "refused: nothing changed");
    // Naming another account is not naming this one.
    let other = ensure_admin(
        &app.pool,
        "ops@example.org",
        "operator-password",
        Some("else@example.org"),
    )
    .await;
    assert!(matches!(other, Err(OpsError::Exists(_))), "{other:?}");

    let promoted = ensure_admin(
        &app.pool,
        "ops@example.org",
        "operator-password",
        Some("Ops@Example.org"),
    )
    .await
    .unwrap();
    assert!(
        matches!(promoted, AdminOutcome::Promoted { revoked_sessions: 1 }),
        "{promoted:?}"
    );
    app.get("/users/me", Some(&t)).await.problem(401);
    app.post(
        "/auth/login",
        None,
        json!({"email": "ops@example.org", "password": "squatter-password"}),
    )
    .await
    .problem(401);
    let admin = app.login("ops@example.org", "operator-password").await;
    assert_eq!(admin["user"]["role"], "admin");

    // Run again as it is (make dev at every start): nothing changes, no session is lost.
    let again = ensure_admin(&app.pool, "ops@example.org", "operator-password", None)
        .await
        .unwrap();
    assert_eq!(again, AdminOutcome::Unchanged);
    app.get("/users/me", Some(&token(&admin))).await;
    assert_eq!(
        app.get("/users/me", Some(&token(&admin))).await.status,
        StatusCode::OK
    );
    // A new password for an existing admin is a reset: named, or refused.
    let reset = ensure_admin(&app.pool, "ops@example.org", "a-new-operator-password", None).await;
    assert!(matches!(reset, Err(OpsError::Exists(_))), "{reset:?}");
    let fresh = ensure_admin(&app.pool, "new-admin@example.org", "operator-password", None)
        .await
        .unwrap();
    assert_eq!(fresh, AdminOutcome::Created);
}
