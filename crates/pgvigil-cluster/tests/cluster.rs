//! The private cluster itself: it starts with pgvector, stops, restarts, pauses and resumes,
//! and leaves nothing behind.

use std::time::Duration;

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

#[test]
fn another_local_user_can_neither_read_a_private_cluster_nor_log_in_without_the_password() {
    use pgvigil_test_support::exposure::{
        cat_as_nobody, count_entries, is_auth_refusal, open_to_others, psql_as_nobody,
    };
    // Both the server's files and the files pgvigil-cluster writes (settings, pg_hba.conf,
    // initdb's and pg_ctl's output, the owner file, a standby's signal file).
    let cluster = PrivateCluster::start_with(ClusterOptions {
        hba: Some("local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n".into()),
        ..ClusterOptions::default().setting("work_mem", "8MB")
    })
    .unwrap();
    cluster.make_standby().unwrap();
    let dir = cluster.dir();
    for written in [
        "pgvigil-owner",
        "initdb.out",
        "pg_ctl.out",
        "server.log",
        "data/standby.signal",
    ] {
        assert!(dir.join(written).exists(), "{written}");
    }
    assert!(
        !dir.join("pwfile").exists(),
        "initdb's password file is removed"
    );
    assert!(count_entries(dir) > 100);
    assert_eq!(open_to_others(dir), Vec::<String>::new());
    let conf = cat_as_nobody(&dir.join("data/postgresql.conf"));
    assert!(
        !conf.success && conf.stderr.contains("Permission denied"),
        "{conf:?}"
    );

    let bin = cluster.bindir();
    let port = cluster.port();
    // The legitimate login works for nobody over TCP: the refusals below are authentication.
    let ok = psql_as_nobody(
        bin,
        "127.0.0.1",
        port,
        "postgres",
        "postgres",
        Some(cluster.password()),
        "SELECT 1",
    );
    assert!(ok.success, "{ok:?}");
    assert_eq!(ok.stdout.trim(), "1");
    for password in [None, Some("wrong-password")] {
        let refused = psql_as_nobody(
            bin,
            "127.0.0.1",
            port,
            "postgres",
            "postgres",
            password,
            "SELECT 1",
        );
        assert!(
            !refused.success && is_auth_refusal(&refused.stderr),
            "{password:?}: {refused:?}"
        );
    }
    // The socket is out of reach even with the password: its directory and the socket itself
    // are the server account's alone.
    let socket = psql_as_nobody(
        bin,
        dir.to_str().unwrap(),
        port,
        "postgres",
        "postgres",
        Some(cluster.password()),
        "SELECT 1",
    );
    assert!(
        !socket.success && socket.stderr.contains("Permission denied"),
        "{socket:?}"
    );
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

#[test]
fn a_lock_holder_holds_its_lock_until_dropped_and_a_queued_request_waits_behind_it() {
    let cluster = pgvigil_test_support::cluster();
    let db = "postgres";
    cluster.psql(db, "CREATE TABLE locked (x int)").unwrap();
    let locks = || {
        cluster
            .psql(
                db,
                "SELECT string_agg(a.application_name || ' ' || l.mode || ' ' || l.granted, ', ' \
                 ORDER BY l.granted DESC) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                 WHERE l.relation = 'locked'::regclass",
            )
            .unwrap()
    };
    let holder = cluster
        .lock(db, "locked", "ACCESS EXCLUSIVE")
        .application_name("docs-batch")
        .hold()
        .unwrap();
    assert!(holder.is_granted());
    assert_eq!(locks(), "docs-batch AccessExclusiveLock true");
    let holder_pid: i32 = cluster
        .psql(
            db,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'docs-batch'",
        )
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(holder.pid(), holder_pid);

    // A request behind it waits, and is granted once the holder is gone.
    let mut reader = cluster.lock(db, "locked", "ACCESS SHARE").send().unwrap();
    assert!(reader.wait_granted(Duration::from_millis(300)).is_err());
    assert!(!reader.is_granted());
    assert_eq!(
        locks(),
        "docs-batch AccessExclusiveLock true, lock-holder AccessShareLock false"
    );
    drop(holder);
    reader.wait_granted(Duration::from_secs(10)).unwrap();
    assert_eq!(locks(), "lock-holder AccessShareLock true");
    drop(reader);
    assert_eq!(locks(), "");

    // A queued request dropped before its grant leaves nothing behind either.
    let holder = cluster.hold_lock(db, "locked", "SHARE").unwrap();
    let queued = cluster.lock(db, "locked", "EXCLUSIVE").send().unwrap();
    drop(queued);
    drop(holder);
    assert_eq!(locks(), "");

    // What cannot be a lock is refused before anything is sent; a missing table is the
    // server's error.
    let err = cluster
        .hold_lock(db, "locked", "EXCLUSIVE MODE; DROP TABLE locked; --")
        .unwrap_err();
    assert!(err.to_string().contains("is not a lock mode"), "{err}");
    let err = cluster
        .hold_lock(db, "no_such_table", "ACCESS EXCLUSIVE")
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(
        cluster.psql(db, "SELECT count(*) FROM locked").unwrap(),
        "0"
    );
}
