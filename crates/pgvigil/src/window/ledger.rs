//! sqlx's ledger writes, as sqlx 0.9's Postgres migrator makes them
//! (sqlx-postgres/src/migrate.rs): the `_sqlx_migrations` table created if missing, the
//! session advisory lock whose id sqlx derives from `current_database()` (so that a real
//! `sqlx migrate run` and pgvigil exclude each other), the row inserted with `execution_time`
//! -1 in the migration's own transaction (after its SQL, for a `-- no-transaction` file), then
//! the time updated after COMMIT. The rehearsal writes them on its restored copy or staging
//! server; the gated apply will write them on production. Nothing here runs anywhere else.

use std::time::Duration;

use sqlx::PgConnection;

use crate::migrations::LocalMigration;

/// The ledger table, as sqlx creates it.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// sqlx's advisory lock id for a database: CRC-32 (ISO-HDLC) of its name times 0x3d32ad9e
/// (sqlx's `generate_lock_id`, after Rails).
pub fn lock_id(database: &str) -> i64 {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    0x3d32ad9e * i64::from(CRC.checksum(database.as_bytes()))
}

/// Before the first migration: the ledger table and sqlx's advisory lock on this session
/// (held until the session ends, as `sqlx migrate run` holds it for its run).
pub(crate) async fn prepare(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock_id(&database))
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(CREATE).execute(&mut *conn).await?;
    Ok(())
}

/// The row sqlx inserts after the migration's SQL, in the same transaction.
pub(crate) async fn insert(conn: &mut PgConnection, m: &LocalMigration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO _sqlx_migrations ( version, description, success, checksum, execution_time )
         VALUES ( $1, $2, TRUE, $3, -1 )",
    )
    .bind(m.version)
    .bind(&m.description)
    .bind(&m.checksum)
    .execute(conn)
    .await?;
    Ok(())
}

/// After COMMIT: the time it took, in nanoseconds, as sqlx records it.
pub(crate) async fn set_time(
    conn: &mut PgConnection,
    m: &LocalMigration,
    elapsed: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE _sqlx_migrations SET execution_time = $1 WHERE version = $2")
        .bind(elapsed.as_nanos() as i64)
        .bind(m.version)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lock_id_is_sqlx_s() {
        // CRC-32 of "postgres" is 0x156a8775 (zlib's crc32, the same polynomial), times sqlx's constant.
        assert_eq!(super::lock_id("postgres"), 0x3d32ad9e_i64 * 0x156a8775_i64);
    }
}
