//! Is pgvector there and able to serve 3072-dimension embeddings? Extension and versions, a live
//! round trip through vector(3072) and halfvec(3072), the column's declared type, the ANN index
//! (HNSW on the halfvec expression, since vector indexes stop at 2000 dimensions), and a KNN
//! smoke test: the plan can use the index, and the p95 of a few queries on the existing rows.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use crate::session::Reader;

use super::{Finding, Group};

/// Dimensions of the embeddings pgvigil's users store.
pub const DIMENSIONS: u32 = 3072;
/// pgvector's limit for HNSW / IVFFlat on `vector`.
pub const VECTOR_INDEX_MAX_DIMS: u32 = 2000;
/// pgvector's limit for HNSW / IVFFlat on `halfvec`.
pub const HALFVEC_INDEX_MAX_DIMS: u32 = 4000;
/// halfvec (and so indexing 3072 dimensions) arrived in pgvector 0.7.0.
pub const MIN_VERSION: (u32, u32, u32) = (0, 7, 0);
/// Name of the HNSW index on `documents.embedding` in the fixes pgvigil suggests.
pub const INDEX_NAME: &str = "documents_embedding_hnsw_idx";

/// Storage type an ANN index is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexStorage {
    /// Full-precision `vector`: indexable up to [`VECTOR_INDEX_MAX_DIMS`] dimensions.
    Vector,
    /// Half-precision `halfvec` (an expression index on a cast): up to [`HALFVEC_INDEX_MAX_DIMS`].
    Halfvec,
}

/// Why no ANN index can exist for a column of that type and size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoAnnIndex(String);

/// The statement that creates the ANN index on documents.embedding, or why it cannot exist.
pub fn ann_index_statement(storage: IndexStorage, dims: u32) -> Result<String, NoAnnIndex> {
    match storage {
        IndexStorage::Vector if dims > VECTOR_INDEX_MAX_DIMS => Err(NoAnnIndex(format!(
            "an HNSW or IVFFlat index on vector({dims}) cannot exist: pgvector indexes `vector` \
             up to {VECTOR_INDEX_MAX_DIMS} dimensions. Index the halfvec expression instead \
             (up to {HALFVEC_INDEX_MAX_DIMS}): {}",
            ann_index_statement(IndexStorage::Halfvec, dims).unwrap_or_default()
        ))),
        IndexStorage::Halfvec if dims > HALFVEC_INDEX_MAX_DIMS => Err(NoAnnIndex(format!(
            "an index on halfvec({dims}) cannot exist: pgvector indexes halfvec up to \
             {HALFVEC_INDEX_MAX_DIMS} dimensions; use binary_quantize with a bit index"
        ))),
        IndexStorage::Vector => Ok(format!(
            "CREATE INDEX CONCURRENTLY {INDEX_NAME} ON documents USING hnsw (embedding vector_cosine_ops);"
        )),
        IndexStorage::Halfvec => Ok(format!(
            "CREATE INDEX CONCURRENTLY {INDEX_NAME} ON documents USING hnsw \
             ((embedding::halfvec({dims})) halfvec_cosine_ops);"
        )),
    }
}

/// Parses an extension version (`0.8.0`, `0.8`) into (major, minor, patch) for comparison;
/// missing parts count as 0, `None` when the major part is not a number.
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Deterministic test embeddings whose values are exact in half precision, so the halfvec
/// distance can be compared tightly with the one computed here.
fn probe_vectors() -> (Vec<f32>, Vec<f32>) {
    let a = (0..DIMENSIONS)
        .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
        .collect();
    let b = (0..DIMENSIONS)
        .map(|i| ((i % 5) as f32 + 1.0) / 4.0)
        .collect();
    (a, b)
}

/// A pgvector text literal, `[x1,x2,...]`, for casting to `vector` or `halfvec`.
pub fn vector_literal(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 8);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    1.0 - dot / (na * nb)
}

