//! Reading life: reads with a position, timed sessions, yearly goals and statistics.
//! The arithmetic and the rules on times live here; storage applies them in one
//! transaction with the rows they judge.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::user::rfc3339;
use crate::{field, rule, AllValid, Checked, FieldError, Input};

/// The largest page a book without a page count may be read to (the largest page count).
pub const MAX_PAGE: i32 = 100_000;
/// A session's minutes are capped: a timer left running overnight is one day at most.
pub const MAX_SESSION_MINUTES: i32 = 1_440;
/// Clients' clocks run a little ahead; a time at most this far in the future is "now".
pub const CLOCK_SKEW: Duration = Duration::seconds(60);

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Read {
    pub id: Uuid,
    pub book_id: Uuid,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "optional_rfc3339")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "optional_rfc3339")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub abandoned_at: Option<DateTime<Utc>>,
    #[schema(minimum = 0, maximum = 100000)]
    pub page: Option<i32>,
    #[schema(minimum = 0, maximum = 100)]
    pub percent: Option<i16>,
    /// The sum of the minutes of its ended sessions.
    pub minutes_read: i64,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl Read {
    /// Open until it is finished or abandoned; only an open read moves.
    pub fn is_open(&self) -> bool {
        self.finished_at.is_none() && self.abandoned_at.is_none()
    }

    pub fn position(&self) -> Position {
        Position {
            page: self.page,
            percent: self.percent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadingSession {
    pub id: Uuid,
    pub read_id: Uuid,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "optional_rfc3339")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Whole minutes from start to end, rounded down, at most 1,440; null while running.
    #[schema(minimum = 0, maximum = 1440)]
    pub minutes: Option<i32>,
}

pub fn optional_rfc3339<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// Whole minutes between two instants, rounded down, capped at a day.
pub fn session_minutes(started: DateTime<Utc>, ended: DateTime<Utc>) -> i32 {
    let minutes = (ended - started).num_seconds().max(0) / 60;
    minutes.min(MAX_SESSION_MINUTES as i64) as i32
}

/// Where a reader is in a book. With a page count both are known; without, only the one
/// given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub page: Option<i32>,
    pub percent: Option<i16>,
}

/// A position as a reader gives it: a page, or a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Page(i32),
    Percent(i16),
}

impl Target {
    /// Places the target in a book with (or without) a page count. A page past the last
    /// is an error on `field` (`page`, or `endPage` when a session ends there).
    pub fn position(self, page_count: Option<i32>, field: &str) -> Result<Position, FieldError> {
        match (self, page_count) {
            (Target::Page(page), Some(count)) if page > count => Err(FieldError::new(
                field,
                format!("must be from 0 to {count}, the book's page count"),
            )),
            (Target::Page(page), Some(count)) => Ok(Position {
                page: Some(page),
                // page ≤ count ≤ 100,000, so page·100 cannot overflow and the floor is ≤ 100.
                percent: Some((page as i64 * 100 / count as i64) as i16),
            }),
            (Target::Percent(percent), Some(count)) => Ok(Position {
                page: Some((percent as i64 * count as i64 / 100) as i32),
                percent: Some(percent),
            }),
            (Target::Page(page), None) => Ok(Position {
                page: Some(page),
                percent: None,
            }),
            (Target::Percent(percent), None) => Ok(Position {
                page: None,
                percent: Some(percent),
            }),
        }
    }
}

/// Where a finished read ends: at 100 %, and on the last page when the book says which.
pub fn finished_position(current: Position, page_count: Option<i32>) -> Position {
    Position {
        page: page_count.or(current.page),
        percent: Some(100),
    }
}

fn page_value(p: i64) -> Result<i32, String> {
    if (0..=MAX_PAGE as i64).contains(&p) {
        Ok(p as i32)
    } else {
        Err(format!("must be an integer from 0 to {MAX_PAGE}"))
    }
}

fn percent_value(p: i64) -> Result<i16, String> {
    if (0..=100).contains(&p) {
        Ok(p as i16)
    } else {
        Err("must be an integer from 0 to 100".to_string())
    }
}

/// `POST /reads/{id}/progress`: exactly one of `page` and `percent`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressInput {
    /// 0 to the book's page count (or 100,000 when it has none).
    #[serde(default)]
    #[schema(value_type = Option<i32>, minimum = 0, maximum = 100000)]
    pub page: Input<i64>,
    #[serde(default)]
    #[schema(value_type = Option<i16>, minimum = 0, maximum = 100)]
    pub percent: Input<i64>,
}

