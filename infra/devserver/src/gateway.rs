//! The local stand-in for API Gateway: routes from `template.yaml`, the REQUEST authorizer,
//! gateway responses, and Lambda proxy events handed to the same handlers the Lambdas run.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerRequestTypeRequestContext,
    ApiGatewayCustomAuthorizerResponse, ApiGatewayProxyRequest, ApiGatewayProxyRequestContext,
};
use aws_lambda_events::iam::IamPolicyEffect;
use aws_lambda_events::query_map::QueryMap;
use axum::body::Body as AxumBody;
use bookshelf_api::authorizer::{authorize, AuthorizerError};
use bookshelf_api::registry::{http_handler, Handler, HttpFunction};
use bookshelf_api::AppState;
use http::{HeaderValue, Method, StatusCode};
use lambda_http::request::LambdaRequest;

use crate::remote::{InvokeError, Remote};
use crate::template::{GatewayResponse, Template};

/// The most the local gateway reads of a body: the API's own limit (API Gateway would pass
/// up to 10 MB to the function, which refuses it with the same 413). Refusing here, before
/// buffering, keeps a client from making the dev server hold megabytes per request.
pub const GATEWAY_MAX_BODY: usize = bookshelf_http::MAX_BODY_BYTES;
const STAGE: &str = "local";
const API_ARN: &str = "arn:aws:execute-api:local:000000000000:bookshelf";

struct LocalRoute {
    method: Method,
    resource: String,
    function: &'static HttpFunction,
    authorized: bool,
    /// The authorizer's answer may come from its result cache (remote functions only:
    /// locally nothing is cached, so revocations apply at once).
    cached: bool,
}

pub struct Gateway {
    state: Arc<AppState>,
    /// Path → the routes on it, one per method.
    router: matchit::Router<Vec<LocalRoute>>,
    identity_headers: Vec<String>,
    responses: HashMap<String, GatewayResponse>,
    /// Functions in environments of their own (`make scale`) instead of in this process.
    remote: Option<Arc<Remote>>,
}

/// A request id shaped like API Gateway's (a v4 UUID). It only has to be unique in the logs,
/// so it comes from a fast non-cryptographic generator, not a `getrandom` call per request.
fn request_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .to_string()
}

/// API Gateway's `{id}` path syntax is also matchit's, except for greedy `{proxy+}`.
fn matchit_path(resource: &str) -> String {
    resource.replace("+}", "}")
}

impl Gateway {
    /// Builds the gateway; fails if a route names a function the registry does not have.
    pub fn new(template: &Template, state: Arc<AppState>) -> Result<Gateway> {
        let mut by_path: HashMap<String, Vec<LocalRoute>> = HashMap::new();
        for r in &template.routes {
            let Some(function) = http_handler(&r.function) else {
                bail!(
                    "template.yaml routes {} {} to {}, which has no handler",
                    r.method,
                    r.path,
                    r.function
                );
            };
            by_path.entry(r.path.clone()).or_default().push(LocalRoute {
                method: r.method.clone(),
                resource: r.path.clone(),
                function,
                authorized: r.authorized,
                cached: r.cached,
            });
        }
        let mut router = matchit::Router::new();
        for (path, routes) in by_path {
            router.insert(matchit_path(&path), routes)?;
        }
        if let Some(a) = &template.authorizer {
            if a.function != "authorizer" {
                bail!(
                    "the local gateway runs the authorizer function `authorizer`, the template names {}",
                    a.function
                );
            }
        }
        Ok(Gateway {
            state,
            router,
            identity_headers: template
                .authorizer
                .as_ref()
                .map(|a| a.identity_headers.clone())
                .unwrap_or_default(),
            responses: template.gateway_responses.clone(),
            remote: None,
        })
    }

    /// The same gateway in front of functions in environments of their own; `state` serves
    /// only the gateway's own settings (CORS).
    pub fn with_remote(mut self, remote: Arc<Remote>) -> Gateway {
        self.remote = Some(remote);
        self
    }

