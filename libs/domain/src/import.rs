//! Imports: what a CSV file from Goodreads, The StoryGraph or Bookshelf itself says about a
//! reader's books, row by row. Pure: the file is bytes in memory, each row becomes either
//! an `ImportRow` to apply or the reason it cannot be.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ReadingStatus;

/// The largest file an import reads (the contract: larger ends `failed`).
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// A review keeps its first 5,000 characters (the library's limit).
pub const MAX_REVIEW_CHARS: usize = 5_000;
const MAX_TITLE_CHARS: usize = 300;
const MAX_AUTHORS: usize = 20;
const MAX_AUTHOR_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportFormat {
    Goodreads,
    Storygraph,
    Bookshelf,
}

impl ImportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportFormat::Goodreads => "goodreads",
            ImportFormat::Storygraph => "storygraph",
            ImportFormat::Bookshelf => "bookshelf",
        }
    }

    pub fn parse(s: &str) -> Option<ImportFormat> {
        match s {
            "goodreads" => Some(ImportFormat::Goodreads),
            "storygraph" => Some(ImportFormat::Storygraph),
            "bookshelf" => Some(ImportFormat::Bookshelf),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    AwaitingUpload,
    Queued,
    Running,
    Completed,
    Failed,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::AwaitingUpload => "awaiting_upload",
            ImportStatus::Queued => "queued",
            ImportStatus::Running => "running",
            ImportStatus::Completed => "completed",
            ImportStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ImportStatus> {
        match s {
            "awaiting_upload" => Some(ImportStatus::AwaitingUpload),
            "queued" => Some(ImportStatus::Queued),
            "running" => Some(ImportStatus::Running),
            "completed" => Some(ImportStatus::Completed),
            "failed" => Some(ImportStatus::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    Imported,
    Skipped,
    Failed,
}

impl RowOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RowOutcome::Imported => "imported",
            RowOutcome::Skipped => "skipped",
            RowOutcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RowOutcome> {
        match s {
            "imported" => Some(RowOutcome::Imported),
            "skipped" => Some(RowOutcome::Skipped),
            "failed" => Some(RowOutcome::Failed),
            _ => None,
        }
    }
}

/// An import as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Import {
    pub id: Uuid,
    pub filename: Option<String>,
    pub status: ImportStatus,
    pub format: Option<ImportFormat>,
    pub rows: i32,
    pub imported: i32,
    pub skipped: i32,
    pub failed: i32,
    pub books_matched: i32,
    pub books_created: i32,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// One row's outcome as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportRowResult {
    /// 1 = the first record after the header.
    pub row: i32,
    pub title: Option<String>,
    pub authors: Vec<String>,
    pub isbn: Option<String>,
    pub outcome: RowOutcome,
    pub book_id: Option<Uuid>,
    pub reason: Option<String>,
}

/// What a row names, as far as it could be read: kept with the row's outcome, failed or not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowSummary {
    pub title: Option<String>,
    pub authors: Vec<String>,
    /// ISBN-13, when the row has a valid one.
    pub isbn: Option<String>,
}

/// The book a row names: matched in the catalog, or made from these fields.
#[derive(Debug, Clone, PartialEq)]
pub struct BookCandidate {
    pub title: String,
    pub authors: Vec<String>,
    pub isbn: Option<String>,
    pub page_count: Option<i32>,
    pub published_year: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    Finished(DateTime<Utc>),
    Abandoned(DateTime<Utc>),
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportedRead {
    pub started_at: DateTime<Utc>,
    pub end: ReadEnd,
}

/// A row to apply: a book, and the caller's entry for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    pub book: BookCandidate,
    pub status: ReadingStatus,
    pub rating: Option<i16>,
    pub review: Option<String>,
    pub favorite: bool,
    pub added_at: Option<DateTime<Utc>>,
    pub reads: Vec<ImportedRead>,
}

/// A row as read from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRow {
    /// 1-based, counting records after the header.
    pub row: i32,
    pub summary: RowSummary,
    pub parsed: Result<ImportRow, String>,
}

