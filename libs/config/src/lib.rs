//! Where configuration comes from. Deployed: environment variables set by `template.yaml`
//! and secrets from Secrets Manager. Locally: `DATABASE_URL` and a git-ignored key file.

pub mod env;
mod https;
pub mod metrics;
pub mod settings;

pub use settings::{settings, Settings};

use std::path::Path;
use std::str::FromStr;

use bookshelf_auth::{KeyError, PublicKeys, SigningKeys};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use env::Var;
use secrecy::ExposeSecret;

/// What could go wrong reading it, with the underlying error kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{var} is invalid")]
    Invalid {
        var: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reading secret {arn}")]
    Secret {
        arn: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("key material")]
    Keys(#[from] KeyError),
    #[error("key file {path}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The SDK configuration of a Lambda execution environment, from what Lambda sets in every
/// one: `AWS_REGION` and the function role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
/// and `AWS_SESSION_TOKEN` (valid for the environment's lifetime), plus `AWS_ENDPOINT_URL`
/// for an SQS-compatible server locally. aws-config's provider chain (profiles, SSO, STS,
/// instance metadata) finds nothing more there, and it links the STS client too (its size:
/// scripts/bench-notes.md, "Artifact size").
pub fn aws() -> &'static aws_types::SdkConfig {
    static SDK: std::sync::OnceLock<aws_types::SdkConfig> = std::sync::OnceLock::new();
    SDK.get_or_init(|| {
        let mut sdk = aws_types::SdkConfig::builder()
            .behavior_version(aws_smithy_runtime_api::client::behavior_version::BehaviorVersion::latest())
            .http_client(https_client());
        let settings = settings().ok();
        sdk.set_region(
            settings
                .and_then(|s| s.deployed.aws_region.clone())
                .map(aws_types::region::Region::new),
        );
        sdk.set_endpoint_url(settings.and_then(|s| s.local.aws_endpoint_url.clone()));
        sdk.set_credentials_provider(
            aws_credentials().map(aws_credential_types::provider::SharedCredentialsProvider::new),
        );
        sdk.build()
    })
}

/// The function role's credentials, `None` outside Lambda (a call then fails saying so).
pub fn aws_credentials() -> Option<aws_credential_types::Credentials> {
    let deployed = &settings().ok()?.deployed;
    Some(aws_credential_types::Credentials::new(
        deployed.aws_access_key_id.clone()?,
        deployed.aws_secret_access_key.as_ref()?.expose_secret(),
        deployed
            .aws_session_token
            .as_ref()
            .map(|t| t.expose_secret().to_string()),
        None,
        "lambda-environment",
    ))
}

/// The SDK clients' HTTP(S) client: see [`https`].
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    https::client()
}

async fn secret_string(arn: &str) -> Result<String, ConfigError> {
    let mut config = aws_sdk_secretsmanager::config::Builder::from(aws());
    if let Some(url) = &settings()?.local.aws_endpoint_url_secrets_manager {
        config.set_endpoint_url(Some(url.clone()));
    }
    let client = aws_sdk_secretsmanager::Client::from_conf(config.build());
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| ConfigError::Secret {
            arn: arn.into(),
            source: Box::new(e),
        })?;
    out.secret_string()
        .map(str::to_owned)
        .ok_or_else(|| ConfigError::Secret {
            arn: arn.into(),
            source: "the secret has no string value".into(),
        })
}

/// `DATABASE_URL`, parsed, when it is set: a local run or a test, for every connection.
fn database_url() -> Option<Result<PgConnectOptions, ConfigError>> {
    let settings = match settings() {
        Ok(s) => s,
        Err(e) => return Some(Err(e)),
    };
    let url = settings.local.database_url.as_ref()?;
    Some(
        PgConnectOptions::from_str(url.expose_secret()).map_err(|e| ConfigError::Invalid {
            var: Var::DatabaseUrl.name(),
            source: Box::new(e),
        }),
    )
}

/// How the server side of the functions' connections pools them (`DB_POOLING`): `true` for
/// a transaction-pooling proxy, `false` (the default) for a direct connection.
pub fn transaction_pooling() -> Result<bool, ConfigError> {
    Ok(settings()?.deployed.transaction_pooling)
}

/// How long opening a database connection may take (`DB_CONNECT_TIMEOUT_MS`, default 5 s):
/// deployed, below the function's timeout, so a proxy that cannot be reached answers 503.
pub fn db_connect_timeout() -> Result<std::time::Duration, ConfigError> {
    Ok(settings()?.deployed.db_connect_timeout)
}

/// A pooler the application role connects through locally (`BOOKSHELF_POOLER`, host:port).
pub fn local_pooler() -> Result<Option<(String, u16)>, ConfigError> {
    Ok(settings()?.local.pooler.clone())
}

