//! `bookshelf-dev`: the local dev server and operator commands.
//!
//!   bookshelf-dev [serve]                  serve the API on 127.0.0.1:$PORT (default 3000)
//!   bookshelf-dev with-postgres [--max-connections N] -- CMD...
//!                                          run CMD with DATABASE_URL of a throw-away cluster
//!   bookshelf-dev gateway ENVIRONMENTS.json
//!                                          the gateway alone, in front of functions served
//!                                          elsewhere (make scale: one process per environment)
//!   bookshelf-dev create-admin [--promote EMAIL]
//!                                          ensure the admin from BOOKSHELF_ADMIN_EMAIL /
//!                                          BOOKSHELF_ADMIN_PASSWORD exists (uses DATABASE_URL);
//!                                          an existing account only when named by --promote
//!   bookshelf-dev migrate                  apply migrations to DATABASE_URL
//!   bookshelf-dev seed [N] [--readers R] [--followers F]
//!                                          add N (default 10000) demo books to DATABASE_URL, or
//!                                          to the database of a running `make dev`; with
//!                                          --readers, R readers with a year of reading each
//!                                          (5,000 finished reads, 20,000 sessions); with
//!                                          --followers F, star@seed.bookshelf.local with F
//!                                          followers (the fan-out benchmark)
//!   bookshelf-dev keys                     print new signing keys and their JWK Set (deploy)
//!   bookshelf-dev functions                regenerate functions/Cargo.toml and the watch
//!                                          routes from template.yaml (`make functions`)
//!   bookshelf-dev keys --rotate SIGNING_ARN PUBLIC_ARN [--retire-now]
//!   bookshelf-dev keys --rotate-file PATH [--retire-now]
//!                                          rotate the signing key (README, "Key rotation")
//!   bookshelf-dev worker                   only the order worker and outbox relay, on the
//!                                          queue at SQS_ENDPOINT (beside `sam local`)

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use std::sync::Arc;
use std::time::Duration;

use bookshelf_devserver::{
    ensure_admin, local_state, migrate_database, pg::PgCluster, prepare_database, template_path, LocalQueues,
    Server, Template,
};
use bookshelf_queue::{MemoryQueue, Queue, SqsQueue};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

/// The dev server serves many requests at once on several threads, where glibc's malloc
/// (per-thread arenas, frees across threads) measured 7-10 % of its CPU per request; a
/// Lambda serves one request at a time and keeps the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match runtime() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("bookshelf-dev: starting the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Half the cores (at least one), unless `TOKIO_WORKER_THREADS` says otherwise: the dev
/// server shares its machine with its PostgreSQL, and on a busy one more threads than it
/// can keep running only spin and wake each other (scripts/bench-notes.md, "Request path").
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = bookshelf_config::settings()
        .map_err(std::io::Error::other)?
        .local
        .tokio_worker_threads;
    builder.worker_threads(threads.unwrap_or((cores / 2).max(1)));
    builder.build()
}

async fn run() -> ExitCode {
    bookshelf_config::init_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("serve") => serve().await.map(|()| ExitCode::SUCCESS),
        Some("with-postgres") => with_postgres(&args[1..]).await,
        Some("create-admin") => create_admin(&args[1..]).await.map(|()| ExitCode::SUCCESS),
        Some("migrate") => migrate().await.map(|()| ExitCode::SUCCESS),
        Some("seed") => seed(&args[1..]).await.map(|()| ExitCode::SUCCESS),
        Some("keys") => keys(&args[1..]).await.map(|()| ExitCode::SUCCESS),
        Some("functions") => functions().map(|()| ExitCode::SUCCESS),
        Some("worker") => worker().await.map(|()| ExitCode::SUCCESS),
        Some("gateway") => remote_gateway(&args[1..]).await.map(|()| ExitCode::SUCCESS),
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}; see the README")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bookshelf-dev: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn admin_credentials() -> Result<(String, String)> {
    let local = &bookshelf_config::settings()?.local;
    Ok((
        local.admin_email.clone(),
        local.admin_password.expose_secret().to_string(),
    ))
}

/// `DATABASE_URL`, which the command needs.
fn database_url() -> Result<Option<String>> {
    Ok(bookshelf_config::settings()?
        .local
        .database_url
        .as_ref()
        .map(|u| u.expose_secret().to_string()))
}

fn require_database_url() -> Result<String> {
    database_url()?.ok_or_else(|| anyhow::anyhow!("DATABASE_URL is not set"))
}