impl ProgressInput {
    pub fn validate(self) -> Checked<Target> {
        let (page, percent) = (
            field(
                "page",
                self.page.optional().and_then(|p| p.map(page_value).transpose()),
            ),
            field(
                "percent",
                self.percent
                    .optional()
                    .and_then(|p| p.map(percent_value).transpose()),
            ),
        )
            .all_valid()?;
        match (page, percent) {
            (Some(page), None) => Ok(Target::Page(page)),
            (None, Some(percent)) => Ok(Target::Percent(percent)),
            (Some(_), Some(_)) => Err(["page", "percent"]
                .map(|f| FieldError::new(f, "give either page or percent, not both"))
                .into()),
            (None, None) => Err(["page", "percent"]
                .map(|f| FieldError::new(f, "one of page and percent is required"))
                .into()),
        }
    }
}

/// An optional instant in a body: absent or null is "now"; a time more than a minute
/// ahead of `now` is refused.
fn moment(input: Input<String>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let Some(raw) = input.patch()?.flatten() else {
        return Ok(now);
    };
    let at = DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| "must be an RFC 3339 date-time such as 2026-11-25T12:00:00Z".to_string())?
        .with_timezone(&Utc);
    if at > now + CLOCK_SKEW {
        return Err("must not be in the future".to_string());
    }
    // Whole seconds, as every time is shown: a client that sends back a shown time means
    // that instant, not one a fraction of a second before the stored one.
    Ok(truncate_to_second(at))
}

pub fn truncate_to_second(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// `POST /library/{bookId}/reads`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartReadInput {
    /// Defaults to now; not in the future.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Input<String>,
}

impl StartReadInput {
    pub fn validate(self, now: DateTime<Utc>) -> Checked<DateTime<Utc>> {
        field("startedAt", moment(self.started_at, now))
    }
}

/// `POST /reads/{id}/finish`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FinishInput {
    /// Defaults to now; not in the future, not before the read started.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Input<String>,
}

/// `POST /reads/{id}/abandon`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AbandonInput {
    /// Defaults to now; not in the future, not before the read started.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub abandoned_at: Input<String>,
}

/// How a read closes, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    Finished(DateTime<Utc>),
    Abandoned(DateTime<Utc>),
}

impl Closing {
    pub fn at(self) -> DateTime<Utc> {
        match self {
            Closing::Finished(at) | Closing::Abandoned(at) => at,
        }
    }

    fn field(self) -> &'static str {
        match self {
            Closing::Finished(_) => "finishedAt",
            Closing::Abandoned(_) => "abandonedAt",
        }
    }

    /// A read cannot close before it started (judged against the stored start).
    pub fn check_against(self, started_at: DateTime<Utc>) -> Checked<Closing> {
        rule(
            self.field(),
            self.at() < started_at,
            "must not be before the read's startedAt",
        )
        .map(|()| self)
    }
}

impl FinishInput {
    pub fn validate(self, now: DateTime<Utc>) -> Checked<Closing> {
        field("finishedAt", moment(self.finished_at, now)).map(Closing::Finished)
    }
}

impl AbandonInput {
    pub fn validate(self, now: DateTime<Utc>) -> Checked<Closing> {
        field("abandonedAt", moment(self.abandoned_at, now)).map(Closing::Abandoned)
    }
}

/// `POST /sessions/{id}/end`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndSessionInput {
    /// Where the reader stopped; the read moves there as with `/progress`.
    #[serde(default)]
    #[schema(value_type = Option<i32>, minimum = 0, maximum = 100000)]
    pub end_page: Input<i64>,
}

impl EndSessionInput {
    pub fn validate(self) -> Checked<Option<Target>> {
        field(
            "endPage",
            self.end_page
                .patch()
                .map(Option::flatten)
                .and_then(|p| p.map(page_value).transpose()),
        )
        .map(|p| p.map(Target::Page))
    }
}

/// A reading goal for a calendar year (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Goal {
    pub year: i32,
    /// Books to finish in the year.
    #[schema(minimum = 1, maximum = 1000)]
    pub books: i32,
    /// Reads finished in the year so far.
    pub finished: i64,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct GoalInput {
    #[serde(default)]
    #[schema(value_type = i32, minimum = 1, maximum = 1000, required = true)]
    pub books: Input<i64>,
}

