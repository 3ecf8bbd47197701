//! Scheduled: removes what has expired (guess counters, sessions, refresh tokens, sent
//! outbox rows, idempotency keys), a bounded amount per run. Logic: `bookshelf_storage::cleanup`.

#[tokio::main]
async fn main() -> Result<(), bookshelf_api::lambda::Error> {
    bookshelf_api::lambda::run_cleanup().await
}
