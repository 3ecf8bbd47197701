//! Every environment variable Bookshelf reads is a `Var`, read here and nowhere else
//! (a layout test holds the rest of the code to that), trimmed, and named with its purpose
//! in the README's configuration tables, deployed or local, secrets marked (a test keeps
//! the two in step). `crate::settings` turns them into one typed value.

use std::str::FromStr;

use crate::ConfigError;

/// Where a variable is set: by `template.yaml` (or Lambda itself) deployed, or only on a
/// developer's machine and in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Deployed,
    Local,
}

/// Whether a variable's value is a secret: it is held as a `SecretString`, which never
/// prints, and the README marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    Plain,
    Secret,
}

/// One list: the enum, `Var::ALL` and each variable's name, scope and sensitivity all come
/// from it.
macro_rules! vars {
    ($($var:ident = $name:literal, $scope:ident, $sensitivity:ident,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Var {
            $($var,)*
        }

        impl Var {
            pub const ALL: &'static [Var] = &[$(Var::$var,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Var::$var => $name,)*
                }
            }

            pub fn scope(self) -> Scope {
                match self {
                    $(Var::$var => Scope::$scope,)*
                }
            }

            pub fn sensitivity(self) -> Sensitivity {
                match self {
                    $(Var::$var => Sensitivity::$sensitivity,)*
                }
            }
        }
    };
}

vars! {
    DbSecretArn = "DB_SECRET_ARN", Deployed, Plain,
    DbHost = "DB_HOST", Deployed, Plain,
    DbName = "DB_NAME", Deployed, Plain,
    DbUser = "DB_USER", Deployed, Plain,
    DbPooling = "DB_POOLING", Deployed, Plain,
    DbConnectTimeout = "DB_CONNECT_TIMEOUT_MS", Deployed, Plain,
    AppDbSecretArn = "APP_DB_SECRET_ARN", Deployed, Plain,
    SigningKeysSecretArn = "SIGNING_KEYS_SECRET_ARN", Deployed, Plain,
    PublicKeysSecretArn = "PUBLIC_KEYS_SECRET_ARN", Deployed, Plain,
    QueueUrl = "QUEUE_URL", Deployed, Plain,
    ActivityQueueUrl = "ACTIVITY_QUEUE_URL", Deployed, Plain,
    UploadBucket = "UPLOAD_BUCKET", Deployed, Plain,
    WebhookKeySecretArn = "WEBHOOK_KEY_SECRET_ARN", Deployed, Plain,
    WebhookQueueUrl = "WEBHOOK_QUEUE_URL", Deployed, Plain,
    WebhookResultsQueueUrl = "WEBHOOK_RESULTS_QUEUE_URL", Deployed, Plain,
    WebhookDispatchSeconds = "WEBHOOK_DISPATCH_SECONDS", Deployed, Plain,
    MetricsNamespace = "METRICS_NAMESPACE", Deployed, Plain,
    AllowedOrigins = "ALLOWED_ORIGINS", Deployed, Plain,
    RustLog = "RUST_LOG", Deployed, Plain,
    LambdaFunctionName = "AWS_LAMBDA_FUNCTION_NAME", Deployed, Plain,
    AwsRegion = "AWS_REGION", Deployed, Plain,
    AwsAccessKeyId = "AWS_ACCESS_KEY_ID", Deployed, Plain,
    AwsSecretAccessKey = "AWS_SECRET_ACCESS_KEY", Deployed, Secret,
    AwsSessionToken = "AWS_SESSION_TOKEN", Deployed, Secret,
    DatabaseUrl = "DATABASE_URL", Local, Secret,
    Pooler = "BOOKSHELF_POOLER", Local, Plain,
    RegisterLimit = "BOOKSHELF_REGISTER_LIMIT", Local, Plain,
    SigningKeys = "BOOKSHELF_SIGNING_KEYS", Local, Secret,
    PublicKeys = "BOOKSHELF_PUBLIC_KEYS", Local, Plain,
    KeysFile = "BOOKSHELF_KEYS_FILE", Local, Plain,
    WebhookKeyFile = "BOOKSHELF_WEBHOOK_KEY_FILE", Local, Plain,
    WebhookKey = "BOOKSHELF_WEBHOOK_KEY", Local, Secret,
    AwsEndpointUrl = "AWS_ENDPOINT_URL", Local, Plain,
    AwsEndpointUrlSqs = "AWS_ENDPOINT_URL_SQS", Local, Plain,
    AwsEndpointUrlSecretsManager = "AWS_ENDPOINT_URL_SECRETS_MANAGER", Local, Plain,
    Port = "PORT", Local, Plain,
    AdminEmail = "BOOKSHELF_ADMIN_EMAIL", Local, Plain,
    AdminPassword = "BOOKSHELF_ADMIN_PASSWORD", Local, Secret,
    SqsEndpoint = "SQS_ENDPOINT", Local, Plain,
    PgData = "BOOKSHELF_PGDATA", Local, Plain,
    PgBin = "PG_BIN", Local, Plain,
    Template = "BOOKSHELF_TEMPLATE", Local, Plain,
    TokioWorkerThreads = "TOKIO_WORKER_THREADS", Local, Plain,
    ObjectsDir = "BOOKSHELF_OBJECTS_DIR", Local, Plain,
}

