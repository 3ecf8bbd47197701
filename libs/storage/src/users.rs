use bookshelf_domain::{Cursor, PageParams, Role, User};
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::{conflict_on, Result, StorageError};

const EMAIL_KEY: &str = "users_email_lower_key";
const COLUMNS: &str = "id, email, display_name, bio, role, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    display_name: String,
    bio: Option<String>,
    role: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> User {
        User {
            id: r.id,
            email: r.email,
            display_name: r.display_name,
            bio: r.bio,
            // The CHECK constraint admits only these two values.
            role: Role::parse(&r.role).unwrap_or(Role::User),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub display_name: &'a str,
    pub role: Role,
}

/// Profile changes; `None` leaves a field alone, `bio: Some(None)` clears it.
#[derive(Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub bio: Option<Option<String>>,
}

pub async fn insert(db: impl PgExecutor<'_>, new: NewUser<'_>) -> Result<User> {
    let sql = format!(
        "INSERT INTO users (id, email, password_hash, display_name, role)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    sqlx::query_as::<_, UserRow>(&sql)
        .bind(Uuid::new_v4())
        .bind(new.email)
        .bind(new.password_hash)
        .bind(new.display_name)
        .bind(new.role.as_str())
        .fetch_one(db)
        .await
        .map(User::from)
        .map_err(conflict_on(EMAIL_KEY, "email"))
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<User> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    sqlx::query_as::<_, UserRow>(&sql)
        .bind(id)
        .fetch_optional(db)
        .await?
        .map(User::from)
        .ok_or(StorageError::NotFound)
}

/// The user with this email (ignoring case) and their password hash.
pub async fn find_credentials(db: impl PgExecutor<'_>, email: &str) -> Result<Option<(User, String)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserRow,
        password_hash: String,
    }
    let sql = format!("SELECT {COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)");
    Ok(sqlx::query_as::<_, Row>(&sql)
        .bind(email)
        .fetch_optional(db)
        .await?
        .map(|r| (User::from(r.user), r.password_hash)))
}

pub async fn password_hash(db: impl PgExecutor<'_>, id: Uuid) -> Result<String> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(StorageError::NotFound)
}

pub async fn update_profile(db: impl PgExecutor<'_>, id: Uuid, patch: UserPatch) -> Result<User> {
    let sql = format!(
        "UPDATE users SET
            email = COALESCE($2, email),
            display_name = COALESCE($3, display_name),
            bio = CASE WHEN $4 THEN $5 ELSE bio END,
            updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let (set_bio, bio) = match patch.bio {
        Some(b) => (true, b),
        None => (false, None),
    };
    sqlx::query_as::<_, UserRow>(&sql)
        .bind(id)
        .bind(patch.email)
        .bind(patch.display_name)
        .bind(set_bio)
        .bind(bio)
        .fetch_optional(db)
        .await
        .map_err(conflict_on(EMAIL_KEY, "email"))?
        .map(User::from)
        .ok_or(StorageError::NotFound)
}

pub async fn set_password(db: impl PgExecutor<'_>, id: Uuid, hash: &str) -> Result<()> {
    let done = sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StorageError::NotFound);
    }
    Ok(())
}

/// Deletes the user; their sessions and refresh tokens go with them (ON DELETE CASCADE).
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> Result<()> {
    let done = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StorageError::NotFound);
    }
    Ok(())
}

/// One page of users in creation order, and the cursor of the next page if there is one.
pub async fn list(db: &PgPool, page: PageParams) -> Result<(Vec<User>, Option<Cursor>)> {
    let sql = format!(
        "SELECT {COLUMNS} FROM users
         WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2))
         ORDER BY created_at, id LIMIT $3"
    );
    let rows: Vec<User> = sqlx::query_as::<_, UserRow>(&sql)
        .bind(page.after.map(|c| c.at))
        .bind(page.after.map(|c| c.id))
        .bind(page.limit + 1)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(User::from)
        .collect();
    Ok(crate::page(rows, page.limit, |u| Cursor {
        at: u.created_at,
        id: u.id,
    }))
}

/// Makes sure an admin with this email exists, with this password. Used by the dev server
/// and the operator command; idempotent.
pub async fn ensure_admin(db: &PgPool, email: &str, password_hash: &str, display_name: &str) -> Result<User> {
    let sql = format!(
        "INSERT INTO users (id, email, password_hash, display_name, role)
         VALUES ($1, $2, $3, $4, 'admin')
         ON CONFLICT (lower(email)) DO UPDATE
            SET role = 'admin', password_hash = EXCLUDED.password_hash, updated_at = now()
         RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as::<_, UserRow>(&sql)
        .bind(Uuid::new_v4())
        .bind(email)
        .bind(password_hash)
        .bind(display_name)
        .fetch_one(db)
        .await?
        .into())
}
