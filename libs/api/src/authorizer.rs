//! The REST API's REQUEST authorizer: verifies the bearer token and its session, and
//! answers an Allow policy for the whole API with the caller's identity as context.

use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use bookshelf_config::metrics;
use bookshelf_storage::SessionStatus;

use crate::AppState;

#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// API Gateway turns exactly this message into its UNAUTHORIZED (401) response.
    #[error("Unauthorized")]
    Unauthorized,
    /// An outage (database unreachable): never an Allow. API Gateway answers a failed Lambda
    /// authorizer with its AUTHORIZER_CONFIGURATION_ERROR response (503 in template.yaml).
    #[error("authorizer failure")]
    Failure(#[source] bookshelf_http::Cause),
}

/// Why a token was refused (the `Reason` of the refusals metric; never told to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoToken,
    BadToken,
    InactiveSession,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoToken => metrics::REFUSAL_REASONS[0],
            Refusal::BadToken => metrics::REFUSAL_REASONS[1],
            Refusal::InactiveSession => metrics::REFUSAL_REASONS[2],
        }
    }
}

/// How `decide` says no: refused (with its reason, which only the metric hears) or unable
/// to decide.
enum Denied {
    Refused(Refusal),
    Failed(bookshelf_http::Cause),
}

impl From<AuthorizerError> for lambda_runtime::Diagnostic {
    fn from(e: AuthorizerError) -> Self {
        let error_type = match e {
            AuthorizerError::Unauthorized => "Unauthorized",
            AuthorizerError::Failure(_) => "AuthorizerFailure",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: bookshelf_http::error_chain(&e),
        }
    }
}

/// The policy covers every method and path of the stage: API Gateway caches it per token
/// for the TTL and reuses it on other routes, so a route-scoped policy would deny them.
fn api_wide_resource(method_arn: &str) -> String {
    // arn:aws:execute-api:region:account:api-id/stage/METHOD/path...
    let mut parts = method_arn.splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(api), Some(stage)) => format!("{api}/{stage}/*"),
        _ => method_arn.to_string(),
    }
}

fn bearer(event: &ApiGatewayCustomAuthorizerRequestTypeRequest) -> Option<&str> {
    let value = event
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Decides one request. A refusal is `Unauthorized`; a failure to decide is counted in
/// the `AuthorizerFailures` metric (the alarm's, since Lambda counts refusals as errors too).
pub async fn authorize(
    state: Arc<AppState>,
    event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
    match decide(&state, event).await {
        Ok(allow) => Ok(allow),
        Err(Denied::Refused(why)) => {
            state
                .metrics
                .count_by(metrics::AUTHORIZER_REFUSALS, (metrics::REASON, why.as_str()), 1);
            Err(AuthorizerError::Unauthorized)
        }
        Err(Denied::Failed(cause)) => {
            let failure = AuthorizerError::Failure(cause);
            let reason = bookshelf_http::error_chain(&failure);
            tracing::error!(%reason, "authorizer failed");
            state.metrics.count(metrics::AUTHORIZER_FAILURES, 1);
            Err(failure)
        }
    }
}

async fn decide(
    state: &AppState,
    event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Result<ApiGatewayCustomAuthorizerResponse, Denied> {
    let keys = state.keys().map_err(|e| Denied::Failed(e.into()))?;
    let Some(token) = bearer(event) else {
        tracing::info!("no bearer token");
        return Err(Denied::Refused(Refusal::NoToken));
    };
    // The signature check is cached per exact token; the session check below never is.
    let claims = keys.verify(token).await.map_err(|e| {
        tracing::info!(reason = %e, "token refused");
        Denied::Refused(Refusal::BadToken)
    })?;
    let db = state.db().map_err(|e| Denied::Failed(e.into()))?;
    let role = match bookshelf_storage::sessions::status(db, claims.sid, claims.sub).await {
        Ok(SessionStatus::Active(role)) => role,
        Ok(SessionStatus::Inactive) => {
            tracing::info!(user_id = %claims.sub, session_id = %claims.sid, "session is not active");
            return Err(Denied::Refused(Refusal::InactiveSession));
        }
        Err(e) => return Err(Denied::Failed(e.into())),
    };

    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = IamPolicyEffect::Allow;
    statement.resource = vec![api_wide_resource(event.method_arn.as_deref().unwrap_or("*"))];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement];

    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(claims.sub.to_string());
    response.policy_document = policy;
    // The role comes from the database, not the token: a demotion applies at once.
    response.context = serde_json::json!({
        "userId": claims.sub.to_string(),
        "role": role.as_str(),
        "sessionId": claims.sid.to_string(),
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_covers_the_whole_stage() {
        assert_eq!(
            api_wide_resource("arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/users/me"),
            "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*"
        );
    }
}
