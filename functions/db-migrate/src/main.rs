//! Applies migrations (and optionally ensures the first admin) once per deploy.
//! Logic: `bookshelf_api::ops`.

#[tokio::main]
async fn main() -> Result<(), bookshelf_api::lambda::Error> {
    bookshelf_api::lambda::run_db_migrate().await
}
