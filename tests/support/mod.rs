//! Shared helpers for the integration tests: one private cluster per test binary, fresh
//! databases per test, and a log capture for asserting what an operator would read.
#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use pgvigil_cluster::PrivateCluster;

pub mod exposure;
pub mod http;
pub mod pane;
pub mod prometheus;

/// The cluster shared by the tests of one binary. A test that cannot get PostgreSQL fails
/// loudly here; it never passes without a database.
pub fn cluster() -> &'static PrivateCluster {
    static CLUSTER: LazyLock<PrivateCluster> = LazyLock::new(|| {
        PrivateCluster::start_new().unwrap_or_else(|e| {
            panic!("these tests need PostgreSQL with pgvector (run scripts/setup-postgres.sh): {e}")
        })
    });
    &CLUSTER
}

/// A new empty database on the shared cluster; returns its URL.
pub fn fresh_database(cluster: &PrivateCluster, prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    cluster.create_database(&name).expect("create database");
    cluster.url(&name)
}

/// Everything logged on this thread while the guard lives (use current-thread runtimes so
/// spawned tasks log here too). One global subscriber routes events to the capture installed
/// on the emitting thread: per-thread default subscribers race with tracing's interest cache
/// when tests run in parallel.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CURRENT: std::cell::RefCell<Option<LogCapture>> = const { std::cell::RefCell::new(None) };
}

pub struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CURRENT.with(|c| {
            if let Some(capture) = c.borrow().as_ref() {
                capture.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    pub fn install() -> (Self, CaptureGuard) {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(|| ThreadWriter)
                .init();
        });
        let capture = Self::default();
        CURRENT.with(|c| *c.borrow_mut() = Some(capture.clone()));
        (capture, CaptureGuard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    pub fn lines_containing(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

/// A fresh database with the reference migrations applied by sqlx's own migrator.
pub async fn migrated_database(cluster: &PrivateCluster, prefix: &str) -> String {
    let url = fresh_database(cluster, prefix);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    let migrator = sqlx::migrate::Migrator::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"),
    )
    .await
    .expect("read migrations/");
    migrator.run(&mut conn).await.expect("apply migrations");
    url
}

/// Runs SQL (several statements allowed) on `url`.
pub async fn exec(url: &str, sql: &str) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Copies migrations/ into a temporary directory tests can edit.
pub fn migrations_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

pub fn migrations_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

/// A read-only pgvigil configuration for `url`, as the binary builds it.
pub fn prod_config(url: &str) -> pgvigil::PoolConfig {
    pgvigil::PoolConfig::builder(url)
        .min_connections(1)
        .build()
        .expect("config")
        .read_only()
}

/// A read-only session on `url`, as pgvigil opens it on production.
pub async fn prod_connection(url: &str) -> pgvigil::session::ProductionSession {
    pgvigil::session::ProductionSession::connect(&prod_config(url))
        .await
        .expect("connect")
}

/// A cache directory shared by the tests of one binary, so the expected schema of the
/// reference migrations is built on a dev database once, not per test.
pub fn shared_cache() -> std::path::PathBuf {
    static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());
    DIR.path().to_path_buf()
}

/// Everything about a database that pgvigil must never change: its schema (pg_dump, with the
/// random `\restrict` lines of newer pg_dump left out), the ledger, the row count of every
/// table, and server-wide state (roles and memberships, pg_file_settings).
#[derive(Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub schema: String,
    pub ledger: String,
    pub row_counts: String,
    pub roles: String,
    pub file_settings: String,
}

pub fn fingerprint(cluster: &PrivateCluster, url: &str) -> Fingerprint {
    let db = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let out = std::process::Command::new(cluster.bindir().join("pg_dump"))
        .args(["--schema-only", "-h"])
        .arg(cluster.dir())
        .args([
            "-p",
            &cluster.port().to_string(),
            "-U",
            "postgres",
            "-d",
            &db,
        ])
        .env("PGPASSWORD", cluster.password())
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let schema = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n");
    let ledger = cluster
        .psql(
            &db,
            "SELECT coalesce(string_agg(format('%s %s %s %s', version, success, encode(checksum, 'hex'), installed_on), E'\\n' ORDER BY version), 'none')
               FROM _sqlx_migrations",
        )
        .unwrap_or_else(|_| "no ledger".into());
    // Row counts of every table, by a function so one statement covers any schema.
    let row_counts = cluster
        .psql(
            &db,
            "SELECT coalesce(string_agg(format('%s.%s %s', schemaname, relname,
                    (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, relname), false, true, '')))[1]::text),
                    E'\\n' ORDER BY schemaname, relname), '')
               FROM pg_stat_user_tables",
        )
        .unwrap();
    let roles = cluster
        .psql(
            "postgres",
            "SELECT string_agg(format('%s super=%s login=%s createrole=%s createdb=%s members=%s', r.rolname, r.rolsuper, r.rolcanlogin, r.rolcreaterole, r.rolcreatedb,
                    (SELECT string_agg(m.rolname, ',' ORDER BY m.rolname) FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member WHERE a.roleid = r.oid)),
                    E'\\n' ORDER BY r.rolname) FROM pg_roles r",
        )
        .unwrap();
    let file_settings = cluster
        .psql(
            "postgres",
            "SELECT coalesce(string_agg(format('%s:%s %s=%s', sourcefile, sourceline, name, setting), E'\\n' ORDER BY sourcefile, sourceline), '') FROM pg_file_settings",
        )
        .unwrap();
    Fingerprint {
        schema,
        ledger,
        row_counts,
        roles,
        file_settings,
    }
}

/// The private clusters (by directory) that the process `pid` made: their owner file names it.
pub fn clusters_of(pid: u32) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pgvigil-pg-"))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("pgvigil-owner"))
                .is_ok_and(|s| s.split_whitespace().next() == Some(&pid.to_string()))
        })
        .map(|e| e.path())
        .collect()
}

/// The dev database the tests use: a private cluster per use, as the binary does by default.
pub fn dev() -> Option<pgvigil::dev::DevSource> {
    Some(pgvigil_cli::dev_private::private())
}

/// Dry-run options with the private dev database.
pub fn dry_run_options() -> pgvigil::window::DryRunOptions {
    pgvigil::window::DryRunOptions {
        dev: dev(),
        ..Default::default()
    }
}
