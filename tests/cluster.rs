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

/// With `isolate_network` (we are root here), the server has no network route beyond its own
/// socket: dblink, run as its superuser with the other server's password, reaches neither
/// that server's TCP port nor its unix socket, while our own socket answers.
#[test]
fn an_isolated_cluster_reaches_no_other_server() {
    let other = PrivateCluster::start_new().unwrap();
    let isolated = PrivateCluster::start_with(ClusterOptions {
        isolate_network: true,
        ..ClusterOptions::default()
    })
    .unwrap();
    assert_eq!(
        isolated.network_isolation(),
        pgvigil_cluster::Isolation::Isolated
    );
    assert_eq!(isolated.psql("postgres", "SELECT 1").unwrap(), "1");
    // No TCP listener of its own.
    assert!(std::net::TcpStream::connect(("127.0.0.1", isolated.port())).is_err());
    isolated
        .psql("postgres", "CREATE EXTENSION dblink")
        .unwrap();
    for target in [
        format!("host=127.0.0.1 port={}", other.port()),
        format!("host={} port={}", other.dir().display(), other.port()),
    ] {
        let err = isolated
            .psql(
                "postgres",
                &format!(
                    "SELECT dblink_exec('{target} dbname=postgres user=postgres password={}', 'CREATE TABLE pwned (a int)')",
                    other.password()
                ),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("could not establish connection"),
            "{target}: {err}"
        );
    }
    assert_eq!(
        other
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_class WHERE relname = 'pwned'"
            )
            .unwrap(),
        "0"
    );
    // The same dblink from an ordinary server does reach it: the test can fail.
    let third = PrivateCluster::start_new().unwrap();
    third.psql("postgres", "CREATE EXTENSION dblink").unwrap();
    third
        .psql(
            "postgres",
            &format!(
                "SELECT dblink_exec('host=127.0.0.1 port={} dbname=postgres user=postgres password={}', 'CREATE TABLE reached (a int)')",
                other.port(),
                other.password()
            ),
        )
        .unwrap();
    assert_eq!(
        other
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_class WHERE relname = 'reached'"
            )
            .unwrap(),
        "1"
    );
    // Restarted, it is isolated again; dropped, it leaves nothing.
    isolated.restart().unwrap();
    assert_eq!(
        isolated.network_isolation(),
        pgvigil_cluster::Isolation::Isolated
    );
    let dir = isolated.dir().to_path_buf();
    drop(isolated);
    assert!(!dir.exists());
}