    /// One HTTP request, start to end.
    /// One request, as API Gateway handles it; CORS as the template configures it: the
    /// preflight of any known path answered here, and the CORS headers on every response.
    pub async fn handle(self: Arc<Self>, req: http::Request<AxumBody>) -> http::Response<AxumBody> {
        let origin = bookshelf_http::Cors::origin(req.headers()).map(str::to_string);
        let cors = self.state.cors.clone();
        let upload = req.uri().path().starts_with(bookshelf_objects::LOCAL_UPLOAD_PATH);
        let mut response = if upload && req.method() != http::Method::OPTIONS {
            crate::uploads::put(&self.state, req).await
        } else if req.method() == http::Method::OPTIONS
            && (upload || self.router.at(req.uri().path()).is_ok())
        {
            let mut preflight = http::Response::new(AxumBody::from("{}"));
            preflight.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            cors.preflight(origin.as_deref(), preflight.headers_mut());
            preflight
        } else {
            self.route(req).await
        };
        cors.apply(origin.as_deref(), response.headers_mut());
        response
    }

    async fn route(self: Arc<Self>, req: http::Request<AxumBody>) -> http::Response<AxumBody> {
        let request_id = request_id();
        let (parts, body) = req.into_parts();
        let body = match axum::body::to_bytes(body, GATEWAY_MAX_BODY).await {
            Ok(b) => b,
            Err(_) => return self.gateway_response("REQUEST_TOO_LARGE", "Request Too Long", &request_id),
        };
        let path = parts.uri.path().to_string();
        let Ok(matched) = self.router.at(&path) else {
            return self.gateway_response(
                "MISSING_AUTHENTICATION_TOKEN",
                "Missing Authentication Token",
                &request_id,
            );
        };
        let Some(route) = matched.value.iter().find(|r| r.method == parts.method) else {
            // REST APIs answer a known path with an unknown method the same way.
            return self.gateway_response(
                "MISSING_AUTHENTICATION_TOKEN",
                "Missing Authentication Token",
                &request_id,
            );
        };
        let path_parameters: HashMap<String, String> = matched
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), percent_decode(v)))
            .collect();
        let (single, multi) = query_maps(parts.uri.query());

        let mut context = ApiGatewayProxyRequestContext::default();
        context.request_id = Some(request_id.clone());
        context.stage = Some(STAGE.into());
        context.resource_path = Some(route.resource.clone());
        context.path = Some(path.clone());
        context.http_method = parts.method.clone();
        context.apiid = Some("bookshelf".into());
        context.request_time_epoch = chrono::Utc::now().timestamp_millis();
        context.identity.source_ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        context.identity.user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);

        let mut event = ApiGatewayProxyRequest::default();
        event.resource = Some(route.resource.clone());
        event.http_method = parts.method.clone();
        event.multi_value_headers = parts.headers.clone();
        event.headers = parts.headers;
        event.query_string_parameters = single;
        event.multi_value_query_string_parameters = multi;
        event.path_parameters = path_parameters;

        if route.authorized {
            match self.run_authorizer(route, &mut event, &path, &request_id).await {
                Ok(fields) => context.authorizer.fields = fields,
                Err(response) => return response,
            }
        }
        event.path = Some(path);
        event.request_context = context;
        if !body.is_empty() {
            match std::str::from_utf8(&body) {
                Ok(text) => event.body = Some(text.to_string()),
                Err(_) => {
                    use base64::Engine;
                    event.body = Some(base64::engine::general_purpose::STANDARD.encode(&body));
                    event.is_base64_encoded = true;
                }
            }
        }

        if let Some(remote) = &self.remote {
            return self
                .invoke_remote(remote, route.function.name, &event, &request_id)
                .await;
        }
        let request: lambda_http::Request = LambdaRequest::ApiGatewayV1(event).into();
        // A panicking handler is a failed invocation, as in Lambda: the gateway answers 502.
        let invocation = async {
            match route.function.handler {
                Handler::Buffered(handler) => {
                    let (parts, body) = handler(self.state.clone(), request).await.into_parts();
                    let body = match body {
                        lambda_http::Body::Text(t) => AxumBody::from(t),
                        lambda_http::Body::Binary(b) => AxumBody::from(b),
                        _ => AxumBody::empty(),
                    };
                    http::Response::from_parts(parts, body)
                }
                // Written to the client as it is produced (chunked), as API Gateway streams it.
                Handler::Streaming(handler) => {
                    let (parts, body) = handler(self.state.clone(), request).await.into_parts();
                    http::Response::from_parts(parts, AxumBody::new(body))
                }
            }
        };
        let invocation = std::panic::AssertUnwindSafe(invocation);
        let response = match futures::FutureExt::catch_unwind(invocation).await {
            Ok(r) => r,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(no message)");
                tracing::error!(request_id, panic = message, "handler panicked");
                return self.gateway_response("INTEGRATION_FAILURE", "Internal server error", &request_id);
            }
        };
        let mut response = response;
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-amzn-requestid", v);
        }
        response
    }

    /// Runs the REQUEST authorizer on the request `proxy` is about to carry; `Ok` carries
    /// the context for the integration. The authorizer's event borrows the request's
    /// headers and parameters and hands them back, so each is built once per request.
    async fn run_authorizer(
        &self,
        route: &LocalRoute,
        proxy: &mut ApiGatewayProxyRequest,
        path: &str,
        request_id: &str,
    ) -> Result<HashMap<String, serde_json::Value>, http::Response<AxumBody>> {
        // Missing identity source: API Gateway refuses without invoking the authorizer.
        // (Bytes, not `to_str`: a header that is not text is the authorizer's to refuse.)
        let has_identity = self.identity_headers.iter().all(|h| {
            proxy
                .headers
                .get(h.as_str())
                .is_some_and(|v| !v.as_bytes().trim_ascii().is_empty())
        });
        if !has_identity {
            return Err(self.gateway_response("UNAUTHORIZED", "Unauthorized", request_id));
        }
        let method_arn = format!("{API_ARN}/{STAGE}/{}{}", route.method, path);
        let mut event = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
        event.type_ = Some("REQUEST".into());
        event.method_arn = Some(method_arn.clone());
        event.resource = Some(route.resource.clone());
        event.path = Some(path.to_string());
        event.http_method = Some(route.method.clone());
        event.headers = std::mem::take(&mut proxy.headers);
        event.multi_value_headers = std::mem::take(&mut proxy.multi_value_headers);
        event.query_string_parameters = std::mem::take(&mut proxy.query_string_parameters);
        event.path_parameters = std::mem::take(&mut proxy.path_parameters);
        let mut ctx = ApiGatewayCustomAuthorizerRequestTypeRequestContext::default();
        ctx.request_id = Some(request_id.to_string());
        ctx.stage = Some(STAGE.into());
        ctx.resource_path = Some(route.resource.clone());
        ctx.http_method = Some(route.method.clone());
        event.request_context = ctx;

        let outcome = match &self.remote {
            None => authorize(self.state.clone(), &event).await,
            Some(remote) => {
                let identity = self
                    .identity_headers
                    .iter()
                    .flat_map(|h| event.headers.get(h.as_str()).map(|v| v.as_bytes().to_vec()))
                    .flatten()
                    .collect::<Vec<u8>>();
                Self::authorize_remote(remote, &event, route.cached.then_some(identity)).await
            }
        };
        proxy.headers = event.headers;
        proxy.multi_value_headers = event.multi_value_headers;
        proxy.query_string_parameters = event.query_string_parameters;
        proxy.path_parameters = event.path_parameters;

        // No result cache locally: revocations take effect at once (API.md).
        match outcome {
            Ok(response) => {
                if !allows(&response, &method_arn) {
                    return Err(self.gateway_response(
                        "ACCESS_DENIED",
                        "User is not authorized to access this resource",
                        request_id,
                    ));
                }
                let mut fields: HashMap<String, serde_json::Value> = match response.context {
                    serde_json::Value::Object(map) => map.into_iter().collect(),
                    _ => HashMap::new(),
                };
                if let Some(p) = response.principal_id {
                    fields.insert("principalId".into(), p.into());
                }
                Ok(fields)
            }
            Err(AuthorizerError::Unauthorized) => {
                Err(self.gateway_response("UNAUTHORIZED", "Unauthorized", request_id))
            }
            // A Lambda authorizer that errors (anything but "Unauthorized") is, to API
            // Gateway, one it could not use: AUTHORIZER_CONFIGURATION_ERROR, not
            // AUTHORIZER_FAILURE. (The authorizer has logged the cause.)
            Err(AuthorizerError::Failure(_)) => Err(self.gateway_response(
                "AUTHORIZER_CONFIGURATION_ERROR",
                "Internal server error",
                request_id,
            )),
        }
    }

    /// The authorizer in its own environments, its answers cached as API Gateway caches them
    /// (`identity` is the cache key, `None` on routes that are never cached).
    async fn authorize_remote(
        remote: &Remote,
        event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
        identity: Option<Vec<u8>>,
    ) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
        let cached = identity.as_deref().and_then(|i| remote.cached_answer(i));
        let answer = match cached {
            Some(answer) => answer,
            None => match remote.invoke::<serde_json::Value>("authorizer", event).await {
                Ok(answer) => {
                    if let Some(identity) = identity {
                        remote.remember_answer(identity, answer.clone());
                    }
                    answer
                }
                // API Gateway's convention: the error "Unauthorized" is a refusal (401).
                Err(InvokeError::Function { message, .. }) if message == "Unauthorized" => {
                    return Err(AuthorizerError::Unauthorized)
                }
                Err(e) => return Err(AuthorizerError::Failure(Box::new(e))),
            },
        };
        serde_json::from_value(answer).map_err(|e| AuthorizerError::Failure(Box::new(e)))
    }

    /// The integration, on a function environment: Lambda's proxy response, or API
    /// Gateway's 502 when the invocation failed (an error, a crash, the function's timeout).
    async fn invoke_remote(
        &self,
        remote: &Remote,
        function: &str,
        event: &ApiGatewayProxyRequest,
        request_id: &str,
    ) -> http::Response<AxumBody> {
        let response = match remote
            .invoke::<aws_lambda_events::apigw::ApiGatewayProxyResponse>(function, event)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(request_id, function, error = %e, "invocation failed");
                return self.gateway_response("INTEGRATION_FAILURE", "Internal server error", request_id);
            }
        };
        let mut builder = http::Response::builder()
            .status(StatusCode::from_u16(response.status_code as u16).unwrap_or(StatusCode::BAD_GATEWAY))
            .header("x-amzn-requestid", request_id);
        for (name, value) in response.multi_value_headers.iter() {
            builder = builder.header(name, value);
        }
        for (name, value) in response.headers.iter() {
            if !response.multi_value_headers.contains_key(name) {
                builder = builder.header(name, value);
            }
        }
        let body = match response.body {
            Some(aws_lambda_events::encodings::Body::Text(t)) => AxumBody::from(t),
            Some(aws_lambda_events::encodings::Body::Binary(b)) => AxumBody::from(b),
            _ => AxumBody::empty(),
        };
        builder.body(body).unwrap_or_else(|_| {
            self.gateway_response("INTEGRATION_FAILURE", "Internal server error", request_id)
        })
    }

    /// A gateway response as `template.yaml` configures it (falling back to the
    /// DEFAULT_4XX/5XX entries, as API Gateway does).
    pub fn gateway_response(&self, kind: &str, message: &str, request_id: &str) -> http::Response<AxumBody> {
        let default_status = match kind {
            "UNAUTHORIZED" => 401,
            "ACCESS_DENIED" => 403,
            "MISSING_AUTHENTICATION_TOKEN" => 403,
            "REQUEST_TOO_LARGE" => 413,
            "THROTTLED" => 429,
            "INTEGRATION_FAILURE" => 502,
            _ => 500,
        };
        let fallback = if default_status >= 500 {
            "DEFAULT_5XX"
        } else {
            "DEFAULT_4XX"
        };
        let configured = self.responses.get(kind).or_else(|| self.responses.get(fallback));
        let status = configured.and_then(|c| c.status).unwrap_or(default_status);
        let mut builder = http::Response::builder()
            .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header("x-amzn-requestid", request_id)
            .header("x-amzn-errortype", kind);
        let mut body = format!(r#"{{"message":{}}}"#, serde_json::Value::from(message));
        let mut content_type = "application/json".to_string();
        if let Some(c) = configured {
            for (name, value) in &c.headers {
                if name.eq_ignore_ascii_case("content-type") {
                    content_type = value.clone();
                } else {
                    builder = builder.header(name.as_str(), value.as_str());
                }
            }
            if let Some(t) = &c.template {
                body = t
                    .replace(
                        "$context.error.messageString",
                        &serde_json::Value::from(message).to_string(),
                    )
                    .replace("$context.error.message", message)
                    .replace("$context.requestId", request_id);
            }
        }
        builder
            .header(http::header::CONTENT_TYPE, content_type)
            .body(AxumBody::from(body))
            .unwrap_or_else(|_| http::Response::new(AxumBody::empty()))
    }
}

