//! A private PostgreSQL cluster from the server binaries installed on this machine, for
//! `make dev` (kept in `.dev/pgdata`) and `make test` (a temporary directory).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use tokio::process::Command;

pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as_postgres: bool,
}

/// The newest `/usr/lib/postgresql/<v>/bin` with `initdb`, or `PG_BIN`, or `pg_config --bindir`.
pub fn find_bin() -> Result<PathBuf> {
    if let Some(dir) = &bookshelf_config::settings()?.local.pg_bin {
        return Ok(dir.clone());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let out = std::process::Command::new("pg_config").arg("--bindir").output();
    if let Ok(out) = out {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    bail!("no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin); run scripts/ensure-postgres.sh or set DATABASE_URL")
}

/// Where `make dev` keeps its cluster: `.dev/pgdata` in the checkout; as root, the server
/// runs as `postgres`, which may not be able to enter the checkout (say, under /root), so
/// the data lives under /var/tmp instead, one directory per checkout.
pub fn default_dev_dir() -> PathBuf {
    if !is_root() {
        return PathBuf::from(".dev/pgdata");
    }
    let here = std::env::current_dir()
        .and_then(|d| d.canonicalize())
        .unwrap_or_default();
    // FNV-1a: a stable short name for this checkout's path.
    let hash = here
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
    PathBuf::from(format!("/var/tmp/bookshelf-dev-{hash:016x}/pgdata"))
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A free TCP port on 127.0.0.1 (the OS picks; we release it right away).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PgCluster {
    /// Initialises `dir` if it holds no cluster yet, and starts a server on a free port.
    /// `durable: false` turns off fsync: fine for throw-away test data, much faster.
    pub async fn start(dir: &Path, durable: bool) -> Result<PgCluster> {
        PgCluster::start_with(dir, durable, 200).await
    }

    /// As `start`, accepting at most `max_connections` (make scale: a small instance's).
    pub async fn start_with(dir: &Path, durable: bool, max_connections: u32) -> Result<PgCluster> {
        let bin = find_bin()?;
        let run_as_postgres = is_root();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let cluster = PgCluster {
            bin,
            dir,
            port: free_port()?,
            run_as_postgres,
        };
        if run_as_postgres {
            // initdb refuses to run as root; the cluster belongs to the postgres user.
            cluster
                .run(
                    "chown",
                    &["-R", "postgres:postgres", &cluster.dir.to_string_lossy()],
                    false,
                )
                .await?;
            cluster
                .run("chmod", &["700", &cluster.dir.to_string_lossy()], false)
                .await?;
        }
        if !cluster.dir.join("PG_VERSION").exists() {
            let initdb = cluster.bin.join("initdb");
            cluster
                .run(
                    &initdb.to_string_lossy(),
                    &[
                        "-D",
                        &cluster.dir.to_string_lossy(),
                        "-U",
                        "postgres",
                        "-A",
                        "trust",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                        "--no-sync",
                    ],
                    true,
                )
                .await
                .context("initdb failed")?;
        }
        // A server left running by a killed earlier run holds the directory: stop it.
        if cluster.dir.join("postmaster.pid").exists() {
            let _ = cluster.pg_ctl(&["stop", "-m", "immediate", "-w"]).await;
        }
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections={max_connections}",
            cluster.port,
            cluster.dir.display()
        );
        if !durable {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = cluster.dir.join("server.log");
        cluster
            .pg_ctl(&[
                "start",
                "-w",
                "-t",
                "60",
                "-l",
                &log.to_string_lossy(),
                "-o",
                &options,
            ])
            .await
            .with_context(|| format!("pg_ctl start failed; see {}", log.display()))?;
        Ok(cluster)
    }

    async fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        let pg_ctl = self.bin.join("pg_ctl");
        let dir = self.dir.to_string_lossy().to_string();
        let mut all = vec!["-D", &dir];
        all.extend_from_slice(args);
        self.run(&pg_ctl.to_string_lossy(), &all, true).await
    }

    async fn run(&self, program: &str, args: &[&str], as_owner: bool) -> Result<()> {
        let mut cmd = if as_owner && self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} {} exited with {}: {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `db` (superuser, trust authentication on loopback).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `db` if it does not exist yet.
    pub async fn ensure_database(&self, db: &str) -> Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(db)
            .fetch_one(&mut conn)
            .await?;
        if !exists {
            // Identifiers cannot be bound as parameters; `db` is ours, but quote it anyway.
            sqlx::query(&format!("CREATE DATABASE \"{}\"", db.replace('"', "\"\"")))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Restarts the server in place (fault tests): every connection is cut.
    pub async fn restart(&self) -> Result<()> {
        // With -l, as at start: otherwise the new server inherits our pipes, and waiting for
        // pg_ctl's output would wait for the server to exit.
        let log = self.dir.join("server.log");
        self.pg_ctl(&[
            "restart",
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "-l",
            &log.to_string_lossy(),
        ])
        .await
    }

    pub async fn stop(&self) -> Result<()> {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]).await
    }
}
