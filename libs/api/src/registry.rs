//! Function name → handler. The names are the function crates' names and the `Binary`
//! build property of each function in `template.yaml`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bookshelf_http::{check_query, request_id, ApiError, Body, Request, Response};
use lambda_http::RequestExt;
use tracing::Instrument;

use crate::{auth, books, library, meta, orders, users, AppState};

/// Which key material a function needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    None,
    Public,
    Signing,
}

pub type BoxFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
pub type HttpHandler = fn(Arc<AppState>, Request) -> BoxFuture;

pub struct HttpFunction {
    pub name: &'static str,
    pub keys: KeyAccess,
    /// Whether it queries. Those that do not get no database settings, credentials or
    /// network path deployed (template.yaml; a test keeps the two in step).
    pub database: bool,
    pub handler: HttpHandler,
}

/// Runs one handler: a span with the request id for every log line, the error mapped to
/// problem+json in the one place that does it, and one access-log line.
pub async fn serve<F, Fut>(
    name: &'static str,
    state: Arc<AppState>,
    req: Request,
    handler: F,
) -> Response<Body>
where
    F: FnOnce(Arc<AppState>, Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    let rid = request_id(&req);
    let span = tracing::info_span!(
        "request",
        function = name,
        request_id = rid.as_deref().unwrap_or("-")
    );
    let (method, path) = (req.method().clone(), req.raw_http_path().to_string());
    let started = Instant::now();
    let response = async {
        let result = async {
            check_query(&req)?;
            handler(state, req).await
        };
        match result.await {
            Ok(r) => r,
            Err(e) => e.into_response(rid.as_deref()),
        }
    }
    .instrument(span.clone())
    .await;
    span.in_scope(|| {
        tracing::info!(
            %method, path, status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64, "handled"
        )
    });
    response
}

macro_rules! functions {
    ($($konst:ident = $name:literal, $keys:ident, $db:ident => $handler:path;)*) => {
        $(
            #[doc = concat!("`", $name, "`: what its Lambda binary serves.")]
            pub const $konst: HttpFunction = HttpFunction {
                name: $name,
                keys: KeyAccess::$keys,
                database: functions!(@db $db),
                handler: |state, req| Box::pin(serve($name, state, req, $handler)),
            };
        )*
        /// Every HTTP function of the API (the local gateway's table). Each Lambda binary
        /// names only its own constant, so the linker drops every other handler.
        pub static HTTP_FUNCTIONS: &[HttpFunction] = &[$($konst),*];
    };
    (@db Db) => { true };
    (@db NoDb) => { false };
}

functions! {
    AUTH_REGISTER = "auth-register", Signing, Db => auth::register;
    AUTH_LOGIN = "auth-login", Signing, Db => auth::login;
    AUTH_REFRESH = "auth-refresh", Signing, Db => auth::refresh;
    AUTH_LOGOUT = "auth-logout", None, Db => auth::logout;
    JWKS = "jwks", Public, NoDb => meta::jwks;
    OPENAPI = "openapi", None, NoDb => meta::openapi;
    USERS_ME_GET = "users-me-get", None, Db => users::me_get;
    USERS_ME_UPDATE = "users-me-update", None, Db => users::me_update;
    USERS_ME_PASSWORD = "users-me-password", None, Db => users::me_password;
    USERS_ME_DELETE = "users-me-delete", None, Db => users::me_delete;
    USERS_GET = "users-get", None, Db => users::get;
    USERS_LIST = "users-list", None, Db => users::list;
    BOOKS_LIST = "books-list", None, Db => books::list;
    BOOKS_GET = "books-get", None, Db => books::get;
    BOOKS_CREATE = "books-create", None, Db => books::create;
    BOOKS_UPDATE = "books-update", None, Db => books::update;
    BOOKS_DELETE = "books-delete", None, Db => books::delete;
    BOOKS_INVENTORY = "books-inventory", None, Db => books::inventory;
    LIBRARY_LIST = "library-list", None, Db => library::list;
    LIBRARY_PUT = "library-put", None, Db => library::put;
    LIBRARY_DELETE = "library-delete", None, Db => library::delete;
    ORDERS_CREATE = "orders-create", None, Db => orders::create;
    ORDERS_GET = "orders-get", None, Db => orders::get;
    ORDERS_LIST = "orders-list", None, Db => orders::list;
    ORDERS_CANCEL = "orders-cancel", None, Db => orders::cancel;
}

/// The function of this name, if there is one.
pub fn http_handler(name: &str) -> Option<&'static HttpFunction> {
    HTTP_FUNCTIONS.iter().find(|f| f.name == name)
}
