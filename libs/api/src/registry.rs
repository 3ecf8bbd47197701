//! Function name → handler: the one table of the API's functions. A name is a binary of
//! `functions/` (generated from `template.yaml`, whose `Binary` build property names it),
//! and each binary finds its own entry here at compile time (`lambda::binary`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bookshelf_http::{check_query, request_id, ApiError, Body, Identity, Request, Response, Streamed};
use lambda_http::RequestExt;
use tracing::Instrument;

use crate::{
    auth, books, changes, goals, imports, library, meta, orders, people, reading, users, webhooks, AppState,
};

/// Which key material a function needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    None,
    Public,
    Signing,
}

/// Who may call a function. The wrapper establishes it before the handler runs, and hands
/// `SignedIn` and `Admin` handlers the caller's `Identity`: no handler reads it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; the route has no authorizer (`Auth: Authorizer: NONE` in template.yaml).
    Public,
    SignedIn,
    /// Anyone signed in, but the handler does more for admins (e.g. `POST /books`: only an
    /// admin may sell), so deployed its route takes the authorizer that never caches.
    SignedInByRole,
    Admin,
}

impl Access {
    /// Whether the caller's role decides what the function does: its authorization is
    /// never served from API Gateway's cache, so a demotion applies at once.
    pub fn needs_current_role(self) -> bool {
        matches!(self, Access::Admin | Access::SignedInByRole)
    }
}

pub type BoxFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
pub type HttpHandler = fn(Arc<AppState>, Request) -> BoxFuture;
pub type StreamFuture = Pin<Box<dyn Future<Output = Response<Streamed>> + Send>>;
pub type StreamHandler = fn(Arc<AppState>, Request) -> StreamFuture;

/// How a function answers: one buffered body (at most 6 MB through Lambda), or a body
/// streamed as it is written (REST API response streaming), of any size.
#[derive(Clone, Copy)]
pub enum Handler {
    Buffered(HttpHandler),
    Streaming(StreamHandler),
}

/// What a function reaches besides its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Nothing: no database settings, credentials or network path deployed.
    NoDb,
    /// The database.
    Db,
    /// The database, and the queues it announces its writes on (QUEUE_URL,
    /// ACTIVITY_QUEUE_URL), so consumers need not wait for the outbox relay.
    Sends,
    /// The database, and the upload bucket (UPLOAD_BUCKET) it presigns uploads to.
    Uploads,
    /// The database, and the webhook key's secret (WEBHOOK_KEY_SECRET_ARN) it seals with.
    Seals,
    /// The database; the response is streamed (`ResponseTransferMode: RESPONSE_STREAM` in
    /// template.yaml), so no body is too large for it.
    Streams,
}

#[derive(Clone, Copy)]
pub struct HttpFunction {
    pub name: &'static str,
    pub access: Access,
    pub keys: KeyAccess,
    /// What it reaches (template.yaml agrees; a test keeps the two in step).
    pub storage: Storage,
    pub handler: Handler,
}

impl HttpFunction {
    /// Whether it queries.
    pub fn database(&self) -> bool {
        self.storage != Storage::NoDb
    }
}

/// The caller as the authorizer established it, held to what `access` demands.
fn caller(req: &Request, access: Access) -> Result<Identity, ApiError> {
    let who = Identity::from_request(req)?;
    if access == Access::Admin {
        who.require_admin()?;
    }
    Ok(who)
}

/// Runs one handler: a span with the request id for every log line, the error mapped to
/// problem+json in the one place that does it (`problem` puts it in the handler's kind of
/// body: buffered, or streamed as one piece), and one access-log line — for a streamed
/// answer written when its head is ready, the body following as it is produced.
pub async fn serve<B, F, Fut>(
    name: &'static str,
    state: Arc<AppState>,
    req: Request,
    handler: F,
    problem: fn(Response<Body>) -> Response<B>,
) -> Response<B>
where
    F: FnOnce(Arc<AppState>, Request) -> Fut,
    Fut: Future<Output = Result<Response<B>, ApiError>>,
{
    let rid = request_id(&req);
    let span = tracing::info_span!(
        "request",
        function = name,
        request_id = rid.as_deref().unwrap_or("-")
    );
    let (method, path) = (req.method().clone(), req.raw_http_path().to_string());
    let origin = bookshelf_http::Cors::origin(req.headers()).map(str::to_string);
    let cors = state.cors.clone();
    let started = Instant::now();
    let mut response = async {
        let result = async {
            check_query(&req)?;
            handler(state, req).await
        };
        match result.await {
            Ok(r) => r,
            Err(e) => problem(e.into_response(rid.as_deref())),
        }
    }
    .instrument(span.clone())
    .await;
    cors.apply(origin.as_deref(), response.headers_mut());
    span.in_scope(|| {
        tracing::info!(
            %method, path, status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64, "handled"
        )
    });
    response
}

