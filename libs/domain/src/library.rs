//! The personal library: a user's entries for catalog books.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::user::rfc3339;
use crate::validation::length_between;
use crate::{field, AllValid, FieldError, Input};

/// Stored as text; a value the database holds that is not a status fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadingStatus {
    WantToRead,
    Reading,
    /// A read is open but set aside (`POST /reads/{id}/pause`).
    Paused,
    Read,
    /// The last read was abandoned.
    DidNotFinish,
}

impl ReadingStatus {
    pub const ALL: &'static str = "want_to_read, reading, paused, read, did_not_finish";

    pub fn as_str(self) -> &'static str {
        match self {
            ReadingStatus::WantToRead => "want_to_read",
            ReadingStatus::Reading => "reading",
            ReadingStatus::Paused => "paused",
            ReadingStatus::Read => "read",
            ReadingStatus::DidNotFinish => "did_not_finish",
        }
    }

    /// Exact, case-sensitive: `READ` is not a status.
    pub fn parse(s: &str) -> Option<ReadingStatus> {
        match s {
            "want_to_read" => Some(ReadingStatus::WantToRead),
            "reading" => Some(ReadingStatus::Reading),
            "paused" => Some(ReadingStatus::Paused),
            "read" => Some(ReadingStatus::Read),
            "did_not_finish" => Some(ReadingStatus::DidNotFinish),
            _ => None,
        }
    }
}

/// The few book fields an entry carries.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BookSummary {
    pub id: Uuid,
    pub title: String,
    pub authors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LibraryEntry {
    pub book_id: Uuid,
    pub book: BookSummary,
    pub status: ReadingStatus,
    pub rating: Option<i16>,
    pub review: Option<String>,
    pub favorite: bool,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub added_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryInput {
    #[serde(default)]
    #[schema(value_type = ReadingStatus, required = true)]
    pub status: Input<String>,
    #[serde(default)]
    #[schema(value_type = Option<i16>, minimum = 1, maximum = 5)]
    pub rating: Input<i64>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 5000)]
    pub review: Input<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub favorite: Input<bool>,
}

/// A validated PUT: the whole entry (omitted optional fields reset).
#[derive(Debug, Clone, PartialEq)]
pub struct EntryChange {
    pub status: ReadingStatus,
    pub rating: Option<i16>,
    pub review: Option<String>,
    pub favorite: bool,
}

impl EntryInput {
    pub fn validate(self) -> Result<EntryChange, Vec<FieldError>> {
        let checked = (
            field(
                "status",
                self.status.required().and_then(|s| {
                    ReadingStatus::parse(&s).ok_or_else(|| format!("must be one of {}", ReadingStatus::ALL))
                }),
            ),
            field(
                "rating",
                self.rating.patch().map(Option::flatten).and_then(|r| {
                    r.map(|r| {
                        if (1..=5).contains(&r) {
                            Ok(r as i16)
                        } else {
                            Err("must be from 1 to 5".to_string())
                        }
                    })
                    .transpose()
                }),
            ),
            field(
                "review",
                self.review
                    .patch()
                    .map(Option::flatten)
                    .and_then(|r| r.map(|r| length_between(&r, 0, 5000).map(|()| r)).transpose()),
            ),
            field(
                "favorite",
                self.favorite.patch().map(|f| f.flatten().unwrap_or(false)),
            ),
        );
        let (status, rating, review, favorite) = checked.all_valid()?;
        Ok(EntryChange {
            status,
            rating,
            review,
            favorite,
        })
    }
}

/// The book fields an export carries.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ExportBook {
    pub id: Uuid,
    pub title: String,
    pub authors: Vec<String>,
    pub isbn: Option<String>,
}

/// One entry of `GET /library/export`, with every read of its book.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportEntry {
    pub book: ExportBook,
    pub status: ReadingStatus,
    pub rating: Option<i16>,
    pub review: Option<String>,
    pub favorite: bool,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub added_at: DateTime<Utc>,
    /// Newest start first.
    pub reads: Vec<crate::Read>,
}

/// The CSV export's columns, in order.
pub const CSV_HEADER: [&str; 11] = [
    "book_id",
    "title",
    "authors",
    "isbn",
    "status",
    "rating",
    "favorite",
    "added_at",
    "started_at",
    "finished_at",
    "review",
];

fn csv_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl ExportEntry {
    /// The entry as one CSV record: nulls are empty cells, the dates are those of the
    /// newest read (by start), `finished_at` only when that read was finished.
    pub fn csv_record(&self) -> [String; 11] {
        let newest = self.reads.iter().max_by_key(|r| (r.started_at, r.id));
        [
            self.book.id.to_string(),
            self.book.title.clone(),
            self.book.authors.join("; "),
            self.book.isbn.clone().unwrap_or_default(),
            self.status.as_str().to_string(),
            self.rating.map(|r| r.to_string()).unwrap_or_default(),
            self.favorite.to_string(),
            csv_time(self.added_at),
            newest.map(|r| csv_time(r.started_at)).unwrap_or_default(),
            newest
                .and_then(|r| r.finished_at)
                .map(csv_time)
                .unwrap_or_default(),
            self.review.clone().unwrap_or_default(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_records_take_the_newest_read_and_leave_nulls_empty() {
        use chrono::TimeZone;
        let t = |d| Utc.with_ymd_and_hms(2026, 3, d, 8, 0, 0).unwrap();
        let read = |start, finish: Option<DateTime<Utc>>| crate::Read {
            id: Uuid::new_v4(),
            book_id: Uuid::nil(),
            started_at: t(start),
            finished_at: finish,
            abandoned_at: None,
            page: None,
            percent: None,
            minutes_read: 0,
            updated_at: t(start),
        };
        let mut e = ExportEntry {
            book: ExportBook {
                id: Uuid::nil(),
                title: "Dune, \"the\" novel".into(),
                authors: vec!["Frank Herbert".into(), "Someone Else".into()],
                isbn: None,
            },
            status: ReadingStatus::Reading,
            rating: None,
            review: None,
            favorite: false,
            added_at: t(1),
            reads: vec![read(2, Some(t(3))), read(5, None)],
        };
        let r = e.csv_record();
        assert_eq!(r[2], "Frank Herbert; Someone Else");
        assert_eq!((r[3].as_str(), r[5].as_str(), r[6].as_str()), ("", "", "false"));
        assert_eq!((r[8].as_str(), r[9].as_str()), ("2026-03-05T08:00:00Z", ""));
        e.reads.truncate(1);
        let r = e.csv_record();
        assert_eq!(
            (r[8].as_str(), r[9].as_str()),
            ("2026-03-02T08:00:00Z", "2026-03-03T08:00:00Z")
        );
        e.reads.clear();
        assert_eq!(e.csv_record()[8], "");
    }

    #[test]
    fn validates_every_field() {
        let e: EntryInput = serde_json::from_value(json!({"status": "reading"})).unwrap();
        assert_eq!(
            e.validate().unwrap(),
            EntryChange {
                status: ReadingStatus::Reading,
                rating: None,
                review: None,
                favorite: false
            }
        );
        let e: EntryInput = serde_json::from_value(
            json!({"status": "READ", "rating": 6, "review": "r".repeat(5001), "favorite": "yes"}),
        )
        .unwrap();
        let mut f: Vec<String> = e.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        f.sort();
        assert_eq!(f, ["favorite", "rating", "review", "status"]);
    }
}
