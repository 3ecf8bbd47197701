//! Every environment variable Bookshelf reads is a `Var`, read here and nowhere else
//! (a layout test holds the rest of the code to that), trimmed, and named with its purpose
//! in the README's configuration table (a test keeps the two in step).

use std::str::FromStr;

use crate::ConfigError;

/// One list: the enum, `Var::ALL` and each variable's name all come from it.
macro_rules! vars {
    ($($var:ident = $name:literal,)*) => {
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
        }
    };
}

vars! {
    DatabaseUrl = "DATABASE_URL",
    DbSecretArn = "DB_SECRET_ARN",
    DbHost = "DB_HOST",
    DbName = "DB_NAME",
    DbUser = "DB_USER",
    DbPooling = "DB_POOLING",
    DbConnectTimeout = "DB_CONNECT_TIMEOUT_MS",
    Pooler = "BOOKSHELF_POOLER",
    RegisterLimit = "BOOKSHELF_REGISTER_LIMIT",
    AppDbSecretArn = "APP_DB_SECRET_ARN",
    SigningKeysSecretArn = "SIGNING_KEYS_SECRET_ARN",
    PublicKeysSecretArn = "PUBLIC_KEYS_SECRET_ARN",
    SigningKeys = "BOOKSHELF_SIGNING_KEYS",
    PublicKeys = "BOOKSHELF_PUBLIC_KEYS",
    KeysFile = "BOOKSHELF_KEYS_FILE",
    QueueUrl = "QUEUE_URL",
    ActivityQueueUrl = "ACTIVITY_QUEUE_URL",
    MetricsNamespace = "METRICS_NAMESPACE",
    AllowedOrigins = "ALLOWED_ORIGINS",
    RustLog = "RUST_LOG",
    LambdaFunctionName = "AWS_LAMBDA_FUNCTION_NAME",
    AwsRegion = "AWS_REGION",
    AwsAccessKeyId = "AWS_ACCESS_KEY_ID",
    AwsSecretAccessKey = "AWS_SECRET_ACCESS_KEY",
    AwsSessionToken = "AWS_SESSION_TOKEN",
    AwsEndpointUrl = "AWS_ENDPOINT_URL",
    AwsEndpointUrlSqs = "AWS_ENDPOINT_URL_SQS",
    AwsEndpointUrlSecretsManager = "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    Port = "PORT",
    AdminEmail = "BOOKSHELF_ADMIN_EMAIL",
    AdminPassword = "BOOKSHELF_ADMIN_PASSWORD",
    SqsEndpoint = "SQS_ENDPOINT",
    PgData = "BOOKSHELF_PGDATA",
    PgBin = "PG_BIN",
    Template = "BOOKSHELF_TEMPLATE",
    TokioWorkerThreads = "TOKIO_WORKER_THREADS",
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

    #[test]
    fn every_variable_is_in_the_readme() {
        let readme = include_str!("../../../README.md");
        for var in Var::ALL {
            assert!(
                readme.contains(&format!("| `{}` |", var.name())),
                "README's configuration table lacks {}",
                var.name()
            );
        }
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
