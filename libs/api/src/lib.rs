//! Bookshelf's handlers. Each endpoint is a plain async function from (state, request) to
//! a result; `registry` names them the way `template.yaml` does, and both the Lambda
//! binaries (`lambda`) and the local gateway call them through it.

pub mod auth;
pub mod authorizer;
pub mod books;
pub mod changes;
pub mod goals;
pub mod imports;
pub mod keyring;
pub mod lambda;
pub mod library;
pub mod meta;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod people;
pub mod publish;
pub mod reading;
pub mod registry;
pub mod state;
pub mod users;
pub mod webhooks;
pub mod worker;

pub use registry::{http_handler, KeyAccess, HTTP_FUNCTIONS};
pub use state::AppState;
