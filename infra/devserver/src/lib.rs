//! The local runtime: a stand-in for API Gateway that serves `template.yaml`'s routes with
//! the same handlers the Lambdas run, plus the private PostgreSQL cluster behind it.

pub mod gateway;
pub mod pg;
pub mod seed;
pub mod template;
pub mod worker;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use bookshelf_api::AppState;
use bookshelf_auth::SigningKeys;
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use gateway::Gateway;
pub use template::Template;

/// Connects, applies the migrations, and hands back the pool.
pub async fn prepare_database(url: &str) -> Result<PgPool> {
    let options: sqlx::postgres::PgConnectOptions =
        url.parse().context("DATABASE_URL is not a PostgreSQL URL")?;
    // The dev server serves many requests at once, unlike one Lambda environment.
    let pool = bookshelf_storage::pool(options, 20);
    bookshelf_storage::migrate(&pool)
        .await
        .context("applying migrations")?;
    Ok(pool)
}

/// Makes sure an admin account with these credentials exists (the operator command).
pub async fn ensure_admin(pool: &PgPool, email: &str, password: &str) -> Result<()> {
    Ok(bookshelf_api::ops::ensure_admin(pool, email, password).await?)
}

/// A running local gateway, with the order worker when the state has a queue.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_worker: tokio::sync::watch::Sender<bool>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

/// The state every local function shares: all keys, and the queue if there is one.
pub fn local_state(pool: PgPool, keys: &SigningKeys, queue: Option<bookshelf_queue::Queue>) -> Arc<AppState> {
    let state = AppState::new(pool, keys);
    Arc::new(match queue {
        Some(q) => state.with_queue(q),
        None => state,
    })
}

impl Server {
    /// Serves `template` on `listener` with the handlers over `state`.
    pub async fn start(listener: TcpListener, template: &Template, state: Arc<AppState>) -> Result<Server> {
        let (stop_worker, stop_rx) = tokio::sync::watch::channel(false);
        let worker = state
            .queue
            .is_some()
            .then(|| worker::spawn(state.clone(), std::time::Duration::from_secs(2), stop_rx));
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
    if let Ok(p) = std::env::var("BOOKSHELF_TEMPLATE") {
        return Ok(p.into());
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
