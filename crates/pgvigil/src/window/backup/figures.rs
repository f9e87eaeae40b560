//! The figures a backup is checked by: per table its exact row count and a content hash per
//! primary-key range, plus extensions, the ledger, pgvector columns and indexes. Every statement
//! here runs through a [`Reader`]: on production inside the exported snapshot (so the figures
//! describe exactly what pg_dump dumped), and word for word the same on the restored copy, so
//! two figures differ only when the rows do.
//!
//! A range's hash is SHA-256 over the MD5 of each row's text (`row::text`) in key order: one
//! 16-byte digest per row is aggregated, not the rows themselves (a 3072-dimension embedding is
//! ~35 KB of text), so memory stays small. Both sides read through sqlx connections, which set
//! the same `DateStyle`, `TimeZone` and `extra_float_digits`, so a row prints the same on both.
//! Text keys are ordered and cut with `COLLATE "C"`: the restored copy's default collation may
//! not be production's.

use sqlx::Row;

use super::manifest::{
    Coverage, ExtensionVersion, IndexFigure, KeyColumn, LedgerEntry, RangeFigure, TableFigures,
    VectorColumn,
};
use crate::sanitize::quote_ident;
use crate::session::Reader;
use crate::window::{Progress, ProgressSink};

/// Rows per range the ranges aim at (a mismatch names a range of about this many rows).
pub const ROWS_PER_RANGE: u64 = 250;
/// At most this many ranges per table.
pub const MAX_RANGES: u64 = 64;
/// Ranges hashed in a table above the full-hash limit.
pub const SAMPLED_RANGES: usize = 8;

/// A user table: its schema and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
}

impl TableName {
    fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// The ordinary tables a dump holds: not the catalogs', not an extension's (pg_dump leaves
/// extension members out), partitions counted as themselves (their parents hold no rows).
pub async fn user_tables(reader: &mut Reader<'_>) -> Result<Vec<TableName>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT n.nspname::text, c.relname::text
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r'
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_%'
            AND NOT EXISTS (SELECT 1 FROM pg_depend d
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND d.deptype = 'e')
          ORDER BY 1, 2",
    )
    .fetch_all(&mut *reader)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| TableName {
            schema: r.get(0),
            name: r.get(1),
        })
        .collect())
}

/// The table's single-column primary key, if it has one.
pub async fn key_column(
    reader: &mut Reader<'_>,
    table: &TableName,
) -> Result<Option<KeyColumn>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typcollation <> 0
           FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
           JOIN pg_type t ON t.oid = a.atttypid
          WHERE i.indrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass
            AND i.indisprimary",
    )
    .bind(&table.schema)
    .bind(&table.name)
    .fetch_all(&mut *reader)
    .await?;
    if rows.len() != 1 {
        return Ok(None);
    }
    let r = &rows[0];
    Ok(Some(KeyColumn {
        column: r.get(0),
        type_name: r.get(1),
        collate_c: r.get(2),
    }))
}

/// The exact number of rows.
pub async fn row_count(reader: &mut Reader<'_>, table: &TableName) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        table.sql()
    )))
    .fetch_one(&mut *reader)
    .await?;
    Ok(n as u64)
}

fn ordered(key: &KeyColumn, alias: &str) -> String {
    let column = format!("{alias}.{}", quote_ident(&key.column));
    if key.collate_c {
        format!("{column} COLLATE \"C\"")
    } else {
        column
    }
}

/// Cuts the key into ranges of about `ROWS_PER_RANGE` rows (at most `MAX_RANGES`): the
/// lower bounds of every range but the first, as the key's text.
async fn boundaries(
    reader: &mut Reader<'_>,
    table: &TableName,
    key: &KeyColumn,
    rows: u64,
) -> Result<Vec<String>, sqlx::Error> {
    let ranges = rows.div_ceil(ROWS_PER_RANGE).clamp(1, MAX_RANGES);
    if ranges <= 1 {
        return Ok(Vec::new());
    }
    let step = rows.div_ceil(ranges) as i64;
    let order = ordered(key, "pgvigil_row");
    let sql = format!(
        "SELECT b FROM (SELECT pgvigil_row.{col}::text AS b, row_number() OVER (ORDER BY {order}) AS n
                          FROM {table} pgvigil_row) s
          WHERE n > 1 AND (n - 1) % $1 = 0 ORDER BY n",
        col = quote_ident(&key.column),
        table = table.sql(),
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(step)
        .fetch_all(&mut *reader)
        .await
}

