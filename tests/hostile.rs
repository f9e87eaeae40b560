//! Hostile migrations and inputs against a real "production" cluster. Each reproduces a way the
//! earlier design changed the database it was only meant to read (transaction control hidden
//! from the statement scanner, a second connection through dblink, server-wide statements in
//! dynamic SQL, server-side programs and files, a migration that lifts its own timeout) or
//! broke the terminal, and proves that now production is unchanged: its schema dump, ledger,
//! the row count of every table, its roles and pg_file_settings, before and after.
//!
//! The production cluster of this binary trusts local socket connections (as many hosts do for
//! the postgres OS user), which is what let dblink reach it; tests run one at a time so that
//! the server-wide parts of the fingerprint belong to the test that reads them.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use pgvigil_cluster::{ClusterOptions, PrivateCluster};
use support::{exec, fingerprint, migrations_copy};

fn production() -> &'static PrivateCluster {
    static CLUSTER: LazyLock<PrivateCluster> = LazyLock::new(|| {
        PrivateCluster::start_with(ClusterOptions {
            hba: Some("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n".into()),
            ..ClusterOptions::default()
        })
        .unwrap_or_else(|e| {
            panic!("these tests need PostgreSQL with pgvector (run scripts/setup-postgres.sh): {e}")
        })
    });
    &CLUSTER
}

/// One test at a time: roles and server settings are shared by the whole cluster.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A production database with the reference migrations and some rows.
async fn production_db(prefix: &str) -> String {
    let url = support::migrated_database(production(), prefix).await;
    exec(
        &url,
        "INSERT INTO document_sources (doc_type, source_name) VALUES ('guide', 'handbook'), ('api', 'ref');
         INSERT INTO documents (doc_type, source_name, doc_path, content, embedding)
         SELECT 'guide', 'handbook', 'p' || i, 'text', (SELECT array_agg(random())::vector(3072) FROM generate_series(1, 3072) WHERE i > 0)
         FROM generate_series(1, 5) i;",
    )
    .await;
    url
}

