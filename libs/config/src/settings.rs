//! Every setting, typed, read from the environment once per process (`settings()`):
//! what `template.yaml` (or Lambda) sets deployed apart from what only a developer's
//! machine and the tests set. Secrets are `SecretString`s: they never print, in a log line
//! or a `Debug` of these structs.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use secrecy::SecretString;

use crate::env::{self, Var};
use crate::ConfigError;

/// What deployed functions read (and local runs may set the same way).
#[derive(Debug)]
pub struct Deployed {
    /// db-migrate: the master credentials' secret.
    pub db_secret_arn: Option<String>,
    /// The RDS Proxy endpoint.
    pub db_host: Option<String>,
    /// Unset: the owner secret's `dbname`, else `bookshelf`.
    pub db_name: Option<String>,
    /// The application role signed in to the proxy with an IAM token.
    pub db_user: Option<String>,
    /// A transaction-pooling proxy in front (`DB_POOLING=transaction`).
    pub transaction_pooling: bool,
    pub db_connect_timeout: Duration,
    pub app_db_secret_arn: Option<String>,
    pub signing_keys_secret_arn: Option<String>,
    pub public_keys_secret_arn: Option<String>,
    pub queue_url: Option<String>,
    pub activity_queue_url: Option<String>,
    /// The bucket import files are uploaded to (POST /imports, import-worker).
    pub upload_bucket: Option<String>,
    /// The secret whose text keys the sealing of webhook secrets (webhooks-create, the
    /// dispatcher).
    pub webhook_key_secret_arn: Option<String>,
    /// Signed deliveries, dispatcher → sender; the sender's reports, sender → recorder.
    pub webhook_queue_url: Option<String>,
    pub webhook_results_queue_url: Option<String>,
    /// How long one scheduled dispatcher run polls (0: one pass, as a local invoke does).
    pub webhook_dispatch_seconds: u64,
    pub metrics_namespace: Option<String>,
    /// Comma-separated browser origins.
    pub allowed_origins: String,
    pub rust_log: Option<String>,
    /// Set by Lambda: inside a function.
    pub lambda_function_name: Option<String>,
    pub aws_region: Option<String>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<SecretString>,
    pub aws_session_token: Option<SecretString>,
}

/// What only a developer's machine and the tests set.
#[derive(Debug)]
pub struct Local {
    /// PostgreSQL for everything (it carries a password).
    pub database_url: Option<SecretString>,
    /// A pooler the application role connects through: host and port.
    pub pooler: Option<(String, u16)>,
    pub register_limit: Option<i32>,
    pub signing_keys: Option<SecretString>,
    pub public_keys: Option<String>,
    pub keys_file: PathBuf,
    /// The dev server's webhook sealing key, made on first use.
    pub webhook_key_file: PathBuf,
    /// The webhook key's text itself (sam local, cargo lambda watch).
    pub webhook_key: Option<SecretString>,
    pub aws_endpoint_url: Option<String>,
    pub aws_endpoint_url_sqs: Option<String>,
    pub aws_endpoint_url_secrets_manager: Option<String>,
    pub port: u16,
    pub admin_email: String,
    pub admin_password: SecretString,
    pub sqs_endpoint: Option<String>,
    pub pg_data: Option<PathBuf>,
    pub pg_bin: Option<PathBuf>,
    pub template: Option<PathBuf>,
    pub tokio_worker_threads: Option<usize>,
    /// Where the dev server keeps uploaded import files.
    pub objects_dir: PathBuf,
}

#[derive(Debug)]
pub struct Settings {
    pub deployed: Deployed,
    pub local: Local,
}

fn text(var: Var) -> Option<String> {
    env::get(var)
}

fn secret(var: Var) -> Option<SecretString> {
    env::get(var).map(SecretString::from)
}

fn invalid(var: Var, message: String) -> ConfigError {
    ConfigError::Invalid {
        var: var.name(),
        source: message.into(),
    }
}

