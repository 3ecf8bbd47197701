//! Lambda for the `auth-login` route of `template.yaml`. Logic: `bookshelf_api::registry`.

#[tokio::main]
async fn main() -> Result<(), bookshelf_api::lambda::Error> {
    bookshelf_api::lambda::run_http_with_keys(&bookshelf_api::registry::AUTH_LOGIN).await
}
