//! What the tests of every pgvigil crate share: one private cluster per test binary, a fresh
//! database per test ([`cluster`], [`fresh_database`]), and what another local user can see of
//! what we start ([`exposure`]), a production database of the reference schema as an
//! application leaves it ([`reference_production`]). Each test directory's own `support` module adds what only
//! its tests need.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use pgvigil_cluster::PrivateCluster;

pub mod exposure;
mod production;

pub use production::{reference_migrations, reference_production};

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
