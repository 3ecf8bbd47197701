//! The authorizer and the queue consumer over arbitrary events. Neither reaches the
//! database for these inputs (the pool points nowhere and is never connected): a bad token
//! is refused, a bad message is reported as a batch item failure, and nothing panics.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use bookshelf_api::authorizer::{authorize, AuthorizerError};
use bookshelf_api::worker::process_batch;
use bookshelf_api::AppState;
use bookshelf_auth::SigningKeys;
use proptest::prelude::*;

fn state() -> Arc<AppState> {
    let nowhere = sqlx::postgres::PgConnectOptions::new().host("127.0.0.1").port(1);
    Arc::new(AppState::new(
        bookshelf_storage::pool(nowhere, 1),
        &SigningKeys::generate(),
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn authorizer_refuses_whatever_is_not_a_token(header in ".{0,200}", arn in ".{0,120}") {
        let rt = runtime();
        let _in_runtime = rt.enter(); // the lazy pool needs a runtime to exist in
        let state = state();
        let mut event = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
        event.method_arn = Some(arn);
        if let Ok(v) = header.parse() {
            event.headers.insert("authorization", v);
        }
        let result = rt.block_on(authorize(state, &event));
        prop_assert!(matches!(result, Err(AuthorizerError::Unauthorized)));
    }

    #[test]
    fn malformed_messages_are_batch_failures(bodies in prop::collection::vec(".{0,80}", 1..10)) {
        let rt = runtime();
        let _in_runtime = rt.enter();
        let mut event = SqsEvent::default();
        let mut expected = Vec::new();
        for (i, b) in bodies.iter().enumerate() {
            // Only bodies that are not order messages: those would need the database.
            if serde_json::from_str::<bookshelf_domain::OrderMessage>(b).is_ok() {
                continue;
            }
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m{i}"));
            m.body = Some(b.clone());
            event.records.push(m);
            expected.push(format!("m{i}"));
        }
        let response = rt.block_on(process_batch(state(), event));
        let failed: Vec<String> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
        prop_assert_eq!(failed, expected);
    }
}