fn pgvigil(url: &str, state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("PGVIGIL_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .env_remove("DEV_DATABASE_URL")
        .output()
        .expect("run pgvigil")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `sql` as a pending migration after the reference ones; returns the directory.
fn with_pending(name: &str, sql: &str) -> tempfile::TempDir {
    let dir = migrations_copy();
    std::fs::write(dir.path().join(format!("20261201000000_{name}.sql")), sql).unwrap();
    dir
}

async fn dry_run_changes_nothing(prefix: &str, migration: &str) -> String {
    dry_run_changes_nothing_with(prefix, |_| migration.to_string()).await
}

/// As above, with the migration written for the production database's name.
async fn dry_run_changes_nothing_with(prefix: &str, migration: impl Fn(&str) -> String) -> String {
    let _serial = SERIAL.lock().await;
    let url = production_db(prefix).await;
    let db = url.rsplit('/').next().unwrap().to_string();
    let dir = with_pending(prefix, &migration(&db));
    let state = tempfile::tempdir().unwrap();
    let before = fingerprint(production(), &url);
    let out = pgvigil(
        &url,
        state.path(),
        &[
            "migrate",
            "dry-run",
            "--migrations",
            dir.path().to_str().unwrap(),
        ],
    );
    let after = fingerprint(production(), &url);
    let shown = text(&out);
    assert_eq!(before, after, "production changed:\n{shown}");
    assert!(!shown.contains(production().password()), "{shown}");
    assert!(
        shown.contains("production unchanged") || out.status.code() == Some(3),
        "{shown}"
    );
    shown
}

#[tokio::test]
async fn a_commit_hidden_behind_a_dollar_in_an_identifier_changes_nothing() {
    let shown = dry_run_changes_nothing(
        "dollarident",
        "CREATE TABLE a$b$ (x int);\nCOMMIT;\nDROP TABLE documents CASCADE;\nDELETE FROM document_sources;\nSELECT 'x$b$';\n",
    )
    .await;
    // It ran on the dev copy, and the report says what applying it would do.
    assert!(shown.contains("- table documents"), "{shown}");
    assert!(shown.contains("lint: contains `COMMIT`"), "{shown}");
}

#[tokio::test]
async fn a_commit_hidden_behind_an_escaped_quote_changes_nothing() {
    let shown = dry_run_changes_nothing(
        "estring",
        "SELECT E'\\''; COMMIT; DELETE FROM document_sources; DROP TABLE documents CASCADE; SELECT '';\n",
    )
    .await;
    assert!(shown.contains("lint: contains `COMMIT`"), "{shown}");
}

#[tokio::test]
async fn a_second_connection_through_dblink_cannot_reach_production() {
    // Aimed at production's own socket, which trusts local connections: run there, this
    // deleted rows outside any transaction pgvigil could roll back.
    let shown = dry_run_changes_nothing_with("dblink", |db| {
        format!(
            "CREATE EXTENSION IF NOT EXISTS dblink;\n\
             SELECT dblink_exec('host={} port={} dbname={db} user=postgres',\n\
                 'DELETE FROM document_sources');\n",
            production().dir().display(),
            production().port(),
        )
    })
    .await;
    // It could not even connect from the dev database: no credentials there.
    assert!(shown.contains("failed"), "{shown}");
    assert!(shown.contains("lint: uses dblink"), "{shown}");
}

/// A pending migration carrying production's credentials: on the old dev cluster dblink was
/// created for it (as superuser, IF NOT EXISTS) and the INSERT landed in production while the
/// report said "production unchanged".
fn dblink_with_credentials(db: &str) -> String {
    format!(
        "CREATE EXTENSION IF NOT EXISTS dblink;\n\
         SELECT dblink_exec('host=127.0.0.1 port={} dbname={db} user=postgres password={}',\n\
             'INSERT INTO document_sources (doc_type, source_name) VALUES (''api'', ''pwned'')');\n",
        production().port(),
        production().password(),
    )
}

#[tokio::test]
async fn dblink_with_production_credentials_is_refused_and_production_is_unchanged() {
    let shown = dry_run_changes_nothing_with("dblinkpw", dblink_with_credentials).await;
    assert!(
        shown.contains(
            "refused: extension dblink (asked for by migration 20261201000000_dblinkpw.sql) \
             opens connections to other PostgreSQL servers"
        ),
        "{shown}"
    );
    assert!(shown.contains("--allow-extension dblink"), "{shown}");
    // The migration fails on it, as the apply would have to be reviewed.
    assert!(shown.contains("20261201000000 dblinkpw: failed"), "{shown}");
    // What the claim rests on, and what it does not cover.
    assert!(
        shown.contains("production unchanged: only read-only statements ran there; production's schema, ledger, roles identical before and after; row counts and write counters"),
        "{shown}"
    );
    assert!(shown.contains("not checked: who wrote the rows"), "{shown}");
    assert!(
        shown.contains("dev server: the dev server had no network route"),
        "{shown}"
    );
}

#[tokio::test]
async fn postgres_fdw_with_production_credentials_is_refused() {
    let shown = dry_run_changes_nothing_with("fdw", |db| {
        format!(
            "CREATE EXTENSION IF NOT EXISTS postgres_fdw;\n\
             CREATE SERVER prod FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '{}', dbname '{db}');\n\
             CREATE USER MAPPING FOR CURRENT_USER SERVER prod OPTIONS (user 'postgres', password '{}');\n\
             CREATE FOREIGN TABLE prod_sources (doc_type text, source_name text) SERVER prod OPTIONS (table_name 'document_sources');\n\
             INSERT INTO prod_sources VALUES ('api', 'pwned-fdw');\n",
            production().port(),
            production().password(),
        )
    })
    .await;
    assert!(
        shown.contains(
            "refused: extension postgres_fdw (asked for by migration 20261201000000_fdw.sql)"
        ),
        "{shown}"
    );
    assert!(shown.contains("--allow-extension postgres_fdw"), "{shown}");
}

/// Allowed by name, dblink is created on the dev copy, and the private server (we are root)
/// has no route to production: the connection fails and production is unchanged.
#[tokio::test]
async fn an_allowed_dblink_finds_no_route_to_production() {
    let _serial = SERIAL.lock().await;
    let url = production_db("dblinkallowed").await;
    let db = url.rsplit('/').next().unwrap().to_string();
    let dir = with_pending("dblinkallowed", &dblink_with_credentials(&db));
    let state = tempfile::tempdir().unwrap();
    let before = fingerprint(production(), &url);
    let out = pgvigil(
        &url,
        state.path(),
        &[
            "migrate",
            "dry-run",
            "--allow-extension",
            "dblink",
            "--migrations",
            dir.path().to_str().unwrap(),
        ],
    );
    let shown = text(&out);
    assert_eq!(
        fingerprint(production(), &url),
        before,
        "production changed:\n{shown}"
    );
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("could not establish connection") && shown.contains("unreachable"),
        "{shown}"
    );
    assert!(!shown.contains("refused: extension"), "{shown}");
    assert!(
        shown.contains("allowed (--allow-extension): dblink"),
        "{shown}"
    );
    assert!(
        shown.contains("dev server: the dev server had no network route"),
        "{shown}"
    );
    assert!(!shown.contains(production().password()), "{shown}");
}

/// A migration that names a refused extension without IF NOT EXISTS is refused the same way
/// (the migrations' role could not create it, and a --dev-url superuser must not).
#[tokio::test]
async fn a_plain_create_extension_dblink_is_refused_too() {
    let shown =
        dry_run_changes_nothing("plaindblink", "CREATE EXTENSION dblink;\nSELECT 1;\n").await;
    assert!(
        shown.contains(
            "refused: extension dblink (asked for by migration 20261201000000_plaindblink.sql)"
        ),
        "{shown}"
    );
}

/// Production has dblink: its copy would hand it to every migration, so the copy is refused
/// (naming the flag) until `--allow-extension dblink`; `check`'s expected schema obeys the
/// same policy for a migration that asks for it.
#[tokio::test]
async fn production_with_dblink_is_copied_only_when_allowed() {
    let _serial = SERIAL.lock().await;
    let url = production_db("proddblink").await;
    exec(&url, "CREATE EXTENSION dblink").await;
    let dir = with_pending("noop", "SELECT 1;\n");
    let state = tempfile::tempdir().unwrap();
    let migrations = dir.path().to_str().unwrap();
    let refused = pgvigil(
        &url,
        state.path(),
        &["migrate", "dry-run", "--migrations", migrations],
    );
    let shown = text(&refused);
    assert_eq!(refused.status.code(), Some(3), "{shown}");
    assert!(
        shown.contains("production's schema cannot be copied: extension dblink (asked for by production (its schema has it))")
            && shown.contains("--allow-extension dblink"),
        "{shown}"
    );
    let allowed = pgvigil(
        &url,
        state.path(),
        &[
            "migrate",
            "dry-run",
            "--allow-extension",
            "dblink",
            "--migrations",
            migrations,
        ],
    );
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed));

    let asks = with_pending("asks", "CREATE EXTENSION IF NOT EXISTS postgres_fdw;\n");
    let check = pgvigil(
        &url,
        state.path(),
        &["check", "--migrations", asks.path().to_str().unwrap()],
    );
    let shown = text(&check);
    assert!(
        shown.contains("extension postgres_fdw (asked for by migration 20261201000000_asks.sql)")
            && shown.contains("--allow-extension postgres_fdw"),
        "{shown}"
    );
}