/// Why a whole file is refused (the import ends `failed`, no row applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is larger than 10 MiB")]
    TooLarge,
    #[error("the file is empty")]
    Empty,
    #[error("the file is not CSV: {0}")]
    NotCsv(String),
    #[error(
        "no known header: the first row names the columns of a Goodreads, StoryGraph or Bookshelf export"
    )]
    UnknownHeader,
}

/// A file checked whole before any row is applied: its format and every record.
#[derive(Debug)]
pub struct ImportFile {
    pub format: ImportFormat,
    columns: Columns,
    records: Vec<csv::StringRecord>,
}

impl ImportFile {
    /// Reads and checks the whole file: CSV (UTF-8) throughout, with a known header.
    pub fn read(bytes: &[u8]) -> Result<ImportFile, FileError> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(FileError::TooLarge);
        }
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(FileError::Empty);
        }
        if bytes.contains(&0) {
            return Err(FileError::NotCsv("it holds NUL bytes (a binary file?)".into()));
        }
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(bytes);
        let header = reader.headers().map_err(not_csv)?.clone();
        let (format, columns) = Columns::detect(&header).ok_or(FileError::UnknownHeader)?;
        let mut records = Vec::new();
        for record in reader.records() {
            let record = record.map_err(not_csv)?;
            // A blank line between records is not a row.
            if record.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            records.push(record);
        }
        Ok(ImportFile {
            format,
            columns,
            records,
        })
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The rows after `applied` (a resumed import starts where the last one stopped).
    pub fn rows_after(&self, applied: usize) -> impl Iterator<Item = ParsedRow> + '_ {
        self.records
            .iter()
            .enumerate()
            .skip(applied)
            .map(|(i, r)| self.columns.row(self.format, i as i32 + 1, r))
    }
}

fn not_csv(e: csv::Error) -> FileError {
    match e.kind() {
        csv::ErrorKind::Utf8 { pos, .. } => FileError::NotCsv(format!(
            "record {} is not UTF-8 text",
            pos.as_ref().map_or(0, |p| p.record())
        )),
        _ => FileError::NotCsv(e.to_string()),
    }
}

/// Where each column we read is, by (case-insensitive) name.
#[derive(Debug, Default)]
struct Columns {
    title: Option<usize>,
    author: Option<usize>,
    more_authors: Option<usize>,
    isbn: Option<usize>,
    isbn13: Option<usize>,
    rating: Option<usize>,
    pages: Option<usize>,
    year: Option<usize>,
    original_year: Option<usize>,
    date_read: Option<usize>,
    date_added: Option<usize>,
    status: Option<usize>,
    review: Option<usize>,
    dates_read: Option<usize>,
    favorite: Option<usize>,
    started_at: Option<usize>,
    finished_at: Option<usize>,
}

impl Columns {
    fn detect(header: &csv::StringRecord) -> Option<(ImportFormat, Columns)> {
        let names: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
        let at = |name: &str| names.iter().position(|n| n == name);
        let has = |name: &str| at(name).is_some();
        if has("title") && has("authors") && has("read status") {
            return Some((
                ImportFormat::Storygraph,
                Columns {
                    title: at("title"),
                    author: at("authors"),
                    isbn: at("isbn/uid"),
                    rating: at("star rating"),
                    status: at("read status"),
                    review: at("review"),
                    date_added: at("date added"),
                    dates_read: at("dates read"),
                    date_read: at("last date read"),
                    ..Columns::default()
                },
            ));
        }
        if has("title") && has("authors") && has("status") {
            return Some((
                ImportFormat::Bookshelf,
                Columns {
                    title: at("title"),
                    author: at("authors"),
                    isbn: at("isbn"),
                    status: at("status"),
                    rating: at("rating"),
                    favorite: at("favorite"),
                    date_added: at("added_at"),
                    started_at: at("started_at"),
                    finished_at: at("finished_at"),
                    review: at("review"),
                    ..Columns::default()
                },
            ));
        }
        if has("title") && has("author") && (has("exclusive shelf") || has("my rating")) {
            return Some((
                ImportFormat::Goodreads,
                Columns {
                    title: at("title"),
                    author: at("author"),
                    more_authors: at("additional authors"),
                    isbn: at("isbn"),
                    isbn13: at("isbn13"),
                    rating: at("my rating"),
                    pages: at("number of pages"),
                    year: at("year published"),
                    original_year: at("original publication year"),
                    date_read: at("date read"),
                    date_added: at("date added"),
                    status: at("exclusive shelf"),
                    review: at("my review"),
                    ..Columns::default()
                },
            ));
        }
        None
    }

