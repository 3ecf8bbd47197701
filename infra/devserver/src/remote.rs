//! The deployed shape, locally: each function a pool of execution environments in processes
//! of their own (the release binaries under AWS's Runtime Interface Emulator), each serving
//! one invocation at a time, as Lambda runs them. The gateway hands them the same events it
//! hands the in-process handlers, and caches the authorizer's answers as API Gateway does.
//! `make scale` (scripts/scale.py) starts the environments and measures through them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;

/// RIE's invocation path (the one Lambda's own Invoke API uses).
const INVOKE: &str = "/2015-03-31/functions/function/invocations";

/// One function's environments: their invocation URLs, the idle ones in `idle`.
struct Environments {
    idle: Mutex<Vec<String>>,
    available: Semaphore,
}

/// Why an invocation gave no result.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("no environments for {0}")]
    Unknown(String),
    /// The function failed (an error it returned, a crash, its timeout), as Lambda reports it.
    #[error("{kind}: {message}")]
    Function { kind: String, message: String },
    #[error("invoking: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("decoding the function's result: {0}")]
    Decode(#[from] serde_json::Error),
}

/// An environment taken from the idle list, put back when dropped (a caller that gave up
/// included), before its turn is released.
struct Lease<'a> {
    url: String,
    envs: &'a Environments,
}

impl<'a> Lease<'a> {
    fn take(envs: &'a Environments) -> Lease<'a> {
        let url = envs
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .expect("a turn means an idle environment");
        Lease { url, envs }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.envs
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(std::mem::take(&mut self.url));
    }
}

pub struct Remote {
    client: reqwest::Client,
    functions: HashMap<String, Environments>,
    /// Authorization header → (when, the authorizer's answer), for cached routes.
    answers: Mutex<HashMap<Vec<u8>, (Instant, serde_json::Value)>>,
    ttl: Duration,
}

impl Remote {
    /// `environments`: function → the base URLs (`http://127.0.0.1:PORT`) of its environments.
    pub fn new(environments: HashMap<String, Vec<String>>, authorizer_ttl: Duration) -> Remote {
        let functions = environments
            .into_iter()
            .map(|(name, urls)| {
                let available = Semaphore::new(urls.len());
                let idle = urls.into_iter().map(|u| format!("{u}{INVOKE}")).collect();
                (
                    name,
                    Environments {
                        idle: Mutex::new(idle),
                        available,
                    },
                )
            })
            .collect();
        Remote {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("a plain HTTP client builds"),
            functions,
            answers: Mutex::new(HashMap::new()),
            ttl: authorizer_ttl,
        }
    }

    /// Reads `{"function": ["http://127.0.0.1:PORT", ...], ...}`.
    pub fn from_file(path: &std::path::Path, authorizer_ttl: Duration) -> Result<Remote> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let environments: HashMap<String, Vec<String>> =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Remote::new(environments, authorizer_ttl))
    }

    pub fn has(&self, function: &str) -> bool {
        self.functions.contains_key(function)
    }

    /// Invokes `function` with `event` on an idle environment, waiting for one to be idle:
    /// one invocation per environment at a time, as Lambda's.
    pub async fn invoke<T: DeserializeOwned>(
        &self,
        function: &str,
        event: &impl Serialize,
    ) -> Result<T, InvokeError> {
        let envs = self
            .functions
            .get(function)
            .ok_or_else(|| InvokeError::Unknown(function.into()))?;
        let _turn = envs
            .available
            .acquire()
            .await
            .map_err(|_| InvokeError::Unknown(function.into()))?;
        let lease = Lease::take(envs);
        let outcome = self.post(&lease.url, event).await;
        drop(lease);
        let value = outcome?;
        // A failed invocation comes back as Lambda's error object, not the handler's result.
        if value.get("errorType").is_some() || value.get("errorMessage").is_some() {
            let text = |k: &str| {
                value
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            return Err(InvokeError::Function {
                kind: text("errorType"),
                message: text("errorMessage"),
            });
        }
        Ok(serde_json::from_value(value)?)
    }

    async fn post(&self, url: &str, event: &impl Serialize) -> Result<serde_json::Value, InvokeError> {
        let response = self.client.post(url).json(event).send().await?;
        Ok(response.json().await?)
    }

    /// The authorizer's cached answer for this identity, if fresh.
    pub fn cached_answer(&self, identity: &[u8]) -> Option<serde_json::Value> {
        let answers = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        answers
            .get(identity)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn remember_answer(&self, identity: Vec<u8>, answer: serde_json::Value) {
        if self.ttl.is_zero() {
            return;
        }
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(identity, (Instant::now(), answer));
    }
}