/// Where the functions' database connections come from.
pub enum Database {
    /// `DATABASE_URL`: a local run, or a test.
    Url(PgConnectOptions),
    /// Deployed: the RDS Proxy, signed in to with the function role's IAM identity.
    Iam(IamAuth),
}

/// Connection options: `DATABASE_URL`, or deployed the RDS Proxy at `DB_HOST` as `DB_USER`
/// with an IAM authentication token for a password (the proxy's `IAMAuth: REQUIRED`). No
/// function but db-migrate reads a database password, and none links a Secrets Manager
/// client for it.
pub fn database() -> Result<Database, ConfigError> {
    if let Some(options) = database_url() {
        return options.map(Database::Url);
    }
    let deployed = &settings()?.deployed;
    let required = |v: &Option<String>, var: Var| v.clone().ok_or(ConfigError::Missing(var.name()));
    let user = deployed
        .db_user
        .clone()
        .ok_or(ConfigError::Missing("DATABASE_URL or DB_USER"))?;
    Ok(Database::Iam(IamAuth {
        host: required(&deployed.db_host, Var::DbHost)?,
        port: 5432,
        user,
        database: deployed.db_name.clone().unwrap_or_else(|| "bookshelf".into()),
        region: required(&deployed.aws_region, Var::AwsRegion)?,
        credentials: aws_credentials().ok_or(ConfigError::Missing("AWS_ACCESS_KEY_ID"))?,
    }))
}

/// Signing in to RDS Proxy with IAM: the password is a SigV4-presigned `connect` request,
/// made here without a network call, and good for `IamAuth::TOKEN_LIFETIME` (only for
/// opening a connection: one already open stays open).
pub struct IamAuth {
    host: String,
    port: u16,
    user: String,
    database: String,
    region: String,
    credentials: aws_credential_types::Credentials,
}

impl IamAuth {
    /// RDS accepts a token for 15 minutes.
    pub const TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(900);

    /// Options for new connections made until `now + TOKEN_LIFETIME`.
    pub fn options(&self, now: std::time::SystemTime) -> Result<PgConnectOptions, ConfigError> {
        Ok(PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(&self.token(now)?)
            .database(&self.database)
            .ssl_mode(PgSslMode::VerifyFull))
    }

    /// The token: `host:port/?Action=connect&DBUser=…&X-Amz-…`, as the AWS SDKs'
    /// `generate_db_auth_token` makes it.
    pub fn token(&self, now: std::time::SystemTime) -> Result<String, ConfigError> {
        use aws_sigv4::http_request::{
            sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        };
        let invalid = |e: Box<dyn std::error::Error + Send + Sync>| ConfigError::Invalid {
            var: "the IAM database token",
            source: e,
        };
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Self::TOKEN_LIFETIME);
        let identity = self.credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("rds-db")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| invalid(e.into()))?
            .into();
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "connect")
            .append_pair("DBUser", &self.user)
            .finish();
        let url = format!("https://{}:{}/?{query}", self.host, self.port);
        let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
            .map_err(|e| invalid(e.into()))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| invalid(e.into()))?
            .into_parts();
        let mut token = url.trim_start_matches("https://").to_owned();
        let mut signed = form_urlencoded::Serializer::new(String::new());
        for (name, value) in instructions.params() {
            signed.append_pair(name, value);
        }
        token.push('&');
        token.push_str(&signed.finish());
        Ok(token)
    }
}

/// db-migrate's connection: `DATABASE_URL`, or the owner's credentials secret named by
/// `DB_SECRET_ARN` (the standard `{username, password, host, port, dbname}` JSON) with
/// `DB_HOST` pointing at the RDS Proxy endpoint.
pub async fn database_owner() -> Result<PgConnectOptions, ConfigError> {
    if let Some(options) = database_url() {
        return options;
    }
    let deployed = &settings()?.deployed;
    let arn = deployed
        .db_secret_arn
        .clone()
        .ok_or(ConfigError::Missing("DATABASE_URL or DB_SECRET_ARN"))?;
    let secret: DbSecret =
        serde_json::from_str(&secret_string(&arn).await?).map_err(|e| ConfigError::Secret {
            arn: arn.clone(),
            source: Box::new(e),
        })?;
    proxy_options(secret, deployed.db_host.clone(), deployed.db_name.clone())
}

/// The application role's credentials (db-migrate creates the role): the secret named by
/// `APP_DB_SECRET_ARN`. `None` when unset, which only a local run may be (`DATABASE_URL`).
pub async fn app_role() -> Result<Option<DbSecret>, ConfigError> {
    let settings = settings()?;
    let Some(arn) = settings.deployed.app_db_secret_arn.clone() else {
        return match settings.local.database_url {
            Some(_) => Ok(None),
            None => Err(ConfigError::Missing("APP_DB_SECRET_ARN")),
        };
    };
    serde_json::from_str(&secret_string(&arn).await?)
        .map(Some)
        .map_err(|e| ConfigError::Secret {
            arn,
            source: Box::new(e),
        })
}

