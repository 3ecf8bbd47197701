//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use std::sync::OnceLock;

use bookshelf_domain::{Book, FieldError, LibraryEntry, Order, Profile};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An error (RFC 9457 problem details); `errors` lists every invalid field of a 400.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: Option<String>,
    pub errors: Option<Vec<FieldError>>,
    pub request_id: Option<String>,
}

/// A page of full profiles.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfilePage {
    pub items: Vec<Profile>,
    pub next_cursor: Option<String>,
}

/// A page of books.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookPage {
    pub items: Vec<Book>,
    pub next_cursor: Option<String>,
}

/// A page of library entries.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LibraryPage {
    pub items: Vec<LibraryEntry>,
    pub next_cursor: Option<String>,
}

/// A page of orders.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    pub items: Vec<Order>,
    pub next_cursor: Option<String>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Bookshelf API", version = "1.0.0",
        description = "A book-library backend: accounts, a catalog, personal libraries and orders. \
Errors are application/problem+json (RFC 9457). Lists use keyset pagination (`limit` 1..100, opaque `cursor`). \
No string, in a body or a query parameter, may contain U+0000 (400 naming the field)."),
    paths(
        crate::auth::register, crate::auth::login, crate::auth::refresh, crate::auth::logout,
        crate::meta::jwks, crate::meta::openapi,
        crate::users::me_get, crate::users::me_update, crate::users::me_password,
        crate::users::me_delete, crate::users::get, crate::users::list,
        crate::books::list, crate::books::get, crate::books::create, crate::books::update,
        crate::books::delete, crate::books::inventory,
        crate::library::list, crate::library::put, crate::library::delete,
        crate::orders::create, crate::orders::list, crate::orders::get, crate::orders::cancel,
    ),
    components(schemas(Problem, FieldError, ProfilePage, BookPage, LibraryPage, OrderPage)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "users", description = "Profiles"),
        (name = "books", description = "The catalog (admins change it)"),
        (name = "library", description = "The caller's personal shelf"),
        (name = "orders", description = "Orders, processed asynchronously"),
        (name = "meta", description = "Keys and this document"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn json() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(ApiDoc::openapi()).unwrap_or_default())
}
