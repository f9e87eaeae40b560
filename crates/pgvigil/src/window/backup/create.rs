//! `backup create`: one read-only session on production exports a snapshot; pg_dump dumps
//! exactly that snapshot (`--snapshot`, directory format, parallel jobs) while the same
//! transaction computes the manifest's figures, so the figures describe what was dumped even
//! while the application writes. The snapshot transaction stays open until pg_dump has ended
//! (its workers import the snapshot when they start). Files are 0600 in 0700 directories.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::figures;
use super::manifest::{
    BackupManifest, DUMP_DIR, DumpFiles, FORMAT, FileDigest, MANIFEST_FILE, SourceServer,
};
use super::tools::{self, NoClient};
use crate::config::{PoolConfig, ReadOnlySession};
use crate::db_error::DbError;
use crate::session::ProductionSession;
use crate::window::{Progress, ProgressSink};

/// Tables with more rows than this get sampled ranges hashed by default.
pub const DEFAULT_FULL_HASH_LIMIT: u64 = 10_000_000;

/// How to take a backup.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The backup's directory (created 0700; must not exist or be empty). `None`: a new one
    /// under the state directory's `backups/`.
    pub output: Option<PathBuf>,
    /// pg_dump's parallel jobs (`None`: the cores available).
    pub jobs: Option<usize>,
    /// Tables with more rows than this have [`figures::SAMPLED_RANGES`] random ranges hashed.
    pub full_hash_limit: u64,
    /// Bound on each figure statement in the snapshot.
    pub statement_timeout: Duration,
    /// pg_dump's bound on waiting for each table's ACCESS SHARE lock.
    pub lock_wait_timeout: Duration,
    /// pg_dump's gzip level (`--compress`, 0-9). [`DEFAULT_COMPRESS`] by default: embeddings
    /// are random floats that gzip barely shrinks, so pg_dump's own default (6) spends most of
    /// the dump's time for a few percent of its size.
    pub compress: u8,
}

/// pg_dump's gzip level unless told otherwise. Measured on the demo's 2,000 documents with
/// 3072-dimension embeddings: level 6 (pg_dump's default) 27 MB in about 5 s, level 1 30 MB
/// in about 1.3 s, level 0 63 MB in about 0.6 s (docs/benchmarks.md).
pub const DEFAULT_COMPRESS: u8 = 1;

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            output: None,
            jobs: None,
            full_hash_limit: DEFAULT_FULL_HASH_LIMIT,
            statement_timeout: Duration::from_secs(3600),
            lock_wait_timeout: Duration::from_secs(10),
            compress: DEFAULT_COMPRESS,
        }
    }
}

