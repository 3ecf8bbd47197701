//! Lambda for the `orders-create` route of `template.yaml`. Logic: `bookshelf_api::registry`.

#[tokio::main]
async fn main() -> Result<(), bookshelf_api::lambda::Error> {
    bookshelf_api::lambda::run_http_sending(&bookshelf_api::registry::ORDERS_CREATE).await
}
