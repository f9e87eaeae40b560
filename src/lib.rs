//! pgvigil: live PostgreSQL pool and schema status for on-call engineers.
//!
//! The library is what an application embeds: a pool configured from the environment
//! ([`config`]), connected with retries and instrumented ([`pool`]), and private throwaway
//! PostgreSQL clusters for tests and demos ([`cluster`]), the checks behind `pgvigil check`
//! ([`checks`]) and the migration dry-run ([`safety`]).

pub mod checks;
pub mod cleanup;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod dev;
pub mod files;
pub mod pool;
pub mod report;
pub mod safety;
pub mod sanitize;
pub mod server;
pub mod tui;

pub use config::{ConfigError, DatabaseUrl, PoolConfig};
pub use pool::{InstrumentedPool, PoolStats};
