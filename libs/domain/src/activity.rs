//! Activities: what a reader did, as their followers' feeds show it, and the rules of
//! which actions make one and who may see it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::user::{rfc3339, Visibility};
use crate::{BookSummary, ReadingStatus};

/// Stored as text; a value the database holds that is not a type fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivityType {
    /// A library entry was created; `status` is its status.
    Shelved,
    StartedReading,
    FinishedReading,
    /// An entry's rating changed to a new, non-null value.
    Rated,
    /// The actor followed `subject`.
    Followed,
}

impl ActivityType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityType::Shelved => "shelved",
            ActivityType::StartedReading => "started_reading",
            ActivityType::FinishedReading => "finished_reading",
            ActivityType::Rated => "rated",
            ActivityType::Followed => "followed",
        }
    }

    pub fn parse(s: &str) -> Option<ActivityType> {
        [
            ActivityType::Shelved,
            ActivityType::StartedReading,
            ActivityType::FinishedReading,
            ActivityType::Rated,
            ActivityType::Followed,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    /// Book activities show only to readers who may see the actor's library; a follow
    /// shows whatever the actor's visibility.
    pub fn is_about_a_book(self) -> bool {
        self != ActivityType::Followed
    }

    /// Whether a reader who follows the actor (since before the activity) sees it now.
    pub fn visible(self, actor_visibility: Visibility, reader_follows_actor: bool) -> bool {
        !self.is_about_a_book() || actor_visibility.lets_see(false, reader_follows_actor)
    }
}

/// A person as an activity names them.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonRef {
    pub id: Uuid,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: ActivityType,
    pub actor: PersonRef,
    pub book: Option<BookSummary>,
    pub subject: Option<PersonRef>,
    /// The new entry's status (`shelved`).
    pub status: Option<ReadingStatus>,
    /// The new rating (`rated`).
    #[schema(minimum = 1, maximum = 5)]
    pub rating: Option<i16>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

/// An activity to record, in the transaction of the action that causes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewActivity {
    pub actor: Uuid,
    pub kind: ActivityType,
    pub book: Option<Uuid>,
    pub subject: Option<Uuid>,
    pub status: Option<ReadingStatus>,
    pub rating: Option<i16>,
}

impl NewActivity {
    fn about_book(actor: Uuid, kind: ActivityType, book: Uuid) -> NewActivity {
        NewActivity {
            actor,
            kind,
            book: Some(book),
            subject: None,
            status: None,
            rating: None,
        }
    }

    pub fn shelved(actor: Uuid, book: Uuid, status: ReadingStatus) -> NewActivity {
        NewActivity {
            status: Some(status),
            ..Self::about_book(actor, ActivityType::Shelved, book)
        }
    }

    pub fn started_reading(actor: Uuid, book: Uuid) -> NewActivity {
        Self::about_book(actor, ActivityType::StartedReading, book)
    }

    pub fn finished_reading(actor: Uuid, book: Uuid) -> NewActivity {
        Self::about_book(actor, ActivityType::FinishedReading, book)
    }

    pub fn rated(actor: Uuid, book: Uuid, rating: i16) -> NewActivity {
        NewActivity {
            rating: Some(rating),
            ..Self::about_book(actor, ActivityType::Rated, book)
        }
    }

    pub fn followed(actor: Uuid, subject: Uuid) -> NewActivity {
        NewActivity {
            actor,
            kind: ActivityType::Followed,
            book: None,
            subject: Some(subject),
            status: None,
            rating: None,
        }
    }
}

/// What a library write makes: `shelved` when the entry is new, `rated` when the rating
/// became a non-null value other than the one just before (a new entry's "before" is none).
pub fn entry_activities(
    actor: Uuid,
    book: Uuid,
    created: bool,
    status: ReadingStatus,
    old_rating: Option<i16>,
    new_rating: Option<i16>,
) -> Vec<NewActivity> {
    let mut made = Vec::new();
    if created {
        made.push(NewActivity::shelved(actor, book, status));
    }
    if let Some(r) = new_rating {
        if old_rating != Some(r) {
            made.push(NewActivity::rated(actor, book, r));
        }
    }
    made
}

/// The feed queue's message: one activity to fan out, from its first follower or, for a
/// message that continues a fan-out another one began, after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityMessage {
    pub activity_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<FollowerCursor>,
}

/// A place in an actor's followers, in the order a fan-out walks them (follow time, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowerCursor {
    pub followed_at: chrono::DateTime<chrono::Utc>,
    pub follower_id: Uuid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_writes_make_shelved_and_rated_as_the_contract_says() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let kinds = |created, old, new| -> Vec<ActivityType> {
            entry_activities(a, b, created, ReadingStatus::Read, old, new)
                .into_iter()
                .map(|x| x.kind)
                .collect()
        };
        assert_eq!(
            kinds(true, None, Some(4)),
            [ActivityType::Shelved, ActivityType::Rated]
        );
        assert_eq!(kinds(true, None, None), [ActivityType::Shelved]);
        assert_eq!(kinds(false, Some(4), Some(4)), [], "unchanged");
        assert_eq!(kinds(false, Some(4), None), [], "clearing makes nothing");
        assert_eq!(kinds(false, None, Some(2)), [ActivityType::Rated]);
        assert_eq!(kinds(false, Some(2), Some(5)), [ActivityType::Rated]);
    }

    #[test]
    fn follows_show_whatever_the_visibility_books_only_when_allowed() {
        use Visibility::*;
        assert!(ActivityType::Followed.visible(Private, true));
        assert!(!ActivityType::Shelved.visible(Private, true));
        assert!(ActivityType::Rated.visible(Followers, true));
        assert!(!ActivityType::Rated.visible(Followers, false));
        assert!(ActivityType::FinishedReading.visible(Public, false));
        let m: ActivityMessage =
            serde_json::from_str(r#"{"activityId":"00000000-0000-0000-0000-000000000001"}"#).unwrap();
        assert_eq!(m.activity_id, Uuid::from_u128(1));
    }
}
