use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;

use crate::coalesce::{fan_out, Coalesced, MAX_ENTRIES};
use crate::{QueueError, Received};

fn err<E: std::error::Error + Send + Sync + 'static>(e: aws_sdk_sqs::error::SdkError<E>) -> QueueError {
    QueueError::Sqs(Arc::new(e))
}

/// The deployed bounds: 1 s to connect, 1.2 s per attempt, two attempts, `SEND_BUDGET` in all.
fn bounded(config: aws_sdk_sqs::config::Builder) -> aws_sdk_sqs::config::Builder {
    config
        .timeout_config(
            aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_millis(1200))
                .operation_timeout(SqsQueue::SEND_BUDGET)
                .build(),
        )
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::standard().with_max_attempts(2))
}

/// An SQS-compatible endpoint on this machine, with fixed test credentials and region.
fn local_config(endpoint: &str) -> aws_sdk_sqs::config::Builder {
    aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .http_client(bookshelf_config::https_client())
        .endpoint_url(endpoint)
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "local",
        ))
}

/// A queue on SQS or an SQS-compatible endpoint.
#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    /// Shared by every clone: the sends, and the acknowledgements, waiting to go together.
    sends: Arc<Coalesced<String>>,
    deletes: Arc<Coalesced<Vec<String>>>,
}

impl SqsQueue {
    pub fn new(client: Client, url: String) -> SqsQueue {
        SqsQueue {
            client,
            url,
            sends: Arc::new(Coalesced::new(
                |queue, bodies| Box::pin(async move { queue.send_now(bodies).await }),
                |_| 1,
            )),
            deletes: Arc::new(Coalesced::new(
                |queue, batches| Box::pin(async move { queue.delete_now(batches).await }),
                Vec::len,
            )),
        }
    }

    /// The deployed queue: `QUEUE_URL`, with the execution environment's shared SDK config
    /// and the send bounds of `send_timeouts`.
    pub async fn from_env() -> Option<SqsQueue> {
        let url = bookshelf_config::settings().ok()?.deployed.queue_url.clone();
        Self::from_url(url).await
    }

    /// The deployed queue at `url` (`QUEUE_URL` for orders, `ACTIVITY_QUEUE_URL` for the
    /// feed), if there is one.
    pub async fn from_url(url: Option<String>) -> Option<SqsQueue> {
        let url = url?;
        let mut config = aws_sdk_sqs::config::Builder::from(bookshelf_config::aws());
        let sqs_endpoint = bookshelf_config::settings()
            .ok()
            .and_then(|s| s.local.aws_endpoint_url_sqs.clone());
        if let Some(endpoint) = sqs_endpoint {
            config.set_endpoint_url(Some(endpoint));
        }
        Some(SqsQueue::new(Client::from_conf(bounded(config).build()), url))
    }

    /// How long a deployed send may take, all attempts included: well under the 10 s
    /// function timeout, so an SQS that hangs costs a request at most this and the order
    /// (already committed) still answers 202; the relay sends it later. The SDK's default
    /// has no operation timeout at all.
    pub const SEND_BUDGET: Duration = Duration::from_secs(3);

    /// A client for `endpoint` with the deployed send bounds (tests: a server that hangs).
    pub fn bounded_client(endpoint: &str) -> Client {
        Client::from_conf(bounded(local_config(endpoint)).build())
    }

    /// A client for an SQS-compatible endpoint on this machine (moto), with fixed test
    /// credentials and region, and tight timeouts so an outage fails fast.
    pub fn local_client(endpoint: &str) -> Client {
        let config = local_config(endpoint)
            .timeout_config(
                aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::standard().with_max_attempts(2))
            .build();
        Client::from_conf(config)
    }

