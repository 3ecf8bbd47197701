//! The order queue: Amazon SQS (deployed, or any SQS-compatible endpoint such as moto
//! locally) or an in-process queue with the same semantics that matter here — at-least-once
//! delivery, a visibility timeout, a receive count, and a dead-letter queue after
//! `max_receive` deliveries.

mod coalesce;
mod memory;
mod sqs;

use std::sync::Arc;
use std::time::Duration;

pub use memory::MemoryQueue;
pub use sqs::SqsQueue;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// An SQS API call failed: unreachable, timed out, throttled or refused; the source
    /// says which.
    #[error("SQS request failed")]
    Sqs(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// SQS answered a batch send, but refused this entry.
    #[error("the queue refused the message: {code}: {message}")]
    Refused { code: String, message: String },
    /// SQS answered, but refused some entries of a batch.
    #[error("{failed} of {attempted} deletes failed, the first with {code}: {message}")]
    PartialDelete {
        failed: usize,
        attempted: usize,
        code: String,
        message: String,
    },
}

/// A message as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
}

#[derive(Clone)]
pub enum Queue {
    Sqs(SqsQueue),
    Memory(Arc<MemoryQueue>),
}

impl Queue {
    pub async fn send(&self, body: &str) -> Result<(), QueueError> {
        match self {
            Queue::Sqs(q) => q.send(body).await,
            Queue::Memory(q) => {
                q.send(body);
                Ok(())
            }
        }
    }

    /// Sends up to 10 bodies (one request on SQS): the request's error, or each body's
    /// outcome (a batch can be refused in part).
    pub async fn send_batch(&self, bodies: &[&str]) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        match self {
            Queue::Sqs(q) => q.send_batch(bodies).await,
            Queue::Memory(q) => Ok(bodies
                .iter()
                .map(|b| {
                    q.send(b);
                    Ok(())
                })
                .collect()),
        }
    }

    /// Up to `max` messages, waiting up to `wait` for the first (long polling).
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        match self {
            Queue::Sqs(q) => q.receive(max, wait).await,
            Queue::Memory(q) => Ok(q.receive(max, wait).await),
        }
    }

    /// Acknowledges a processed message.
    pub async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        match self {
            Queue::Sqs(q) => q.delete(receipt).await,
            Queue::Memory(q) => {
                q.delete(receipt);
                Ok(())
            }
        }
    }

    /// Acknowledges processed messages (at most 10, one request on SQS).
    pub async fn delete_batch(&self, receipts: &[&str]) -> Result<(), QueueError> {
        match self {
            Queue::Sqs(q) => q.delete_batch(receipts).await,
            Queue::Memory(q) => {
                receipts.iter().for_each(|r| q.delete(r));
                Ok(())
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Queue::Sqs(q) => format!("SQS {}", q.url()),
            Queue::Memory(_) => "in-process queue".into(),
        }
    }
}
