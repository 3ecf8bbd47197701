//! Property tests over every parser of untrusted input in the domain: whatever arrives,
//! parsing answers Ok or a field error, never a panic, and what it accepts is canonical.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bookshelf_domain::cursor::{Cursor, RankCursor};
use bookshelf_domain::order::{idempotency_key, OrderMessage};
use bookshelf_domain::{isbn, validation, BookInput, EntryInput, OrderInput, PageParams};
use proptest::prelude::*;
use serde_json::Value;

/// Arbitrary JSON, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        "[0-9a-f-]{36}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map("[a-zA-Z]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects with the fields the API knows, holding arbitrary values.
fn body(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(fields), json()), 0..8)
        .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cursors_never_panic(s in ".{0,80}") {
        let _ = Cursor::decode(&s);
        let _ = RankCursor::decode(&s);
        let _ = PageParams::<Cursor>::parse(Some(&s), Some(&s));
    }

    #[test]
    fn cursors_round_trip(micros in -62_000_000_000_000_000i64..250_000_000_000_000_000i64, id in any::<u128>()) {
        if let Some(at) = chrono::DateTime::from_timestamp_micros(micros) {
            let c = Cursor { at, id: uuid::Uuid::from_u128(id) };
            prop_assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        }
    }

    #[test]
    fn isbns_are_canonical_when_accepted(s in "[0-9Xx -]{0,20}") {
        if let Ok(n) = isbn::normalize(&s) {
            prop_assert_eq!(n.len(), 13);
            prop_assert!(n.chars().all(|c| c.is_ascii_digit()));
            let again = isbn::normalize(&n);
            prop_assert_eq!(again.as_deref(), Ok(n.as_str()));
        }
    }

    #[test]
    fn text_validators_never_panic(s in "\\PC{0,300}") {
        let _ = validation::email(&s);
        let _ = validation::display_name(&s);
        let _ = validation::bio(&s);
        let _ = validation::password(&s);
        let _ = idempotency_key(&s);
        let _ = isbn::normalize(&s);
    }

    #[test]
    fn book_bodies_validate_without_panicking(v in body(&["title", "authors", "isbn", "publishedYear", "description", "tags", "priceCents", "stock"])) {
        let input: BookInput = serde_json::from_value(v.clone()).expect("any object deserialises");
        if let Ok(book) = input.validate_new(2026) {
            prop_assert!(book.price_cents >= 0 && book.stock >= 0);
            prop_assert!(!book.authors.is_empty() && book.authors.len() <= 20);
            prop_assert!(book.tags.iter().all(|t| t.to_lowercase() == *t));
        }
        let input: BookInput = serde_json::from_value(v).expect("any object deserialises");
        let _ = input.validate_patch(2026);
    }

    #[test]
    fn library_and_order_bodies_validate_without_panicking(
        entry in body(&["status", "rating", "review", "favorite"]),
        order in body(&["items"]),
    ) {
        let e: EntryInput = serde_json::from_value(entry).expect("any object deserialises");
        if let Ok(change) = e.validate() {
            prop_assert!(change.rating.is_none_or(|r| (1..=5).contains(&r)));
        }
        let o: OrderInput = serde_json::from_value(order).expect("any object deserialises");
        if let Ok(lines) = o.validate() {
            prop_assert!(!lines.is_empty() && lines.len() <= 50);
            prop_assert!(lines.iter().all(|l| (1..=100).contains(&l.quantity)));
        }
    }

    #[test]
    fn queue_messages_parse_or_fail_cleanly(s in ".{0,100}", v in json()) {
        let _ = serde_json::from_str::<OrderMessage>(&s);
        let _ = serde_json::from_value::<OrderMessage>(v);
    }
}
