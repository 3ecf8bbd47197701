//! What the code assumes about the deployed stack, checked against template.yaml and a
//! real PostgreSQL: which functions reach the database, and as whom.

use bookshelf_storage::DbPool;
use std::collections::BTreeMap;

use bookshelf_api::HTTP_FUNCTIONS;
use serde_norway::Value;

use crate::harness::{repo_root, TestApp};

/// Binary → (names a database user, has VpcConfig), for every function of template.yaml:
/// `DB_USER` (IAM sign-in to the proxy), or db-migrate's owner secret `DB_SECRET_ARN`.
fn database_settings() -> BTreeMap<String, (bool, bool)> {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for (_, r) in doc["Resources"].as_mapping().unwrap() {
        let Some(binary) = r["Metadata"]["BuildProperties"]["Binary"].as_str() else {
            continue;
        };
        let props = &r["Properties"];
        let vars = &props["Environment"]["Variables"];
        let secret = !vars["DB_USER"].is_null() || !vars["DB_SECRET_ARN"].is_null();
        let vpc = !props["VpcConfig"].is_null();
        out.insert(binary.to_string(), (secret, vpc));
    }
    out
}

#[test]
fn functions_that_never_query_have_no_database_deployed() {
    let deployed = database_settings();
    for f in HTTP_FUNCTIONS {
        let (secret, vpc) = deployed[f.name];
        assert_eq!(
            secret,
            f.database(),
            "{}: DB_USER vs. the registry's `database`",
            f.name
        );
        assert_eq!(
            vpc,
            f.database(),
            "{}: VpcConfig vs. the registry's `database`",
            f.name
        );
    }
    assert!(
        HTTP_FUNCTIONS.iter().any(|f| !f.database()),
        "openapi and jwks never query"
    );
}

/// API.md: admin authorization is never cached deployed. Every function whose behaviour
/// depends on the caller's role (admin-only, or more for admins) is routed through the
/// authorizer whose result is not cached, and no other is.
#[test]
fn admin_routes_and_only_they_use_the_uncached_authorizer() {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let authorizers = &doc["Resources"]["BookshelfApi"]["Properties"]["Auth"]["Authorizers"];
    let ttl = |name: &str| authorizers[name]["Identity"]["ReauthorizeEvery"].as_u64();
    assert_eq!(ttl("BookshelfAdminAuthorizer"), Some(0));
    let mut checked = 0;
    for (_, r) in doc["Resources"].as_mapping().unwrap() {
        let Some(binary) = r["Metadata"]["BuildProperties"]["Binary"].as_str() else {
            continue;
        };
        let Some(f) = HTTP_FUNCTIONS.iter().find(|f| f.name == binary) else {
            continue;
        };
        let Some(events) = r["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (_, event) in events {
            let named = event["Properties"]["Auth"]["Authorizer"].as_str();
            let uncached = named == Some("BookshelfAdminAuthorizer");
            let admin = f.access.needs_current_role();
            assert_eq!(uncached, admin, "{binary}: admin-only vs. its route's authorizer");
            checked += usize::from(admin);
        }
    }
    assert!(checked >= 5, "the admin routes were found ({checked})");
}

/// SQLSTATE 42501: insufficient_privilege.
async fn refused(pool: &DbPool, sql: &str) {
    match sqlx::raw_sql(sql).execute(pool).await {
        Err(sqlx::Error::Database(e)) => {
            assert_eq!(e.code().as_deref(), Some("42501"), "{sql}: {e}")
        }
        other => panic!("{sql}: expected a privilege error, got {other:?}"),
    }
}

#[tokio::test]
async fn handlers_connect_as_an_application_role_that_cannot_change_the_schema() {
    let app = TestApp::start().await;
    let db = app.state.db().unwrap();
    let (user, superuser, creates_roles): (String, bool, bool) = sqlx::query_as(
        "SELECT rolname::text, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(db)
    .await
    .unwrap();
    assert!(user.ends_with("_app"), "connected as {user}");
    assert!(!superuser && !creates_roles);

    // Every other test drives the API through this role; here, what it must not do.
    for sql in [
        "CREATE TABLE intruder (id int)",
        "DROP TABLE books",
        "ALTER TABLE users ADD COLUMN intruder int",
        "TRUNCATE orders",
        "CREATE ROLE intruder",
        "SELECT * FROM _sqlx_migrations",
        "DELETE FROM _sqlx_migrations",
        "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ] {
        refused(db, sql).await;
    }
    let books: i64 = sqlx::query_scalar("SELECT count(*) FROM books")
        .fetch_one(db)
        .await
        .unwrap();
    assert!(books >= 0);

    // Running it again (every deploy does) sets the secret's password again, stored as
    // a SCRAM verifier (the local cluster trusts loopback, so the verifier is what shows it).
    let verifier = |pool: DbPool, role: String| async move {
        sqlx::query_scalar::<_, String>("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
            .bind(role)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let before = verifier(app.pool.clone(), user.clone()).await;
    bookshelf_api::ops::ensure_app_role(&app.pool, &user, "a-new-password-of-some-length")
        .await
        .unwrap();
    let after = verifier(app.pool.clone(), user.clone()).await;
    assert!(after.starts_with("SCRAM-SHA-256$"), "{after}");
    assert_ne!(before, after);
    refused(db, "CREATE TABLE intruder (id int)").await;
}

#[tokio::test]
async fn the_application_role_name_and_password_are_checked_before_use() {
    let app = TestApp::start().await;
    for (role, password) in [
        ("Robert'); DROP TABLE books;--", "long enough password"),
        ("UPPER", "long enough password"),
        ("fine_name", "short"),
    ] {
        assert!(
            bookshelf_api::ops::ensure_app_role(&app.pool, role, password)
                .await
                .is_err(),
            "{role}"
        );
    }
}

/// On a direct connection (`DB_POOLING=session`, the dev server) sqlx prepares each distinct
/// query once per connection as a named statement and reuses it (its statement cache).
/// Deployed (`DB_POOLING=transaction`) nothing is named: `pool::behind_a_transaction_pooler_…`.
#[tokio::test]
async fn statements_are_named_and_reused_per_connection() {
    let app = TestApp::start().await;
    let mut conn = app.state.db().unwrap().acquire().await.unwrap();
    const SQL: &str = "SELECT count(*) FROM books WHERE stock > $1";
    for _ in 0..3 {
        sqlx::query(SQL).bind(0).execute(&mut *conn).await.unwrap();
    }
    let prepared: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pg_prepared_statements WHERE statement = $1")
            .bind(SQL)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    assert_eq!(prepared.len(), 1, "prepared once, reused: {prepared:?}");
}
