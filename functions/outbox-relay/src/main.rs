//! Scheduled: sends order messages the request path could not. Logic: `bookshelf_api::worker`.

#[tokio::main]
async fn main() -> Result<(), bookshelf_api::lambda::Error> {
    bookshelf_api::lambda::run_outbox_relay().await
}
