//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use std::sync::OnceLock;

use bookshelf_domain::{
    Activity, Book, ExportEntry, FieldError, LibraryEntry, Order, Profile, PublicProfile, Read,
    ReadingSession,
};
use chrono::Datelike;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Object, Ref, RefOr, Type};
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

/// A page of public profiles (followers, following).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicProfilePage {
    pub items: Vec<PublicProfile>,
    pub next_cursor: Option<String>,
}

/// A page of the feed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityPage {
    pub items: Vec<Activity>,
    pub next_cursor: Option<String>,
}

/// A page of reads.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadPage {
    pub items: Vec<Read>,
    pub next_cursor: Option<String>,
}

/// A page of reading sessions.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionPage {
    pub items: Vec<ReadingSession>,
    pub next_cursor: Option<String>,
}

/// `GET /library/export` as JSON.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportDocument {
    #[schema(format = DateTime)]
    pub exported_at: String,
    pub entries: Vec<ExportEntry>,
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

/// The error responses that any operation of a kind can give, whatever its handler does:
/// written once here instead of on every handler, and referenced from components.
/// An operation's own entry for a status (a 401 that explains login) is kept.
struct CommonResponses;

const PROBLEM_JSON: &str = "application/problem+json";

fn problem(description: &str, header: Option<(&str, &str)>) -> Response {
    let mut r = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    if let Some((name, about)) = header {
        r = r.header(
            name,
            HeaderBuilder::new()
                .schema(Object::with_type(Type::String))
                .description(Some(about))
                .build(),
        );
    }
    r.build()
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let retry_after = Some(("Retry-After", "Seconds to wait before trying again"));
        let common = [
            ("BadRequest", "400", problem("Malformed request: a bad path id, query parameter or body (a string containing U+0000 included)", None)),
            ("Unauthorized", "401", problem("Missing, malformed, expired, tampered or revoked access token", Some(("WWW-Authenticate", "Always `Bearer`")))),
            ("PayloadTooLarge", "413", problem("Body over 64 KiB", None)),
            ("TooManyRequests", "429", problem("Throttled by the gateway's rate limit", retry_after)),
            ("Unavailable", "503", problem("The database is unreachable or saturated; nothing was changed", retry_after)),
        ];
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, _, response) in &common {
            components
                .responses
                .insert(name.to_string(), RefOr::T(response.clone()));
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The two documents served from memory need no database.
            let uses_db = !matches!(path.as_str(), "/openapi.json" | "/.well-known/jwks.json");
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                add_common(op, uses_db, &common);
            }
        }
    }
}

fn add_common(op: &mut Operation, uses_db: bool, common: &[(&str, &str, Response)]) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    for (name, status, _) in common {
        let applies = match *status {
            "401" => secured,
            "413" => has_body,
            "503" => uses_db,
            _ => true,
        };
        if applies {
            op.responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Bookshelf API", version = "1.0.0",
        description = "A book-library backend: accounts, a catalog, personal libraries and orders. \
Errors are application/problem+json (RFC 9457). Lists use keyset pagination (`limit` 1..100, opaque `cursor`). \
No string field of a body, and no query parameter, may contain U+0000 (400 naming the field)."),
    components(schemas(Problem, FieldError, ProfilePage, BookPage, LibraryPage, OrderPage, ReadPage, SessionPage, PublicProfilePage, ActivityPage)),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "users", description = "Profiles"),
        (name = "books", description = "The catalog (admins change it)"),
        (name = "library", description = "The caller's personal shelf"),
        (name = "reading", description = "Reads, progress, timed sessions, goals and stats"),
        (name = "people", description = "Follows, other readers' shelves, the activity feed"),
        (name = "orders", description = "Orders, processed asynchronously"),
        (name = "sync", description = "The change feed and webhooks"),
        (name = "meta", description = "Keys, this document, and its page"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn json() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        // The operations come from the registry, one per function, in its order.
        let mut api = ApiDoc::openapi();
        api.merge(crate::registry::Operations::openapi());
        // After the merge, so that they see every operation.
        BearerAuth.modify(&mut api);
        CommonResponses.modify(&mut api);
        let mut doc = serde_json::to_value(api).unwrap_or_default();
        refine_bodies(&mut doc, chrono::Utc::now().year());
        doc
    })
}

/// What the derive cannot say about request bodies, said on the generated document: the
/// limits of each `authors` and `tags` item (in words: like every trimmed field, their
/// maximum applies after trimming, which a `maxLength` would misstate), the latest
/// `publishedYear`, a non-zero `delta`, and the PATCH body of a book (the create body with
/// nothing required and no `stock`, which a PATCH may not name).
fn refine_bodies(doc: &mut Value, current_year: i32) {
    let schemas = &mut doc["components"]["schemas"];
    schemas["BookInput"]["description"] =
        json!("A new book: `title` and `authors` required. Without `priceCents` (or with `null`) it is not for sale; only admins may set a price or a non-zero `stock`.");
    let book = &mut schemas["BookInput"]["properties"];
    book["authors"]["items"] =
        json!({"type": "string", "minLength": 1, "description": "1 to 200 characters after trimming"});
    book["tags"]["items"] = json!({"type": "string", "minLength": 1, "description": "1 to 40 characters after trimming; stored lower-cased"});
    book["publishedYear"]["maximum"] = json!(current_year + 1);
    let mut patch = schemas["BookInput"].clone();
    if let Some(p) = patch.as_object_mut() {
        p.remove("required");
        p.insert(
            "description".into(),
            json!("Any book fields but `stock`; `null` clears a nullable one."),
        );
    }
    if let Some(props) = patch["properties"].as_object_mut() {
        props.remove("stock");
    }
    schemas["BookPatch"] = patch;
    schemas["InventoryInput"]["properties"]["delta"] = json!({
        "description": "Non-zero; negative takes stock away.",
        "oneOf": [
            {"type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": -1},
            {"type": "integer", "format": "int32", "minimum": 1, "maximum": i32::MAX},
        ],
    });
    // The latest year a goal or the stats may name.
    for (path, method) in [
        ("/users/me/goals/{year}", "get"),
        ("/users/me/goals/{year}", "put"),
        ("/users/me/goals/{year}", "delete"),
        ("/users/me/stats", "get"),
    ] {
        if let Some(params) = doc["paths"][path][method]["parameters"].as_array_mut() {
            for p in params.iter_mut().filter(|p| p["name"] == "year") {
                p["schema"]["maximum"] = json!(current_year + 1);
            }
        }
    }
    doc["paths"]["/books/{id}"]["patch"]["requestBody"]["content"]["application/json"]["schema"] =
        json!({"$ref": "#/components/schemas/BookPatch"});
}