async fn serve() -> Result<()> {
    let local = &bookshelf_config::settings()?.local;
    let port = local.port;
    let template = Template::load(&template_path()?)?;

    let (url, cluster) = match database_url()? {
        Some(url) => (url, None),
        None => {
            let dir = local
                .pg_data
                .clone()
                .unwrap_or_else(bookshelf_devserver::pg::default_dev_dir);
            let dir = dir.display().to_string();
            println!("Starting a private PostgreSQL cluster in {dir} ...");
            let cluster = PgCluster::start(dir.as_ref(), true).await?;
            cluster.ensure_database("bookshelf").await?;
            (cluster.url("bookshelf"), Some(cluster))
        }
    };
    let result = async {
        let databases = prepare_database(&url).await?;
        let (email, password) = admin_credentials()?;
        ensure_admin(&databases.owner, &email, &password).await?;
        let keys = bookshelf_config::signing_keys().await?;
        let queues = local_queues().await?;
        let queue_name = queues.orders.describe();
        let feed_name = queues.activities.describe();
        let state = local_state(databases.app, &keys, Some(queues));
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{port}"))?;
        let server = Server::start(listener, &template, state).await?;
        println!();
        println!(
            "Bookshelf API on {}  ({} routes from template.yaml)",
            server.url(),
            template.routes.len()
        );
        println!("  OpenAPI:  {}/openapi.json", server.url());
        println!("  Docs:     {}/docs", server.url());
        println!("  Admin:    {email} / {password}");
        println!("  Database: {url}");
        println!("  Orders:   {queue_name}, processed by the local order worker");
        println!("  Feed:     {feed_name}, fanned out by the local feed worker");
        println!("Ctrl-C stops it.");
        // So `bookshelf-dev seed` (make seed) finds this database while we run.
        let _ = std::fs::create_dir_all(".dev");
        let _ = std::fs::write(DEV_URL_FILE, &url);
        shutdown_signal().await;
        let _ = std::fs::remove_file(DEV_URL_FILE);
        println!("Stopping ...");
        server.stop().await
    }
    .await;
    if let Some(c) = cluster {
        c.stop().await?;
    }
    result
}

