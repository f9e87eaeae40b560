//! Shared helpers for the application's integration tests: one private cluster per test binary
//! and fresh databases per test (from pgvigil-test-support, shared with the library's and the
//! cluster's tests), migrated databases, read-only sessions as pgvigil opens them, and
//! fingerprints of what pgvigil must never change.
#![allow(dead_code)]

use std::sync::LazyLock;

use pgvigil_cluster::PrivateCluster;

// Not every test binary uses each of them.
#[allow(unused_imports)]
pub use pgvigil_test_support::{cluster, exposure, fresh_database};

pub mod http;
pub mod pane;
pub mod prometheus;
pub mod screen;

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

#[path = "../../crates/pgvigil/tests/support/production.rs"]
mod production;
#[allow(unused_imports)]
pub use production::{prod_config, prod_connection};

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
