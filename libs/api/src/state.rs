use bookshelf_auth::{PublicKeys, SigningKeys, TokenIssuer, TokenVerifier};
use bookshelf_config::ConfigError;
use bookshelf_http::ApiError;
use bookshelf_queue::{Queue, SqsQueue};
use sqlx::PgPool;

use crate::registry::KeyAccess;

/// Everything a handler needs, built once per execution environment (outside the handler).
pub struct AppState {
    pub db: PgPool,
    /// Where new orders are announced; `None` leaves them to the outbox relay.
    pub queue: Option<Queue>,
    /// Count failed logins from loopback addresses per address too. Off by default: locally
    /// every client is 127.0.0.1 (deployed, API Gateway never reports loopback).
    pub throttle_loopback: bool,
    issuer: Option<TokenIssuer>,
    public: Option<(PublicKeys, TokenVerifier)>,
}

impl AppState {
    /// Everything, from keys in hand: the local gateway and tests.
    pub fn new(db: PgPool, keys: &SigningKeys) -> AppState {
        let public = keys.public_keys().clone();
        let verifier = TokenVerifier::new(&public);
        AppState {
            db,
            queue: None,
            throttle_loopback: false,
            issuer: Some(TokenIssuer::new(keys)),
            public: Some((public, verifier)),
        }
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
    /// that never signs never holds the private key.
    pub async fn from_env(keys: KeyAccess, max_connections: u32) -> Result<AppState, ConfigError> {
        let db = bookshelf_storage::pool(bookshelf_config::database().await?, max_connections);
        // Only the functions that send (orders-create, outbox-relay) have QUEUE_URL.
        let queue = SqsQueue::from_env().await.map(Queue::Sqs);
        let state = match keys {
            KeyAccess::Signing => AppState::new(db, &bookshelf_config::signing_keys().await?),
            KeyAccess::Public => {
                let public = bookshelf_config::public_keys().await?;
                let verifier = TokenVerifier::new(&public);
                AppState {
                    db,
                    queue: None,
                    throttle_loopback: false,
                    issuer: None,
                    public: Some((public, verifier)),
                }
            }
            KeyAccess::None => AppState {
                db,
                queue: None,
                throttle_loopback: false,
                issuer: None,
                public: None,
            },
        };
        Ok(AppState { queue, ..state })
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