    fn row(&self, format: ImportFormat, row: i32, record: &csv::StringRecord) -> ParsedRow {
        let cell = |c: Option<usize>| c.and_then(|i| record.get(i)).map(str::trim).unwrap_or("");
        let title = collapse(cell(self.title));
        let separator = match format {
            ImportFormat::Bookshelf => ';',
            _ => ',',
        };
        let mut authors: Vec<String> = cell(self.author)
            .split(separator)
            .chain(cell(self.more_authors).split(','))
            .map(collapse)
            .filter(|a| !a.is_empty())
            .collect();
        authors.dedup();
        let isbn = [cell(self.isbn13), cell(self.isbn)]
            .into_iter()
            .find_map(|raw| crate::isbn::normalize(unwrap_goodreads(raw)).ok());
        let summary = RowSummary {
            title: (!title.is_empty()).then(|| title.clone()),
            authors: authors.clone(),
            isbn: isbn.clone(),
        };
        let parsed = self.entry(format, &cell, title, authors, isbn);
        ParsedRow { row, summary, parsed }
    }

    fn entry<'r>(
        &self,
        format: ImportFormat,
        cell: &dyn Fn(Option<usize>) -> &'r str,
        title: String,
        mut authors: Vec<String>,
        isbn: Option<String>,
    ) -> Result<ImportRow, String> {
        if title.is_empty() {
            return Err("the row has no title".into());
        }
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(format!("the title is longer than {MAX_TITLE_CHARS} characters"));
        }
        if authors.is_empty() {
            return Err("the row has no author".into());
        }
        if authors.iter().any(|a| a.chars().count() > MAX_AUTHOR_CHARS) {
            return Err(format!(
                "an author's name is longer than {MAX_AUTHOR_CHARS} characters"
            ));
        }
        authors.truncate(MAX_AUTHORS);
        let page_count = cell(self.pages)
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=100_000).contains(n));
        let year = |c| cell(c).parse::<i32>().ok().filter(|y| (-3000..=9999).contains(y));
        let published_year = year(self.year).or_else(|| year(self.original_year));
        let added_at =
            day_or_time(cell(self.date_added)).map_err(|v| format!("date added {v:?} is not a date"))?;
        let (status, rating, review, favorite, reads) = match format {
            ImportFormat::Goodreads => {
                let status = shelf(cell(self.status));
                let rating = match cell(self.rating) {
                    "" | "0" => None,
                    r => Some(
                        r.parse::<i16>()
                            .ok()
                            .filter(|r| (1..=5).contains(r))
                            .ok_or_else(|| format!("My Rating {r:?} is not 0 to 5"))?,
                    ),
                };
                let mut reads = Vec::new();
                if status == ReadingStatus::Read {
                    if let Some(day) = day_or_time(cell(self.date_read))
                        .map_err(|v| format!("Date Read {v:?} is not a date"))?
                    {
                        reads.push(ImportedRead {
                            started_at: day,
                            end: ReadEnd::Finished(day),
                        });
                    }
                }
                (status, rating, text_of_html(cell(self.review)), false, reads)
            }
            ImportFormat::Storygraph => {
                let status = shelf(cell(self.status));
                let rating = match cell(self.rating) {
                    "" => None,
                    r => {
                        let stars = r
                            .parse::<f64>()
                            .ok()
                            .filter(|s| (0.0..=5.0).contains(s))
                            .ok_or_else(|| format!("Star Rating {r:?} is not 0 to 5"))?;
                        // Half up: 3.5 is 4.
                        Some((stars + 0.5).floor() as i16).filter(|r| *r >= 1)
                    }
                };
                let mut reads = Vec::new();
                for range in cell(self.dates_read)
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                {
                    let (start, end) = date_range(range)
                        .ok_or_else(|| format!("Dates Read {range:?} is not a date range"))?;
                    reads.push(ImportedRead {
                        started_at: start,
                        end: match status {
                            ReadingStatus::DidNotFinish => ReadEnd::Abandoned(end),
                            _ => ReadEnd::Finished(end),
                        },
                    });
                }
                if reads.is_empty() && status == ReadingStatus::Read {
                    if let Some(day) = day_or_time(cell(self.date_read))
                        .map_err(|v| format!("Last Date Read {v:?} is not a date"))?
                    {
                        reads.push(ImportedRead {
                            started_at: day,
                            end: ReadEnd::Finished(day),
                        });
                    }
                }
                (status, rating, text_of_html(cell(self.review)), false, reads)
            }
            ImportFormat::Bookshelf => {
                let raw = cell(self.status);
                let status = ReadingStatus::parse(raw)
                    .ok_or_else(|| format!("status {raw:?} is not one of {}", ReadingStatus::ALL))?;
                let rating = match cell(self.rating) {
                    "" => None,
                    r => Some(
                        r.parse::<i16>()
                            .ok()
                            .filter(|r| (1..=5).contains(r))
                            .ok_or_else(|| format!("rating {r:?} is not 1 to 5"))?,
                    ),
                };
                let favorite = match cell(self.favorite) {
                    "" | "false" => false,
                    "true" => true,
                    f => return Err(format!("favorite {f:?} is neither true nor false")),
                };
                let started = day_or_time(cell(self.started_at))
                    .map_err(|v| format!("started_at {v:?} is not a time"))?;
                let finished = day_or_time(cell(self.finished_at))
                    .map_err(|v| format!("finished_at {v:?} is not a time"))?;
                let mut reads = Vec::new();
                match (started, finished) {
                    (Some(s), Some(f)) if f >= s => reads.push(ImportedRead {
                        started_at: s,
                        end: ReadEnd::Finished(f),
                    }),
                    (Some(_), Some(_)) => return Err("finished_at is before started_at".into()),
                    (None, Some(_)) => return Err("finished_at without started_at".into()),
                    (Some(s), None) if matches!(status, ReadingStatus::Reading | ReadingStatus::Paused) => {
                        reads.push(ImportedRead {
                            started_at: s,
                            end: ReadEnd::Open,
                        })
                    }
                    _ => {}
                }
                let review = non_empty(cell(self.review));
                (
                    status,
                    rating,
                    review.map(|r| truncate(&r, MAX_REVIEW_CHARS)),
                    favorite,
                    reads,
                )
            }
        };
        Ok(ImportRow {
            book: BookCandidate {
                title,
                authors,
                isbn,
                page_count,
                published_year,
            },
            status,
            rating,
            review,
            favorite,
            added_at,
            reads,
        })
    }
}

