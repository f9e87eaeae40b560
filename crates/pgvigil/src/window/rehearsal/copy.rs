//! The copy the rehearsal migrates, and what it reads of it between migrations: every
//! relation's file node (a changed `relfilenode` is a rewrite), the indexes with their access
//! method and validity, the tables' rows, the database's size. On a restored copy, the
//! restored objects are first handed to the role migrations run as: pg_restore ran as the dev
//! server's administrator, and migrations never do (on a private cluster they run as an
//! ordinary role, as production's migration role should).

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, PgConnection};

use crate::catalog::locks::relation_name_sql;

/// One relation of the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// `pg_relation_filenode`: a new one after a rewrite (ALTER TYPE, VACUUM FULL, a
    /// non-concurrent REINDEX, TRUNCATE).
    pub filenode: Option<i64>,
    /// `r` table, `i` index, `S` sequence, `m` materialized view, `p`/`I` partitioned.
    pub kind: String,
    /// An index's table.
    pub table: Option<String>,
    /// An index's access method (`btree`, `hnsw`).
    pub method: Option<String>,
    /// An index's `indisvalid`.
    pub valid: Option<bool>,
    /// A table's rows as the catalog estimates them (exact counts are the manifest's).
    pub rows: i64,
}

/// One row of [`relations`]: name, file node, kind, an index's table, access method and
/// validity, estimated rows.
type RelationRow = (
    String,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
    Option<bool>,
    i64,
);

/// Every user relation, by the name the lock report uses.
pub(crate) async fn relations(
    conn: &mut PgConnection,
) -> Result<BTreeMap<String, Relation>, sqlx::Error> {
    let rows: Vec<RelationRow> = sqlx::query_as(concat!(
        "SELECT ",
        relation_name_sql!("c", "n"),
        ", pg_relation_filenode(c.oid)::bigint, c.relkind::text,
               (SELECT ",
        relation_name_sql!("t", "tn"),
        " FROM pg_class t
                  JOIN pg_namespace tn ON tn.oid = t.relnamespace WHERE t.oid = x.indrelid),
               am.amname::text, x.indisvalid,
               greatest(c.reltuples, 0)::bigint
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_index x ON x.indexrelid = c.oid
               LEFT JOIN pg_am am ON am.oid = c.relam AND c.relkind IN ('i', 'I')
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
                AND c.relkind IN ('r', 'p', 'i', 'I', 'S', 'm')"
    ))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, filenode, kind, table, method, valid, rows)| {
            (
                name,
                Relation {
                    filenode,
                    kind,
                    table,
                    method,
                    valid,
                    rows,
                },
            )
        })
        .collect())
}

/// The database's size in bytes.
pub(crate) async fn database_size(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(conn)
        .await
}

/// The server's version and the extensions installed in the copy.
pub(crate) async fn versions(
    conn: &mut PgConnection,
) -> Result<(String, Vec<(String, String)>), sqlx::Error> {
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&mut *conn)
        .await?;
    let extensions: Vec<(String, String)> =
        sqlx::query_as("SELECT extname::text, extversion FROM pg_extension ORDER BY extname")
            .fetch_all(&mut *conn)
            .await?;
    Ok((version, extensions))
}

/// Gives every restored object (tables, views, sequences, types, routines, schemas other than
/// the system's, extension members left alone) to `role`, from `admin`'s session on the copy.
pub(crate) async fn hand_over(admin: &mut PgConnection, role: &str) -> Result<(), sqlx::Error> {
    let me: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *admin)
        .await?;
    if me == role {
        return Ok(());
    }
    // Each statement is formatted on the server (format('%I')): no name is spliced here.
    let statements: Vec<String> = sqlx::query_scalar(
        "WITH ext AS (SELECT objid, classid FROM pg_depend WHERE deptype = 'e'),
              user_ns AS (SELECT oid, nspname FROM pg_namespace
                           WHERE nspname NOT IN ('pg_catalog', 'information_schema')
                             AND nspname NOT LIKE 'pg\\_%')
         SELECT format('ALTER SCHEMA %I OWNER TO %I', n.nspname, $1)
           FROM user_ns n WHERE n.nspname <> 'public'
            AND n.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_namespace'::regclass)
         UNION ALL
         SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, $1)
           FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
            AND c.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_class'::regclass)
         UNION ALL
         SELECT format('ALTER SEQUENCE %I.%I OWNER TO %I', n.nspname, c.relname, $1)
           FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
          WHERE c.relkind = 'S'
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
            AND c.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_class'::regclass)
         UNION ALL
         SELECT format('ALTER TYPE %I.%I OWNER TO %I', n.nspname, t.typname, $1)
           FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
          WHERE (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND
                 (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
            AND t.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_type'::regclass)
         UNION ALL
         SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, $1)
           FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
          WHERE p.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_proc'::regclass)
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                              AND d.objid = p.oid AND d.deptype = 'i')",
    )
    .bind(role)
    .fetch_all(&mut *admin)
    .await?;
    for s in statements {
        sqlx::raw_sql(AssertSqlSafe(s)).execute(&mut *admin).await?;
    }
    Ok(())
}
