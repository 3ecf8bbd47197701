//! The change feed's vocabulary: what changed (`ChangeType`, `ChangeOp`), a change as the
//! client sees it, and the cursor that resumes the feed (a per-user sequence number).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cursor::{CursorError, CursorKind, PageParams};

/// The feed's page sizes (the contract: 1 to 1,000, 100 by default).
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    Entry,
    Read,
    Session,
    Goal,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Entry => "entry",
            ChangeType::Read => "read",
            ChangeType::Session => "session",
            ChangeType::Goal => "goal",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeType> {
        Some(match s {
            "entry" => ChangeType::Entry,
            "read" => ChangeType::Read,
            "session" => ChangeType::Session,
            "goal" => ChangeType::Goal,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Upsert,
    Delete,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Upsert => "upsert",
            ChangeOp::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeOp> {
        match s {
            "upsert" => Some(ChangeOp::Upsert),
            "delete" => Some(ChangeOp::Delete),
            _ => None,
        }
    }

    /// The webhook event type of a change of `kind` (`entry.upserted`, ...).
    pub fn event(self, kind: ChangeType) -> String {
        let verb = match self {
            ChangeOp::Upsert => "upserted",
            ChangeOp::Delete => "deleted",
        };
        format!("{}.{verb}", kind.as_str())
    }
}

/// One change: the resource's latest state (its own `GET`'s JSON), or null once deleted.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Change {
    #[serde(rename = "type")]
    pub kind: ChangeType,
    pub op: ChangeOp,
    /// The entry's `bookId`, the read's or session's id, the goal's year.
    pub id: String,
    #[serde(serialize_with = "crate::user::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}

/// Where a client resumes: the last sequence number it has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeCursor(pub i64);

impl ChangeCursor {
    pub fn encode(&self) -> String {
        crate::cursor::encode_number("v1c", self.0)
    }

    pub fn decode(s: &str) -> Result<ChangeCursor, CursorError> {
        crate::cursor::decode_number("v1c", s).map(ChangeCursor)
    }
}

impl CursorKind for ChangeCursor {
    fn decode(s: &str) -> Result<Self, CursorError> {
        ChangeCursor::decode(s)
    }
}

/// `limit` and `cursor` of `GET /changes` (100 by default, up to 1,000), each error naming
/// its parameter.
pub fn page_params(
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<PageParams<ChangeCursor>, Vec<crate::FieldError>> {
    PageParams::parse_within(limit, cursor, DEFAULT_LIMIT, MAX_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    #[test]
    fn a_cursor_round_trips_and_other_cursors_are_refused() {
        let c = ChangeCursor(42);
        assert_eq!(ChangeCursor::decode(&c.encode()), Ok(c));
        for bad in [
            "",
            "v1c.1",
            &URL_SAFE_NO_PAD.encode("v1c.-1"),
            &URL_SAFE_NO_PAD.encode("v1n.3"),
        ] {
            assert_eq!(ChangeCursor::decode(bad), Err(CursorError), "{bad}");
        }
    }

    #[test]
    fn limits_outside_one_to_a_thousand_are_refused() {
        let page = page_params(None, None).unwrap();
        assert_eq!((page.limit, page.after), (100, None));
        assert_eq!(page_params(Some("1000"), None).unwrap().limit, 1000);
        for bad in ["0", "1001", "x"] {
            assert!(page_params(Some(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_types_name_the_resource_and_what_happened() {
        assert_eq!(ChangeOp::Upsert.event(ChangeType::Entry), "entry.upserted");
        assert_eq!(ChangeOp::Delete.event(ChangeType::Goal), "goal.deleted");
    }
}