impl GoalInput {
    pub fn validate(self) -> Checked<i32> {
        field(
            "books",
            self.books.required().and_then(|b| {
                if (1..=1000).contains(&b) {
                    Ok(b as i32)
                } else {
                    Err("must be an integer from 1 to 1000".to_string())
                }
            }),
        )
    }
}

/// A year in a goal path or `stats?year=`: 1900 to next year.
pub fn year(raw: &str, current_year: i32) -> Result<i32, String> {
    let max = current_year + 1;
    match raw.trim().parse::<i32>() {
        Ok(y) if (1900..=max).contains(&y) && raw.trim() == raw => Ok(y),
        _ => Err(format!("must be a year from 1900 to {max}")),
    }
}

/// The half-open UTC interval `[1 January year, 1 January year+1)`.
pub fn year_bounds(year: i32) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = |y: i32| {
        Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0)
            .single()
            .expect("1 January exists in every year 1900..=9999")
    };
    (start(year), start(year + 1))
}

/// The first instant of each month of `year` in UTC: the thresholds the stats queries
/// bucket times by (`width_bucket`), cheaper per row than converting every time to a date.
pub fn month_starts(year: i32) -> Vec<DateTime<Utc>> {
    (1..=12)
        .filter_map(|m| Utc.with_ymd_and_hms(year, m, 1, 0, 0, 0).single())
        .collect()
}

pub fn current_year(now: DateTime<Utc>) -> i32 {
    now.year()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthStats {
    #[schema(minimum = 1, maximum = 12)]
    pub month: u32,
    pub books_finished: i64,
    pub pages_read: i64,
    pub minutes_read: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub year: i32,
    pub books_finished: i64,
    pub books_abandoned: i64,
    pub pages_read: i64,
    pub minutes_read: i64,
    /// Mean rating (2 decimals) of the distinct books finished in the year that have one.
    pub average_rating: Option<f64>,
    /// Always twelve, January first.
    pub months: Vec<MonthStats>,
    pub goal: Option<Goal>,
}

/// Per-month figures as the database groups them (months with nothing are absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MonthFigures {
    pub month: u32,
    pub finished: i64,
    pub abandoned: i64,
    pub pages: i64,
    pub minutes: i64,
}

