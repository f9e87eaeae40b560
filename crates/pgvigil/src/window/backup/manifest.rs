//! The backup's manifest: what the dump is (every file's SHA-256) and what it holds (figures
//! read in the very snapshot pg_dump dumped), so that a restore can be compared with the source
//! rather than trusted. JSON, versioned ([`FORMAT`]); a reader refuses any other format.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The manifest's format. A change of meaning gets a new number.
pub const FORMAT: &str = "pgvigil.backup/1";

/// The manifest's file name inside a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The dump's directory (pg_dump's directory format) inside a backup directory.
pub const DUMP_DIR: &str = "dump";

/// Manifests larger than this are not read (a manifest is figures, not data).
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// Everything a backup claims about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// [`FORMAT`].
    pub format: String,
    /// pgvigil's version that wrote it.
    pub pgvigil_version: String,
    /// When the snapshot was taken (the server's `now()` in it, RFC 3339, UTC).
    pub taken_at: String,
    /// The source server and database.
    pub source: SourceServer,
    /// The dump: where (relative to the manifest), its format and every file's digest.
    pub dump: DumpFiles,
    /// Installed extensions (pg_dump writes `CREATE EXTENSION` without a version).
    pub extensions: Vec<ExtensionVersion>,
    /// The sqlx migration ledger (`_sqlx_migrations`), when the database has one.
    pub ledger: Option<Vec<LedgerEntry>>,
    /// Per table: rows and content hashes per primary-key range.
    pub tables: Vec<TableFigures>,
    /// Columns of pgvector's types with their declared dimensions.
    pub vector_columns: Vec<VectorColumn>,
    /// Every index of the dumped tables: its definition and whether it was valid.
    pub indexes: Vec<IndexFigure>,
    /// Tables with more rows than this had sampled ranges hashed, not every row.
    pub full_hash_limit: u64,
}

/// The server the backup was taken from (no password, no URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceServer {
    /// `server_version`, e.g. `15.10`.
    pub server_version: String,
    /// `server_version_num`, e.g. 150010.
    pub server_version_num: i32,
    /// `pg_control_system().system_identifier`, when the role may read it.
    pub system_identifier: Option<String>,
    /// `current_database()`.
    pub database: String,
}

/// The dump's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpFiles {
    /// The dump's directory, relative to the manifest's (normally [`DUMP_DIR`]).
    pub directory: String,
    /// `directory` (pg_dump -Fd).
    pub format: String,
    /// The pg_dump that wrote it (`pg_dump (PostgreSQL) 15.10`).
    pub pg_dump: String,
    /// The snapshot it dumped (`pg_export_snapshot()`'s id).
    pub snapshot: String,
    /// Every file, sorted by name.
    pub files: Vec<FileDigest>,
}

/// One file of the dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Its name inside the dump directory (`toc.dat`, `3456.dat.gz`).
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of its contents.
    pub sha256: String,
}

/// An installed extension.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExtensionVersion {
    /// `vector`.
    pub name: String,
    /// `0.8.0`.
    pub version: String,
    /// Its schema.
    pub schema: String,
}

/// One row of the sqlx ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The migration's version.
    pub version: i64,
    /// Its description.
    pub description: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Lower-case hex of the SHA-384 checksum sqlx recorded.
    pub checksum: String,
}

/// How a table's content was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    /// Every range, so every row.
    Full,
    /// Only the ranges listed as hashed (the table has more rows than `--full-hash-limit`); the
    /// row count is still exact.
    Sampled,
}

/// A table's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFigures {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// The exact row count in the snapshot.
    pub rows: u64,
    /// The single-column primary key the ranges are cut on, `None` without one (then one range
    /// holds every row, hashed in the order of the rows' own digests).
    pub key: Option<KeyColumn>,
    /// Whether every row was hashed.
    pub coverage: Coverage,
    /// The ranges, in key order; together they cover the table.
    pub ranges: Vec<RangeFigure>,
}

impl TableFigures {
    /// `schema.name`, as reports name it.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// The column ranges are cut on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyColumn {
    /// The column's name.
    pub column: String,
    /// Its type as `format_type` writes it (`uuid`, `bigint`).
    pub type_name: String,
    /// A collatable type (text): ordered and cut with `COLLATE "C"`, whatever the databases'
    /// default collations.
    pub collate_c: bool,
}

/// One primary-key range: `from <= key < to` (an absent bound is open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeFigure {
    /// The lower bound (inclusive), as the key's text; `None` from the first row.
    pub from: Option<String>,
    /// The upper bound (exclusive), as the key's text; `None` to the last row.
    pub to: Option<String>,
    /// Rows in the range, when it was hashed.
    pub rows: Option<u64>,
    /// SHA-256 (hex) over the MD5 of each row's text in key order; `None` when not sampled.
    pub sha256: Option<String>,
}

impl RangeFigure {
    /// `[from, to)` as a report writes it.
    pub fn label(&self) -> String {
        format!(
            "[{}, {})",
            self.from.as_deref().unwrap_or("start"),
            self.to.as_deref().unwrap_or("end")
        )
    }
}

/// A column of pgvector's types.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VectorColumn {
    /// `schema.table`.
    pub table: String,
    /// The column.
    pub column: String,
    /// `vector`, `halfvec`, `sparsevec`.
    pub type_name: String,
    /// The declared dimensions (`vector(3072)`), `None` when undeclared.
    pub dimensions: Option<i32>,
}

/// An index as the snapshot had it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IndexFigure {
    /// `schema.index`.
    pub name: String,
    /// `schema.table`.
    pub table: String,
    /// `pg_get_indexdef`.
    pub definition: String,
    /// `indisvalid` on the source.
    pub valid: bool,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error(
        "the manifest {}: {reason}; expected the manifest.json that `pgvigil backup create` \
         wrote (format {FORMAT})",
        path.display()
    )]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// Why (from [`crate::files::FileError::reason`]).
        reason: String,
    },
    /// Not a manifest of ours.
    #[error(
        "the manifest {} is not a pgvigil backup manifest ({source}); expected the manifest.json \
         that `pgvigil backup create` wrote (format {FORMAT})",
        path.display()
    )]
    Parse {
        /// The manifest's path.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Another format version.
    #[error(
        "the manifest {} has format {found}; this pgvigil reads {FORMAT}",
        path.display()
    )]
    Format {
        /// The manifest's path.
        path: PathBuf,
        /// What it says.
        found: String,
    },
}

impl BackupManifest {
    /// Reads and checks the format of the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text =
            crate::files::read_text(path, MAX_MANIFEST_BYTES).map_err(|e| ManifestError::Read {
                path: path.to_path_buf(),
                reason: e.reason(),
            })?;
        let manifest: Self =
            serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        if manifest.format != FORMAT {
            return Err(ManifestError::Format {
                path: path.to_path_buf(),
                found: manifest.format,
            });
        }
        Ok(manifest)
    }

    /// The dump directory of the manifest at `path`.
    pub fn dump_dir(&self, manifest_path: &Path) -> PathBuf {
        manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.dump.directory)
    }

    /// The table named `schema.name`.
    pub fn table(&self, schema: &str, name: &str) -> Option<&TableFigures> {
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
    }
}