macro_rules! functions {
    ($($konst:ident = $name:literal, $access:ident, $keys:ident, $storage:ident => $module:ident::$handler:ident;)*) => {
        $(
            #[doc = concat!("`", $name, "`: what its Lambda binary serves.")]
            pub const $konst: HttpFunction = HttpFunction {
                name: $name,
                access: Access::$access,
                keys: KeyAccess::$keys,
                storage: Storage::$storage,
                handler: functions!(@handler $storage $name $access $module::$handler),
            };
        )*
        /// Every HTTP function, by value: `lambda::binary` copies one out at compile time,
        /// so a binary links its own handler only.
        pub const ALL: &[HttpFunction] = &[$($konst),*];
        /// Every HTTP function of the API (the local gateway's table).
        pub static HTTP_FUNCTIONS: &[HttpFunction] = ALL;
        /// The handlers' OpenAPI operations, in registry order (`openapi::ApiDoc` adds them).
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($module::$handler),*))]
        pub struct Operations;
    };
    (@handler Streams $name:literal $access:ident $handler:path) => {
        Handler::Streaming(|state, req| Box::pin(serve($name, state, req, functions!(@call $access $handler), bookshelf_http::buffered_into_streamed)))
    };
    (@handler $storage:ident $name:literal $access:ident $handler:path) => {
        Handler::Buffered(|state, req| Box::pin(serve($name, state, req, functions!(@call $access $handler), |r| r)))
    };
    (@call Public $handler:path) => { $handler };
    (@call $access:ident $handler:path) => {
        |state, req: Request| async move {
            let who = caller(&req, Access::$access)?;
            $handler(state, req, who).await
        }
    };
}

