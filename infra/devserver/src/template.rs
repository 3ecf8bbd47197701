//! Reads what the local gateway needs from `template.yaml`: the routes with the function
//! behind each, the authorizer, and the gateway responses.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_norway::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: http::Method,
    /// API Gateway path syntax, e.g. `/users/{id}`.
    pub path: String,
    /// The function's `Binary` build property, which is also its crate's name.
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

/// CloudFormation tags (`!Ref`, `!GetAtt`) arrive as tagged values; look through them.
fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => &t.value,
        other => other,
    }
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    untag(v).get(key)
}

fn text(v: &Value) -> Option<String> {
    match untag(v) {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `Fn::GetAtt` in either form: `!GetAtt X.Arn` or `{"Fn::GetAtt": [X, Arn]}`.
fn get_att_resource(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) => match &t.value {
            Value::String(s) => s.split('.').next().map(str::to_owned),
            Value::Sequence(seq) => seq.first().and_then(text),
            _ => None,
        },
        Value::Mapping(_) => get(v, "Fn::GetAtt")
            .and_then(|a| a.as_sequence())
            .and_then(|s| s.first())
            .and_then(text),
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

impl Template {
    pub fn load(path: &Path) -> Result<Template> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Template::parse(&text)
    }

    pub fn parse(yaml: &str) -> Result<Template> {
        let doc: Value = serde_norway::from_str(yaml).context("template.yaml is not valid YAML")?;
        let resources = get(&doc, "Resources")
            .and_then(|r| r.as_mapping())
            .ok_or_else(|| anyhow!("template has no Resources"))?;
        let kind = |r: &Value| get(r, "Type").and_then(text).unwrap_or_default();
        let binary_of = |r: &Value| {
            get(r, "Metadata")
                .and_then(|m| get(m, "BuildProperties"))
                .and_then(|b| get(b, "Binary"))
                .and_then(text)
        };

        // The one REST API and its authorizer.
        let mut authorizer = None;
        // Every authorizer's result cache TTL, by name.
        let mut ttls: HashMap<String, u64> = HashMap::new();
        let mut gateway_responses = HashMap::new();
        let apis: Vec<_> = resources
            .iter()
            .filter(|(_, r)| kind(r) == "AWS::Serverless::Api")
            .collect();
        if apis.len() != 1 {
            bail!("expected exactly one AWS::Serverless::Api, found {}", apis.len());
        }
        let api = apis[0].1;
        let props = get(api, "Properties").ok_or_else(|| anyhow!("the API has no Properties"))?;
        if let Some(auth) = get(props, "Auth") {
            for (name, def) in get(auth, "Authorizers")
                .and_then(|a| a.as_mapping())
                .into_iter()
                .flatten()
            {
                let ttl = get(def, "Identity")
                    .and_then(|i| get(i, "ReauthorizeEvery"))
                    .and_then(text)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(300);
                if let Some(name) = text(name) {
                    ttls.insert(name, ttl);
                }
            }
            let default = get(auth, "DefaultAuthorizer").and_then(text);
            if let Some(name) = default {
                let def = get(auth, "Authorizers")
                    .and_then(|a| get(a, &name))
                    .ok_or_else(|| anyhow!("DefaultAuthorizer {name} is not defined"))?;
                let logical = get(def, "FunctionArn")
                    .and_then(get_att_resource)
                    .ok_or_else(|| anyhow!("authorizer {name} has no FunctionArn !GetAtt"))?;
                let function_resource = resources
                    .get(Value::String(logical.clone()))
                    .ok_or_else(|| anyhow!("authorizer function {logical} is not defined"))?;
                let function = binary_of(function_resource)
                    .ok_or_else(|| anyhow!("authorizer function {logical} has no Binary build property"))?;
                let identity = get(def, "Identity");
                let identity_headers = identity
                    .and_then(|i| get(i, "Headers"))
                    .and_then(|h| h.as_sequence())
                    .map(|s| s.iter().filter_map(text).collect())
                    .unwrap_or_else(|| vec!["Authorization".to_string()]);
                let ttl_secs = identity
                    .and_then(|i| get(i, "ReauthorizeEvery"))
                    .and_then(text)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(300);
                authorizer = Some(Authorizer {
                    function,
                    identity_headers,
                    ttl_secs,
                });
            }
        }
        if let Some(responses) = get(props, "GatewayResponses").and_then(|g| g.as_mapping()) {
            for (name, r) in responses {
                let Some(name) = text(name) else { continue };
                let status = get(r, "StatusCode").and_then(text).and_then(|s| s.parse().ok());
                let headers = get(r, "ResponseParameters")
                    .and_then(|p| get(p, "Headers"))
                    .and_then(|h| h.as_mapping())
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((text(k)?, static_header_value(&text(v)?))))
                            .collect()
                    })
                    .unwrap_or_default();
                let template = get(r, "ResponseTemplates")
                    .and_then(|t| get(t, "application/json"))
                    .and_then(text);
                gateway_responses.insert(
                    name,
                    GatewayResponse {
                        status,
                        headers,
                        template,
                    },
                );
            }
        }

        // A `!Ref` to a template parameter, as the parameter's default.
        let parameter_default = |v: &Value| -> Option<String> {
            match v {
                Value::Tagged(t) if t.tag == "!Ref" => {
                    let name = text(&t.value)?;
                    get(&doc, "Parameters")
                        .and_then(|p| get(p, &name))
                        .and_then(|p| get(p, "Default"))
                        .and_then(text)
                }
                other => text(other),
            }
        };

        // Every function's Api events are the routes.
        let mut routes = Vec::new();
        let mut queue_concurrency = HashMap::new();
        let mut functions = Vec::new();
        for (logical, r) in resources {
            if kind(r) != "AWS::Serverless::Function" {
                continue;
            }
            let logical = text(logical).unwrap_or_default();
            functions.push(binary_of(r).ok_or_else(|| anyhow!("{logical}: no Binary build property"))?);
            let events = get(r, "Properties")
                .and_then(|p| get(p, "Events"))
                .and_then(|e| e.as_mapping());
            for (_, event) in events.into_iter().flatten() {
                if get(event, "Type").and_then(text).as_deref() == Some("SQS") {
                    let concurrency = get(event, "Properties")
                        .and_then(|p| get(p, "ScalingConfig"))
                        .and_then(|c| untag(c).get("MaximumConcurrency"))
                        .and_then(parameter_default)
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| anyhow!("{logical}: SQS event without a MaximumConcurrency"))?;
                    let function =
                        binary_of(r).ok_or_else(|| anyhow!("{logical}: no Binary build property"))?;
                    queue_concurrency.insert(function, concurrency);
                    continue;
                }
                if get(event, "Type").and_then(text).as_deref() != Some("Api") {
                    continue;
                }
                let p = get(event, "Properties")
                    .ok_or_else(|| anyhow!("{logical}: Api event without Properties"))?;
                let path = get(p, "Path")
                    .and_then(text)
                    .ok_or_else(|| anyhow!("{logical}: Api event without Path"))?;
                let method = get(p, "Method")
                    .and_then(text)
                    .ok_or_else(|| anyhow!("{logical}: Api event without Method"))?
                    .to_ascii_uppercase();
                let method = http::Method::from_bytes(method.as_bytes())
                    .with_context(|| format!("{logical}: bad method {method}"))?;
                let function = binary_of(r).ok_or_else(|| anyhow!("{logical}: no Binary build property"))?;
                let named = get(p, "Auth").and_then(|a| get(a, "Authorizer")).and_then(text);
                let no_auth = named.as_deref() == Some("NONE");
                let ttl = match &named {
                    Some(name) => ttls.get(name).copied().unwrap_or(0),
                    None => authorizer.as_ref().map_or(0, |a: &Authorizer| a.ttl_secs),
                };
                routes.push(Route {
                    method,
                    path,
                    function,
                    authorized: authorizer.is_some() && !no_auth,
                    cached: ttl > 0,
                });
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
