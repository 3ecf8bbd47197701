//! Request parsing over arbitrary bytes, paths and queries: a 4xx or a value, never a
//! panic, never a 5xx.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bookshelf_domain::{BookInput, OrderInput};
use bookshelf_http::{path_uuid, read_json, ApiError};
use lambda_http::{Body, Request, RequestExt};
use proptest::prelude::*;
use std::collections::HashMap;

fn is_client_error(e: &ApiError) -> bool {
    e.status().is_client_error()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn bodies(bytes in prop::collection::vec(any::<u8>(), 0..512), text in ".{0,200}") {
        for body in [Body::Binary(bytes.clone()), Body::Text(text.clone())] {
            let req = Request::new(body);
            if let Err(e) = read_json::<BookInput>(&req) {
                prop_assert!(is_client_error(&e), "{e:?}");
            }
            if let Err(e) = read_json::<OrderInput>(&req) {
                prop_assert!(is_client_error(&e), "{e:?}");
            }
        }
    }

    #[test]
    fn oversized_bodies_are_413(extra in 1usize..2048) {
        let req = Request::new(Body::Text(" ".repeat(64 * 1024 + extra)));
        let e = read_json::<BookInput>(&req).unwrap_err();
        prop_assert_eq!(e.status().as_u16(), 413);
    }

    #[test]
    fn path_ids(id in ".{0,60}") {
        let req = Request::new(Body::Empty).with_path_parameters(HashMap::from([("id".to_string(), id.clone())]));
        match path_uuid(&req, "id") {
            Ok(u) => prop_assert_eq!(u, uuid::Uuid::parse_str(&id).unwrap()),
            Err(e) => prop_assert_eq!(e.status().as_u16(), 400),
        }
    }
}
