//! Fixed-window failure counters for password-guess throttling.
//!
//! A check reserves its slot before the expensive work (argon2), in one statement whose row
//! lock serialises concurrent attempts on a key: 40 guesses at once get at most `limit`
//! slots, the rest are refused. A check that succeeds gives its slot back.

use crate::DbPool;
use std::time::Duration;

use crate::Result;

/// How long the longest-blocked key still has to wait, if any key is at its limit.
/// `keys` pairs each key with its limit of failures per `window`.
pub async fn blocked_for(db: &DbPool, keys: &[(&str, i32)], window: Duration) -> Result<Option<Duration>> {
    let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
    let limits: Vec<i32> = keys.iter().map(|(_, l)| *l).collect();
    let wait = sqlx::query_scalar!(
        "SELECT max(extract(epoch FROM (t.window_start + make_interval(secs => $3) - now())))::float8
         FROM login_throttle t JOIN unnest($1::text[], $2::int[]) AS k(key, lim) ON k.key = t.key
         WHERE t.failures >= k.lim AND t.window_start + make_interval(secs => $3) > now()",
        &names[..] as &[&str],
        &limits[..],
        window.as_secs_f64(),
    )
    .fetch_one(db)
    .await?;
    Ok(wait.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// Reserves one attempt against every key, each within its limit per `window`, all or none:
/// `Ok(None)` when reserved (counted as a failure until `release`d), `Ok(Some(wait))` when a
/// key is at its limit (nothing counted).
pub async fn reserve(db: &DbPool, keys: &[(&str, i32)], window: Duration) -> Result<Option<Duration>> {
    let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
    let limits: Vec<i32> = keys.iter().map(|(_, l)| *l).collect();
    let mut tx = db.begin().await?;
    // The row lock of ON CONFLICT DO UPDATE makes the limit's check and the increment one
    // step; a key at its limit is left as it is and not returned.
    let reserved = sqlx::query_scalar!(
        "INSERT INTO login_throttle (key, failures, window_start)
         SELECT k.key, 1, now() FROM unnest($1::text[], $2::int[]) AS k(key, lim) WHERE k.lim > 0
         ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN login_throttle.window_start + make_interval(secs => $3) <= now()
                            THEN 1 ELSE login_throttle.failures + 1 END,
            window_start = CASE WHEN login_throttle.window_start + make_interval(secs => $3) <= now()
                                THEN now() ELSE login_throttle.window_start END
         WHERE login_throttle.window_start + make_interval(secs => $3) <= now()
            OR login_throttle.failures < (SELECT k.lim FROM unnest($1::text[], $2::int[]) AS k(key, lim)
                                          WHERE k.key = login_throttle.key)
         RETURNING key",
        &names[..] as &[&str],
        &limits[..],
        window.as_secs_f64(),
    )
    .fetch_all(&mut *tx)
    .await?;
    if reserved.len() == keys.len() {
        tx.commit().await?;
        return Ok(None);
    }
    tx.rollback().await?;
    let wait = blocked_for(db, keys, window).await?;
    // (A window that ended between the two statements: try again in a second.)
    Ok(Some(wait.unwrap_or(Duration::from_secs(1))))
}

/// Gives back an attempt `reserve` counted (the check succeeded), on each of `keys`.
pub async fn release(db: &DbPool, keys: &[&str]) -> Result<()> {
    sqlx::query!(
        "UPDATE login_throttle SET failures = greatest(failures - 1, 0) WHERE key = ANY($1)",
        keys as &[&str],
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets the failures of `key` (a successful login clears its account's count).
pub async fn clear(db: &DbPool, key: &str) -> Result<()> {
    sqlx::query!("DELETE FROM login_throttle WHERE key = $1", key)
        .execute(db)
        .await?;
    Ok(())
}
