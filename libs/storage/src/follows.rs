//! Follows between users, and who may see whose library.

use crate::DbPool;
use bookshelf_domain::{Cursor, NewActivity, PageParams, PublicProfile, Visibility};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::activities::{self, Pending};
use crate::{Result, StorageError};

#[derive(Debug)]
pub enum FollowOutcome {
    /// A new follow, with its `followed` activity to send.
    Followed(Pending),
    /// Already following: nothing changed.
    AlreadyFollowing,
}

/// Makes `follower` follow `followee` (an unknown followee is `NotFound`); the `followed`
/// activity is written in the same transaction.
pub async fn follow(db: &DbPool, follower: Uuid, followee: Uuid) -> Result<FollowOutcome> {
    let mut tx = db.begin().await?;
    let added = sqlx::query_scalar!(
        r#"INSERT INTO follows (follower_id, followee_id)
           SELECT $1, id FROM users WHERE id = $2
           ON CONFLICT (follower_id, followee_id) DO NOTHING
           RETURNING 1 AS "one!""#,
        follower,
        followee,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if added.is_none() {
        let exists = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1) AS "exists!""#,
            followee
        )
        .fetch_one(&mut *tx)
        .await?;
        return if exists {
            Ok(FollowOutcome::AlreadyFollowing)
        } else {
            Err(StorageError::NotFound)
        };
    }
    let pending = activities::record(&mut tx, &[NewActivity::followed(follower, followee)]).await?;
    tx.commit().await?;
    Ok(FollowOutcome::Followed(pending))
}

/// Ends a follow; the followee's activities leave the follower's feed in the same
/// transaction. Not following is `NotFound`.
pub async fn unfollow(db: &DbPool, follower: Uuid, followee: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    let done = sqlx::query!(
        "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2",
        follower,
        followee,
    )
    .execute(&mut *tx)
    .await?;
    crate::one_row(done)?;
    sqlx::query!(
        "DELETE FROM feed_items WHERE reader_id = $1 AND actor_id = $2",
        follower,
        followee,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whose follows a list walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The user's followers.
    Followers,
    /// Those the user follows.
    Following,
}

struct FollowRow {
    id: Uuid,
    display_name: String,
    bio: Option<String>,
    followed_at: DateTime<Utc>,
}

/// One page of a user's followers or followees, newest follow first. An unknown user is
/// `NotFound`.
pub async fn list(
    db: &DbPool,
    user: Uuid,
    direction: Direction,
    page: PageParams,
) -> Result<(Vec<PublicProfile>, Option<Cursor>)> {
    // Always bound (see `keyset_end`): a deep page starts at its key in the index.
    let (at, id) = page.after.map_or_else(crate::keyset_end, |c| (c.at, c.id));
    let limit = page.limit + 1;
    let rows = match direction {
        Direction::Followers => {
            sqlx::query_as!(
                FollowRow,
                "SELECT u.id, u.display_name, u.bio, f.created_at AS followed_at
                 FROM follows f JOIN users u ON u.id = f.follower_id
                 WHERE f.followee_id = $1
                   AND (f.created_at, f.follower_id) < ($2, $3)
                 ORDER BY f.created_at DESC, f.follower_id DESC LIMIT $4",
                user,
                at,
                id,
                limit,
            )
            .fetch_all(db)
            .await?
        }
        Direction::Following => {
            sqlx::query_as!(
                FollowRow,
                "SELECT u.id, u.display_name, u.bio, f.created_at AS followed_at
                 FROM follows f JOIN users u ON u.id = f.followee_id
                 WHERE f.follower_id = $1
                   AND (f.created_at, f.followee_id) < ($2, $3)
                 ORDER BY f.created_at DESC, f.followee_id DESC LIMIT $4",
                user,
                at,
                id,
                limit,
            )
            .fetch_all(db)
            .await?
        }
    };
    if rows.is_empty() && page.after.is_none() {
        crate::users::get(db, user).await?;
    }
    let (rows, next) = crate::page(rows, page.limit, |r| Cursor {
        at: r.followed_at,
        id: r.id,
    });
    Ok((
        rows.into_iter()
            .map(|r| PublicProfile {
                id: r.id,
                display_name: r.display_name,
                bio: r.bio,
            })
            .collect(),
        next,
    ))
}

/// What decides whether `viewer` may see `owner`'s library: the owner's visibility and
/// whether the viewer follows them. An unknown owner is `NotFound`.
pub async fn library_access(db: &DbPool, viewer: Uuid, owner: Uuid) -> Result<(Visibility, bool)> {
    let row = sqlx::query!(
        r#"SELECT u.library_visibility AS "visibility: Visibility",
                  EXISTS (SELECT 1 FROM follows WHERE follower_id = $2 AND followee_id = u.id) AS "follows!"
           FROM users u WHERE u.id = $1"#,
        owner,
        viewer,
    )
    .fetch_optional(db)
    .await?
    .ok_or(StorageError::NotFound)?;
    Ok((row.visibility, row.follows))
}

/// Demo and benchmark data, in bulk: `count` accounts (`follower{n}@{domain}`, all with
/// `password_hash`) following `followee`. Two statements, whatever the count. Returns the
/// email of the follower the fan-out reaches last (it walks followers by follow time, then
/// id), so a benchmark can time delivery to everyone by watching that one feed.
pub async fn seed_followers(
    db: &DbPool,
    followee: Uuid,
    count: i32,
    domain: &str,
    password_hash: &str,
) -> Result<Option<String>> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        "INSERT INTO users (id, email, password_hash, display_name)
         SELECT gen_random_uuid(), 'follower' || n || '@' || $2, $3, 'Follower ' || n
         FROM generate_series(1, $1::int) AS n
         ON CONFLICT (lower(email)) DO NOTHING",
        count,
        domain,
        password_hash,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO follows (follower_id, followee_id)
         SELECT id, $1 FROM users WHERE email LIKE 'follower%@' || $2 AND id <> $1
         ON CONFLICT (follower_id, followee_id) DO NOTHING",
        followee,
        domain,
    )
    .execute(&mut *tx)
    .await?;
    let last = sqlx::query_scalar!(
        "SELECT u.email FROM follows f JOIN users u ON u.id = f.follower_id
         WHERE f.followee_id = $1 ORDER BY f.created_at DESC, f.follower_id DESC LIMIT 1",
        followee,
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("VACUUM (ANALYZE) users, follows").execute(db).await?;
    Ok(last)
}
