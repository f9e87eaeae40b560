//! pgvigil: live PostgreSQL pool and schema status for on-call engineers.
//!
//! The library is what an application embeds: a pool configured from the environment
//! ([`config`]), connected with retries and instrumented ([`pool`]), the checks behind
//! `pgvigil check` ([`checks`]), the maintenance-window steps, today the migration dry-run on a dev database ([`window`],
//! [`dev`]), other processes' pools (PgBouncer, application `/metrics`, a fleet, sizing: [`remote`])
//! and the live catalog reads ([`catalog`]), where the migrations stand ([`migrations`]).
//! Nothing here changes the database it watches: production is read through a
//! [`session::ProductionSession`] only, whose readers send nothing but read-only statements.
//! The dashboard and the commands live in the `pgvigil-cli` package; throwaway clusters in
//! `pgvigil-cluster`.
//!
//! A pool from the environment (`DATABASE_URL`, `POOL_*`, `RETRY_*`, a `.env` file), with the
//! documented defaults (min 5, max 100, 30 s timeouts), connected with retries:
//!
//! ```
//! # // A private cluster stands in for the application's database.
//! # let cluster = pgvigil_cluster::PrivateCluster::start_new().expect("scripts/setup-postgres.sh");
//! # unsafe { std::env::set_var("DATABASE_URL", cluster.url("postgres")) };
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use pgvigil::{ConfigSources, Connector, PoolConfig};
//!
//! let sources = ConfigSources::from_process([], None)?;
//! let config = PoolConfig::from_sources(&sources)?;
//! let pool = Connector::new(config).connect().await?;
//! let mut conn = pool.acquire_labeled("startup").await?;
//! sqlx::query("SELECT 1").execute(&mut *conn).await?;
//! drop(conn);
//! let stats = pool.stats(); // no database round trip
//! assert_eq!(stats.acquisitions_total, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

#![warn(missing_docs)]
// docs.rs documents every feature and labels what each needs (Cargo.toml's
// [package.metadata.docs.rs]).
#![cfg_attr(docsrs, feature(doc_cfg))]

// The areas an application reaches into, each with its own error type.
pub mod catalog;
pub mod checks;
pub mod cleanup;
pub mod config;
pub mod contain;
pub mod db_error;
pub mod dev;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod migrations;
pub mod pool;
pub mod remote;
pub mod sanitize;
pub mod session;
pub mod window;

// Implementation: bounded reads and private writes, the lint-only SQL scanner.
mod files;
mod sql_scan;

pub use checks::{CheckOptions, CheckReport, Finding, Status, run_checks};
pub use config::{ConfigError, ConfigSources, DatabaseUrl, PoolConfig, Target};
pub use db_error::{DbError, FailureKind};
pub use dev::{DevServer, DevSource};
pub use pool::{
    AcquireError, ConnectError, Connector, InstrumentedPool, LinkState, PoolStats, connect,
};
pub use window::{DryRunOptions, DryRunReport, dry_run};
