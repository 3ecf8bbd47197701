//! One isolated app per test: its own database (migrated from scratch), its own keys,
//! its own gateway on a free port.

use bookshelf_storage::DbPool;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use bookshelf_api::AppState;
use bookshelf_auth::SigningKeys;
use bookshelf_devserver::{ensure_admin, prepare_database, Server, Template};
use bookshelf_queue::{MemoryQueue, Queue};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

pub struct TestApp {
    pub url: String,
    pub state: Arc<AppState>,
    pub pool: DbPool,
    pub keys: SigningKeys,
    pub client: reqwest::Client,
    _server: Server,
}

pub const ADMIN_EMAIL: &str = "admin@test.local";
pub const ADMIN_PASSWORD: &str = "admin-password";

/// A response, read whole.
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json error with this status, and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string());
        if status == 401 {
            assert_eq!(self.header("www-authenticate"), Some("Bearer"));
        }
        &self.body
    }

    /// The fields named in a validation problem's `errors`, sorted.
    #[track_caller]
    pub fn bad_fields(&self) -> Vec<String> {
        let body = self.problem(400);
        let mut fields: Vec<String> = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors list in {body}"))
            .iter()
            .map(|e| e["field"].as_str().unwrap_or_default().to_string())
            .collect();
        fields.sort();
        fields
    }
}

impl TestApp {
    /// With an in-process queue and the local order worker, as `make dev` runs.
    pub async fn start() -> TestApp {
        let queue = Queue::Memory(Arc::new(MemoryQueue::new(Duration::from_secs(1), 3)));
        Self::start_with(Some(queue)).await
    }

    /// `queue: None` runs no worker: orders stay pending until a test processes them.
    pub async fn start_with(queue: Option<Queue>) -> TestApp {
        Self::start_custom(queue, |s| s).await
    }

    /// As `start_with`, with the state adjusted by `adjust` before the gateway starts.
    pub async fn start_custom(queue: Option<Queue>, adjust: impl FnOnce(AppState) -> AppState) -> TestApp {
        let base = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL must point at a PostgreSQL server; `make test` provides one");
        Self::start_on(&base, queue, adjust).await
    }

    /// On the PostgreSQL server at `base` (a test's own cluster, for fault tests).
    pub async fn start_on(
        base: &str,
        queue: Option<Queue>,
        adjust: impl FnOnce(AppState) -> AppState,
    ) -> TestApp {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(base)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let mut url = reqwest::Url::parse(base).expect("DATABASE_URL is a URL");
        url.set_path(&name);
        // The handlers connect as the application role, as deployed; `pool` is the owner's.
        let databases = prepare_database(url.as_str()).await.expect("migrate");
        let pool = databases.owner;
        ensure_admin(&pool, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .expect("admin");
        let keys = SigningKeys::generate();
        let template = Template::load(&repo_root().join("template.yaml")).expect("template");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        // A short visibility timeout so retries and the DLQ happen within a test.
        let mut state = AppState::new(databases.app, &keys);
        // Uploads go to a directory of the test's own, announced on an in-process queue.
        let uploads = std::env::temp_dir().join(format!("bookshelf-uploads-{name}"));
        state = bookshelf_devserver::local_imports(state, uploads).expect("upload store");
        state = bookshelf_devserver::local_webhooks(state, None);
        if let Some(q) = queue {
            // With a worker, the feed's fan-out runs too, on its own in-process queue.
            let activities = Queue::Memory(Arc::new(MemoryQueue::new(Duration::from_secs(1), 3)));
            state = state.with_queue(q).with_activity_queue(activities);
        }
        let state = Arc::new(adjust(state));
        let server = Server::start(listener, &template, state.clone())
            .await
            .expect("start gateway");
        TestApp {
            url: server.url(),
            state,
            pool,
            keys,
            client: reqwest::Client::new(),
            _server: server,
        }
    }

    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method, format!("{}{}", self.url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::read(req.send().await.expect("request")).await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.url, path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.expect("request")).await
    }

    async fn read(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.send(Method::POST, path, token, Some(body)).await
    }

    /// Registers a user and returns the auth response.
    pub async fn register(&self, email: &str, password: &str) -> Value {
        let r = self
            .post(
                "/auth/register",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    pub async fn login(&self, email: &str, password: &str) -> Value {
        let r = self
            .post("/auth/login", None, json!({"email": email, "password": password}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    pub async fn admin_token(&self) -> String {
        token(&self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await)
    }

    /// The prologue most tests share: the admin signed in, a reader registered as `email`
    /// (password `password123`), and one book with `fields` over the defaults.
    pub async fn scene(&self, email: &str, fields: Value) -> Scene {
        let admin = self.admin_token().await;
        let reader = token(&self.register(email, "password123").await);
        let book = crate::books::create_book(self, &admin, fields).await["id"]
            .as_str()
            .expect("a created book has an id")
            .to_string();
        Scene { admin, reader, book }
    }
}

/// What `TestApp::scene` sets up: tokens of the admin and the reader, and the book's id.
pub struct Scene {
    pub admin: String,
    pub reader: String,
    pub book: String,
}

/// Polls GET /orders/{id} until the order leaves `pending`, for at most `within`.
pub async fn settled(app: &TestApp, token: &str, id: &str, within: Duration) -> Value {
    let started = std::time::Instant::now();
    loop {
        let r = app.get(&format!("/orders/{id}"), Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        if r.body["status"] != "pending" {
            return r.body;
        }
        assert!(
            started.elapsed() < within,
            "order {id} still pending after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn token(auth: &Value) -> String {
    auth["accessToken"].as_str().expect("accessToken").to_string()
}

pub fn refresh_token(auth: &Value) -> String {
    auth["refreshToken"].as_str().expect("refreshToken").to_string()
}

/// Renames the test admin through `db` (a pool, or a transaction's connection, whose row
/// lock then holds until it ends).
pub async fn rename_admin<'e>(db: impl sqlx::PgExecutor<'e>, name: &str) {
    sqlx::query("UPDATE users SET display_name = $2 WHERE email = $1")
        .bind(ADMIN_EMAIL)
        .bind(name)
        .execute(db)
        .await
        .unwrap();
}
