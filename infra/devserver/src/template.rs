//! Reads what the local gateway needs from `template.yaml`, through typed structs of the
//! subset it reads: the routes with the function behind each, the authorizer, and the
//! gateway responses.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_norway::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: http::Method,
    /// API Gateway path syntax, e.g. `/users/{id}`.
    pub path: String,
    /// The function's `Binary` build property, which is also its binary's name.
    pub function: String,
    /// Whether the API's default authorizer runs first (`Auth.Authorizer: NONE` → false).
    pub authorized: bool,
    /// Whether API Gateway may answer from the authorizer's result cache: not on routes
    /// whose named authorizer has `ReauthorizeEvery: 0` (the admin routes).
    pub cached: bool,
}

#[derive(Debug, Clone)]
pub struct Authorizer {
    pub function: String,
    /// The identity source headers; a request missing any of them is refused with 401
    /// before the authorizer runs, as API Gateway does.
    pub identity_headers: Vec<String>,
    pub ttl_secs: u64,
}

#[derive(Debug, Clone)]
pub struct GatewayResponse {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub template: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub routes: Vec<Route>,
    /// Every function's binary, whatever triggers it.
    pub functions: Vec<String>,
    pub authorizer: Option<Authorizer>,
    pub gateway_responses: HashMap<String, GatewayResponse>,
    /// Function binary → how many batches its SQS event source may have in flight at once
    /// (`ScalingConfig.MaximumConcurrency`, a `!Ref` resolved to the parameter's default).
    pub queue_concurrency: HashMap<String, usize>,
}

