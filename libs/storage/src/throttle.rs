//! Fixed-window failure counters for login throttling.

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

/// Counts one failure against every key, starting a new window where the old one is over.
pub async fn record_failure(db: &DbPool, keys: &[&str], window: Duration) -> Result<()> {
    sqlx::query!(
        "INSERT INTO login_throttle (key, failures, window_start)
         SELECT k, 1, now() FROM unnest($1::text[]) AS k
         ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN login_throttle.window_start + make_interval(secs => $2) <= now()
                            THEN 1 ELSE login_throttle.failures + 1 END,
            window_start = CASE WHEN login_throttle.window_start + make_interval(secs => $2) <= now()
                                THEN now() ELSE login_throttle.window_start END",
        keys as &[&str],
        window.as_secs_f64(),
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
