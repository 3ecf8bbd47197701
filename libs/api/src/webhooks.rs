//! Webhooks: the `/webhooks` routes, and the three stages of a delivery.
//!
//! The events are written by the database in the transaction that made the change
//! (storage::webhooks). Deployed, a delivery crosses the VPC's edge twice:
//! - `webhook-dispatch` (in the VPC, scheduled) claims what is due, fixes its body, opens
//!   the webhook's sealed secret, signs, and queues the delivery on the webhooks queue;
//! - `webhook-sender` (outside the VPC: it alone reaches the internet, and it reaches no
//!   database) resolves the destination, checks every address, connects to the checked
//!   one, posts, and reports the outcome on the results queue;
//! - `webhook-recorder` (in the VPC) writes the attempt and schedules a retry, or disables
//!   the webhook after 20 consecutive failures.
//!
//! Locally the same three run in the dev server, on in-process queues.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use bookshelf_auth::sealed::SealingKey;
use bookshelf_domain::destination::{self, Refusal};
use bookshelf_domain::webhook::{
    self, Delivery, Webhook, WebhookInput, MAX_PER_USER, MAX_RESPONSE_BYTES, TIMEOUT_SECS,
};
use bookshelf_domain::PageParams;
use bookshelf_http::{
    json, no_content, path_uuid, query_param, read_json, ApiError, Body, Identity, Page, Request, Response,
};
use bookshelf_queue::Queue;
use bookshelf_storage::webhooks::{self, Attempt, Created, DueEvent};
use bookshelf_storage::StorageError;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::openapi::Problem;
use crate::AppState;

/// What a process needs of the webhook machinery (each part only where it is used).
#[derive(Clone)]
pub struct Hooks {
    /// Seals secrets (webhooks-create) and opens them (the dispatcher).
    pub key: Option<Arc<SealingKey>>,
    /// Dispatcher → sender.
    pub deliveries: Option<Queue>,
    /// Sender → recorder.
    pub results: Option<Queue>,
    /// Locally, receivers on 127.0.0.1 / localhost over http are allowed.
    pub allow_loopback: bool,
    /// The retry schedule's unit: a minute deployed, a second locally.
    pub retry_unit_secs: f64,
}

impl Default for Hooks {
    fn default() -> Hooks {
        Hooks {
            key: None,
            deliveries: None,
            results: None,
            allow_loopback: false,
            retry_unit_secs: 60.0,
        }
    }
}

impl Hooks {
    /// The dev server's and the tests': a key of their own, loopback receivers, seconds.
    pub fn local(key: SealingKey) -> Hooks {
        Hooks {
            key: Some(Arc::new(key)),
            allow_loopback: true,
            retry_unit_secs: 1.0,
            ..Hooks::default()
        }
    }

    fn key(&self) -> Result<&SealingKey, ApiError> {
        self.key
            .as_deref()
            .ok_or_else(|| ApiError::Internal("this function has no webhook key".into()))
    }
}

/// A new webhook, with the secret that signs its deliveries (shown only here).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    #[serde(flatten)]
    webhook: Webhook,
    /// Verify `Bookshelf-Signature` with it; it is never shown again.
    secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<Webhook>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pinged {
    /// The `ping` event's id (`Bookshelf-Event-Id` of its delivery).
    pub event_id: Uuid,
}

fn no_webhook(e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound => ApiError::not_found("webhook"),
        other => other.into(),
    }
}

/// Resolves `host` and refuses it when any address it has is not public (loopback too
/// when allowed). A name that does not resolve now is not refused here: the sender checks
/// again at every delivery, and it is the connection that must be safe.
async fn check_destination(url: &str, host: &str, port: u16, allow_loopback: bool) -> Result<(), ApiError> {
    let loopback = url::Url::parse(url).is_ok_and(|u| destination::loopback_for(&u, allow_loopback));
    let addrs =
        match tokio::time::timeout(Duration::from_secs(2), tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect::<Vec<IpAddr>>(),
            _ => return Ok(()),
        };
    if addrs.is_empty() {
        return Ok(());
    }
    destination::choose(&addrs, loopback)
        .map(|_| ())
        .map_err(|e| ApiError::Validation(vec![bookshelf_domain::FieldError::new("url", e.to_string())]))
}

fn secret() -> String {
    format!("whsec_{}", SealingKey::random_secret())
}