// The subset of template.yaml the gateway reads, typed. CloudFormation's intrinsic
// functions (`!Ref`, `!GetAtt`) arrive as YAML tags, which no plain string accepts: the
// fields that may hold one stay `Value`s, resolved below.

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Document {
    #[serde(default)]
    parameters: HashMap<String, Parameter>,
    /// In file order (routes are listed as the template lists them).
    resources: serde_norway::Mapping,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Parameter {
    default: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Resource {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    properties: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    build_properties: Option<BuildProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BuildProperties {
    binary: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct FunctionProperties {
    #[serde(default)]
    events: serde_norway::Mapping,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Event {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    properties: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiEvent {
    path: String,
    method: String,
    auth: Option<RouteAuth>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RouteAuth {
    authorizer: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SqsEvent {
    scaling_config: Option<ScalingConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScalingConfig {
    maximum_concurrency: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ApiProperties {
    auth: Option<ApiAuth>,
    #[serde(default)]
    gateway_responses: HashMap<String, ResponseDef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiAuth {
    default_authorizer: Option<String>,
    #[serde(default)]
    authorizers: HashMap<String, AuthorizerDef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuthorizerDef {
    function_arn: Option<Value>,
    identity: Option<IdentitySource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdentitySource {
    headers: Option<Vec<String>>,
    reauthorize_every: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResponseDef {
    status_code: Option<String>,
    response_parameters: Option<ResponseParameters>,
    #[serde(default)]
    response_templates: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResponseParameters {
    /// In file order; a value may be an intrinsic (`!If`), which the gateway skips.
    #[serde(default)]
    headers: serde_norway::Mapping,
}

/// API Gateway's default result TTL when `ReauthorizeEvery` is not given.
const DEFAULT_TTL_SECS: u64 = 300;

/// `value` as `T`, or an error naming `what`.
fn typed<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    serde_norway::from_value(value).with_context(|| format!("{what} does not have the expected shape"))
}

/// The logical id `!GetAtt X.Arn` (or `{"Fn::GetAtt": [X, Arn]}`) names.
fn get_att_resource(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "!GetAtt" => match &t.value {
            Value::String(s) => s.split('.').next().map(str::to_owned),
            Value::Sequence(seq) => seq.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        },
        Value::Mapping(m) => m
            .get("Fn::GetAtt")
            .and_then(Value::as_sequence)
            .and_then(|s| s.first())
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// A single-quoted header value as CloudFormation writes static values: `'Bearer'`.
fn static_header_value(raw: &str) -> String {
    raw.trim()
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or(raw)
        .to_string()
}

/// A scalar as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Template {
    pub fn load(path: &Path) -> Result<Template> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Template::parse(&text)
    }

    pub fn parse(yaml: &str) -> Result<Template> {
        let doc: Document =
            serde_norway::from_str(yaml).context("template.yaml is not valid YAML of a template")?;
        let mut resources: Vec<(String, Resource)> = Vec::new();
        for (name, r) in doc.resources {
            let name = scalar(&name).ok_or_else(|| anyhow!("a resource name is not a string"))?;
            let resource: Resource = typed(r, &name)?;
            resources.push((name, resource));
        }
        let binary_of = |r: &Resource| {
            r.metadata
                .as_ref()
                .and_then(|m| m.build_properties.as_ref())
                .and_then(|b| b.binary.clone())
        };
        // A `!Ref` to a template parameter, as the parameter's default.
        let parameter_default = |v: &Value| -> Option<String> {
            match v {
                Value::Tagged(t) if t.tag == "!Ref" => {
                    let name = t.value.as_str()?;
                    doc.parameters.get(name)?.default.as_ref().and_then(scalar)
                }
                other => scalar(other),
            }
        };

        // The one REST API and its authorizer.
        let apis: Vec<&(String, Resource)> = resources
            .iter()
            .filter(|(_, r)| r.kind == "AWS::Serverless::Api")
            .collect();
        let [(api_name, api)] = apis.as_slice() else {
            bail!("expected exactly one AWS::Serverless::Api, found {}", apis.len());
        };
        let props: ApiProperties = match &api.properties {
            Some(p) => typed(p.clone(), api_name)?,
            None => bail!("the API has no Properties"),
        };
        // Every authorizer's result cache TTL, by name.
        let mut ttls: HashMap<String, u64> = HashMap::new();
        let mut authorizer = None;
        if let Some(auth) = &props.auth {
            for (name, def) in &auth.authorizers {
                let ttl = def.identity.as_ref().and_then(|i| i.reauthorize_every);
                ttls.insert(name.clone(), ttl.unwrap_or(DEFAULT_TTL_SECS));
            }
            if let Some(name) = &auth.default_authorizer {
                let def = auth
                    .authorizers
                    .get(name)
                    .ok_or_else(|| anyhow!("DefaultAuthorizer {name} is not defined"))?;
                let logical = def
                    .function_arn
                    .as_ref()
                    .and_then(get_att_resource)
                    .ok_or_else(|| anyhow!("authorizer {name} has no FunctionArn !GetAtt"))?;
                let (_, function_resource) = resources
                    .iter()
                    .find(|(n, _)| *n == logical)
                    .ok_or_else(|| anyhow!("authorizer function {logical} is not defined"))?;
                let function = binary_of(function_resource)
                    .ok_or_else(|| anyhow!("authorizer function {logical} has no Binary build property"))?;
                let identity = def.identity.as_ref();
                authorizer = Some(Authorizer {
                    function,
                    identity_headers: identity
                        .and_then(|i| i.headers.clone())
                        .unwrap_or_else(|| vec!["Authorization".to_string()]),
                    ttl_secs: identity
                        .and_then(|i| i.reauthorize_every)
                        .unwrap_or(DEFAULT_TTL_SECS),
                });
            }
        }
        let gateway_responses = props
            .gateway_responses
            .into_iter()
            .map(|(name, r)| {
                let headers = r
                    .response_parameters
                    .map(|p| {
                        p.headers
                            .iter()
                            .filter_map(|(k, v)| Some((scalar(k)?, static_header_value(v.as_str()?))))
                            .collect()
                    })
                    .unwrap_or_default();
                let response = GatewayResponse {
                    status: r.status_code.and_then(|s| s.parse().ok()),
                    headers,
                    template: r.response_templates.get("application/json").cloned(),
                };
                (name, response)
            })
            .collect();

        // Every function's Api events are the routes.
        let mut routes = Vec::new();
        let mut queue_concurrency = HashMap::new();
        let mut functions = Vec::new();
        for (logical, r) in &resources {
            if r.kind != "AWS::Serverless::Function" {
                continue;
            }
            let function = binary_of(r).ok_or_else(|| anyhow!("{logical}: no Binary build property"))?;
            functions.push(function.clone());
            let props: FunctionProperties = match &r.properties {
                Some(p) => typed(p.clone(), logical)?,
                None => FunctionProperties::default(),
            };
            for (_, event) in props.events {
                let event: Event = typed(event, logical)?;
                let Some(p) = event.properties else { continue };
                match event.kind.as_str() {
                    "SQS" => {
                        let sqs: SqsEvent = typed(p, logical)?;
                        let concurrency = sqs
                            .scaling_config
                            .and_then(|c| c.maximum_concurrency)
                            .as_ref()
                            .and_then(parameter_default)
                            .and_then(|n| n.parse().ok())
                            .ok_or_else(|| anyhow!("{logical}: SQS event without a MaximumConcurrency"))?;
                        queue_concurrency.insert(function.clone(), concurrency);
                    }
                    "Api" => {
                        let api: ApiEvent = typed(p, logical)?;
                        let method = api.method.to_ascii_uppercase();
                        let method = http::Method::from_bytes(method.as_bytes())
                            .with_context(|| format!("{logical}: bad method {method}"))?;
                        let named = api.auth.and_then(|a| a.authorizer);
                        let no_auth = named.as_deref() == Some("NONE");
                        let ttl = match &named {
                            Some(name) => ttls.get(name).copied().unwrap_or(0),
                            None => authorizer.as_ref().map_or(0, |a: &Authorizer| a.ttl_secs),
                        };
                        routes.push(Route {
                            method,
                            path: api.path,
                            function: function.clone(),
                            authorized: authorizer.is_some() && !no_auth,
                            cached: ttl > 0,
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(Template {
            routes,
            functions,
            authorizer,
            gateway_responses,
            queue_concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_projects_template() {
        let t = Template::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../template.yaml"
        )))
        .unwrap();
        let auth = t.authorizer.as_ref().unwrap();
        assert_eq!(auth.function, "authorizer");
        assert_eq!(auth.identity_headers, ["Authorization"]);
        assert!(auth.ttl_secs <= 60);
        let login = t.routes.iter().find(|r| r.path == "/auth/login").unwrap();
        assert_eq!(
            (login.method.as_str(), login.function.as_str(), login.authorized),
            ("POST", "auth-login", false)
        );
        let me = t
            .routes
            .iter()
            .find(|r| r.path == "/users/me" && r.method == "GET")
            .unwrap();
        assert!(me.authorized);
        // The parameters' defaults (5 each): the local workers run as many pollers.
        assert_eq!(t.queue_concurrency["order-processor"], 5);
        assert_eq!(t.queue_concurrency["feed-fanout"], 5);
        let unauthorized = &t.gateway_responses["UNAUTHORIZED"];
        assert_eq!(unauthorized.status, Some(401));
        assert!(unauthorized
            .headers
            .contains(&("WWW-Authenticate".into(), "Bearer".into())));
    }
}
