//! The SQS path against a real SQS-compatible server: moto in server mode on 127.0.0.1,
//! started per test (`scripts/ensure-tools.sh` installs it).

use std::time::{Duration, Instant};

use bookshelf_api::worker::{process_batch, relay_outbox};
use bookshelf_devserver::worker::{poll_once, sqs_event};
use bookshelf_queue::{Queue, SqsQueue};
use reqwest::StatusCode;
use serde_json::json;

use crate::books::create_book;
use crate::harness::{settled, token, TestApp};

struct Moto {
    _child: tokio::process::Child,
    endpoint: String,
}

fn moto_binary() -> std::path::PathBuf {
    let venv = std::env::var("BOOKSHELF_TOOLS_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/bookshelf/venv")
        });
    let in_venv = venv.join("bin/moto_server");
    if in_venv.exists() {
        in_venv
    } else {
        "moto_server".into()
    }
}

impl Moto {
    async fn start() -> Moto {
        Self::start_on(bookshelf_devserver::pg::free_port().unwrap()).await
    }

    async fn start_on(port: u16) -> Moto {
        Self::start_with(port, &[]).await
    }

    /// moto, writing every request it serves to `file` (its recorder: one JSON object a line).
    async fn start_recording(file: &std::path::Path) -> Moto {
        let file = file.to_str().unwrap();
        let env = [
            ("MOTO_ENABLE_RECORDING", "True"),
            ("MOTO_RECORDER_FILEPATH", file),
        ];
        Self::start_with(bookshelf_devserver::pg::free_port().unwrap(), &env).await
    }

    async fn start_with(port: u16, env: &[(&str, &str)]) -> Moto {
        let child = tokio::process::Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("moto_server must be installed: run scripts/ensure-tools.sh (make test does)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Moto {
            _child: child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A Secrets Manager client of this moto.
    fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
        aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .http_client(bookshelf_config::https_client())
                .endpoint_url(&self.endpoint)
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("test", "test", None, None, "t"))
                .build(),
        )
    }

    /// The orders queue and its DLQ: 1 s visibility, dead-lettered after 2 receives.
    async fn queues(&self) -> (SqsQueue, SqsQueue) {
        SqsQueue::ensure(SqsQueue::local_client(&self.endpoint), "orders", 1, 2)
            .await
            .unwrap()
    }
}

