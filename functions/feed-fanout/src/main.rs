//! The SQS consumer that fans activities out into followers' feeds. Logic: `bookshelf_api::worker`.

#[tokio::main]
async fn main() -> Result<(), bookshelf_api::lambda::Error> {
    bookshelf_api::lambda::run_feed_fanout().await
}
