//! The REST API's Lambda authorizer. Logic: `bookshelf_api::authorizer`.

#[tokio::main]
async fn main() -> Result<(), bookshelf_api::lambda::Error> {
    bookshelf_api::lambda::run_authorizer().await
}
