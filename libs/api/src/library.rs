//! The caller's personal shelf. Every query is scoped to the caller's user id.

use std::sync::Arc;

use bookshelf_domain::library::{CSV_HEADER, GOODREADS_HEADER};
use bookshelf_domain::{field, AllValid, EntryInput, ExportEntry, LibraryEntry, PageParams, ReadingStatus};
use bookshelf_http::{
    enum_param, json, no_content, path_uuid, query_param, read_json, ApiError, Body, Identity, Page, Request,
    Response, Streamed,
};
use bookshelf_storage::library::{self, EntryFilter};
use bookshelf_storage::outbox::Topic;
use bookshelf_storage::StorageError;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use http::StatusCode;

use crate::openapi::{ExportDocument, LibraryPage, Problem};
use crate::AppState;

#[utoipa::path(get, path = "/library", tag = "library", security(("bearer" = [])),
    params(
        ("status" = Option<ReadingStatus>, Query, description = "Only entries with this status"),
        ("favorite" = Option<bool>, Query, description = "Only favourites (true) or the rest (false)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "nextCursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of the caller's entries, in the order they were added", body = LibraryPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let (status, favorite, page) = (
        enum_param(&req, "status", ReadingStatus::parse, ReadingStatus::ALL),
        field("favorite", favorite_param(&req)),
        PageParams::parse(query_param(&req, "limit"), query_param(&req, "cursor")),
    )
        .all_valid()?;
    let (items, next) =
        library::list(state.db()?, who.user_id, EntryFilter { status, favorite }, page).await?;
    Ok(json(
        StatusCode::OK,
        &Page {
            items,
            next_cursor: next.map(|c| c.encode()),
        },
    ))
}

/// `?favorite=true|false`, or absent.
pub(crate) fn favorite_param(req: &Request) -> Result<Option<bool>, String> {
    match query_param(req, "favorite") {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err("must be true or false".to_string()),
    }
}

#[utoipa::path(put, path = "/library/{bookId}", tag = "library", security(("bearer" = [])),
    params(("bookId" = uuid::Uuid, Path, description = "A catalog book")),
    request_body(content = EntryInput, description = "The whole entry: omitted rating/review become null, favorite false"),
    responses(
        (status = 201, description = "Added to the shelf", body = LibraryEntry),
        (status = 200, description = "Replaced (addedAt kept)", body = LibraryEntry),
        (status = 400, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let book = path_uuid(&req, "bookId")?;
    let input: EntryInput = read_json(&req)?;
    let change = input.validate()?;
    let (entry, created, pending) = library::put(state.db()?, who.user_id, book, &change)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => ApiError::not_found("book"),
            other => other.into(),
        })?;
    crate::publish::send(&state, Topic::Activities, &pending).await;
    Ok(json(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &entry,
    ))
}

#[utoipa::path(delete, path = "/library/{bookId}", tag = "library", security(("bearer" = [])),
    params(("bookId" = uuid::Uuid, Path, description = "A book on the caller's shelf")),
    responses(
        (status = 204, description = "Removed from the shelf"),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not on the caller's shelf", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(state: Arc<AppState>, req: Request, who: Identity) -> Result<Response<Body>, ApiError> {
    let book = path_uuid(&req, "bookId")?;
    library::delete(state.db()?, who.user_id, book)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => ApiError::not_found("library entry"),
            other => other.into(),
        })?;
    Ok(no_content())
}

/// How many entries the export holds in memory at once.
pub const EXPORT_PAGE: i64 = 500;

const JSON: &str = "application/json";
const CSV: &str = "text/csv";

/// The layouts of `GET /library/export`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Ours: JSON, or CSV by `Accept`.
    Bookshelf,
    /// Goodreads' export CSV, which other trackers import.
    Goodreads,
}

fn layout(req: &Request) -> Result<Layout, ApiError> {
    match query_param(req, "format").map(str::trim) {
        None | Some("bookshelf") => Ok(Layout::Bookshelf),
        Some("goodreads") => Ok(Layout::Goodreads),
        Some(_) => Err(ApiError::Validation(vec![bookshelf_domain::FieldError::new(
            "format",
            "must be bookshelf or goodreads",
        )])),
    }
}

