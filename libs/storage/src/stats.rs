//! Yearly goals and reading statistics, computed by the database: one indexed query per
//! group of figures, never a user's history loaded into memory.

use crate::DbPool;
use bookshelf_domain::reading::{month_starts, year_bounds, MonthFigures};
use bookshelf_domain::{Goal, Stats};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{Result, StorageError};

/// Creates or replaces the goal for `year`.
pub async fn put_goal(db: &DbPool, user: Uuid, year: i32, books: i32) -> Result<Goal> {
    sqlx::query!(
        "INSERT INTO reading_goals (user_id, year, books) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, year) DO UPDATE SET books = EXCLUDED.books, updated_at = now()",
        user,
        year,
        books,
    )
    .execute(db)
    .await?;
    get_goal(db, user, year).await
}

pub async fn get_goal(db: &DbPool, user: Uuid, year: i32) -> Result<Goal> {
    get_goals(db, user, &[year])
        .await?
        .pop()
        .ok_or(StorageError::NotFound)
}

/// The user's goals of `years` (those set, in no order), each with the books finished in
/// its year (UTC): `get_goal` for one, the change feed for a page of them.
pub async fn get_goals(db: impl PgExecutor<'_>, user: Uuid, years: &[i32]) -> Result<Vec<Goal>> {
    if years.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as!(
        Goal,
        r#"SELECT g.year, g.books,
                  (SELECT count(*) FROM reads r WHERE r.user_id = g.user_id
                     AND r.finished_at >= make_timestamptz(g.year, 1, 1, 0, 0, 0, 'UTC')
                     AND r.finished_at < make_timestamptz(g.year + 1, 1, 1, 0, 0, 0, 'UTC')) AS "finished!"
           FROM reading_goals g WHERE g.user_id = $1 AND g.year = ANY($2)"#,
        user,
        years,
    )
    .fetch_all(db)
    .await?)
}

pub async fn delete_goal(db: &DbPool, user: Uuid, year: i32) -> Result<()> {
    let done = sqlx::query!(
        "DELETE FROM reading_goals WHERE user_id = $1 AND year = $2",
        user,
        year,
    )
    .execute(db)
    .await?;
    crate::one_row(done)
}

/// The year's statistics as the response body, from the cache when it was computed at the
/// user's current change-feed head (one indexed read), else computed (`compute`, in one
/// snapshot with the head) and cached for the next request.
pub async fn stats_body(db: &DbPool, user: Uuid, year: i32) -> Result<String> {
    let cached = sqlx::query_scalar!(
        "SELECT c.body FROM stats_cache c JOIN change_heads h ON h.user_id = c.user_id AND h.seq = c.seq
         WHERE c.user_id = $1 AND c.year = $2",
        user,
        year,
    )
    .fetch_optional(db)
    .await?;
    if let Some(body) = cached {
        return Ok(body);
    }
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let head = sqlx::query_scalar!("SELECT seq FROM change_heads WHERE user_id = $1", user)
        .fetch_optional(&mut *tx)
        .await?;
    let stats = compute(&mut tx, user, year).await?;
    tx.commit().await?;
    let body = serde_json::to_string(&stats).map_err(StorageError::Encode)?;
    // Written outside the snapshot (a concurrent writer of the row would fail it); an entry
    // never goes back to an older head.
    if let Some(head) = head {
        sqlx::query!(
            "INSERT INTO stats_cache (user_id, year, seq, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, year) DO UPDATE SET seq = EXCLUDED.seq, body = EXCLUDED.body
             WHERE stats_cache.seq < EXCLUDED.seq",
            user,
            year,
            head,
            body,
        )
        .execute(db)
        .await?;
    }
    Ok(body)
}

/// The year's statistics computed afresh (what the cache holds), in one transaction.
pub async fn stats(db: &DbPool, user: Uuid, year: i32) -> Result<Stats> {
    let mut tx = db.begin().await?;
    let stats = compute(&mut tx, user, year).await?;
    tx.commit().await?;
    Ok(stats)
}

/// The year's statistics: closed reads by month, session minutes by month, the average
/// rating of the books finished, and the goal.
async fn compute(tx: &mut crate::Conn, user: Uuid, year: i32) -> Result<Stats> {
    let (from, to) = year_bounds(year);
    let months = month_starts(year);
    // Reads closed in the year, by month: the two partial indexes find them.
    let closed = sqlx::query!(
        r#"SELECT m AS "month!", sum(finished)::bigint AS "finished!", sum(abandoned)::bigint AS "abandoned!",
                  sum(pages)::bigint AS "pages!"
           FROM (SELECT width_bucket(r.finished_at, $4::timestamptz[]) AS m,
                        1 AS finished, 0 AS abandoned, coalesce(b.page_count, 0) AS pages
                   FROM reads r JOIN books b ON b.id = r.book_id
                  WHERE r.user_id = $1 AND r.finished_at >= $2 AND r.finished_at < $3
                 UNION ALL
                 SELECT width_bucket(r.abandoned_at, $4::timestamptz[]), 0, 1, 0
                   FROM reads r
                  WHERE r.user_id = $1 AND r.abandoned_at >= $2 AND r.abandoned_at < $3) AS t
           GROUP BY m"#,
        user,
        from,
        to,
        &months,
    )
    .fetch_all(&mut *tx)
    .await?;
    // Minutes of sessions that ended in the year, from the covering index alone.
    // (`width_bucket` over the month starts: cheaper per row than `extract(month ...)`.)
    let minutes = sqlx::query!(
        r#"SELECT width_bucket(ended_at, $4::timestamptz[]) AS "month!",
                  sum(minutes)::bigint AS "minutes!"
           FROM reading_sessions
           WHERE user_id = $1 AND ended_at >= $2 AND ended_at < $3
           GROUP BY 1"#,
        user,
        from,
        to,
        &months,
    )
    .fetch_all(&mut *tx)
    .await?;
    let average_rating = sqlx::query_scalar!(
        r#"SELECT round(avg(e.rating), 2)::float8 AS average
           FROM library_entries e
           WHERE e.user_id = $1 AND e.rating IS NOT NULL
             AND e.book_id IN (SELECT book_id FROM reads
                                WHERE user_id = $1 AND finished_at >= $2 AND finished_at < $3)"#,
        user,
        from,
        to,
    )
    .fetch_one(&mut *tx)
    .await?;
    let goal_books = sqlx::query_scalar!(
        "SELECT books FROM reading_goals WHERE user_id = $1 AND year = $2",
        user,
        year,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let mut figures: Vec<MonthFigures> = closed
        .into_iter()
        .map(|c| MonthFigures {
            month: c.month as u32,
            finished: c.finished,
            abandoned: c.abandoned,
            pages: c.pages,
            minutes: 0,
        })
        .collect();
    figures.extend(minutes.into_iter().map(|m| MonthFigures {
        month: m.month as u32,
        minutes: m.minutes,
        ..MonthFigures::default()
    }));
    let mut stats = Stats::from_months(year, &figures, average_rating, None);
    // The goal's `finished` is the year's booksFinished, already counted above.
    stats.goal = goal_books.map(|books| Goal {
        year,
        books,
        finished: stats.books_finished,
    });
    Ok(stats)
}