/// Goodreads' and StoryGraph's shelf names; anything else is "want to read".
fn shelf(s: &str) -> ReadingStatus {
    match s.to_ascii_lowercase().as_str() {
        "currently-reading" => ReadingStatus::Reading,
        "read" => ReadingStatus::Read,
        "paused" => ReadingStatus::Paused,
        "did-not-finish" => ReadingStatus::DidNotFinish,
        _ => ReadingStatus::WantToRead,
    }
}

/// Surrounding spaces removed and runs of whitespace made one space.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Goodreads writes ISBNs as `="9780441172719"` so that spreadsheets keep them text.
fn unwrap_goodreads(raw: &str) -> &str {
    let raw = raw.trim();
    let raw = raw.strip_prefix('=').unwrap_or(raw);
    raw.trim_matches('"')
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

fn truncate(s: &str, chars: usize) -> String {
    match s.char_indices().nth(chars) {
        Some((at, _)) => s[..at].to_string(),
        None => s.to_string(),
    }
}

/// A review as Goodreads exports it: HTML, with `<br/>` for line breaks. Line breaks kept,
/// other tags removed, the common entities decoded; the first 5,000 characters.
pub fn text_of_html(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        // A tag starts with a letter, `/` or `!`; anything else ("<3") is text.
        let is_tag = after[1..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!');
        match (is_tag, after.find('>')) {
            (true, Some(close)) => {
                let tag = after[1..close]
                    .trim()
                    .trim_end_matches('/')
                    .trim()
                    .to_ascii_lowercase();
                if tag == "br" || tag == "/p" {
                    out.push('\n');
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('<');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    non_empty(decoded.trim()).map(|r| truncate(&r, MAX_REVIEW_CHARS))
}

/// `YYYY/MM/DD`, `YYYY-MM-DD` (00:00 UTC) or an RFC 3339 time; empty is `None`; anything
/// else is the value back as the error.
fn day_or_time(s: &str) -> Result<Option<DateTime<Utc>>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for layout in ["%Y/%m/%d", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, layout) {
            return Ok(Some(
                Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()),
            ));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(s, layout) {
            return Ok(Some(Utc.from_utc_datetime(&t)));
        }
    }
    Err(s.to_string())
}

/// StoryGraph's `2023/01/05-2023/01/20`; one date alone is a read started and finished
/// that day.
fn date_range(s: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let day = |d: &str| day_or_time(d).ok().flatten();
    // Dates hold `-` themselves in the ISO layout: split on the one between two dates.
    let parts: Vec<&str> = s.split('-').map(str::trim).collect();
    let (start, end) = match parts.as_slice() {
        [one] => (day(one)?, day(one)?),
        ["", b] => (day(b)?, day(b)?),
        [a, b] => (day(a)?, day(b)?),
        _ => {
            let (a, b) = s.split_at(s.len() / 2);
            (day(a.trim())?, day(b.trim().trim_start_matches('-'))?)
        }
    };
    (end >= start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn rows(csv: &str) -> (ImportFormat, Vec<ParsedRow>) {
        let file = ImportFile::read(csv.as_bytes()).unwrap();
        (file.format, file.rows_after(0).collect())
    }

    #[test]
    fn reads_goodreads_rows() {
        let csv = "Book Id,Title,Author,Author l-f,Additional Authors,ISBN,ISBN13,My Rating,Number of Pages,Year Published,Date Read,Date Added,Exclusive Shelf,My Review\n\
            1,  Good   Omens ,Terry Pratchett,,\"Neil Gaiman, A. Third\",\"=\"\"0060853980\"\"\",\"=\"\"\"\"\",4,432,1990,2024/02/09,2024/01/02,read,Loved<br/>it &amp; <b>more</b> <3\n\
            2,Dune,Frank Herbert,,,=\"\",=\"bad\",0,,,,,currently-reading,\n\
            3,,Nobody,,,,,,,,,,,\n\
            4,X,Y,,,,,9,,,,,read,\n\
            5,Z,W,,,,,,,,,,shelved-elsewhere,\n";
        let (format, rows) = rows(csv);
        assert_eq!(format, ImportFormat::Goodreads);
        let first = rows[0].parsed.as_ref().unwrap();
        assert_eq!(first.book.title, "Good Omens");
        assert_eq!(first.book.authors, ["Terry Pratchett", "Neil Gaiman", "A. Third"]);
        assert_eq!(first.book.isbn.as_deref(), Some("9780060853983"));
        assert_eq!(
            (first.book.page_count, first.book.published_year),
            (Some(432), Some(1990))
        );
        assert_eq!((first.status, first.rating), (ReadingStatus::Read, Some(4)));
        assert_eq!(first.review.as_deref(), Some("Loved\nit & more <3"));
        assert_eq!(first.added_at, Some(day(2024, 1, 2)));
        assert_eq!(
            first.reads,
            [ImportedRead {
                started_at: day(2024, 2, 9),
                end: ReadEnd::Finished(day(2024, 2, 9))
            }]
        );
        let second = rows[1].parsed.as_ref().unwrap();
        assert_eq!(
            (second.status, second.rating, second.book.isbn.as_deref()),
            (ReadingStatus::Reading, None, None)
        );
        assert_eq!(rows[2].parsed, Err("the row has no title".into()));
        assert_eq!(rows[2].summary.authors, ["Nobody"]);
        assert!(rows[3].parsed.as_ref().unwrap_err().contains("My Rating"));
        assert_eq!(rows[4].parsed.as_ref().unwrap().status, ReadingStatus::WantToRead);
        assert_eq!(rows.iter().map(|r| r.row).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn reads_storygraph_rows() {
        let csv = "Title,Authors,Contributors,ISBN/UID,Format,Read Status,Date Added,Last Date Read,Dates Read,Read Count,Star Rating,Review\n\
            Piranesi,Susanna Clarke,,9781635575637,hardcover,read,2023/05/01,2023/06/02,\"2023/05/02-2023/05/20, 2023/06/01-2023/06/02\",2,3.5,Strange.\n\
            Ulysses,James Joyce,,not-an-isbn,,did-not-finish,,,2022/01/01-2022/02/01,,0,\n";
        let (format, rows) = rows(csv);
        assert_eq!(format, ImportFormat::Storygraph);
        let p = rows[0].parsed.as_ref().unwrap();
        assert_eq!(
            (p.status, p.rating, p.review.as_deref()),
            (ReadingStatus::Read, Some(4), Some("Strange."))
        );
        assert_eq!(p.book.isbn.as_deref(), Some("9781635575637"));
        assert_eq!(p.reads.len(), 2);
        assert_eq!(p.reads[1].end, ReadEnd::Finished(day(2023, 6, 2)));
        let u = rows[1].parsed.as_ref().unwrap();
        assert_eq!(
            (u.status, u.rating, u.book.isbn.as_deref()),
            (ReadingStatus::DidNotFinish, None, None)
        );
        assert_eq!(u.reads[0].end, ReadEnd::Abandoned(day(2022, 2, 1)));
    }

    #[test]
    fn reads_its_own_export() {
        let csv = "book_id,title,authors,isbn,status,rating,favorite,added_at,started_at,finished_at,review\r\n\
            00000000-0000-0000-0000-000000000000,Dune,Frank Herbert; Someone Else,9780441172719,read,5,true,2024-01-02T10:00:00Z,2024-01-03T00:00:00Z,2024-01-09T00:00:00Z,\"a, b\"\r\n\
            00000000-0000-0000-0000-000000000000,Emma,Jane Austen,,shelved,,false,,,,\r\n";
        let (format, rows) = rows(csv);
        assert_eq!(format, ImportFormat::Bookshelf);
        let d = rows[0].parsed.as_ref().unwrap();
        assert_eq!(d.book.authors, ["Frank Herbert", "Someone Else"]);
        assert!(d.favorite);
        assert_eq!(d.review.as_deref(), Some("a, b"));
        assert_eq!(d.reads[0].end, ReadEnd::Finished(day(2024, 1, 9)));
        assert!(rows[1].parsed.as_ref().unwrap_err().contains("status"));
    }

    #[test]
    fn refuses_files_it_cannot_read_whole() {
        assert_eq!(ImportFile::read(b"").unwrap_err(), FileError::Empty);
        assert_eq!(
            ImportFile::read(b"a,b,c\n1,2,3\n").unwrap_err(),
            FileError::UnknownHeader
        );
        assert!(matches!(
            ImportFile::read(b"\x89PNG\r\n\x1a\n\0\0").unwrap_err(),
            FileError::NotCsv(_)
        ));
        let mut bad = b"Title,Author,My Rating\nA,B,1\n".to_vec();
        bad.extend_from_slice(b"\xff\xfe,x,1\n");
        assert!(matches!(
            ImportFile::read(&bad).unwrap_err(),
            FileError::NotCsv(_)
        ));
        let big = vec![b'a'; MAX_FILE_BYTES as usize + 1];
        assert_eq!(ImportFile::read(&big).unwrap_err(), FileError::TooLarge);
        // Columns in any order, names in any case, a byte-order mark, unknown columns.
        let file =
            ImportFile::read(b"\xEF\xBB\xBFextra,exclusive shelf,AUTHOR, title \nx,read,B,A\n").unwrap();
        assert_eq!(file.format, ImportFormat::Goodreads);
        assert_eq!(file.rows_after(0).next().unwrap().parsed.unwrap().book.title, "A");
        assert_eq!(file.rows_after(1).count(), 0);
    }

    #[test]
    fn reviews_keep_their_first_5000_characters() {
        let long = "é".repeat(6000);
        assert_eq!(text_of_html(&long).unwrap().chars().count(), 5000);
        assert_eq!(text_of_html("  "), None);
    }
}