impl Settings {
    /// Reads every variable now. A value that does not parse is an error naming it.
    pub fn from_env() -> Result<Settings, ConfigError> {
        let transaction_pooling = match text(Var::DbPooling).as_deref() {
            None | Some("session") => false,
            Some("transaction") => true,
            Some(other) => {
                return Err(invalid(
                    Var::DbPooling,
                    format!("{other:?} is neither session nor transaction"),
                ))
            }
        };
        let pooler = match text(Var::Pooler) {
            None => None,
            Some(addr) => {
                let (host, port) = addr
                    .rsplit_once(':')
                    .ok_or_else(|| invalid(Var::Pooler, format!("{addr:?} is not host:port")))?;
                let port = port
                    .parse::<u16>()
                    .map_err(|e| invalid(Var::Pooler, e.to_string()))?;
                Some((host.to_string(), port))
            }
        };
        Ok(Settings {
            deployed: Deployed {
                db_secret_arn: text(Var::DbSecretArn),
                db_host: text(Var::DbHost),
                db_name: text(Var::DbName),
                db_user: text(Var::DbUser),
                transaction_pooling,
                db_connect_timeout: Duration::from_millis(
                    env::parse::<u64>(Var::DbConnectTimeout)?.unwrap_or(5_000),
                ),
                app_db_secret_arn: text(Var::AppDbSecretArn),
                signing_keys_secret_arn: text(Var::SigningKeysSecretArn),
                public_keys_secret_arn: text(Var::PublicKeysSecretArn),
                queue_url: text(Var::QueueUrl),
                activity_queue_url: text(Var::ActivityQueueUrl),
                upload_bucket: text(Var::UploadBucket),
                webhook_key_secret_arn: text(Var::WebhookKeySecretArn),
                webhook_queue_url: text(Var::WebhookQueueUrl),
                webhook_results_queue_url: text(Var::WebhookResultsQueueUrl),
                webhook_dispatch_seconds: env::parse::<u64>(Var::WebhookDispatchSeconds)?.unwrap_or(0),
                metrics_namespace: text(Var::MetricsNamespace),
                allowed_origins: env::get_or(Var::AllowedOrigins, ""),
                rust_log: text(Var::RustLog),
                lambda_function_name: text(Var::LambdaFunctionName),
                aws_region: text(Var::AwsRegion),
                aws_access_key_id: text(Var::AwsAccessKeyId),
                aws_secret_access_key: secret(Var::AwsSecretAccessKey),
                aws_session_token: secret(Var::AwsSessionToken),
            },
            local: Local {
                database_url: secret(Var::DatabaseUrl),
                pooler,
                register_limit: env::parse::<i32>(Var::RegisterLimit)?,
                signing_keys: secret(Var::SigningKeys),
                public_keys: text(Var::PublicKeys),
                keys_file: env::get_or(Var::KeysFile, ".dev/keys/signing.json").into(),
                webhook_key_file: env::get_or(Var::WebhookKeyFile, ".dev/keys/webhook.key").into(),
                webhook_key: secret(Var::WebhookKey),
                aws_endpoint_url: text(Var::AwsEndpointUrl),
                aws_endpoint_url_sqs: text(Var::AwsEndpointUrlSqs),
                aws_endpoint_url_secrets_manager: text(Var::AwsEndpointUrlSecretsManager),
                port: env::parse::<u16>(Var::Port)?.unwrap_or(3000),
                admin_email: env::get_or(Var::AdminEmail, "admin@bookshelf.local"),
                admin_password: SecretString::from(env::get_or(Var::AdminPassword, "bookshelf-admin")),
                sqs_endpoint: text(Var::SqsEndpoint),
                pg_data: text(Var::PgData).map(PathBuf::from),
                pg_bin: text(Var::PgBin).map(PathBuf::from),
                template: text(Var::Template).map(PathBuf::from),
                tokio_worker_threads: env::parse::<usize>(Var::TokioWorkerThreads)?,
                objects_dir: env::get_or(Var::ObjectsDir, ".dev/objects").into(),
            },
        })
    }
}

/// The process's settings, read on first use: the environment of a Lambda execution
/// environment or a dev server does not change while it runs. An invalid value is an error
/// at every use, naming the variable.
pub fn settings() -> Result<&'static Settings, ConfigError> {
    static SETTINGS: OnceLock<Result<Settings, (&'static str, String)>> = OnceLock::new();
    let read = SETTINGS.get_or_init(|| {
        Settings::from_env().map_err(|e| match e {
            ConfigError::Invalid { var, source } => (var, source.to_string()),
            other => ("configuration", other.to_string()),
        })
    });
    read.as_ref().map_err(|(var, message)| ConfigError::Invalid {
        var,
        source: message.clone().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn secrets_never_print() {
        let settings = Settings::from_env().unwrap();
        let password = settings.local.admin_password.expose_secret().to_string();
        let printed = format!("{settings:?}");
        assert!(!printed.contains(&password), "{printed}");
        assert!(printed.contains("REDACTED"), "{printed}");
    }
}
