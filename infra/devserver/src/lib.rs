//! The local runtime: a stand-in for API Gateway that serves `template.yaml`'s routes with
//! the same handlers the Lambdas run, plus the private PostgreSQL cluster behind it.

pub mod gateway;
pub mod manifest;
pub mod pg;
pub mod remote;
pub mod seed;
pub mod template;
pub mod uploads;
pub mod worker;

use bookshelf_storage::DbPool;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use bookshelf_api::AppState;
use bookshelf_auth::SigningKeys;
use tokio::net::TcpListener;

pub use gateway::Gateway;
pub use template::Template;

/// Connects as the URL's user and applies the migrations (the operator commands: they
/// leave the application role, which a running dev server uses, alone).
pub async fn migrate_database(url: &str) -> Result<DbPool> {
    let options: sqlx::postgres::PgConnectOptions =
        url.parse().context("DATABASE_URL is not a PostgreSQL URL")?;
    // The dev server serves many requests at once, unlike one Lambda environment.
    let owner = bookshelf_storage::pool(options, 20);
    bookshelf_storage::migrate(&owner)
        .await
        .context("applying migrations")?;
    Ok(owner)
}

/// The two ways the local runtime connects, as deployed: the owner (migrations, seeding,
/// operator commands, tests' own checks) and the application role the handlers use.
pub struct Databases {
    pub owner: DbPool,
    pub app: DbPool,
}

/// Connects, applies the migrations, creates the application role `<database>_app` with
/// a fresh password (what `db-migrate` does deployed), and hands back both pools. A user
/// of `DATABASE_URL` that may not create roles serves as itself, and says so.
pub async fn prepare_database(url: &str) -> Result<Databases> {
    let owner = migrate_database(url).await?;
    let options = owner.connect_options();
    let role = format!("{}_app", options.get_database().unwrap_or("postgres"));
    let password = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    match bookshelf_api::ops::ensure_app_role(&owner, &role, &password).await {
        Ok(()) => {
            let app = app_pool(options.username(&role).password(&password))?;
            Ok(Databases { owner, app })
        }
        Err(e) if insufficient_privilege(&e) => {
            tracing::warn!(
                user = options.get_username(),
                "this user may not create roles: serving as it, not as an application role"
            );
            Ok(Databases {
                app: owner.clone(),
                owner,
            })
        }
        Err(e) => Err(e).context("creating the application role"),
    }
}

/// The application role's pool: through `BOOKSHELF_POOLER` when set (the PgBouncer stage of
/// `make test`), pooled as `DB_POOLING` says.
fn app_pool(options: sqlx::postgres::PgConnectOptions) -> Result<DbPool> {
    let options = match bookshelf_config::local_pooler()? {
        Some((host, port)) => options.host(&host).port(port),
        None => options,
    };
    let pooling = match bookshelf_config::transaction_pooling()? {
        true => bookshelf_storage::Pooling::Transaction,
        false => bookshelf_storage::Pooling::Session,
    };
    // The dev server serves many requests at once, unlike one Lambda environment.
    Ok(DbPool::build(
        options,
        20,
        bookshelf_config::db_connect_timeout()?,
        pooling,
    ))
}

fn insufficient_privilege(e: &bookshelf_api::ops::OpsError) -> bool {
    use bookshelf_storage::StorageError;
    matches!(e, bookshelf_api::ops::OpsError::Storage(StorageError::Database(e))
        if matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("42501")))
}

/// Makes sure an admin account with these credentials exists (the operator command).
/// An existing account is refused unless `promote` names it (see `ops::ensure_admin`).
pub async fn ensure_admin(pool: &DbPool, email: &str, password: &str) -> Result<()> {
    bookshelf_api::ops::ensure_admin(pool, email, password, None).await?;
    Ok(())
}

/// A running local gateway, with the order worker when the state has a queue.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_worker: tokio::sync::watch::Sender<bool>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

/// The queues of a local run: orders, and the activities the feed fans out.
pub struct LocalQueues {
    pub orders: bookshelf_queue::Queue,
    pub activities: bookshelf_queue::Queue,
}

/// What stands in for the upload bucket and its notifications: files in `dir`, uploaded
/// through the gateway's stand-in URL and announced on an in-process imports queue.
pub fn local_imports(state: AppState, dir: std::path::PathBuf) -> Result<AppState> {
    let objects = bookshelf_objects::LocalObjects::new(dir.clone())
        .with_context(|| format!("creating the upload directory {}", dir.display()))?;
    // Redelivered after 15 minutes, as the deployed queue's visibility timeout outlasts the
    // importer's 15: a long import is never taken up twice at once.
    let queue = bookshelf_queue::MemoryQueue::new(std::time::Duration::from_secs(960), 5);
    Ok(state
        .with_objects(bookshelf_objects::Objects::Local(Arc::new(objects)))
        .with_import_queue(bookshelf_queue::Queue::Memory(Arc::new(queue))))
}

