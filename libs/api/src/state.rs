use bookshelf_auth::{PublicKeys, SigningKeys, TokenIssuer, TokenVerifier};
use bookshelf_config::ConfigError;
use bookshelf_http::ApiError;
use bookshelf_queue::{Queue, SqsQueue};
use sqlx::PgPool;

use crate::registry::KeyAccess;

/// Everything a handler needs, built once per execution environment (outside the handler).
pub struct AppState {
    /// `None` in functions that never query (registry: `database: false`): they get no
    /// credentials, no VPC and no pool deployed.
    db: Option<PgPool>,
    /// Where new orders are announced; `None` leaves them to the outbox relay.
    pub queue: Option<Queue>,
    /// Where new activities are announced for the feed fan-out; `None` leaves them to the
    /// outbox relay.
    pub activity_queue: Option<Queue>,
    /// Count failed logins from loopback addresses per address too. Off by default: locally
    /// every client is 127.0.0.1 (deployed, API Gateway never reports loopback).
    pub throttle_loopback: bool,
    issuer: Option<TokenIssuer>,
    public: Option<(PublicKeys, TokenVerifier)>,
    /// Business and health metrics (EMF deployed, the debug log locally).
    pub metrics: bookshelf_config::metrics::Metrics,
    /// Which browser origins may read the responses (`ALLOWED_ORIGINS`).
    pub cors: bookshelf_http::Cors,
}

impl AppState {
    /// Everything, from keys in hand: the local gateway and tests.
    pub fn new(db: PgPool, keys: &SigningKeys) -> AppState {
        let public = keys.public_keys().clone();
        let verifier = TokenVerifier::new(&public);
        AppState {
            db: Some(db),
            queue: None,
            activity_queue: None,
            throttle_loopback: false,
            issuer: Some(TokenIssuer::new(keys)),
            public: Some((public, verifier)),
            metrics: bookshelf_config::metrics::Metrics::from_env(),
            cors: allowed_origins(),
        }
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

    pub fn throttling_loopback(mut self, on: bool) -> AppState {
        self.throttle_loopback = on;
        self
    }

    /// A Lambda's state: only the key material its function needs is loaded, so a function
    /// that never signs never holds the private key, and one that never queries has no pool.
    pub async fn from_env(
        keys: KeyAccess,
        database: bool,
        max_connections: u32,
    ) -> Result<AppState, ConfigError> {
        let db = match database {
            true => Some(bookshelf_storage::pool(
                bookshelf_config::database().await?,
                max_connections,
            )),
            false => None,
        };
        let (issuer, public) = match keys {
            KeyAccess::Signing => {
                let signing = bookshelf_config::signing_keys().await?;
                let public = signing.public_keys().clone();
                let verifier = TokenVerifier::new(&public);
                (Some(TokenIssuer::new(&signing)), Some((public, verifier)))
            }
            KeyAccess::Public => {
                let public = bookshelf_config::public_keys().await?;
                let verifier = TokenVerifier::new(&public);
                (None, Some((public, verifier)))
            }
            KeyAccess::None => (None, None),
        };
        Ok(AppState {
            db,
            queue: None,
            activity_queue: None,
            throttle_loopback: false,
            issuer,
            public,
            metrics: bookshelf_config::metrics::Metrics::from_env(),
            cors: allowed_origins(),
        })
    }

    /// The SQS queues named by QUEUE_URL (orders-create, the relay) and ACTIVITY_QUEUE_URL
    /// (the functions whose actions make activities, the relay). A separate step, called
    /// only by the binaries that send, so that every other binary links no SQS client.
    pub async fn with_queues_from_env(mut self) -> AppState {
        self.queue = SqsQueue::from_env().await.map(Queue::Sqs);
        self.activity_queue = SqsQueue::from_env_var(bookshelf_config::env::Var::ActivityQueueUrl)
            .await
            .map(Queue::Sqs);
        self
    }

    /// The pool, in a function that has one.
    pub fn db(&self) -> Result<&PgPool, ApiError> {
        self.db
            .as_ref()
            .ok_or_else(|| ApiError::Internal("this function has no database".into()))
    }

    /// Replaces the pool (tests: a pool with other limits).
    pub fn with_db(mut self, db: PgPool) -> AppState {
        self.db = Some(db);
        self
    }

    pub fn issuer(&self) -> Result<&TokenIssuer, ApiError> {
        self.issuer
            .as_ref()
            .ok_or_else(|| ApiError::Internal("this function has no signing key".into()))
    }

    pub fn public_keys(&self) -> Result<&PublicKeys, ApiError> {
        self.public
            .as_ref()
            .map(|(k, _)| k)
            .ok_or_else(|| ApiError::Internal("this function has no public keys".into()))
    }

    pub fn verifier(&self) -> Result<&TokenVerifier, ApiError> {
        self.public
            .as_ref()
            .map(|(_, v)| v)
            .ok_or_else(|| ApiError::Internal("this function has no public keys".into()))
    }
}

fn allowed_origins() -> bookshelf_http::Cors {
    use bookshelf_config::env::{self, Var};
    bookshelf_http::Cors::from_list(&env::get_or(Var::AllowedOrigins, ""))
}
