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
        Ok(Cursor { at, id })
    }
}

/// `limit` and `cursor` of a list request, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageParams {
    pub limit: i64,
    pub after: Option<Cursor>,
}

impl PageParams {
    /// Parses the raw query values; each error names its parameter.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<PageParams, Vec<crate::FieldError>> {
        let mut v = crate::Validator::new();
        let limit = v.check(
            "limit",
            match limit {
                None => Ok(DEFAULT_LIMIT),
                Some(s) => match s.trim().parse::<i64>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                    _ => Err(format!("must be an integer from 1 to {MAX_LIMIT}")),
                },
            },
        );
        let after = v.check(
            "cursor",
            match cursor {
                None => Ok(None),
                Some(s) => Cursor::decode(s).map(Some).map_err(|e| e.to_string()),
            },
        );
        v.finish()?;
        Ok(PageParams {
            limit: limit.unwrap_or(DEFAULT_LIMIT),
            after: after.flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn rejects_garbage_cursors() {
        for bad in ["", "abc", "!!!", &URL_SAFE_NO_PAD.encode("v2.1.x")] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(PageParams::parse(None, None).unwrap().limit, 20);
        assert_eq!(PageParams::parse(Some("100"), None).unwrap().limit, 100);
        for bad in ["0", "-1", "101", "abc", "1.5", ""] {
            let errs = PageParams::parse(Some(bad), None).unwrap_err();
            assert_eq!(errs[0].field, "limit");
        }
        let errs = PageParams::parse(Some("0"), Some("zz")).unwrap_err();
        assert_eq!(errs.len(), 2);
    }
}
