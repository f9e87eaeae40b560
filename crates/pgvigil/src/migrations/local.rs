//! The local migrations directory, read as sqlx's migrator reads it (same checksums), after
//! refusing what would be unsafe to read or ambiguous to apply.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A migration file from the local directory, as sqlx reads it.
#[derive(Debug, Clone)]
pub struct LocalMigration {
    /// Version: the number before the first `_` of the file name.
    pub version: i64,
    /// Description from the rest of the file name (underscores as spaces).
    pub description: String,
    /// The file's SQL, as the migrator would run it.
    pub sql: String,
    /// SHA-384 of the SQL, as sqlx computes it and records in `_sqlx_migrations`.
    pub checksum: Vec<u8>,
    /// The file starts with `-- no-transaction`: sqlx runs it outside a transaction.
    pub no_tx: bool,
}

impl LocalMigration {
    /// Its identity (version, description, hex checksum) as recorded in an expected schema.
    pub fn stamp(&self) -> MigrationStamp {
        MigrationStamp {
            version: self.version,
            description: self.description.clone(),
            checksum: hex(&self.checksum),
        }
    }
}

/// Migration files larger than this are refused: a migration is statements, not data.
pub const MAX_MIGRATION_BYTES: u64 = 16 * 1024 * 1024;

/// Why a migrations directory could not be read. Each names the directory or file and what
/// would be accepted.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The directory could not be read (absent, not a directory, unreadable, refused by sqlx).
    #[error(
        "--migrations {dir}: {reason}; expected a directory of <version>_<description>.sql files"
    )]
    Directory {
        /// The directory given with `--migrations`.
        dir: String,
        /// What went wrong.
        #[source]
        reason: DirectoryProblem,
    },
    /// A symbolic link in the directory: refused, since it can point anywhere.
    #[error(
        "--migrations: {file} is a symbolic link; migrations must be regular files in the \
         directory (a link can point anywhere, and change between a dry-run and an apply)"
    )]
    Symlink {
        /// Path of the link.
        file: String,
    },
    /// A device, FIFO or socket in the directory: reading it could hang or never end.
    #[error("--migrations: {file} is not a regular file ({kind}); expected only .sql files")]
    NotAFile {
        /// Path of the entry.
        file: String,
        /// What it is, in words (`a FIFO`, `a device`...).
        kind: &'static str,
    },
    /// A migration file over [`MAX_MIGRATION_BYTES`].
    #[error(
        "--migrations: {file} is {size} bytes, over the limit of {limit} bytes for one migration"
    )]
    TooLarge {
        /// Path of the file.
        file: String,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// Two up (or two down) migration files with the same version: which one applies is ambiguous.
    #[error(
        "--migrations: version {version} is used by two files, {first} and {second}; each \
         version must be unique (rename one with a new timestamp)"
    )]
    DuplicateVersion {
        /// The shared version.
        version: i64,
        /// The first file with it (in name order).
        first: String,
        /// The second file with it.
        second: String,
    },
}

/// What was wrong with the migrations directory itself.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryProblem {
    /// It could not be listed or an entry could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// It exists but is a file (or something else).
    #[error("is not a directory")]
    NotADirectory,
    /// sqlx's migrator refused it (a file name it cannot parse, an unreadable file).
    #[error("{0}")]
    Refused(#[from] sqlx::migrate::MigrateError),
    /// The blocking read was interrupted (the runtime shutting down).
    #[error("the read was interrupted: {0}")]
    Interrupted(#[from] tokio::task::JoinError),
}

/// Reads the up-migrations of `dir` exactly as sqlx's migrator would (same checksums), after
/// refusing what sqlx would silently accept or skip: symbolic links, devices and FIFOs (which
/// would hang a read), oversized files, and two files with the same version.
pub async fn load_local(dir: &Path) -> Result<Vec<LocalMigration>, MigrationError> {
    let dir_err = |reason: DirectoryProblem| MigrationError::Directory {
        dir: dir.display().to_string(),
        reason,
    };
    let owned = dir.to_path_buf();
    tokio::task::spawn_blocking(move || validate_dir(&owned))
        .await
        .map_err(|e| dir_err(e.into()))??;
    let migrator = sqlx::migrate::Migrator::new(dir.to_path_buf())
        .await
        .map_err(|e| dir_err(e.into()))?;
    Ok(migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| LocalMigration {
            version: m.version,
            description: m.description.to_string(),
            sql: m.sql.as_str().to_string(),
            checksum: m.checksum.to_vec(),
            no_tx: m.no_tx,
        })
        .collect())
}

fn validate_dir(dir: &Path) -> Result<(), MigrationError> {
    let dir_err = |reason: DirectoryProblem| MigrationError::Directory {
        dir: dir.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(dir).map_err(|e| dir_err(e.into()))?;
    if !meta.is_dir() {
        return Err(dir_err(DirectoryProblem::NotADirectory));
    }
    let mut seen: BTreeMap<(i64, bool), String> = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| dir_err(e.into()))?
        .collect::<Result<_, _>>()
        .map_err(|e| dir_err(e.into()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let file = path.display().to_string();
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| dir_err(e.into()))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            return Err(MigrationError::Symlink { file });
        }
        if ft.is_dir() {
            // sqlx ignores subdirectories; so do we.
            continue;
        }
        let is_migration = name
            .split_once('_')
            .is_some_and(|(v, rest)| rest.ends_with(".sql") && v.parse::<i64>().is_ok());
        if !ft.is_file() {
            let kind = crate::files::kind_of(&ft);
            return Err(MigrationError::NotAFile { file, kind });
        }
        if !is_migration {
            continue;
        }
        if meta.len() > MAX_MIGRATION_BYTES {
            return Err(MigrationError::TooLarge {
                file,
                size: meta.len(),
                limit: MAX_MIGRATION_BYTES,
            });
        }
        let (v, rest) = name.split_once('_').expect("checked above");
        let version: i64 = v.parse().expect("checked above");
        let down = rest.ends_with(".down.sql");
        if let Some(first) = seen.insert((version, down), file.clone()) {
            return Err(MigrationError::DuplicateVersion {
                version,
                first,
                second: file,
            });
        }
    }
    Ok(())
}

/// Identity of a migration an expected schema was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationStamp {
    /// Version from the file name.
    pub version: i64,
    /// Description from the file name.
    pub description: String,
    /// SHA-384 of the SQL, lower-case hex: a changed file no longer matches.
    pub checksum: String,
}

/// Lower-case hex of bytes (checksums).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