/// Hidden from the statement scanner in dynamic SQL, the extension is not created either:
/// migrations run as an ordinary role, and dblink is not a trusted extension.
#[tokio::test]
async fn dblink_created_by_dynamic_sql_fails_as_the_migrations_role() {
    let shown = dry_run_changes_nothing(
        "dyndblink",
        "DO $$ BEGIN EXECUTE 'CREATE EXTENSION dblink'; END $$;\n",
    )
    .await;
    assert!(
        shown.contains("permission denied to create extension \"dblink\""),
        "{shown}"
    );
}

#[tokio::test]
async fn server_side_programs_and_files_do_not_run() {
    let marker = std::env::temp_dir().join(format!("pgvigil-pwned-{}", std::process::id()));
    let shown = dry_run_changes_nothing(
        "program",
        &format!(
            "COPY (SELECT 1) TO PROGRAM 'touch {}';\nSELECT pg_read_file('/etc/hostname');\n",
            marker.display()
        ),
    )
    .await;
    assert!(!marker.exists(), "the program ran");
    assert!(
        shown.contains("failed") && shown.contains("ordinary role"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_migration_that_lifts_its_own_timeout_is_stopped_at_the_bound() {
    let _serial = SERIAL.lock().await;
    let url = production_db("timeout").await;
    let dir = with_pending(
        "sleepy",
        "SET LOCAL statement_timeout = 0;\nSELECT pg_sleep(120);\n",
    );
    let state = tempfile::tempdir().unwrap();
    let before = fingerprint(production(), &url);
    let started = Instant::now();
    let out = pgvigil(
        &url,
        state.path(),
        &[
            "migrate",
            "dry-run",
            "--statement-timeout",
            "1m",
            "--max-duration",
            "8s",
            "--migrations",
            dir.path().to_str().unwrap(),
        ],
    );
    let took = started.elapsed();
    let shown = text(&out);
    assert!(took < Duration::from_secs(40), "took {took:?}: {shown}");
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("wall-clock bound of 8 s"), "{shown}");
    assert!(
        shown.contains("lint: contains `SET LOCAL STATEMENT_TIMEOUT`"),
        "{shown}"
    );
    assert_eq!(fingerprint(production(), &url), before);
}

#[tokio::test]
async fn server_wide_statements_in_dynamic_sql_never_reach_production() {
    let _serial = SERIAL.lock().await;
    let url = production_db("dynsql").await;
    let dir = with_pending(
        "escalate",
        "DO $$ BEGIN\n\
           EXECUTE 'CREATE ROLE pgvigil_evil SUPERUSER LOGIN PASSWORD ''x''';\n\
           EXECUTE 'GRANT pg_execute_server_program TO ' || quote_ident(current_user);\n\
           EXECUTE 'ALTER SYSTEM SET work_mem = ''1GB''';\n\
         END $$;\n",
    );
    let state = tempfile::tempdir().unwrap();
    let before = fingerprint(production(), &url);
    // The check builds its expected schema from these migrations; the dry-run runs them.
    let check = pgvigil(
        &url,
        state.path(),
        &["check", "--migrations", dir.path().to_str().unwrap()],
    );
    let dry = pgvigil(
        &url,
        state.path(),
        &[
            "migrate",
            "dry-run",
            "--migrations",
            dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(fingerprint(production(), &url), before, "{}", text(&check));
    let shown = text(&check);
    assert!(
        shown.contains("failed in the dev database") && shown.contains("must be superuser"),
        "{shown}"
    );
    assert_eq!(dry.status.code(), Some(2), "{}", text(&dry));
}

#[tokio::test]
async fn hostile_names_are_quoted_in_fixes_and_escaped_on_screen() {
    let _serial = SERIAL.lock().await;
    let url = production_db("names").await;
    // A constraint NOT VALID on a table whose name needs quoting, a constraint name with a
    // quote, a semicolon and a comment, and an application name with terminal escapes.
    exec(
        &url,
        "CREATE TABLE \"we\"\"ird; --\" (a int);
         INSERT INTO \"we\"\"ird; --\" VALUES (1);
         ALTER TABLE \"we\"\"ird; --\" ADD CONSTRAINT \"c\"\"; DROP TABLE documents; --\" CHECK (a > 0) NOT VALID;
         ALTER TABLE documents ADD CONSTRAINT \"esc\x1b[2J\nnext\" CHECK (token_count >= 0) NOT VALID;",
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let out = pgvigil(
        &url,
        state.path(),
        &[
            "check",
            "--migrations",
            support::migrations_dir().to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!stdout.contains('\x1b'), "raw escape in output:\n{stdout}");
    assert!(stdout.contains("esc\\e[2J\\nnext"), "{stdout}");
    let fix = stdout
        .lines()
        .find(|l| l.contains("VALIDATE CONSTRAINT \"c\"\""))
        .unwrap_or_else(|| panic!("no fix for the weird constraint:\n{stdout}"))
        .rsplit("fix: ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        fix,
        "ALTER TABLE \"we\"\"ird; --\" VALIDATE CONSTRAINT \"c\"\"; DROP TABLE documents; --\";"
    );
    // The suggested statement is exactly one statement that does what it says.
    production()
        .psql(url.rsplit('/').next().unwrap(), &fix)
        .unwrap();
    let validated = production()
        .psql(
            url.rsplit('/').next().unwrap(),
            "SELECT convalidated FROM pg_constraint WHERE conname = 'c\"; DROP TABLE documents; --'",
        )
        .unwrap();
    assert_eq!(validated, "t");
    let documents = production()
        .psql(
            url.rsplit('/').next().unwrap(),
            "SELECT to_regclass('documents') IS NOT NULL",
        )
        .unwrap();
    assert_eq!(documents, "t");
}

#[tokio::test]
async fn quote_ident_matches_the_server() {
    let names = [
        "documents",
        "Documents",
        "user",
        "select",
        "name",
        "a\"b",
        "x; DROP TABLE t; --",
        "1abc",
        "_ok_1",
        "é",
        "with space",
        "json",
        "a$b",
    ];
    for n in names {
        let server = production()
            .psql(
                "postgres",
                &format!(
                    "SELECT quote_ident({})",
                    pgvigil::sanitize::quote_literal(n)
                ),
            )
            .unwrap();
        let ours = pgvigil::sanitize::quote_ident(n);
        // Where we quote a word the server would leave bare (a keyword of a newer version),
        // both forms name the same object; anything else must match exactly.
        if server != ours {
            assert_eq!(
                ours,
                format!("\"{n}\""),
                "{n}: server {server}, ours {ours}"
            );
        }
    }
}

#[tokio::test]
async fn migration_directories_refuse_links_duplicates_fifos_and_huge_files() {
    let _serial = SERIAL.lock().await;
    let url = production_db("dirs").await;
    let state = tempfile::tempdir().unwrap();
    let run = |dir: &Path| {
        let started = Instant::now();
        let out = pgvigil(
            &url,
            state.path(),
            &["migrate", "dry-run", "--migrations", dir.to_str().unwrap()],
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        (out.status.code(), text(&out))
    };

    let linked = migrations_copy();
    std::os::unix::fs::symlink("/etc/passwd", linked.path().join("20261201000000_link.sql"))
        .unwrap();
    let (code, shown) = run(linked.path());
    assert_eq!(code, Some(3), "{shown}");
    assert!(
        shown.contains("20261201000000_link.sql is a symbolic link"),
        "{shown}"
    );

    let dup = migrations_copy();
    std::fs::write(dup.path().join("20261201000000_one.sql"), "SELECT 1;").unwrap();
    std::fs::write(dup.path().join("20261201000000_two.sql"), "SELECT 2;").unwrap();
    let (code, shown) = run(dup.path());
    assert_eq!(code, Some(3), "{shown}");
    assert!(
        shown.contains("version 20261201000000 is used by two files")
            && shown.contains("20261201000000_one.sql")
            && shown.contains("20261201000000_two.sql"),
        "{shown}"
    );

    let fifo = migrations_copy();
    nix::unistd::mkfifo(
        &fifo.path().join("20261201000000_fifo.sql"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
    let (code, shown) = run(fifo.path());
    assert_eq!(code, Some(3), "{shown}");
    assert!(shown.contains("is not a regular file (a FIFO)"), "{shown}");

    let huge = migrations_copy();
    let f = std::fs::File::create(huge.path().join("20261201000000_huge.sql")).unwrap();
    f.set_len(pgvigil::checks::MAX_MIGRATION_BYTES + 1).unwrap();
    let (code, shown) = run(huge.path());
    assert_eq!(code, Some(3), "{shown}");
    assert!(shown.contains("over the limit"), "{shown}");
}

#[tokio::test]
async fn files_that_are_not_regular_files_are_refused_quickly() {
    let _serial = SERIAL.lock().await;
    let url = production_db("files").await;
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let fifo = fifo.to_str().unwrap();
    for (args, names) in [
        (
            vec!["--env-file", "/dev/zero", "config"],
            "--env-file /dev/zero",
        ),
        (vec!["--env-file", fifo, "config"], "--env-file"),
        (
            vec!["check", "--expected", "/dev/zero"],
            "--expected /dev/zero",
        ),
        (vec!["check", "--expected", fifo], "--expected"),
        (vec!["--theme", "/dev/zero"], "/dev/zero"),
    ] {
        let started = Instant::now();
        let out = pgvigil(&url, state.path(), &args);
        let shown = text(&out);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{args:?} took too long"
        );
        assert!(shown.contains(names), "{args:?}: {shown}");
        assert!(
            shown.contains("not a regular file")
                || shown.contains("a device")
                || shown.contains("a FIFO"),
            "{args:?}: {shown}"
        );
        assert_ne!(out.status.code(), Some(0), "{args:?}: {shown}");
    }
}
