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
    /// Only in the Goodreads layout (`Number of Pages`).
    #[serde(skip)]
    pub page_count: Option<i32>,
    /// Only in the Goodreads layout (`Year Published`).
    #[serde(skip)]
    pub published_year: Option<i32>,
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

/// The Goodreads export layout's columns, in order (what other trackers import).
pub const GOODREADS_HEADER: [&str; 24] = [
    "Book Id",
    "Title",
    "Author",
    "Author l-f",
    "Additional Authors",
    "ISBN",
    "ISBN13",
    "My Rating",
    "Average Rating",
    "Publisher",
    "Binding",
    "Number of Pages",
    "Year Published",
    "Original Publication Year",
    "Date Read",
    "Date Added",
    "Bookshelves",
    "Bookshelves with positions",
    "Exclusive Shelf",
    "My Review",
    "Spoiler",
    "Private Notes",
    "Read Count",
    "Owned Copies",
];

/// Goodreads' shelf for a status.
fn goodreads_shelf(status: ReadingStatus) -> &'static str {
    match status {
        ReadingStatus::WantToRead => "to-read",
        ReadingStatus::Reading => "currently-reading",
        ReadingStatus::Read => "read",
        ReadingStatus::Paused => "paused",
        ReadingStatus::DidNotFinish => "did-not-finish",
    }
}

/// Goodreads wraps ISBNs as a spreadsheet formula, so that leading zeros survive.
fn goodreads_isbn(isbn: Option<&str>) -> String {
    format!("=\"{}\"", isbn.unwrap_or_default())
}

fn goodreads_day(t: DateTime<Utc>) -> String {
    t.format("%Y/%m/%d").to_string()
}

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

    /// The entry in the Goodreads layout: cells we do not keep are empty; `Date Read` is the
    /// day of the newest finished read, `Read Count` the finished reads.
    pub fn goodreads_record(&self) -> [String; 24] {
        let finished: Vec<DateTime<Utc>> = self.reads.iter().filter_map(|r| r.finished_at).collect();
        let isbn13 = self.book.isbn.as_deref();
        let isbn10 = isbn13.and_then(crate::isbn::to_isbn10);
        let number = |n: Option<i32>| n.map(|n| n.to_string()).unwrap_or_default();
        [
            self.book.id.to_string(),
            self.book.title.clone(),
            self.book.authors.first().cloned().unwrap_or_default(),
            String::new(),
            self.book
                .authors
                .iter()
                .skip(1)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            goodreads_isbn(isbn10.as_deref()),
            goodreads_isbn(isbn13),
            self.rating.unwrap_or(0).to_string(),
            String::new(),
            String::new(),
            String::new(),
            number(self.book.page_count),
            number(self.book.published_year),
            String::new(),
            finished
                .iter()
                .max()
                .map(|t| goodreads_day(*t))
                .unwrap_or_default(),
            goodreads_day(self.added_at),
            String::new(),
            String::new(),
            goodreads_shelf(self.status).to_string(),
            self.review.clone().unwrap_or_default(),
            String::new(),
            String::new(),
            finished.len().to_string(),
            String::new(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn goodreads_records_follow_its_export_layout() {
        use chrono::TimeZone;
        let t = |m, d| Utc.with_ymd_and_hms(2026, m, d, 23, 30, 0).unwrap();
        let read = |start: DateTime<Utc>, finish: Option<DateTime<Utc>>| crate::Read {
            id: Uuid::new_v4(),
            book_id: Uuid::nil(),
            started_at: start,
            finished_at: finish,
            abandoned_at: None,
            page: None,
            percent: None,
            minutes_read: 0,
            updated_at: start,
        };
        let mut e = ExportEntry {
            book: ExportBook {
                id: Uuid::nil(),
                title: "Good Omens".into(),
                authors: vec!["Terry Pratchett".into(), "Neil Gaiman".into(), "A. Third".into()],
                isbn: Some("9780060853983".into()),
                page_count: Some(432),
                published_year: Some(1990),
            },
            status: ReadingStatus::Read,
            rating: Some(4),
            review: Some("Loved it.".into()),
            favorite: true,
            added_at: t(1, 2),
            reads: vec![
                read(t(3, 1), None),
                read(t(2, 1), Some(t(2, 9))),
                read(t(1, 3), Some(t(1, 20))),
            ],
        };
        let r = e.goodreads_record();
        assert_eq!(r.len(), GOODREADS_HEADER.len());
        assert_eq!(
            (r[2].as_str(), r[3].as_str(), r[4].as_str()),
            ("Terry Pratchett", "", "Neil Gaiman, A. Third")
        );
        assert_eq!(
            (r[5].as_str(), r[6].as_str()),
            ("=\"0060853980\"", "=\"9780060853983\"")
        );
        assert_eq!(
            (r[7].as_str(), r[11].as_str(), r[12].as_str()),
            ("4", "432", "1990")
        );
        assert_eq!((r[14].as_str(), r[15].as_str()), ("2026/02/09", "2026/01/02"));
        assert_eq!(
            (r[18].as_str(), r[19].as_str(), r[22].as_str()),
            ("read", "Loved it.", "2")
        );
        e.rating = None;
        e.status = ReadingStatus::DidNotFinish;
        e.book.isbn = None;
        e.reads.clear();
        let r = e.goodreads_record();
        assert_eq!(
            (r[5].as_str(), r[6].as_str(), r[7].as_str()),
            ("=\"\"", "=\"\"", "0")
        );
        assert_eq!(
            (r[14].as_str(), r[18].as_str(), r[22].as_str()),
            ("", "did-not-finish", "0")
        );
    }

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
                page_count: None,
                published_year: None,
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