#[utoipa::path(post, path = "/webhooks", tag = "sync", security(("bearer" = [])),
    request_body = WebhookInput,
    responses(
        (status = 201, description = "The webhook, with its secret (shown only now)", body = CreatedWebhook,
            headers(("Location" = String, description = "/webhooks/{id}"))),
        (status = 400, description = "Bad url (not https, or a private address) or events", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The caller has 10 webhooks already", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let input: WebhookInput = read_json(&req)?;
    let hooks = &state.webhooks;
    let change = input.validate_create(hooks.allow_loopback)?;
    let (Some(url), Some(events)) = (change.url, change.events) else {
        return Err(ApiError::internal("a validated creation has a url and events"));
    };
    check_destination(&url.url, &url.host, url.port, hooks.allow_loopback).await?;
    let id = Uuid::new_v4();
    let secret = secret();
    let sealed = hooks.key()?.seal(secret.as_bytes(), id.as_bytes());
    let webhook = match webhooks::create(state.db()?, who.user_id, id, &url.url, &events, &sealed).await? {
        Created::Created(w) => w,
        Created::TooMany => {
            return Err(ApiError::Conflict(format!(
                "a user may have at most {MAX_PER_USER} webhooks"
            )))
        }
    };
    tracing::info!(webhook = %id, "webhook created");
    let mut r = json(StatusCode::CREATED, &CreatedWebhook { webhook, secret });
    if let Ok(v) = format!("/webhooks/{id}").parse() {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(r)
}

#[utoipa::path(get, path = "/webhooks", tag = "sync", security(("bearer" = [])),
    responses((status = 200, description = "The caller's webhooks (at most 10), oldest first", body = WebhookList)))]
pub async fn list(state: Arc<AppState>, _req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let items = webhooks::list(state.db()?, who.user_id).await?;
    Ok(json(StatusCode::OK, &WebhookList { items }))
}

