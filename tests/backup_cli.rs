//! `pgvigil backup create` and `pgvigil backup verify` as a user runs them: the real binary on a
//! production database of the demo's shape (the shared cluster) and a second private cluster
//! as DEV_DATABASE_URL. The manifest's path is create's last line; verify exits 0 when every figure
//! matches, 2 naming the file when one byte of the dump is flipped, 3 naming the file and what
//! it expected when MANIFEST is not a manifest; SIGINT while restoring leaves no scratch
//! database; the password is in no output and not in the manifest.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgvigil_cluster::PrivateCluster;
use support::{cluster, fresh_database};

/// The DEV_DATABASE_URL server backups are restored on.
fn dev() -> &'static PrivateCluster {
    static DEV: LazyLock<PrivateCluster> =
        LazyLock::new(|| PrivateCluster::start_new().expect("a second private PostgreSQL"));
    &DEV
}

/// One test at a time: they count scratch databases on the shared dev server.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The demo's shape: pgvector, 2,000 documents with 3072-dimension embeddings, an HNSW index
/// on their halfvec expression, the sqlx ledger.
const SCHEMA: &str = "
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TYPE doc_type AS ENUM ('guide', 'reference', 'tutorial', 'api', 'changelog');
CREATE TABLE document_sources (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), doc_type doc_type NOT NULL,
    source_name text NOT NULL, UNIQUE (doc_type, source_name));
CREATE TABLE documents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), doc_type doc_type NOT NULL,
    source_name text NOT NULL, doc_path text NOT NULL, content text NOT NULL,
    embedding vector(3072), created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (doc_type, source_name, doc_path),
    FOREIGN KEY (doc_type, source_name) REFERENCES document_sources (doc_type, source_name));
CREATE INDEX documents_embedding_hnsw_idx ON documents USING hnsw ((embedding::halfvec(3072)) halfvec_cosine_ops);
CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
    installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
    checksum bytea NOT NULL, execution_time bigint NOT NULL);
INSERT INTO _sqlx_migrations VALUES (20261101000001, 'pgvector and doc type', now(), true, sha384('a'), 1),
    (20261101000003, 'documents', now(), true, sha384('b'), 2);
INSERT INTO document_sources (doc_type, source_name)
    SELECT t, 'source-' || s FROM unnest(enum_range(NULL::doc_type)) t, generate_series(0, 7) s;
INSERT INTO documents (doc_type, source_name, doc_path, content, embedding)
    SELECT (enum_range(NULL::doc_type))[1 + i % 5], 'source-' || (i % 8), 'docs/' || i || '.md',
           'Document ' || i,
           (SELECT array_agg(random()::real) FROM generate_series(1, 3072) WHERE i >= 0)::vector(3072)
      FROM generate_series(0, 1999) i;
";

/// A production database of the demo's shape (its URL carries the cluster's password).
fn production() -> String {
    static URL: LazyLock<String> = LazyLock::new(|| {
        let url = fresh_database(cluster(), "backup_cli");
        let name = url.rsplit('/').next().unwrap().to_string();
        cluster()
            .psql_stdin(&name, SCHEMA)
            .expect("load the demo's shape");
        url
    });
    URL.clone()
}