#[utoipa::path(get, path = "/library/export", tag = "library", security(("bearer" = [])),
    params(
        ("Accept" = Option<String>, Header,
            description = "`application/json` (default; also for none, `*/*`, `application/*`) or `text/csv`"),
        ("format" = Option<String>, Query,
            description = "`bookshelf` (default): the layouts above; `goodreads`: CSV in Goodreads' export layout, whatever `Accept` says"),
    ),
    responses(
        (status = 200, description = "The caller's whole library as a download: JSON `{exportedAt, entries}` with every read, or CSV (RFC 4180, CRLF, header row)",
            content(
                (ExportDocument = "application/json"),
                (String = "text/csv"),
            ),
            headers(("Content-Disposition" = String, description = "attachment; filename=..."))),
        (status = 400, description = "An unknown format", body = Problem, content_type = "application/problem+json"),
        (status = 406, description = "The Accept header allows neither JSON nor CSV", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn export(
    state: Arc<AppState>,
    req: Request,
    who: Identity,
) -> Result<Response<Streamed>, ApiError> {
    let layout = layout(&req)?;
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .map(|v| v.to_str().unwrap_or("unreadable"));
    let format = match layout {
        Layout::Goodreads => CSV,
        Layout::Bookshelf => bookshelf_http::accept::preferred(accept, &[JSON, CSV]).ok_or_else(|| {
            ApiError::NotAcceptable("this export is available as application/json or text/csv".into())
        })?,
    };
    let mut out = Export::new(format == CSV, layout, Utc::now())?;
    // The first page before the head: a database that is down answers 503, not a body cut
    // short after a 200.
    let (entries, next) = library::export_page(state.db()?, who.user_id, None, EXPORT_PAGE).await?;
    out.add(&entries)?;
    let first = out.take()?;
    let pages = Pages {
        state,
        user: who.user_id,
        out,
        next,
        done: false,
        bytes: first.len(),
        started: std::time::Instant::now(),
    };
    let body =
        futures::stream::once(async move { Ok(first) }).chain(futures::stream::unfold(pages, Pages::step));
    let (content_type, file) = match (layout, format == CSV) {
        (Layout::Goodreads, _) => ("text/csv; charset=utf-8", "goodreads_library_export.csv"),
        (Layout::Bookshelf, true) => ("text/csv; charset=utf-8", "library.csv"),
        (Layout::Bookshelf, false) => (JSON, "library.json"),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(
            http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        )
        .body(bookshelf_http::streamed(body))
        .map_err(ApiError::internal)
}

/// The export after its first page: each step fetches the next page, writes it and hands
/// the bytes on, so memory holds one page whatever the library's size.
struct Pages {
    state: Arc<AppState>,
    user: uuid::Uuid,
    out: Export,
    next: Option<bookshelf_domain::Cursor>,
    done: bool,
    bytes: usize,
    started: std::time::Instant,
}

impl Pages {
    async fn step(mut self) -> Option<(Result<bytes::Bytes, std::io::Error>, Pages)> {
        if self.done {
            return None;
        }
        let piece = match self.next {
            Some(after) => self.page(after).await,
            None => {
                self.done = true;
                let tail = self.out.finish();
                if let Ok(t) = &tail {
                    self.bytes += t.len();
                    tracing::info!(
                        entries = self.out.rows(),
                        bytes = self.bytes,
                        ms = self.started.elapsed().as_millis() as u64,
                        "library exported"
                    );
                }
                tail
            }
        };
        match piece {
            Ok(p) => Some((Ok(p), self)),
            Err(e) => {
                // The head is gone: the client sees the body end early, and the log says why.
                tracing::error!(user = %self.user, error = %e, "export cut short");
                self.done = true;
                Some((Err(std::io::Error::other(e.to_string())), self))
            }
        }
    }

    async fn page(&mut self, after: bookshelf_domain::Cursor) -> Result<bytes::Bytes, ApiError> {
        let (entries, next) =
            library::export_page(self.state.db()?, self.user, Some(after), EXPORT_PAGE).await?;
        self.out.add(&entries)?;
        self.next = next;
        let piece = self.out.take()?;
        self.bytes += piece.len();
        Ok(piece)
    }
}

/// The export as it is written: each page of entries is serialised, handed on and dropped
/// before the next is fetched.
enum Export {
    Json {
        out: Vec<u8>,
        rows: usize,
    },
    Csv {
        out: Vec<u8>,
        layout: Layout,
        rows: usize,
    },
}

/// A CSV writer over `out` for one page (the header is written once, first).
fn csv_writer(out: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out)
}

impl Export {
    fn new(csv: bool, layout: Layout, now: DateTime<Utc>) -> Result<Export, ApiError> {
        if csv {
            let mut out = Vec::new();
            let mut w = csv_writer(&mut out);
            match layout {
                Layout::Bookshelf => w.write_record(CSV_HEADER),
                Layout::Goodreads => w.write_record(GOODREADS_HEADER),
            }
            .map_err(ApiError::internal)?;
            w.flush().map_err(ApiError::internal)?;
            drop(w);
            Ok(Export::Csv { out, layout, rows: 0 })
        } else {
            let mut out = Vec::new();
            out.extend_from_slice(b"{\"exportedAt\":");
            serde_json::to_writer(&mut out, &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .map_err(ApiError::internal)?;
            out.extend_from_slice(b",\"entries\":[");
            Ok(Export::Json { out, rows: 0 })
        }
    }

    fn add(&mut self, entries: &[ExportEntry]) -> Result<(), ApiError> {
        match self {
            Export::Json { out, rows } => {
                for e in entries {
                    if *rows > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, e).map_err(ApiError::internal)?;
                    *rows += 1;
                }
            }
            Export::Csv { out, layout, rows } => {
                let mut w = csv_writer(out);
                for e in entries {
                    match layout {
                        Layout::Bookshelf => w.write_record(e.csv_record()),
                        Layout::Goodreads => w.write_record(e.goodreads_record()),
                    }
                    .map_err(ApiError::internal)?;
                    *rows += 1;
                }
                w.flush().map_err(ApiError::internal)?;
            }
        }
        Ok(())
    }

    /// What has been written since the last `take`.
    fn take(&mut self) -> Result<bytes::Bytes, ApiError> {
        Ok(bytes::Bytes::from(match self {
            Export::Json { out, .. } | Export::Csv { out, .. } => std::mem::take(out),
        }))
    }

    /// The rest of the document, closed.
    fn finish(&mut self) -> Result<bytes::Bytes, ApiError> {
        if let Export::Json { out, .. } = self {
            out.extend_from_slice(b"]}");
        }
        self.take()
    }

    fn rows(&self) -> usize {
        match self {
            Export::Json { rows, .. } | Export::Csv { rows, .. } => *rows,
        }
    }
}
