//! The private cluster itself: it starts with pgvector, stops, restarts, pauses and resumes,
//! and leaves nothing behind.

mod support;

use pgvigil_cluster::{ClusterOptions, PrivateCluster};

#[test]
fn cluster_lifecycle_and_cleanup() {
    let cluster = PrivateCluster::start_new().expect("start a private cluster");
    assert!(cluster.is_running());
    assert_eq!(
        cluster.psql("postgres", "CREATE EXTENSION vector; SELECT extversion >= '0.7.0' FROM pg_extension WHERE extname = 'vector'").unwrap(),
        "t"
    );
    // The socket lives inside the cluster's directory.
    assert!(
        cluster
            .dir()
            .join(format!(".s.PGSQL.{}", cluster.port()))
            .exists()
    );

    cluster.stop().unwrap();
    assert!(!cluster.is_running());
    assert!(cluster.psql("postgres", "SELECT 1").is_err());
    cluster.start().unwrap();
    assert_eq!(cluster.psql("postgres", "SELECT 1").unwrap(), "1");
    cluster.restart().unwrap();
    assert_eq!(cluster.psql("postgres", "SELECT 1").unwrap(), "1");

    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    assert!(!dir.exists(), "{} should be removed on drop", dir.display());
}

#[test]
fn paused_cluster_drops_cleanly() {
    let cluster =
        PrivateCluster::start_with(ClusterOptions::default().setting("work_mem", "8MB")).unwrap();
    assert_eq!(cluster.psql("postgres", "SHOW work_mem").unwrap(), "8MB");
    cluster.pause().unwrap();
    cluster.resume().unwrap();
    assert_eq!(cluster.psql("postgres", "SELECT 2").unwrap(), "2");
    cluster.pause().unwrap();
    let dir = cluster.dir().to_path_buf();
    drop(cluster); // paused: drop must wake it before stopping it
    assert!(!dir.exists());
}
