//! Lambda for the `library-put` route of `template.yaml`. Logic: `bookshelf_api::registry`.

#[tokio::main]
async fn main() -> Result<(), bookshelf_api::lambda::Error> {
    bookshelf_api::lambda::run_http_sending(&bookshelf_api::registry::LIBRARY_PUT).await
}