impl Stats {
    /// The year's figures from its months: totals are the months' sums, so the two can
    /// never disagree.
    pub fn from_months(
        year: i32,
        figures: &[MonthFigures],
        average_rating: Option<f64>,
        goal: Option<Goal>,
    ) -> Stats {
        let mut months: Vec<MonthStats> = (1..=12)
            .map(|month| MonthStats {
                month,
                ..MonthStats::default()
            })
            .collect();
        let mut abandoned = 0;
        for f in figures {
            if let Some(m) = months.get_mut((f.month as usize).wrapping_sub(1)) {
                m.books_finished += f.finished;
                m.pages_read += f.pages;
                m.minutes_read += f.minutes;
                abandoned += f.abandoned;
            }
        }
        Stats {
            year,
            books_finished: months.iter().map(|m| m.books_finished).sum(),
            books_abandoned: abandoned,
            pages_read: months.iter().map(|m| m.pages_read).sum(),
            minutes_read: months.iter().map(|m| m.minutes_read).sum(),
            average_rating,
            months,
            goal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn progress(v: serde_json::Value) -> Checked<Target> {
        serde_json::from_value::<ProgressInput>(v).unwrap().validate()
    }

    fn fields(errs: Vec<FieldError>) -> Vec<String> {
        let mut f: Vec<String> = errs.into_iter().map(|e| e.field).collect();
        f.sort();
        f
    }

    #[test]
    fn progress_takes_exactly_one_of_page_and_percent() {
        assert_eq!(progress(json!({"page": 12})), Ok(Target::Page(12)));
        assert_eq!(progress(json!({"percent": 100})), Ok(Target::Percent(100)));
        assert_eq!(fields(progress(json!({})).unwrap_err()), ["page", "percent"]);
        assert_eq!(
            fields(progress(json!({"page": 1, "percent": 1})).unwrap_err()),
            ["page", "percent"]
        );
        assert_eq!(
            fields(progress(json!({"page": -1, "percent": 101})).unwrap_err()),
            ["page", "percent"]
        );
        assert_eq!(fields(progress(json!({"page": "3"})).unwrap_err()), ["page"]);
        assert_eq!(fields(progress(json!({"page": 100_001})).unwrap_err()), ["page"]);
        assert_eq!(fields(progress(json!({"page": null})).unwrap_err()), ["page"]);
    }

    #[test]
    fn positions_floor_both_ways() {
        assert_eq!(
            Target::Page(1).position(Some(3), "page"),
            Ok(Position {
                page: Some(1),
                percent: Some(33)
            })
        );
        assert_eq!(
            Target::Percent(50).position(Some(333), "page"),
            Ok(Position {
                page: Some(166),
                percent: Some(50)
            })
        );
        assert_eq!(
            Target::Page(7).position(None, "page"),
            Ok(Position {
                page: Some(7),
                percent: None
            })
        );
        assert_eq!(
            Target::Page(4).position(Some(3), "endPage").unwrap_err().field,
            "endPage"
        );
        assert_eq!(
            finished_position(Position::default(), None),
            Position {
                page: None,
                percent: Some(100)
            }
        );
    }

    #[test]
    fn times_default_to_now_and_refuse_the_future() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let start = |v| serde_json::from_value::<StartReadInput>(v).unwrap().validate(now);
        assert_eq!(start(json!({})), Ok(now));
        assert_eq!(start(json!({"startedAt": null})), Ok(now));
        assert_eq!(
            start(json!({"startedAt": "2026-12-02T13:00:30+01:00"})),
            Ok(now + Duration::seconds(30)),
            "within the clock skew, in another offset"
        );
        assert_eq!(
            start(json!({"startedAt": "2026-01-01T00:00:00.900Z"})),
            Ok(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
            "whole seconds"
        );
        for bad in [json!("2026-12-02T12:01:01Z"), json!("yesterday"), json!(5)] {
            assert_eq!(
                fields(start(json!({ "startedAt": bad })).unwrap_err()),
                ["startedAt"]
            );
        }
        let finish = serde_json::from_value::<FinishInput>(json!({"finishedAt": "2026-03-01T00:00:00Z"}))
            .unwrap()
            .validate(now)
            .unwrap();
        let started = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        assert_eq!(fields(finish.check_against(started).unwrap_err()), ["finishedAt"]);
        assert!(
            finish.check_against(finish.at()).is_ok(),
            "the same instant is fine"
        );
    }

    #[test]
    fn session_minutes_round_down_and_cap() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(session_minutes(t, t + Duration::seconds(59)), 0);
        assert_eq!(session_minutes(t, t + Duration::seconds(61)), 1);
        assert_eq!(session_minutes(t, t + Duration::days(3)), 1440);
    }

    #[test]
    fn years_and_goals() {
        assert_eq!(year("2026", 2026), Ok(2026));
        assert_eq!(year("2027", 2026), Ok(2027));
        for bad in ["1899", "2028", "abc", " 2026", "2026.0", ""] {
            assert!(year(bad, 2026).is_err(), "{bad:?}");
        }
        let starts = month_starts(2024);
        assert_eq!(starts.len(), 12);
        assert_eq!(starts[1].to_rfc3339(), "2024-02-01T00:00:00+00:00");
        let (a, b) = year_bounds(2026);
        assert_eq!(
            (a.to_rfc3339(), b.to_rfc3339()),
            (
                "2026-01-01T00:00:00+00:00".into(),
                "2027-01-01T00:00:00+00:00".into()
            )
        );
        let g = |v| serde_json::from_value::<GoalInput>(v).unwrap().validate();
        assert_eq!(g(json!({"books": 12})), Ok(12));
        for bad in [
            json!({}),
            json!({"books": 0}),
            json!({"books": 1001}),
            json!({"books": "1"}),
        ] {
            assert_eq!(fields(g(bad).unwrap_err()), ["books"]);
        }
    }

    #[test]
    fn stats_always_have_twelve_months_that_sum_to_the_totals() {
        let s = Stats::from_months(
            2026,
            &[
                MonthFigures {
                    month: 3,
                    finished: 2,
                    abandoned: 1,
                    pages: 500,
                    minutes: 0,
                },
                MonthFigures {
                    month: 12,
                    finished: 1,
                    abandoned: 0,
                    pages: 0,
                    minutes: 90,
                },
            ],
            Some(4.5),
            None,
        );
        assert_eq!(s.months.len(), 12);
        assert_eq!(
            (s.books_finished, s.books_abandoned, s.pages_read, s.minutes_read),
            (3, 1, 500, 90)
        );
        assert_eq!(s.months[2].books_finished, 2);
        assert_eq!(s.months[11].minutes_read, 90);
    }
}
