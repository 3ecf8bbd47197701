//! Books: the catalog's shape and its validation rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::user::rfc3339;
use crate::validation::{char_len, length_between};
use crate::{field, isbn, rule, AllValid, Input};

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Book {
    pub id: Uuid,
    pub title: String,
    pub authors: Vec<String>,
    /// ISBN-13, digits only.
    pub isbn: Option<String>,
    pub published_year: Option<i32>,
    /// 1 to 100,000, or unknown.
    pub page_count: Option<i32>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// `null`: not for sale (a book a reader added; only admins set a price).
    pub price_cents: Option<i64>,
    pub stock: i32,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    /// Bumped on every change; the ETag.
    #[serde(skip)]
    pub version: i64,
}

impl Book {
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.id.simple(), self.version)
    }
}

/// A book's body as sent on create and update. Deserialising never fails on a field;
/// `validate_*` decides what is required. The schema is the create body's; the OpenAPI
/// document adds the item limits and derives the PATCH body from it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookInput {
    /// 1 to 300 characters after trimming.
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, required = true)]
    pub title: Input<String>,
    #[serde(default)]
    #[schema(value_type = Vec<String>, min_items = 1, max_items = 20, required = true)]
    pub authors: Input<Vec<serde_json::Value>>,
    /// ISBN-10 or ISBN-13; stored as ISBN-13.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9Xx -]{10,17}$")]
    pub isbn: Input<String>,
    #[serde(default)]
    #[schema(value_type = Option<i32>, minimum = -3000)]
    pub published_year: Input<i64>,
    #[serde(default)]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 100000)]
    pub page_count: Input<i64>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 10000)]
    pub description: Input<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, max_items = 20)]
    pub tags: Input<Vec<serde_json::Value>>,
    /// Absent or `null`: not for sale. Only admins may set one.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub price_cents: Input<i64>,
    /// Only on create (default 0, and only admins may name another); afterwards stock
    /// changes through inventory and orders.
    #[serde(default)]
    #[schema(value_type = Option<i32>, minimum = 0)]
    pub stock: Input<i64>,
}

/// A validated new book.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBook {
    pub title: String,
    pub authors: Vec<String>,
    pub isbn: Option<String>,
    pub published_year: Option<i32>,
    pub page_count: Option<i32>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub price_cents: Option<i64>,
    pub stock: i32,
}

impl NewBook {
    /// Whether it is offered for sale (a price or stock): only admins may add such a book.
    pub fn for_sale(&self) -> bool {
        self.price_cents.is_some() || self.stock != 0
    }
}

/// A validated change: `None` leaves a field alone; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookPatch {
    pub title: Option<String>,
    pub authors: Option<Vec<String>>,
    pub isbn: Option<Option<String>>,
    pub published_year: Option<Option<i32>>,
    pub page_count: Option<Option<i32>>,
    pub description: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub price_cents: Option<Option<i64>>,
}

fn title(s: String) -> Result<String, String> {
    let t = s.trim().to_string();
    length_between(&t, 1, 300)?;
    Ok(t)
}

