//! Keyset pagination: `limit` parsing and opaque cursors.
//!
//! A cursor is the sort key of the last item of a page, base64url-encoded behind a
//! version tag, so clients cannot depend on its insides and we can change them later.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// The position after which the next page starts: a timestamp and an id as tie-breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a cursor this API issued")]
pub struct CursorError;

impl Cursor {
    pub fn encode(&self) -> String {
        let raw = format!("v1.{}.{}", self.at.timestamp_micros(), self.id);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(s: &str) -> Result<Cursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| CursorError)?;
        let raw = String::from_utf8(bytes).map_err(|_| CursorError)?;
        let mut parts = raw.splitn(3, '.');
        if parts.next() != Some("v1") {
            return Err(CursorError);
        }
        let micros: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or(CursorError)?;
        let id = parts
            .next()
            .and_then(|p| Uuid::parse_str(p).ok())
            .ok_or(CursorError)?;
        let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or(CursorError)?;
        // Within what a row of ours can hold: chrono reaches 262,000 BC, PostgreSQL's
        // timestamptz only 4713 BC, and a forged cursor must be a 400, not a database error.
        if !(1..=9999).contains(&chrono::Datelike::year(&at)) {
            return Err(CursorError);
        }
        Ok(Cursor { at, id })
    }
}

/// A position in a search's results: its relevance tier (1: the title or authors match,
/// 2: only the description does), then newest first by creation time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCursor {
    pub tier: i16,
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl SearchCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "v1s.{}.{}.{}",
            self.tier,
            self.at.timestamp_micros(),
            self.id
        ))
    }

    pub fn decode(s: &str) -> Result<SearchCursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| CursorError)?;
        let raw = String::from_utf8(bytes).map_err(|_| CursorError)?;
        let rest = raw.strip_prefix("v1s.").ok_or(CursorError)?;
        let (tier, rest) = rest.split_once('.').ok_or(CursorError)?;
        let tier: i16 = tier
            .parse()
            .ok()
            .filter(|t| (1..=2).contains(t))
            .ok_or(CursorError)?;
        // The rest is a plain cursor's inside: the same checks of its time and id.
        let Cursor { at, id } = Cursor::decode(&URL_SAFE_NO_PAD.encode(format!("v1.{rest}")))?;
        Ok(SearchCursor { tier, at, id })
    }
}

/// A position in a list ordered by a number (an import's rows, in file order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberCursor(pub i32);

impl NumberCursor {
    pub fn encode(&self) -> String {
        encode_number("v1n", self.0.into())
    }

    pub fn decode(s: &str) -> Result<NumberCursor, CursorError> {
        let n = decode_number("v1n", s)?;
        i32::try_from(n).map(NumberCursor).map_err(|_| CursorError)
    }
}

impl CursorKind for NumberCursor {
    fn decode(s: &str) -> Result<Self, CursorError> {
        NumberCursor::decode(s)
    }
}

/// A cursor that is a number (never negative) behind its list's tag: an import's row, a
/// change's sequence number.
pub fn encode_number(tag: &str, n: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}.{n}"))
}

/// The number of a cursor `encode_number` made with `tag`; anything else is refused.
pub fn decode_number(tag: &str, s: &str) -> Result<i64, CursorError> {
    let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| CursorError)?;
    let raw = String::from_utf8(bytes).map_err(|_| CursorError)?;
    raw.strip_prefix(tag)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or(CursorError)
}

/// Anything that can stand behind `?cursor=`.
pub trait CursorKind: Sized {
    fn decode(s: &str) -> Result<Self, CursorError>;
}

impl CursorKind for Cursor {
    fn decode(s: &str) -> Result<Self, CursorError> {
        Cursor::decode(s)
    }
}

impl CursorKind for SearchCursor {
    fn decode(s: &str) -> Result<Self, CursorError> {
        SearchCursor::decode(s)
    }
}

/// `limit` and `cursor` of a list request, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageParams<C = Cursor> {
    pub limit: i64,
    pub after: Option<C>,
}