fn pgvigil(state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgvigil"));
    cmd.args(args)
        .env("DATABASE_URL", production())
        .env("PGVIGIL_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .env("DEV_DATABASE_URL", dev().url("postgres"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(state: &Path, args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = pgvigil(state, args).output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert_no_password(&out);
    assert_no_password(&err);
    (status.code().expect("an exit code, not a signal"), out, err)
}

fn assert_no_password(text: &str) {
    for password in [cluster().password(), dev().password()] {
        assert!(!text.contains(password), "a password in:\n{text}");
    }
}

fn scratch_on_dev() -> u64 {
    dev()
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgvigil\\_scratch\\_%'",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `backup create --output DIR`; the manifest's path from its last line.
fn create(state: &Path, dir: &Path) -> PathBuf {
    let (code, out, err) = run(
        state,
        &[
            "backup",
            "create",
            "--output",
            dir.to_str().unwrap(),
            "--jobs",
            "2",
        ],
    );
    assert_eq!(code, 0, "create:\n{out}\n{err}");
    let last = out.lines().last().expect("create prints something");
    let manifest = dir.join("manifest.json");
    assert_eq!(
        Path::new(last),
        manifest,
        "the last line is the manifest's path:\n{out}"
    );
    assert!(
        out.contains("public.documents: 2000 rows, 8 key ranges, every row hashed"),
        "{out}"
    );
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert_no_password(&text);
    manifest
}

#[test]
fn create_then_verify_matches_and_a_flipped_byte_fails_naming_the_file() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b1");
    let manifest = create(state.path(), &dir);
    let m = manifest.to_str().unwrap();

    // Human report, exit 0, recorded for the apply gate.
    let (code, text, err) = run(state.path(), &["backup", "verify", m]);
    assert_eq!(code, 0, "verify:\n{text}\n{err}");
    assert!(text.contains(": every figure matches\n"), "{text}");
    assert!(
        text.contains(
            "public.documents: 2000 rows expected, 2000 restored; 8 ranges compared, 0 differ"
        ),
        "{text}"
    );
    let record_path = state.path().join("backup-verified.json");
    assert!(
        text.contains(&format!("recorded in {}", record_path.display())),
        "{text}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    assert_eq!(record["format"], "pgvigil.backup-verification/1");
    assert_eq!(record["outcome"], "match");
    assert_eq!(
        record["manifest"],
        std::fs::canonicalize(&manifest).unwrap().to_str().unwrap()
    );
    assert_eq!(scratch_on_dev(), 0, "the restored copy is dropped");

    // JSON, exit 0.
    let (code, json, err) = run(state.path(), &["backup", "verify", m, "--json"]);
    assert_eq!(code, 0, "verify --json:\n{json}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["outcome"], "match");
    assert_eq!(report["restored"], true);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);
    let docs = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.documents")
        .expect("documents in the report");
    assert_eq!(docs["rows_found"], 2000);
    assert_eq!(docs["ranges_checked"], 8);

    // Production's own server as the restore target: refused before anything is restored.
    let (code, text, err) = run(
        state.path(),
        &[
            "backup",
            "verify",
            m,
            "--restore-url",
            &cluster().url("postgres"),
        ],
    );
    assert_eq!(code, 3, "{text}\n{err}");
    assert!(
        err.contains("--restore-url (postgres://postgres:***@")
            && err.contains("names the same PostgreSQL server as DATABASE_URL"),
        "{err}"
    );
    assert_eq!(scratch_on_dev(), 0);

    // One flipped byte in the biggest data file: exit 2, the file named, nothing restored.
    let data = std::fs::read_dir(dir.join("dump"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let name = data.file_name().unwrap().to_str().unwrap().to_string();
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&data, &bytes).unwrap();
    let (code, text, err) = run(state.path(), &["backup", "verify", m]);
    assert_eq!(code, 2, "verify of a flipped byte:\n{text}\n{err}");
    assert!(text.contains(": MISMATCH\n"), "{text}");
    assert!(
        text.contains(&format!("  FAIL {name}: SHA-256 ")),
        "the file is named:\n{text}"
    );
    assert!(
        text.contains("take a new one with `pgvigil backup create`"),
        "{text}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    assert_eq!(record["outcome"], "mismatch");
    assert_eq!(scratch_on_dev(), 0);
}

#[test]
fn a_manifest_path_that_is_not_a_manifest_exits_3_naming_it() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let absent = dir.path().join("no-such").join("manifest.json");
    let (code, out, err) = run(
        state.path(),
        &["backup", "verify", absent.to_str().unwrap()],
    );
    assert_eq!(code, 3, "{out}\n{err}");
    assert_eq!(out, "");
    assert!(err.contains(&absent.display().to_string()), "{err}");
    assert!(
        err.contains("expected the manifest.json that `pgvigil backup create` wrote (format pgvigil.backup/1)"),
        "{err}"
    );

    let other = dir.path().join("other.json");
    std::fs::write(&other, "{\"format\": \"something else\"}").unwrap();
    let (code, _, err) = run(state.path(), &["backup", "verify", other.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&other.display().to_string()), "{err}");
    assert!(
        err.contains("expected the manifest.json that `pgvigil backup create` wrote (format pgvigil.backup/1)"),
        "{err}"
    );
}

#[test]
fn sigint_while_restoring_leaves_no_scratch_database() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let manifest = create(state.path(), &out.path().join("b2"));
    let mut child = pgvigil(
        state.path(),
        &[
            "backup",
            "verify",
            manifest.to_str().unwrap(),
            "--jobs",
            "1",
        ],
    )
    .spawn()
    .unwrap();
    // The restore has begun when its scratch database exists.
    let started = Instant::now();
    while scratch_on_dev() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no scratch database appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "verify ended before restoring"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_no_password(&err);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert_eq!(scratch_on_dev(), 0, "the scratch database is dropped");
    assert!(
        !state.path().join("backup-verified.json").exists(),
        "an interrupted verification records nothing"
    );
}

/// A real PostgreSQL of the cluster's version that does not have pgvector: its binaries,
/// share and library directories copied (PostgreSQL finds the latter two relative to its
/// binaries) without vector's control, SQL and library files.
struct WithoutPgvector {
    root: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    password: String,
    as_postgres: bool,
}

impl WithoutPgvector {
    fn start() -> WithoutPgvector {
        let bindir = cluster().bindir().to_path_buf();
        let pg_config = |what: &str| {
            let out = Command::new(bindir.join("pg_config"))
                .arg(what)
                .output()
                .expect("pg_config");
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
        };
        let (share, pkglib) = (pg_config("--sharedir"), pg_config("--pkglibdir"));
        let root = tempfile::tempdir().unwrap();
        let mirror = |p: &Path| root.path().join(p.strip_prefix("/").unwrap());
        for dir in [&bindir, &share, &pkglib] {
            std::fs::create_dir_all(mirror(dir).parent().unwrap()).unwrap();
            let ok = Command::new("cp")
                .arg("-a")
                .arg(dir)
                .arg(mirror(dir))
                .status()
                .unwrap()
                .success();
            assert!(ok, "copy {}", dir.display());
        }
        for entry in std::fs::read_dir(mirror(&share).join("extension")).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vector")
            {
                std::fs::remove_file(path).unwrap();
            }
        }
        let _ = std::fs::remove_file(mirror(&pkglib).join("vector.so"));
        let as_postgres = nix::unistd::Uid::effective().is_root();
        let password = format!("nv-{:016x}", rand::random::<u64>());
        std::fs::write(root.path().join("pw"), &password).unwrap();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(root.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = WithoutPgvector {
            bindir: mirror(&bindir),
            root,
            port,
            password,
            as_postgres,
        };
        let data = server.root.path().join("data");
        server.run(&[
            "initdb",
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            &format!("--pwfile={}", server.root.path().join("pw").display()),
        ]);
        server.run(&[
            "pg_ctl",
            "-D",
            data.to_str().unwrap(),
            "-o",
            &format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                server.root.path().display()
            ),
            "-l",
            server.root.path().join("log").to_str().unwrap(),
            "-w",
            "start",
        ]);
        server
    }

    fn run(&self, args: &[&str]) {
        let program = self.bindir.join(args[0]);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        let out = cmd.args(&args[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bindir.join("psql"))
            .args(["-Atc", sql, &self.url()])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for WithoutPgvector {
    fn drop(&mut self) {
        let data = self.root.path().join("data");
        let _ = Command::new(if self.as_postgres { "runuser" } else { "env" })
            .args(if self.as_postgres {
                vec!["-u", "postgres", "--"]
            } else {
                vec![]
            })
            .arg(self.bindir.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn a_restore_target_without_pgvector_is_a_finding_with_the_fix() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let target = WithoutPgvector::start();
    assert_eq!(
        target.psql("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"),
        "0",
        "the target really lacks pgvector"
    );
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let manifest = create(state.path(), &out.path().join("b3"));
    let (code, json, err) = run(
        state.path(),
        &[
            "backup",
            "verify",
            manifest.to_str().unwrap(),
            "--restore-url",
            &target.url(),
            "--json",
        ],
    );
    assert!(!json.contains(&target.password) && !err.contains(&target.password));
    assert_eq!(code, 2, "{json}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["outcome"], "mismatch");
    assert_eq!(report["restored"], false);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{json}");
    assert_eq!(findings[0]["kind"], "restore");
    let detail = findings[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("does not have extension vector (the backup has version ")
            && detail.ends_with("); nothing was restored"),
        "{detail}"
    );
    let fix = findings[0]["fix"].as_str().unwrap();
    assert!(
        fix.starts_with("install pgvector ")
            && fix.contains("apt-get install postgresql-15-pgvector")
            && fix.contains("or pass --restore-url of a server that has it"),
        "{fix}"
    );
    assert_eq!(
        target.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'pgvigil%'"),
        "0",
        "nothing created on the target"
    );
}

#[test]
fn a_restore_url_on_productions_server_is_refused_before_anything_is_restored() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = create(state.path(), &dir.path().join("b"));
    // Another database of production's own server: the same server, refused.
    let (code, out, err) = run(
        state.path(),
        &[
            "backup",
            "verify",
            manifest.to_str().unwrap(),
            "--restore-url",
            &cluster().url("postgres"),
        ],
    );
    assert_ne!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("--restore-url")
            && err.contains("a backup is never restored on production's server"),
        "{err}"
    );
    let scratch = cluster()
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgvigil\\_scratch\\_%'",
        )
        .unwrap();
    assert_eq!(
        scratch.trim(),
        "0",
        "a scratch database on production's server"
    );
    assert!(!state.path().join("backup-verified.json").exists());
}
