//! One environment's key material, kept current across key rotations.
//!
//! A rotation (`bookshelf-dev keys --rotate`) publishes a new key and signs with it at
//! once. Every environment reads its keys again every `KEY_RELOAD_SECS`, so signers move to
//! the new key and verifiers learn retirements; a verifier that meets a `kid` it does not
//! know reads them at once, at most once per `UNKNOWN_KID_RELOAD` so forged `kid`s cannot
//! turn requests into Secrets Manager calls. A failed read keeps the keys in hand.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bookshelf_auth::keys::KEY_RELOAD_SECS;
use bookshelf_auth::{Claims, PublicKeys, SigningKeys, TokenError, TokenIssuer, TokenVerifier};
use bookshelf_config::ConfigError;

use crate::registry::KeyAccess;

/// The least time between two reads caused by unknown `kid`s.
pub const UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(10);

/// The keys in use: the issuer (signing functions only), the public set, its verifier.
pub struct KeySet {
    pub issuer: Option<TokenIssuer>,
    pub public: PublicKeys,
    pub verifier: TokenVerifier,
}

impl KeySet {
    /// An access token for `user` in session `sid` (signing functions only).
    pub fn issue(
        &self,
        user: uuid::Uuid,
        role: &str,
        sid: uuid::Uuid,
        now: i64,
    ) -> Result<String, bookshelf_http::ApiError> {
        self.issuer
            .as_ref()
            .ok_or_else(|| bookshelf_http::ApiError::Internal("this function has no signing key".into()))?
            .issue(user, role, sid, now)
            .map_err(bookshelf_http::ApiError::internal)
    }

    fn signing(keys: &SigningKeys) -> KeySet {
        let public = keys.public_keys().clone();
        KeySet {
            issuer: Some(TokenIssuer::new(keys)),
            verifier: TokenVerifier::new(&public),
            public,
        }
    }

    fn public(public: PublicKeys) -> KeySet {
        KeySet {
            issuer: None,
            verifier: TokenVerifier::new(&public),
            public,
        }
    }
}

/// Where the keys come from.
enum Source {
    /// Handed over once (the dev server, most tests): never read again.
    Fixed,
    /// The environment: the secrets named by `SIGNING_KEYS_SECRET_ARN` /
    /// `PUBLIC_KEYS_SECRET_ARN`, or their local stand-ins (`bookshelf_config`).
    Env(KeyAccess),
    /// A signing-key file (tests of rotation; `BOOKSHELF_KEYS_FILE` locally).
    File(PathBuf),
}

struct Reads {
    /// When the keys were last read (or a read last failed).
    at: Instant,
    /// When an unknown `kid` last caused a read.
    unknown_kid_at: Option<Instant>,
}

pub struct KeyRing {
    source: Source,
    current: RwLock<Arc<KeySet>>,
    reads: Mutex<Reads>,
    /// One read at a time: concurrent requests that find the keys stale wait for it.
    reading: tokio::sync::Mutex<()>,
    every: Duration,
    /// Reads done after the first (a figure for tests and logs).
    reloads: std::sync::atomic::AtomicU64,
}

impl KeyRing {
    fn with(source: Source, set: KeySet) -> KeyRing {
        KeyRing {
            source,
            current: RwLock::new(Arc::new(set)),
            reads: Mutex::new(Reads {
                at: Instant::now(),
                unknown_kid_at: None,
            }),
            reading: tokio::sync::Mutex::new(()),
            every: Duration::from_secs(KEY_RELOAD_SECS),
            reloads: Default::default(),
        }
    }

    /// Keys in hand, never read again.
    pub fn fixed(keys: &SigningKeys) -> KeyRing {
        Self::with(Source::Fixed, KeySet::signing(keys))
    }

    /// The keys a deployed function needs (`access`), read from the environment.
    pub async fn from_env(access: KeyAccess) -> Result<Option<KeyRing>, ConfigError> {
        let Some(set) = read_env(access).await? else {
            return Ok(None);
        };
        Ok(Some(Self::with(Source::Env(access), set)))
    }

    /// The signing keys of a key file, read again as it changes.
    pub fn from_file(path: PathBuf) -> Result<KeyRing, ConfigError> {
        let set = KeySet::signing(&bookshelf_config::signing_keys_from_file(&path)?);
        Ok(Self::with(Source::File(path), set))
    }

    /// Reads the keys again after `every` instead of `KEY_RELOAD_SECS` (tests).
    pub fn reading_every(mut self, every: Duration) -> KeyRing {
        self.every = every;
        self
    }