/// Whether an IAM policy allows `arn`: some Allow statement matches and no Deny does.
fn allows(response: &ApiGatewayCustomAuthorizerResponse, arn: &str) -> bool {
    let matches = |effect: IamPolicyEffect| {
        response.policy_document.statement.iter().any(|s| {
            s.effect == effect
                && s.action.iter().any(|a| glob(a, "execute-api:Invoke"))
                && s.resource.iter().any(|r| glob(r, arn))
        })
    };
    matches(IamPolicyEffect::Allow) && !matches(IamPolicyEffect::Deny)
}

/// IAM wildcard match: `*` any run of characters, `?` one character. ARNs are ASCII, so
/// they are matched byte by byte; anything else character by character.
fn glob(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        glob_in(pattern.as_bytes(), text.as_bytes(), b'*', b'?')
    } else {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        glob_in(&p, &t, '*', '?')
    }
}

fn glob_in<T: PartialEq + Copy>(p: &[T], t: &[T], any_run: T, any_one: T) -> bool {
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any_one || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == any_run {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == any_run)
}

/// A path parameter as API Gateway hands it over: percent-decoded (`+` stays a plus).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Query string → API Gateway's single-value (last wins) and multi-value maps.
fn query_maps(query: Option<&str>) -> (QueryMap, QueryMap) {
    let mut multi: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        multi.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    let single: HashMap<String, String> = multi
        .iter()
        .filter_map(|(k, v)| v.last().map(|last| (k.clone(), last.clone())))
        .collect();
    (QueryMap::from(single), QueryMap::from(multi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("arn:x/local/*", "arn:x/local/GET/users/me"));
        assert!(glob("*", "anything"));
        assert!(!glob("arn:x/prod/*", "arn:x/local/GET/users"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("arn:*/GET/*", "arn:x/local/GET/books/1"));
        // `?` is one character, not one byte.
        assert!(glob("/livres/?t?", "/livres/été"));
        assert!(!glob("/livres/?", "/livres/été"));
    }

    #[test]
    fn queries() {
        let (single, multi) = query_maps(Some("a=1&a=2&q=hello+world&e=%C3%A9&flag"));
        assert_eq!(single.first("a"), Some("2"));
        assert_eq!(multi.all("a"), Some(vec!["1", "2"]));
        assert_eq!(single.first("q"), Some("hello world"));
        assert_eq!(single.first("e"), Some("é"));
        assert_eq!(single.first("flag"), Some(""));
        assert_eq!(percent_decode("caf%C3%A9+cr%C3%A8me"), "café+crème");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