/// The gateway alone, in front of functions in environments of their own (`make scale`):
/// `bookshelf-dev gateway ENVIRONMENTS.json` on PORT, the authorizer's answers cached for
/// the template's TTL as API Gateway caches them.
async fn remote_gateway(args: &[String]) -> Result<()> {
    let file = args
        .first()
        .context("usage: bookshelf-dev gateway ENVIRONMENTS.json")?;
    let port = bookshelf_config::settings()?.local.port;
    let template = Template::load(&template_path()?)?;
    let ttl = template.authorizer.as_ref().map_or(0, |a| a.ttl_secs);
    let remote =
        bookshelf_devserver::remote::Remote::from_file(file.as_ref(), std::time::Duration::from_secs(ttl))?;
    // Only the gateway's own settings (CORS): the functions have their own state.
    let state = Arc::new(bookshelf_api::AppState::from_env(false, 0)?);
    let gateway =
        Arc::new(bookshelf_devserver::Gateway::new(&template, state)?.with_remote(Arc::new(remote)));
    let app = axum::Router::new().fallback(move |req| gateway.clone().handle(req));
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    println!("gateway on http://127.0.0.1:{port}, functions from {file}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    Ok(())
}

/// What Lambda's event source mapping and the relay's schedule do deployed, for functions
/// served by something that runs neither (`sam local start-api`): polls the orders queue at
/// `SQS_ENDPOINT` and hands batches to the same order-processor handler, and runs the
/// outbox relay every 2 s, against `DATABASE_URL`.
async fn worker() -> Result<()> {
    let url = require_database_url()?;
    if bookshelf_config::settings()?.local.sqs_endpoint.is_none() {
        bail!("SQS_ENDPOINT is not set");
    }
    let pool = migrate_database(&url).await?;
    let queues = local_queues().await?;
    println!(
        "order worker on {}, feed worker on {}",
        queues.orders.describe(),
        queues.activities.describe()
    );
    // The worker signs nothing; the state wants keys, so it gets throw-away ones.
    let state = local_state(pool, &bookshelf_auth::SigningKeys::generate(), Some(queues));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let pollers = bookshelf_devserver::worker::Pollers::from_template(&Template::load(&template_path()?)?);
    let task = bookshelf_devserver::worker::spawn(state, Duration::from_secs(2), pollers, stopped);
    shutdown_signal().await;
    let _ = stop.send(true);
    task.await?;
    Ok(())
}

/// The orders and activities queues: on an SQS-compatible server at `SQS_ENDPOINT` (e.g.
/// moto), each with its DLQ and redrive policy created if missing; otherwise in process.
async fn local_queues() -> Result<LocalQueues> {
    async fn one(name: &str) -> Result<Queue> {
        match bookshelf_config::settings()?.local.sqs_endpoint.clone() {
            Some(endpoint) => {
                let client = SqsQueue::local_client(&endpoint);
                let (queue, _dlq) = SqsQueue::ensure(client, name, 30, 5)
                    .await
                    .with_context(|| format!("setting up the queue {name} at {endpoint}"))?;
                Ok(Queue::Sqs(queue))
            }
            None => Ok(Queue::Memory(Arc::new(MemoryQueue::new(
                Duration::from_secs(30),
                5,
            )))),
        }
    }
    Ok(LocalQueues {
        orders: one("bookshelf-orders").await?,
        activities: one("bookshelf-activities").await?,
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .unwrap_or_else(|e| panic!("cannot listen for SIGTERM: {e}"));
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs a command against a throw-away cluster, which is removed afterwards.
async fn with_postgres(args: &[String]) -> Result<ExitCode> {
    let mut args = args;
    let mut max_connections = 200;
    if args.first().map(String::as_str) == Some("--max-connections") {
        max_connections = args
            .get(1)
            .and_then(|n| n.parse().ok())
            .context("--max-connections needs a number")?;
        args = &args[2..];
    }
    let cmd: Vec<&String> = args.iter().skip_while(|a| *a == "--").collect();
    let Some((program, rest)) = cmd.split_first() else {
        bail!("usage: bookshelf-dev with-postgres [--max-connections N] -- COMMAND [ARGS...]");
    };
    let dir = std::env::temp_dir().join(format!("bookshelf-pg-{}", std::process::id()));
    let cluster = PgCluster::start_with(&dir, false, max_connections).await?;
    let outcome = async {
        cluster.ensure_database("bookshelf").await?;
        let status = tokio::process::Command::new(program)
            .args(rest)
            .env("DATABASE_URL", cluster.url("bookshelf"))
            .status()
            .await
            .with_context(|| format!("running {program}"))?;
        Ok::<_, anyhow::Error>(status)
    }
    .await;
    let stopped = cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    stopped?;
    let status = outcome?;
    Ok(ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8))
}

/// `create-admin [--promote EMAIL]`: an existing account becomes admin only when named.
async fn create_admin(args: &[String]) -> Result<()> {
    let promote = match args {
        [] => None,
        [flag, email] if flag == "--promote" => Some(email.as_str()),
        _ => bail!("usage: bookshelf-dev create-admin [--promote EMAIL]"),
    };
    let url = require_database_url()?;
    let pool = migrate_database(&url).await?;
    let (email, password) = admin_credentials()?;
    match bookshelf_api::ops::ensure_admin(&pool, &email, &password, promote).await? {
        bookshelf_api::ops::AdminOutcome::Created => println!("admin {email} created"),
        bookshelf_api::ops::AdminOutcome::Unchanged => println!("admin {email} is ready (unchanged)"),
        bookshelf_api::ops::AdminOutcome::Promoted { revoked_sessions } => println!(
            "{email} is now an admin with the new password; {revoked_sessions} of its sessions revoked"
        ),
    }
    Ok(())
}

const DEV_URL_FILE: &str = ".dev/database_url";

async fn seed(args: &[String]) -> Result<()> {
    let mut count: usize = 10_000;
    let mut readers: usize = 0;
    let mut followers: i32 = 0;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--readers" => {
                readers = rest
                    .next()
                    .context("--readers needs a number")?
                    .parse()
                    .context("--readers needs a number")?;
            }
            "--followers" => {
                followers = rest
                    .next()
                    .context("--followers needs a number")?
                    .parse()
                    .context("--followers needs a number")?;
            }
            n => count = n.parse().context("the count must be a number")?,
        }
    }
    let url = match database_url()? {
        Some(url) => url,
        None => std::fs::read_to_string(DEV_URL_FILE)
            .map(|u| u.trim().to_string())
            .context("set DATABASE_URL, or start `make dev` first")?,
    };
    let pool = migrate_database(&url).await?;
    let seed = chrono::Utc::now().timestamp_micros() as u64;
    let started = std::time::Instant::now();
    let inserted = bookshelf_devserver::seed::seed_books(&pool, count, seed).await?;
    println!(
        "added {inserted} books in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if followers > 0 {
        let started = std::time::Instant::now();
        let (star, last) = bookshelf_devserver::seed::seed_star(&pool, followers).await?;
        println!(
            "star {star} (password {}) has {followers} followers in {:.1}s; the fan-out reaches {} last",
            bookshelf_devserver::seed::READER_PASSWORD,
            started.elapsed().as_secs_f64(),
            last.as_deref().unwrap_or("-")
        );
    }
    if readers > 0 {
        let started = std::time::Instant::now();
        let made = bookshelf_devserver::seed::seed_readers(&pool, readers).await?;
        for (email, h) in &made {
            println!(
                "reader {email} (password {}): {} finished reads, {} sessions",
                bookshelf_devserver::seed::READER_PASSWORD,
                h.reads,
                h.sessions
            );
        }
        println!(
            "added {} readers in {:.1}s ({} already there)",
            made.len(),
            started.elapsed().as_secs_f64(),
            readers - made.len()
        );
    }
    Ok(())
}