fn string_list(
    items: Vec<serde_json::Value>,
    max_items: usize,
    min_items: usize,
    max_len: usize,
    what: &str,
) -> Result<Vec<String>, String> {
    if items.len() < min_items || items.len() > max_items {
        return Err(if min_items > 0 {
            format!("must have {min_items} to {max_items} {what}")
        } else {
            format!("must have at most {max_items} {what}")
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let serde_json::Value::String(s) = item else {
            return Err(format!("item {i} must be a string"));
        };
        let s = s.trim().to_string();
        let n = char_len(&s);
        if n == 0 || n > max_len {
            return Err(format!("item {i} must be 1 to {max_len} characters"));
        }
        out.push(s);
    }
    Ok(out)
}

fn authors(v: Vec<serde_json::Value>) -> Result<Vec<String>, String> {
    string_list(v, 20, 1, 200, "authors")
}

fn tags(v: Vec<serde_json::Value>) -> Result<Vec<String>, String> {
    let mut tags: Vec<String> = string_list(v, 20, 0, 40, "tags")?
        .into_iter()
        .map(|t| t.to_lowercase())
        .collect();
    // Lower-casing can make two tags one; keep the first of each.
    let mut seen = std::collections::HashSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    Ok(tags)
}

fn year(y: i64, current_year: i32) -> Result<i32, String> {
    let max = current_year as i64 + 1;
    if (-3000..=max).contains(&y) {
        Ok(y as i32)
    } else {
        Err(format!("must be from -3000 to {max}"))
    }
}

fn page_count(n: i64) -> Result<i32, String> {
    if (1..=crate::reading::MAX_PAGE as i64).contains(&n) {
        Ok(n as i32)
    } else {
        Err(format!(
            "must be an integer from 1 to {}",
            crate::reading::MAX_PAGE
        ))
    }
}

fn description(d: String) -> Result<String, String> {
    length_between(&d, 0, 10_000)?;
    Ok(d)
}

fn price(p: i64) -> Result<i64, String> {
    if p >= 0 {
        Ok(p)
    } else {
        Err("must be 0 or more".into())
    }
}

fn stock(s: i64) -> Result<i32, String> {
    if (0..=i32::MAX as i64).contains(&s) {
        Ok(s as i32)
    } else {
        Err("must be 0 or more".into())
    }
}

/// `Ok(None)` for absent or null, else the checked value.
fn nullable<T, U>(input: Input<T>, f: impl FnOnce(T) -> Result<U, String>) -> Result<Option<U>, String> {
    input
        .patch()
        .map(Option::flatten)
        .and_then(|v| v.map(f).transpose())
}

/// Like `nullable`, but keeping "absent" and "null" apart for PATCH.
fn patch_nullable<T, U>(
    input: Input<T>,
    f: impl FnOnce(T) -> Result<U, String>,
) -> Result<Option<Option<U>>, String> {
    input
        .patch()
        .and_then(|v| v.map(|inner| inner.map(f).transpose()).transpose())
}

fn patch_required<T, U>(
    input: Input<T>,
    f: impl FnOnce(T) -> Result<U, String>,
) -> Result<Option<U>, String> {
    input.optional().and_then(|v| v.map(f).transpose())
}

impl BookInput {
    pub fn validate_new(self, current_year: i32) -> Result<NewBook, Vec<crate::FieldError>> {
        let checked = (
            field("title", self.title.required().and_then(title)),
            field("authors", self.authors.required().and_then(authors)),
            field("isbn", nullable(self.isbn, |s| isbn::normalize(&s))),
            field(
                "publishedYear",
                nullable(self.published_year, |y| year(y, current_year)),
            ),
            field("pageCount", nullable(self.page_count, page_count)),
            field("description", nullable(self.description, description)),
            field("tags", nullable(self.tags, tags)),
            field("priceCents", nullable(self.price_cents, price)),
            field(
                "stock",
                nullable(self.stock, stock).map(Option::unwrap_or_default),
            ),
        );
        let (title, authors, isbn, published_year, page_count, description, tags, price_cents, stock) =
            checked.all_valid()?;
        Ok(NewBook {
            title,
            authors,
            isbn,
            published_year,
            page_count,
            description,
            tags: tags.unwrap_or_default(),
            price_cents,
            stock,
        })
    }

    pub fn validate_patch(self, current_year: i32) -> Result<BookPatch, Vec<crate::FieldError>> {
        let checked = (
            field("title", patch_required(self.title, title)),
            field("authors", patch_required(self.authors, authors)),
            field("isbn", patch_nullable(self.isbn, |s| isbn::normalize(&s))),
            field(
                "publishedYear",
                patch_nullable(self.published_year, |y| year(y, current_year)),
            ),
            field("pageCount", patch_nullable(self.page_count, page_count)),
            field("description", patch_nullable(self.description, description)),
            field(
                "tags",
                patch_nullable(self.tags, tags).map(|t| t.map(Option::unwrap_or_default)),
            ),
            field("priceCents", patch_nullable(self.price_cents, price)),
            rule(
                "stock",
                !self.stock.is_missing(),
                "cannot be changed here; use POST /books/{id}/inventory",
            ),
        );
        let (title, authors, isbn, published_year, page_count, description, tags, price_cents, ()) =
            checked.all_valid()?;
        Ok(BookPatch {
            title,
            authors,
            isbn,
            published_year,
            page_count,
            description,
            tags,
            price_cents,
        })
    }
}

/// An inventory change request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryInput {
    /// Non-zero; negative takes stock away.
    #[serde(default)]
    #[schema(value_type = i32, required = true)]
    pub delta: Input<i64>,
    /// 1 to 200 characters after trimming.
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, required = true)]
    pub reason: Input<String>,
}

