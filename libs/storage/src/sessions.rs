//! Sessions and their rotating refresh tokens.

use crate::coalesce::{Coalescer, Loaded};
use crate::DbPool;
use bookshelf_domain::{Role, User};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{users, Result};

/// Starts a session for `user` with its first refresh token (stored as a hash).
pub async fn create(db: &DbPool, user: Uuid, refresh_hash: &[u8], expires_at: DateTime<Utc>) -> Result<Uuid> {
    let id = Uuid::new_v4();
    let mut tx = db.begin().await?;
    sqlx::query!("INSERT INTO sessions (id, user_id) VALUES ($1, $2)", id, user)
        .execute(&mut *tx)
        .await?;
    insert_refresh_token(&mut *tx, refresh_hash, id, expires_at).await?;
    tx.commit().await?;
    Ok(id)
}

#[derive(Debug)]
pub enum RefreshOutcome {
    /// The token was good: it is now spent, and `new_hash` is the session's live token.
    Rotated { user: User, session_id: Uuid },
    /// The token had been used before: somebody holds a copy, so the session is revoked.
    Reused { session_id: Uuid },
    /// Unknown, expired, or its session is over.
    Invalid,
}

/// Spends the refresh token with hash `hash` and stores `new_hash` as its successor, in one
/// transaction. The row lock makes two concurrent uses of one token a reuse, never two
/// successful rotations.
pub async fn rotate(
    db: &DbPool,
    hash: &[u8],
    new_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<RefreshOutcome> {
    let mut tx = db.begin().await?;
    let row = sqlx::query!(
        r#"SELECT rt.session_id, s.user_id, rt.used_at IS NOT NULL AS "used!",
                  rt.expires_at <= now() AS "expired!", s.revoked_at IS NOT NULL AS "revoked!"
           FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
           WHERE rt.token_hash = $1
           FOR UPDATE OF rt, s"#,
        hash,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(RefreshOutcome::Invalid);
    };
    if row.used {
        if !row.revoked {
            revoke(&mut *tx, row.session_id, "refresh_reuse").await?;
        }
        tx.commit().await?;
        return Ok(RefreshOutcome::Reused {
            session_id: row.session_id,
        });
    }
    if row.revoked || row.expired {
        return Ok(RefreshOutcome::Invalid);
    }
    sqlx::query!(
        "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1",
        hash
    )
    .execute(&mut *tx)
    .await?;
    insert_refresh_token(&mut *tx, new_hash, row.session_id, expires_at).await?;
    let user = users::get(&mut *tx, row.user_id).await?;
    tx.commit().await?;
    Ok(RefreshOutcome::Rotated {
        user,
        session_id: row.session_id,
    })
}

async fn insert_refresh_token(
    db: impl PgExecutor<'_>,
    hash: &[u8],
    session: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        hash,
        session,
        expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes one session; revoking an already revoked session keeps the first reason.
pub async fn revoke(db: impl PgExecutor<'_>, session: Uuid, reason: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
         WHERE id = $1 AND revoked_at IS NULL",
        session,
        reason,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes every live session of `user` except `keep`.
pub async fn revoke_others(db: impl PgExecutor<'_>, user: Uuid, keep: Uuid, reason: &str) -> Result<u64> {
    let done = sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
         WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
        user,
        keep,
        reason,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// What the authorizer needs to know about a token's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Live, belonging to the token's user, whose current role is this.
    Active(Role),
    /// Revoked, unknown, or not this user's (the user may have been deleted).
    Inactive,
}

/// The authorizer's session checks. Every check is a query that starts after it was asked
/// for (revocation is immediate); checks that arrive together share one (`coalesce`).
pub(crate) struct SessionChecks(Coalescer<(Uuid, Uuid), Role>);

impl Default for SessionChecks {
    fn default() -> Self {
        SessionChecks(Coalescer::new(load_statuses))
    }
}

impl SessionChecks {
    async fn status(&self, db: &DbPool, session: Uuid, user: Uuid) -> Result<SessionStatus> {
        let role = self.0.get(db, (session, user)).await?;
        Ok(role.map_or(SessionStatus::Inactive, SessionStatus::Active))
    }
}

/// Whether `session` is live and `user`'s, and the user's role now: the authorizer's check,
/// through the pool's `SessionChecks`.
pub async fn status(db: &DbPool, session: Uuid, user: Uuid) -> Result<SessionStatus> {
    db.coalesced().sessions.status(db, session, user).await
}

/// The live sessions among `keys` (session, user), with their users' roles. A key whose
/// session belongs to another user matches no row, as it has no session.
fn load_statuses(db: DbPool, keys: Vec<(Uuid, Uuid)>) -> Loaded<(Uuid, Uuid), Role> {
    Box::pin(async move {
        let ids: Vec<Uuid> = keys.iter().map(|(session, _)| *session).collect();
        // The ids behind a subquery, so the plan is cached (the `coalesce` module says why).
        let rows = sqlx::query!(
            r#"SELECT s.id, s.user_id, u.role AS "role: Role"
               FROM sessions s JOIN users u ON u.id = s.user_id
               WHERE s.id = ANY((SELECT $1::uuid[])::uuid[]) AND s.revoked_at IS NULL"#,
            &ids,
        )
        .fetch_all(&db)
        .await?;
        Ok(rows.into_iter().map(|r| ((r.id, r.user_id), r.role)).collect())
    })
}
