use bookshelf_domain::{FieldError, Role};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::ApiError;

/// Bodies above this many bytes are refused with 413; exactly this many are accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses a JSON body. Types that use `Input<T>` fields never fail on a field's type, so
/// the only errors here are an oversized body, a missing body, or malformed JSON.
pub fn read_json<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => b"",
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        // Body is non-exhaustive upstream; nothing else is produced for proxy events.
        _ => b"",
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("a JSON request body is required".into()));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    // Checked before binding: serde would otherwise bind a JSON array to a struct by
    // position, so `["a@b.example", "secret"]` would pass for a login.
    if !value.is_object() {
        return Err(ApiError::BadRequest("the body must be a JSON object".into()));
    }
    // `Input<T>` fields take any JSON value, so this fails only for types without them;
    // the message names no Rust type.
    serde_json::from_value(value)
        .map_err(|_| ApiError::BadRequest("the body must be a JSON object with the documented fields".into()))
}

/// A body whose fields are all optional: no body at all (or only whitespace) reads as
/// `{}`, so `POST /reads/{id}/finish` needs none; anything else is read as `read_json` does.
pub fn read_optional_json<T: DeserializeOwned + Default>(req: &Request) -> Result<T, ApiError> {
    let empty = match req.body() {
        Body::Empty => true,
        Body::Text(t) => t.trim().is_empty(),
        Body::Binary(b) => b.iter().all(u8::is_ascii_whitespace),
        _ => true,
    };
    if empty {
        Ok(T::default())
    } else {
        read_json(req)
    }
}

/// PostgreSQL text cannot hold U+0000, so a query parameter carrying one (`?q=%00`) would
/// fail its query as a 500; it is refused before any handler runs. (Body fields are checked
/// as they are read: see `Input`.)
pub fn check_query(req: &Request) -> Result<(), ApiError> {
    let Some(query) = req.query_string_parameters_ref() else {
        return Ok(());
    };
    let mut names: Vec<String> = query
        .iter()
        .filter(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| name.replace('\0', "\\u0000"))
        .collect();
    names.sort();
    names.dedup();
    let errors: Vec<FieldError> = names
        .into_iter()
        .map(|name| FieldError::new(name, "must not contain the NUL character (U+0000)"))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The gateway's request id, for logs and problem bodies.
pub fn request_id(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
}

/// The caller's address as the gateway saw it.
pub fn source_ip(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.clone(),
        _ => None,
    }
}

/// A path parameter as sent.
pub fn path_param<'a>(req: &'a Request, name: &str) -> Result<&'a str, ApiError> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .ok_or_else(|| ApiError::BadRequest(format!("path parameter {name} is missing")))
}

/// A path parameter that must be a UUID; anything else is a 400 naming the parameter.
pub fn path_uuid(req: &Request, name: &str) -> Result<Uuid, ApiError> {
    let raw = path_param(req, name)?;
    Uuid::parse_str(raw).map_err(|_| ApiError::Validation(vec![FieldError::new(name, "must be a UUID")]))
}

/// A query parameter that must be one of an enum's spellings (a wrong one is an error
/// naming `allowed`); absent → `None`.
pub fn enum_param<T>(
    req: &Request,
    name: &str,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> bookshelf_domain::Checked<Option<T>> {
    match query_param(req, name) {
        None => Ok(None),
        Some(raw) => bookshelf_domain::field(
            name,
            parse(raw)
                .map(Some)
                .ok_or_else(|| format!("must be one of {allowed}")),
        ),
    }
}

/// The first value of a query parameter.
pub fn query_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref().and_then(|q| q.first(name))
}

/// Who is calling, as the authorizer established it. Handlers never read the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub user_id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
}

impl Identity {
    pub fn from_request(req: &Request) -> Result<Identity, ApiError> {
        let missing = || ApiError::Unauthorized("no authorizer context on this request".into());
        let Some(RequestContext::ApiGatewayV1(ctx)) = req.request_context_ref() else {
            return Err(missing());
        };
        let field = |name: &str| ctx.authorizer.fields.get(name).and_then(|v| v.as_str());
        let user_id = field("userId")
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(missing)?;
        let session_id = field("sessionId")
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(missing)?;
        let role = field("role").and_then(Role::parse).ok_or_else(missing)?;
        Ok(Identity {
            user_id,
            role,
            session_id,
        })
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this action needs the admin role".into()))
        }
    }
}

/// The entity tags of an `If-Match` header: `None` without the header, `Some(vec![])` for
/// one that names nothing usable, `"*"` kept as is.
pub fn if_match(req: &Request) -> Option<Vec<String>> {
    let values: Vec<&str> = req
        .headers()
        .get_all(http::header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return None;
    }
    Some(
        values
            .iter()
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
    }

    fn request(body: &str) -> Request {
        let mut req = Request::new(Body::Text(body.to_string()));
        *req.method_mut() = lambda_http::http::Method::POST;
        req
    }

    fn bad_request(body: &str) -> String {
        match read_json::<Login>(&request(body)) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation(errs) => errs.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn nul_characters_in_the_query_are_refused() {
        let query = |pairs: &[(&str, &str)]| {
            let map: std::collections::HashMap<String, Vec<String>> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string(), "plain".to_string()]))
                .collect();
            request("").with_query_string_parameters(map)
        };
        assert!(check_query(&request("")).is_ok());
        assert!(check_query(&query(&[("q", "dune"), ("limit", "5")])).is_ok());
        assert_eq!(
            fields(check_query(&query(&[("q", "a\0b"), ("tag", "ok"), ("x\0", "1")])).unwrap_err()),
            ["q", "x\\u0000"]
        );
    }

    #[test]
    fn only_json_objects_are_bodies() {
        assert!(read_json::<Login>(&request(r#"{"email":"a@b.example","password":"x"}"#)).is_ok());
        // An array would bind by position without the object check.
        assert_eq!(
            bad_request(r#"["a@b.example","x"]"#),
            "the body must be a JSON object"
        );
        assert_eq!(bad_request("null"), "the body must be a JSON object");
        assert_eq!(bad_request("42"), "the body must be a JSON object");
        assert!(bad_request("{").starts_with("the body is not valid JSON"));
        assert_eq!(bad_request("  "), "a JSON request body is required");
        // Types without Input<T> fields: no Rust type name in the message.
        assert!(!bad_request(r#"{"email":1}"#).contains("Login"));
    }
}