    pub fn reloads(&self) -> u64 {
        self.reloads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The keys, read again first if they are older than the reload period.
    pub async fn current(&self) -> Arc<KeySet> {
        if self.due(None) {
            self.reload(None).await;
        }
        self.snapshot()
    }

    /// Verifies an access token; a `kid` the keys do not know makes them be read again
    /// (rate-limited) before the token is refused: it may be a key rotated in since.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        match self.current().await.verifier.verify_cached(token) {
            Err(TokenError::UnknownKid(kid)) if self.due(Some(&kid)) => {
                if self.reload(Some(&kid)).await {
                    tracing::info!(kid, "read the keys again for an unknown kid");
                }
                self.snapshot().verifier.verify_cached(token)
            }
            other => other,
        }
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a read is due: the period is over, or (`unknown_kid`) a `kid` the keys do
    /// not know came after the rate limit's window.
    fn due(&self, unknown_kid: Option<&str>) -> bool {
        if matches!(self.source, Source::Fixed) {
            return false;
        }
        let reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
        match unknown_kid {
            None => reads.at.elapsed() >= self.every,
            Some(kid) => {
                reads
                    .unknown_kid_at
                    .is_none_or(|at| at.elapsed() >= UNKNOWN_KID_RELOAD)
                    && !self.snapshot().verifier.knows(kid)
            }
        }
    }

    /// Reads the keys if still due once this task may read; whether it read.
    async fn reload(&self, unknown_kid: Option<&str>) -> bool {
        let _reading = self.reading.lock().await;
        if !self.due(unknown_kid) {
            return false;
        }
        {
            // Marked before the read: a failing source is tried once per period (or
            // window), not once per request.
            let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
            reads.at = Instant::now();
            if unknown_kid.is_some() {
                reads.unknown_kid_at = Some(Instant::now());
            }
        }
        let read = match &self.source {
            Source::Fixed => return false,
            Source::Env(access) => read_env(*access).await,
            Source::File(path) => {
                bookshelf_config::signing_keys_from_file(path).map(|keys| Some(KeySet::signing(&keys)))
            }
        };
        match read {
            Ok(Some(set)) => {
                // Swapped only when something changed: a new verifier starts with an empty
                // cache of verified tokens, which a periodic read must not throw away.
                let current = self.snapshot();
                let signer = |s: &KeySet| s.issuer.as_ref().map(|i| i.kid().to_string());
                if set.public != current.public || signer(&set) != signer(&current) {
                    let kids: Vec<&str> = set.public.keys.iter().map(|k| k.kid.as_str()).collect();
                    tracing::info!(?kids, "keys changed");
                    *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
                }
                self.reloads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::error!(error = %bookshelf_http::error_chain(&e), "keys not read again; keeping those in hand");
                false
            }
        }
    }
}

async fn read_env(access: KeyAccess) -> Result<Option<KeySet>, ConfigError> {
    Ok(match access {
        KeyAccess::Signing => Some(KeySet::signing(&bookshelf_config::signing_keys().await?)),
        KeyAccess::Public => Some(KeySet::public(bookshelf_config::public_keys().await?)),
        KeyAccess::None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &std::path::Path, keys: &SigningKeys) {
        std::fs::write(path, keys.to_json()).unwrap();
    }

    #[tokio::test]
    async fn a_verifier_learns_a_rotated_in_key_from_its_kid_at_most_once_per_window() {
        let dir = std::env::temp_dir().join(format!("keyring-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("signing.json");
        let old = SigningKeys::generate();
        write(&path, &old);
        // A signer that reads at every use, a verifier that would wait the full period.
        let signer = KeyRing::from_file(path.clone())
            .unwrap()
            .reading_every(Duration::ZERO);
        let verifier = KeyRing::from_file(path.clone()).unwrap();
        let (user, sid) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let now = chrono::Utc::now().timestamp();
        let issue = |set: Arc<KeySet>| set.issue(user, "user", sid, now).unwrap();
        let before = issue(signer.current().await);

        let rotated = old.rotated(now, bookshelf_auth::keys::ROTATION_OVERLAP_SECS);
        write(&path, &rotated);
        let after = issue(signer.current().await);
        assert_ne!(before, after);
        assert_eq!(verifier.verify(&before).await.unwrap().sub, user);
        assert_eq!(verifier.reloads(), 0, "a known kid reads nothing");
        assert_eq!(verifier.verify(&after).await.unwrap().sub, user);
        assert_eq!(verifier.reloads(), 1, "the unknown kid read the keys once");
        assert_eq!(
            verifier.verify(&before).await.unwrap().sub,
            user,
            "both keys in the overlap"
        );

        // Forged kids within the window read nothing more.
        let stranger = SigningKeys::generate();
        let forged = TokenIssuer::new(&stranger).issue(user, "user", sid, now).unwrap();
        for _ in 0..5 {
            assert!(matches!(
                verifier.verify(&forged).await,
                Err(TokenError::UnknownKid(_))
            ));
        }
        assert_eq!(verifier.reloads(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