#[utoipa::path(get, path = "/webhooks/{id}", tag = "sync", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A webhook of the caller's")),
    responses(
        (status = 200, description = "The webhook", body = Webhook),
        (status = 404, description = "No such webhook of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let w = webhooks::get(state.db()?, who.user_id, id)
        .await
        .map_err(no_webhook)?;
    Ok(json(StatusCode::OK, &w))
}

#[utoipa::path(patch, path = "/webhooks/{id}", tag = "sync", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A webhook of the caller's")),
    request_body = WebhookInput,
    responses(
        (status = 200, description = "The webhook as changed; `active: true` re-enables a disabled one", body = Webhook),
        (status = 400, description = "Bad url or events", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let input: WebhookInput = read_json(&req)?;
    let allow_loopback = state.webhooks.allow_loopback;
    let change = input.validate_patch(allow_loopback)?;
    if let Some(url) = &change.url {
        check_destination(&url.url, &url.host, url.port, allow_loopback).await?;
    }
    let w = webhooks::update(
        state.db()?,
        who.user_id,
        id,
        change.url.as_ref().map(|u| u.url.as_str()),
        change.events.as_deref(),
        change.active,
    )
    .await
    .map_err(no_webhook)?;
    Ok(json(StatusCode::OK, &w))
}

#[utoipa::path(delete, path = "/webhooks/{id}", tag = "sync", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A webhook of the caller's")),
    responses(
        (status = 204, description = "Deleted, with its pending events and delivery log"),
        (status = 404, description = "No such webhook of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    webhooks::delete(state.db()?, who.user_id, id)
        .await
        .map_err(no_webhook)?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/webhooks/{id}/ping", tag = "sync", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A webhook of the caller's")),
    responses(
        (status = 202, description = "A `ping` event is on its way", body = Pinged),
        (status = 404, description = "No such webhook of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ping(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let event_id = webhooks::ping(state.db()?, who.user_id, id)
        .await
        .map_err(no_webhook)?;
    Ok(json(StatusCode::ACCEPTED, &Pinged { event_id }))
}

#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "sync", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "A webhook of the caller's"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Its delivery attempts, newest first", body = DeliveryPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn deliveries(
    state: Arc<AppState>,
    req: Request,
    who: Identity,
) -> Result<Response<Body>, ApiError> {
    let id = path_uuid(&req, "id")?;
    let page = PageParams::parse(query_param(&req, "limit"), query_param(&req, "cursor"))?;
    let (items, next) = webhooks::deliveries(state.db()?, who.user_id, id, page)
        .await
        .map_err(no_webhook)?;
    Ok(json(
        StatusCode::OK,
        &Page {
            items,
            next_cursor: next.map(|c| c.encode()),
        },
    ))
}

/// A signed delivery, as the dispatcher queues it for the sender.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outgoing {
    pub event_id: Uuid,
    pub webhook_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub attempt: i32,
    pub url: String,
    pub body: String,
    pub signature: String,
}

/// Signs one due event: the body's bytes and `t=<now>` under the webhook's secret.
fn sign(key: &SealingKey, e: &DueEvent) -> Result<Outgoing, ApiError> {
    let secret = key
        .open(&e.secret_sealed, e.webhook_id.as_bytes())
        .map_err(ApiError::internal)?;
    let body = e.body.to_string();
    let t = chrono::Utc::now().timestamp();
    Ok(Outgoing {
        event_id: e.id,
        webhook_id: e.webhook_id,
        kind: e.kind.clone(),
        attempt: e.attempt,
        url: e.url.clone(),
        signature: webhook::signature(&secret, t, body.as_bytes()),
        body,
    })
}

/// One dispatcher pass: claims what is due, signs it, and queues it for the sender.
/// Returns how many were queued. An event whose message could not be queued is put back.
pub async fn dispatch(state: &AppState) -> Result<usize, ApiError> {
    let hooks = &state.webhooks;
    let queue = hooks
        .deliveries
        .as_ref()
        .ok_or_else(|| ApiError::Internal("no webhooks queue".into()))?;
    let key = hooks.key()?;
    let db = state.db()?;
    let mut sent = 0;
    loop {
        let due = webhooks::claim_due(db, 50).await?;
        if due.is_empty() {
            return Ok(sent);
        }
        let n = due.len();
        for e in due {
            let queued = match sign(key, &e) {
                Ok(out) => match serde_json::to_string(&out) {
                    Ok(body) => queue
                        .send(&body)
                        .await
                        .map_err(|e| bookshelf_http::error_chain(&e)),
                    Err(err) => Err(err.to_string()),
                },
                Err(err) => Err(err.to_string()),
            };
            match queued {
                Ok(()) => sent += 1,
                Err(error) => {
                    tracing::warn!(event = %e.id, webhook = %e.webhook_id, %error, "delivery not queued; put back");
                    webhooks::release(db, e.id).await?;
                    return Ok(sent);
                }
            }
        }
        if n < 50 {
            return Ok(sent);
        }
    }
}

/// Why a delivery failed before any answer.
fn refused(e: Refusal) -> String {
    format!("destination refused: {e}")
}

/// Posts one delivery: resolves the host now, checks every address, and connects to the
/// checked one only (no second lookup a rebinding DNS server could answer otherwise); no
/// redirects; 5 seconds for the whole answer; at most 1 KiB of it kept (in `error`).
pub async fn deliver(out: &Outgoing, allow_loopback: bool) -> Attempt {
    let started = Instant::now();
    let result = post(out, allow_loopback).await;
    let duration_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    let (succeeded, response_status, error) = match result {
        Ok((status, _)) if (200..300).contains(&status) => (true, Some(status), None),
        Ok((status, body)) => (false, Some(status), Some(format!("answered {status}: {body}"))),
        Err(e) => (false, None, Some(e)),
    };
    Attempt {
        event_id: out.event_id,
        webhook_id: out.webhook_id,
        kind: out.kind.clone(),
        attempt: out.attempt,
        succeeded,
        response_status,
        error,
        duration_ms,
    }
}

/// The client for `host` pinned to `addr`, the address just checked: one per (host,
/// address), kept, so deliveries to a receiver reuse its connections and nobody builds a
/// TLS configuration per delivery. The address is resolved and checked at every delivery
/// all the same; a new answer gets its own client. Bounded: emptied past 256.
fn client_for(host: &str, addr: SocketAddr) -> Result<reqwest::Client, String> {
    type Clients = std::sync::Mutex<std::collections::HashMap<(String, SocketAddr), reqwest::Client>>;
    static CLIENTS: std::sync::OnceLock<Clients> = std::sync::OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (host.to_string(), addr);
    if let Some(client) = clients.get(&key) {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(TIMEOUT_SECS))
        .resolve(host, addr)
        .build()
        .map_err(|e| format!("client: {e}"))?;
    if clients.len() >= 256 {
        clients.clear();
    }
    clients.insert(key, client.clone());
    Ok(client)
}

async fn post(out: &Outgoing, allow_loopback: bool) -> Result<(i32, String), String> {
    let (url, host, port) = destination::parse(&out.url, allow_loopback).map_err(refused)?;
    let addrs: Vec<IpAddr> = tokio::time::timeout(
        Duration::from_secs(TIMEOUT_SECS),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map_err(|_| "resolving the destination timed out".to_string())?
    .map_err(|e| format!("resolving the destination failed: {e}"))?
    .map(|a| a.ip())
    .collect();
    let ip = destination::choose(&addrs, destination::loopback_for(&url, allow_loopback)).map_err(refused)?;
    let client = client_for(&host, SocketAddr::new(ip, port))?;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "Bookshelf-Webhooks/1")
        .header("bookshelf-event-id", out.event_id.to_string())
        .header("bookshelf-event-type", &out.kind)
        .header("bookshelf-signature", &out.signature)
        .body(out.body.clone())
        .send()
        .await
        .map_err(|e| format!("delivery failed: {}", bookshelf_http::error_chain(&e)))?;
    let status = i32::from(response.status().as_u16());
    // Only the first KiB of the answer is read and kept.
    let mut kept = Vec::new();
    let mut response = response;
    while kept.len() < MAX_RESPONSE_BYTES {
        match tokio::time::timeout(Duration::from_secs(TIMEOUT_SECS), response.chunk()).await {
            Ok(Ok(Some(chunk))) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(MAX_RESPONSE_BYTES);
    Ok((status, String::from_utf8_lossy(&kept).into_owned()))
}

/// `webhook-sender`: posts each delivery of the batch and reports it on the results
/// queue. A report that cannot be queued fails its message (SQS redelivers it; the
/// receiver may see the event again, with the same id: at least once).
pub async fn send_batch(state: Arc<AppState>, event: SqsEvent) -> SqsBatchResponse {
    let hooks = &state.webhooks;
    let mut failures = Vec::new();
    let jobs = event.records.into_iter().map(|record| {
        let hooks = hooks.clone();
        async move {
            let id = record.message_id.clone().unwrap_or_default();
            let Some(out) = record.body.as_deref().and_then(|b| serde_json::from_str::<Outgoing>(b).ok()) else {
                tracing::error!(message_id = %id, "malformed delivery message; it will reach the DLQ");
                return Err(id);
            };
            let attempt = deliver(&out, hooks.allow_loopback).await;
            tracing::info!(event = %out.event_id, webhook = %out.webhook_id, attempt = out.attempt,
                succeeded = attempt.succeeded, status = attempt.response_status, ms = attempt.duration_ms, "webhook delivery");
            let Some(results) = hooks.results.as_ref() else {
                tracing::error!("no results queue");
                return Err(id);
            };
            let body = serde_json::to_string(&attempt).map_err(|_| id.clone())?;
            results.send(&body).await.map_err(|e| {
                tracing::warn!(error = %bookshelf_http::error_chain(&e), "delivery report not queued; the delivery will be retried");
                id.clone()
            })
        }
    });
    for outcome in futures::future::join_all(jobs).await {
        if let Err(id) = outcome {
            failures.push(id);
        }
    }
    crate::worker::batch_response(failures)
}

/// `webhook-recorder`: writes each reported attempt, the webhook's failure count, and
/// the event's next attempt (or its end).
pub async fn record_batch(state: Arc<AppState>, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    let unit = state.webhooks.retry_unit_secs;
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let Some(attempt) = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<Attempt>(b).ok())
        else {
            tracing::error!(message_id = %id, "malformed delivery report; it will reach the DLQ");
            failures.push(id);
            continue;
        };
        let db = match state.db() {
            Ok(db) => db,
            Err(_) => {
                failures.push(id);
                continue;
            }
        };
        let recorded = webhooks::record(db, &attempt, |n, age| webhook::retry_after(n, age, unit)).await;
        if let Err(e) = recorded {
            tracing::warn!(event = %attempt.event_id, error = %bookshelf_http::error_chain(&e), "delivery not recorded; retried");
            failures.push(id);
        }
    }
    crate::worker::batch_response(failures)
}