functions! {
    AUTH_REGISTER = "auth-register", Public, Signing, Db => auth::register;
    AUTH_LOGIN = "auth-login", Public, Signing, Db => auth::login;
    AUTH_REFRESH = "auth-refresh", Public, Signing, Db => auth::refresh;
    AUTH_LOGOUT = "auth-logout", SignedIn, None, Db => auth::logout;
    JWKS = "jwks", Public, Public, NoDb => meta::jwks;
    OPENAPI = "openapi", Public, None, NoDb => meta::openapi;
    DOCS = "docs", Public, None, NoDb => meta::docs;
    DOCS_ASSET = "docs-asset", Public, None, NoDb => meta::docs_asset;
    USERS_ME_GET = "users-me-get", SignedIn, None, Db => users::me_get;
    USERS_ME_UPDATE = "users-me-update", SignedIn, None, Db => users::me_update;
    USERS_ME_PASSWORD = "users-me-password", SignedIn, None, Db => users::me_password;
    USERS_ME_DELETE = "users-me-delete", SignedIn, None, Db => users::me_delete;
    USERS_GET = "users-get", SignedIn, None, Db => users::get;
    USERS_LIST = "users-list", Admin, None, Db => users::list;
    BOOKS_LIST = "books-list", SignedIn, None, Db => books::list;
    BOOKS_GET = "books-get", SignedIn, None, Db => books::get;
    BOOKS_CREATE = "books-create", SignedInByRole, None, Db => books::create;
    BOOKS_UPDATE = "books-update", Admin, None, Db => books::update;
    BOOKS_DELETE = "books-delete", Admin, None, Db => books::delete;
    BOOKS_INVENTORY = "books-inventory", Admin, None, Db => books::inventory;
    LIBRARY_LIST = "library-list", SignedIn, None, Db => library::list;
    LIBRARY_PUT = "library-put", SignedIn, None, Sends => library::put;
    LIBRARY_DELETE = "library-delete", SignedIn, None, Db => library::delete;
    LIBRARY_EXPORT = "library-export", SignedIn, None, Streams => library::export;
    IMPORTS_CREATE = "imports-create", SignedIn, None, Uploads => imports::create;
    IMPORTS_LIST = "imports-list", SignedIn, None, Db => imports::list;
    IMPORTS_GET = "imports-get", SignedIn, None, Db => imports::get;
    IMPORTS_ROWS = "imports-rows", SignedIn, None, Db => imports::rows;
    READS_START = "reads-start", SignedIn, None, Sends => reading::start;
    READS_LIST = "reads-list", SignedIn, None, Db => reading::list;
    READS_GET = "reads-get", SignedIn, None, Db => reading::get;
    READS_PROGRESS = "reads-progress", SignedIn, None, Db => reading::progress;
    READS_PAUSE = "reads-pause", SignedIn, None, Db => reading::pause;
    READS_FINISH = "reads-finish", SignedIn, None, Sends => reading::finish;
    READS_ABANDON = "reads-abandon", SignedIn, None, Db => reading::abandon;
    READS_DELETE = "reads-delete", SignedIn, None, Db => reading::delete;
    SESSIONS_START = "sessions-start", SignedIn, None, Db => reading::start_session;
    SESSIONS_END = "sessions-end", SignedIn, None, Db => reading::end_session;
    SESSIONS_LIST = "sessions-list", SignedIn, None, Db => reading::list_sessions;
    GOALS_PUT = "goals-put", SignedIn, None, Db => goals::put;
    GOALS_GET = "goals-get", SignedIn, None, Db => goals::get;
    GOALS_DELETE = "goals-delete", SignedIn, None, Db => goals::delete;
    STATS_GET = "stats-get", SignedIn, None, Db => goals::get_stats;
    USERS_FOLLOW = "users-follow", SignedIn, None, Sends => people::follow;
    USERS_UNFOLLOW = "users-unfollow", SignedIn, None, Db => people::unfollow;
    USERS_FOLLOWERS = "users-followers", SignedIn, None, Db => people::followers;
    USERS_FOLLOWING = "users-following", SignedIn, None, Db => people::following;
    USERS_LIBRARY = "users-library", SignedIn, None, Db => people::library;
    FEED_GET = "feed-get", SignedIn, None, Db => people::feed;
    ORDERS_CREATE = "orders-create", SignedIn, None, Sends => orders::create;
    ORDERS_GET = "orders-get", SignedIn, None, Db => orders::get;
    ORDERS_LIST = "orders-list", SignedIn, None, Db => orders::list;
    ORDERS_CANCEL = "orders-cancel", SignedIn, None, Db => orders::cancel;
    CHANGES_LIST = "changes-list", SignedIn, None, Db => changes::list;
    WEBHOOKS_CREATE = "webhooks-create", SignedIn, None, Seals => webhooks::create;
    WEBHOOKS_LIST = "webhooks-list", SignedIn, None, Db => webhooks::list;
    WEBHOOKS_GET = "webhooks-get", SignedIn, None, Db => webhooks::get;
    WEBHOOKS_UPDATE = "webhooks-update", SignedIn, None, Db => webhooks::update;
    WEBHOOKS_DELETE = "webhooks-delete", SignedIn, None, Db => webhooks::delete;
    WEBHOOKS_PING = "webhooks-ping", SignedIn, None, Db => webhooks::ping;
    WEBHOOKS_DELIVERIES = "webhooks-deliveries", SignedIn, None, Db => webhooks::deliveries;
}

/// The function of this name, if there is one.
pub fn http_handler(name: &str) -> Option<&'static HttpFunction> {
    HTTP_FUNCTIONS.iter().find(|f| f.name == name)
}

/// The HTTP function of this name, at compile time (`lambda::binary`).
pub const fn http_function(name: &str) -> Option<HttpFunction> {
    let mut i = 0;
    while i < ALL.len() {
        if same(ALL[i].name, name) {
            return Some(ALL[i]);
        }
        i += 1;
    }
    None
}

/// String equality in a `const fn`.
pub(crate) const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