impl InventoryInput {
    pub fn validate(self) -> Result<(i32, String), Vec<crate::FieldError>> {
        let delta = field(
            "delta",
            self.delta.required().and_then(|d| {
                if d == 0 {
                    Err("must not be 0".to_string())
                } else {
                    i32::try_from(d).map_err(|_| "is out of range".to_string())
                }
            }),
        );
        let reason = field(
            "reason",
            self.reason.required().and_then(|r| {
                let r = r.trim().to_string();
                length_between(&r, 1, 200).map(|()| r)
            }),
        );
        (delta, reason).all_valid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: serde_json::Value) -> BookInput {
        serde_json::from_value(v).unwrap()
    }

    fn fields(errs: Vec<crate::FieldError>) -> Vec<String> {
        let mut f: Vec<String> = errs.into_iter().map(|e| e.field).collect();
        f.sort();
        f
    }

    #[test]
    fn create_requires_and_normalises() {
        let b = input(json!({
            "title": " Dune ", "authors": ["Frank Herbert"], "isbn": "0-441-17271-7",
            "tags": ["SciFi", "scifi", "Classic"], "priceCents": 999, "stock": 3, "publishedYear": 1965
        }))
        .validate_new(2026)
        .unwrap();
        assert_eq!(b.title, "Dune");
        assert_eq!(b.isbn.as_deref(), Some("9780441172719"));
        assert_eq!(b.tags, ["scifi", "classic"]);
        let errs = input(json!({})).validate_new(2026).unwrap_err();
        assert_eq!(fields(errs), ["authors", "title"]);
        // Only title and authors are required: a book not for sale, with no stock.
        let plain = input(json!({"title": "t", "authors": ["a"]}))
            .validate_new(2026)
            .unwrap();
        assert_eq!(
            (plain.price_cents, plain.stock, plain.for_sale()),
            (None, 0, false)
        );
        let priced = input(json!({"title": "t", "authors": ["a"], "priceCents": 0}))
            .validate_new(2026)
            .unwrap();
        assert!(priced.for_sale());
        let stocked = input(json!({"title": "t", "authors": ["a"], "priceCents": null, "stock": 2}))
            .validate_new(2026)
            .unwrap();
        assert!(stocked.for_sale());
        let errs = input(json!({
            "title": "", "authors": [], "isbn": "123", "publishedYear": 2028, "description": "d".repeat(10_001),
            "tags": ["x".repeat(41)], "priceCents": -1, "stock": -1
        }))
        .validate_new(2026)
        .unwrap_err();
        assert_eq!(
            fields(errs),
            [
                "authors",
                "description",
                "isbn",
                "priceCents",
                "publishedYear",
                "stock",
                "tags",
                "title"
            ]
        );
        assert!(input(
            json!({"title": "t", "authors": ["a"], "priceCents": 0, "stock": 0, "publishedYear": 2027})
        )
        .validate_new(2026)
        .is_ok());
        assert!(
            input(json!({"title": "t", "authors": vec!["a"; 21], "priceCents": 0, "stock": 0}))
                .validate_new(2026)
                .is_err()
        );
    }

    #[test]
    fn patch_rejects_stock_and_keeps_absent_apart_from_null() {
        let errs = input(json!({"stock": 5, "title": ""}))
            .validate_patch(2026)
            .unwrap_err();
        assert_eq!(fields(errs), ["stock", "title"]);
        let p = input(json!({"isbn": null, "priceCents": 5}))
            .validate_patch(2026)
            .unwrap();
        assert_eq!(p.isbn, Some(None));
        assert_eq!(p.price_cents, Some(Some(5)));
        assert_eq!(p.title, None);
        let p = input(json!({"priceCents": null})).validate_patch(2026).unwrap();
        assert_eq!(p.price_cents, Some(None), "a null price takes a book off sale");
        let errs = input(json!({"title": null, "authors": null}))
            .validate_patch(2026)
            .unwrap_err();
        assert_eq!(fields(errs), ["authors", "title"]);
    }

    #[test]
    fn inventory() {
        let ok: InventoryInput = serde_json::from_value(json!({"delta": -2, "reason": " sold "})).unwrap();
        assert_eq!(ok.validate().unwrap(), (-2, "sold".to_string()));
        let bad: InventoryInput = serde_json::from_value(json!({"delta": 0, "reason": ""})).unwrap();
        assert_eq!(fields(bad.validate().unwrap_err()), ["delta", "reason"]);
        let bad: InventoryInput = serde_json::from_value(json!({"delta": 1.5})).unwrap();
        assert_eq!(fields(bad.validate().unwrap_err()), ["delta", "reason"]);
    }
}
