//! The SQS consumer that confirms or rejects orders. Logic: `bookshelf_api::worker`.

#[tokio::main]
async fn main() -> Result<(), bookshelf_api::lambda::Error> {
    bookshelf_api::lambda::run_order_processor().await
}
