//! Property tests over every parser of untrusted input in the domain: whatever arrives,
//! parsing answers Ok or a field error, never a panic, and what it accepts is canonical.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bookshelf_domain::cursor::{Cursor, SearchCursor};
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
        let _ = SearchCursor::decode(&s);
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
            prop_assert!(book.price_cents.is_none_or(|p| p >= 0) && book.stock >= 0);
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

mod reading {
    use bookshelf_domain::reading::{
        finished_position, session_minutes, FinishInput, GoalInput, ProgressInput, StartReadInput, Target,
    };
    use chrono::{Duration, TimeZone, Utc};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// A page in a book with a page count: the percentage is the floor of page·100/count,
        /// always 0..=100, and going back from that percentage never passes the page.
        #[test]
        fn page_to_percent_floors_within_bounds(count in 1i32..=100_000, frac in 0.0f64..=1.0) {
            let page = ((count as f64) * frac).floor() as i32;
            let p = Target::Page(page).position(Some(count), "page").unwrap();
            let percent = p.percent.unwrap() as i64;
            prop_assert_eq!(p.page, Some(page));
            prop_assert_eq!(percent, page as i64 * 100 / count as i64);
            prop_assert!((0..=100).contains(&percent));
            prop_assert!(percent * count as i64 <= page as i64 * 100);
            prop_assert!((percent + 1) * count as i64 > page as i64 * 100);
            let back = Target::Percent(percent as i16).position(Some(count), "page").unwrap();
            prop_assert!(back.page.unwrap() <= page);
            prop_assert_eq!(page == count, percent == 100);
        }

        /// A percentage: the page is the floor of percent·count/100, never past the end.
        #[test]
        fn percent_to_page_floors_within_bounds(count in 1i32..=100_000, percent in 0i16..=100) {
            let p = Target::Percent(percent).position(Some(count), "page").unwrap();
            let page = p.page.unwrap() as i64;
            prop_assert_eq!(page, percent as i64 * count as i64 / 100);
            prop_assert!((0..=count as i64).contains(&page));
            prop_assert_eq!(p.percent, Some(percent));
        }

        /// Past the last page is refused, under the field it was given as; without a page
        /// count nothing is computed.
        #[test]
        fn pages_past_the_end_are_refused(count in 1i32..=100_000, over in 1i32..=1000, field in "page|endPage") {
            let e = Target::Page(count.saturating_add(over)).position(Some(count), &field).unwrap_err();
            prop_assert_eq!(e.field, field);
            let p = Target::Page(count).position(None, "page").unwrap();
            prop_assert_eq!(p.percent, None);
            let p = Target::Percent((over % 101) as i16).position(None, "page").unwrap();
            prop_assert_eq!(p.page, None);
        }

        #[test]
        fn finishing_is_always_a_hundred_percent(count in proptest::option::of(1i32..=100_000), page in proptest::option::of(0i32..=100_000)) {
            let p = finished_position(bookshelf_domain::reading::Position { page, percent: None }, count);
            prop_assert_eq!(p.percent, Some(100));
            prop_assert_eq!(p.page, count.or(page));
        }

        #[test]
        fn session_minutes_are_whole_and_capped(secs in -100_000i64..10_000_000) {
            let t = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
            let m = session_minutes(t, t + Duration::seconds(secs));
            prop_assert!((0..=1440).contains(&m));
            if (0..1440 * 60).contains(&secs) {
                prop_assert_eq!(m as i64, secs / 60);
            }
        }

        /// Whatever the body, reading inputs answer a value or field errors, never a panic.
        #[test]
        fn reading_bodies_never_panic(
            b in super::body(&["page", "percent", "startedAt", "finishedAt", "books", "endPage"])
        ) {
            let now = Utc::now();
            if let Ok(input) = serde_json::from_value::<ProgressInput>(b.clone()) {
                let _ = input.validate();
            }
            if let Ok(input) = serde_json::from_value::<StartReadInput>(b.clone()) {
                if let Ok(at) = input.validate(now) {
                    prop_assert!(at <= now + Duration::seconds(60));
                }
            }
            if let Ok(input) = serde_json::from_value::<FinishInput>(b.clone()) {
                let _ = input.validate(now);
            }
            if let Ok(input) = serde_json::from_value::<GoalInput>(b) {
                if let Ok(n) = input.validate() {
                    prop_assert!((1..=1000).contains(&n));
                }
            }
        }
    }
}
