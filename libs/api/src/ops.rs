//! Operator tasks shared by the dev server and the `db-migrate` function.

use bookshelf_auth::password;
use bookshelf_domain::{validation, Role};
use bookshelf_storage::DbPool;

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
    #[error(
        "{0} belongs to an existing account: refusing to give it admin rights silently. To make \
         that account admin (with this password, revoking every session it has), name it: \
         --promote {0} (db-migrate: \"promote\": \"{0}\")"
    )]
    Exists(String),
}

/// Applies every pending migration; returns the versions now applied.
pub async fn migrate(db: &DbPool) -> Result<Vec<i64>, OpsError> {
    bookshelf_storage::migrate(db).await?;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(db)
        .await
        .map_err(|e| OpsError::Storage(e.into()))?;
    Ok(versions)
}

/// What `ensure_admin` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOutcome {
    Created,
    /// The account was an admin with this password already: nothing changed.
    Unchanged,
    /// An existing account, named by the operator, made admin with this password; every
    /// one of its sessions revoked.
    Promoted {
        revoked_sessions: u64,
    },
}

/// Makes sure an admin with this email and password exists. An email that belongs to an
/// account already (a user, or an admin with another password) is refused unless the
/// operator names that account (`promote`, the same email): anyone can register the address
/// an operator will make admin later, and their sessions must not become admin sessions.
/// Named, the account becomes admin, takes this password, and loses every session.
pub async fn ensure_admin(
    db: &DbPool,
    email: &str,
    password_text: &str,
    promote: Option<&str>,
) -> Result<AdminOutcome, OpsError> {
    let email = validation::email(email).map_err(|m| OpsError::Invalid(format!("email {m}")))?;
    validation::password(password_text).map_err(|m| OpsError::Invalid(format!("password {m}")))?;
    let hash = |pw: String| async move {
        tokio::task::spawn_blocking(move || password::hash(&pw))
            .await
            .map_err(|e| OpsError::Hash(e.to_string()))
    };
    let existing = bookshelf_storage::users::find_account(db, &email).await?;
    let Some((id, role, stored)) = existing else {
        let display = validation::default_display_name(&email);
        let new_hash = hash(password_text.to_string()).await?;
        return match bookshelf_storage::users::create_admin(db, &email, &new_hash, &display).await? {
            Some(_) => Ok(AdminOutcome::Created),
            // Registered between the two statements: an existing account after all.
            None => Err(OpsError::Exists(email)),
        };
    };
    let pw = password_text.to_string();
    let same = tokio::task::spawn_blocking(move || password::verify(&pw, &stored))
        .await
        .map_err(|e| OpsError::Hash(e.to_string()))?;
    if role == Role::Admin && same {
        return Ok(AdminOutcome::Unchanged);
    }
    let named = promote.is_some_and(|p| p.trim().eq_ignore_ascii_case(email.trim()));
    if !named {
        return Err(OpsError::Exists(email));
    }
    let new_hash = hash(password_text.to_string()).await?;
    let revoked_sessions = bookshelf_storage::users::promote_to_admin(db, id, &new_hash).await?;
    tracing::warn!(user_id = %id, revoked_sessions, "existing account made admin by the operator");
    Ok(AdminOutcome::Promoted { revoked_sessions })
}

/// Creates (or updates the password of) the application's database role and grants it
/// exactly what the API uses: rows of the application's tables (SELECT, INSERT, UPDATE,
/// DELETE) and their sequences. It owns nothing, cannot change the schema (PostgreSQL 15+
/// gives PUBLIC no CREATE on `public`), and cannot read the migration history. Run after
/// every migration, so tables a migration adds are granted too.
pub async fn ensure_app_role(db: &DbPool, role: &str, password: &str) -> Result<(), OpsError> {
    let valid = role.len() <= 63
        && role.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(OpsError::Invalid(format!(
            "role name {role:?} is not a plain identifier"
        )));
    }
    if password.len() < 16 {
        return Err(OpsError::Invalid(
            "role password is shorter than 16 characters".into(),
        ));
    }
    let storage = |e: sqlx::Error| OpsError::Storage(e.into());
    let mut tx = db.begin().await.map_err(storage)?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(&mut *tx)
        .await
        .map_err(storage)?;
    // Utility statements take no bind parameters: PostgreSQL itself quotes the name (%I)
    // and the password (%L), so neither is ever spliced into SQL by this code.
    let verb = if exists { "ALTER" } else { "CREATE" };
    let statements = [
        format!("{verb} ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD %L"),
        "GRANT CONNECT ON DATABASE %3$I TO %1$I".to_string(),
        "GRANT USAGE ON SCHEMA public TO %1$I".to_string(),
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %1$I".to_string(),
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %1$I".to_string(),
        "REVOKE ALL ON TABLE _sqlx_migrations FROM %1$I".to_string(),
    ];
    for template in statements {
        let sql: String = sqlx::query_scalar("SELECT format($1, $2::text, $3::text, current_database())")
            .bind(&template)
            .bind(role)
            .bind(password)
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
        sqlx::raw_sql(&sql).execute(&mut *tx).await.map_err(storage)?;
    }
    tx.commit().await.map_err(storage)?;
    Ok(())
}
