//! TLS against a private cluster with `ssl = on` and a pg_hba.conf that accepts only `hostssl`,
//! with certificates made here by openssl: a certificate pgvigil cannot trust is a fatal error
//! at once, with what to fix (not retried as an I/O error), and a client without TLS is told
//! that the server requires it and which sslmode to use.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use pgvigil_cluster::{ClusterOptions, PrivateCluster};

/// Certificates for the test: a CA, a server certificate for "localhost" and 127.0.0.1 signed
/// by it, a second CA that signed nothing, and a certificate for another name.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ],
    );
}

fn make_leaf(dir: &Path, name: &str, san: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

fn pki() -> &'static Pki {
    static PKI: LazyLock<Pki> = LazyLock::new(|| {
        let dir = tempfile::tempdir().unwrap();
        make_ca(dir.path(), "ca");
        make_ca(dir.path(), "other-ca");
        make_leaf(dir.path(), "server", "DNS:localhost,IP:127.0.0.1");
        make_leaf(dir.path(), "elsewhere", "DNS:db.elsewhere.example");
        Pki { dir }
    });
    &PKI
}

/// A cluster serving `cert`/`key` with TLS only.
fn tls_cluster(cert: &str, key: &str) -> PrivateCluster {
    let cluster = PrivateCluster::init(ClusterOptions {
        hba: Some(
            "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n".into(),
        ),
        ..ClusterOptions::default()
    })
    .expect("private cluster");
    // The server reads its key and certificate from its data directory, owned by it.
    for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
        let dest = cluster.data_dir().join(to);
        std::fs::copy(pki().path(from), &dest).unwrap();
        let data_owner = std::fs::metadata(cluster.data_dir()).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        nix::unistd::chown(
            &dest,
            Some(nix::unistd::Uid::from_raw(data_owner.uid())),
            Some(nix::unistd::Gid::from_raw(data_owner.gid())),
        )
        .unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let conf = cluster.data_dir().join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    std::fs::write(&conf, text).unwrap();
    cluster.start().expect("start with TLS");
    cluster
}

fn good() -> &'static PrivateCluster {
    static C: LazyLock<PrivateCluster> = LazyLock::new(|| tls_cluster("server.crt", "server.key"));
    &C
}

/// `pgvigil ping` with retries on: a fatal error must stop at once.
fn ping(url: &str) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .arg("ping")
        .env("DATABASE_URL", url)
        .env("RETRY_MAX_RETRIES", "5")
        .env("RETRY_INITIAL_DELAY", "2s")
        // No jitter: a single retry would take 2 s, so "under 2 s" proves there was none.
        .env("RETRY_JITTER", "none")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        started.elapsed(),
    )
}

fn url(cluster: &PrivateCluster, host: &str, params: &str) -> String {
    format!(
        "postgres://postgres:{}@{host}:{}/postgres?{params}",
        cluster.password(),
        cluster.port()
    )
}

/// `ping` with `sslmode=verify-full` against `cluster`, trusting the CA in `ca`.
fn ping_verified(cluster: &PrivateCluster, ca: &str) -> (Option<i32>, String, Duration) {
    ping(&url(
        cluster,
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            pki().path(ca).display()
        ),
    ))
}

/// A failure no retry cures: UNKNOWN at once (a retry would take 2 s), with `hint`, and
/// without the password.
#[track_caller]
fn assert_fatal_at_once(cluster: &PrivateCluster, ca: &str, hint: &str) {
    let (code, shown, took) = ping_verified(cluster, ca);
    assert_eq!(code, Some(3), "{shown}");
    assert!(took < Duration::from_secs(2), "retried: {took:?} {shown}");
    assert!(shown.contains("not retried"), "{shown}");
    assert!(shown.contains(hint), "{shown}");
    assert!(!shown.contains(cluster.password()), "{shown}");
}

#[test]
fn verified_tls_connects() {
    let (code, shown, _) = ping_verified(good(), "ca.crt");
    assert_eq!(code, Some(0), "{shown}");
}

#[test]
fn an_unknown_issuer_is_fatal_at_once_and_says_what_to_fix() {
    assert_fatal_at_once(good(), "other-ca.crt", "not signed by a CA in sslrootcert");
}

#[test]
fn a_name_mismatch_is_fatal_at_once_and_says_what_to_fix() {
    let c = tls_cluster("elsewhere.crt", "elsewhere.key");
    assert_fatal_at_once(&c, "ca.crt", "does not name the host");
}

#[test]
fn a_ca_used_as_the_server_certificate_is_fatal_at_once() {
    let c = tls_cluster("ca.crt", "ca.key");
    assert_fatal_at_once(&c, "ca.crt", "CA certificate as its own");
}

#[test]
fn without_tls_the_error_says_the_server_requires_it() {
    let c = good();
    let (code, shown, took) = ping(&url(c, "127.0.0.1", "sslmode=disable"));
    assert_eq!(code, Some(3), "{shown}");
    assert!(took < Duration::from_secs(2), "retried: {took:?} {shown}");
    assert!(
        shown.contains("the server accepts only TLS connections"),
        "{shown}"
    );
    assert!(shown.contains("sslmode=require"), "{shown}");
}
