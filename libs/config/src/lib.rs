//! Where configuration comes from. Deployed: environment variables set by `template.yaml`
//! and secrets from Secrets Manager. Locally: `DATABASE_URL` and a git-ignored key file.

pub mod env;
pub mod metrics;

use std::path::Path;
use std::str::FromStr;

use bookshelf_auth::{KeyError, PublicKeys, SigningKeys};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::sync::OnceCell;

use env::Var;

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

fn var(v: Var) -> Option<String> {
    env::get(v)
}

/// One shared AWS SDK configuration per execution environment, built on first use.
pub async fn aws() -> &'static aws_config::SdkConfig {
    static SDK: OnceCell<aws_config::SdkConfig> = OnceCell::const_new();
    SDK.get_or_init(|| {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(https_client())
            .load()
    })
    .await
}

/// The SDK clients' HTTP(S) client: rustls with ring, the TLS stack sqlx already links.
pub fn https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

async fn secret_string(arn: &str) -> Result<String, ConfigError> {
    let client = aws_sdk_secretsmanager::Client::new(aws().await);
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

/// Connection options: `DATABASE_URL`, or the credentials secret named by `DB_SECRET_ARN`
/// (the standard `{username, password, host, port, dbname}` JSON) with `DB_HOST` pointing
/// at the RDS Proxy endpoint.
pub async fn database() -> Result<PgConnectOptions, ConfigError> {
    if let Some(url) = var(Var::DatabaseUrl) {
        return PgConnectOptions::from_str(&url).map_err(|e| ConfigError::Invalid {
            var: Var::DatabaseUrl.name(),
            source: Box::new(e),
        });
    }
    let arn = var(Var::DbSecretArn).ok_or(ConfigError::Missing("DATABASE_URL or DB_SECRET_ARN"))?;
    let secret: DbSecret =
        serde_json::from_str(&secret_string(&arn).await?).map_err(|e| ConfigError::Secret {
            arn: arn.clone(),
            source: Box::new(e),
        })?;
    proxy_options(secret, var(Var::DbHost), var(Var::DbName))
}

/// The application role's credentials (db-migrate creates the role): the secret named by
/// `APP_DB_SECRET_ARN`. `None` when unset, which only a local run may be (`DATABASE_URL`).
pub async fn app_role() -> Result<Option<DbSecret>, ConfigError> {
    let Some(arn) = var(Var::AppDbSecretArn) else {
        return match var(Var::DatabaseUrl) {
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
    if let Some(json) = var(Var::SigningKeys) {
        return Ok(SigningKeys::from_json(&json)?);
    }
    if let Some(arn) = var(Var::SigningKeysSecretArn) {
        return Ok(SigningKeys::from_json(&secret_string(&arn).await?)?);
    }
    let path = env::get_or(Var::KeysFile, ".dev/keys/signing.json");
    load_or_create_key_file(Path::new(&path))
}

/// The public keys that verify access tokens: `BOOKSHELF_PUBLIC_KEYS` (a JWK Set), the
/// secret named by `PUBLIC_KEYS_SECRET_ARN`, or else those of `signing_keys()`.
pub async fn public_keys() -> Result<PublicKeys, ConfigError> {
    if let Some(json) = var(Var::PublicKeys) {
        return Ok(PublicKeys::from_jwks_json(&json)?);
    }
    if let Some(arn) = var(Var::PublicKeysSecretArn) {
        return Ok(PublicKeys::from_jwks_json(&secret_string(&arn).await?)?);
    }
    Ok(signing_keys().await?.public_keys().clone())
}

fn load_or_create_key_file(path: &Path) -> Result<SigningKeys, ConfigError> {
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

/// Stores `value` as the current version of the secret `arn` (deployment helper).
pub async fn put_secret(arn: &str, value: &str) -> Result<(), ConfigError> {
    aws_sdk_secretsmanager::Client::new(aws().await)
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value)
        .send()
        .await
        .map_err(|e| ConfigError::Secret {
            arn: arn.into(),
            source: Box::new(e),
        })?;
    Ok(())
}

/// Logs: JSON lines (for CloudWatch Logs Insights) inside Lambda, readable text locally.
/// `RUST_LOG` sets the filter; `info` by default.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    const DEFAULT: &str = "info,sqlx=warn,aws_config=warn";
    // A filter that does not parse is said once, not silently replaced.
    let filter = match var(Var::RustLog) {
        None => EnvFilter::new(DEFAULT),
        Some(spec) => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("RUST_LOG={spec:?} is not a valid filter ({e}); using {DEFAULT:?}");
            EnvFilter::new(DEFAULT)
        }),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if var(Var::LambdaFunctionName).is_some() {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .with_ansi(false)
            .try_init()
    } else {
        // Colour only for a terminal: a log file or CI output gets no escape codes.
        use std::io::IsTerminal;
        builder
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal())
            .try_init()
    };
    // A second init (tests, the dev server) keeps the first subscriber; that is fine.
    let _ = result;
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
    fn key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("bookshelf-keys-{}", std::process::id()));
        let path = dir.join("signing.json");
        let first = load_or_create_key_file(&path).unwrap();
        let second = load_or_create_key_file(&path).unwrap();
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