/// Rows and hash of one range (`key` `None`: the whole table, rows in the order of their own
/// digests). The same statement on the source snapshot and on the restored copy.
pub async fn range_figure(
    reader: &mut Reader<'_>,
    table: &TableName,
    key: Option<&KeyColumn>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(u64, String), sqlx::Error> {
    let digest = "decode(md5(pgvigil_row::text), 'hex')";
    let (order, filter) = match key {
        Some(key) => {
            let col = format!("pgvigil_row.{}", quote_ident(&key.column));
            let cmp = |op: &str, n: usize| {
                if key.collate_c {
                    format!("{col} COLLATE \"C\" {op} (${n}::{})", key.type_name)
                } else {
                    format!("{col} {op} ${n}::{}", key.type_name)
                }
            };
            (
                ordered(key, "pgvigil_row"),
                format!(
                    "WHERE ($1::text IS NULL OR {}) AND ($2::text IS NULL OR {})",
                    cmp(">=", 1),
                    cmp("<", 2)
                ),
            )
        }
        None => (
            digest.to_string(),
            "WHERE $1::text IS NULL AND $2::text IS NULL".into(),
        ),
    };
    let sql = format!(
        "SELECT count(*), coalesce(encode(sha256(string_agg({digest}, ''::bytea ORDER BY {order})), 'hex'), '')
           FROM {table} pgvigil_row {filter}",
        table = table.sql()
    );
    let (n, hash): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(from)
        .bind(to)
        .fetch_one(&mut *reader)
        .await?;
    Ok((n as u64, hash))
}

/// One table's figures: exact count, ranges, and their hashes (every range at or below
/// `full_hash_limit` rows, else [`SAMPLED_RANGES`] chosen at random).
pub async fn table_figures(
    reader: &mut Reader<'_>,
    table: &TableName,
    full_hash_limit: u64,
) -> Result<TableFigures, sqlx::Error> {
    let rows = row_count(reader, table).await?;
    let key = key_column(reader, table).await?;
    let bounds = match &key {
        Some(k) => boundaries(reader, table, k, rows).await?,
        None => Vec::new(),
    };
    let mut ranges: Vec<RangeFigure> = (0..=bounds.len())
        .map(|i| RangeFigure {
            from: i.checked_sub(1).map(|j| bounds[j].clone()),
            to: bounds.get(i).cloned(),
            rows: None,
            sha256: None,
        })
        .collect();
    // Without a key there is one range; hashing it is hashing the table.
    let coverage = if rows > full_hash_limit && key.is_some() {
        Coverage::Sampled
    } else {
        Coverage::Full
    };
    let chosen: Vec<usize> = match coverage {
        Coverage::Full => (0..ranges.len()).collect(),
        Coverage::Sampled => {
            let mut all: Vec<usize> = (0..ranges.len()).collect();
            let mut rng = rand::rng();
            rand::seq::SliceRandom::shuffle(all.as_mut_slice(), &mut rng);
            all.truncate(SAMPLED_RANGES);
            all.sort_unstable();
            all
        }
    };
    for i in chosen {
        let (n, hash) = range_figure(
            reader,
            table,
            key.as_ref(),
            ranges[i].from.as_deref(),
            ranges[i].to.as_deref(),
        )
        .await?;
        ranges[i].rows = Some(n);
        ranges[i].sha256 = Some(hash);
    }
    Ok(TableFigures {
        schema: table.schema.clone(),
        name: table.name.clone(),
        rows,
        key,
        coverage,
        ranges,
    })
}

/// Every table's figures, reporting "hashing tables i/n".
pub async fn all_tables(
    reader: &mut Reader<'_>,
    full_hash_limit: u64,
    progress: &ProgressSink,
) -> Result<Vec<TableFigures>, sqlx::Error> {
    let tables = user_tables(reader).await?;
    let total = tables.len() as u64;
    let mut out = Vec::with_capacity(tables.len());
    for (i, t) in tables.iter().enumerate() {
        progress.report(Progress::phase("hashing tables", Some(total)).at(i as u64));
        out.push(table_figures(reader, t, full_hash_limit).await?);
    }
    progress.report(Progress::phase("hashing tables", Some(total)).at(total));
    Ok(out)
}

/// Installed extensions other than plpgsql.
pub async fn extensions(reader: &mut Reader<'_>) -> Result<Vec<ExtensionVersion>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT e.extname::text, e.extversion, n.nspname::text
           FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname <> 'plpgsql' ORDER BY 1",
    )
    .fetch_all(&mut *reader)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ExtensionVersion {
            name: r.get(0),
            version: r.get(1),
            schema: r.get(2),
        })
        .collect())
}

/// The sqlx ledger, `None` when the database has none.
pub async fn ledger(reader: &mut Reader<'_>) -> Result<Option<Vec<LedgerEntry>>, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *reader)
            .await?;
    if !exists {
        return Ok(None);
    }
    let rows = sqlx::query(
        "SELECT version, description, success, encode(checksum, 'hex')
           FROM public._sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut *reader)
    .await?;
    Ok(Some(
        rows.into_iter()
            .map(|r| LedgerEntry {
                version: r.get(0),
                description: r.get(1),
                success: r.get(2),
                checksum: r.get(3),
            })
            .collect(),
    ))
}

/// Columns of pgvector's types (any schema the extension is in) with declared dimensions.
pub async fn vector_columns(reader: &mut Reader<'_>) -> Result<Vec<VectorColumn>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT n.nspname::text || '.' || c.relname::text, a.attname::text, t.typname::text,
                CASE WHEN a.atttypmod > 0 THEN a.atttypmod END
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_type t ON t.oid = a.atttypid
          WHERE t.typname IN ('vector', 'halfvec', 'sparsevec') AND c.relkind IN ('r', 'p')
            AND a.attnum > 0 AND NOT a.attisdropped
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          ORDER BY 1, 2",
    )
    .fetch_all(&mut *reader)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| VectorColumn {
            table: r.get(0),
            column: r.get(1),
            type_name: r.get(2),
            dimensions: r.get(3),
        })
        .collect())
}

/// Indexes of user tables with their definitions and validity.
pub async fn indexes(reader: &mut Reader<'_>) -> Result<Vec<IndexFigure>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT n.nspname::text || '.' || ic.relname::text, n.nspname::text || '.' || tc.relname::text,
                pg_get_indexdef(i.indexrelid), i.indisvalid
           FROM pg_index i
           JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_class tc ON tc.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = tc.relnamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          ORDER BY 1",
    )
    .fetch_all(&mut *reader)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| IndexFigure {
            name: r.get(0),
            table: r.get(1),
            definition: r.get(2),
            valid: r.get(3),
        })
        .collect())
}