fn id_of(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// The admin's token, a new buyer's token (`email`) and a new book with `stock` copies.
async fn buyer_of_a_book(app: &TestApp, email: &str, stock: i64) -> (String, String, String) {
    let scene = app.scene(email, json!({"stock": stock})).await;
    (scene.admin, scene.reader, scene.book)
}

async fn stock(app: &TestApp, admin: &str, book: &str) -> i64 {
    app.get(&format!("/books/{book}"), Some(admin)).await.body["stock"]
        .as_i64()
        .unwrap()
}

async fn order(app: &TestApp, token: &str, book: &str, quantity: i64) -> String {
    let r = app
        .post(
            "/orders",
            Some(token),
            json!({"items": [{"bookId": book, "quantity": quantity}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    id_of(&r.body)
}

/// A deployed function's AWS clients are configured from Lambda's environment alone (no
/// aws-config): region, the role's credentials and an endpoint override. Here the endpoint
/// is moto, for both services the functions call: Secrets Manager (key material) and SQS.
#[tokio::test]
async fn the_lambda_environment_configures_secrets_manager_and_sqs() {
    let moto = Moto::start().await;
    let keys = bookshelf_auth::SigningKeys::generate();
    let secrets = moto.secrets();
    let arn = secrets
        .create_secret()
        .name("signing")
        .secret_string(keys.to_json())
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let (orders, _dlq) = moto.queues().await;
    // What Lambda (and template.yaml) would set; nextest runs each test in its own process.
    // The region is moto's too: the queues were made in `local_client`'s us-east-1.
    for (name, value) in [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_SESSION_TOKEN", "token"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.endpoint.as_str()),
        ("AWS_ENDPOINT_URL_SQS", moto.endpoint.as_str()),
        ("SIGNING_KEYS_SECRET_ARN", arn.as_str()),
        ("QUEUE_URL", orders.url()),
    ] {
        std::env::set_var(name, value);
    }
    std::env::remove_var("BOOKSHELF_SIGNING_KEYS");

    let read = bookshelf_config::signing_keys().await.unwrap();
    assert_eq!(read.active_kid(), keys.active_kid());

    let queue = SqsQueue::from_env().await.expect("QUEUE_URL is set");
    queue.send(r#"{"orderId":"from-the-environment"}"#).await.unwrap();
    let received = orders.receive(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(received[0].body.contains("from-the-environment"), "{received:?}");
}

#[tokio::test]
async fn orders_flow_through_sqs() {
    let moto = Moto::start().await;
    let (queue, _dlq) = moto.queues().await;
    let app = TestApp::start_with(Some(Queue::Sqs(queue))).await;
    let (admin, t, book) = buyer_of_a_book(&app, "sqs@example.org", 3).await;
    let id = order(&app, &t, &book, 2).await;
    let done = settled(&app, &t, &id, Duration::from_secs(5)).await;
    assert_eq!(done["status"], "confirmed");
    assert_eq!(stock(&app, &admin, &book).await, 1);
}

#[tokio::test]
async fn a_queue_outage_at_order_time_is_recovered_by_the_relay() {
    let moto = Moto::start().await;
    let (live, _dlq) = moto.queues().await;
    let dead = dead_queue(live.url());
    let app = TestApp::start_with(Some(Queue::Sqs(dead))).await;
    let (admin, t, book) = buyer_of_a_book(&app, "outage@example.org", 3).await;

    let id = order(&app, &t, &book, 1).await; // still 202
    let unsent = unsent_attempts(&app).await;
    assert_eq!(
        unsent.iter().filter(|a| **a > 0).count(),
        1,
        "the failed send is recorded"
    );
    assert_eq!(
        app.get(&format!("/orders/{id}"), Some(&t)).await.body["status"],
        "pending"
    );

    // The queue is back: the relay sends the order, the worker confirms it.
    let recovered =
        bookshelf_api::AppState::new(app.pool.clone(), &app.keys).with_queue(Queue::Sqs(live.clone()));
    let report = relay_outbox(&recovered, 0).await.unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(relay_outbox(&recovered, 0).await.unwrap().sent, 0, "sent once");
    let recovered = std::sync::Arc::new(recovered);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get(&format!("/orders/{id}"), Some(&t)).await.body["status"] == "pending" {
        assert!(Instant::now() < deadline, "order never processed");
        poll_once(&recovered, &Queue::Sqs(live.clone()), Duration::from_secs(1))
            .await
            .unwrap();
    }
    assert_eq!(
        app.get(&format!("/orders/{id}"), Some(&t)).await.body["status"],
        "confirmed"
    );
    assert_eq!(stock(&app, &admin, &book).await, 2);
}

/// The SQS actions (`X-Amz-Target` after `AmazonSQS.`) of the requests moto recorded.
fn recorded_actions(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let entry: serde_json::Value = serde_json::from_str(l).unwrap();
            let target = entry["headers"]["X-Amz-Target"].as_str()?;
            Some(target.trim_start_matches("AmazonSQS.").to_string())
        })
        .collect()
}

/// Sends made at the same time share requests: the first goes alone, those that arrive
/// while it is in flight go after it ten a SendMessageBatch. Each message arrives once and
/// each sender hears its own outcome.
#[tokio::test]
async fn concurrent_sends_go_together_and_each_arrives_once() {
    let record = std::env::temp_dir().join(format!("bookshelf-moto-{}.jsonl", uuid::Uuid::new_v4()));
    let moto = Moto::start_recording(&record).await;
    let (live, _dlq) = moto.queues().await;
    let before = recorded_actions(&record).len();

    let bodies: Vec<String> = (0..40).map(|i| json!({"n": i}).to_string()).collect();
    let outcomes = futures::future::join_all(bodies.iter().map(|b| live.send(b))).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let sends = recorded_actions(&record).split_off(before);
    assert_eq!(
        sends,
        [
            "SendMessage",
            "SendMessageBatch",
            "SendMessageBatch",
            "SendMessageBatch",
            "SendMessageBatch"
        ],
        "one alone, then the 39 that waited, ten a request"
    );

    let mut delivered = Vec::new();
    while delivered.len() < bodies.len() {
        let batch = live.receive(10, Duration::from_secs(1)).await.unwrap();
        assert!(!batch.is_empty(), "{} of 40 delivered", delivered.len());
        delivered.extend(batch.into_iter().map(|m| m.body));
    }
    delivered.sort();
    let mut sent = bodies.clone();
    sent.sort();
    assert_eq!(delivered, sent, "each message once");
    let _ = std::fs::remove_file(&record);
}

/// Acknowledgements made at the same time share a DeleteMessageBatch, and each caller
/// hears only of its own receipts: a batch with a receipt the queue refuses fails alone.
#[tokio::test]
async fn concurrent_deletes_go_together_and_each_hears_its_own_outcome() {
    let record = std::env::temp_dir().join(format!("bookshelf-moto-{}.jsonl", uuid::Uuid::new_v4()));
    let moto = Moto::start_recording(&record).await;
    let (live, _dlq) = moto.queues().await;
    for i in 0..12 {
        live.send(&json!({"n": i}).to_string()).await.unwrap();
    }
    let mut groups: Vec<Vec<String>> = Vec::new();
    while groups.iter().map(Vec::len).sum::<usize>() < 12 {
        let batch = live.receive(3, Duration::from_secs(1)).await.unwrap();
        assert!(!batch.is_empty(), "12 messages were sent");
        groups.push(batch.into_iter().map(|m| m.receipt).collect());
    }
    let last = groups.len() - 1;
    groups[last].push("not-a-receipt-this-queue-gave".into());
    let before = recorded_actions(&record).len();

    let refs: Vec<Vec<&str>> = groups
        .iter()
        .map(|g| g.iter().map(String::as_str).collect())
        .collect();
    let outcomes = futures::future::join_all(refs.iter().map(|g| live.delete_batch(g))).await;
    let deletes = recorded_actions(&record).split_off(before);
    assert!(
        deletes.iter().all(|a| a == "DeleteMessageBatch") && deletes.len() < groups.len(),
        "{} acknowledgements in {deletes:?}",
        groups.len()
    );
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == last {
            assert!(
                matches!(
                    outcome,
                    Err(bookshelf_queue::QueueError::PartialDelete { failed: 1, .. })
                ),
                "{outcome:?}"
            );
        } else {
            assert!(outcome.is_ok(), "batch {i}: {outcome:?}");
        }
    }
    // Past the visibility timeout (1 s) nothing comes back: every real receipt was deleted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(live.receive(10, Duration::from_secs(1)).await.unwrap().is_empty());
    let _ = std::fs::remove_file(&record);
}

/// A send that waited for a batch hears the batch's failure: none hangs, none is told it
/// was sent.
#[tokio::test]
async fn every_sender_in_a_failed_batch_hears_the_failure() {
    let queue = dead_queue("http://127.0.0.1:9/123456789012/orders");
    let bodies: Vec<String> = (0..25).map(|i| json!({"n": i}).to_string()).collect();
    let outcomes = tokio::time::timeout(
        Duration::from_secs(60),
        futures::future::join_all(bodies.iter().map(|b| queue.send(b))),
    )
    .await
    .expect("every sender was answered");
    assert_eq!(outcomes.len(), 25);
    for outcome in outcomes {
        let error = bookshelf_http::error_chain(&outcome.unwrap_err());
        assert!(error.starts_with("SQS request failed"), "{error}");
    }
}

/// A backlog goes out ten messages a request (SendMessageBatch), each once, each marked.
#[tokio::test]
async fn the_relay_sends_a_backlog_in_batches_each_message_once() {
    let moto = Moto::start().await;
    let (live, _dlq) = moto.queues().await;
    // No queue while the backlog builds: with one, the dev server's own relay (every 2 s)
    // would claim and lock some of these rows, racing the relay this test runs.
    let app = TestApp::start_with(None).await;
    let (_, t, book) = buyer_of_a_book(&app, "backlog@example.org", 100).await;
    let mut placed = std::collections::BTreeSet::new();
    for _ in 0..23 {
        placed.insert(order(&app, &t, &book, 1).await);
    }
    assert_eq!(unsent_attempts(&app).await.len(), 23);

    let recovered =
        bookshelf_api::AppState::new(app.pool.clone(), &app.keys).with_queue(Queue::Sqs(live.clone()));
    let report = relay_outbox(&recovered, 0).await.unwrap();
    assert_eq!((report.sent, report.failed), (23, 0));
    assert!(unsent_attempts(&app).await.is_empty(), "every row is marked sent");
    assert_eq!(relay_outbox(&recovered, 0).await.unwrap().sent, 0, "sent once");

    let mut delivered = Vec::new();
    while delivered.len() < placed.len() {
        let batch = live.receive(10, Duration::from_secs(1)).await.unwrap();
        assert!(!batch.is_empty(), "{} of 23 delivered", delivered.len());
        delivered.extend(batch.into_iter().map(|m| m.body));
    }
    let ids: std::collections::BTreeSet<String> = delivered
        .iter()
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["orderId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!((ids, delivered.len()), (placed, 23), "each order once");
}

#[tokio::test]
async fn poison_messages_reach_the_dead_letter_queue() {
    let moto = Moto::start().await;
    let (queue, dlq) = moto.queues().await;
    let app = TestApp::start_with(None).await;
    let queue = Queue::Sqs(queue);
    queue.send("this is not an order").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        assert!(
            Instant::now() < deadline,
            "the poison message never reached the DLQ"
        );
        poll_once(&app.state, &queue, Duration::from_secs(1))
            .await
            .unwrap();
        let dead = dlq.receive(10, Duration::from_secs(0)).await.unwrap();
        if !dead.is_empty() {
            break dead;
        }
    };
    assert_eq!(dead[0].body, "this is not an order");
    assert!(queue
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_crash_between_reserve_and_ack_reserves_once() {
    let moto = Moto::start().await;
    let (queue, _dlq) = moto.queues().await;
    let queue = Queue::Sqs(queue);
    let app = TestApp::start_with(None).await;
    let (admin, t, book) = buyer_of_a_book(&app, "crash@example.org", 5).await;
    let id = order(&app, &t, &book, 2).await; // no queue in the app: sent by hand below
    queue.send(&json!({"orderId": id}).to_string()).await.unwrap();
    // A duplicate send, as the relay might make after a lost acknowledgement.
    queue.send(&json!({"orderId": id}).to_string()).await.unwrap();

    // Receive and process, then "crash": no delete.
    let first = queue.receive(10, Duration::from_secs(1)).await.unwrap();
    assert!(!first.is_empty());
    let response = process_batch(app.state.clone(), sqs_event(&first)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stock(&app, &admin, &book).await, 3);

    // After the visibility timeout the messages come back; processing them changes nothing.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut idle_polls = 0;
    while idle_polls < 2 {
        assert!(Instant::now() < deadline, "messages never drained");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let polled = poll_once(&app.state, &queue, Duration::from_secs(1))
            .await
            .unwrap();
        idle_polls = if polled == 0 { idle_polls + 1 } else { 0 };
    }
    assert_eq!(stock(&app, &admin, &book).await, 3, "reserved exactly once");
    assert_eq!(
        app.get(&format!("/orders/{id}"), Some(&t)).await.body["status"],
        "confirmed"
    );
}

#[tokio::test]
async fn the_outbox_catches_up_after_the_queue_server_comes_back() {
    let moto = Moto::start().await;
    let port: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let (queue, _dlq) = moto.queues().await;
    let app = TestApp::start_with(Some(Queue::Sqs(queue))).await;
    let (admin, t, book) = buyer_of_a_book(&app, "outage2@example.org", 100).await;
    let before = order(&app, &t, &book, 1).await;
    assert_eq!(
        settled(&app, &t, &before, Duration::from_secs(10)).await["status"],
        "confirmed"
    );

    // The queue server goes away: orders are still accepted, and wait in the outbox.
    drop(moto);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut during = Vec::new();
    for _ in 0..5 {
        during.push(order(&app, &t, &book, 1).await);
    }
    assert_eq!(unsent_attempts(&app).await.len(), 5);

    // It comes back (empty, as a fresh server does); the relay sends, the worker confirms.
    let moto = Moto::start_on(port).await;
    moto.queues().await;
    for id in &during {
        assert_eq!(
            settled(&app, &t, id, Duration::from_secs(30)).await["status"],
            "confirmed"
        );
    }
    assert_eq!(stock(&app, &admin, &book).await, 94);
}

/// The poller acknowledges a batch in one DeleteMessageBatch: the processed messages are
/// gone for good, the failed one comes back after its visibility timeout.
#[tokio::test]
async fn a_batch_is_acknowledged_except_its_failures() {
    let moto = Moto::start().await;
    let (queue, _dlq) = moto.queues().await;
    // No worker: the orders stay pending until this test polls.
    let app = TestApp::start_with(None).await;
    let (admin, t, book) = buyer_of_a_book(&app, "batch@example.org", 10).await;
    let queue = Queue::Sqs(queue);
    for _ in 0..4 {
        let id = order(&app, &t, &book, 1).await;
        queue.send(&json!({"orderId": id}).to_string()).await.unwrap();
    }
    queue.send("not an order").await.unwrap();
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while received < 5 && Instant::now() < deadline {
        received += poll_once(&app.state, &queue, Duration::from_secs(1))
            .await
            .unwrap();
    }
    assert_eq!(received, 5);
    // After the 1 s visibility timeout only the failure is delivered again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = queue.receive(10, Duration::from_secs(1)).await.unwrap();
    let bodies: Vec<&str> = again.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["not an order"]);
    assert_eq!(
        stock(&app, &admin, &book).await,
        6,
        "four orders confirmed once each"
    );
}

/// The relay's schedule must never cancel a poll in flight: a batch received but not yet
/// acknowledged would stay invisible for the whole visibility timeout (30 s here). With
/// the relay ticking every 5 ms, every order must still settle promptly.
#[tokio::test]
async fn the_relay_schedule_never_strands_a_received_batch() {
    let moto = Moto::start().await;
    let (queue, _dlq) = SqsQueue::ensure(SqsQueue::local_client(&moto.endpoint), "orders", 30, 5)
        .await
        .unwrap();
    // The gateway has no queue: orders reach SQS only through the relay of this worker.
    let app = TestApp::start_with(None).await;
    let state = std::sync::Arc::new(
        bookshelf_api::AppState::new(app.pool.clone(), &app.keys).with_queue(Queue::Sqs(queue)),
    );
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let pollers = bookshelf_devserver::worker::Pollers {
        orders: 1,
        feed: 1,
        imports: 1,
    };
    let worker = bookshelf_devserver::worker::spawn(state, Duration::from_millis(5), pollers, stop_rx);

    let (_, t, book) = buyer_of_a_book(&app, "relay@example.org", 100).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(order(&app, &t, &book, 1).await);
    }
    for id in &ids {
        let done = settled(&app, &t, id, Duration::from_secs(10)).await;
        assert_eq!(done["status"], "confirmed", "{id}");
    }
    stop.send(true).unwrap();
    worker.await.unwrap();
}

/// The send attempts of every outbox row not yet sent.
async fn unsent_attempts(app: &TestApp) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT attempts FROM outbox WHERE sent_at IS NULL AND topic = 'orders' ORDER BY attempts",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// The fast path's sent marks go together under concurrency (`outbox::SentMarks`): every
/// row is marked, each once (one attempt), however many marks of it were made at once.
#[tokio::test]
async fn sent_marks_made_together_mark_each_row_once() {
    let app = TestApp::start_with(None).await;
    let (_, t, book) = buyer_of_a_book(&app, "marks@example.org", 100).await;
    for _ in 0..30 {
        order(&app, &t, &book, 1).await;
    }
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM outbox WHERE sent_at IS NULL AND topic = 'orders'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(ids.len(), 30);

    // Through the pool's coalesced marks, as the fast path makes them.
    let tasks: Vec<_> = ids
        .iter()
        .chain(&ids)
        .map(|id| {
            let (db, id) = (app.pool.clone(), *id);
            tokio::spawn(async move { bookshelf_storage::outbox::mark_sent_coalesced(&db, id).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert!(unsent_attempts(&app).await.is_empty(), "every row is marked sent");
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM outbox WHERE topic = 'orders'")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(attempts, vec![1; 30], "each row marked once");
}

/// A queue whose endpoint nobody listens on: every send fails at once.
fn dead_queue(url: &str) -> SqsQueue {
    let dead_port = bookshelf_devserver::pg::free_port().unwrap();
    SqsQueue::new(
        SqsQueue::local_client(&format!("http://127.0.0.1:{dead_port}")),
        url.to_string(),
    )
}

/// A queue endpoint that accepts connections and never answers (an SQS that hangs).
async fn hanging_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

/// The deployed client gives up within its send budget: a hanging SQS turns a committed
/// order into a 202 for the relay, not into a Lambda timeout and a 5xx.
#[tokio::test]
async fn a_hanging_queue_costs_an_order_its_send_budget_not_a_5xx() {
    let (endpoint, server) = hanging_endpoint().await;
    let queue = SqsQueue::new(
        SqsQueue::bounded_client(&endpoint),
        format!("{endpoint}/123456789012/bookshelf-orders"),
    );
    let started = Instant::now();
    let sent = tokio::time::timeout(SqsQueue::SEND_BUDGET * 3, queue.send("{}"))
        .await
        .expect("the send gave up instead of hanging");
    assert!(sent.is_err());
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "it did wait for the server"
    );

    // No worker: its relay would retry the row while the request is still waiting, and
    // the attempts counted below are the request path's alone.
    let app = TestApp::start_with(None).await;
    let (_, t, book) = buyer_of_a_book(&app, "hang@example.org", 3).await;
    let hanging = bookshelf_api::AppState::new(app.pool.clone(), &app.keys).with_queue(Queue::Sqs(queue));
    let hanging = std::sync::Arc::new(hanging);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let template =
        bookshelf_devserver::Template::load(&crate::harness::repo_root().join("template.yaml")).unwrap();
    let gateway = bookshelf_devserver::Server::start_gateway_only(listener, &template, hanging.clone())
        .await
        .unwrap();
    let r = app
        .client
        .post(format!("{}/orders", gateway.url()))
        .bearer_auth(&t)
        .json(&json!({"items": [{"bookId": book, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let unsent = unsent_attempts(&app).await;
    assert_eq!(
        unsent.iter().filter(|a| **a == 1).count(),
        1,
        "left for the relay, with the failed attempt recorded"
    );
    server.abort();
}

/// A relay run that could not send is a failed run (the function's error metric, so its
/// alarm fires during an SQS outage), and every attempt is still recorded.
#[tokio::test]
async fn a_relay_run_that_cannot_send_fails() {
    let app = TestApp::start_with(None).await;
    let (_, t, book) = buyer_of_a_book(&app, "relayfail@example.org", 3).await;
    order(&app, &t, &book, 1).await; // no queue: left in the outbox
    let dead = dead_queue("http://127.0.0.1:9/123456789012/bookshelf-orders");
    let relaying = bookshelf_api::AppState::new(app.pool.clone(), &app.keys).with_queue(Queue::Sqs(dead));
    match relay_outbox(&relaying, 0).await {
        Err(bookshelf_api::worker::RelayError::SendFailed {
            sent: 0, failed: 1, ..
        }) => {}
        other => panic!("expected a failed run, got {other:?}"),
    }
    assert_eq!(
        unsent_attempts(&app).await,
        [1],
        "the attempt is committed even though the run failed"
    );
}

/// The activities queue and its DLQ on moto, as `queues` makes the orders one.
async fn activity_queues(moto: &Moto) -> (SqsQueue, SqsQueue) {
    SqsQueue::ensure(SqsQueue::local_client(&moto.endpoint), "activities", 1, 2)
        .await
        .unwrap()
}

/// How many feed rows each (reader, activity) has: exactly one is the only right answer.
async fn feed_rows(app: &TestApp) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT (reader_id, activity_id)) FROM feed_items")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn wait_for_feed_rows(app: &TestApp, n: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (rows, distinct) = feed_rows(app).await;
        assert_eq!(rows, distinct, "a feed row twice");
        if rows == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} feed rows, not {n}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn activities_survive_a_queue_outage_and_a_redelivery_adds_nothing() {
    let moto = Moto::start().await;
    let port: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let (orders_queue, _) = moto.queues().await;
    let (activities, _) = activity_queues(&moto).await;
    let feed_queue = activities.clone();
    let app = TestApp::start_custom(Some(Queue::Sqs(orders_queue)), move |s| {
        s.with_activity_queue(Queue::Sqs(feed_queue))
    })
    .await;
    let admin = app.admin_token().await;
    let star = app.register("star@example.org", "password123").await;
    let star_id = star["user"]["id"].as_str().unwrap().to_string();
    let star = token(&star);
    app.send(
        reqwest::Method::PATCH,
        "/users/me",
        Some(&star),
        Some(json!({"libraryVisibility": "public"})),
    )
    .await;
    let mut fans = Vec::new();
    for i in 0..3 {
        let fan = token(&app.register(&format!("fan{i}@example.org"), "password123").await);
        let r = app
            .send(
                reqwest::Method::PUT,
                &format!("/users/{star_id}/follow"),
                Some(&fan),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        fans.push(fan);
    }
    let book = id_of(&create_book(&app, &admin, json!({})).await);
    app.send(
        reqwest::Method::PUT,
        &format!("/library/{book}"),
        Some(&star),
        Some(json!({"status": "reading"})),
    )
    .await;
    wait_for_feed_rows(&app, 3, Duration::from_secs(10)).await;

    // The queue server goes away: actions still succeed, their activities wait in the outbox.
    drop(moto);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app
        .send(
            reqwest::Method::PUT,
            &format!("/library/{book}"),
            Some(&star),
            Some(json!({"status": "read", "rating": 5})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .post(&format!("/library/{book}/reads"), Some(&star), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE topic = 'activities' AND sent_at IS NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(waiting, 2, "rated and started_reading wait for the queue");

    // It comes back empty; the relay sends, the fan-out delivers each to every fan once.
    let moto = Moto::start_on(port).await;
    moto.queues().await;
    let (activities, _) = activity_queues(&moto).await;
    wait_for_feed_rows(&app, 9, Duration::from_secs(30)).await;
    for fan in &fans {
        let r = app.get("/feed", Some(fan)).await;
        let types: Vec<&str> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["started_reading", "rated", "shelved"]);
    }

    // Every activity delivered once more, as SQS may: nothing changes.
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM activities WHERE actor_id = $1::uuid")
        .bind(&star_id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    for id in &ids {
        activities
            .send(&json!({"activityId": id}).to_string())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for_feed_rows(&app, 9, Duration::from_secs(1)).await;
    let left = activities.receive(10, Duration::from_millis(200)).await.unwrap();
    assert!(left.is_empty(), "the redeliveries were consumed: {}", left.len());
}

/// Key rotation as deployed: both secrets in (moto's) Secrets Manager, `bookshelf-dev keys
/// --rotate` run against them, a signer and a verifier reading them as the functions do.
/// Tokens of the old and the new key both verify; the verifier learns the new key from its
/// `kid`, without waiting for its reload period.
#[tokio::test]
async fn a_key_rotation_through_secrets_manager_logs_nobody_out() {
    use bookshelf_api::keyring::KeyRing;
    use bookshelf_api::KeyAccess;

    let moto = Moto::start().await;
    let keys = bookshelf_auth::SigningKeys::generate();
    let secrets = moto.secrets();
    let mut arns = Vec::new();
    for (name, value) in [
        ("signing", keys.to_json()),
        ("public", keys.public_keys().to_jwks().to_string()),
    ] {
        let made = secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
        arns.push(made.arn.unwrap());
    }
    // nextest runs each test in its own process.
    for (name, value) in [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.endpoint.as_str()),
        ("SIGNING_KEYS_SECRET_ARN", arns[0].as_str()),
        ("PUBLIC_KEYS_SECRET_ARN", arns[1].as_str()),
    ] {
        std::env::set_var(name, value);
    }
    std::env::remove_var("BOOKSHELF_SIGNING_KEYS");
    std::env::remove_var("BOOKSHELF_PUBLIC_KEYS");

    // The signer reads at every use here (deployed: every five minutes).
    let signer = KeyRing::from_env(KeyAccess::Signing)
        .await
        .unwrap()
        .unwrap()
        .reading_every(Duration::ZERO);
    let verifier = KeyRing::from_env(KeyAccess::Public).await.unwrap().unwrap();
    let (user, sid) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let issue = |set: std::sync::Arc<bookshelf_api::keyring::KeySet>| {
        set.issue(user, "user", sid, chrono::Utc::now().timestamp())
            .unwrap()
    };
    let before = issue(signer.current().await);

    let rotate = tokio::process::Command::new(env!("CARGO_BIN_EXE_bookshelf-dev"))
        .args(["keys", "--rotate", &arns[0], &arns[1]])
        .output()
        .await
        .unwrap();
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );

    let after = issue(signer.current().await);
    let kid = |t: &str| -> String {
        use base64::Engine;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&header).unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(kid(&before), keys.active_kid());
    assert_ne!(kid(&after), kid(&before), "the signer moved to the new key");
    assert_eq!(verifier.verify(&before).await.unwrap().sub, user);
    assert_eq!(verifier.reloads(), 0);
    assert_eq!(
        verifier.verify(&after).await.unwrap().sub,
        user,
        "learned from the kid"
    );
    assert_eq!(verifier.reloads(), 1);
    assert_eq!(
        verifier.verify(&before).await.unwrap().sub,
        user,
        "both keys in the overlap"
    );
    let published = verifier.current().await.public.clone();
    assert_eq!(published.keys.len(), 2);
    assert!(published.get(&kid(&before)).unwrap().retire_at.is_some());
}

/// Whether `password` is the one a PostgreSQL SCRAM-SHA-256 verifier (`pg_authid.rolpassword`)
/// was made from (RFC 5802: the stored key is SHA-256 of HMAC(salted password, "Client Key")).
fn scram_matches(verifier: &str, password: &str) -> bool {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((params, keys)) = verifier
        .strip_prefix("SCRAM-SHA-256$")
        .and_then(|v| v.split_once('$'))
    else {
        return false;
    };
    let (Some((iterations, salt)), Some((stored, _server))) = (params.split_once(':'), keys.split_once(':'))
    else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(stored)) =
        (iterations.parse::<u32>(), b64.decode(salt), b64.decode(stored))
    else {
        return false;
    };
    let mut salted = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations).unwrap(),
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    let client_key = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &salted),
        b"Client Key",
    );
    ring::digest::digest(&ring::digest::SHA256, client_key.as_ref()).as_ref() == stored.as_slice()
}

/// db-migrate reads both secrets at every invocation: after the application role's secret
/// rotates, a warm environment sets the new password, never again the one it read first.
#[tokio::test]
async fn a_warm_db_migrate_follows_a_rotated_application_secret() {
    use sqlx::Connection;
    let moto = Moto::start().await;
    let secrets = moto.secrets();
    let role = format!("app_{}", uuid::Uuid::new_v4().simple());
    let secret = |password: &str| json!({"username": role, "password": password}).to_string();
    let (first, second) = ("first-password-0123456789", "second-password-0123456789");
    let arn = secrets
        .create_secret()
        .name("app-role")
        .secret_string(secret(first))
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    // A database of its own; the tests' user is its owner, as the master user is deployed.
    let base = std::env::var("DATABASE_URL").expect("make test provides DATABASE_URL");
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut server = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut server)
        .await
        .unwrap();
    let mut url = reqwest::Url::parse(&base).unwrap();
    url.set_path(&name);
    for (var, value) in [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.endpoint.as_str()),
        ("APP_DB_SECRET_ARN", arn.as_str()),
        ("DATABASE_URL", url.as_str()),
    ] {
        std::env::set_var(var, value);
    }
    let db = bookshelf_storage::pool(bookshelf_config::database_owner().await.unwrap(), 1);
    let verifier_sql = "SELECT rolpassword FROM pg_authid WHERE rolname = $1";

    let out = bookshelf_api::lambda::db_migrate(&db, serde_json::Value::Null)
        .await
        .unwrap();
    assert_eq!(out["appRole"], role.as_str());
    let verifier: String = sqlx::query_scalar(verifier_sql)
        .bind(&role)
        .fetch_one(&mut server)
        .await
        .unwrap();
    assert!(scram_matches(&verifier, first) && !scram_matches(&verifier, second));

    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(secret(second))
        .send()
        .await
        .unwrap();
    bookshelf_api::lambda::db_migrate(&db, serde_json::Value::Null)
        .await
        .unwrap();
    let verifier: String = sqlx::query_scalar(verifier_sql)
        .bind(&role)
        .fetch_one(&mut server)
        .await
        .unwrap();
    assert!(scram_matches(&verifier, second), "the rotated password");
    assert!(!scram_matches(&verifier, first), "not the one read first");

    db.close().await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut server)
        .await
        .unwrap();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&mut server)
        .await
        .unwrap();
}

/// The deployed import path against moto: `POST /imports` presigns an S3 PUT, the client
/// uploads straight to the bucket, S3's object-created notification lands on the imports
/// queue, and the importer (the `import-worker` handler, fed by the poller that stands in
/// for the event source mapping) applies the file.
#[tokio::test]
async fn an_upload_to_s3_reaches_the_importer_through_the_buckets_notification() {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let moto = Moto::start().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(bookshelf_config::https_client())
            .endpoint_url(&moto.endpoint)
            // The region of the SQS test client: S3 notifies queues of its own region only.
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "t"))
            .force_path_style(true)
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .build(),
    );
    s3.create_bucket().bucket("uploads").send().await.unwrap();
    let (imports, _dlq) = SqsQueue::ensure(SqsQueue::local_client(&moto.endpoint), "imports", 30, 5)
        .await
        .unwrap();
    let arn = SqsQueue::local_client(&moto.endpoint)
        .get_queue_attributes()
        .queue_url(imports.url())
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    use aws_sdk_s3::types::{
        Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
        QueueConfiguration, S3KeyFilter,
    };
    s3.put_bucket_notification_configuration()
        .bucket("uploads")
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(
                    QueueConfiguration::builder()
                        .queue_arn(arn)
                        .events(Event::from("s3:ObjectCreated:*"))
                        .filter(
                            NotificationConfigurationFilter::builder()
                                .key(
                                    S3KeyFilter::builder()
                                        .filter_rules(
                                            FilterRule::builder()
                                                .name(FilterRuleName::Prefix)
                                                .value("imports/")
                                                .build(),
                                        )
                                        .build(),
                                )
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let objects =
        bookshelf_objects::Objects::S3(bookshelf_objects::S3Objects::new(s3.clone(), "uploads".into()));
    let app = TestApp::start_custom(None, |s| s.with_objects(objects)).await;
    let reader = token(&app.register("s3-import@example.org", "password123").await);
    let created = crate::imports::start_import(&app, &reader, Some("gr.csv")).await;
    let url = created["uploadUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/uploads/imports/", moto.endpoint)),
        "{url}"
    );
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert_eq!(created["uploadHeaders"]["if-none-match"], "*", "{created}");
    let file = "Title,Author,My Rating,Exclusive Shelf\nFrom S3,Some Author,4,read\nAlso From S3,Other Author,0,to-read\n";
    let put = crate::imports::upload(url, &created["uploadHeaders"], file.as_bytes().to_vec()).await;
    assert_eq!(put.status(), StatusCode::OK, "{}", put.text().await.unwrap());
    // The signed If-None-Match: the URL takes one upload.
    let again = crate::imports::upload(url, &created["uploadHeaders"], b"Title,Author\nX,Y\n".to_vec()).await;
    assert_eq!(again.status(), StatusCode::PRECONDITION_FAILED);
    // The notification (after S3's test event) reaches the importer.
    let queue = Queue::Sqs(imports.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = created["id"].as_str().unwrap();
    loop {
        bookshelf_devserver::worker::poll(
            &app.state,
            &queue,
            Duration::from_millis(200),
            bookshelf_devserver::worker::Consumer::Imports,
        )
        .await
        .unwrap();
        let now = app.get(&format!("/imports/{id}"), Some(&reader)).await.body;
        if now["status"] == "completed" {
            assert_eq!(
                (&now["imported"], &now["booksCreated"]),
                (&json!(2), &json!(2)),
                "{now}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not imported: {now}");
    }
    // Applied, the file is removed from the bucket; the queue holds nothing more.
    assert!(s3
        .head_object()
        .bucket("uploads")
        .key(format!("imports/{id}.csv"))
        .send()
        .await
        .is_err());
    assert!(imports
        .receive(10, Duration::from_millis(100))
        .await
        .unwrap()
        .is_empty());
}

/// Webhooks as deployed: the dispatcher's signed deliveries through an SQS queue to the
/// sender, its reports through another to the recorder (moto), a receiver on 127.0.0.1;
/// a failed attempt comes back through both queues and is retried with the same event.
#[tokio::test]
async fn webhook_deliveries_and_their_reports_travel_through_sqs() {
    use crate::webhooks::{create, header, of_type, verify, Receiver};
    let moto = Moto::start().await;
    let client = SqsQueue::local_client(&moto.endpoint);
    let (deliveries, _) = SqsQueue::ensure(client.clone(), "webhooks", 5, 3).await.unwrap();
    let (results, _) = SqsQueue::ensure(client, "webhook-results", 5, 5).await.unwrap();
    let app = TestApp::start_custom(None, |state| {
        let mut hooks = state.webhooks.clone();
        hooks.deliveries = Some(Queue::Sqs(deliveries));
        hooks.results = Some(Queue::Sqs(results));
        state.with_webhooks(hooks)
    })
    .await;
    let admin = app.admin_token().await;
    let t = token(&app.register("sqs-hooks@example.org", "password123").await);
    let receiver = Receiver::start().await;
    receiver.status.store(502, std::sync::atomic::Ordering::SeqCst);
    let hook = create(&app, &t, &receiver.url, json!(["entry.upserted"])).await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let book = create_book(&app, &admin, json!({"title": "Through SQS"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .send(
            reqwest::Method::PUT,
            &format!("/library/{book}"),
            Some(&t),
            Some(json!({"status": "read"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let first = receiver
        .wait_for(Duration::from_secs(5), of_type("entry.upserted"))
        .await;
    verify(&first, &secret);
    let event = header(&first, "bookshelf-event-id").to_string();
    receiver.status.store(200, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let log = loop {
        let log = app
            .get(
                &format!("/webhooks/{}/deliveries", hook["id"].as_str().unwrap()),
                Some(&t),
            )
            .await;
        if log.body["items"].as_array().unwrap().len() >= 2 {
            break log;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no retry recorded: {}",
            log.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items[0]["outcome"], "succeeded", "{}", log.body);
    assert_eq!(items[1]["outcome"], "failed");
    assert_eq!(items[1]["responseStatus"], 502);
    assert!(
        items.iter().all(|d| d["eventId"] == event.as_str()),
        "{}",
        log.body
    );
    let copies = receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .filter(|r| header(r, "bookshelf-event-id") == event)
        .count();
    assert_eq!(copies, 2);
}
