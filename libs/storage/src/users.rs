use crate::DbPool;
use bookshelf_domain::{Cursor, PageParams, Role, User, UserCard, Visibility};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{conflict_on, Result, StorageError};

const EMAIL_KEY: &str = "users_email_lower_key";

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
    pub library_visibility: Option<Visibility>,
}

/// What a sign-in checks: whose account an email is, and its password hash.
pub struct Credentials {
    pub user_id: Uuid,
    pub password_hash: String,
}

pub async fn insert(db: impl PgExecutor<'_>, new: NewUser<'_>) -> Result<User> {
    sqlx::query_as!(
        User,
        r#"INSERT INTO users (id, email, password_hash, display_name, role)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING id, email, display_name, bio, role AS "role: Role",
                  library_visibility AS "library_visibility: Visibility", created_at, updated_at"#,
        Uuid::new_v4(),
        new.email,
        new.password_hash,
        new.display_name,
        new.role.as_str(),
    )
    .fetch_one(db)
    .await
    .map_err(conflict_on(EMAIL_KEY, "email"))
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<User> {
    sqlx::query_as!(
        User,
        r#"SELECT id, email, display_name, bio, role AS "role: Role",
                  library_visibility AS "library_visibility: Visibility", created_at, updated_at
           FROM users WHERE id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await?
    .ok_or(StorageError::NotFound)
}

/// The account with this email (ignoring case), if there is one.
pub async fn find_credentials(db: impl PgExecutor<'_>, email: &str) -> Result<Option<Credentials>> {
    Ok(sqlx::query_as!(
        Credentials,
        "SELECT id AS user_id, password_hash FROM users WHERE lower(email) = lower($1)",
        email,
    )
    .fetch_optional(db)
    .await?)
}

pub async fn password_hash(db: impl PgExecutor<'_>, id: Uuid) -> Result<String> {
    sqlx::query_scalar!("SELECT password_hash FROM users WHERE id = $1", id)
        .fetch_optional(db)
        .await?
        .ok_or(StorageError::NotFound)
}

pub async fn update_profile(db: impl PgExecutor<'_>, id: Uuid, patch: UserPatch) -> Result<User> {
    let (set_bio, bio) = match patch.bio {
        Some(b) => (true, b),
        None => (false, None),
    };
    sqlx::query_as!(
        User,
        r#"UPDATE users SET
              email = COALESCE($2, email),
              display_name = COALESCE($3, display_name),
              bio = CASE WHEN $4 THEN $5 ELSE bio END,
              library_visibility = COALESCE($6, library_visibility),
              updated_at = now()
           WHERE id = $1
           RETURNING id, email, display_name, bio, role AS "role: Role",
                  library_visibility AS "library_visibility: Visibility", created_at, updated_at"#,
        id,
        patch.email,
        patch.display_name,
        set_bio,
        bio,
        patch.library_visibility.map(Visibility::as_str),
    )
    .fetch_optional(db)
    .await
    .map_err(conflict_on(EMAIL_KEY, "email"))?
    .ok_or(StorageError::NotFound)
}

pub async fn set_password(db: impl PgExecutor<'_>, id: Uuid, hash: &str) -> Result<()> {
    let done = sqlx::query!(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        id,
        hash,
    )
    .execute(db)
    .await?;
    crate::one_row(done)
}

/// Deletes the user; their sessions and refresh tokens go with them (ON DELETE CASCADE).
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> Result<()> {
    let done = sqlx::query!("DELETE FROM users WHERE id = $1", id)
        .execute(db)
        .await?;
    crate::one_row(done)
}

/// One page of users in creation order, and the cursor of the next page if there is one.
pub async fn list(db: &DbPool, page: PageParams) -> Result<(Vec<User>, Option<Cursor>)> {
    // Always bound (see `keyset_start`): a deep page starts at its key in the index.
    let (after_at, after_id) = page.after.map_or_else(crate::keyset_start, |c| (c.at, c.id));
    let rows = sqlx::query_as!(
        User,
        r#"SELECT id, email, display_name, bio, role AS "role: Role",
                  library_visibility AS "library_visibility: Visibility", created_at, updated_at
           FROM users
           WHERE (created_at, id) > ($1, $2)
           ORDER BY created_at, id LIMIT $3"#,
        after_at,
        after_id,
        page.limit + 1,
    )
    .fetch_all(db)
    .await?;
    Ok(crate::page(rows, page.limit, |u| Cursor {
        at: u.created_at,
        id: u.id,
    }))
}

/// Makes sure an admin with this email exists, with this password. Used by the dev server
/// and the operator command; idempotent.
/// An existing account's id, role and password hash, by email (any case).
pub async fn find_account(db: impl PgExecutor<'_>, email: &str) -> Result<Option<(Uuid, Role, String)>> {
    let row = sqlx::query!(
        r#"SELECT id, role AS "role: Role", password_hash FROM users WHERE lower(email) = lower($1)"#,
        email,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.id, r.role, r.password_hash)))
}

/// Creates an admin account; `None` when the email is taken (by then, or in a race).
pub async fn create_admin(
    db: &DbPool,
    email: &str,
    password_hash: &str,
    display_name: &str,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO users (id, email, password_hash, display_name, role)
         VALUES ($1, $2, $3, $4, 'admin')
         ON CONFLICT (lower(email)) DO NOTHING
         RETURNING id",
        Uuid::new_v4(),
        email,
        password_hash,
        display_name,
    )
    .fetch_optional(db)
    .await?)
}

/// Makes an existing account an admin with this password, and revokes every one of its
/// sessions (recorded as a password change: the operator set a new one): whoever held them
/// signs in again, with the new password. Returns how many sessions were revoked.
pub async fn promote_to_admin(db: &DbPool, id: Uuid, password_hash: &str) -> Result<u64> {
    let mut tx = db.begin().await?;
    let done = sqlx::query!(
        "UPDATE users SET role = 'admin', password_hash = $2, updated_at = now() WHERE id = $1",
        id,
        password_hash,
    )
    .execute(&mut *tx)
    .await?;
    crate::one_row(done)?;
    let revoked = sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'password_change'
         WHERE user_id = $1 AND revoked_at IS NULL",
        id,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(revoked)
}

/// A user's public profile with its follow counts, and whether `viewer` follows them.
pub async fn card(db: &DbPool, viewer: Uuid, id: Uuid) -> Result<UserCard> {
    sqlx::query_as!(
        UserCard,
        r#"SELECT u.id, u.display_name, u.bio,
                  (SELECT count(*) FROM follows WHERE followee_id = u.id) AS "followers!",
                  (SELECT count(*) FROM follows WHERE follower_id = u.id) AS "following!",
                  EXISTS (SELECT 1 FROM follows WHERE follower_id = $2 AND followee_id = u.id) AS "followed_by_me!"
           FROM users u WHERE u.id = $1"#,
        id,
        viewer,
    )
    .fetch_optional(db)
    .await?
    .ok_or(StorageError::NotFound)
}