/// Latency figures of the KNN smoke test, for JSON.
#[derive(Debug, Clone, Serialize)]
pub struct KnnSmoke {
    /// The index can serve the KNN query at all (it appears in the plan with sequential scans off).
    pub index_usable: bool,
    /// The planner picks the index on its own (with sequential scans allowed).
    pub planner_uses_index: bool,
    /// The planner's row estimate for `documents` (`pg_class.reltuples`, 0 when never analyzed).
    pub estimated_rows: f64,
    /// KNN queries actually timed (0 when the table is empty or the index unusable).
    pub samples: usize,
    /// Median KNN query latency in milliseconds, `None` when none were timed.
    pub p50_ms: Option<f64>,
    /// 95th-percentile KNN query latency in milliseconds, `None` when none were timed.
    pub p95_ms: Option<f64>,
}

/// Runs the pgvector checks through `conn`, a READ ONLY transaction.
pub async fn check(conn: &mut Reader<'_>, knn_samples: usize) -> Vec<Finding> {
    use super::guard::guarded;
    let mut out = Vec::new();
    let ext = match guarded(conn, extension).await {
        Ok(f) => f,
        Err(e) => {
            out.push(Finding::unknown(
                Group::Pgvector,
                "pgvector.extension",
                format!("could not read pg_extension: {e}"),
            ));
            return out;
        }
    };
    let installed = ext.status != super::Status::Fail;
    out.push(ext);
    if !installed {
        for id in [
            "pgvector.roundtrip",
            "pgvector.column",
            "pgvector.index",
            "pgvector.knn",
        ] {
            out.push(Finding::unknown(
                Group::Pgvector,
                id,
                "not checked: the vector extension is not usable in this database",
            ));
        }
        return out;
    }
    out.push(guarded(conn, roundtrip).await.unwrap_or_else(|e| {
        Finding::fail(
            Group::Pgvector,
            "pgvector.roundtrip",
            format!("round trip through vector(3072) failed: {e}"),
        )
    }));
    let column = guarded(conn, column).await.unwrap_or_else(|e| {
        Finding::unknown(
            Group::Pgvector,
            "pgvector.column",
            format!("could not read documents.embedding: {e}"),
        )
    });
    let column_ok = column.status == super::Status::Pass;
    out.push(column);
    if !column_ok {
        for id in ["pgvector.index", "pgvector.knn"] {
            out.push(Finding::unknown(
                Group::Pgvector,
                id,
                "not checked: documents.embedding is not vector(3072)",
            ));
        }
        return out;
    }
    let (index, usable_name) = match guarded(conn, index).await {
        Ok(r) => r,
        Err(e) => (
            Finding::unknown(
                Group::Pgvector,
                "pgvector.index",
                format!("could not read the indexes: {e}"),
            ),
            None,
        ),
    };
    out.push(index);
    out.push(
        guarded(conn, async |c| {
            knn(c, usable_name.as_deref(), knn_samples).await
        })
        .await
        .unwrap_or_else(|e| {
            Finding::unknown(
                Group::Pgvector,
                "pgvector.knn",
                format!("KNN smoke test could not run: {e}"),
            )
        }),
    );
    out
}

async fn extension(conn: &mut Reader<'_>) -> Result<Finding, sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS installed,
                (SELECT default_version FROM pg_available_extensions WHERE name = 'vector') AS available",
    )
    .fetch_one(&mut *conn)
    .await?;
    let installed: Option<String> = row.try_get("installed")?;
    let available: Option<String> = row.try_get("available")?;
    let data = serde_json::json!({ "installed": installed, "available": available });
    Ok(match (installed, available) {
        (None, None) => Finding::fail(
            Group::Pgvector,
            "pgvector.extension",
            "pgvector is not installed on this server (no `vector` in pg_available_extensions)",
        )
        .detail("install the server package (Debian: postgresql-15-pgvector, or build from source)")
        .data(data),
        (None, Some(avail)) => Finding::fail(
            Group::Pgvector,
            "pgvector.extension",
            format!("extension vector is not created in this database (server offers {avail})"),
        )
        .fix("CREATE EXTENSION vector;")
        .data(data),
        (Some(v), avail) => {
            let version = parse_version(&v);
            if version.is_none_or(|ver| ver < MIN_VERSION) {
                Finding::fail(Group::Pgvector,
                    "pgvector.extension",
                    format!("vector {v} is older than 0.7.0: halfvec, needed to index 3072 dimensions, is missing"),
                )
                .fix("ALTER EXTENSION vector UPDATE;")
                .data(data)
            } else if let Some(a) = avail.as_ref().filter(|a| parse_version(a) > version) {
                Finding::warn(
                    Group::Pgvector,
                    "pgvector.extension",
                    format!("vector {v} installed; the server has {a} (upgrade pending)"),
                )
                .fix("ALTER EXTENSION vector UPDATE;")
                .data(data)
            } else {
                Finding::pass(
                    Group::Pgvector,
                    "pgvector.extension",
                    format!("vector {v} installed (>= 0.7.0, no upgrade pending)"),
                )
                .data(data)
            }
        }
    })
}