/// Why a backup could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// Production could not be read.
    #[error("reading production for the backup: {0}")]
    Read(#[source] DbError),
    /// No pg_dump of at least the server's version.
    #[error(transparent)]
    NoClient(#[from] NoClient),
    /// No state directory to put the backup in by default.
    #[error(
        "no directory for the backup: pass --output DIR, or set PGVIGIL_STATE_DIR (or \
         XDG_STATE_HOME, or HOME)"
    )]
    NoStateDir,
    /// The output directory exists and is not empty.
    #[error("--output {}: {reason}; expected a new or empty directory", path.display())]
    Output {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// pg_dump failed.
    #[error("pg_dump failed ({status}): {message}")]
    PgDump {
        /// Its exit status.
        status: String,
        /// Its last error lines, password removed, made printable.
        message: String,
    },
    /// Writing or hashing the files.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// What `create` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreateReport {
    /// The manifest's path (the command's last line).
    pub manifest_path: PathBuf,
    /// The manifest.
    pub manifest: BackupManifest,
    /// Bytes of the dump.
    pub dump_bytes: u64,
    /// pg_dump's jobs.
    pub jobs: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CreateError + '_ {
    move |source| CreateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The default backup directory: `<state dir>/backups/<database>-<UTC time>`.
pub fn default_output(database: &str) -> Option<PathBuf> {
    let safe: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    crate::checks::expected_cache::state_dir().map(|d| {
        d.join("backups").join(format!(
            "{safe}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ))
    })
}

/// Creates `dir` and its missing parents 0700; an existing one must be empty.
fn prepare_dir(dir: &Path) -> Result<(), CreateError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(CreateError::Output {
                path: dir.to_path_buf(),
                reason: "is not empty".into(),
            });
        }
    } else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

use std::os::unix::fs::DirBuilderExt;

/// Every file of the dump (sorted), each made 0600, with its SHA-256.
pub fn digest_files(dump_dir: &Path) -> Result<Vec<FileDigest>, CreateError> {
    let mut names: Vec<String> = std::fs::read_dir(dump_dir)
        .map_err(io(dump_dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let path = dump_dir.join(&name);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(io(&path))?;
            let (bytes, sha256) = sha256_file(&path).map_err(io(&path))?;
            Ok(FileDigest {
                name,
                bytes,
                sha256,
            })
        })
        .collect()
}

/// Size and hex SHA-256 of a file, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((total, crate::migrations::local::hex(&hasher.finalize())))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The cores available to this process.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Takes a backup of `config`'s database through `session` (read-only: the snapshot, the
/// figures) and pg_dump (the data), reporting progress.
pub async fn create(
    config: &PoolConfig,
    session: &mut ProductionSession,
    options: &CreateOptions,
    progress: &ProgressSink,
) -> Result<CreateReport, CreateError> {
    let read_err = |e| CreateError::Read(DbError::new(e, &config.database_url));
    let bounds = ReadOnlySession {
        lock_timeout: session.bounds().lock_timeout,
        statement_timeout: options.statement_timeout,
    };
    let cancel = session.cancel_on_drop();
    progress.report(Progress::phase("exporting a snapshot", None));
    let (mut reader, snapshot) = session
        .begin_exported_snapshot(bounds)
        .await
        .map_err(read_err)?;
    let (num, version, database, taken_at, system_identifier): (
        String,
        String,
        String,
        String,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT current_setting('server_version_num'), current_setting('server_version'),
                current_database()::text,
                to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
                     THEN (SELECT system_identifier::text FROM pg_control_system()) END",
    )
    .fetch_one(&mut reader)
    .await
    .map_err(read_err)?;
    let version_num: i32 = num.parse().unwrap_or(0);
    let major = (version_num / 10000) as u32;
    let pg_dump = tools::find("pg_dump", major)?;
    let dir = match &options.output {
        Some(d) => d.clone(),
        None => default_output(&database).ok_or(CreateError::NoStateDir)?,
    };
    prepare_dir(&dir)?;
    let dump_dir = dir.join(DUMP_DIR);
    let jobs = options.jobs.unwrap_or_else(default_jobs).max(1);
    let total_tables = figures::user_tables(&mut reader)
        .await
        .map_err(read_err)?
        .len() as u64;

    let mut cmd = tools::command(
        &pg_dump,
        &config.database_url,
        &tools::application_name("dump"),
    );
    let (_, params) = config.database_url.libpq_parts();
    let url_options = params
        .iter()
        .find(|(v, _)| *v == "PGOPTIONS")
        .map(|(_, v)| format!("{v} "))
        .unwrap_or_default();
    // Every statement pg_dump sends is read-only, whatever the URL's own options say.
    cmd.env(
        "PGOPTIONS",
        format!("{url_options}-c default_transaction_read_only=on"),
    )
    .arg(format!("--snapshot={snapshot}"))
    .args(["--format=directory", "--verbose"])
    .arg(format!("--jobs={jobs}"))
    .arg(format!("--compress={}", options.compress.min(9)))
    .arg(format!(
        "--lock-wait-timeout={}",
        options.lock_wait_timeout.as_millis().max(1)
    ))
    .arg(format!("--file={}", dump_dir.display()))
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(io(&pg_dump.path))?;
    let stderr = child.stderr.take().expect("piped");

    // pg_dump and the figures run at once, in the same snapshot.
    let dump = async {
        let mut lines = BufReader::new(stderr).lines();
        let mut done = 0u64;
        let mut errors: Vec<String> = Vec::new();
        progress.report(Progress::phase("dumping tables", Some(total_tables)));
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("TABLE DATA") && line.contains("finished item")
                || (jobs == 1 && line.contains("dumping contents of table"))
            {
                done += 1;
                progress.report(Progress::phase("dumping tables", Some(total_tables)).at(done));
                progress.report(
                    Progress::phase("dump written", None)
                        .in_bytes()
                        .at(dir_bytes(&dump_dir)),
                );
            } else if line.contains("error")
                || line.contains("FATAL")
                || !line.starts_with("pg_dump: ")
            {
                errors.push(line);
                if errors.len() > 40 {
                    errors.remove(0);
                }
            }
        }
        let status = child.wait().await;
        (status, errors)
    };
    let figures = async {
        let tables = figures::all_tables(&mut reader, options.full_hash_limit, progress).await?;
        let extensions = figures::extensions(&mut reader).await?;
        let ledger = figures::ledger(&mut reader).await?;
        let vector_columns = figures::vector_columns(&mut reader).await?;
        let indexes = figures::indexes(&mut reader).await?;
        Ok::<_, sqlx::Error>((tables, extensions, ledger, vector_columns, indexes))
    };
    let ((status, errors), figures) = tokio::join!(dump, figures);
    let ended = reader.finish().await;
    if let Some(c) = cancel {
        c.done();
    }
    let status = status.map_err(io(&pg_dump.path))?;
    if !status.success() {
        let text = config.database_url.scrub(&errors.join("; "));
        return Err(CreateError::PgDump {
            status: status.to_string(),
            message: crate::sanitize::printable(&text).into_owned(),
        });
    }
    let (tables, extensions, ledger, vector_columns, indexes) = figures.map_err(read_err)?;
    ended.map_err(read_err)?;

    progress.report(Progress::phase("hashing the dump's files", None));
    let files = tokio::task::spawn_blocking({
        let dump_dir = dump_dir.clone();
        move || digest_files(&dump_dir)
    })
    .await
    .map_err(|e| CreateError::Io {
        path: dump_dir.clone(),
        source: std::io::Error::other(e),
    })??;
    std::fs::set_permissions(&dump_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(&dump_dir))?;
    let dump_bytes = files.iter().map(|f| f.bytes).sum();
    let manifest = BackupManifest {
        format: FORMAT.into(),
        pgvigil_version: env!("CARGO_PKG_VERSION").into(),
        taken_at,
        source: SourceServer {
            server_version: version,
            server_version_num: version_num,
            system_identifier,
            database,
        },
        dump: DumpFiles {
            directory: DUMP_DIR.into(),
            format: "directory".into(),
            pg_dump: pg_dump.version.clone(),
            snapshot,
            files,
        },
        extensions,
        ledger,
        tables,
        vector_columns,
        indexes,
        full_hash_limit: options.full_hash_limit,
    };
    let manifest_path = dir.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    crate::files::write_private(&manifest_path, &json).map_err(io(&manifest_path))?;
    let mut check = Vec::new();
    // Read back what was written: a full disk must not leave a manifest that looks whole.
    tokio::fs::File::open(&manifest_path)
        .await
        .map_err(io(&manifest_path))?
        .read_to_end(&mut check)
        .await
        .map_err(io(&manifest_path))?;
    if check != json {
        return Err(CreateError::Io {
            path: manifest_path,
            source: std::io::Error::other("the manifest read back differs from what was written"),
        });
    }
    Ok(CreateReport {
        manifest_path,
        manifest,
        dump_bytes,
        jobs,
    })
}