/// What stands in for the webhooks and results queues: in-process queues (a delivery not
/// acknowledged comes back after 60 s, as deployed), for the sender and recorder the dev
/// server runs, and the key of `key` if given (else the state's own).
pub fn local_webhooks(mut state: AppState, key: Option<bookshelf_auth::sealed::SealingKey>) -> AppState {
    let queue = || {
        bookshelf_queue::Queue::Memory(Arc::new(bookshelf_queue::MemoryQueue::new(
            std::time::Duration::from_secs(60),
            3,
        )))
    };
    let mut hooks = state.webhooks.clone();
    if let Some(key) = key {
        hooks.key = Some(Arc::new(key));
    }
    hooks.deliveries = Some(queue());
    hooks.results = Some(queue());
    state = state.with_webhooks(hooks);
    state
}

/// The state every local function shares: all keys, and the queues if there are any.
pub fn local_state(pool: DbPool, keys: &SigningKeys, queues: Option<LocalQueues>) -> Arc<AppState> {
    // Off unless asked for: test suites register thousands of users from 127.0.0.1.
    let limit = bookshelf_config::settings()
        .map(|s| s.local.register_limit)
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring the settings: {e}");
            None
        });
    let state = AppState::new(pool, keys).with_register_limit(limit);
    let dir = bookshelf_config::settings()
        .map(|s| s.local.objects_dir.clone())
        .unwrap_or_else(|_| ".dev/objects".into());
    let state = match local_imports(state, dir) {
        Ok(s) => s,
        Err(e) => panic!("{e:#}"),
    };
    let key = match bookshelf_config::local_webhook_key(bookshelf_auth::sealed::SealingKey::random_secret) {
        Ok(text) => Some(bookshelf_auth::sealed::SealingKey::from_secret(&text)),
        Err(e) => {
            tracing::warn!(error = %e, "no webhook key file; secrets sealed now open only in this run");
            None
        }
    };
    let state = local_webhooks(state, key);
    Arc::new(match queues {
        Some(q) => state.with_queue(q.orders).with_activity_queue(q.activities),
        None => state,
    })
}

impl Server {
    /// Serves `template` on `listener` with the handlers over `state`, and runs the order
    /// worker and the outbox relay on `state`'s queue, if it has one.
    pub async fn start(listener: TcpListener, template: &Template, state: Arc<AppState>) -> Result<Server> {
        Self::start_with(listener, template, state, true).await
    }

    /// The gateway alone: nothing consumes the queue or relays the outbox (tests that
    /// watch what the request path alone does with a queue).
    pub async fn start_gateway_only(
        listener: TcpListener,
        template: &Template,
        state: Arc<AppState>,
    ) -> Result<Server> {
        Self::start_with(listener, template, state, false).await
    }

    async fn start_with(
        listener: TcpListener,
        template: &Template,
        state: Arc<AppState>,
        with_worker: bool,
    ) -> Result<Server> {
        let (stop_worker, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(local) = state.objects().ok().and_then(|o| o.local()) {
            local.set_base(&format!("http://{}", listener.local_addr()?));
        }
        let queues = state.queue.is_some()
            || state.activity_queue.is_some()
            || state.import_queue.is_some()
            || state.webhooks.deliveries.is_some();
        let worker = (with_worker && queues).then(|| {
            let pollers = worker::Pollers::from_template(template);
            worker::spawn(state.clone(), std::time::Duration::from_secs(2), pollers, stop_rx)
        });
        let gateway = Arc::new(Gateway::new(template, state)?);
        let app = axum::Router::new().fallback(move |req| gateway.clone().handle(req));
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        Ok(Server {
            addr,
            shutdown: tx,
            task,
            stop_worker,
            worker,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish.
    pub async fn stop(self) -> Result<()> {
        let _ = self.shutdown.send(());
        self.task.await??;
        let _ = self.stop_worker.send(true);
        if let Some(w) = self.worker {
            w.await?;
        }
        Ok(())
    }
}

/// The project's `template.yaml`: `BOOKSHELF_TEMPLATE`, else found from the working
/// directory upwards.
pub fn template_path() -> Result<std::path::PathBuf> {
    if let Some(p) = &bookshelf_config::settings()?.local.template {
        return Ok(p.clone());
    }
    let mut dir = std::env::current_dir()?;
    loop {
        let candidate = dir.join("template.yaml");
        if candidate.exists() {
            return Ok(candidate);
        }
        if !dir.pop() {
            anyhow::bail!(
                "template.yaml not found from {} upwards",
                Path::new(".").display()
            );
        }
    }
}
