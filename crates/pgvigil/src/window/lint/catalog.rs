//! What the lint reads on production, through a [`ProductionSession`] only (read-only, bounded):
//! the server's version (it sets squawk's), per table its rows and bytes, how busy it is (two
//! readings of `pg_stat_user_tables` an interval apart, each in its own transaction, since a
//! transaction sees one cached copy of the statistics), the vector columns and indexes, and the
//! settings a vector index build would run under.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::session::{ProductionSession, Reader};

/// One table as read.
#[derive(Debug, Clone, PartialEq)]
pub struct TableReading {
    /// Live rows: pg_class.reltuples, or n_live_tup when the table was never analysed.
    pub rows: u64,
    /// pg_total_relation_size.
    pub bytes: u64,
    /// Inserts + updates + deletes per second between the readings.
    pub writes_per_s: f64,
    /// Sequential + index scans per second between the readings.
    pub scans_per_s: f64,
}

/// Everything the lint read, once for all files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CatalogReading {
    /// `server_version`, e.g. `15.8`.
    pub server_version: String,
    /// By `schema.table`.
    pub tables: BTreeMap<String, TableReading>,
    /// `schema.table.column` -> (`vector` | `halfvec`, dimensions).
    pub vector_columns: BTreeMap<String, (String, u32)>,
    /// `schema.index` -> (access method `hnsw` | `ivfflat`, `schema.table`).
    pub vector_indexes: BTreeMap<String, (String, String)>,
    /// maintenance_work_mem a session of this role gets, in bytes.
    pub maintenance_work_mem: u64,
    /// statement_timeout of this role in this database (ALTER ROLE/DATABASE ... SET), else the
    /// server's boot value, in milliseconds (0 = none).
    pub statement_timeout_ms: u64,
    /// Seconds between the two statistics readings.
    pub interval_s: f64,
}

struct Row {
    name: String,
    rows: i64,
    bytes: i64,
    changes: i64,
    scans: i64,
}

async fn tables(r: &mut Reader<'_>) -> Result<Vec<Row>, sqlx::Error> {
    let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT n.nspname || '.' || c.relname AS name,
                greatest(c.reltuples::bigint, coalesce(s.n_live_tup, 0), 0) AS rows,
                pg_total_relation_size(c.oid) AS bytes,
                coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0) AS changes,
                coalesce(s.seq_scan, 0) + coalesce(s.idx_scan, 0) AS scans
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
          WHERE c.relkind IN ('r', 'p', 'm')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_%'",
    )
    .fetch_all(&mut *r)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, rows, bytes, changes, scans)| Row {
            name,
            rows,
            bytes,
            changes,
            scans,
        })
        .collect())
}

async fn rest(r: &mut Reader<'_>) -> Result<CatalogReading, sqlx::Error> {
    let (server_version,): (String,) = sqlx::query_as("SELECT current_setting('server_version')")
        .fetch_one(&mut *r)
        .await?;
    let columns: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT n.nspname || '.' || c.relname || '.' || a.attname, t.typname, a.atttypmod
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_type t ON t.oid = a.atttypid
          WHERE t.typname IN ('vector', 'halfvec') AND a.attnum > 0 AND NOT a.attisdropped
            AND c.relkind IN ('r', 'p')",
    )
    .fetch_all(&mut *r)
    .await?;
    let indexes: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.nspname || '.' || i.relname, am.amname, tn.nspname || '.' || t.relname
           FROM pg_index x
           JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_namespace n ON n.oid = i.relnamespace
           JOIN pg_class t ON t.oid = x.indrelid
           JOIN pg_namespace tn ON tn.oid = t.relnamespace
           JOIN pg_am am ON am.oid = i.relam
          WHERE am.amname IN ('hnsw', 'ivfflat')",
    )
    .fetch_all(&mut *r)
    .await?;
    // maintenance_work_mem: pgvigil's session does not change it, so its value is the role's.
    // statement_timeout: pgvigil's session sets its own, so read what the role and database
    // are configured with, most specific first, else the server's boot value.
    let (mwm_kb, timeout): (i64, String) = sqlx::query_as(
        "SELECT (SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem'),
                coalesce(
                  (SELECT split_part(cfg, '=', 2) FROM pg_db_role_setting s, unnest(s.setconfig) cfg
                    WHERE cfg LIKE 'statement\\_timeout=%'
                      AND s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = current_user))
                      AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
                    ORDER BY (s.setrole <> 0) DESC, (s.setdatabase <> 0) DESC LIMIT 1),
                  (SELECT boot_val FROM pg_settings WHERE name = 'statement_timeout'))",
    )
    .fetch_one(&mut *r)
    .await?;
    let timeout_ms = setting_ms(&timeout);
    Ok(CatalogReading {
        server_version,
        vector_columns: columns
            .into_iter()
            .map(|(k, t, m)| (k, (t, m.max(0) as u32)))
            .collect(),
        vector_indexes: indexes.into_iter().map(|(k, am, t)| (k, (am, t))).collect(),
        maintenance_work_mem: mwm_kb.max(0) as u64 * 1024,
        statement_timeout_ms: timeout_ms,
        ..Default::default()
    })
}

/// Reads the catalog: the tables twice, `interval` apart, and the rest once.
pub async fn read_catalog(
    session: &mut ProductionSession,
    interval: Duration,
) -> Result<CatalogReading, sqlx::Error> {
    let first = session.read(tables).await?;
    let t0 = Instant::now();
    let mut reading = session.read(rest).await?;
    tokio::time::sleep(interval.saturating_sub(t0.elapsed())).await;
    let second = session.read(tables).await?;
    let seconds = t0.elapsed().as_secs_f64().max(1e-3);
    let before: BTreeMap<&str, &Row> = first.iter().map(|r| (r.name.as_str(), r)).collect();
    reading.interval_s = seconds;
    reading.tables = second
        .iter()
        .map(|r| {
            let (c0, s0) = before
                .get(r.name.as_str())
                .map_or((r.changes, r.scans), |b| (b.changes, b.scans));
            (
                r.name.clone(),
                TableReading {
                    rows: r.rows.max(0) as u64,
                    bytes: r.bytes.max(0) as u64,
                    writes_per_s: (r.changes - c0).max(0) as f64 / seconds,
                    scans_per_s: (r.scans - s0).max(0) as f64 / seconds,
                },
            )
        })
        .collect();
    Ok(reading)
}

/// A time setting as PostgreSQL reads it: a bare number is milliseconds; units ms, s, min, h, d.
/// Unreadable is taken as 0 (no timeout), the safe reading for a build that must not be cut.
pub(crate) fn setting_ms(raw: &str) -> u64 {
    let raw = raw.trim().trim_matches('\'');
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (num, unit) = raw.split_at(split);
    let Ok(n) = num.parse::<f64>() else { return 0 };
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1e3,
        "min" => 60e3,
        "h" => 3600e3,
        "d" => 86400e3,
        "us" => 1e-3,
        _ => return 0,
    };
    (n * factor) as u64
}