async fn roundtrip(conn: &mut Reader<'_>) -> Result<Finding, sqlx::Error> {
    let (a, b) = probe_vectors();
    let (la, lb) = (vector_literal(&a), vector_literal(&b));
    let row = sqlx::query(
        "SELECT ($1::text::vector(3072) <=> $2::text::vector(3072))::float8 AS vector_distance,
                ($1::text::halfvec(3072) <=> $2::text::halfvec(3072))::float8 AS halfvec_distance,
                vector_dims($1::text::vector(3072)) AS dims,
                ($1::text::vector(3072))::text = $1 AS exact",
    )
    .bind(&la)
    .bind(&lb)
    .fetch_one(&mut *conn)
    .await?;
    let vd: f64 = row.try_get("vector_distance")?;
    let hd: f64 = row.try_get("halfvec_distance")?;
    let dims: i32 = row.try_get("dims")?;
    let exact: bool = row.try_get("exact")?;
    let expected = cosine_distance(&a, &b);
    let data = serde_json::json!({"expected": expected, "vector": vd, "halfvec": hd, "dims": dims});
    let ok = dims == DIMENSIONS as i32
        && exact
        && (vd - expected).abs() < 1e-6
        && (hd - expected).abs() < 1e-3;
    Ok(if ok {
        Finding::pass(
            Group::Pgvector,
            "pgvector.roundtrip",
            format!("3072-dim vector and halfvec round trip; cosine distance {vd:.6} as expected"),
        )
        .data(data)
    } else {
        Finding::fail(
            Group::Pgvector,
            "pgvector.roundtrip",
            "3072-dim round trip returned wrong values",
        )
        .detail(format!(
            "expected cosine distance {expected:.6}; vector gave {vd:.6}, halfvec gave {hd:.6}"
        ))
        .detail(format!(
            "dimensions read back: {dims}; text identical: {exact}"
        ))
        .data(data)
    })
}

async fn column(conn: &mut Reader<'_>) -> Result<Finding, sqlx::Error> {
    let row = sqlx::query(
        "SELECT to_regclass('documents') IS NOT NULL AS has_table,
                (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                  WHERE a.attrelid = to_regclass('documents') AND a.attname = 'embedding'
                    AND NOT a.attisdropped) AS declared",
    )
    .fetch_one(&mut *conn)
    .await?;
    let has_table: bool = row.try_get("has_table")?;
    let declared: Option<String> = row.try_get("declared")?;
    let expected = format!("vector({DIMENSIONS})");
    Ok(match declared {
        _ if !has_table => Finding::fail(
            Group::Pgvector,
            "pgvector.column",
            "table documents does not exist",
        ),
        None => Finding::fail(
            Group::Pgvector,
            "pgvector.column",
            "documents has no embedding column",
        )
        .detail(format!("expected: embedding {expected}")),
        Some(t) if t == expected => Finding::pass(
            Group::Pgvector,
            "pgvector.column",
            format!("documents.embedding is {t}"),
        ),
        Some(t) => Finding::fail(
            Group::Pgvector,
            "pgvector.column",
            format!("documents.embedding is {t}, expected {expected}"),
        )
        .detail(format!("expected: {expected}"))
        .detail(format!("actual:   {t}"))
        .data(serde_json::json!({"expected": expected, "actual": t})),
    })
}

