use std::sync::Arc;

use bookshelf_auth::SigningKeys;
use bookshelf_config::ConfigError;
use bookshelf_http::ApiError;
use bookshelf_queue::{Queue, SqsQueue};
use bookshelf_storage::DbPool;

use crate::keyring::{KeyRing, KeySet};
use crate::registry::KeyAccess;

/// A pool and, deployed, what signs in its new connections.
struct Db {
    pool: DbPool,
    /// The IAM sign-in and when its token was made: tokens expire, connections do not.
    iam: Option<(bookshelf_config::IamAuth, std::sync::Mutex<std::time::SystemTime>)>,
}

/// A token older than this is replaced before the pool may need it for a new connection,
/// well inside `IamAuth::TOKEN_LIFETIME`.
const TOKEN_REFRESH_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

fn refresh_token(
    pool: &DbPool,
    auth: &bookshelf_config::IamAuth,
    signed_at: &std::sync::Mutex<std::time::SystemTime>,
) {
    let now = std::time::SystemTime::now();
    let mut signed_at = signed_at
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if now.duration_since(*signed_at).unwrap_or_default() < TOKEN_REFRESH_AFTER {
        return;
    }
    match auth.options(now) {
        Ok(options) => {
            pool.set_connect_options(options);
            *signed_at = now;
        }
        // Signing is local and only fails on malformed settings, which the start-up
        // signing would have refused; keep the old token and say so.
        Err(e) => {
            tracing::error!(error = %bookshelf_http::error_chain(&e), "IAM database token not refreshed")
        }
    }
}

/// Everything a handler needs, built once per execution environment (outside the handler).
pub struct AppState {
    /// `None` in functions that never query (registry: `database: false`): they get no
    /// credentials, no VPC and no pool deployed.
    db: Option<Db>,
    /// Where new orders are announced; `None` leaves them to the outbox relay.
    pub queue: Option<Queue>,
    /// Where new activities are announced for the feed fan-out; `None` leaves them to the
    /// outbox relay.
    pub activity_queue: Option<Queue>,
    /// Count failed logins from loopback addresses per address too. Off by default: locally
    /// every client is 127.0.0.1 (deployed, API Gateway never reports loopback).
    pub throttle_loopback: bool,
    /// Registrations allowed per source address per 5 minutes, any address (loopback too).
    /// `None` (the default, and deployed, where the WAF's rate rule does it): unlimited, as
    /// test suites register thousands of users from 127.0.0.1.
    pub register_limit: Option<i32>,
    /// The keys that sign (auth functions) or verify (authorizer, JWKS) access tokens.
    keys: Option<KeyRing>,
    /// Where import files are uploaded and read (S3 deployed, a directory locally).
    objects: Option<bookshelf_objects::Objects>,
    /// Locally, where the stand-in for S3 announces uploads (deployed, S3 itself does).
    pub import_queue: Option<Queue>,
    /// Business and health metrics (EMF deployed, the debug log locally).
    pub metrics: bookshelf_config::metrics::Metrics,
    /// Which browser origins may read the responses (`ALLOWED_ORIGINS`).
    pub cors: bookshelf_http::Cors,
    /// The webhook key and queues, where the function has them.
    pub webhooks: crate::webhooks::Hooks,
}

impl AppState {
    /// Everything, from keys in hand: the local gateway and tests.
    pub fn new(db: DbPool, keys: &SigningKeys) -> AppState {
        AppState {
            db: Some(Db { pool: db, iam: None }),
            queue: None,
            activity_queue: None,
            throttle_loopback: false,
            register_limit: None,
            keys: Some(KeyRing::fixed(keys)),
            objects: None,
            import_queue: None,
            metrics: bookshelf_config::metrics::Metrics::from_env(),
            cors: allowed_origins(),
            webhooks: crate::webhooks::Hooks::local(bookshelf_auth::sealed::SealingKey::from_secret(
                &bookshelf_auth::sealed::SealingKey::random_secret(),
            )),
        }
    }

    pub fn with_webhooks(mut self, hooks: crate::webhooks::Hooks) -> AppState {
        self.webhooks = hooks;
        self
    }

    /// Deployed: the sealing key (`key`: only the functions that seal or open), and the
    /// webhooks and results queues where named (WEBHOOK_QUEUE_URL, WEBHOOK_RESULTS_QUEUE_URL).
    pub async fn with_webhooks_from_env(mut self, key: bool) -> Result<AppState, ConfigError> {
        if key {
            let text =
                bookshelf_config::webhook_key(bookshelf_auth::sealed::SealingKey::random_secret).await?;
            self.webhooks.key = Some(Arc::new(bookshelf_auth::sealed::SealingKey::from_secret(&text)));
        }
        let settings = bookshelf_config::settings()?;
        self.webhooks.deliveries = SqsQueue::from_url(settings.deployed.webhook_queue_url.clone())
            .await
            .map(Queue::Sqs);
        self.webhooks.results = SqsQueue::from_url(settings.deployed.webhook_results_queue_url.clone())
            .await
            .map(Queue::Sqs);
        Ok(self)
    }

    pub fn with_cors(mut self, cors: bookshelf_http::Cors) -> AppState {
        self.cors = cors;
        self
    }

