//! Token verification over arbitrary input: never a panic, never an acceptance.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bookshelf_auth::{SigningKeys, TokenVerifier};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn garbage_is_refused(s in ".{0,300}") {
        let keys = SigningKeys::generate();
        prop_assert!(TokenVerifier::new(keys.public_keys()).verify(&s).is_err());
    }

    #[test]
    fn crafted_headers_are_refused(
        alg in prop::sample::select(vec!["none", "None", "HS256", "RS256", "ES256", "EdDSA", "", "eddsa"]),
        kid in prop::option::of(".{0,20}"),
        payload in ".{0,120}",
        sig in "[A-Za-z0-9_-]{0,90}",
    ) {
        let keys = SigningKeys::generate();
        let mut header = serde_json::json!({"alg": alg, "typ": "JWT"});
        if let Some(k) = kid {
            header["kid"] = serde_json::json!(k);
        }
        let token = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(payload), sig);
        prop_assert!(TokenVerifier::new(keys.public_keys()).verify(&token).is_err());
    }
}
