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
#[cfg_attr(
    feature = "sqlx",
    derive(sqlx::Type),
    sqlx(type_name = "text", rename_all = "snake_case")
)]
pub enum ReadingStatus {
    WantToRead,
    Reading,
    Read,
}

impl ReadingStatus {
    pub const ALL: &'static str = "want_to_read, reading, read";

    pub fn as_str(self) -> &'static str {
        match self {
            ReadingStatus::WantToRead => "want_to_read",
            ReadingStatus::Reading => "reading",
            ReadingStatus::Read => "read",
        }
    }

    /// Exact, case-sensitive: `READ` is not a status.
    pub fn parse(s: &str) -> Option<ReadingStatus> {
        match s {
            "want_to_read" => Some(ReadingStatus::WantToRead),
            "reading" => Some(ReadingStatus::Reading),
            "read" => Some(ReadingStatus::Read),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