    /// The queue that carries activities to the feed fan-out.
    pub fn with_activity_queue(mut self, queue: Queue) -> AppState {
        self.activity_queue = Some(queue);
        self
    }

    pub fn with_queue(mut self, queue: Queue) -> AppState {
        self.queue = Some(queue);
        self
    }

    pub fn with_register_limit(mut self, limit: Option<i32>) -> AppState {
        self.register_limit = limit;
        self
    }

    pub fn throttling_loopback(mut self, on: bool) -> AppState {
        self.throttle_loopback = on;
        self
    }

    /// A Lambda's state: a pool when the function queries (`database`), no keys and no
    /// queues; `with_keys_from_env` and `with_queues_from_env` add those, each called only
    /// by the binaries that need them, so that no other binary links a Secrets Manager or
    /// SQS client.
    pub fn from_env(database: bool, max_connections: u32) -> Result<AppState, ConfigError> {
        let db = match database {
            false => None,
            true => {
                let pooling = match bookshelf_config::transaction_pooling()? {
                    true => bookshelf_storage::Pooling::Transaction,
                    false => bookshelf_storage::Pooling::Session,
                };
                let timeout = bookshelf_config::db_connect_timeout()?;
                let pool =
                    |options| bookshelf_storage::DbPool::build(options, max_connections, timeout, pooling);
                Some(match bookshelf_config::database()? {
                    bookshelf_config::Database::Url(options) => Db {
                        pool: pool(options),
                        iam: None,
                    },
                    bookshelf_config::Database::Iam(auth) => {
                        let now = std::time::SystemTime::now();
                        Db {
                            pool: pool(auth.options(now)?),
                            iam: Some((auth, std::sync::Mutex::new(now))),
                        }
                    }
                })
            }
        };
        Ok(AppState {
            db,
            queue: None,
            activity_queue: None,
            throttle_loopback: false,
            register_limit: None,
            keys: None,
            objects: None,
            import_queue: None,
            metrics: bookshelf_config::metrics::Metrics::from_env(),
            cors: allowed_origins(),
            webhooks: crate::webhooks::Hooks::default(),
        })
    }

    /// Only the key material the function needs (`keys`), so a function that never signs
    /// never holds the private key. Read again every few minutes (see `keyring`).
    pub async fn with_keys_from_env(mut self, keys: KeyAccess) -> Result<AppState, ConfigError> {
        self.keys = KeyRing::from_env(keys).await?;
        Ok(self)
    }

    /// Keys from elsewhere (tests of key rotation).
    pub fn with_key_ring(mut self, keys: KeyRing) -> AppState {
        self.keys = Some(keys);
        self
    }

    /// The SQS queues named by QUEUE_URL (orders-create, the relay) and ACTIVITY_QUEUE_URL
    /// (the functions whose actions make activities, the relay). A separate step, called
    /// only by the binaries that send, so that every other binary links no SQS client.
    pub async fn with_queues_from_env(mut self) -> AppState {
        self.queue = SqsQueue::from_env().await.map(Queue::Sqs);
        let activities = bookshelf_config::settings()
            .ok()
            .and_then(|s| s.deployed.activity_queue_url.clone());
        self.activity_queue = SqsQueue::from_url(activities).await.map(Queue::Sqs);
        self
    }

    /// The upload bucket (`UPLOAD_BUCKET`): a separate step, so that only the functions
    /// that upload or import link an S3 client.
    pub fn with_objects_from_env(mut self) -> AppState {
        self.objects = bookshelf_objects::Objects::from_env();
        self
    }

    pub fn with_objects(mut self, objects: bookshelf_objects::Objects) -> AppState {
        self.objects = Some(objects);
        self
    }

    /// Where the local stand-in for S3 announces uploads.
    pub fn with_import_queue(mut self, queue: Queue) -> AppState {
        self.import_queue = Some(queue);
        self
    }

    /// The object store, in a function that has one.
    pub fn objects(&self) -> Result<&bookshelf_objects::Objects, ApiError> {
        self.objects
            .as_ref()
            .ok_or_else(|| ApiError::Internal("this function has no upload bucket".into()))
    }

    /// The pool, in a function that has one.
    pub fn db(&self) -> Result<&DbPool, ApiError> {
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| ApiError::Internal("this function has no database".into()))?;
        if let Some((auth, signed_at)) = &db.iam {
            refresh_token(&db.pool, auth, signed_at);
        }
        Ok(&db.pool)
    }

    /// Replaces the pool (tests: a pool with other limits).
    pub fn with_db(mut self, db: DbPool) -> AppState {
        self.db = Some(Db { pool: db, iam: None });
        self
    }

    /// The key ring, in a function that has keys.
    pub fn keys(&self) -> Result<&KeyRing, ApiError> {
        self.keys
            .as_ref()
            .ok_or_else(|| ApiError::Internal("this function has no keys".into()))
    }

    /// The keys in use, read again first if they are due.
    pub async fn key_set(&self) -> Result<Arc<KeySet>, ApiError> {
        Ok(self.keys()?.current().await)
    }
}

fn allowed_origins() -> bookshelf_http::Cors {
    let origins = bookshelf_config::settings().map_or("", |s| s.deployed.allowed_origins.as_str());
    bookshelf_http::Cors::from_list(origins)
}
