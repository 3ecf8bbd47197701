//! CORS for browser clients on other origins (`ALLOWED_ORIGINS`). Deployed, API Gateway
//! answers preflights and adds these headers to its own errors (template.yaml); the
//! functions add them to theirs here, and the local gateway does both the same way.

use http::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};

/// What a script on an allowed origin may read besides the simple headers.
pub const EXPOSED_HEADERS: &str = "ETag,Location,Retry-After";
/// What a preflight allows (the same lists as the template's `Cors`).
pub const ALLOWED_METHODS: &str = "GET,POST,PUT,PATCH,DELETE,OPTIONS";
pub const ALLOWED_HEADERS: &str = "Authorization,Content-Type,Idempotency-Key,If-Match";
pub const MAX_AGE_SECS: &str = "600";

/// The origins whose pages may call the API. Empty: no CORS header is ever added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    // Shared: every request's wrapper holds a copy.
    origins: std::sync::Arc<[String]>,
}

impl Cors {
    /// From a comma-separated list such as `ALLOWED_ORIGINS` holds.
    pub fn from_list(list: &str) -> Cors {
        Cors {
            origins: list
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect::<Vec<_>>()
                .into(),
        }
    }

    /// The `Origin` a request came with, if any (what `apply` and `preflight` are given).
    pub fn origin(headers: &HeaderMap) -> Option<&str> {
        headers.get(http::header::ORIGIN).and_then(|o| o.to_str().ok())
    }

    pub fn is_enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    /// The request's origin, if it is one of ours (origins compare exactly, as browsers send them).
    fn allowed<'a>(&self, origin: Option<&'a str>) -> Option<&'a str> {
        origin.filter(|o| self.origins.iter().any(|allowed| allowed == o))
    }

    /// The headers of any response to a request from `origin`: `Vary: Origin` whenever CORS
    /// is on (caches must keep answers to different origins apart), the allow and expose
    /// headers only for an allowed origin. Setting them twice changes nothing.
    pub fn apply(&self, origin: Option<&str>, headers: &mut HeaderMap) {
        if !self.is_enabled() {
            return;
        }
        headers.insert(VARY, HeaderValue::from_static("Origin"));
        if let Some(value) = self.allowed(origin).and_then(|o| HeaderValue::from_str(o).ok()) {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
    }

    /// A preflight's headers, as API Gateway's mock answers it: the methods, headers and
    /// lifetime always, the origin only when it is allowed.
    pub fn preflight(&self, origin: Option<&str>, headers: &mut HeaderMap) {
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE_SECS));
        self.apply(origin, headers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_listed_origin_is_allowed_and_vary_is_always_there() {
        let cors = Cors::from_list(" https://app.example.org/ , http://127.0.0.1:8080");
        let mut h = HeaderMap::new();
        cors.apply(Some("https://app.example.org"), &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.org");
        assert_eq!(h[ACCESS_CONTROL_EXPOSE_HEADERS], EXPOSED_HEADERS);
        assert_eq!(h[VARY], "Origin");
        for other in [
            Some("https://evil.example.org"),
            Some("https://app.example.org.evil"),
            None,
        ] {
            let mut h = HeaderMap::new();
            cors.apply(other, &mut h);
            assert!(h.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{other:?}");
            assert_eq!(h[VARY], "Origin");
        }
    }

    #[test]
    fn without_origins_nothing_is_added() {
        let cors = Cors::from_list(" ");
        let mut h = HeaderMap::new();
        cors.apply(Some("https://app.example.org"), &mut h);
        assert!(h.is_empty());
    }
}