impl<C: CursorKind> PageParams<C> {
    /// Parses the raw query values; each error names its parameter.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<PageParams<C>, Vec<crate::FieldError>> {
        Self::parse_within(limit, cursor, DEFAULT_LIMIT, MAX_LIMIT)
    }

    /// As `parse`, for a list with page sizes of its own (`default`, at most `max`).
    pub fn parse_within(
        limit: Option<&str>,
        cursor: Option<&str>,
        default: i64,
        max: i64,
    ) -> Result<PageParams<C>, Vec<crate::FieldError>> {
        let limit = crate::field(
            "limit",
            match limit {
                None => Ok(default),
                Some(s) => match s.trim().parse::<i64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(format!("must be an integer from 1 to {max}")),
                },
            },
        );
        let after = crate::field(
            "cursor",
            match cursor {
                None => Ok(None),
                Some(s) => C::decode(s).map(Some).map_err(|e| e.to_string()),
            },
        );
        let (limit, after) = crate::AllValid::all_valid((limit, after))?;
        Ok(PageParams { limit, after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_outside_what_a_row_can_hold_is_refused() {
        let forge = |micros: i64| URL_SAFE_NO_PAD.encode(format!("v1.{micros}.{}", Uuid::nil()));
        // 200,000 BC and 200,000 AD: chrono takes both, PostgreSQL neither.
        for micros in [-6_311_433_600_000_000_000, 6_248_000_000_000_000_000] {
            assert!(DateTime::<Utc>::from_timestamp_micros(micros).is_some());
            assert_eq!(Cursor::decode(&forge(micros)), Err(CursorError), "{micros}");
        }
        let now = Cursor {
            at: Utc::now(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&now.encode()).unwrap().id, now.id);
    }

    #[test]
    fn cursor_round_trips_with_microseconds() {
        let at = DateTime::<Utc>::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let c = Cursor {
            at,
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
    }

    #[test]
    fn search_cursor_round_trips_and_refuses_the_others() {
        let c = SearchCursor {
            tier: 2,
            at: DateTime::<Utc>::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(SearchCursor::decode(&c.encode()), Ok(c));
        let plain = Cursor { at: c.at, id: c.id }.encode();
        assert!(SearchCursor::decode(&plain).is_err());
        assert!(Cursor::decode(&c.encode()).is_err());
        for forged in [
            format!("v1s.3.1764000000123456.{}", c.id),
            format!("v1s.0.1764000000123456.{}", c.id),
            format!("v1s.1.-6311433600000000000.{}", c.id),
            "v1s.1.12.not-a-uuid".to_string(),
        ] {
            assert!(
                SearchCursor::decode(&URL_SAFE_NO_PAD.encode(&forged)).is_err(),
                "{forged}"
            );
        }
    }

    #[test]
    fn number_cursors_round_trip_and_refuse_the_others() {
        assert_eq!(
            NumberCursor::decode(&NumberCursor(42).encode()),
            Ok(NumberCursor(42))
        );
        assert!(NumberCursor::decode(&URL_SAFE_NO_PAD.encode("v1n.-1")).is_err());
        assert!(NumberCursor::decode(
            &Cursor {
                at: Utc::now(),
                id: Uuid::nil()
            }
            .encode()
        )
        .is_err());
    }

    #[test]
    fn rejects_garbage_cursors() {
        for bad in ["", "abc", "!!!", &URL_SAFE_NO_PAD.encode("v2.1.x")] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits() {
        type P = PageParams<Cursor>;
        assert_eq!(P::parse(None, None).unwrap().limit, 20);
        assert_eq!(P::parse(Some("100"), None).unwrap().limit, 100);
        for bad in ["0", "-1", "101", "abc", "1.5", ""] {
            let errs = P::parse(Some(bad), None).unwrap_err();
            assert_eq!(errs[0].field, "limit");
        }
        let errs = P::parse(Some("0"), Some("zz")).unwrap_err();
        assert_eq!(errs.len(), 2);
    }
}