/// Returns the finding and the name of an index the KNN query can use, if any.
async fn index(conn: &mut Reader<'_>) -> Result<(Finding, Option<String>), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT ic.relname::text AS name, am.amname::text AS method, i.indisvalid AS valid,
                pg_get_indexdef(i.indexrelid) AS definition,
                coalesce(pg_get_expr(i.indexprs, i.indrelid), '') AS expr,
                (SELECT string_agg(opc.opcname::text, ',' ORDER BY k.ord)
                   FROM unnest(i.indclass::oid[]) WITH ORDINALITY AS k(oid, ord)
                   JOIN pg_opclass opc ON opc.oid = k.oid) AS opclasses,
                i.indpred IS NOT NULL AS partial
           FROM pg_index i
           JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_am am ON am.oid = ic.relam
          WHERE i.indrelid = to_regclass('documents') AND am.amname IN ('hnsw', 'ivfflat')
          ORDER BY i.indisvalid DESC, ic.relname",
    )
    .fetch_all(&mut *conn)
    .await?;
    let create = ann_index_statement(IndexStorage::Halfvec, DIMENSIONS).expect("3072 <= 4000");
    let mut matching_invalid = None;
    let mut other = Vec::new();
    for row in &rows {
        let name: String = row.try_get("name")?;
        let method: String = row.try_get("method")?;
        let valid: bool = row.try_get("valid")?;
        let definition: String = row.try_get("definition")?;
        let expr: String = row.try_get("expr")?;
        let opclasses: Option<String> = row.try_get("opclasses")?;
        let opclasses = opclasses.unwrap_or_default();
        let partial: bool = row.try_get("partial")?;
        // Exactly the expression the application orders by, the cosine operator class (an
        // l2 or inner-product index is not used by `<=>`), and every row covered.
        let on_halfvec = expr == format!("((embedding)::halfvec({DIMENSIONS}))")
            || expr == format!("(embedding)::halfvec({DIMENSIONS})");
        let halfvec_ops = opclasses == "halfvec_cosine_ops";
        if on_halfvec && halfvec_ops && !partial {
            if valid {
                let data =
                    serde_json::json!({"name": name, "method": method, "definition": definition});
                return Ok((
                    Finding::pass(Group::Pgvector,
                        "pgvector.index",
                        format!("{method} index {name} on (embedding::halfvec({DIMENSIONS})) {opclasses}, valid"),
                    )
                    .data(data),
                    Some(name),
                ));
            }
            matching_invalid.get_or_insert((name, definition));
        } else {
            other.push(format!(
                "{name}: {definition}{}",
                if valid { "" } else { " (INVALID)" }
            ));
        }
    }
    if let Some((name, definition)) = matching_invalid {
        return Ok((
            Finding::fail(Group::Pgvector,
                "pgvector.index",
                format!("ANN index {name} is INVALID (a CREATE INDEX CONCURRENTLY failed or was cancelled)"),
            )
            .detail(definition)
            .detail("an invalid index is maintained on every write but never used by queries")
            .fix(format!("DROP INDEX CONCURRENTLY IF EXISTS {name};\n{create}")),
            None,
        ));
    }
    let mut f = Finding::fail(Group::Pgvector,
        "pgvector.index",
        format!("no valid ANN index on documents (embedding::halfvec({DIMENSIONS})) with a halfvec opclass"),
    )
    .fix(create)
    // Someone will want the "simple" index on the column itself; say why it cannot exist.
    .detail(ann_index_statement(IndexStorage::Vector, DIMENSIONS).unwrap_err().to_string());
    if !other.is_empty() {
        f = f
            .detail("ANN indexes that do not match the halfvec expression:")
            .details(other);
    }
    Ok((f, None))
}

