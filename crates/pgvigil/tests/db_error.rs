//! Where a driver error becomes words, against a real private PostgreSQL: a wrong password, an
//! unknown database, a refused connection and a statement timeout each become the expected
//! kind and words, and the password (with characters a URL must encode, in the user part or in
//! `?password=`) appears in no printing of the error or of any source in its chain.

use std::error::Error;
use std::sync::OnceLock;
use std::time::Duration;

use pgvigil::config::Jitter;
use pgvigil::pool::{ConnectError, Connector};
use pgvigil::{DbError, FailureKind, PoolConfig};
use pgvigil_cluster::PrivateCluster;

/// The role's password: `@ / : ? # % & =` and a space, all of which a URL must encode.
const PASSWORD: &str = "p@ss/w:rd?#%&= x";
const WRONG: &str = "Wr0ng p@ss/w:rd?#%&=";

fn cluster() -> &'static PrivateCluster {
    static CLUSTER: OnceLock<PrivateCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster =
            PrivateCluster::start_new().expect("a private cluster (scripts/setup-postgres.sh)");
        cluster
            .psql(
                "postgres",
                &format!("CREATE ROLE odd LOGIN PASSWORD '{PASSWORD}'"),
            )
            .expect("create the role");
        cluster
    })
}

/// `s` percent-encoded for any part of a URL.
fn encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn user_url(password: &str, port: u16, database: &str) -> String {
    format!(
        "postgres://odd:{}@127.0.0.1:{port}/{database}",
        encoded(password)
    )
}

fn query_url(password: &str, port: u16, database: &str) -> String {
    format!(
        "postgres://odd@127.0.0.1:{port}/{database}?password={}",
        encoded(password)
    )
}

fn config(url: &str) -> PoolConfig {
    PoolConfig::builder(url)
        .jitter(Jitter::None)
        .max_retries(Some(0))
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("a valid configuration")
}

/// Every way the error can be printed: Display, Debug, the alternate forms (`{:#}`, what
/// anyhow and color-eyre use for a one-line report), and each source in the chain likewise.
fn printings(err: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = Some(err);
    let mut depth = 0;
    while let Some(e) = next {
        out.extend([
            e.to_string(),
            format!("{e:?}"),
            format!("{e:#}"),
            format!("{e:#?}"),
        ]);
        next = e.source();
        depth += 1;
    }
    assert!(depth >= 2, "the error keeps its source: {out:?}");
    out
}

fn assert_no_secret(err: &(dyn Error + 'static), secrets: &[&str]) {
    for text in printings(err) {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} shown in: {text}");
            assert!(
                !text.contains(&encoded(secret)),
                "{secret:?} (encoded) shown in: {text}"
            );
        }
    }
}

async fn connect_error(url: &str) -> ConnectError {
    Connector::new(config(url))
        .connect()
        .await
        .expect_err("the connection must fail")
}

#[tokio::test]
async fn a_wrong_password_is_fatal_authentication_without_the_password() {
    let port = cluster().port();
    for url in [
        user_url(WRONG, port, "postgres"),
        query_url(WRONG, port, "postgres"),
    ] {
        let err = connect_error(&url).await;
        assert!(matches!(err, ConnectError::Fatal { .. }), "{err}");
        assert_eq!(err.kind(), FailureKind::Authentication, "{err}");
        assert_eq!(err.attempts(), 1, "authentication is not retried");
        let failure = err.failure();
        assert!(!failure.is_retryable());
        assert_eq!(failure.sqlstate(), Some("28P01"));
        assert_eq!(
            failure.words(),
            "password authentication failed for user \"odd\""
        );
        let shown = err.to_string();
        assert!(shown.contains("password authentication failed"), "{shown}");
        assert!(shown.contains("check the user and password"), "{shown}");
        assert_no_secret(&err, &[WRONG, PASSWORD]);
    }
}

#[tokio::test]
async fn an_unknown_database_is_fatal_database_missing() {
    let port = cluster().port();
    for url in [
        user_url(PASSWORD, port, "no_such_db"),
        query_url(PASSWORD, port, "no_such_db"),
    ] {
        let err = connect_error(&url).await;
        assert_eq!(err.kind(), FailureKind::DatabaseMissing, "{err}");
        assert_eq!(err.attempts(), 1);
        assert_eq!(err.failure().sqlstate(), Some("3D000"));
        assert_eq!(
            err.failure().words(),
            "database \"no_such_db\" does not exist"
        );
        assert!(
            err.to_string().contains("psql's \\l lists the databases"),
            "{err}"
        );
        assert_no_secret(&err, &[PASSWORD]);
    }
}

#[tokio::test]
async fn a_refused_connection_is_retryable_io() {
    // A port nobody listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        user_url(PASSWORD, port, "postgres"),
        query_url(PASSWORD, port, "postgres"),
    ] {
        let err = connect_error(&url).await;
        assert!(matches!(err, ConnectError::Exhausted { .. }), "{err}");
        assert_eq!(err.kind(), FailureKind::Io, "{err}");
        assert!(err.failure().is_retryable());
        assert_eq!(err.failure().sqlstate(), None);
        assert!(
            err.failure().words().contains("Connection refused"),
            "{}",
            err.failure()
        );
        assert!(err.to_string().contains("gave up connecting"), "{err}");
        assert_no_secret(&err, &[PASSWORD]);
    }
}

#[tokio::test]
async fn a_statement_timeout_is_a_fatal_query_failure_in_the_servers_words() {
    let port = cluster().port();
    for url in [
        user_url(PASSWORD, port, "postgres"),
        query_url(PASSWORD, port, "postgres"),
    ] {
        let config = config(&url);
        let pool = Connector::new(config.clone())
            .connect()
            .await
            .expect("the role's password in the URL logs in");
        let mut conn = pool.acquire_labeled("timeout").await.unwrap();
        sqlx::query("SET statement_timeout = '50ms'")
            .execute(&mut *conn)
            .await
            .unwrap();
        let e = sqlx::query("SELECT pg_sleep(5)")
            .execute(&mut *conn)
            .await
            .expect_err("the statement times out");
        let err = DbError::new(e, &config.database_url);
        assert_eq!(err.kind(), FailureKind::Query);
        assert!(!err.is_retryable());
        assert_eq!(err.sqlstate(), Some("57014"));
        assert_eq!(
            err.to_string(),
            "canceling statement due to statement timeout"
        );
        // The source is the driver's own text (scrubbed), which says where it came from.
        let source = err.source().expect("the driver error").to_string();
        assert!(source.contains("error returned from database"), "{source}");
        assert!(matches!(err.driver(), Some(sqlx::Error::Database(_))));
        assert_no_secret(&err, &[PASSWORD]);
        drop(conn);
        pool.close().await;
    }
}
