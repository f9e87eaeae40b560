//! The expected schema, cached in pgvigil's state directory: building it starts a dev database
//! and runs every migration (seconds), while the answer depends only on the migration files and
//! the server's major version. The key is a SHA-256 over exactly those, so an edited file or a
//! new migration or another major version builds afresh. A damaged or foreign file is ignored
//! and rebuilt, never trusted.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::expected::{ExpectedSchema, MAX_SNAPSHOT_BYTES};
use crate::migrations::LocalMigration;

/// `$PGVIGIL_STATE_DIR`, else `$XDG_STATE_HOME/pgvigil`, else `~/.local/state/pgvigil`.
pub fn state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("PGVIGIL_STATE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("pgvigil"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".local/state/pgvigil"))
}

/// The cache key: the snapshot format, each migration's version, checksum and transaction
/// mode, and the server's major version.
pub fn key(migrations: &[LocalMigration], major: u32) -> String {
    let mut h = Sha256::new();
    // The builder's own version too: a later pgvigil may attribute objects differently.
    h.update(format!(
        "pgvigil-expected/{} {}\n",
        crate::catalog::SNAPSHOT_FORMAT,
        env!("CARGO_PKG_VERSION")
    ));
    h.update(format!("major {major}\n"));
    for m in migrations {
        h.update(format!(
            "{} {} {}\n",
            m.version,
            crate::migrations::local::hex(&m.checksum),
            m.no_tx
        ));
    }
    crate::migrations::local::hex(&h.finalize())
}

fn path_for(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("expected-{key}.json"))
}

/// The cached expected schema for `key`, if there is a sound one.
pub fn load(dir: &Path, key: &str) -> Option<ExpectedSchema> {
    let path = path_for(dir, key);
    let text = crate::files::read_text(&path, MAX_SNAPSHOT_BYTES).ok()?;
    let mut expected: ExpectedSchema = serde_json::from_str(&text).ok()?;
    if expected.format != crate::catalog::SNAPSHOT_FORMAT {
        return None;
    }
    expected.source = format!("cache ({}; built on {})", path.display(), expected.source);
    Some(expected)
}

/// Stores `expected` under `key` (0600, atomically). Failures are logged, not fatal: the cache
/// only saves time.
pub fn store(dir: &Path, key: &str, expected: &ExpectedSchema) {
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let json = serde_json::to_vec(expected).map_err(std::io::Error::other)?;
        crate::files::write_private(&path_for(dir, key), &json)
    };
    if let Err(e) = write() {
        tracing::warn!(target: "pgvigil::checks", "could not cache the expected schema in {}: {e}", dir.display());
    }
}