async fn knn(
    conn: &mut Reader<'_>,
    index: Option<&str>,
    samples: usize,
) -> Result<Finding, sqlx::Error> {
    let Some(index) = index else {
        return Ok(Finding::unknown(
            Group::Pgvector,
            "pgvector.knn",
            "not checked: no usable ANN index",
        ));
    };
    let (a, _) = probe_vectors();
    let literal = vector_literal(&a);
    let knn_sql = format!(
        "SELECT id FROM documents ORDER BY embedding::halfvec({DIMENSIONS}) <=> '{literal}'::halfvec({DIMENSIONS}) LIMIT 10"
    );
    // Can the index serve the query at all? Seq scans are priced out, so only an unusable
    // expression leaves them in the plan. This runs inside the caller's transaction.
    conn.set_planner_switch("enable_seqscan", false).await?;
    let forced: String =
        sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {knn_sql}")))
            .fetch_one(&mut *conn)
            .await
            .map(|v: serde_json::Value| v.to_string())?;
    conn.set_planner_switch("enable_seqscan", true).await?;
    let natural: String =
        sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {knn_sql}")))
            .fetch_one(&mut *conn)
            .await
            .map(|v: serde_json::Value| v.to_string())?;
    let uses = |plan: &str| plan.contains(&format!("\"Index Name\":\"{index}\""));
    let index_usable = uses(&forced);
    let planner_uses_index = uses(&natural);
    let estimated_rows: f64 = sqlx::query_scalar(
        "SELECT greatest(reltuples, 0)::float8 FROM pg_class WHERE oid = to_regclass('documents')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let has_rows: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM documents)")
        .fetch_one(&mut *conn)
        .await?;
    let mut timings = Vec::new();
    if has_rows && index_usable {
        // Query vectors are taken from the table itself (the neighbours of existing documents,
        // as the application asks), so no 3072-number literal crosses the link per query.
        let sampled = sqlx::query_scalar::<_, i64>(
            "SELECT greatest(count(*), 1) FROM (SELECT 1 FROM documents WHERE embedding IS NOT NULL LIMIT 1000) s",
        )
        .fetch_one(&mut *conn)
        .await?;
        for i in 0..samples {
            let started = Instant::now();
            let _ids: Vec<sqlx::types::Uuid> = sqlx::query_scalar(
                // The query vector by id: an OFFSET over the embeddings themselves would cast
                // (and detoast) every row it skips, timing that instead of the KNN search.
                "SELECT d.id FROM documents d
                  ORDER BY d.embedding::halfvec(3072) <=> (
                        SELECT q.embedding::halfvec(3072) FROM documents q
                         WHERE q.id = (SELECT s.id FROM documents s
                                        WHERE s.embedding IS NOT NULL OFFSET $1 LIMIT 1))
                  LIMIT 10",
            )
            .bind((i as i64 * 7919) % sampled)
            .fetch_all(&mut *conn)
            .await?;
            timings.push(started.elapsed());
        }
    }
    let pct = |p: f64| percentile(&timings, p).map(|d| d.as_secs_f64() * 1000.0);
    let smoke = KnnSmoke {
        index_usable,
        planner_uses_index,
        estimated_rows,
        samples: timings.len(),
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
    };
    let latency = match smoke.p95_ms {
        Some(p95) => format!("p95 {p95:.1} ms over {} KNN queries", smoke.samples),
        None => "no rows, latency not measured".to_string(),
    };
    Ok(if !index_usable {
        Finding::warn(
            Group::Pgvector,
            "pgvector.knn",
            format!("KNN queries cannot use {index}"),
        )
        .detail(format!(
            "queries must ORDER BY embedding::halfvec({DIMENSIONS}) <=> $1::halfvec({DIMENSIONS})"
        ))
        .data(smoke)
    } else {
        let planner = if planner_uses_index {
            "planner chooses it".to_string()
        } else {
            format!("planner prefers a sequential scan at ~{estimated_rows:.0} rows")
        };
        Finding::pass(
            Group::Pgvector,
            "pgvector.knn",
            format!("KNN plan uses {index} ({planner}); {latency}"),
        )
        .data(smoke)
    })
}

fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_on_vector_3072_cannot_exist_and_says_so() {
        let err = ann_index_statement(IndexStorage::Vector, 3072)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot exist"), "{err}");
        assert!(err.contains("2000"), "{err}");
        assert!(err.contains("halfvec(3072)"), "{err}");
        assert_eq!(
            ann_index_statement(IndexStorage::Halfvec, 3072).unwrap(),
            "CREATE INDEX CONCURRENTLY documents_embedding_hnsw_idx ON documents USING hnsw \
             ((embedding::halfvec(3072)) halfvec_cosine_ops);"
        );
        assert!(ann_index_statement(IndexStorage::Vector, 1536).is_ok());
        assert!(ann_index_statement(IndexStorage::Halfvec, 4096).is_err());
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(parse_version("0.10.0") > parse_version("0.7.0"));
        assert!(parse_version("0.6.2").unwrap() < MIN_VERSION);
        assert_eq!(parse_version("0.8"), Some((0, 8, 0)));
        assert_eq!(parse_version("x"), None);
    }

    #[test]
    fn probe_values_are_exact_in_half_precision() {
        let (a, b) = probe_vectors();
        for x in a.iter().chain(&b) {
            assert_eq!((x * 8.0).fract(), 0.0);
        }
        assert!(cosine_distance(&a, &b) > 0.0);
    }
}