/// An RDS credentials secret. `host` is absent from secrets no RDS attachment fills in
/// (the application role's); `DB_HOST` names the proxy then.
#[derive(serde::Deserialize)]
pub struct DbSecret {
    pub username: String,
    pub password: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
}

/// Deployed connections verify the proxy's certificate and host name (`verify-full`):
/// RDS Proxy presents an ACM certificate that chains to Amazon's roots, which rustls
/// trusts through webpki-roots. `require` would accept any certificate.
pub fn proxy_options(
    secret: DbSecret,
    host: Option<String>,
    dbname: Option<String>,
) -> Result<PgConnectOptions, ConfigError> {
    let host = host.or(secret.host).ok_or(ConfigError::Missing("DB_HOST"))?;
    Ok(PgConnectOptions::new()
        .host(&host)
        .port(secret.port.unwrap_or(5432))
        .username(&secret.username)
        .password(&secret.password)
        .database(&dbname.or(secret.dbname).unwrap_or_else(|| "bookshelf".into()))
        .ssl_mode(PgSslMode::VerifyFull))
}

/// The private signing keys: `BOOKSHELF_SIGNING_KEYS` (JSON), the secret named by
/// `SIGNING_KEYS_SECRET_ARN`, or locally the file `BOOKSHELF_KEYS_FILE`
/// (default `.dev/keys/signing.json`), generated on first use.
pub async fn signing_keys() -> Result<SigningKeys, ConfigError> {
    let settings = settings()?;
    if let Some(json) = &settings.local.signing_keys {
        return Ok(SigningKeys::from_json(json.expose_secret())?);
    }
    if let Some(arn) = &settings.deployed.signing_keys_secret_arn {
        return Ok(SigningKeys::from_json(&secret_string(arn).await?)?);
    }
    signing_keys_from_file(&settings.local.keys_file)
}

/// The public keys that verify access tokens: `BOOKSHELF_PUBLIC_KEYS` (a JWK Set), the
/// secret named by `PUBLIC_KEYS_SECRET_ARN`, or else those of `signing_keys()`.
pub async fn public_keys() -> Result<PublicKeys, ConfigError> {
    let settings = settings()?;
    if let Some(json) = &settings.local.public_keys {
        return Ok(PublicKeys::from_jwks_json(json)?);
    }
    if let Some(arn) = &settings.deployed.public_keys_secret_arn {
        return Ok(PublicKeys::from_jwks_json(&secret_string(arn).await?)?);
    }
    Ok(signing_keys().await?.public_keys().clone())
}

/// The signing keys of a local key file, created with one new key if there is none.
pub fn signing_keys_from_file(path: &Path) -> Result<SigningKeys, ConfigError> {
    let err = |source: std::io::Error| ConfigError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(json) => Ok(SigningKeys::from_json(&json)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = SigningKeys::generate();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            write_private(path, &keys.to_json()).map_err(err)?;
            tracing::info!(path = %path.display(), kid = keys.active_kid(), "generated a new signing key");
            Ok(keys)
        }
        Err(e) => Err(err(e)),
    }
}

/// Replaces a key file whole (a new file renamed over it): a reader sees the old set or
/// the new one, never half of either.
pub fn replace_signing_keys_file(path: &Path, keys: &SigningKeys) -> Result<(), ConfigError> {
    let err = |source: std::io::Error| ConfigError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    let next = path.with_extension("json.next");
    match std::fs::remove_file(&next) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    write_private(&next, &keys.to_json()).map_err(err)?;
    std::fs::rename(&next, path).map_err(err)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Logs: JSON lines (for CloudWatch Logs Insights) inside Lambda, readable text locally.
/// `RUST_LOG` sets the filter; `info` by default.
pub fn init_tracing() {
    use tracing_subscriber::{filter::Targets, fmt, prelude::*};
    const DEFAULT: &str = "info,sqlx=warn";
    let default = || DEFAULT.parse::<Targets>().unwrap_or_default();
    // `target=level` directives (`Targets`): env-filter's span and field matching would link
    // a regex engine into every binary for filters no one sets (scripts/bench-notes.md).
    // A filter that does not parse is said once, not silently replaced.
    let deployed = settings().ok().map(|s| &s.deployed);
    let filter = match deployed.and_then(|d| d.rust_log.clone()) {
        None => default(),
        Some(spec) => spec.parse::<Targets>().unwrap_or_else(|e| {
            eprintln!("RUST_LOG={spec:?} is not a valid filter ({e}); using {DEFAULT:?}");
            default()
        }),
    };
    let result = if deployed.is_some_and(|d| d.lambda_function_name.is_some()) {
        let json = fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .with_ansi(false);
        tracing_subscriber::registry()
            .with(json.with_filter(filter))
            .try_init()
    } else {
        // Colour only for a terminal: a log file or CI output gets no escape codes.
        use std::io::IsTerminal;
        let text = fmt::layer()
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal());
        tracing_subscriber::registry()
            .with(text.with_filter(filter))
            .try_init()
    };
    // A second init (tests, the dev server) keeps the first subscriber; that is fine.
    let _ = result;
}