    /// Creates (or finds) `name` and its dead-letter queue `name-dlq` with a redrive policy
    /// of `max_receive` deliveries, as `template.yaml` configures them when deployed.
    pub async fn ensure(
        client: Client,
        name: &str,
        visibility_secs: u32,
        max_receive: u32,
    ) -> Result<(SqsQueue, SqsQueue), QueueError> {
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .map_err(err)?
            .queue_url
            .unwrap_or_default();
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(err)?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        let redrive =
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}).to_string();
        let url = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::VisibilityTimeout, visibility_secs.to_string())
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .map_err(err)?
            .queue_url
            .unwrap_or_default();
        Ok((SqsQueue::new(client.clone(), url), SqsQueue::new(client, dlq_url)))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one message: alone, or with others sent at the same time (`coalesce`).
    pub async fn send(&self, body: &str) -> Result<(), QueueError> {
        // Boxed: the SDK's request future inside is deep enough, one level down, to overflow
        // the compiler's layout depth in the binaries that embed a send.
        Box::pin(self.sends.run(self, body.to_owned())).await
    }

    /// One request for the bodies of several `send`s.
    async fn send_now(&self, bodies: Vec<String>) -> Vec<Result<(), QueueError>> {
        match bodies.as_slice() {
            [one] => vec![self.send_one(one).await],
            many => {
                let refs: Vec<&str> = many.iter().map(String::as_str).collect();
                self.send_batch(&refs)
                    .await
                    .unwrap_or_else(|e| fan_out(e, refs.len()))
            }
        }
    }

    async fn send_one(&self, body: &str) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Sends up to 10 bodies in one request: the request's error, or each body's outcome
    /// (each entry of a batch succeeds or fails on its own).
    pub async fn send_batch(&self, bodies: &[&str]) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(*b)
                    .build()
                    .map_err(|e| QueueError::Sqs(Arc::new(e)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(err)?;
        // An entry SQS reports neither way is not known to be sent: the relay sends it again.
        let mut outcomes: Vec<Result<(), QueueError>> = (0..bodies.len())
            .map(|_| {
                Err(QueueError::Refused {
                    code: "Unreported".into(),
                    message: "the batch answer did not mention it".into(),
                })
            })
            .collect();
        let slot = |id: &str| id.parse::<usize>().ok().filter(|i| *i < bodies.len());
        for entry in out.successful() {
            if let Some(i) = slot(entry.id()) {
                outcomes[i] = Ok(());
            }
        }
        for entry in out.failed() {
            if let Some(i) = slot(entry.id()) {
                outcomes[i] = Err(QueueError::Refused {
                    code: entry.code().to_string(),
                    message: entry.message().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(outcomes)
    }

    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(err)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Received {
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                message_id: m.message_id.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .collect())
    }

    pub async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Deletes up to 10 messages, as Lambda's event source mapping does: in one request,
    /// with the deletes of other batches made at the same time (`coalesce`).
    /// A message the queue could not delete is reported, not retried: it becomes visible
    /// again and is redelivered, which processing tolerates.
    pub async fn delete_batch(&self, receipts: &[&str]) -> Result<(), QueueError> {
        if receipts.is_empty() {
            return Ok(());
        }
        let receipts: Vec<String> = receipts.iter().map(|r| r.to_string()).collect();
        Box::pin(self.deletes.run(self, receipts)).await
    }

    /// One DeleteMessageBatch for the receipts of several `delete_batch`es: each told of
    /// its own receipts' failures.
    async fn delete_now(&self, batches: Vec<Vec<String>>) -> Vec<Result<(), QueueError>> {
        // A receipt twice in one request is refused as a whole; each goes once.
        let mut receipts: Vec<&str> = batches.iter().flatten().map(String::as_str).collect();
        receipts.sort_unstable();
        receipts.dedup();
        let failed = match self.delete_entries(&receipts).await {
            Ok(failed) => failed,
            Err(e) => return fan_out(e, batches.len()),
        };
        batches
            .iter()
            .map(|batch| {
                // A refusal SQS did not tie to a receipt we sent counts against every batch.
                let mine: Vec<&(String, String, String)> = failed
                    .iter()
                    .filter(|(r, _, _)| r.is_empty() || batch.contains(r))
                    .collect();
                match mine.first() {
                    None => Ok(()),
                    Some((_, code, message)) => Err(QueueError::PartialDelete {
                        failed: mine.len(),
                        attempted: batch.len(),
                        code: code.clone(),
                        message: message.clone(),
                    }),
                }
            })
            .collect()
    }

    /// Deletes up to `MAX_ENTRIES` receipts in one request: the request's error, or the
    /// receipts SQS refused, each with its error code and message.
    async fn delete_entries(&self, receipts: &[&str]) -> Result<Vec<(String, String, String)>, QueueError> {
        debug_assert!(receipts.len() <= MAX_ENTRIES);
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*r)
                    .build()
                    .map_err(|e| QueueError::Sqs(Arc::new(e)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(err)?;
        Ok(out
            .failed
            .into_iter()
            .map(|f| {
                let receipt =
                    f.id.parse::<usize>()
                        .ok()
                        .and_then(|i| receipts.get(i))
                        .map_or_else(String::new, |r| r.to_string());
                (receipt, f.code, f.message.unwrap_or_default())
            })
            .collect())
    }
}
