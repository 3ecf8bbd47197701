//! Operator tasks shared by the dev server and the `db-migrate` function.

use bookshelf_auth::password;
use bookshelf_domain::validation;
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("admin {0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Storage(#[from] bookshelf_storage::StorageError),
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// Applies every pending migration; returns the versions now applied.
pub async fn migrate(db: &PgPool) -> Result<Vec<i64>, OpsError> {
    bookshelf_storage::migrate(db).await?;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(db)
        .await
        .map_err(|e| OpsError::Storage(e.into()))?;
    Ok(versions)
}

/// Makes sure an admin with this email exists and has this password (idempotent).
pub async fn ensure_admin(db: &PgPool, email: &str, password_text: &str) -> Result<(), OpsError> {
    let email = validation::email(email).map_err(|m| OpsError::Invalid(format!("email {m}")))?;
    validation::password(password_text).map_err(|m| OpsError::Invalid(format!("password {m}")))?;
    let pw = password_text.to_string();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| OpsError::Hash(e.to_string()))?;
    bookshelf_storage::users::ensure_admin(db, &email, &hash, &validation::default_display_name(&email))
        .await?;
    Ok(())
}
