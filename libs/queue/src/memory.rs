use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::Received;

struct Message {
    id: String,
    body: String,
    receipt: Option<String>,
    receive_count: u32,
    visible_at: Instant,
}

#[derive(Default)]
struct Inner {
    messages: VecDeque<Message>,
    dead: Vec<String>,
}

/// An in-process stand-in for an SQS queue with a redrive policy.
pub struct MemoryQueue {
    inner: Mutex<Inner>,
    arrived: Notify,
    visibility: Duration,
    max_receive: u32,
}

impl MemoryQueue {
    pub fn new(visibility: Duration, max_receive: u32) -> MemoryQueue {
        MemoryQueue {
            inner: Mutex::new(Inner::default()),
            arrived: Notify::new(),
            visibility,
            max_receive,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn send(&self, body: &str) {
        self.lock().messages.push_back(Message {
            id: uuid::Uuid::new_v4().to_string(),
            body: body.to_string(),
            receipt: None,
            receive_count: 0,
            visible_at: Instant::now(),
        });
        self.arrived.notify_waiters();
    }

    fn take(&self, max: usize) -> (Vec<Received>, Option<Instant>) {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut out = Vec::new();
        let mut next_visible: Option<Instant> = None;
        let mut i = 0;
        while i < inner.messages.len() && out.len() < max {
            let m = &mut inner.messages[i];
            if m.visible_at > now {
                next_visible = Some(next_visible.map_or(m.visible_at, |n| n.min(m.visible_at)));
                i += 1;
                continue;
            }
            if m.receive_count >= self.max_receive {
                // Received max_receive times and still here: the redrive policy moves it.
                if let Some(dead) = inner.messages.remove(i) {
                    tracing::warn!(message_id = %dead.id, receives = dead.receive_count, "message moved to the dead-letter queue");
                    inner.dead.push(dead.body);
                }
                continue;
            }
            m.receive_count += 1;
            m.visible_at = now + self.visibility;
            let receipt = uuid::Uuid::new_v4().to_string();
            m.receipt = Some(receipt.clone());
            out.push(Received {
                message_id: m.id.clone(),
                receipt,
                body: m.body.clone(),
                receive_count: m.receive_count,
            });
            i += 1;
        }
        (out, next_visible)
    }

    pub async fn receive(&self, max: usize, wait: Duration) -> Vec<Received> {
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.arrived.notified();
            let (got, next_visible) = self.take(max);
            if !got.is_empty() || Instant::now() >= deadline {
                return got;
            }
            let until = next_visible.map_or(deadline, |n| n.min(deadline));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Deletes by the receipt of the latest receive; a stale receipt does nothing.
    pub fn delete(&self, receipt: &str) {
        let mut inner = self.lock();
        inner.messages.retain(|m| m.receipt.as_deref() != Some(receipt));
    }

    /// Messages waiting (in flight included).
    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bodies in the dead-letter queue.
    pub fn dead_letters(&self) -> Vec<String> {
        self.lock().dead.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_again_after_visibility_then_dead_letters() {
        let q = MemoryQueue::new(Duration::from_millis(50), 2);
        q.send("a");
        let first = q.receive(10, Duration::from_millis(10)).await;
        assert_eq!(first.len(), 1);
        assert!(
            q.receive(10, Duration::from_millis(10)).await.is_empty(),
            "invisible while in flight"
        );
        let second = q.receive(10, Duration::from_millis(200)).await;
        assert_eq!((second[0].body.as_str(), second[0].receive_count), ("a", 2));
        // Not deleted twice: the third receive moves it to the DLQ instead.
        assert!(q.receive(10, Duration::from_millis(200)).await.is_empty());
        assert_eq!(q.dead_letters(), ["a"]);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn delete_acknowledges_and_waits_wake_on_send() {
        let q = std::sync::Arc::new(MemoryQueue::new(Duration::from_secs(30), 3));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.receive(10, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.send("b");
        let got = waiter.await.unwrap();
        assert_eq!(got.len(), 1);
        q.delete("stale-receipt");
        assert_eq!(q.len(), 1);
        q.delete(&got[0].receipt);
        assert!(q.is_empty());
    }
}