/// The text that keys the sealing of webhook secrets: `BOOKSHELF_WEBHOOK_KEY`, the secret named by
/// `WEBHOOK_KEY_SECRET_ARN`, or locally the file `BOOKSHELF_WEBHOOK_KEY_FILE` (default
/// `.dev/keys/webhook.key`), made with 32 random bytes on first use.
pub async fn webhook_key(random: impl FnOnce() -> String) -> Result<String, ConfigError> {
    let settings = settings()?;
    if let Some(text) = &settings.local.webhook_key {
        return Ok(text.expose_secret().to_string());
    }
    if let Some(arn) = &settings.deployed.webhook_key_secret_arn {
        return secret_string(arn).await;
    }
    local_webhook_key(random)
}

/// The dev server's webhook key: the file `BOOKSHELF_WEBHOOK_KEY_FILE`, made on first use
/// (so secrets sealed by one run open in the next).
pub fn local_webhook_key(random: impl FnOnce() -> String) -> Result<String, ConfigError> {
    let settings = settings()?;
    let path = &settings.local.webhook_key_file;
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(text.trim().to_string());
    }
    let text = random();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(path, &text).map_err(|e| ConfigError::Secret {
        arn: path.display().to_string(),
        source: Box::new(e),
    })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployed_connections_verify_the_proxy_certificate_and_host() {
        let secret = DbSecret {
            username: "bookshelf_app".into(),
            password: "pw".into(),
            host: None,
            port: None,
            dbname: None,
        };
        let options = proxy_options(secret, Some("proxy.example".into()), Some("shelf".into())).unwrap();
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        assert_eq!(options.get_host(), "proxy.example");
        assert_eq!(options.get_username(), "bookshelf_app");
        assert_eq!(options.get_database(), Some("shelf"));
        assert_eq!(options.get_port(), 5432);
    }

    #[test]
    fn a_secret_without_a_host_needs_db_host() {
        let secret = DbSecret {
            username: "u".into(),
            password: "p".into(),
            host: None,
            port: None,
            dbname: None,
        };
        assert!(matches!(
            proxy_options(secret, None, None),
            Err(ConfigError::Missing("DB_HOST"))
        ));
    }

    #[test]
    fn the_iam_token_is_the_one_the_aws_sdks_make() {
        // Reference: botocore's `generate_db_auth_token` with these inputs at this second.
        const BOTOCORE: &str = "bookshelf-proxy.proxy-abc.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=bookshelf_app&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261203%2Feu-west-1%2Frds-db%2Faws4_request&X-Amz-Date=20261203T110525Z&X-Amz-SignedHeaders=host&X-Amz-Expires=900&X-Amz-Security-Token=session-token%2Fwith%2Bodd%3Dchars&X-Amz-Signature=a5eb276fcdce828d4dab056d8cced1925a5f1e0c9699cf235b99bd07634b5f8d";
        let auth = IamAuth {
            host: "bookshelf-proxy.proxy-abc.eu-west-1.rds.amazonaws.com".into(),
            port: 5432,
            user: "bookshelf_app".into(),
            database: "bookshelf".into(),
            region: "eu-west-1".into(),
            credentials: aws_credential_types::Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                Some("session-token/with+odd=chars".into()),
                None,
                "test",
            ),
        };
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_295_925);
        let token = auth.token(at).unwrap();
        let pairs = |t: &str| {
            let (head, query) = t.split_once('?').unwrap();
            let mut q: Vec<(String, String)> =
                form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            q.sort();
            (head.to_owned(), q)
        };
        // The same request and signature; the order of the query's pairs is free.
        assert_eq!(pairs(&token), pairs(BOTOCORE));
        let options = auth.options(at).unwrap();
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        assert_eq!(options.get_username(), "bookshelf_app");
        // A second later is another token: each new connection signs afresh.
        assert_ne!(auth.token(at + std::time::Duration::from_secs(1)).unwrap(), token);
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("bookshelf-keys-{}", std::process::id()));
        let path = dir.join("signing.json");
        let first = signing_keys_from_file(&path).unwrap();
        let second = signing_keys_from_file(&path).unwrap();
        assert_eq!(first.active_kid(), second.active_kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
