//! `crates/pgvigil/examples/embed.rs`, the program an application would write, against a
//! private cluster: it builds its pool from the environment and prints `PoolStats` as JSON.

use std::process::Command;

#[test]
fn the_embedding_example_prints_pool_stats() {
    let cluster = pgvigil_cluster::PrivateCluster::start_new()
        .expect("PostgreSQL with pgvector (scripts/setup-postgres.sh)");
    // Built by `make test` (`cargo build --workspace --examples`), beside this test's own
    // binary.
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("embed"))
        .unwrap();
    assert!(
        example.exists(),
        "{} is missing: run `cargo build --workspace --examples` (make test does)",
        example.display()
    );
    let out = Command::new(&example)
        .env("DATABASE_URL", cluster.url("postgres"))
        .env("POOL_MIN_CONNECTIONS", "1")
        .current_dir(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stats["acquisitions_total"], 1);
    assert_eq!(stats["max"], 100);
    assert!(!stdout.contains(cluster.password()));
}