/// Regenerates what template.yaml decides: the functions' binaries and the watch routes.
fn functions() -> Result<()> {
    let written = bookshelf_devserver::manifest::write(std::path::Path::new("."))?;
    match written.is_empty() {
        true => println!("functions/Cargo.toml and the watch routes are up to date"),
        false => println!("wrote {}", written.join(", ")),
    }
    Ok(())
}

async fn migrate() -> Result<()> {
    let url = require_database_url()?;
    migrate_database(&url).await?;
    println!("migrations applied");
    Ok(())
}

/// New key material for a deployment: the private set for the signing secret, and the
/// public JWK Set for the authorizer's secret. With `--put SIGNING_ARN PUBLIC_ARN` they are
/// stored straight into the two secrets (AWS credentials as the AWS CLI finds them: the
/// environment, a profile, SSO), and the private key is never printed. `--rotate` (the two
/// secrets) and `--rotate-file` (a local key file) replace the signing key without logging
/// anyone out: see `SigningKeys::rotated`.
async fn keys(args: &[String]) -> Result<()> {
    let now = chrono::Utc::now().timestamp();
    let overlap = |rest: &[String]| match rest {
        [] => Ok(bookshelf_auth::keys::ROTATION_OVERLAP_SECS),
        [flag] if flag == "--retire-now" => Ok(0),
        _ => bail!("the only option after the key locations is --retire-now"),
    };
    match args {
        [flag, signing, public] if flag == "--put" => {
            let keys = bookshelf_auth::SigningKeys::generate();
            store(signing, public, &keys).await?;
            println!("stored key {} in both secrets", keys.active_kid());
        }
        [flag, signing, public, rest @ ..] if flag == "--rotate" => {
            let overlap = overlap(rest)?;
            let secrets = secrets_client().await;
            let current = secrets
                .get_secret_value()
                .secret_id(signing)
                .send()
                .await
                .with_context(|| format!("reading secret {signing}"))?;
            let current = bookshelf_auth::SigningKeys::from_json(current.secret_string().unwrap_or_default())
                .context("the signing secret does not hold a key set")?;
            let next = current.rotated(now, overlap);
            store(signing, public, &next).await?;
            report_rotation(&current, &next, now + overlap);
        }
        [flag, path, rest @ ..] if flag == "--rotate-file" => {
            let overlap = overlap(rest)?;
            let path = std::path::Path::new(path);
            let current = bookshelf_config::signing_keys_from_file(path)?;
            let next = current.rotated(now, overlap);
            bookshelf_config::replace_signing_keys_file(path, &next)?;
            report_rotation(&current, &next, now + overlap);
        }
        [] => {
            let keys = bookshelf_auth::SigningKeys::generate();
            println!("# SigningKeysSecret (private; only the auth functions may read it)");
            println!("{}", keys.to_json());
            println!("# PublicKeysSecret (JWK Set)");
            println!("{}", keys.public_keys().to_jwks());
        }
        _ => bail!(
            "usage: bookshelf-dev keys [--put SIGNING_ARN PUBLIC_ARN | --rotate SIGNING_ARN PUBLIC_ARN [--retire-now] | --rotate-file PATH [--retire-now]]"
        ),
    }
    Ok(())
}

async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(bookshelf_config::https_client())
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&sdk)
}

/// Stores a key set in both secrets, the public one first: a verifier must be able to
/// learn a key before anything is signed with it.
async fn store(signing: &str, public: &str, keys: &bookshelf_auth::SigningKeys) -> Result<()> {
    let secrets = secrets_client().await;
    for (arn, value) in [
        (public, keys.public_keys().to_jwks().to_string()),
        (signing, keys.to_json()),
    ] {
        secrets
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value)
            .send()
            .await
            .with_context(|| format!("storing secret {arn}"))?;
    }
    Ok(())
}

fn report_rotation(
    current: &bookshelf_auth::SigningKeys,
    next: &bookshelf_auth::SigningKeys,
    retire_at: i64,
) {
    let retire_at = chrono::DateTime::from_timestamp(retire_at, 0).unwrap_or_default();
    println!(
        "signing with {} now; {} verifies until {retire_at} (run --rotate again after that to drop it)",
        next.active_kid(),
        current.active_kid()
    );
}