/// The variable's value, trimmed; unset, blank or not Unicode is `None`.
pub fn get(var: Var) -> Option<String> {
    std::env::var(var.name())
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The variable's value or `default`.
pub fn get_or(var: Var, default: &str) -> String {
    get(var).unwrap_or_else(|| default.to_string())
}

/// A variable that must be set.
pub fn require(var: Var) -> Result<String, ConfigError> {
    get(var).ok_or(ConfigError::Missing(var.name()))
}

/// The variable parsed as `T`; `Ok(None)` when unset. A value that does not parse is an
/// error naming the variable, never a silent default.
pub fn parse<T>(var: Var) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    get(var)
        .map(|v| {
            v.parse().map_err(|e: T::Err| ConfigError::Invalid {
                var: var.name(),
                source: Box::new(e),
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README lists deployed and local variables in two tables; a secret's row says so.
    #[test]
    fn every_variable_is_in_the_readme_in_its_table() {
        let readme = include_str!("../../../README.md");
        let table = |heading: &str| -> Vec<&str> {
            let start = readme
                .find(heading)
                .unwrap_or_else(|| panic!("README lacks {heading:?}"));
            readme[start..]
                .lines()
                .skip(1)
                .skip_while(|l| !l.starts_with('|'))
                .take_while(|l| l.starts_with('|'))
                .collect()
        };
        let deployed = table("### Deployed");
        let local = table("### Local only");
        for var in Var::ALL {
            let rows = match var.scope() {
                Scope::Deployed => &deployed,
                Scope::Local => &local,
            };
            let row = rows
                .iter()
                .find(|r| r.starts_with(&format!("| `{}` |", var.name())))
                .unwrap_or_else(|| panic!("{} belongs in the README's {:?} table", var.name(), var.scope()));
            assert_eq!(
                row.contains("(secret)"),
                var.sensitivity() == Sensitivity::Secret,
                "{}: the README marks secrets, and only them",
                var.name()
            );
        }
        assert_eq!(
            deployed.len() + local.len() - 4,
            Var::ALL.len(),
            "no row for a variable that is not read"
        );
    }

    #[test]
    fn values_are_trimmed_and_parsed_strictly() {
        // PORT is only read by the dev server, never by unit tests.
        std::env::set_var(Var::Port.name(), " 3001 ");
        assert_eq!(get(Var::Port).as_deref(), Some("3001"));
        assert_eq!(parse::<u16>(Var::Port).unwrap(), Some(3001));
        std::env::set_var(Var::Port.name(), "30x1");
        let err = parse::<u16>(Var::Port).unwrap_err();
        assert!(err.to_string().contains("PORT"), "{err}");
        std::env::set_var(Var::Port.name(), "  ");
        assert_eq!(parse::<u16>(Var::Port).unwrap(), None);
        std::env::remove_var(Var::Port.name());
    }
}
