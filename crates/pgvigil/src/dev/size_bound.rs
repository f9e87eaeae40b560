//! The dev database's disk bound. A migration can write as much as it likes (`INSERT ...
//! SELECT generate_series(...)`, a huge sort): on a bastion that fills the disk production's
//! tools share. While migrations run, the scratch database's size plus the server's temporary
//! files are read every [`POLL`]; past the bound the run is stopped. `temp_file_limit` is set
//! on the scratch database as well, so one query's temporary files stop at the bound by
//! themselves (a migration's role cannot lift it: it is a superuser setting).

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::ScratchDatabase;
use crate::sanitize::quote_ident;

/// The default bound on the dev database: 2 GiB.
pub const DEFAULT_MAX_DEV_SIZE: u64 = 2 * 1024 * 1024 * 1024;

/// How often the size is read while a migration runs.
pub const POLL: Duration = Duration::from_millis(250);

/// Reads the scratch database's size, as its administrator, on a connection of its own.
pub struct SizeWatch {
    conn: PgConnection,
    bound: u64,
    /// pg_ls_tmpdir() answered (superuser or pg_monitor); else only the database is counted.
    temp_visible: bool,
}

impl SizeWatch {
    /// Sets `temp_file_limit` on the scratch database (new sessions get it; where the dev
    /// role may not, the watch alone bounds it) and opens the watching connection.
    pub async fn start(scratch: &ScratchDatabase, bound: u64) -> Result<Self, sqlx::Error> {
        let mut conn = scratch.connect_admin().await?;
        let limit_kb = (bound / 1024).clamp(1, i32::MAX as u64);
        let _ = sqlx::query(AssertSqlSafe(format!(
            "ALTER DATABASE {} SET temp_file_limit = {limit_kb}",
            quote_ident(&scratch.name)
        )))
        .execute(&mut conn)
        .await;
        let temp_visible = sqlx::query("SELECT count(*) FROM pg_ls_tmpdir()")
            .execute(&mut conn)
            .await
            .is_ok();
        Ok(Self {
            conn,
            bound,
            temp_visible,
        })
    }

    /// The bound, in bytes.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// The database's files plus the server's temporary files, in bytes.
    pub async fn size(&mut self) -> Result<u64, sqlx::Error> {
        let sql = if self.temp_visible {
            "SELECT (pg_database_size(current_database())
                     + coalesce((SELECT sum(size) FROM pg_ls_tmpdir()), 0))::bigint"
        } else {
            "SELECT pg_database_size(current_database())::bigint"
        };
        let size: i64 = sqlx::query_scalar(sql).fetch_one(&mut self.conn).await?;
        Ok(size.max(0) as u64)
    }

    /// Resolves with the size reached once it passes the bound; never while it stays below
    /// (a failed read is tried again at the next poll).
    pub async fn passed(&mut self) -> u64 {
        loop {
            tokio::time::sleep(POLL).await;
            if let Ok(size) = self.size().await
                && size > self.bound
            {
                return size;
            }
        }
    }

    /// Closes the watching connection.
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// `2GiB`, `64MiB`, `512kB`, `1TB`, `1048576` (bytes): binary multiples, as PostgreSQL's own
/// size settings count them (`MB` = `MiB`). `None` when not a size.
pub fn parse_size(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number.parse().ok()?;
    let multiple: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(multiple)
}

/// What [`parse_size`] accepts, for error messages.
pub const ACCEPTED_SIZE: &str =
    "a size such as 2GiB, 512MiB or 64MB (binary multiples: kB, MB, GB, TB or KiB ... TiB)";

/// Bytes in the largest whole binary unit: `2 GiB`, `64 MiB`, `1.5 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_multiples() {
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("64MB"), Some(64 << 20));
        assert_eq!(parse_size("64 mib"), Some(64 << 20));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("1.5GiB"), None);
        assert_eq!(parse_size("-1GiB"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("99999999999TiB"), None);
        assert_eq!(format_size(2 << 30), "2 GiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(100), "100 B");
    }
}
